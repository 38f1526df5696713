//! The PIN page on the HTTP port: a form where the host's owner types the PIN Moonlight shows.
//! A submission is accepted from this machine (loopback), or from elsewhere only with the
//! one-time secret of the waiting client's log line (in the link's `#fragment`, so it never
//! appears in request logs), so nobody on the LAN can pair themselves.
//!
//! Against cross-site request forgery (a web page the owner visits posting a PIN to
//! `http://127.0.0.1:47989/pin`), a submission must also carry the form token embedded in the
//! page (a cross-origin page cannot read it), be a form post, come from this page's origin when
//! the browser names one, and address the host by an IP address or one of its own names (so a
//! DNS-rebinding page cannot read the token either).

use std::time::Duration;

use bytes::Bytes;
use hati_protocol::query::Query;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, ORIGIN};
use hyper::{Response, StatusCode};

use super::{PAGE_TOKEN, RequestContext, response};
use crate::host::Host;
use crate::pairing::wait_for_outcome;

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hati: pair a client</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:28em;margin:3em auto}input{font-size:2em;width:5em}</style>
</head><body><h1>Pair a Moonlight client</h1>
<p>Type the PIN that Moonlight shows.</p>
<form method="post" action="/pin" onsubmit="document.getElementById('secret').value=location.hash.slice(1)">
<input name="pin" inputmode="numeric" pattern="[0-9]{4}" maxlength="4" autofocus required>
<input type="hidden" id="secret" name="secret">
<input type="hidden" name="form_token" value="{PAGE_TOKEN}">
<button type="submit">Pair</button></form></body></html>
"#;

/// Why a request to the PIN page is refused before its PIN is looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormRefusal {
    /// The Host header is a name that is not this host's (DNS rebinding).
    #[error(
        "the page was addressed as {0:?}, which is not this host: open it by IP address or hostname"
    )]
    ForeignHost(String),
    /// The browser says another site sent the request.
    #[error("a request from another site ({0}) is not accepted")]
    CrossOrigin(String),
    /// Not a form post.
    #[error("the PIN must be posted as a form (application/x-www-form-urlencoded)")]
    NotAForm,
    /// The form token is missing or wrong (a page that is not the PIN page posted it).
    #[error("the form is stale or was not sent by the PIN page; reload the page and try again")]
    BadToken,
}

/// Whether `host_header` (the request's `Host`) names this host: an IP address, `localhost`, or
/// the configured hostname (with `.local` for mDNS). A port is allowed.
pub(crate) fn is_own_name(host_header: &str, hostname: &str) -> bool {
    let name = match host_header.strip_prefix('[') {
        // [v6]:port
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host_header
            .rsplit_once(':')
            .map_or(host_header, |(name, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    name
                } else {
                    host_header
                }
            }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let own = hostname.to_ascii_lowercase();
    name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || name == own
        || name.strip_suffix(".local").is_some_and(|n| n == own)
}

/// Checks the headers every PIN page request must pass.
pub(crate) fn check_host(headers: &HeaderMap, hostname: &str) -> Result<(), FormRefusal> {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if is_own_name(host, hostname) {
        Ok(())
    } else {
        Err(FormRefusal::ForeignHost(host.to_owned()))
    }
}

/// Checks a PIN submission's headers and form token.
pub fn check_submission(
    headers: &HeaderMap,
    form: &Query,
    hostname: &str,
) -> Result<(), FormRefusal> {
    check_host(headers, hostname)?;
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("?");
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if origin != format!("http://{host}") {
            return Err(FormRefusal::CrossOrigin(origin.to_owned()));
        }
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v == "cross-site")
    {
        return Err(FormRefusal::CrossOrigin(
            "sec-fetch-site: cross-site".into(),
        ));
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(FormRefusal::NotAForm);
    }
    let token = form.get("form_token").unwrap_or_default();
    if !super::is_page_token(token.as_bytes()) {
        return Err(FormRefusal::BadToken);
    }
    Ok(())
}

/// The form.
pub fn page(headers: &HeaderMap, hostname: &str) -> Response<Full<Bytes>> {
    if let Err(refusal) = check_host(headers, hostname) {
        return result(StatusCode::FORBIDDEN, &refusal.to_string());
    }
    let mut response = response(
        StatusCode::OK,
        "text/html; charset=utf-8",
        PAGE.replace("{PAGE_TOKEN}", &PAGE_TOKEN).into(),
    );
    // The page must not be framed by another site (clickjacking).
    response.headers_mut().insert(
        "x-frame-options",
        hyper::header::HeaderValue::from_static("DENY"),
    );
    response.headers_mut().insert(
        "content-security-policy",
        hyper::header::HeaderValue::from_static("frame-ancestors 'none'"),
    );
    response
}

/// A small result page.
pub fn result(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Hati</title></head>\
         <body style=\"font-family:sans-serif;max-width:28em;margin:3em auto\"><p>{escaped}</p></body></html>\n"
    );
    response(status, "text/html; charset=utf-8", body.into())
}

/// Handles a posted PIN.
pub async fn submit(
    host: &Host,
    context: &RequestContext,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let form = match Query::parse(&String::from_utf8_lossy(body)) {
        Ok(form) => form,
        Err(error) => return result(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    if let Err(refusal) = check_submission(headers, &form, &host.config().hostname) {
        tracing::warn!(peer = %context.peer, %refusal, "PIN submission refused");
        return result(StatusCode::FORBIDDEN, &refusal.to_string());
    }
    let pin = form.get("pin").unwrap_or("");
    let secret = form.get("secret").filter(|s| !s.is_empty());
    let secret = match (secret, context.peer.ip().is_loopback()) {
        (Some(secret), _) => Some(secret),
        (None, true) => None,
        (None, false) => {
            return result(
                StatusCode::FORBIDDEN,
                "From another machine, open the PIN link printed in the host's log (it carries a one-time secret).",
            );
        }
    };
    match host.pairing.submit_pin(pin, secret) {
        Ok((attempt, events)) => {
            match wait_for_outcome(events, attempt, Duration::from_secs(30)).await {
                Ok(client) => result(
                    StatusCode::OK,
                    &format!("Paired: {}. You can close this page.", client.name),
                ),
                Err(reason) => result(StatusCode::OK, &format!("Pairing failed: {reason}")),
            }
        }
        Err(error) => result(StatusCode::BAD_REQUEST, &error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn form(token: &str) -> Query {
        Query::parse(&format!("pin=1337&form_token={token}")).unwrap()
    }

    #[test]
    fn own_names() {
        for name in [
            "127.0.0.1:47989",
            "[::1]:47989",
            "localhost:47989",
            "Gamebox",
            "gamebox.local:1",
            "10.1.2.3",
        ] {
            assert!(is_own_name(name, "gamebox"), "{name}");
        }
        for name in [
            "evil.example",
            "evil.example:47989",
            "",
            "127.0.0.1.evil.example",
            "[zz]:1",
        ] {
            assert!(!is_own_name(name, "gamebox"), "{name}");
        }
    }

    #[test]
    fn the_page_form_passes() {
        let h = headers(&[
            ("host", "127.0.0.1:47989"),
            ("origin", "http://127.0.0.1:47989"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        assert_eq!(check_submission(&h, &form(&PAGE_TOKEN), "gamebox"), Ok(()));
        // Without Origin (older browsers, curl) the token alone suffices.
        let h = headers(&[
            ("host", "127.0.0.1:47989"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        assert_eq!(check_submission(&h, &form(&PAGE_TOKEN), "gamebox"), Ok(()));
    }

    #[test]
    fn cross_site_submissions_are_refused() {
        let ok_type = ("content-type", "application/x-www-form-urlencoded");
        let host = ("host", "127.0.0.1:47989");
        let cases = [
            (
                headers(&[
                    host,
                    ("origin", "http://evil.example"),
                    ("content-type", "text/plain"),
                ]),
                PAGE_TOKEN.clone(),
            ),
            (
                headers(&[host, ("origin", "http://evil.example"), ok_type]),
                PAGE_TOKEN.clone(),
            ),
            (
                headers(&[host, ("origin", "null"), ok_type]),
                PAGE_TOKEN.clone(),
            ),
            (
                headers(&[host, ("sec-fetch-site", "cross-site"), ok_type]),
                PAGE_TOKEN.clone(),
            ),
            (
                headers(&[host, ("content-type", "text/plain")]),
                PAGE_TOKEN.clone(),
            ),
            (headers(&[host, ok_type]), String::new()),
            (headers(&[host, ok_type]), "0".repeat(32)),
            (
                headers(&[
                    ("host", "evil.example:47989"),
                    ("origin", "http://evil.example:47989"),
                    ok_type,
                ]),
                PAGE_TOKEN.clone(),
            ),
        ];
        for (h, token) in cases {
            assert!(
                check_submission(&h, &form(&token), "gamebox").is_err(),
                "{h:?}"
            );
        }
    }
}
