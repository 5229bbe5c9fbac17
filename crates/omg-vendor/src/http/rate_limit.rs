//! The per-client rate limit: a token bucket per client address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Default per-client rate limit: 2,000 requests per second, bursts of 4,000.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    per_second: 2000,
    burst: 4000,
};

/// A per-client request rate limit (a token bucket per client address: an IPv4 address, or
/// the /64 prefix of an IPv6 address). Requests beyond it are answered 429 with
/// `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second a client may make in the long run (at least 1).
    pub per_second: u32,
    /// Requests a client may make at once after a pause (the bucket's size, at least 1).
    pub burst: u32,
}

/// Clients tracked by the rate limiter at most; beyond, clients whose bucket is full again are
/// forgotten (they are as good as new), and if that frees nothing, requests of clients not yet
/// tracked are refused until it does.
const MAX_TRACKED_CLIENTS: usize = 65_536;

/// The per-client token buckets.
pub(super) struct Limiter {
    limit: RateLimit,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    by_client: HashMap<IpAddr, Bucket>,
    /// When full buckets were last forgotten (at most once a second).
    last_sweep: Instant,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant, limit: RateLimit) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * f64::from(limit.per_second.max(1)))
            .min(f64::from(limit.burst.max(1)))
    }
}

/// The address a client is limited by: an IPv4 address (also when mapped into IPv6), or the
/// /64 prefix of an IPv6 address (one host usually has a whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl Limiter {
    pub(super) fn new(limit: RateLimit) -> Self {
        Limiter {
            limit,
            buckets: Mutex::new(Buckets {
                by_client: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// Takes a token from `client`'s bucket; if there is none, the whole seconds until there
    /// is one.
    fn check(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let limit = self.limit;
        let burst = f64::from(limit.burst.max(1));
        let key = client_key(client);
        // Every critical section leaves the map consistent, so a poisoned lock is usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.by_client.len() >= MAX_TRACKED_CLIENTS && !buckets.by_client.contains_key(&key) {
            if now.saturating_duration_since(buckets.last_sweep) >= Duration::from_secs(1) {
                buckets.last_sweep = now;
                buckets
                    .by_client
                    .retain(|_, bucket| bucket.refilled(now, limit) < burst);
            }
            if buckets.by_client.len() >= MAX_TRACKED_CLIENTS {
                return Err(1);
            }
        }
        let bucket = buckets.by_client.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = bucket.refilled(now, limit);
        bucket.at = now;
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Ok(())
        } else {
            bucket.tokens = tokens;
            let wait = (1.0 - tokens) / f64::from(limit.per_second.max(1));
            // At most one second per token, so this is small.
            Err((wait.ceil() as u64).max(1))
        }
    }
}

/// Answers 429 with `Retry-After` to a client over its rate (see [`RateLimit`]).
pub(super) async fn rate_limit(
    State(limiter): State<Arc<Option<Limiter>>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let (Some(limiter), Some(client)) = (limiter.as_ref(), client)
        && let Err(retry_after) = limiter.check(client, Instant::now())
    {
        return ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "rate_limited",
                "too many requests from this client, try again later",
            )
        }
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_limited_by_ipv4_address_or_ipv6_prefix() {
        let key = |s: &str| client_key(s.parse().unwrap());
        assert_eq!(key("192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn token_buckets_refill_and_stay_bounded() {
        let limiter = Limiter::new(RateLimit {
            per_second: 10,
            burst: 3,
        });
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.check(a, t0), Ok(()));
        }
        assert_eq!(limiter.check(a, t0), Err(1));
        // Another client has a bucket of its own.
        assert_eq!(limiter.check(b, t0), Ok(()));
        // 10 per second: one token after 0.1 s, not two.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(limiter.check(a, t1), Ok(()));
        assert_eq!(limiter.check(a, t1), Err(1));
        // Refilled at most to the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.check(a, t2), Ok(()));
        }
        assert_eq!(limiter.check(a, t2), Err(1));

        // Bounded: with the table full of busy clients, a new one is refused; once their
        // buckets are full again they are forgotten and new clients get in.
        let full = Limiter::new(RateLimit {
            per_second: 1,
            burst: 1,
        });
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED_CLIENTS {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            assert_eq!(full.check(ip, t0), Ok(()));
        }
        let newcomer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            full.check(newcomer, t0 + Duration::from_millis(500)),
            Err(1)
        );
        assert_eq!(full.check(newcomer, t0 + Duration::from_secs(2)), Ok(()));
        let tracked = full
            .buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_client
            .len();
        assert_eq!(tracked, 1);
    }
}
