//! The node link's security: a join token and mutual TLS.
//!
//! A token is `hati1.<secret>.<gateway certificate SHA-256>`. The node pins the gateway's
//! certificate by the hash (so a machine posing as the gateway learns nothing), presents its
//! own certificate (its identity, kept in its state directory), and proves it may join by the
//! secret in its hello, which the gateway compares in constant time. The secret is the
//! gateway's `<state>/join-token` (made on first start) or `HATI_JOIN_TOKEN`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};

use crate::state::clients::fingerprint;
use crate::state::identity::{HostIdentity, pem_to_der};
use crate::state::{StateDir, StateError, read_optional, write_atomic};

/// ALPN of the node link, so nothing else is mistaken for it.
pub const ALPN: &[u8] = b"hati-node/1";
/// The token's format tag.
const TOKEN_TAG: &str = "hati1";
/// The environment variable that gives the whole token (node) or its secret (gateway).
pub const TOKEN_ENV: &str = "HATI_JOIN_TOKEN";

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// What a node proves it knows (32 hex digits or more).
    pub secret: String,
    /// The gateway certificate's SHA-256, lower-case hex.
    pub gateway_fingerprint: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("gateway_fingerprint", &self.gateway_fingerprint)
            .finish_non_exhaustive()
    }
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not `hati1.<secret>.<hash>`.
    #[error(
        "a join token looks like hati1.<32+ hex digits>.<64 hex digits> (print it with `hati join-token` on the gateway)"
    )]
    Malformed,
}

impl std::str::FromStr for JoinToken {
    type Err = TokenError;

    fn from_str(text: &str) -> Result<Self, TokenError> {
        let mut parts = text.trim().split('.');
        let (Some(TOKEN_TAG), Some(secret), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        if secret.len() < 32 || !hex(secret) || hash.len() != 64 || !hex(hash) {
            return Err(TokenError::Malformed);
        }
        Ok(Self {
            secret: secret.to_ascii_lowercase(),
            gateway_fingerprint: hash.to_ascii_lowercase(),
        })
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{TOKEN_TAG}.{}.{}",
            self.secret, self.gateway_fingerprint
        )
    }
}

impl JoinToken {
    /// The gateway's token: its secret from `HATI_JOIN_TOKEN` (a whole token or only the
    /// secret) or `<state>/join-token`, made on first use; its hash from the identity.
    pub fn for_gateway(state: &StateDir, identity: &HostIdentity) -> Result<Self, StateError> {
        let gateway_fingerprint = fingerprint(&identity.cert_der);
        if let Ok(given) = std::env::var(TOKEN_ENV) {
            let secret = match given.parse::<JoinToken>() {
                Ok(token) => token.secret,
                Err(_) => given.trim().to_ascii_lowercase(),
            };
            if secret.len() >= 32 && secret.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(Self {
                    secret,
                    gateway_fingerprint,
                });
            }
            tracing::warn!(
                "{TOKEN_ENV} is neither a join token nor a secret of 32+ hex digits; using <state>/join-token"
            );
        }
        let path = state.file("join-token");
        if let Some(text) = read_optional(&path)? {
            let secret = text.trim().to_ascii_lowercase();
            if secret.len() >= 32 && secret.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(Self {
                    secret,
                    gateway_fingerprint,
                });
            }
        }
        let secret =
            hati_protocol::query::encode_hex(&crate::crypto::random::<16>()).to_ascii_lowercase();
        write_atomic(&path, format!("{secret}\n").as_bytes(), 0o600)?;
        Ok(Self {
            secret,
            gateway_fingerprint,
        })
    }

    /// Whether `given` is this token's secret (constant time).
    pub fn admits(&self, given: &str) -> bool {
        crate::crypto::constant_time_eq(given.as_bytes(), self.secret.as_bytes())
    }
}

/// The gateway's TLS configuration for the node link: its identity, and any client
/// certificate checked for its handshake signature (a node's certificate is self-signed; the
/// token admits it).
pub fn gateway_tls(identity: &HostIdentity) -> Result<rustls::ServerConfig, Error> {
    let mut config = crate::tls::server_config(identity)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// The node's TLS configuration: its own certificate, and the gateway's pinned by `token`.
pub fn node_tls(identity: &HostIdentity, token: &JoinToken) -> Result<rustls::ClientConfig, Error> {
    let key_der = pem_to_der(&identity.key_pem, "PRIVATE KEY")
        .ok_or_else(|| Error::General("node key is not PKCS#8 PEM".into()))?;
    node_tls_with_cert(identity.cert_der.clone(), key_der, token)
}

/// [`node_tls`] with a given certificate and its PKCS#8 key, both DER (any key type the
/// gateway verifies: RSA, ECDSA P-256/P-384, Ed25519). Simulated nodes use it to join with
/// identities of their own.
pub fn node_tls_with_cert(
    cert_der: Vec<u8>,
    key_pkcs8_der: Vec<u8>,
    token: &JoinToken,
) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedGateway {
            fingerprint: token.gateway_fingerprint.clone(),
        }))
        .with_client_auth_cert(
            vec![CertificateDer::from(cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pkcs8_der)),
        )?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// The server name a node sends (the certificate is pinned, not checked against names).
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("hati-gateway")
        .unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()))
}

/// Accepts exactly the certificate whose SHA-256 the token names.
#[derive(Debug)]
struct PinnedGateway {
    fingerprint: String,
}

impl ServerCertVerifier for PinnedGateway {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if crate::crypto::constant_time_eq(
            fingerprint(end_entity).as_bytes(),
            self.fingerprint.as_bytes(),
        ) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::General(
                "the gateway's certificate is not the one the join token names".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        crate::tls::verify_handshake_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        crate::tls::verify_handshake_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crate::tls::SCHEMES.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_print() {
        let text = format!("hati1.{}.{}", "a".repeat(32), "B".repeat(64));
        let token: JoinToken = text.parse().unwrap();
        assert_eq!(token.gateway_fingerprint, "b".repeat(64));
        assert_eq!(token.to_string(), text.to_ascii_lowercase());
        for bad in [
            "",
            "hati1",
            "hati2.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbb",
            &format!("hati1.{}.{}", "a".repeat(31), "b".repeat(64)),
            &format!("hati1.{}.{}", "a".repeat(32), "b".repeat(63)),
            &format!("hati1.{}.{}.x", "a".repeat(32), "b".repeat(64)),
            &format!("hati1.{}.{}", "g".repeat(32), "b".repeat(64)),
        ] {
            assert!(bad.parse::<JoinToken>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_the_secret_admits() {
        let token: JoinToken = format!("hati1.{}.{}", "a".repeat(32), "b".repeat(64))
            .parse()
            .unwrap();
        assert!(token.admits(&"a".repeat(32)));
        assert!(!token.admits(&"a".repeat(31)));
        assert!(!token.admits(""));
        assert!(
            !format!("{token:?}").contains("aaaa"),
            "the secret never reaches a log"
        );
    }
}
