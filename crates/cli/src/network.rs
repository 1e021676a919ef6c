//! The `serve` flags for exposing the server on a network: where deliveries may connect,
//! the connection limits, the host names it answers to, and HTTPS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use orderflow_embedded::egress::{EgressPolicy, IpNet};
use orderflow_http::connections::ConnectionLimits;
use orderflow_http::cross_site::AllowedHosts;

use crate::BoxError;

#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// Let webhook deliveries reach this network (CIDR, e.g. 10.1.0.0/16), which is refused
    /// by default like every loopback, private, link-local, CGNAT, multicast and unspecified
    /// address. Repeatable; in the environment, comma-separated. A server listening on
    /// loopback only may always deliver to loopback.
    #[arg(
        long = "allow-endpoint-network",
        env = "ORDERFLOW_ALLOW_ENDPOINT_NETWORK",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    allow_endpoint_network: Vec<IpNet>,
    /// Attempts to deliver a subscription confirmation request before giving up on it (the
    /// subscriber's own retry policy does not apply to an unconfirmed endpoint).
    #[arg(long, env = "ORDERFLOW_CONFIRMATION_MAX_ATTEMPTS", default_value_t = orderflow_embedded::delivery::DEFAULT_CONFIRMATION_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..=100))]
    confirmation_max_attempts: u32,
    /// Time a client has to send a request's headers, from connecting or from the end of
    /// its previous response; slower clients are disconnected.
    #[arg(long, env = "ORDERFLOW_HEADER_READ_TIMEOUT_MS", default_value_t = orderflow_http::connections::DEFAULT_HEADER_READ_TIMEOUT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout_ms: u64,
    /// How long a kept-alive connection may stay idle between requests (at most the header
    /// read timeout, which also runs while a connection waits for its next request).
    #[arg(long, env = "ORDERFLOW_KEEP_ALIVE_TIMEOUT_MS", default_value_t = orderflow_http::connections::DEFAULT_KEEP_ALIVE_TIMEOUT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    keep_alive_timeout_ms: u64,
    /// Open connections served at once; a connection beyond it gets `503` and is closed.
    #[arg(long, env = "ORDERFLOW_MAX_CONNECTIONS", default_value_t = orderflow_http::connections::DEFAULT_MAX_CONNECTIONS as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Another host name clients use for this server (besides its address, `localhost` on
    /// loopback, and the public URL's host); other names get `421` (DNS rebinding).
    /// Repeatable; in the environment, comma-separated.
    #[arg(
        long = "allowed-host",
        env = "ORDERFLOW_ALLOWED_HOSTS",
        value_name = "NAME",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, env = "ORDERFLOW_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "ORDERFLOW_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl NetworkArgs {
    /// The outbound address policy for a server listening on `addr`. Loopback endpoints are
    /// allowed on a development server only: one that listens on loopback and is not
    /// published under another name (behind a reverse proxy, `--public-url` says so).
    pub fn egress(&self, addr: SocketAddr, public_url: Option<&str>) -> Arc<EgressPolicy> {
        let published = public_url
            .and_then(|u| url::Url::parse(u).ok())
            .is_some_and(|u| !is_loopback_host(u.host()));
        Arc::new(EgressPolicy::new(
            self.allow_endpoint_network.clone(),
            addr.ip().is_loopback() && !published,
        ))
    }

    pub fn confirmation_max_attempts(&self) -> u32 {
        self.confirmation_max_attempts
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            keep_alive_timeout: Duration::from_millis(self.keep_alive_timeout_ms),
            max_connections: self.max_connections as usize,
        }
    }

    pub fn allowed_hosts(&self, bound: SocketAddr, public_url: Option<&str>) -> AllowedHosts {
        AllowedHosts::for_listener(bound, public_url, &self.allowed_hosts)
    }

    /// The TLS acceptor when --tls-cert and --tls-key are given.
    pub fn tls(&self) -> Result<Option<orderflow_http::tls::TlsAcceptor>, BoxError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(orderflow_http::tls::acceptor(cert, key)?)),
            _ => Ok(None),
        }
    }
}

fn is_loopback_host(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => false,
    }
}
