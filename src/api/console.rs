//! The operator console: a page at `/` (HTML, CSS and JS embedded in the binary, no CDN) and
//! its small JSON endpoints under `/v1/console/`, guarded by the operator token
//! (`operator.rs` says who may read and post).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::operator::{ct_eq, Console, COOKIE};
use super::state::{ApiError, ApiState};

const INDEX_HTML: &str = include_str!("console/index.html");
const LOGIN_HTML: &str = include_str!("console/login.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");

/// The console's routes (merged into the api's router).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/console/app.js", get(app_js))
        .route("/console/app.css", get(app_css))
        .route("/console/login", post(login))
        .route("/console/logout", post(logout))
        .route("/v1/console/stats", get(stats))
        .with_state(state)
}

fn login_page(status: StatusCode, message: &str) -> Response {
    let page = LOGIN_HTML.replace("{{message}}", message);
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

fn asset(st: &ApiState, headers: &HeaderMap, kind: &'static str, body: &'static str) -> Response {
    if !st.inner.console.may_read(headers) {
        return login_page(StatusCode::UNAUTHORIZED, "");
    }
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn index(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    let mut r = asset(&st, &headers, "text/html; charset=utf-8", INDEX_HTML);
    if r.status().is_success() {
        // The page is never framed by another site (clickjacking of the transcode button).
        r.headers_mut()
            .insert("x-frame-options", HeaderValue::from_static("DENY"));
    }
    r
}

async fn app_js(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    asset(&st, &headers, "text/javascript; charset=utf-8", APP_JS)
}

async fn app_css(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    asset(&st, &headers, "text/css; charset=utf-8", APP_CSS)
}

/// `token=<value>` of an `application/x-www-form-urlencoded` body.
fn form_token(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let raw = text
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")?
        .1;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

async fn login(State(st): State<ApiState>, body: Bytes) -> Response {
    let Some(token) = &st.inner.console.token else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    };
    let given = form_token(&body).unwrap_or_default();
    if !ct_eq(given.trim().as_bytes(), token.expose().as_bytes()) {
        tracing::warn!("console login refused: wrong operator token");
        return login_page(StatusCode::UNAUTHORIZED, "Wrong token.");
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        Console::session_value(token)
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
            ),
        ],
    )
        .into_response()
}

/// Sum of the samples of counter `name` in this process's metrics; `None` when the process
/// has none (the role that counts it does not run here, or counted nothing yet).
fn counter_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            found = true;
            sum += v;
        }
    }
    found.then_some(sum)
}

async fn stats(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    if !st.inner.console.may_read(&headers) {
        return ApiError::Unauthorized.into_response();
    }
    let totals = st
        .inner
        .store
        .index()
        .map(|i| i.totals())
        .unwrap_or_default();
    let by_status: serde_json::Map<String, Value> = super::index::STATUSES
        .iter()
        .zip(totals.by_status)
        .map(|(s, n)| (s.to_string(), json!(n)))
        .collect();
    let metrics = crate::metrics::render();
    Json(json!({
        "caught_up": *st.inner.caught_up.borrow(),
        "aggregates": st.inner.store.len(),
        "streams": totals.streams,
        "videos": totals.videos,
        "by_status": by_status,
        "waiting": totals.waiting,
        "problems": totals.problems,
        "undecodable": totals.undecodable,
        // Counted by the roles that run in this process (all of them in `run` and `demo`);
        // null when none here counts them: see Prometheus for a split deployment.
        "recovered_by_reconciliation": counter_sum(&metrics, "live2vod_reconcile_recovered_total"),
        "dead_letters": counter_sum(&metrics, crate::metrics::DLQ_RECORDS),
        "token_required": st.inner.console.token.is_some(),
        "policy_loaded": st.inner.console.policy.is_some(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_tokens_are_url_decoded_and_counters_summed() {
        assert_eq!(form_token(b"token=a%2Bb+c&x=1").as_deref(), Some("a+b c"));
        assert_eq!(form_token(b"x=1"), None);
        let text = "# TYPE x counter\nlive2vod_dlq_records_total{role=\"fold\"} 2\nlive2vod_dlq_records_total{role=\"worker\"} 3\nlive2vod_dlq_records_total_other 9\n";
        assert_eq!(counter_sum(text, "live2vod_dlq_records_total"), Some(5.0));
        assert_eq!(
            counter_sum(text, "live2vod_reconcile_recovered_total"),
            None
        );
    }
}
