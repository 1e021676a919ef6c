//! Every order API Gateway's `Order` model accepts is an order `store-orders` stores: the
//! corpus infra/model_corpus.py judged with a draft-4 validator and rendered through the POST
//! mapping template, parsed here with `Order::parse` as the Lambda parses the queue message.

use std::io::Write;

use orderflow_core::Order;
use serde_json::Value;

#[test]
fn every_order_the_api_gateway_model_accepts_is_parsed_by_the_store_handler() {
    let Ok(path) = std::env::var("ORDERFLOW_MODEL_CORPUS") else {
        // Straight to stderr: libtest captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPED: ORDERFLOW_MODEL_CORPUS is not set; ./scripts/test-aws writes the corpus \
             (infra/model_corpus.py) and sets it.\n"
        );
        return;
    };
    let corpus: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the corpus is JSON");
    let accepted = corpus["accepted"].as_array().expect("an accepted list");
    let rejected = corpus["rejected"].as_array().expect("a rejected list");
    assert!(
        accepted.len() > 100 && rejected.len() > 100,
        "the corpus must test both sides of the model"
    );
    let refused: Vec<String> = accepted
        .iter()
        .map(|body| body.as_str().expect("a message body"))
        .filter_map(|body| {
            Order::parse(body.as_bytes())
                .err()
                .map(|e| format!("{body}\n    -> {:?}", e.details()))
        })
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {} orders API Gateway accepts would go to the dead-letter queue:\n{}",
        refused.len(),
        accepted.len(),
        refused.join("\n")
    );
}
