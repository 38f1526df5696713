//! The TCP API's bearer-token check and its 401 answer.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode};
use serde_json::json;

/// Whether the request carries `Authorization: Bearer <token>` (compared in constant time).
/// Browsers never add this header by themselves, so it also rules out forged cross-site
/// requests.
pub fn has_bearer_token(headers: &hyper::HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    crate::crypto::constant_time_eq(bearer.as_bytes(), token.as_bytes())
}

pub(super) fn unauthorized() -> Response<BoxBody<Bytes, Infallible>> {
    let body = json!({
        "error": "the admin API needs `Authorization: Bearer <token>`, the token in the host's \
                  state directory (api-token)"
    })
    .to_string();
    let mut reply = Response::new(Full::new(Bytes::from(body)).boxed());
    *reply.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = reply.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Bearer"),
    );
    reply
}
