//! The console's server-side sessions and the checks of its state-changing requests.
//!
//! A session is created by a login with the admin token. Its id (32 random bytes from the
//! operating system, hex) is all the cookie holds; the server keeps, under the SHA-256 of the
//! id, the session's CSRF token (32 more random bytes), its start and its last use. A session
//! ends at logout, after [`IDLE_TIMEOUT`] without a request, or [`MAX_AGE`] after its login,
//! whichever comes first. Lookups go by the id's hash and the CSRF token is compared in
//! constant time, so neither leaks through timing.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use axum::http::{HeaderMap, header};
use omg_protocol::rand_core::Rng;
use omg_protocol::{OsRng, hex};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "omg_console";

/// A session ends after this many seconds without a request: 30 minutes.
pub(crate) const IDLE_TIMEOUT: u64 = 30 * 60;

/// A session ends this many seconds after its login, used or not: 8 hours.
pub(crate) const MAX_AGE: u64 = 8 * 3600;

/// Most sessions kept at once; beyond, the oldest is ended to make room.
pub(crate) const MAX_SESSIONS: usize = 256;

struct Session {
    csrf: String,
    created: u64,
    last_seen: u64,
}

impl Session {
    fn live(&self, now: u64) -> bool {
        now < self.created.saturating_add(MAX_AGE)
            && now < self.last_seen.saturating_add(IDLE_TIMEOUT)
    }
}

/// The live sessions.
#[derive(Default)]
pub(crate) struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

/// A session found for a request: its CSRF token.
pub(crate) struct Current {
    /// The CSRF token every form of the session carries.
    pub(crate) csrf: String,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    OsRng::default().fill_bytes(&mut bytes);
    hex::encode(&bytes)
}

impl Sessions {
    /// Starts a session; returns its id (for the cookie).
    pub(crate) fn create(&self, now: u64) -> String {
        let id = random_hex();
        let session = Session {
            csrf: random_hex(),
            created: now,
            last_seen: now,
        };
        let mut map = self.by_hash.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, s| s.live(now));
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(omg_protocol::sha256(id.as_bytes()), session);
        id
    }

    /// The live session whose id the request's cookie holds, marked used at `now`; an expired
    /// one is ended.
    pub(crate) fn current(&self, headers: &HeaderMap, now: u64) -> Option<Current> {
        let id = cookie(headers, COOKIE)?;
        let key = omg_protocol::sha256(id.as_bytes());
        let mut map = self.by_hash.lock().unwrap_or_else(PoisonError::into_inner);
        let session = map.get_mut(&key)?;
        if !session.live(now) {
            map.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(Current {
            csrf: session.csrf.clone(),
        })
    }

    /// Ends the session whose id the request's cookie holds, if any.
    pub(crate) fn end(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            let key = omg_protocol::sha256(id.as_bytes());
            self.by_hash
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
        }
    }
}

/// Whether `presented` equals `expected`, in time independent of both (hashes compared in
/// constant time).
pub(crate) fn secret_eq(presented: &str, expected: &str) -> bool {
    omg_protocol::ct_eq(
        &omg_protocol::sha256(presented.as_bytes()),
        &omg_protocol::sha256(expected.as_bytes()),
    )
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value of a new session: HttpOnly, SameSite=Strict, limited to
/// `/console`, and Secure when the service is served over TLS.
pub(crate) fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/console; Max-Age={MAX_AGE}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether a state-changing request comes from the console's own pages, as far as the browser
/// says: `Sec-Fetch-Site`, when present, must be `same-origin`; `Origin`, when present, must
/// name the host the request was sent to (`Host`). A request with neither (an old browser, a
/// plain HTTP client) passes this check and still needs the session's CSRF token.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(|h| h.to_str()),
    ) else {
        return false;
    };
    let Some((_, authority)) = origin.split_once("://") else {
        return false;
    };
    authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn sessions_expire_when_idle_and_at_their_age() {
        let sessions = Sessions::default();
        let id = sessions.create(1000);
        assert_eq!(id.len(), 64);
        let cookie = format!("other=1; {COOKIE}={id}");
        let h = headers(&[("cookie", &cookie)]);
        assert!(sessions.current(&h, 1000 + IDLE_TIMEOUT - 1).is_some());
        assert!(sessions.current(&h, 1000 + 2 * IDLE_TIMEOUT - 2).is_some());
        assert!(sessions.current(&h, 1000 + 3 * IDLE_TIMEOUT).is_none());
        // Used all along, a session still ends at its maximum age.
        let id = sessions.create(5000);
        let h = headers(&[("cookie", &format!("{COOKIE}={id}"))]);
        let mut t = 5000;
        while t < 5000 + MAX_AGE {
            assert!(sessions.current(&h, t).is_some(), "at {t}");
            t += IDLE_TIMEOUT / 2;
        }
        assert!(sessions.current(&h, 5000 + MAX_AGE).is_none());
        // A made-up id is no session.
        let h = headers(&[("cookie", &format!("{COOKIE}={}", "0".repeat(64)))]);
        assert!(sessions.current(&h, 5000).is_none());
    }

    #[test]
    fn logout_ends_the_session() {
        let sessions = Sessions::default();
        let id = sessions.create(1);
        let h = headers(&[("cookie", &format!("{COOKIE}={id}"))]);
        assert!(sessions.current(&h, 2).is_some());
        sessions.end(&h);
        assert!(sessions.current(&h, 3).is_none());
    }

    #[test]
    fn sessions_are_capped() {
        let sessions = Sessions::default();
        let first = sessions.create(1);
        for t in 0..MAX_SESSIONS as u64 {
            sessions.create(2 + t);
        }
        let h = headers(&[("cookie", &format!("{COOKIE}={first}"))]);
        assert!(sessions.current(&h, 10).is_none(), "the oldest made room");
        assert_eq!(sessions.by_hash.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn origin_checks() {
        assert!(same_origin(&headers(&[("host", "a:1")])));
        assert!(same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "http://a:1"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "http://evil:1")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "null")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("sec-fetch-site", "same-site")
        ])));
    }

    #[test]
    fn cookie_flags() {
        let c = set_cookie("ab", false);
        assert_eq!(
            c,
            "omg_console=ab; Path=/console; Max-Age=28800; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie("ab", true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
