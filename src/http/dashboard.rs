//! The web dashboard on the HTTP port: `/dashboard` (one embedded page, no build step) and the
//! admin API under `/api/v1/` for it. This machine (loopback) needs no login; another machine
//! must send `Authorization: Bearer <token>` with every API request, the token being the
//! contents of `<state>/api-token` (the page asks for it once and keeps it for the tab).
//!
//! Against cross-site requests: a state change (any method but GET) must carry the page's token
//! in the `X-Hati-Token` header (a custom header cannot be sent cross-origin without a CORS
//! preflight, which is never granted, and another origin cannot read the page to learn the
//! token), the `Origin` must be this page's when the browser sends one, and the `Host` must be
//! an IP address or the host's own name (no DNS rebinding).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HOST, ORIGIN};
use hyper::{Method, Request, Response, StatusCode};

use super::{PAGE_TOKEN, RequestContext, response};
use crate::host::Host;

/// The page, with `{TOKEN}` filled in per process.
const PAGE: &str = include_str!("dashboard.html");

/// Whether `path` is the dashboard's.
pub fn is_dashboard_path(path: &str) -> bool {
    path == "/dashboard" || path.starts_with("/api/v1/")
}

/// Serves a dashboard request.
pub async fn serve(
    request: Request<Incoming>,
    host: &Host,
    context: &RequestContext,
) -> Response<BoxBody<Bytes, Infallible>> {
    let hostname = host.config().hostname.clone();
    let local = context.peer.ip().is_loopback();
    if !local && request.uri().path() != "/dashboard" {
        if !crate::admin::has_bearer_token(request.headers(), &host.api_token) {
            return refuse(
                "from another machine the API needs `Authorization: Bearer <token>`, the token \
                 in the host's state directory (api-token)",
            );
        }
        return crate::admin::api(request, host).await;
    }
    if let Err(refusal) = super::pin_page::check_host(request.headers(), &hostname) {
        return refuse(&refusal.to_string());
    }
    if request.uri().path() == "/dashboard" && request.method() == Method::GET {
        let mut page = response(
            StatusCode::OK,
            "text/html; charset=utf-8",
            // Another machine gets no page token: it logs in with the API token instead.
            PAGE.replace("{TOKEN}", if local { &PAGE_TOKEN } else { "" })
                .into(),
        );
        let headers = page.headers_mut();
        headers.insert(
            "x-frame-options",
            hyper::header::HeaderValue::from_static("DENY"),
        );
        headers.insert(
            "content-security-policy",
            hyper::header::HeaderValue::from_static("frame-ancestors 'none'"),
        );
        return page.map(BodyExt::boxed);
    }
    if request.method() != Method::GET {
        let token = request
            .headers()
            .get("x-hati-token")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !super::is_page_token(token) {
            return refuse("a state change needs the dashboard's X-Hati-Token header");
        }
        if let Some(origin) = request.headers().get(ORIGIN) {
            let host_header = request
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            if origin.as_bytes() != format!("http://{host_header}").as_bytes() {
                return refuse("a request from another site is not accepted");
            }
        }
    }
    crate::admin::api(request, host).await
}

fn refuse(message: &str) -> Response<BoxBody<Bytes, Infallible>> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut reply = Response::new(Full::new(Bytes::from(body)).boxed());
    *reply.status_mut() = StatusCode::FORBIDDEN;
    reply.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    reply
}
