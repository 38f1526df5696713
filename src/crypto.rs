//! The host's cryptographic primitives, kept apart from `pairing` and `state` so neither depends
//! on the other for them: the pairing steps' PIN-derived AES key, AES-128-ECB without padding,
//! SHA-256 hashes over certificate signatures, RSA PKCS#1 v1.5 SHA-256 signatures
//! (PROTOCOL.md §1.4), secret comparison in constant time, and system randomness.

use aes::Aes128;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Why a pairing crypto step failed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CryptoError {
    /// AES-ECB input is not a whole number of 16-byte blocks.
    #[error("encrypted data is {0} bytes, not a multiple of 16")]
    NotBlockAligned(usize),
    /// The client certificate is not a parseable X.509 certificate.
    #[error("the certificate cannot be parsed: {0}")]
    BadCertificate(String),
}

/// K = the first 16 bytes of SHA-256(salt ‖ PIN).
pub fn pin_key(salt: &[u8], pin: &str) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(salt)
        .chain_update(pin.as_bytes())
        .finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(digest.get(..16).unwrap_or(&[0; 16]));
    key
}

/// AES-128-ECB encryption without padding.
pub fn ecb_encrypt(key: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    ecb(key, data, |cipher, block| cipher.encrypt_block(block))
}

/// AES-128-ECB decryption without padding.
pub fn ecb_decrypt(key: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    ecb(key, data, |cipher, block| cipher.decrypt_block(block))
}

fn ecb(
    key: &[u8; 16],
    data: &[u8],
    apply: impl Fn(&Aes128, &mut GenericArray<u8, aes::cipher::consts::U16>),
) -> Result<Vec<u8>, CryptoError> {
    if !data.len().is_multiple_of(16) {
        return Err(CryptoError::NotBlockAligned(data.len()));
    }
    let cipher = Aes128::new(GenericArray::from_slice(key));
    let mut out = data.to_vec();
    for block in out.chunks_exact_mut(16) {
        apply(&cipher, GenericArray::from_mut_slice(block));
    }
    Ok(out)
}

/// SHA-256 of the concatenation of `parts`.
pub fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The raw signatureValue of a DER certificate (256 bytes for RSA-2048).
pub fn certificate_signature(cert_der: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| CryptoError::BadCertificate(e.to_string()))?;
    Ok(cert.signature_value.data.to_vec())
}

/// Checks an RSA PKCS#1 v1.5 / SHA-256 `signature` of `message` against the certificate's key.
pub fn verify_signature(cert_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
        return false;
    };
    let key = &cert.public_key().subject_public_key.data;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)
        .verify(message, signature)
        .is_ok()
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// Random bytes from the system generator.
pub fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The system RNG does not fail on Linux once the kernel is seeded.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_key_is_sha256_prefix() {
        // SHA-256("") = e3b0c442 98fc1c14 9afbf4c8 996fb924 …
        let key = pin_key(b"", "");
        assert_eq!(key[..4], [0xe3, 0xb0, 0xc4, 0x42]);
        assert_ne!(pin_key(b"salt", "1234"), pin_key(b"salt", "1235"));
    }

    #[test]
    fn ecb_known_answer_and_round_trip() {
        // FIPS-197 appendix C.1 vector.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let plain: Vec<u8> = (0..16).map(|i| (i * 0x11) as u8).collect();
        let cipher = ecb_encrypt(&key, &plain).unwrap();
        assert_eq!(
            cipher,
            [
                0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
                0xc5, 0x5a
            ]
        );
        assert_eq!(ecb_decrypt(&key, &cipher).unwrap(), plain);
        assert_eq!(
            ecb_encrypt(&key, &[0; 15]),
            Err(CryptoError::NotBlockAligned(15))
        );
    }

    #[test]
    fn bad_certificate_is_an_error() {
        assert!(matches!(
            certificate_signature(b"nope"),
            Err(CryptoError::BadCertificate(_))
        ));
        assert!(!verify_signature(b"nope", b"m", b"s"));
    }
}
