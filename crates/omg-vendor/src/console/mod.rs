//! The vendor's web console at `/console/`: server-rendered HTML pages over the service's
//! database, behind the admin token.
//!
//! | method and path | page |
//! |---|---|
//! | `GET /console/login`, `POST /console/login` | the login form (the admin token) |
//! | `POST /console/logout` | ends the session |
//! | `GET /console/models` | models, their policies, versions and device counts |
//! | `GET /console/devices`, `GET /console/device?ueid=` | devices, their state and activations |
//! | `GET /console/audit?reason=&device=&model=&from=&until=&page=` | the audit log, filtered, 50 a page |
//! | `GET`/`POST /console/revoke/device?ueid=` | revoke a device: confirmation, then the action |
//! | `GET`/`POST /console/revoke/model?model=&version=` | revoke a model version, likewise |
//!
//! Security: a login with the admin token (compared in constant time) starts a server-side
//! session ([`session`]) whose random id is the only content of a cookie that is `HttpOnly`,
//! `SameSite=Strict`, limited to `Path=/console` and `Secure` when the service is reached over
//! TLS ([`ApiConfig::secure_cookies`]). Every state-changing request is a `POST` of a form
//! that carries the session's CSRF token (checked in constant time), and is refused when the
//! browser says it comes from another site (`Sec-Fetch-Site`, `Origin`). Every value from the
//! database or the request is escaped ([`html::esc`]). Every answer carries a
//! `Content-Security-Policy` that allows no script at all and only the console's own style
//! sheet, `X-Frame-Options: DENY`, `nosniff`, `Referrer-Policy: same-origin` and
//! `Cache-Control: no-store`. The revocations call the same [`Service`] functions as the admin
//! API, which record them in the database's `admin_audit` table; the audit page shows them
//! beside the activation attempts.

mod html;
mod queries;
mod session;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use omg_protocol::hex;

use crate::Service;
use crate::http::{ApiConfig, Clock};
use crate::store_error::StoreError;
use html::{Nav, esc, field, form_pairs, opt_time, page, time, url_component};
use queries::AuditFilter;
use session::{Current, Sessions};

/// Audit entries per page.
pub const AUDIT_PAGE_SIZE: u64 = 50;

/// Most bytes of a console form's body.
const FORM_LIMIT: usize = 8 * 1024;

/// The `Content-Security-Policy` of every console answer: nothing but the console's own style
/// sheet and forms posted to itself; no script, no frame, no plug-in.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("console.css");

struct Console {
    service: Service,
    admin_token: Option<String>,
    clock: Clock,
    secure: bool,
    body_timeout: Duration,
    sessions: Sessions,
}

type St = State<Arc<Console>>;

/// A refusal answer, boxed (a `Response` is large).
type Refused = Box<Response>;

/// The console's routes, with their own state (the service, the admin token, the clock and the
/// sessions); merged into the API's router by [`crate::http::router_with`].
pub(crate) fn router(service: Service, config: &ApiConfig) -> Router {
    let console = Arc::new(Console {
        service,
        admin_token: config.admin_token.clone(),
        clock: config.clock.clone(),
        secure: config.secure_cookies,
        body_timeout: config.body_timeout,
        sessions: Sessions::default(),
    });
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", axum::routing::post(logout))
        .route("/console/models", get(models))
        .route("/console/devices", get(devices))
        .route("/console/device", get(device))
        .route("/console/audit", get(audit))
        .route(
            "/console/revoke/device",
            get(confirm_revoke_device).post(revoke_device),
        )
        .route(
            "/console/revoke/model",
            get(confirm_revoke_model).post(revoke_model),
        )
        .route("/console/static/console.css", get(css))
        .layer(middleware::map_response(security_headers))
        .with_state(console)
}

/// The headers of every console answer.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn html_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn redirect(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// An error page; with a session, inside the navigation.
fn error_page(status: StatusCode, csrf: Option<&str>, message: &str) -> Response {
    let body = format!(
        "<p class=\"error\">{}</p><p><a href=\"/console/models\">Back to the console</a></p>",
        esc(message)
    );
    html_response(
        status,
        page(
            status.canonical_reason().unwrap_or("Error"),
            Nav::None,
            csrf,
            &body,
        ),
    )
}

fn store_error(e: &StoreError, csrf: &str) -> Response {
    match e {
        StoreError::NotFound(what) => error_page(
            StatusCode::NOT_FOUND,
            Some(csrf),
            &format!("{what} not found"),
        ),
        StoreError::Invalid(why) => error_page(StatusCode::BAD_REQUEST, Some(csrf), why),
        e if e.is_transient() => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(csrf),
            "the database is busy or unreachable; try again",
        ),
        _ => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(csrf),
            "internal error",
        ),
    }
}

/// Runs a store query on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(StoreError::Corrupt("console query (task failed)")))
}

impl Console {
    fn now(&self) -> u64 {
        (self.clock)()
    }

    /// The request's live session, or a redirect to the login page.
    fn session(&self, headers: &HeaderMap) -> Result<Current, Refused> {
        self.sessions
            .current(headers, self.now())
            .ok_or_else(|| Box::new(redirect("/console/login")))
    }

    /// The fields of a state-changing request's form, once it passed the checks: it comes
    /// from the console's own pages (as far as the browser tells), within a live session, and
    /// carries the session's CSRF token.
    async fn post_form(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(Current, Vec<(String, String)>), Refused> {
        if !session::same_origin(headers) {
            return Err(Box::new(error_page(
                StatusCode::FORBIDDEN,
                None,
                "refused: the form was not sent from this console's pages (Origin / \
                 Sec-Fetch-Site)",
            )));
        }
        let Some(current) = self.sessions.current(headers, self.now()) else {
            return Err(Box::new(error_page(
                StatusCode::FORBIDDEN,
                None,
                "refused: no live console session (log in again)",
            )));
        };
        let pairs = self.read_form(headers, body).await?;
        let presented = field(&pairs, "csrf").unwrap_or("");
        if !session::secret_eq(presented, &current.csrf) {
            return Err(Box::new(error_page(
                StatusCode::FORBIDDEN,
                Some(&current.csrf),
                "refused: the form's CSRF token is missing or wrong (reload the page and try \
                 again)",
            )));
        }
        Ok((current, pairs))
    }

    /// A form body (`application/x-www-form-urlencoded`, at most [`FORM_LIMIT`] bytes, within
    /// the body timeout).
    async fn read_form(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Vec<(String, String)>, Refused> {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(Box::new(error_page(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                "the console takes forms (application/x-www-form-urlencoded)",
            )));
        }
        let read = axum::body::to_bytes(body, FORM_LIMIT);
        let bytes = match tokio::time::timeout(self.body_timeout, read).await {
            Ok(Ok(bytes)) => bytes,
            _ => {
                return Err(Box::new(error_page(
                    StatusCode::BAD_REQUEST,
                    None,
                    "the form could not be read (too large, broken or too slow)",
                )));
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        Ok(form_pairs(&text))
    }
}

async fn index(State(c): St, headers: HeaderMap) -> Response {
    match c.session(&headers) {
        Ok(_) => redirect("/console/models"),
        Err(to_login) => *to_login,
    }
}

fn login_form(message: Option<&str>, disabled: bool) -> String {
    let mut body = String::new();
    if let Some(m) = message {
        let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(m));
    }
    if disabled {
        body.push_str(
            "<p>The admin API is disabled: start the service with an admin token \
             (<code>omg vendor serve --admin-token-file FILE</code>) to use the console.</p>",
        );
    } else {
        body.push_str(
            "<form method=\"post\" action=\"/console/login\" class=\"login\">\
             <label for=\"token\">Admin token</label>\
             <input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" \
             required autofocus>\
             <button type=\"submit\">Log in</button></form>",
        );
    }
    page("Log in", Nav::None, None, &body)
}

async fn login_page(State(c): St, headers: HeaderMap) -> Response {
    if c.admin_token.is_none() {
        return html_response(StatusCode::FORBIDDEN, login_form(None, true));
    }
    if c.sessions.current(&headers, c.now()).is_some() {
        return redirect("/console/models");
    }
    html_response(StatusCode::OK, login_form(None, false))
}

async fn login(State(c): St, headers: HeaderMap, body: Body) -> Response {
    let Some(expected) = &c.admin_token else {
        return html_response(StatusCode::FORBIDDEN, login_form(None, true));
    };
    if !session::same_origin(&headers) {
        return html_response(
            StatusCode::FORBIDDEN,
            login_form(
                Some("refused: the login was not sent from this console"),
                false,
            ),
        );
    }
    let pairs = match c.read_form(&headers, body).await {
        Ok(pairs) => pairs,
        Err(refused) => return *refused,
    };
    let presented = field(&pairs, "token").unwrap_or("");
    if !session::secret_eq(presented.trim(), expected) {
        tracing::warn!(target: crate::http::REQUEST_LOG_TARGET, "console login refused: wrong admin token");
        return html_response(
            StatusCode::UNAUTHORIZED,
            login_form(Some("Wrong admin token."), false),
        );
    }
    // A session cookie the request brought along is replaced (no session fixation).
    c.sessions.end(&headers);
    let id = c.sessions.create(c.now());
    let mut response = redirect("/console/models");
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&id, c.secure)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn logout(State(c): St, headers: HeaderMap, body: Body) -> Response {
    if let Err(refused) = c.post_form(&headers, body).await {
        return *refused;
    }
    c.sessions.end(&headers);
    let mut response = redirect("/console/login");
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(c.secure)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

fn query_pairs(query: Option<String>) -> Vec<(String, String)> {
    form_pairs(query.as_deref().unwrap_or(""))
}

/// A query parameter, trimmed, `None` when absent or empty.
fn param(pairs: &[(String, String)], name: &str) -> Option<String> {
    field(pairs, name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

async fn models(State(c): St, headers: HeaderMap) -> Response {
    let current = match c.session(&headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let service = c.service.clone();
    let models = match blocking(move || queries::models(service.store())).await {
        Ok(m) => m,
        Err(e) => return store_error(&e, &current.csrf),
    };
    let mut body = String::new();
    if models.is_empty() {
        body.push_str("<p>No model yet: package one with <code>omg vendor package</code>.</p>");
    }
    for m in &models {
        let _ = write!(
            body,
            "<section class=\"model\"><h2>{}</h2><dl class=\"facts\">",
            esc(&m.model_id)
        );
        let mut fact = |k: &str, v: String| {
            let _ = write!(body, "<div><dt>{}</dt><dd>{}</dd></div>", esc(k), esc(&v));
        };
        match &m.policy {
            Some(p) => {
                fact(
                    "devices",
                    format!("{} of at most {}", m.devices, p.max_devices),
                );
                fact("licences until", time(p.not_after));
                fact(
                    "output",
                    serde_json::to_value(p.output_policy)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                );
                fact(
                    "input sources",
                    p.input_sources
                        .iter()
                        .filter_map(|s| serde_json::to_value(s).ok())
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
                fact(
                    "lease",
                    p.lease_seconds.map_or_else(
                        || "none (licences run to their end offline)".to_owned(),
                        |s| format!("{s} s, grace {} s", p.offline_grace_seconds),
                    ),
                );
                fact(
                    "inference quota",
                    p.inference_quota
                        .map_or_else(|| "unlimited".to_owned(), |q| q.to_string()),
                );
                fact(
                    "measurements",
                    format!(
                        "{} Linux, {} OP-TEE",
                        p.allowed_measurements.len(),
                        p.backends
                            .optee
                            .as_ref()
                            .map_or(0, |o| o.measurements.len())
                    ),
                );
            }
            None => fact("policy", "unreadable".to_owned()),
        }
        fact("revocation epoch", m.revocation_epoch.to_string());
        body.push_str("</dl>");
        if let Some(p) = &m.policy {
            let json = serde_json::to_string_pretty(p).unwrap_or_default();
            let _ = write!(
                body,
                "<details><summary>Policy</summary><pre>{}</pre></details>",
                esc(&json)
            );
        }
        body.push_str(
            "<table><thead><tr><th>version</th><th>added</th><th>state</th>\
             <th>activations</th><th>devices</th><th></th></tr></thead><tbody>",
        );
        for v in &m.versions {
            let state = if v.revoked {
                format!("revoked {}", opt_time(v.revoked_at))
            } else {
                "active".to_owned()
            };
            let action = if v.revoked {
                String::new()
            } else {
                format!(
                    "<a class=\"danger\" href=\"/console/revoke/model?model={}&amp;version={}\">\
                     Revoke…</a>",
                    esc(&url_component(&m.model_id)),
                    v.version
                )
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td>\
                 <td>{action}</td></tr>",
                v.version,
                esc(&time(v.created_at)),
                if v.revoked { "revoked" } else { "active" },
                esc(&state),
                v.activations,
                v.devices,
            );
        }
        body.push_str("</tbody></table></section>");
    }
    html_response(
        StatusCode::OK,
        page("Models", Nav::Models, Some(&current.csrf), &body),
    )
}

fn device_link(ueid: &str) -> String {
    format!(
        "<a class=\"ueid\" href=\"/console/device?ueid={}\">{}</a>",
        esc(&url_component(ueid)),
        esc(ueid)
    )
}

fn trust(d: &queries::DeviceSummary) -> String {
    match (&d.enrolled_at, &d.endorsed_by) {
        (Some(t), _) => format!("enrolled {}", time(*t)),
        (None, Some(maker)) => format!("endorsed by maker {maker}"),
        (None, None) => "neither enrolled nor endorsed".to_owned(),
    }
}

fn device_state(d: &queries::DeviceSummary) -> String {
    if d.revoked {
        format!("revoked {}", opt_time(d.revoked_at))
    } else {
        "active".to_owned()
    }
}

async fn devices(State(c): St, headers: HeaderMap) -> Response {
    let current = match c.session(&headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let service = c.service.clone();
    let devices = match blocking(move || queries::devices(service.store())).await {
        Ok(d) => d,
        Err(e) => return store_error(&e, &current.csrf),
    };
    let mut body = String::new();
    if devices.is_empty() {
        body.push_str("<p>No device yet: enrol one with <code>omg vendor enroll</code>.</p>");
    } else {
        body.push_str(
            "<table><thead><tr><th>UEID</th><th>state</th><th>trust</th><th>first seen</th>\
             <th>activations</th><th>last activation</th></tr></thead><tbody>",
        );
        for d in &devices {
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td></tr>",
                device_link(&d.ueid),
                if d.revoked { "revoked" } else { "active" },
                esc(&device_state(d)),
                esc(&trust(d)),
                esc(&opt_time(d.first_seen)),
                d.activations,
                esc(&opt_time(d.last_activation)),
            );
        }
        body.push_str("</tbody></table>");
    }
    html_response(
        StatusCode::OK,
        page("Devices", Nav::Devices, Some(&current.csrf), &body),
    )
}

async fn device(State(c): St, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let current = match c.session(&headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let ueid = param(&query_pairs(query), "ueid").unwrap_or_default();
    let service = c.service.clone();
    let lookup = ueid.clone();
    let found = match blocking(move || queries::device(service.store(), &lookup)).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                Some(&current.csrf),
                &format!("no device {ueid}"),
            );
        }
        Err(e) => return store_error(&e, &current.csrf),
    };
    let (d, activations) = found;
    let mut body = format!(
        "<dl class=\"facts\"><div><dt>UEID</dt><dd class=\"ueid\">{}</dd></div>\
         <div><dt>state</dt><dd class=\"{}\">{}</dd></div>\
         <div><dt>trust</dt><dd>{}</dd></div>\
         <div><dt>first seen</dt><dd>{}</dd></div>\
         <div><dt>activations</dt><dd>{}</dd></div></dl>",
        esc(&d.ueid),
        if d.revoked { "revoked" } else { "active" },
        esc(&device_state(&d)),
        esc(&trust(&d)),
        esc(&opt_time(d.first_seen)),
        d.activations,
    );
    if !d.revoked {
        let _ = write!(
            body,
            "<p><a class=\"danger button\" href=\"/console/revoke/device?ueid={}\">\
             Revoke this device…</a></p>",
            esc(&url_component(&d.ueid))
        );
    }
    let _ = write!(
        body,
        "<p><a href=\"/console/audit?device={}\">Its audit entries</a></p>",
        esc(&url_component(&d.ueid))
    );
    if !activations.is_empty() {
        body.push_str(
            "<h2>Activations</h2><table><thead><tr><th>time</th><th>model</th>\
             <th>version</th></tr></thead><tbody>",
        );
        for a in &activations {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&time(a.at)),
                esc(&a.model_id),
                a.version
            );
        }
        body.push_str("</tbody></table>");
    }
    html_response(
        StatusCode::OK,
        page("Device", Nav::Devices, Some(&current.csrf), &body),
    )
}

/// The reasons offered by the audit filter's list (any text is accepted).
const REASONS: &[&str] = &[
    "activated",
    "revoke_device",
    "revoke_model_version",
    "device_revoked",
    "model_version_revoked",
    "unknown_device",
    "unknown_model",
    "wrong_measurement",
    "device_limit_reached",
    "licence_expired",
    "bad_signature",
    "malformed_token",
    "malformed_request",
    "unknown_nonce",
    "expired_nonce",
    "reused_nonce",
    "enclave_key_mismatch",
    "insecure_lifecycle",
    "instance_id_mismatch",
    "untrusted_maker",
    "malformed_endorsement",
    "endorsement_mismatch",
    "endorsement_expired",
];

/// A time as a `datetime-local` input's value.
fn input_time(t: Option<u64>) -> String {
    t.map(|t| time(t).replacen(' ', "T", 1)).unwrap_or_default()
}

fn audit_query(filter: &AuditFilter, page: u64) -> String {
    let mut q = Vec::new();
    for (k, v) in [
        ("reason", filter.reason.clone()),
        ("device", filter.device.clone()),
        ("model", filter.model.clone()),
        ("from", filter.from.map(|t| t.to_string())),
        ("until", filter.until.map(|t| t.to_string())),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", url_component(&v)));
        }
    }
    q.push(format!("page={page}"));
    format!("/console/audit?{}", q.join("&"))
}

async fn audit(State(c): St, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let current = match c.session(&headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let pairs = query_pairs(query);
    let mut problems = Vec::new();
    let mut time_param = |name: &str| {
        let text = param(&pairs, name)?;
        let t = html::parse_time(&text);
        if t.is_none() {
            problems.push(format!(
                "{name}: “{text}” is not a time (YYYY-MM-DD, YYYY-MM-DDTHH:MM or seconds)"
            ));
        }
        t
    };
    let (from, until_given) = (time_param("from"), time_param("until"));
    // An `until` given to the minute (as the browser's input sends it) covers that minute.
    let until = until_given.map(|t| {
        let text = param(&pairs, "until").unwrap_or_default();
        let minute_only = text.contains(':') && text.matches(':').count() == 1;
        if minute_only { t + 59 } else { t }
    });
    let filter = AuditFilter {
        reason: param(&pairs, "reason"),
        device: param(&pairs, "device").map(|d| d.to_ascii_lowercase()),
        model: param(&pairs, "model"),
        from,
        until,
    };
    let page_no: u64 = param(&pairs, "page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let mut body = String::new();
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/console/audit\" class=\"filters\">\
         <label>reason <input name=\"reason\" list=\"reasons\" value=\"{}\"></label>\
         <datalist id=\"reasons\">",
        esc(filter.reason.as_deref().unwrap_or(""))
    );
    for r in REASONS {
        let _ = write!(body, "<option value=\"{r}\">");
    }
    let _ = write!(
        body,
        "</datalist>\
         <label>device <input name=\"device\" value=\"{}\" size=\"30\"></label>\
         <label>model <input name=\"model\" value=\"{}\"></label>\
         <label>from <input type=\"datetime-local\" step=\"1\" name=\"from\" value=\"{}\"></label>\
         <label>until <input type=\"datetime-local\" step=\"1\" name=\"until\" value=\"{}\"></label>\
         <button type=\"submit\">Filter</button> <a href=\"/console/audit\">Clear</a></form>\
         <p class=\"hint\">Times are UTC.</p>",
        esc(filter.device.as_deref().unwrap_or("")),
        esc(filter.model.as_deref().unwrap_or("")),
        esc(&input_time(filter.from)),
        esc(&input_time(filter.until)),
    );
    if !problems.is_empty() {
        for p in &problems {
            let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(p));
        }
        return html_response(
            StatusCode::BAD_REQUEST,
            page("Audit log", Nav::Audit, Some(&current.csrf), &body),
        );
    }
    let service = c.service.clone();
    let offset = (page_no - 1).saturating_mul(AUDIT_PAGE_SIZE);
    let query_filter = filter.clone();
    let (entries, total) = match blocking(move || {
        queries::audit(service.store(), &query_filter, AUDIT_PAGE_SIZE, offset)
    })
    .await
    {
        Ok(found) => found,
        Err(e) => return store_error(&e, &current.csrf),
    };
    let total = u64::try_from(total).unwrap_or(0);
    let pages = total.div_ceil(AUDIT_PAGE_SIZE).max(1);
    let _ = write!(
        body,
        "<p class=\"count\">{total} entries, page {page_no} of {pages}</p>\
         <table class=\"audit\"><thead><tr><th>time</th><th>outcome</th><th>reason</th>\
         <th>device</th><th>model</th><th>version</th></tr></thead><tbody>"
    );
    for e in &entries {
        let _ = write!(
            body,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&time(e.at)),
            esc(&e.outcome),
            esc(&e.outcome),
            esc(e.reason.as_deref().unwrap_or("")),
            e.ueid.as_deref().map(device_link).unwrap_or_default(),
            esc(e.model_id.as_deref().unwrap_or("")),
            e.version.map(|v| v.to_string()).unwrap_or_default(),
        );
    }
    body.push_str("</tbody></table><nav class=\"pages\">");
    if page_no > 1 {
        let _ = write!(
            body,
            "<a rel=\"prev\" href=\"{}\">← newer</a>",
            esc(&audit_query(&filter, page_no - 1))
        );
    }
    if page_no < pages {
        let _ = write!(
            body,
            "<a rel=\"next\" href=\"{}\">older →</a>",
            esc(&audit_query(&filter, page_no + 1))
        );
    }
    body.push_str("</nav>");
    html_response(
        StatusCode::OK,
        page("Audit log", Nav::Audit, Some(&current.csrf), &body),
    )
}

/// A UEID in hex (66 digits), as the admin API takes it.
fn parse_ueid(text: &str) -> Option<[u8; omg_protocol::keys::UEID_LEN]> {
    hex::decode_n::<{ omg_protocol::keys::UEID_LEN }>(&text.to_ascii_lowercase())
}

fn confirm_page(
    csrf: &str,
    title: &str,
    what: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> String {
    let mut body =
        format!("<p class=\"warning\">{what}</p><form method=\"post\" action=\"{action}\">");
    for (k, v) in fields {
        let _ = write!(
            body,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        );
    }
    let _ = write!(
        body,
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" class=\"danger\" id=\"confirm\">{}</button> \
         <a href=\"/console/models\">Cancel</a></form>",
        esc(csrf),
        esc(title)
    );
    page(title, Nav::None, Some(csrf), &body)
}

async fn confirm_revoke_device(
    State(c): St,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let current = match c.session(&headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let text = param(&query_pairs(query), "ueid").unwrap_or_default();
    if parse_ueid(&text).is_none() {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&current.csrf),
            "ueid must be 66 hex digits",
        );
    }
    let what = format!(
        "Revoke device <span class=\"ueid\">{}</span>? It will get no further activation of any \
         model. This cannot be undone.",
        esc(&text)
    );
    html_response(
        StatusCode::OK,
        confirm_page(
            &current.csrf,
            "Revoke device",
            &what,
            "/console/revoke/device",
            &[("ueid", &text)],
        ),
    )
}

async fn revoke_device(State(c): St, headers: HeaderMap, body: Body) -> Response {
    let (current, pairs) = match c.post_form(&headers, body).await {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let text = field(&pairs, "ueid")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some(ueid) = parse_ueid(&text) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&current.csrf),
            "ueid must be 66 hex digits",
        );
    };
    let service = c.service.clone();
    let now = c.now();
    if let Err(e) = blocking(move || service.revoke_device(&ueid, now)).await {
        return store_error(&e, &current.csrf);
    }
    tracing::info!(target: crate::http::REQUEST_LOG_TARGET, ueid = %text, "console: device revoked");
    redirect(&format!("/console/device?ueid={}", url_component(&text)))
}

fn model_version(pairs: &[(String, String)]) -> Option<(String, u32)> {
    let model = field(pairs, "model")?.to_owned();
    let version = field(pairs, "version")?.trim().parse().ok()?;
    crate::store::check_model_id(&model).ok()?;
    Some((model, version))
}

async fn confirm_revoke_model(
    State(c): St,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let current = match c.session(&headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let Some((model, version)) = model_version(&query_pairs(query)) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&current.csrf),
            "model (1 to 128 bytes) and version (a number) are needed",
        );
    };
    let what = format!(
        "Revoke version {version} of model <strong>{}</strong>? Devices get no further \
         activation of it, and the model's revocation epoch goes up by one. This cannot be \
         undone.",
        esc(&model)
    );
    let version_text = version.to_string();
    html_response(
        StatusCode::OK,
        confirm_page(
            &current.csrf,
            "Revoke model version",
            &what,
            "/console/revoke/model",
            &[("model", &model), ("version", &version_text)],
        ),
    )
}

async fn revoke_model(State(c): St, headers: HeaderMap, body: Body) -> Response {
    let (current, pairs) = match c.post_form(&headers, body).await {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let Some((model, version)) = model_version(&pairs) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&current.csrf),
            "model (1 to 128 bytes) and version (a number) are needed",
        );
    };
    let service = c.service.clone();
    let now = c.now();
    if let Err(e) = blocking(move || service.revoke_model_version(&model, version, now)).await {
        return store_error(&e, &current.csrf);
    }
    redirect("/console/models")
}
