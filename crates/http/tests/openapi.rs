//! `openapi.yaml` matches the router: every route the source registers is documented with
//! its methods, and every documented operation is a route. (The live server answering each
//! documented operation is checked end to end in `crates/cli/tests/api/openapi.rs`.)

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

fn document() -> Value {
    serde_norway::from_str(orderflow_http::openapi::OPENAPI_YAML).expect("openapi.yaml parses")
}

/// `/orders/{order_id}` and `/orders/{orderID}` are the same route.
fn normalize(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            c => out.push(c),
        }
    }
    out
}

/// `POST /` is where the AWS protocols arrive (SQS, DynamoDB, DynamoDB Streams, SNS): its
/// requests and answers are the services' own, documented in AWS's API references and
/// checked with boto3, the AWS CLI and the parity suite against moto (`scripts/awsapi`),
/// so this document leaves it out.
const AWS_PROTOCOLS: (&str, &str) = ("POST", "/");

/// Every `.route("path", get(..).post(..))` in the crate's sources, as (METHOD, path).
fn routes_in_source() -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The call's argument list, up to its matching parenthesis.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .expect("balanced .route( call");
            let call = &rest[..end];
            let route = call.split('"').nth(1).expect("a literal path").to_owned();
            let handlers = &call[call.find(',').expect("a method router")..];
            for method in ["get", "post", "put", "patch", "delete"] {
                let calls = handlers.matches(&format!("{method}(")).count();
                let chained = handlers.matches(&format!(".{method}(")).count();
                // `get(` at the start or `.get(` chained, never e.g. `target(`.
                let standalone = handlers.match_indices(&format!("{method}(")).any(|(i, _)| {
                    let before = handlers[..i].chars().last();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                });
                if chained > 0 || (calls > 0 && standalone) {
                    routes.insert((method.to_uppercase(), normalize(&route)));
                }
            }
        }
    }
    routes
}

fn routes_in_document(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert((method.to_uppercase(), normalize(path)));
        }
    }
    routes
}

#[test]
fn every_route_of_the_router_is_documented_and_every_documented_operation_is_a_route() {
    let mut source = routes_in_source();
    assert!(
        source.remove(&(AWS_PROTOCOLS.0.to_owned(), AWS_PROTOCOLS.1.to_owned())),
        "the AWS protocols' endpoint is a route"
    );
    let documented = routes_in_document(&document());
    assert!(source.len() > 20, "the scan found the routes: {source:?}");
    let undocumented: Vec<_> = source.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&source).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.yaml: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "documented operations the router does not have: {phantom:?}"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_unique_operation_ids_and_a_success_response_each() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{method} {path}: no 2xx response"
            );
        }
    }
}

#[test]
fn the_order_schema_in_the_document_is_the_order_json_schema() {
    let doc = document();
    let mut file: Value =
        serde_json::from_str(orderflow_core::order::ORDER_SCHEMA).expect("order schema is JSON");
    file.as_object_mut().unwrap().remove("$schema");
    assert_eq!(
        doc["components"]["schemas"]["Order"], file,
        "openapi.yaml's Order differs from schema/order.schema.json"
    );
}

#[test]
fn write_and_admin_operations_declare_the_api_key_and_401() {
    let doc = document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let m: axum::http::Method = method.to_uppercase().parse().unwrap();
            let needs =
                orderflow_http::auth::access(&m, path, false) != orderflow_http::auth::Access::Open;
            let declares = op.get("security").is_some() && op["responses"].get("401").is_some();
            assert_eq!(needs, declares, "{method} {path}: security in the document");
        }
    }
}
