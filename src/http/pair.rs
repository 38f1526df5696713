//! `GET /pair` and `GET /unpair` (PROTOCOL.md §1.4): request parsing and XML replies around the
//! pairing state machine in `crate::pairing`.

use std::ops::RangeInclusive;

use hati_protocol::query::{Query, encode_hex};
use hati_protocol::xml::XmlReply;

use super::{RequestContext, Transport};
use crate::host::Host;
use crate::pairing::{PairError, ServerCertRequest};
use crate::state::clients::short_id;

/// Dispatches one `/pair` phase.
pub async fn pair(host: &Host, context: &RequestContext, query: &Query) -> XmlReply {
    let key = context.pairing_key(query);
    let result = if query.get("phrase") == Some("getservercert") {
        server_cert(host, context, query, key).await
    } else if query.get("phrase") == Some("pairchallenge") {
        // The router let this HTTPS request through, so its certificate is paired.
        match context.transport {
            Transport::Https { .. } => Ok(XmlReply::ok().element("paired", 1)),
            Transport::Http => Err(PairError::Malformed(
                "pairchallenge must come over HTTPS".into(),
            )),
        }
    } else if query.get("clientchallenge").is_some() {
        hex_sized(query, "clientchallenge", CLIENT_CHALLENGE_LEN)
            .and_then(|c| host.pairing.client_challenge(&key, &c, &host.identity))
            .map(|response| {
                XmlReply::ok()
                    .element("paired", 1)
                    .element("challengeresponse", encode_hex(&response))
            })
    } else if query.get("serverchallengeresp").is_some() {
        hex_sized(query, "serverchallengeresp", SERVER_CHALLENGE_RESPONSE_LEN)
            .and_then(|r| {
                host.pairing
                    .server_challenge_response(&key, &r, &host.identity)
            })
            .map(|secret| {
                XmlReply::ok()
                    .element("paired", 1)
                    .element("pairingsecret", encode_hex(&secret))
            })
    } else if query.get("clientpairingsecret").is_some() {
        hex_sized(query, "clientpairingsecret", CLIENT_PAIRING_SECRET_LEN)
            .and_then(|s| host.pairing.client_pairing_secret(&key, &s, &host.clients))
            .map(|client| {
                tracing::info!(client = %client.name, id = %short_id(&client.id), "client paired");
                XmlReply::ok().element("paired", 1)
            })
    } else {
        Err(PairError::Malformed("unknown pairing phase".into()))
    };
    match result {
        Ok(reply) => reply,
        Err(PairError::AlreadyPairing) => {
            tracing::warn!(peer = %context.peer, "pairing refused: another client is already waiting for its PIN");
            // Sunshine's signal for "already pairing": an empty certificate.
            XmlReply::ok().element("paired", 1).element("plaincert", "")
        }
        Err(error) => {
            tracing::warn!(peer = %context.peer, %error, "pairing failed");
            XmlReply::error(400, error.to_string()).element("paired", 0)
        }
    }
}

async fn server_cert(
    host: &Host,
    context: &RequestContext,
    query: &Query,
    key: String,
) -> Result<XmlReply, PairError> {
    let request = ServerCertRequest {
        key,
        address: context.peer.ip(),
        device_name: query.get("devicename").unwrap_or("").to_owned(),
        salt: hex(query, "salt")?,
        client_cert_pem: hex(query, "clientcert")?,
    };
    let device = request.device_name.clone();
    let peer = context.peer.ip();
    // SocketAddr brackets an IPv6 address; the local address is canonical (IPv4 stays IPv4).
    let page = format!(
        "http://{}/pin",
        std::net::SocketAddr::new(context.local.ip(), host.ports.http)
    );
    host.pairing
        .server_cert(request, |attempt, secret| {
            tracing::info!(
                attempt,
                client = %peer,
                device = %device,
                "a client is waiting to pair: enter the PIN Moonlight shows with `{}`, or open {page}#{secret}",
                host.pair_command,
            );
        })
        .await?;
    Ok(XmlReply::ok()
        .element("paired", 1)
        .element("plaincert", encode_hex(host.identity.cert_pem.as_bytes())))
}

/// `/unpair`: over HTTPS a paired client removes itself; over HTTP a client abandons the
/// pairing attempt it has in progress (moonlight does this after a wrong PIN), and any other
/// plain-HTTP unpair gets an error status, because it carries no certificate to name a client.
pub fn unpair(host: &Host, context: &RequestContext, query: &Query) -> XmlReply {
    if let Some(id) = context.client_fingerprint() {
        return match host.unpair(&id) {
            Ok(Some(client)) => {
                tracing::info!(client = %client.name, id = %short_id(&client.id), "client unpaired itself");
                XmlReply::ok()
            }
            Ok(None) => XmlReply::ok(),
            Err(error) => {
                tracing::error!(%error, "cannot store the client list");
                XmlReply::error(500, error.to_string())
            }
        };
    }
    if host.pairing.abandon(&context.pairing_key(query)) {
        tracing::warn!(peer = %context.peer, "the client abandoned pairing after the PIN was entered: wrong PIN?");
        return XmlReply::ok();
    }
    // Without a certificate the host cannot tell who asks, so it removes nobody; saying "OK"
    // would make the client tell its user it is unpaired while the host still trusts it.
    tracing::warn!(peer = %context.peer, "unpair request over plain HTTP refused: it names no certificate");
    XmlReply::error(
        403,
        "the host cannot tell which client sent this unpair request (no certificate); \
         unpair on the host with `hati unpair`",
    )
}

/// `E(c)`: one AES block.
const CLIENT_CHALLENGE_LEN: RangeInclusive<usize> = 16..=16;
/// `E(pad32(hash))`: two AES blocks.
const SERVER_CHALLENGE_RESPONSE_LEN: RangeInclusive<usize> = 32..=32;
/// `clientsecret(16) ‖ RSA signature` (1024- to 4096-bit client keys).
const CLIENT_PAIRING_SECRET_LEN: RangeInclusive<usize> = 16 + 128..=16 + 512;

/// A hex parameter whose decoded length must lie in `allowed`.
fn hex_sized(
    query: &Query,
    name: &'static str,
    allowed: RangeInclusive<usize>,
) -> Result<Vec<u8>, PairError> {
    let bytes = hex(query, name)?;
    if allowed.contains(&bytes.len()) {
        Ok(bytes)
    } else if allowed.start() == allowed.end() {
        Err(PairError::Malformed(format!(
            "{name} is {} bytes; it must be {}",
            bytes.len(),
            allowed.start()
        )))
    } else {
        Err(PairError::Malformed(format!(
            "{name} is {} bytes; it must be {} to {}",
            bytes.len(),
            allowed.start(),
            allowed.end()
        )))
    }
}

fn hex(query: &Query, name: &'static str) -> Result<Vec<u8>, PairError> {
    query
        .hex(name)
        .map_err(|e| PairError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, bytes: usize) -> Query {
        Query::parse(&format!("{name}={}", "AB".repeat(bytes))).unwrap()
    }

    #[test]
    fn challenge_lengths_are_checked() {
        assert!(
            hex_sized(
                &query("clientchallenge", 16),
                "clientchallenge",
                CLIENT_CHALLENGE_LEN
            )
            .is_ok()
        );
        for bytes in [0, 15, 17, 30 * 1024] {
            let error = hex_sized(
                &query("clientchallenge", bytes),
                "clientchallenge",
                CLIENT_CHALLENGE_LEN,
            )
            .unwrap_err()
            .to_string();
            assert!(
                error.contains(&format!("clientchallenge is {bytes} bytes; it must be 16")),
                "{error}"
            );
        }
        assert!(
            hex_sized(
                &query("serverchallengeresp", 32),
                "serverchallengeresp",
                SERVER_CHALLENGE_RESPONSE_LEN
            )
            .is_ok()
        );
        assert!(
            hex_sized(
                &query("serverchallengeresp", 48),
                "serverchallengeresp",
                SERVER_CHALLENGE_RESPONSE_LEN
            )
            .is_err()
        );
        assert!(
            hex_sized(
                &query("clientpairingsecret", 16 + 256),
                "clientpairingsecret",
                CLIENT_PAIRING_SECRET_LEN
            )
            .is_ok()
        );
        let error = hex_sized(
            &query("clientpairingsecret", 16),
            "clientpairingsecret",
            CLIENT_PAIRING_SECRET_LEN,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("must be 144 to 528"), "{error}");
    }
}
