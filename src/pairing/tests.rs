//! Pairing driven from a client written here against PROTOCOL.md §1.4, independent of the host
//! code except the symmetric primitives.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

use super::*;
use crate::crypto::{ecb_decrypt, ecb_encrypt, hash, pin_key, random, verify_signature};
use crate::state::StateDir;
use crate::state::identity::HostIdentity;
use crate::state::permissions::Role;

struct TestClient {
    cert_pem: String,
    cert_der: Vec<u8>,
    signer: RsaKeyPair,
}

fn test_client() -> TestClient {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "NVIDIA GameStream Client");
    let cert = params.self_signed(&key).unwrap();
    TestClient {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        signer: RsaKeyPair::from_pkcs8(&key.serialize_der()).unwrap(),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    host: HostIdentity,
    clients: RwLock<ClientStore>,
    manager: Arc<PairingManager>,
}

fn fixture(limits: PairingConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    Fixture {
        host: HostIdentity::load_or_create(&state).unwrap(),
        clients: RwLock::new(ClientStore::load(&state).unwrap()),
        manager: Arc::new(PairingManager::new(limits)),
        _dir: dir,
    }
}

fn limits() -> PairingConfig {
    PairingConfig {
        max_failed_attempts: 3,
        lockout_seconds: 60,
        pin_timeout_seconds: 5,
        default_role: Role::Admin,
    }
}

const ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const KEY: &str = "0123456789ABCDEF@127.0.0.1";

/// Phase 1 with the owner entering `host_pin`; returns the client's AES key for `client_pin`.
async fn phase_one(f: &Fixture, client: &TestClient, client_pin: &str, host_pin: &str) -> [u8; 16] {
    let salt = random::<16>();
    let mut events = f.manager.subscribe();
    let manager = f.manager.clone();
    let request = ServerCertRequest {
        key: KEY.into(),
        address: ADDRESS,
        device_name: "roth".into(),
        salt: salt.to_vec(),
        client_cert_pem: client.cert_pem.clone().into_bytes(),
    };
    let task = tokio::spawn(async move { manager.server_cert(request, |_, _| {}).await });
    assert!(matches!(
        events.recv().await.unwrap(),
        PairingEvent::Waiting { .. }
    ));
    f.manager.submit_pin(host_pin, None).unwrap();
    task.await.unwrap().unwrap();
    pin_key(&salt, client_pin)
}

/// Phases 2–4 as the client does them. Returns the client's own PIN verdict and the result.
fn phases_two_to_four(
    f: &Fixture,
    client: &TestClient,
    key: &[u8; 16],
) -> (bool, Result<PairedClient, PairError>) {
    let challenge = random::<16>();
    let response = f
        .manager
        .client_challenge(KEY, &ecb_encrypt(key, &challenge).unwrap(), &f.host)
        .unwrap();
    let response = ecb_decrypt(key, &response).unwrap();
    assert_eq!(response.len(), 48);
    let (server_hash, server_challenge) = response.split_at(32);

    let client_secret = random::<16>();
    let client_signature = crypto::certificate_signature(&client.cert_der).unwrap();
    let client_hash = hash(&[server_challenge, &client_signature, &client_secret]);
    let pairing_secret = f
        .manager
        .server_challenge_response(KEY, &ecb_encrypt(key, &client_hash).unwrap(), &f.host)
        .unwrap();
    let (server_secret, server_signature) = pairing_secret.split_at(16);
    assert!(
        verify_signature(&f.host.cert_der, server_secret, server_signature),
        "host signature"
    );
    let pin_ok = server_hash == hash(&[&challenge, &f.host.cert_signature, server_secret]);

    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut signature = vec![0; client.signer.public_modulus_len()];
    client
        .signer
        .sign(&RSA_PKCS1_SHA256, &rng, &client_secret, &mut signature)
        .unwrap();
    let result = f.manager.client_pairing_secret(
        KEY,
        &[client_secret.as_slice(), &signature].concat(),
        &f.clients,
    );
    (pin_ok, result)
}

#[tokio::test]
async fn right_pin_pairs_and_stores_the_client() {
    let f = fixture(limits());
    let client = test_client();
    let key = phase_one(&f, &client, "1234", "1234").await;
    let (pin_ok, result) = phases_two_to_four(&f, &client, &key);
    assert!(pin_ok);
    let paired = result.unwrap();
    assert!(f.clients.read().unwrap().is_paired(&paired.id));
    assert_eq!(paired.permissions.role, Role::Admin);
}

#[tokio::test]
async fn a_new_client_gets_the_configured_default_role() {
    let f = fixture(PairingConfig {
        default_role: Role::Spectator,
        ..limits()
    });
    let client = test_client();
    let key = phase_one(&f, &client, "1234", "1234").await;
    let paired = phases_two_to_four(&f, &client, &key).1.unwrap();
    assert_eq!(paired.permissions.role, Role::Spectator);
    assert_eq!(paired.permissions.apps, None, "every app");
}

#[tokio::test]
async fn wrong_pin_is_detected_by_both_sides_and_stores_nothing() {
    let f = fixture(limits());
    let client = test_client();
    let mut events = f.manager.subscribe();
    let key = phase_one(&f, &client, "1234", "4321").await;
    let (pin_ok, result) = phases_two_to_four(&f, &client, &key);
    assert!(!pin_ok, "the client must see the wrong PIN");
    assert!(matches!(result, Err(PairError::WrongPin)));
    assert!(f.clients.read().unwrap().list().is_empty());
    loop {
        if let PairingEvent::Failed { reason, .. } = events.recv().await.unwrap() {
            assert_eq!(reason, "wrong PIN");
            break;
        }
    }
}

#[tokio::test]
async fn client_abandoning_after_pin_counts_as_failure_and_lockout_follows() {
    let f = fixture(PairingConfig {
        max_failed_attempts: 2,
        ..limits()
    });
    let client = test_client();
    for _ in 0..2 {
        phase_one(&f, &client, "1234", "1111").await;
        assert!(f.manager.abandon(KEY));
    }
    let request = ServerCertRequest {
        key: KEY.into(),
        address: ADDRESS,
        device_name: "roth".into(),
        salt: vec![0; 16],
        client_cert_pem: client.cert_pem.clone().into_bytes(),
    };
    let result = f.manager.server_cert(request, |_, _| {}).await;
    assert!(matches!(result, Err(PairError::LockedOut(_))), "{result:?}");
}

#[tokio::test]
async fn phases_out_of_order_are_refused() {
    let f = fixture(limits());
    assert!(matches!(
        f.manager.client_challenge(KEY, &[0; 16], &f.host),
        Err(PairError::OutOfOrder)
    ));
    let client = test_client();
    let key = phase_one(&f, &client, "1234", "1234").await;
    let encrypted = ecb_encrypt(&key, &[0; 32]).unwrap();
    assert!(matches!(
        f.manager
            .server_challenge_response(KEY, &encrypted, &f.host),
        Err(PairError::OutOfOrder)
    ));
    // The failed step ended the attempt.
    assert!(matches!(
        f.manager.client_challenge(KEY, &[0; 16], &f.host),
        Err(PairError::OutOfOrder)
    ));
}

#[tokio::test]
async fn pin_timeout_and_bad_input() {
    let f = fixture(PairingConfig {
        pin_timeout_seconds: 1,
        ..limits()
    });
    let client = test_client();
    let request = |salt: Vec<u8>, pem: Vec<u8>| ServerCertRequest {
        key: KEY.into(),
        address: ADDRESS,
        device_name: "roth".into(),
        salt,
        client_cert_pem: pem,
    };
    let result = f
        .manager
        .server_cert(
            request(vec![0; 16], client.cert_pem.clone().into_bytes()),
            |_, _| {},
        )
        .await;
    assert!(
        matches!(result, Err(PairError::PinTimeout(1))),
        "{result:?}"
    );
    assert!(f.manager.waiting_secret().is_none());

    let short_salt = f
        .manager
        .server_cert(
            request(vec![0; 4], client.cert_pem.clone().into_bytes()),
            |_, _| {},
        )
        .await;
    assert!(matches!(short_salt, Err(PairError::Malformed(_))));
    let not_pem = f
        .manager
        .server_cert(request(vec![0; 16], b"garbage".to_vec()), |_, _| {})
        .await;
    assert!(matches!(not_pem, Err(PairError::Malformed(_))));
}

#[test]
fn pin_submission_errors() {
    let f = fixture(limits());
    assert_eq!(
        f.manager.submit_pin("12a4", None).unwrap_err(),
        PinError::BadFormat
    );
    assert_eq!(
        f.manager.submit_pin("12345", None).unwrap_err(),
        PinError::BadFormat
    );
    assert_eq!(
        f.manager.submit_pin("1234", None).unwrap_err(),
        PinError::NoClientWaiting
    );
}
