//! The web console over HTTP (the router through `tower::ServiceExt::oneshot`, on SQLite and
//! on PostgreSQL): login, the session cookie's flags, the CSRF and origin checks of every
//! state change, the escaping of database text, the audit log's filters and pages, and the
//! revocations (the admin API's functions, recorded in the audit, refusing the next
//! activation).

#[macro_use]
mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use http_body_util::BodyExt;
use omg_vendor::console::{AUDIT_PAGE_SIZE, CONTENT_SECURITY_POLICY};
use omg_vendor::http::{ApiConfig, router_with};
use omg_vendor::{ActivateError, Refusal};
use tower::ServiceExt;

const TOKEN: &str = "console-test-admin-token";
const HOST: &str = "vendor.test:8443";

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn app(f: &Fixture, admin: Option<&str>, secure: bool) -> axum::Router {
    router_with(
        f.service.clone(),
        ApiConfig {
            admin_token: admin.map(str::to_owned),
            clock: Arc::new(|| NOW),
            secure_cookies: secure,
            ..ApiConfig::default()
        },
    )
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

/// Runs store or database calls from inside the async tests (the PostgreSQL client must not
/// run on a runtime's thread).
fn sync<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

async fn send(app: &axum::Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path).header(header::HOST, HOST);
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::empty()).unwrap()
}

fn form(path: &str, cookie: Option<&str>, extra: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut r = Request::post(path)
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    r.body(Body::from(body.to_owned())).unwrap()
}

/// Logs in; the `name=value` of the session cookie.
async fn login(app: &axum::Router) -> String {
    let a = send(
        app,
        form("/console/login", None, &[], &format!("token={TOKEN}")),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let set = a.headers[header::SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..at + 64].to_owned()
}

/// The rows of a page's first table.
fn tbody(page: &str) -> &str {
    let body = page.split("<tbody>").nth(1).unwrap_or("");
    body.split("</tbody>").next().unwrap()
}

fn rows(page: &str) -> usize {
    tbody(page).matches("<tr>").count()
}

fn login_refusals_and_cookie_flags(backend: Backend) {
    let f = fixture_on(backend, "console-login", 1, &policy(10));
    block_on(async {
        // Without an admin token, the console is off.
        let off = app(&f, None, false);
        let a = send(&off, get("/console/login", None)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        let a = send(&off, form("/console/login", None, &[], "token=")).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert!(a.headers.get(header::SET_COOKIE).is_none());

        let app = app(&f, Some(TOKEN), false);
        // Pages without a session lead to the login page.
        for path in [
            "/console/",
            "/console/models",
            "/console/devices",
            "/console/audit",
        ] {
            let a = send(&app, get(path, None)).await;
            assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(a.headers[header::LOCATION], "/console/login", "{path}");
        }
        let a = send(&app, get("/console/login", None)).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            a.headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(a.headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(a.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(a.headers[header::REFERRER_POLICY], "same-origin");
        assert!(!a.body.contains("<script"), "no script at all");

        // Wrong tokens: refused, no cookie.
        for wrong in [
            "token=nope",
            "token=",
            "",
            "token=console-test-admin-toke",
            "token=console-test-admin-tokenX",
        ] {
            let a = send(&app, form("/console/login", None, &[], wrong)).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{wrong}");
            assert!(a.headers.get(header::SET_COOKIE).is_none(), "{wrong}");
            assert!(a.body.contains("Wrong admin token"));
        }
        // A login posted from another site is refused even with the right token.
        let a = send(
            &app,
            form(
                "/console/login",
                None,
                &[("origin", "https://evil.test")],
                &format!("token={TOKEN}"),
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert!(a.headers.get(header::SET_COOKIE).is_none());

        // The right token: a session cookie with its flags.
        let a = send(
            &app,
            form("/console/login", None, &[], &format!("token={TOKEN}")),
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER);
        assert_eq!(a.headers[header::LOCATION], "/console/models");
        let set = a.headers[header::SET_COOKIE].to_str().unwrap();
        let id = set
            .strip_prefix("omg_console=")
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(set.split("; ").any(|p| p == flag), "{flag} in {set}");
        }
        assert!(!set.contains("Secure"), "plain HTTP: {set}");
        // Two logins, two different ids.
        assert_ne!(login(&app).await, format!("omg_console={id}"));
        // A made-up session id is no session.
        let forged = format!("omg_console={}", "ab".repeat(32));
        let a = send(&app, get("/console/models", Some(&forged))).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER);

        // Over TLS the cookie is Secure too.
        let tls = self::app(&f, Some(TOKEN), true);
        let a = send(
            &tls,
            form("/console/login", None, &[], &format!("token={TOKEN}")),
        )
        .await;
        let set = a.headers[header::SET_COOKIE].to_str().unwrap();
        assert!(set.split("; ").any(|p| p == "Secure"), "{set}");

        // Logout ends the session (with its CSRF token only).
        let cookie = login(&app).await;
        let page = send(&app, get("/console/models", Some(&cookie))).await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = csrf_of(&page.body);
        let a = send(&app, form("/console/logout", Some(&cookie), &[], "")).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "logout without the token");
        let a = send(
            &app,
            form(
                "/console/logout",
                Some(&cookie),
                &[],
                &format!("csrf={csrf}"),
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER);
        assert!(
            a.headers[header::SET_COOKIE]
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
        let a = send(&app, get("/console/models", Some(&cookie))).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "the session is over");
    });
}

fn revoke_device_needs_csrf_and_takes_effect(backend: Backend) {
    let mut f = fixture_on(backend, "console-revoke", 2, &policy(10));
    let device = f.enrolled_device();
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    f.service
        .activate(&device.request(&c.nonce, 1), NOW, &mut f.rng)
        .unwrap();
    let ueid = hex(&device.ueid());
    let app = app(&f, Some(TOKEN), false);
    block_on(async {
        let cookie = login(&app).await;
        let a = send(&app, get("/console/devices", Some(&cookie))).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.contains(&ueid));
        assert_eq!(rows(&a.body), 1);
        let a = send(
            &app,
            get(&format!("/console/device?ueid={ueid}"), Some(&cookie)),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.contains("micro_speech"), "its activation");
        // The confirmation page holds the form.
        let confirm = send(
            &app,
            get(
                &format!("/console/revoke/device?ueid={ueid}"),
                Some(&cookie),
            ),
        )
        .await;
        assert_eq!(confirm.status, StatusCode::OK);
        let csrf = csrf_of(&confirm.body);
        let body = format!("ueid={ueid}&csrf={csrf}");

        // Forged posts: each refused, and the device stays active.
        let other = login(&app).await;
        let other_csrf = csrf_of(&send(&app, get("/console/models", Some(&other))).await.body);
        let forged: Vec<(&str, Request<Body>)> = vec![
            (
                "no token",
                form(
                    "/console/revoke/device",
                    Some(&cookie),
                    &[],
                    &format!("ueid={ueid}"),
                ),
            ),
            (
                "a wrong token",
                form(
                    "/console/revoke/device",
                    Some(&cookie),
                    &[],
                    &format!("ueid={ueid}&csrf={}", "0".repeat(64)),
                ),
            ),
            (
                "another session's token",
                form(
                    "/console/revoke/device",
                    Some(&cookie),
                    &[],
                    &format!("ueid={ueid}&csrf={other_csrf}"),
                ),
            ),
            (
                "no session",
                form("/console/revoke/device", None, &[], &body),
            ),
            (
                "another origin",
                form(
                    "/console/revoke/device",
                    Some(&cookie),
                    &[("origin", "http://evil.test")],
                    &body,
                ),
            ),
            (
                "a cross-site fetch",
                form(
                    "/console/revoke/device",
                    Some(&cookie),
                    &[("sec-fetch-site", "cross-site")],
                    &body,
                ),
            ),
        ];
        for (what, req) in forged {
            let a = send(&app, req).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}: {}", a.body);
        }
        assert!(!sync(|| f.service.list_devices().unwrap()[0].revoked));
        assert_eq!(
            sync(|| f.db.raw_count("SELECT COUNT(*) FROM admin_audit")),
            0,
            "nothing recorded"
        );

        // The real form, from the console's own origin.
        let a = send(
            &app,
            form(
                "/console/revoke/device",
                Some(&cookie),
                &[
                    ("origin", &format!("http://{HOST}")),
                    ("sec-fetch-site", "same-origin"),
                ],
                &body,
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert!(sync(|| f.service.list_devices().unwrap()[0].revoked));
        let page = send(
            &app,
            get(&format!("/console/device?ueid={ueid}"), Some(&cookie)),
        )
        .await;
        assert!(page.body.contains("revoked 2027-01-15"), "{}", page.body);

        // Recorded in the audit, and shown in the console's audit log.
        assert_eq!(
            sync(|| f
                .db
                .raw_count("SELECT COUNT(*) FROM admin_audit WHERE action = 'revoke_device'")),
            1
        );
        let audit = send(
            &app,
            get("/console/audit?reason=revoke_device", Some(&cookie)),
        )
        .await;
        assert_eq!(rows(&audit.body), 1, "{}", audit.body);
        assert!(audit.body.contains(&ueid));
    });
    // The next activation of that device is refused.
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let refused = f
        .service
        .activate(&device.request(&c.nonce, 1), NOW, &mut f.rng)
        .unwrap_err();
    assert!(
        matches!(refused, ActivateError::Refused(Refusal::DeviceRevoked)),
        "{refused:?}"
    );
}

fn revoke_model_version_through_the_console(backend: Backend) {
    let f = fixture_on(backend, "console-model", 3, &policy(10));
    let app = app(&f, Some(TOKEN), false);
    block_on(async {
        let cookie = login(&app).await;
        let models = send(&app, get("/console/models", Some(&cookie))).await;
        assert!(
            models
                .body
                .contains("/console/revoke/model?model=micro_speech&amp;version=2")
        );
        let confirm = send(
            &app,
            get(
                "/console/revoke/model?model=micro_speech&version=2",
                Some(&cookie),
            ),
        )
        .await;
        assert_eq!(confirm.status, StatusCode::OK);
        let csrf = csrf_of(&confirm.body);
        let a = send(
            &app,
            form(
                "/console/revoke/model",
                Some(&cookie),
                &[],
                "model=micro_speech&version=2",
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        let a = send(
            &app,
            form(
                "/console/revoke/model",
                Some(&cookie),
                &[],
                &format!("model=micro_speech&version=2&csrf={csrf}"),
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let a = send(
            &app,
            form(
                "/console/revoke/model",
                Some(&cookie),
                &[],
                &format!("model=micro_speech&version=9&csrf={csrf}"),
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "an unknown version");
        let models = send(&app, get("/console/models", Some(&cookie))).await;
        assert!(models.body.contains("revoked 2027-01-15"));
        assert!(
            !models.body.contains("version=2\""),
            "no second revoke link"
        );
    });
    let model = f.service.store().model(MODEL).unwrap().unwrap();
    assert_eq!(model.revocation_epoch, 1);
    assert_eq!(
        f.db.raw_count(
            "SELECT COUNT(*) FROM admin_audit WHERE action = 'revoke_model_version' \
             AND model_id = 'micro_speech' AND version = 2"
        ),
        1
    );
}

fn database_text_is_escaped(backend: Backend) {
    let f = fixture_on(backend, "console-escape", 4, &policy(10));
    let evil = "<script>alert(1)</script>";
    f.service
        .store()
        .put_model(&format!("m{evil}\"'&"), &policy(3), NOW)
        .unwrap();
    f.db.raw_execute(&format!(
        "INSERT INTO devices (ueid, revoked, endorsed_by) VALUES ('dev{evil}', 0, 'maker{evil}');
         INSERT INTO audit (seq, at, ueid, model_id, version, outcome, reason)
         VALUES (1, {NOW}, 'dev{evil}', 'model{evil}', 1, 'refused', 'reason{evil}');"
    ))
    .unwrap();
    let app = app(&f, Some(TOKEN), false);
    block_on(async {
        let cookie = login(&app).await;
        for path in [
            "/console/models".to_owned(),
            "/console/devices".to_owned(),
            "/console/audit".to_owned(),
            format!(
                "/console/audit?reason=reason%3Cscript%3Ealert(1)%3C%2Fscript%3E&model={}",
                "%3Cscript%3E"
            ),
            "/console/device?ueid=dev%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(),
            "/console/device?ueid=%3Cscript%3E".to_owned(),
        ] {
            let a = send(&app, get(&path, Some(&cookie))).await;
            assert!(
                !a.body.contains("<script"),
                "{path}: unescaped markup in {}",
                a.body
            );
            assert_eq!(a.headers[header::X_FRAME_OPTIONS], "DENY");
        }
        let a = send(&app, get("/console/devices", Some(&cookie))).await;
        assert!(
            a.body.contains("dev&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{}",
            a.body
        );
        let a = send(&app, get("/console/audit", Some(&cookie))).await;
        assert!(
            a.body
                .contains("reason&lt;script&gt;alert(1)&lt;/script&gt;")
        );
        assert!(a.body.contains("model&lt;script&gt;"));
        let a = send(&app, get("/console/models", Some(&cookie))).await;
        assert!(
            a.body
                .contains("m&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;")
        );
        // The filter's value comes back escaped in its input.
        let a = send(
            &app,
            get("/console/audit?model=%22%3E%3Cscript%3E", Some(&cookie)),
        )
        .await;
        assert!(a.body.contains("value=\"&quot;&gt;&lt;script&gt;\""));
    });
}

fn audit_filters_and_pages(backend: Backend) {
    let f = fixture_on(backend, "console-audit", 5, &policy(10));
    // 130 attempts, one a minute: every 3rd activated, the others refused for one of two
    // reasons; devices a/b alternate, two models.
    let mut sql = String::new();
    for i in 0..130u64 {
        let (outcome, reason) = match i % 3 {
            0 => ("activated", "NULL".to_owned()),
            1 => ("refused", "'wrong_measurement'".to_owned()),
            _ => ("refused", "'device_revoked'".to_owned()),
        };
        let device = if i % 2 == 0 { "aa" } else { "bb" };
        let model = if i < 100 { "m1" } else { "m2" };
        sql.push_str(&format!(
            "INSERT INTO audit (seq, at, ueid, model_id, version, outcome, reason)
             VALUES ({}, {}, '{device}', '{model}', 1, '{outcome}', {reason});",
            i + 1,
            NOW + 60 * i
        ));
    }
    f.db.raw_execute(&sql).unwrap();
    let app = app(&f, Some(TOKEN), false);
    block_on(async {
        let cookie = login(&app).await;
        let page = |q: String| {
            let app = app.clone();
            let cookie = cookie.clone();
            async move {
                let a = send(&app, get(&format!("/console/audit?{q}"), Some(&cookie))).await;
                assert_eq!(a.status, StatusCode::OK, "{q}: {}", a.body);
                a.body
            }
        };
        let count = |body: &str| -> u64 {
            let at = body.find("<p class=\"count\">").unwrap() + 17;
            body[at..].split(' ').next().unwrap().parse().unwrap()
        };
        // Everything: 130 entries over 3 pages, newest first.
        let p1 = page(String::new()).await;
        assert_eq!(count(&p1), 130);
        assert_eq!(rows(&p1), AUDIT_PAGE_SIZE as usize);
        assert!(p1.contains("page 1 of 3"));
        let newest = NOW + 60 * 129;
        let first_time = p1.split("<tbody><tr><td>").nth(1).unwrap();
        assert!(first_time.starts_with(&time_text(newest)), "{first_time}");
        assert!(p1.contains("rel=\"next\" href=\"/console/audit?page=2\""));
        assert!(!p1.contains("rel=\"prev\""));
        let p3 = page("page=3".into()).await;
        assert_eq!(rows(&p3), 30);
        assert!(p3.contains(&time_text(NOW)), "the oldest on the last page");
        assert!(!p3.contains("rel=\"next\""));
        assert_eq!(rows(&page("page=4".into()).await), 0);

        // Each filter, and together.
        let reason = page("reason=wrong_measurement".into()).await;
        assert_eq!(count(&reason), 43);
        assert!(!tbody(&reason).contains("device_revoked"));
        assert!(tbody(&reason).contains("wrong_measurement"));
        assert_eq!(count(&page("reason=activated".into()).await), 44);
        assert_eq!(count(&page("device=aa".into()).await), 65);
        assert_eq!(
            count(&page("device=AA".into()).await),
            65,
            "hex in any case"
        );
        assert_eq!(count(&page("model=m2".into()).await), 30);
        // From minute 10 to minute 19 inclusive: 10 entries.
        let from = time_text(NOW + 600).replace(' ', "T");
        let until = time_text(NOW + 60 * 19).replace(' ', "T");
        let range = page(format!("from={from}&until={until}")).await;
        assert_eq!(count(&range), 10);
        // A datetime-local input sends minutes: `until` covers its whole minute.
        let until_minute = &until[..16];
        assert_eq!(
            count(&page(format!("from={from}&until={until_minute}")).await),
            10
        );
        assert_eq!(
            count(&page(format!("from={}&until={}", NOW + 600, NOW + 60 * 19)).await),
            10,
            "seconds since the epoch"
        );
        let all = page(format!(
            "reason=device_revoked&device=bb&model=m1&from={}",
            NOW + 60 * 50
        ))
        .await;
        // i in 50..100, i % 3 == 2 and i odd: i % 6 == 5.
        let want = (50..100u64).filter(|i| i % 6 == 5).count() as u64;
        assert_eq!(count(&all), want);
        // The pages keep the filters.
        let filtered = page("device=aa".into()).await;
        assert!(filtered.contains("href=\"/console/audit?device=aa&amp;page=2\""));
        let p2 = page("device=aa&page=2".into()).await;
        assert_eq!(rows(&p2), 15);
        assert!(!tbody(&p2).contains(">bb<"));
        assert!(tbody(&p2).contains(">aa<"));
        // A time that is not one is said so.
        let a = send(&app, get("/console/audit?from=yesterday", Some(&cookie))).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.body.contains("is not a time"));
    });
}

/// `t` as the console writes it (UTC).
fn time_text(t: u64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%d %H:%M:%S"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

on_both_backends!(
    login_refusals_and_cookie_flags,
    revoke_device_needs_csrf_and_takes_effect,
    revoke_model_version_through_the_console,
    database_text_is_escaped,
    audit_filters_and_pages,
);

#[test]
fn the_admin_api_records_its_revocations_too() {
    let mut f = fixture("console-admin-api", 6, &policy(10));
    let device = f.enrolled_device();
    let app = app(&f, Some(TOKEN), false);
    block_on(async {
        let body = format!("{{\"ueid\":\"{}\"}}", hex(&device.ueid()));
        let req = Request::post("/v1/revoke/device")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        assert_eq!(send(&app, req).await.status, StatusCode::OK);
        let cookie = login(&app).await;
        let a = send(
            &app,
            get("/console/audit?reason=revoke_device", Some(&cookie)),
        )
        .await;
        assert_eq!(rows(&a.body), 1);
        assert!(a.body.contains(&hex(&device.ueid())));
    });
}
