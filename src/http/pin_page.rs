//! The PIN page on the HTTP port: a form where the host's owner types the PIN Moonlight shows.
//! A submission is accepted from this machine (loopback), or from elsewhere only with the
//! one-time secret of the waiting client's log line (in the link's `#fragment`, so it never
//! appears in request logs), so nobody on the LAN can pair themselves.

use std::time::Duration;

use bytes::Bytes;
use hati_protocol::query::Query;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::{RequestContext, response};
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
<button type="submit">Pair</button></form></body></html>
"#;

/// The form.
pub fn page() -> Response<Full<Bytes>> {
    response(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from_static(PAGE.as_bytes()),
    )
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
pub async fn submit(host: &Host, context: &RequestContext, body: &[u8]) -> Response<Full<Bytes>> {
    let form = match Query::parse(&String::from_utf8_lossy(body)) {
        Ok(form) => form,
        Err(error) => return result(StatusCode::BAD_REQUEST, &error.to_string()),
    };
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
