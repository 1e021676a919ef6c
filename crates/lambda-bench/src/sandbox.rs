//! What Lambda gives a `provided.al2023` bootstrap, shared by this bench and the Runtime API
//! harness of crates/aws/tests (which includes this file): the sandbox's environment and
//! the headers of an invocation
//! (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>,
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html#runtimes-api-next>).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};
use tokio::io::AsyncRead;
use tokio::process::{Child, Command};

/// `program` as Lambda starts a function's bootstrap: nothing inherited, the Runtime API at
/// `runtime_api`, the function's name and defaults for the rest; no stdin, its output piped,
/// killed when dropped. The caller adds arguments and the function's own environment.
pub fn bootstrap_command(
    program: &str,
    function_name: &str,
    runtime_api: SocketAddr,
    log_stream: &str,
) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", log_stream)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The headers of `GET .../invocation/next`'s answer: the request id, a deadline a minute
/// away, the function's ARN, a trace id, and the event's content type.
pub fn invocation_headers(request_id: &str, function_arn: &str) -> HeaderMap {
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 60_000;
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", request_id.to_owned()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            function_arn.to_owned(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000".to_owned(),
        ),
        ("content-type", "application/json".to_owned()),
    ] {
        headers.insert(name, HeaderValue::from_str(&value).expect("header value"));
    }
    headers
}

/// A started bootstrap's stdout and stderr (what Lambda sends to CloudWatch Logs), to read.
pub fn output_streams(child: &mut Child) -> Vec<Box<dyn AsyncRead + Send + Unpin>> {
    let stdout = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>);
    let stderr = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>);
    stdout.into_iter().chain(stderr).collect()
}
