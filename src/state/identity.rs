//! The host's identity: an RSA-2048 self-signed certificate and key (PROTOCOL.md §1.1) and a
//! stable `uniqueid`, generated on first start and stored in `identity.json` (mode 0600).

use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::{Deserialize, Serialize};

use super::{StateDir, StateError, read_optional, write_atomic};

const FILE_NAME: &str = "identity.json";

/// The host's certificate, key and unique ID.
pub struct HostIdentity {
    /// Stable host ID reported as `uniqueid`.
    pub unique_id: String,
    /// The certificate in PEM form, as sent in `<plaincert>`.
    pub cert_pem: String,
    /// The certificate in DER form.
    pub cert_der: Vec<u8>,
    /// The private key in PKCS#8 PEM form.
    pub key_pem: String,
    /// The raw signature of the certificate, used in the pairing hashes.
    pub cert_signature: Vec<u8>,
    signer: RsaKeyPair,
}

impl std::fmt::Debug for HostIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostIdentity")
            .field("unique_id", &self.unique_id)
            .finish_non_exhaustive()
    }
}

/// What is wrong with a stored identity.
#[derive(Debug, thiserror::Error)]
enum IdentityDefect {
    #[error("cert_pem is not a PEM certificate")]
    CertificateNotPem,
    #[error("key_pem is not a PKCS#8 PEM key")]
    KeyNotPkcs8Pem,
    #[error("key_pem: {0}")]
    Key(String),
    #[error("cert_pem: {0}")]
    Certificate(String),
    #[error("unique_id is empty")]
    EmptyUniqueId,
}

#[derive(Serialize, Deserialize)]
struct StoredIdentity {
    unique_id: String,
    cert_pem: String,
    key_pem: String,
}

impl HostIdentity {
    /// Loads the identity from the state dir, generating and storing one on first start.
    pub fn load_or_create(state: &StateDir) -> Result<Self, StateError> {
        let path = state.file(FILE_NAME);
        if let Some(text) = read_optional(&path)? {
            let corrupt = |message: String| StateError::Corrupt {
                path: path.clone(),
                message,
            };
            let stored: StoredIdentity =
                serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
            return Self::from_stored(stored).map_err(|defect| corrupt(defect.to_string()));
        }
        let stored = generate()?;
        let json = serde_json::to_string_pretty(&stored)
            .map_err(|e| StateError::Certificate(e.to_string()))?;
        write_atomic(&path, json.as_bytes(), 0o600)?;
        tracing::info!(path = %path.display(), "generated a new host identity");
        Self::from_stored(stored).map_err(|defect| StateError::Certificate(defect.to_string()))
    }

    fn from_stored(stored: StoredIdentity) -> Result<Self, IdentityDefect> {
        let cert_der =
            pem_to_der(&stored.cert_pem, "CERTIFICATE").ok_or(IdentityDefect::CertificateNotPem)?;
        let key_der =
            pem_to_der(&stored.key_pem, "PRIVATE KEY").ok_or(IdentityDefect::KeyNotPkcs8Pem)?;
        let signer =
            RsaKeyPair::from_pkcs8(&key_der).map_err(|e| IdentityDefect::Key(e.to_string()))?;
        let cert_signature = crate::crypto::certificate_signature(&cert_der)
            .map_err(|e| IdentityDefect::Certificate(e.to_string()))?;
        if stored.unique_id.is_empty() {
            return Err(IdentityDefect::EmptyUniqueId);
        }
        Ok(Self {
            unique_id: stored.unique_id,
            cert_pem: stored.cert_pem,
            cert_der,
            key_pem: stored.key_pem,
            cert_signature,
            signer,
        })
    }

    /// Signs `message` with RSA PKCS#1 v1.5 / SHA-256 using the host key.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.signer.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        // Signing with a valid RSA key into a buffer of the modulus length cannot fail.
        if self
            .signer
            .sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
            .is_err()
        {
            signature.clear();
        }
        signature
    }
}

fn generate() -> Result<StoredIdentity, StateError> {
    let fail = |e: rcgen::Error| StateError::Certificate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Hati Gamestream Host");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(20 * 365);
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial)
        .map_err(|_| StateError::Certificate("no randomness".into()))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok(StoredIdentity {
        unique_id: new_unique_id()?,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn new_unique_id() -> Result<String, StateError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| StateError::Certificate("no randomness".into()))?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hati_protocol::query::encode_hex(&bytes);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// Decodes the first PEM block labelled `label`.
pub fn pem_to_der(text: &str, label: &str) -> Option<Vec<u8>> {
    pem::parse_many(text)
        .ok()?
        .into_iter()
        .find(|block| block.tag() == label)
        .map(pem::Pem::into_contents)
}

/// Encodes DER as a PEM block labelled `label`.
pub fn der_to_pem(der: &[u8], label: &str) -> String {
    pem::encode(&pem::Pem::new(label, der.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_generated_once_and_reloaded_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let first = HostIdentity::load_or_create(&state).unwrap();
        let second = HostIdentity::load_or_create(&state).unwrap();
        assert_eq!(first.cert_pem, second.cert_pem);
        assert_eq!(first.unique_id, second.unique_id);
        assert_eq!(first.cert_signature.len(), 256, "RSA-2048 signature");
        assert_eq!(first.sign(b"x").len(), 256);
    }

    #[test]
    fn corrupt_identity_is_reported_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        std::fs::write(state.file(FILE_NAME), "{not json").unwrap();
        let error = HostIdentity::load_or_create(&state)
            .unwrap_err()
            .to_string();
        assert!(error.contains("identity.json"), "{error}");
        assert!(error.contains("corrupt"), "{error}");
        assert_eq!(
            std::fs::read_to_string(state.file(FILE_NAME)).unwrap(),
            "{not json"
        );
    }

    #[test]
    fn pem_round_trip() {
        let der: Vec<u8> = (0..=255).collect();
        assert_eq!(
            pem_to_der(&der_to_pem(&der, "CERTIFICATE"), "CERTIFICATE").unwrap(),
            der
        );
    }
}
