//! The engine's own tests: start-up and recovery, the burst policy, wake-ups, signing once
//! per message, the delivery client's connections, and the pipeline's priority.

use super::*;
use std::time::Duration;

#[tokio::test]
async fn a_second_engine_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Engine::open(EngineConfig::new(dir.path())).unwrap();
    let second = Engine::open(EngineConfig::new(dir.path()));
    assert!(matches!(second, Err(EngineError::Locked(_))), "{second:?}");
    first.shutdown().await;
    drop(first);
    Engine::open(EngineConfig::new(dir.path())).expect("free again once the first is gone");
}

#[tokio::test]
async fn messages_in_flight_at_a_crash_are_visible_again_on_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        engine
            .queue()
            .send("x".into(), Default::default())
            .await
            .unwrap();
        assert_eq!(engine.queue().receive(10).await.unwrap().messages.len(), 1);
        // No delete, no shutdown: as if the process had been killed mid-batch.
    }
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    assert_eq!(engine.queue().release_all_in_flight().await.unwrap(), 1);
    let again = engine.queue().receive(10).await.unwrap();
    assert_eq!(again.messages[0].receive_count, 2);
}

/// Subscribes as the operator's file would, from the JSON of a subscription request.
async fn subscribe(engine: &Engine, request: serde_json::Value) -> Subscription {
    let spec = serde_json::from_value::<fanout::spec::SubscriptionRequest>(request)
        .unwrap()
        .validate(&engine.subscription_rules(true))
        .unwrap();
    engine
        .topic()
        .subscribe(spec, topic::Source::Api)
        .await
        .unwrap()
}

fn order_message(i: usize) -> String {
    format!(
        r#"{{"orderID":"burst-{i:06}","customerId":"c","customerEmail":"a@example.com","items":[{{"sku":"A-1","quantity":1,"unitPrice":1.5}}],"currency":"EUR","shippingAddress":{{"line1":"1 Main St","city":"Berlin","postalCode":"10115","country":"DE"}}}}"#
    )
}

async fn stored(engine: &Engine) -> u64 {
    engine.stats().await.unwrap().orders.stored
}

/// Sends `count` orders from `senders` concurrent tasks, as fast as the queue takes them;
/// returns how many were stored by the time the last was accepted.
async fn send_burst(engine: &Arc<Engine>, count: usize, senders: usize) -> u64 {
    send_burst_from(engine, 0, count, senders).await;
    stored(engine).await
}

/// Sends orders `first..first + count` from `senders` concurrent tasks.
async fn send_burst_from(engine: &Arc<Engine>, first: usize, count: usize, senders: usize) {
    let mut tasks = Vec::new();
    for s in 0..senders {
        let engine = Arc::clone(engine);
        tasks.push(tokio::spawn(async move {
            for i in (first + s..first + count).step_by(senders) {
                engine
                    .queue()
                    .send(order_message(i), Default::default())
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn wait_stored(engine: &Engine, count: u64, within: Duration) {
    let all = async {
        while stored(engine).await < count {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(within, all)
        .await
        .unwrap_or_else(|_| panic!("{count} orders stored within {within:?}"));
}

fn burst_config(dir: &Path, rate: u64, min_backlog: u64) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.burst = BurstConfig {
        rate,
        min_backlog,
        allowance: 1_000_000,
        max_pause: Duration::from_secs(10),
    };
    config
}

/// The store stage steps aside while a burst is accepted, then stores all of it; the
/// same burst with the policy off is stored while it is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_accepted_first_and_stored_right_after() {
    const BURST: usize = 8_000;
    let mut during = Vec::new();
    for rate in [200, 0] {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(burst_config(dir.path(), rate, 100)).unwrap();
        engine.start("http://127.0.0.1:9").await.unwrap();
        during.push(send_burst(&engine, BURST, 32).await);
        wait_stored(&engine, BURST as u64, Duration::from_secs(60)).await;
        engine.shutdown().await;
    }
    let (absorbed, beside) = (during[0], during[1]);
    assert!(
        absorbed * 3 < beside,
        "stored during the burst: {absorbed} with the policy, {beside} without"
    );
}

/// While a burst is absorbed, what was stored or published before it waits too: the
/// stream poller and the delivery worker step aside like the store stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_and_delivering_also_wait_for_an_absorbed_burst() {
    use orderflow_core::{MessageAttribute, OrderTable, Publication, Topic};
    let dir = tempfile::tempdir().unwrap();
    // A threshold far below what 32 senders reach, so a host slowed by other tests (every
    // send waits for an fsync) still counts as a burst until the feeder stops; at 200/s
    // it once dipped below, and the worker delivered in that moment.
    let mut config = burst_config(dir.path(), 50, 50);
    config.delivery.sign = false;
    let engine = Engine::open(config).unwrap();
    engine.start("http://127.0.0.1:9").await.unwrap();
    // Only the two messages written past the queue reach this subscription.
    let sub = subscribe(
        &engine,
        serde_json::json!({
            "protocol": "queue", "endpoint": "marked",
            "filterPolicy": {"$or": [{"marker": ["direct"]}, {"customerId": ["marker-c"]}]}
        }),
    )
    .await;
    // A burst from 32 senders that lasts about two seconds.
    let feeder = {
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            let until = std::time::Instant::now() + Duration::from_secs(2);
            let mut round = 0;
            while std::time::Instant::now() < until {
                send_burst_from(&engine, round * 320, 320, 32).await;
                round += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(engine.absorbing_burst(), "the burst is being absorbed");
    let order = orderflow_core::Order::parse(
        order_message(999_999)
            .replace("\"customerId\":\"c\"", "\"customerId\":\"marker-c\"")
            .as_bytes(),
    )
    .unwrap();
    let now = chrono::Utc::now();
    let stored = orderflow_core::StoredOrder::new(order, now, now).unwrap();
    engine.table().put_new(&stored).await.unwrap();
    let publication = Publication {
        dedup_id: "direct".into(),
        subject: "OrderCreated".into(),
        message: "{}".into(),
        attributes: [(
            "marker".to_owned(),
            MessageAttribute::String("direct".into()),
        )]
        .into(),
    };
    assert!(engine.topic().publish_batch(&[publication]).await[0].is_ok());
    let during = engine
        .pull_queues()
        .receive(&sub, 10, None, Duration::from_millis(600))
        .await
        .unwrap();
    assert!(
        during.is_empty(),
        "delivered during the burst: {:?}",
        during.iter().map(|m| &m.body).collect::<Vec<_>>()
    );
    feeder.await.unwrap();
    let mut after = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while after.len() < 2 && std::time::Instant::now() < deadline {
        after.extend(
            engine
                .pull_queues()
                .receive(&sub, 10, None, Duration::from_secs(1))
                .await
                .unwrap(),
        );
    }
    assert_eq!(after.len(), 2, "both arrive once the burst is over");
    engine.shutdown().await;
}

/// A load below the burst rate is stored as it comes, even when any backlog at all
/// would allow a pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_load_below_the_burst_rate_is_stored_as_it_comes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(burst_config(dir.path(), 2_000, 1)).unwrap();
    engine.start("http://127.0.0.1:9").await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for i in 0..400 {
        tick.tick().await;
        engine
            .queue()
            .send(order_message(i), Default::default())
            .await
            .unwrap();
    }
    // 200/s for two seconds: the last orders are stored moments after being sent.
    wait_stored(&engine, 400, Duration::from_secs(2)).await;
    engine.shutdown().await;
}

/// Through the running engine, each message published one at a time, at varying
/// moments of the delivery worker's loop, arrives well before the worker's 5-second
/// safety-net poll would have found it. (The lost wake-ups themselves are pinned down by
/// `topic::tests::a_publication_wakes_a_worker_that_was_not_yet_waiting` and
/// `delivery::tests::new_work_signalled_while_busy_is_seen_even_when_a_freed_slot_wakes_the_worker`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_published_message_is_delivered_without_waiting_for_the_safety_net() {
    use orderflow_core::{Publication, Topic};
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.delivery.sign = false;
    let engine = Engine::open(config).unwrap();
    engine.start("http://127.0.0.1:9").await.unwrap();
    let sub = subscribe(
        &engine,
        serde_json::json!({"protocol": "queue", "endpoint": "prompt"}),
    )
    .await;
    let mut slowest = Duration::ZERO;
    for i in 0..200 {
        let publication = Publication {
            dedup_id: format!("m-{i}"),
            subject: "OrderCreated".into(),
            message: format!("{{\"n\":{i}}}"),
            attributes: Default::default(),
        };
        let sent = std::time::Instant::now();
        assert!(engine.topic().publish_batch(&[publication]).await[0].is_ok());
        let got = engine
            .pull_queues()
            .receive(&sub, 10, None, Duration::from_secs(4))
            .await
            .unwrap();
        let took = sent.elapsed();
        assert_eq!(got.len(), 1, "message {i} not delivered within {took:?}");
        slowest = slowest.max(took);
        let handles = got.into_iter().map(|m| m.receipt_handle).collect();
        engine.pull_queues().delete(&sub, handles).await.unwrap();
        // Vary where in the worker's loop the next publication lands.
        tokio::time::sleep(Duration::from_micros(rand::random_range(0..1500))).await;
    }
    assert!(
        slowest < Duration::from_secs(2),
        "slowest delivery took {slowest:?}"
    );
    engine.shutdown().await;
}

/// Publishes `count` small messages in one batch, their dedup ids starting `prefix`.
async fn publish(engine: &Engine, prefix: &str, count: usize) {
    use orderflow_core::{Publication, Topic};
    let publications: Vec<Publication> = (0..count)
        .map(|i| Publication {
            dedup_id: format!("{prefix}-{i}"),
            subject: "OrderCreated".into(),
            message: format!("{{\"n\":{i}}}"),
            attributes: Default::default(),
        })
        .collect();
    assert!(
        engine
            .topic()
            .publish_batch(&publications)
            .await
            .iter()
            .all(Result::is_ok)
    );
}

/// Waits until the topic has recorded `count` deliveries.
async fn wait_delivered(engine: &Engine, count: u64, within: Duration) {
    let delivered = async {
        while engine.topic().delivery_stats().await.unwrap().delivered < count {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(within, delivered)
        .await
        .unwrap_or_else(|_| panic!("{count} deliveries within {within:?}"));
}

/// SNS's canonical string has no subscription in it, so the running pipeline signs a
/// message once, not once per subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_ten_subscribers_is_signed_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    engine.start("http://127.0.0.1:9").await.unwrap();
    for i in 0..10 {
        subscribe(
            &engine,
            serde_json::json!({"protocol": "queue", "endpoint": format!("q{i}")}),
        )
        .await;
    }
    publish(&engine, "m", 20).await;
    wait_delivered(&engine, 200, Duration::from_secs(30)).await;
    assert_eq!(engine.signer().unwrap().signatures_made(), 20);
    engine.shutdown().await;
}

/// A local HTTP/1.1 subscriber that answers 200 to every request on a kept-alive
/// connection, and counts the connections it accepted.
async fn counting_subscriber() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                let mut socket = tokio::io::BufReader::new(socket);
                loop {
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    socket.read_exact(&mut body).await.unwrap();
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if socket.get_mut().write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (base, accepted)
}

/// Ten subscribers on one host, as many deliveries in flight as the worker allows:
/// each connection is kept for the next notification instead of a handshake apiece.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_subscribers_on_one_host_reuse_their_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.delivery.sign = false;
    config.delivery.egress = Arc::new(egress::EgressPolicy::open());
    let max_in_flight = config.delivery.max_in_flight;
    let engine = Engine::open(config).unwrap();
    engine.start("http://127.0.0.1:9").await.unwrap();
    let (base, accepted) = counting_subscriber().await;
    for i in 0..10 {
        let sub = subscribe(
            &engine,
            serde_json::json!({"protocol": "http", "endpoint": format!("{base}/hook/{i}")}),
        )
        .await;
        engine.topic().confirm(sub.token, false).await.unwrap();
    }
    for batch in 0..10 {
        publish(&engine, &format!("m-{batch}"), 20).await;
    }
    wait_delivered(&engine, 2_000, Duration::from_secs(60)).await;
    let connections = accepted.load(std::sync::atomic::Ordering::Relaxed);
    // A connection still returning to the pool as the next request starts may add one.
    assert!(
        connections <= 2 * max_in_flight,
        "{connections} connections for 2,000 notifications, {max_in_flight} in flight"
    );
    engine.shutdown().await;
}

#[test]
fn the_pipeline_may_start_four_blocking_threads_a_core_and_never_fewer_than_eight() {
    let bound = PIPELINE_BLOCKING_THREADS;
    assert_eq!(bound.on(1), 8);
    assert_eq!(bound.on(2), 8, "the bound measured on two cores");
    assert_eq!(bound.on(3), 12);
    assert_eq!(bound.on(64), 256);
}

/// Field 19 of `/proc/.../stat`, the nice value, after the parenthesised name.
#[cfg(target_os = "linux")]
fn nice_of(stat_path: &std::path::Path) -> i32 {
    let stat = std::fs::read_to_string(stat_path).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(16).unwrap().parse().unwrap()
}

/// The pollers, deliveries and their blocking work run on their own threads, lower in
/// priority than the API's by `pipeline_nice`, however those threads were created.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_on_its_own_threads_below_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    // The default, as other tests' engines in this process use it too.
    assert_eq!(config.pipeline_nice, DEFAULT_PIPELINE_NICE);
    config.delivery.sign = false;
    let engine = Engine::open(config).unwrap();
    engine.start("http://127.0.0.1:9").await.unwrap();
    let own = nice_of(std::path::Path::new("/proc/thread-self/stat"));
    let expected = (own + i32::from(DEFAULT_PIPELINE_NICE)).min(19);
    let pipeline_nices = || -> Vec<i32> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .map(|t| t.unwrap().path())
            .filter(|t| {
                std::fs::read_to_string(t.join("comm"))
                    .is_ok_and(|c| c.starts_with("orderflow-pipel"))
            })
            .map(|t| nice_of(&t.join("stat")))
            .collect()
    };
    // Other tests in this process start engines too: a pipeline thread of theirs that was
    // just spawned may not have lowered its priority yet, so give every thread a moment; and
    // a thread takes its name only once it runs, which on a busy machine can be after the
    // first look (CI saw none at first).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut pipeline = pipeline_nices();
    while (pipeline.is_empty() || pipeline.iter().any(|n| *n != expected))
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        pipeline = pipeline_nices();
    }
    assert!(!pipeline.is_empty(), "no pipeline threads");
    for nice in &pipeline {
        assert_eq!(*nice, expected, "{pipeline:?}, ours {own}");
    }
    engine.shutdown().await;
}
