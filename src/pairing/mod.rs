//! PIN pairing (PROTOCOL.md §1.4): one state machine per pairing client, the long poll that
//! waits for the host's owner to enter the PIN, and the lockout after repeated wrong PINs.
//!
//! The PIN is entered out of band (`hati pair PIN` through the admin socket, or the PIN page),
//! so nobody on the network can pair without the owner. A wrong PIN is noticed by the client
//! after phase 3 (it then calls `/unpair`) or by the host in phase 4; either way nothing is
//! stored and the attempt counts towards the lockout.

use crate::crypto;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{broadcast, oneshot};

use crate::config::PairingConfig;
use crate::state::StateError;
use crate::state::clients::{ClientStore, PairedClient};
use crate::state::identity::{HostIdentity, pem_to_der};

/// How long a client may take between pairing phases once the PIN is known.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a pairing request was refused.
#[derive(Debug, Error)]
pub enum PairError {
    /// A request parameter is missing or malformed.
    #[error("{0}")]
    Malformed(String),
    /// Another client is already waiting for its PIN.
    #[error("another client is already pairing")]
    AlreadyPairing,
    /// The client sent a phase out of order (or after its attempt was dropped).
    #[error("pairing phase out of order; start pairing again")]
    OutOfOrder,
    /// Too many wrong PINs from this address.
    #[error("too many failed pairing attempts from this address; try again in {0} s")]
    LockedOut(u64),
    /// Nobody entered a PIN in time.
    #[error("no PIN was entered on the host within {0} s")]
    PinTimeout(u64),
    /// A newer attempt from the same client replaced this one.
    #[error("this pairing attempt was replaced by a newer one")]
    Superseded,
    /// The PIN did not match the one the client shows.
    #[error("wrong PIN")]
    WrongPin,
    /// The client gave up after the PIN was entered: Moonlight does this when its own check of
    /// the PIN fails.
    #[error(
        "the client abandoned pairing after the PIN was entered: the PIN was most likely wrong"
    )]
    Abandoned,
    /// The client's pairing secret is not signed by its certificate.
    #[error("the client's pairing signature is invalid")]
    BadSignature,
    /// Storing the paired client failed.
    #[error("cannot store the paired client: {0}")]
    Store(#[from] StateError),
}

/// Why a PIN submitted by the host's owner was not used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PinError {
    /// The PIN is not 4 digits.
    #[error("a PIN is 4 digits, as Moonlight shows it")]
    BadFormat,
    /// No client is waiting for a PIN.
    #[error("no client is waiting to pair; start pairing in Moonlight first")]
    NoClientWaiting,
    /// The PIN page's secret is wrong.
    #[error("this PIN page link is stale; use the link from the newest log line")]
    BadSecret,
}

/// A step in a pairing attempt's life, published to subscribers (admin API, logs, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingEvent {
    /// A client asked to pair and waits for the PIN.
    Waiting {
        /// The attempt's ID.
        attempt: u64,
        /// The client's address.
        address: IpAddr,
        /// The device name it sent.
        device_name: String,
    },
    /// The attempt succeeded and the client is stored.
    Paired {
        /// The attempt's ID.
        attempt: u64,
        /// The stored client.
        client: PairedClient,
    },
    /// The attempt failed; nothing was stored.
    Failed {
        /// The attempt's ID.
        attempt: u64,
        /// Why, for people.
        reason: String,
    },
}

/// The pairing state of the whole host.
pub struct PairingManager {
    limits: PairingConfig,
    inner: Mutex<Inner>,
    events: broadcast::Sender<PairingEvent>,
}

#[derive(Default)]
struct Inner {
    next_attempt: u64,
    waiting: Option<WaitingClient>,
    sessions: HashMap<String, Attempt>,
    failures: HashMap<IpAddr, Failures>,
}

struct WaitingClient {
    attempt: u64,
    key: String,
    secret: String,
    pin: oneshot::Sender<String>,
}

struct Attempt {
    id: u64,
    address: IpAddr,
    device_name: String,
    client_cert_der: Vec<u8>,
    client_cert_pem: String,
    client_cert_signature: Vec<u8>,
    key: [u8; 16],
    phase: Phase,
    last_step: Instant,
}

enum Phase {
    ClientChallenge,
    ServerChallengeResponse {
        server_secret: [u8; 16],
        server_challenge: [u8; 16],
    },
    ClientPairingSecret {
        server_challenge: [u8; 16],
        client_hash: Vec<u8>,
    },
}

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// What phase 1 needs from the request.
pub struct ServerCertRequest {
    /// `uniqueid@address`: the key of this client's pairing state.
    pub key: String,
    /// The client's address.
    pub address: IpAddr,
    /// `devicename`.
    pub device_name: String,
    /// `salt`, decoded.
    pub salt: Vec<u8>,
    /// `clientcert`, decoded from hex: the client's PEM certificate.
    pub client_cert_pem: Vec<u8>,
}

/// What the play page sends to pair a browser.
pub struct BrowserPairRequest {
    /// The browser's address.
    pub address: IpAddr,
    /// The name the player gave it.
    pub device_name: String,
    /// The PIN the page shows.
    pub pin: String,
}

impl PairingManager {
    /// A manager enforcing the configured limits.
    pub fn new(limits: PairingConfig) -> Self {
        let (events, _) = broadcast::channel(64);
        Self {
            limits,
            inner: Mutex::new(Inner::default()),
            events,
        }
    }

    /// Subscribes to pairing events.
    pub fn subscribe(&self) -> broadcast::Receiver<PairingEvent> {
        self.events.subscribe()
    }

    /// The secret of the PIN page link for the client now waiting, if any.
    pub fn waiting_secret(&self) -> Option<String> {
        self.lock().waiting.as_ref().map(|w| w.secret.clone())
    }

    /// Phase 1 (`getservercert`): waits for the owner's PIN, then returns when phase 2 may
    /// start. `on_waiting` is called once the client is registered as waiting (to log how to
    /// enter the PIN).
    pub async fn server_cert(
        &self,
        request: ServerCertRequest,
        on_waiting: impl FnOnce(u64, &str),
    ) -> Result<(), PairError> {
        if request.salt.len() < 16 {
            return Err(PairError::Malformed(
                "salt must be at least 16 bytes".into(),
            ));
        }
        let pem_text = String::from_utf8(request.client_cert_pem)
            .map_err(|_| PairError::Malformed("clientcert is not PEM text".into()))?;
        let cert_der = pem_to_der(&pem_text, "CERTIFICATE")
            .ok_or_else(|| PairError::Malformed("clientcert is not a PEM certificate".into()))?;
        let signature = crypto::certificate_signature(&cert_der)
            .map_err(|e| PairError::Malformed(format!("clientcert: {e}")))?;

        let (attempt, pin) = self
            .wait_for_pin(
                request.address,
                &request.key,
                &request.device_name,
                on_waiting,
            )
            .await?;
        let key = crypto::pin_key(&request.salt, &pin);
        self.lock().sessions.insert(
            request.key,
            Attempt {
                id: attempt,
                address: request.address,
                device_name: request.device_name,
                client_cert_der: cert_der,
                client_cert_pem: pem_text,
                client_cert_signature: signature,
                key,
                phase: Phase::ClientChallenge,
                last_step: Instant::now(),
            },
        );
        Ok(())
    }

    /// A browser's pairing (the play page): it shows `request.pin` and waits, in the same
    /// single waiting slot as Moonlight clients, for the owner to enter a PIN (`hati pair`, the
    /// dashboard, the PIN page). The PINs must match, as Moonlight's check does; then the
    /// browser is stored with a new random credential, returned once here.
    pub async fn pair_browser(
        &self,
        request: BrowserPairRequest,
        clients: &RwLock<ClientStore>,
        on_waiting: impl FnOnce(u64, &str),
    ) -> Result<(PairedClient, String), PairError> {
        if request.pin.len() != 4 || !request.pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PairError::Malformed("the PIN is not 4 digits".into()));
        }
        let key = format!("browser@{}", request.address);
        let (attempt, pin) = self
            .wait_for_pin(request.address, &key, &request.device_name, on_waiting)
            .await?;
        if !crypto::constant_time_eq(pin.as_bytes(), request.pin.as_bytes()) {
            return Err(self.fail_from(request.address, attempt, PairError::WrongPin));
        }
        let token = hati_protocol::query::encode_hex(&crypto::random::<32>()).to_ascii_lowercase();
        let stored = clients
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add_browser(&token, &request.device_name, self.limits.default_role);
        match stored {
            Ok(client) => {
                self.lock().failures.remove(&request.address);
                let _ = self.events.send(PairingEvent::Paired {
                    attempt,
                    client: client.clone(),
                });
                Ok((client, token))
            }
            Err(error) => Err(self.fail(attempt, PairError::Store(error))),
        }
    }

    /// Registers the client as the one waiting, announces it, and waits for the owner's PIN
    /// (or the timeout). Returns the attempt ID and the PIN entered.
    async fn wait_for_pin(
        &self,
        address: IpAddr,
        key: &str,
        device_name: &str,
        on_waiting: impl FnOnce(u64, &str),
    ) -> Result<(u64, String), PairError> {
        let (pin_tx, pin_rx) = oneshot::channel();
        let (attempt, secret) = self.register_waiting(address, key, pin_tx)?;
        let _ = self.events.send(PairingEvent::Waiting {
            attempt,
            address,
            device_name: device_name.to_owned(),
        });
        on_waiting(attempt, &secret);
        // Whatever happens to this request (answer, timeout, client gone), stop waiting.
        let _guard = ClearWaiting {
            manager: self,
            attempt,
        };
        let timeout = Duration::from_secs(self.limits.pin_timeout_seconds);
        match tokio::time::timeout(timeout, pin_rx).await {
            Ok(Ok(pin)) => Ok((attempt, pin)),
            Ok(Err(_)) => Err(self.fail(attempt, PairError::Superseded)),
            Err(_) => Err(self.fail(attempt, PairError::PinTimeout(timeout.as_secs()))),
        }
    }

    /// Makes the client with pairing state `key` the one waiting for the owner's PIN (unless
    /// its address is locked out or another client waits); returns the attempt ID and the PIN
    /// page secret.
    fn register_waiting(
        &self,
        address: IpAddr,
        key: &str,
        pin: oneshot::Sender<String>,
    ) -> Result<(u64, String), PairError> {
        let mut inner = self.lock();
        if let Some(seconds) = inner.locked_out(address) {
            return Err(PairError::LockedOut(seconds));
        }
        inner
            .sessions
            .retain(|_, a| a.last_step.elapsed() < PHASE_TIMEOUT);
        if inner
            .waiting
            .as_ref()
            .is_some_and(|w| w.key != key && !w.pin.is_closed())
        {
            return Err(PairError::AlreadyPairing);
        }
        inner.sessions.remove(key);
        inner.next_attempt += 1;
        let attempt = inner.next_attempt;
        let secret = hati_protocol::query::encode_hex(&crypto::random::<16>()).to_ascii_lowercase();
        inner.waiting = Some(WaitingClient {
            attempt,
            key: key.to_owned(),
            secret: secret.clone(),
            pin,
        });
        Ok((attempt, secret))
    }

    /// Phase 2 (`clientchallenge`): returns `E(H(c ‖ sig(hostcert) ‖ serversecret) ‖ serverchallenge)`.
    pub fn client_challenge(
        &self,
        key: &str,
        encrypted: &[u8],
        host: &HostIdentity,
    ) -> Result<Vec<u8>, PairError> {
        self.step(key, |attempt| {
            let Phase::ClientChallenge = attempt.phase else {
                return Err(PairError::OutOfOrder);
            };
            let challenge = crypto::ecb_decrypt(&attempt.key, encrypted)
                .map_err(|e| PairError::Malformed(format!("clientchallenge: {e}")))?;
            let server_secret = crypto::random::<16>();
            let server_challenge = crypto::random::<16>();
            let hash = crypto::hash(&[&challenge, &host.cert_signature, &server_secret]);
            let plain = [hash.as_slice(), &server_challenge].concat();
            let response = crypto::ecb_encrypt(&attempt.key, &plain)
                .map_err(|e| PairError::Malformed(e.to_string()))?;
            attempt.phase = Phase::ServerChallengeResponse {
                server_secret,
                server_challenge,
            };
            Ok(response)
        })
    }

    /// Phase 3 (`serverchallengeresp`): stores the client's hash, returns
    /// `serversecret ‖ sign_host(serversecret)`.
    pub fn server_challenge_response(
        &self,
        key: &str,
        encrypted: &[u8],
        host: &HostIdentity,
    ) -> Result<Vec<u8>, PairError> {
        self.step(key, |attempt| {
            let Phase::ServerChallengeResponse {
                server_secret,
                server_challenge,
            } = attempt.phase
            else {
                return Err(PairError::OutOfOrder);
            };
            let client_hash = crypto::ecb_decrypt(&attempt.key, encrypted)
                .map_err(|e| PairError::Malformed(format!("serverchallengeresp: {e}")))?;
            attempt.phase = Phase::ClientPairingSecret {
                server_challenge,
                client_hash,
            };
            Ok([server_secret.as_slice(), &host.sign(&server_secret)].concat())
        })
    }

    /// Phase 4 (`clientpairingsecret`): checks the client's hash and signature; on success the
    /// client is stored as paired.
    pub fn client_pairing_secret(
        &self,
        key: &str,
        secret_and_signature: &[u8],
        clients: &RwLock<ClientStore>,
    ) -> Result<PairedClient, PairError> {
        let attempt = self
            .lock()
            .sessions
            .remove(key)
            .ok_or(PairError::OutOfOrder)?;
        let Phase::ClientPairingSecret {
            server_challenge,
            client_hash,
        } = &attempt.phase
        else {
            return Err(PairError::OutOfOrder);
        };
        let Some((client_secret, signature)) = secret_and_signature.split_at_checked(16) else {
            return Err(self.fail_attempt(
                &attempt,
                PairError::Malformed("clientpairingsecret is too short".into()),
            ));
        };
        let expected = crypto::hash(&[
            server_challenge,
            &attempt.client_cert_signature,
            client_secret,
        ]);
        // A SHA-256 hash fills the 32 bytes exactly; SHA-1 clients pad with zeros.
        if client_hash.get(..32) != Some(expected.as_slice()) {
            return Err(self.fail_attempt(&attempt, PairError::WrongPin));
        }
        if !crypto::verify_signature(&attempt.client_cert_der, client_secret, signature) {
            return Err(self.fail_attempt(&attempt, PairError::BadSignature));
        }
        let stored = clients
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add(
                &attempt.client_cert_der,
                attempt.client_cert_pem.clone(),
                &attempt.device_name,
                self.limits.default_role,
            );
        match stored {
            Ok(client) => {
                self.lock().failures.remove(&attempt.address);
                let _ = self.events.send(PairingEvent::Paired {
                    attempt: attempt.id,
                    client: client.clone(),
                });
                Ok(client)
            }
            Err(error) => Err(self.fail_attempt(&attempt, PairError::Store(error))),
        }
    }

    /// `/unpair` over HTTP from a client that is mid-pairing: the attempt is abandoned. Returns
    /// whether there was one. After the PIN was entered this means the client saw a wrong PIN.
    pub fn abandon(&self, key: &str) -> bool {
        let attempt = self.lock().sessions.remove(key);
        match attempt {
            Some(attempt) => {
                self.fail_attempt(&attempt, PairError::Abandoned);
                true
            }
            None => false,
        }
    }

    /// The owner enters a PIN (from `hati pair` or the PIN page). Returns the attempt it was
    /// given to and a receiver that will see that attempt's outcome.
    pub fn submit_pin(
        &self,
        pin: &str,
        page_secret: Option<&str>,
    ) -> Result<(u64, broadcast::Receiver<PairingEvent>), PinError> {
        if pin.len() != 4 || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PinError::BadFormat);
        }
        let events = self.events.subscribe();
        let mut inner = self.lock();
        let waiting = inner.waiting.take().ok_or(PinError::NoClientWaiting)?;
        if page_secret.is_some_and(|secret| secret != waiting.secret) {
            inner.waiting = Some(waiting);
            return Err(PinError::BadSecret);
        }
        let attempt = waiting.attempt;
        if waiting.pin.send(pin.to_owned()).is_err() {
            return Err(PinError::NoClientWaiting);
        }
        Ok((attempt, events))
    }

    fn step<T>(
        &self,
        key: &str,
        apply: impl FnOnce(&mut Attempt) -> Result<T, PairError>,
    ) -> Result<T, PairError> {
        let mut inner = self.lock();
        let Some(attempt) = inner.sessions.get_mut(key) else {
            return Err(PairError::OutOfOrder);
        };
        match apply(attempt) {
            Ok(value) => {
                attempt.last_step = Instant::now();
                Ok(value)
            }
            Err(error) => {
                // Any failure ends the attempt; the client must start over.
                if let Some(attempt) = inner.sessions.remove(key) {
                    drop(inner);
                    return Err(self.fail_attempt(&attempt, error));
                }
                Err(error)
            }
        }
    }

    fn fail_attempt(&self, attempt: &Attempt, error: PairError) -> PairError {
        self.fail_from(attempt.address, attempt.id, error)
    }

    /// Fails attempt `id`, counting it towards the lockout of `address`.
    fn fail_from(&self, address: IpAddr, id: u64, error: PairError) -> PairError {
        let mut inner = self.lock();
        let failures = inner.failures.entry(address).or_default();
        failures.count += 1;
        if failures.count >= self.limits.max_failed_attempts.max(1) {
            failures.count = 0;
            failures.locked_until =
                Some(Instant::now() + Duration::from_secs(self.limits.lockout_seconds));
        }
        drop(inner);
        self.fail(id, error)
    }

    fn fail(&self, attempt: u64, error: PairError) -> PairError {
        let _ = self.events.send(PairingEvent::Failed {
            attempt,
            reason: error.to_string(),
        });
        error
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn locked_out(&mut self, address: IpAddr) -> Option<u64> {
        let failures = self.failures.get_mut(&address)?;
        let until = failures.locked_until?;
        let now = Instant::now();
        if until <= now {
            failures.locked_until = None;
            return None;
        }
        Some((until - now).as_secs().max(1))
    }
}

struct ClearWaiting<'a> {
    manager: &'a PairingManager,
    attempt: u64,
}

impl Drop for ClearWaiting<'_> {
    fn drop(&mut self) {
        let mut inner = self.manager.lock();
        if inner
            .waiting
            .as_ref()
            .is_some_and(|w| w.attempt == self.attempt)
        {
            inner.waiting = None;
        }
    }
}

/// Why a pairing the owner entered a PIN for did not complete.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OutcomeError {
    /// The attempt failed; the reason as its `Failed` event gave it.
    #[error("{0}")]
    Failed(String),
    /// The host is shutting down.
    #[error("the host is shutting down")]
    ShuttingDown,
    /// The client did not finish in time.
    #[error("the client did not finish pairing within {0} s")]
    TimedOut(u64),
}

/// Waits for the outcome of `attempt` on `events`: the paired client, or why it failed.
pub async fn wait_for_outcome(
    mut events: broadcast::Receiver<PairingEvent>,
    attempt: u64,
    timeout: Duration,
) -> Result<PairedClient, OutcomeError> {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(PairingEvent::Paired { attempt: a, client }) if a == attempt => {
                    return Ok(client);
                }
                Ok(PairingEvent::Failed { attempt: a, reason }) if a == attempt => {
                    return Err(OutcomeError::Failed(reason));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(OutcomeError::ShuttingDown);
                }
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or(Err(OutcomeError::TimedOut(timeout.as_secs())))
}

#[cfg(test)]
mod tests;
