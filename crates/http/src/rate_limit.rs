//! Per-client request rates: governor's GCRA keyed by client, over a bounded
//! least-recently-used store (a flood of new addresses forgets the idlest clients, never
//! everyone's limit); IPv6 clients keyed by their /64; behind a trusted proxy, the client
//! named in `X-Forwarded-For`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
pub use ipnet::IpNet;
use lru::LruCache;

use crate::{ApiError, AppState};

/// Clients tracked at once; past it the least recently seen is forgotten (its next request
/// starts with a full burst, which an idle client would have had anyway).
pub const MAX_TRACKED_CLIENTS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// governor's per-key states in an LRU cache: a bounded key store.
pub struct LruStateStore {
    states: Mutex<LruCache<IpAddr, InMemoryState>>,
}

impl LruStateStore {
    fn new(capacity: NonZeroUsize) -> Self {
        LruStateStore {
            states: Mutex::new(LruCache::new(capacity)),
        }
    }
}

impl StateStore for LruStateStore {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut states = self.states.lock().expect("rate limiter lock");
        // Looking a key up makes it the most recently used; a new key evicts the least.
        states
            .get_or_insert(*key, InMemoryState::default)
            .measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl std::fmt::Debug for LruStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let clients = self.states.lock().map_or(0, |s| s.len());
        write!(f, "LruStateStore({clients} clients)")
    }
}

/// The limiter of a running server.
pub struct ClientLimiter {
    limiter: RateLimiter<IpAddr, LruStateStore, DefaultClock, NoOpMiddleware>,
    clock: DefaultClock,
}

impl std::fmt::Debug for ClientLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientLimiter")
    }
}

impl ClientLimiter {
    pub fn new(limit: RateLimit, capacity: usize) -> Self {
        let one = NonZeroU32::MIN;
        let quota = Quota::per_second(NonZeroU32::new(limit.per_second).unwrap_or(one))
            .allow_burst(NonZeroU32::new(limit.burst).unwrap_or(one));
        let clock = DefaultClock::default();
        let store = LruStateStore::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN));
        ClientLimiter {
            limiter: RateLimiter::new(quota, store, clock.clone()),
            clock,
        }
    }

    /// Takes one request for `client`; on refusal, how long until one is allowed.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The key a client is limited by: IPv4 as it is (an IPv4-mapped IPv6 address too), IPv6
/// by its /64, the smallest block a site is usually given, so rotating addresses inside it
/// buys nothing.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the right-most
/// address in `X-Forwarded-For` that is not itself a trusted proxy (the entries left of it
/// are whatever the client chose to send). A malformed entry ends the walk at the peer.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for part in text.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                Err(_) => return peer,
            }
        }
    }
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
}

pub(crate) async fn limit_rate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(limiter) = state.rate_limiter() {
        // Health checks are never throttled: a load balancer must see the truth.
        let exempt = request.uri().path() == "/healthz";
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let client = client_address(peer, request.headers(), &state.limits.trusted_proxies);
        if !exempt && let Err(wait) = limiter.check(client_key(client)) {
            return ApiError::RateLimited(wait).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_client_gets_its_burst_and_clients_are_limited_separately() {
        let limiter = ClientLimiter::new(
            RateLimit {
                per_second: 1,
                burst: 3,
            },
            100,
        );
        for _ in 0..3 {
            limiter.check(ip("192.0.2.1")).unwrap();
        }
        let wait = limiter.check(ip("192.0.2.1")).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        limiter.check(ip("192.0.2.2")).expect("another client");
    }

    #[test]
    fn a_flood_of_new_addresses_evicts_the_idlest_never_the_attackers_own_limit() {
        let limiter = ClientLimiter::new(
            RateLimit {
                per_second: 1,
                burst: 2,
            },
            10,
        );
        let attacker = ip("198.51.100.7");
        limiter.check(attacker).unwrap();
        limiter.check(attacker).unwrap();
        assert!(limiter.check(attacker).is_err());
        for i in 0..50u8 {
            // Each new address would have cleared every bucket before.
            let _ = limiter.check(IpAddr::from([203, 0, 113, i]));
            assert!(limiter.check(attacker).is_err(), "after {i} new addresses");
        }
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1")),
            client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
        assert_eq!(client_key(ip("192.0.2.9")), ip("192.0.2.9"));
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy_and_names_the_right_most_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 192.0.2.50, 10.1.1.1"),
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers, &trusted),
            ip("192.0.2.50"),
            "the client's own left-most claim is ignored"
        );
        assert_eq!(
            client_address(ip("192.0.2.77"), &headers, &trusted),
            ip("192.0.2.77"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("garbage, 10.1.1.1"),
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers, &trusted),
            ip("10.0.0.2")
        );
    }
}
