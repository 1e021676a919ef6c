//! `orderflow bench --quick`: proves the benchmark runs end to end and reports what it measured.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::hermetic;

/// Runs `orderflow bench --quick` with `extra` arguments; returns the JSON report, the
/// stdout and the output directory.
async fn bench_quick(extra: &[&str]) -> (Value, String, tempfile::TempDir) {
    let (output, out) = bench(&[&["--quick"], extra].concat()).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    (report(&out), stdout.into_owned(), out)
}

fn report(out: &tempfile::TempDir) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.path().join("bench.json")).unwrap()).unwrap()
}

/// Runs `orderflow bench` with `args`, writing into a fresh output directory.
async fn bench(args: &[&str]) -> (std::process::Output, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"));
    hermetic(&mut cmd);
    cmd.arg("bench")
        .args(args)
        .arg("--out-dir")
        .arg(out.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("bench finishes")
        .unwrap();
    (output, out)
}

/// Parses `svg` as XML (failing on a malformed document) and returns its text nodes.
fn svg_texts(svg: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(svg);
    let mut texts = Vec::new();
    let mut root = None;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e)) => {
                root.get_or_insert_with(|| e.name().into_inner().to_owned());
            }
            Ok(quick_xml::events::Event::Text(t)) => texts.push(t.into_inner().trim().to_owned()),
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not well-formed XML: {e}"),
        }
    }
    assert_eq!(root.as_deref(), Some("svg"));
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_quick_measures_every_phase_and_writes_json_markdown_and_a_chart() {
    let (report, stdout, out) = bench_quick(&[]).await;
    let positive = |v: &Value| v.as_f64().is_some_and(|x| x > 0.0);
    assert!(positive(&report["baseline"]["perSecond"]), "{report}");
    assert!(positive(&report["baselineAfter"]["perSecond"]), "{report}");
    let mean_baseline = (report["baseline"]["perSecond"].as_f64().unwrap()
        + report["baselineAfter"]["perSecond"].as_f64().unwrap())
        / 2.0;
    let ratio = report["ingest"]["perSecond"].as_f64().unwrap() / mean_baseline;
    assert!(
        (ratio - report["ingestToBaselineRatio"].as_f64().unwrap()).abs() < 1e-9,
        "the ratio is ingest over the mean of both baselines: {report}"
    );
    assert!(positive(&report["ingest"]["perSecond"]), "{report}");
    assert_eq!(report["ingest"]["errors"], 0, "{report}");
    assert!(positive(&report["ingestToBaselineRatio"]), "{report}");
    assert!(positive(&report["drain"]["deliveredPerSecond"]), "{report}");
    assert_eq!(report["drain"]["undelivered"], 0, "{report}");
    // How much the pipeline stored while the burst was accepted is reported, not hidden.
    let during = report["drain"]["storedDuringIngest"]
        .as_u64()
        .expect("a count");
    assert!(
        during <= report["drain"]["orders"].as_u64().unwrap(),
        "{report}"
    );
    assert!(positive(&report["startupToHealthyMs"]), "{report}");
    assert!(positive(&report["serverPeakRssMib"]), "{report}");
    // The server's memory is sampled over the run; a quick run is too short to judge.
    let memory = &report["memory"];
    assert_eq!(memory["verdict"], "notMeasured", "{memory}");
    let samples = memory["samples"].as_array().expect("memory samples");
    // Read every 5 s through the run, and once after it (a first version stopped at its
    // first reading, before any order was accepted, and kept only the last).
    assert!(samples.len() >= 2, "{memory}");
    let last = samples.last().expect("a last sample");
    assert!(positive(&last["rssMib"]), "{memory}");
    assert!(
        last["ordersAccepted"].as_u64().unwrap_or(0)
            >= report["ingest"]["ok"].as_u64().unwrap_or(1),
        "the last sample counts every order accepted: {memory}"
    );
    assert!(positive(&memory["rssAfterRunMib"]), "{memory}");
    assert!(positive(&report["diskBytesPerOrder"]), "{report}");
    let rates = report["endToEnd"].as_array().unwrap();
    assert_eq!(rates.len(), 2, "{report}");
    for r in rates {
        assert_eq!(r["undelivered"], 0, "{r}");
        assert_eq!(r["sent"], r["accepted"], "{r}");
        assert!(positive(&r["endToEnd"]["p99Ms"]), "{r}");
        // What the pipeline managed over the phase: never more than was offered (the
        // schedule's last interval and timer slack aside), every order stored and delivered.
        let offered = r["offeredPerSecond"].as_f64().unwrap();
        for rate in ["storedPerSecond", "deliveredPerSecond"] {
            let v = r[rate].as_f64().unwrap();
            assert!(v > 0.0 && v <= offered * 1.05 + 5.0, "{rate}: {r}");
        }
        assert_eq!(r["stored"], r["accepted"], "{r}");
        assert_eq!(r["delivered"], r["accepted"], "{r}");
        assert_eq!(r["everyOrderDelivered"], true, "{r}");
        assert!(r["drainLagMs"].as_f64().is_some_and(|l| l >= 0.0), "{r}");
        assert!(r["backlogAtStart"].is_u64(), "{r}");
        let kept_up = r["deliveredPerSecond"].as_f64().unwrap() >= 0.95 * offered;
        assert_eq!(r["keptUp"], kept_up, "{r}");
        // The slowest order comes with its journey, read back from the server.
        let slowest = &r["slowest"];
        assert_eq!(slowest["endToEndMs"], r["endToEnd"]["maxMs"], "{r}");
        assert_eq!(slowest["trace"]["orderID"], slowest["orderId"], "{r}");
        assert_eq!(slowest["trace"]["stage"], "delivered", "{r}");
        // The slowest few, each split into stages that add up to its end-to-end time.
        let journeys = r["slowestJourneys"].as_array().unwrap();
        assert!((1..=5).contains(&journeys.len()), "{r}");
        assert_eq!(journeys[0]["orderId"], slowest["orderId"], "{r}");
        for j in journeys {
            let stages: Vec<f64> = ["postMs", "queuedMs", "storeMs", "streamMs", "deliverMs"]
                .iter()
                .map(|s| {
                    j["stages"][s]
                        .as_f64()
                        .unwrap_or_else(|| panic!("{s}: {j}"))
                })
                .collect();
            let total: f64 = stages.iter().sum();
            let e2e = j["endToEndMs"].as_f64().unwrap();
            assert!((total - e2e).abs() < 0.01, "{total} against {e2e}: {j}");
        }
    }

    // A quick run offers neither 3,000 orders/s nor 60 s, and says so rather than judge.
    let target = &report["sustainedRateTarget"];
    assert_eq!(target["verdict"], "notMeasured", "{target}");
    assert!(target["why"].as_str().unwrap().contains("3000"), "{target}");

    let markdown = std::fs::read_to_string(out.path().join("bench.md")).unwrap();
    assert!(markdown.contains("ingest / baseline"), "{markdown}");
    assert!(
        markdown.contains("| stored/s | delivered/s | drain lag | kept up |"),
        "{markdown}"
    );
    assert!(markdown.contains("**not measured**"), "{markdown}");
    assert!(markdown.contains("Slowest at "), "{markdown}");
    assert!(
        markdown.contains("Slowest journeys at 500/s") && markdown.contains("| stream |"),
        "{markdown}"
    );
    assert!(
        stdout.contains("durable ingest"),
        "the table is printed too: {stdout}"
    );
    // Every order's notification arrived signed, as SNS signs HTTP deliveries.
    let notifications = &report["notifications"];
    assert!(positive(&notifications["signed"]), "{report}");
    assert_eq!(notifications["unsigned"], 0, "{report}");
    assert_eq!(notifications["duplicates"], 0, "{report}");
    let svg = std::fs::read_to_string(out.path().join("latency.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    // The throughput chart: orders/s series against the diagonal, p99 on a second axis.
    let texts = svg_texts(&std::fs::read_to_string(out.path().join("throughput.svg")).unwrap());
    for label in [
        "offered orders/s",
        "offered (the diagonal)",
        "accepted/s (202)",
        "stored/s",
        "delivered/s (dot: kept up; cross: did not)",
        "end-to-end p99 (right axis)",
        "end-to-end p99 (ms, log scale)",
    ] {
        assert!(texts.iter().any(|t| t == label), "{label} in {texts:?}");
    }
}

/// A phase whose orders are not all delivered when `--drain-seconds` runs out ends there:
/// the run finishes, reports what was left undelivered, and fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_phase_ends_at_its_drain_timeout_and_reports_what_was_undelivered() {
    let started = std::time::Instant::now();
    let (output, out) = bench(&[
        "--orders",
        "50",
        "--concurrency",
        "8",
        "--rates",
        "400",
        "--rate-seconds",
        "1",
        "--drain-seconds",
        "0",
    ])
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("did not keep up"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60), "{stderr}");
    let report = report(&out);
    let r = &report["endToEnd"][0];
    let undelivered = r["undelivered"].as_u64().unwrap();
    assert!(
        undelivered > 0,
        "the last order cannot be delivered at once: {r}"
    );
    assert_eq!(
        r["delivered"].as_u64().unwrap() + undelivered,
        r["accepted"].as_u64().unwrap(),
        "{r}"
    );
    assert_eq!(r["everyOrderDelivered"], false, "{r}");
    assert_eq!(r["keptUp"], false, "{r}");
    assert!(r["drainLagMs"].is_null(), "the drain never ended: {r}");
    assert_eq!(report["settings"]["drainSeconds"], 0, "{report}");
    let markdown = std::fs::read_to_string(out.path().join("bench.md")).unwrap();
    assert!(markdown.contains("| > 0 s | **no** |"), "{markdown}");
}

/// `--unsigned` starts the server with signing off, and the report says what arrived;
/// `--pipeline-nice` and `--burst-rate` reach the server (which refuses to start on a value
/// it rejects).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_unsigned_measures_a_server_that_does_not_sign() {
    let (report, stdout, _out) =
        bench_quick(&["--unsigned", "--pipeline-nice", "0", "--burst-rate", "0"]).await;
    assert_eq!(report["settings"]["pipelineNice"], 0, "{report}");
    assert_eq!(report["settings"]["burstRate"], 0, "{report}");
    assert!(stdout.contains("`--pipeline-nice 0`"), "{stdout}");
    assert!(stdout.contains("`--burst-rate 0`"), "{stdout}");
    let notifications = &report["notifications"];
    assert_eq!(notifications["signed"], 0, "{report}");
    assert!(
        notifications["unsigned"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
    assert!(stdout.contains(" 0 signed"), "{stdout}");
}

/// `--peer URL` runs the same SQS cycle against our server and the peer, taking turns, and
/// reports the ratio. The peer here is another `orderflow serve` holding an API key, so it
/// checks every SigV4 signature the bench makes (its secret is the key); moto, which
/// BENCHMARKS.md compares with, checks none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_peer_compares_sqs_cycles_with_a_peer_that_checks_signatures() {
    use crate::helpers::{AppOptions, spawn_app_with};
    let peer = spawn_app_with(AppOptions {
        api_key: Some("peer-secret-0123456789".into()),
        ..AppOptions::default()
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"));
    hermetic(&mut cmd);
    cmd.args(["bench", "--quick", "--peer", &peer.url])
        .args(["--peer-cycles", "60", "--peer-access-key-id", "orderflow"])
        .args(["--peer-secret", "peer-secret-0123456789", "--out-dir"])
        .arg(out.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("bench --peer finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("peer.json")).unwrap())
            .unwrap();
    for side in ["ours", "peerRun"] {
        assert_eq!(report[side]["cycles"], 60, "{report}");
        assert_eq!(report[side]["errors"], 0, "{report}");
    }
    let ratio = report["ours"]["cyclesPerSecond"].as_f64().unwrap()
        / report["peerRun"]["cyclesPerSecond"].as_f64().unwrap();
    assert!(
        (ratio - report["ratio"].as_f64().unwrap()).abs() < 1e-9,
        "{report}"
    );
    assert!(stdout.contains("orderflow serve / "), "{stdout}");

    // Credentials the peer does not know are refused by it, and the bench says so.
    let mut wrong = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"));
    hermetic(&mut wrong);
    wrong
        .args(["bench", "--quick", "--peer", &peer.url])
        .args(["--peer-cycles", "2", "--peer-access-key-id", "someone-else"])
        .args(["--peer-secret", "peer-secret-0123456789", "--out-dir"])
        .arg(out.path())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), wrong.output())
        .await
        .expect("bench --peer finishes")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a wrongly signed peer run must fail"
    );
    assert!(stderr.contains("InvalidClientTokenId"), "{stderr}");
}

/// `--fanout 1,3,1`: one round per number of HTTP subscribers, every subscriber gets every
/// notification, and each order costs one signature whatever the number of subscribers. A
/// size may come again (to see the server warm): its round posts orders of its own, not
/// the ids of the first, which the store would take as the same orders and not announce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_fanout_delivers_every_notification_to_every_subscriber_signing_each_order_once() {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"));
    hermetic(&mut cmd);
    cmd.args([
        "bench",
        "--quick",
        "--fanout",
        "1,3,1",
        "--fanout-notifications",
        "300",
    ])
    .arg("--out-dir")
    .arg(out.path())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("bench --fanout finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let rounds: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("fanout.json")).unwrap())
            .unwrap();
    let rounds = rounds.as_array().unwrap();
    assert_eq!(rounds.len(), 3, "{rounds:?}");
    for (r, n) in rounds.iter().zip([1u64, 3, 1]) {
        assert_eq!(r["subscribers"], n, "{r}");
        let orders = r["orders"].as_u64().unwrap();
        assert_eq!(orders, (300 / n).max(50), "{r}");
        assert_eq!(r["notifications"].as_u64().unwrap(), orders * n, "{r}");
        assert_eq!(r["signaturesPerOrder"], 1.0, "{r}");
    }
    assert!(
        rounds[1]["toOneSubscriber"].as_f64().is_some(),
        "{rounds:?}"
    );
    assert!(stdout.contains("| subscribers |"), "{stdout}");
}
