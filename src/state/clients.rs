//! Paired clients (`clients.json`): each client's certificate, name and pairing time. HTTPS
//! requests are authorised by the SHA-256 fingerprint of the client's certificate being here;
//! a browser's requests by the SHA-256 of its credential (the play page's bearer token), which
//! is itself never stored. Each client also holds its role and the apps it may use
//! ([`super::permissions`]); files written before roles existed load with `admin` and every app.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::permissions::{Permissions, Role};
use super::{StateDir, StateError, read_optional, write_atomic};

const FILE_NAME: &str = "clients.json";

/// The SHA-256 fingerprint of a DER certificate, as lower-case hex.
pub fn fingerprint(cert_der: &[u8]) -> String {
    hati_protocol::query::encode_hex(&Sha256::digest(cert_der)).to_ascii_lowercase()
}

/// The first 12 hex digits of a client ID: enough to tell clients apart in logs and listings.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// What kind of client paired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// A Moonlight client, known by its certificate.
    #[default]
    Moonlight,
    /// A web browser on the play page, known by its credential.
    Browser,
}

/// One paired client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairedClient {
    /// SHA-256 fingerprint of its certificate or browser credential (hex); the client's ID.
    pub id: String,
    /// A name for people: the device name it sent, made unique.
    pub name: String,
    /// Its certificate, PEM (empty for a browser).
    pub cert_pem: String,
    /// When it paired, seconds since the Unix epoch.
    pub paired_at: u64,
    /// Moonlight or browser (files from before browsers hold only Moonlight clients).
    #[serde(default)]
    pub kind: ClientKind,
    /// Its role and the apps it may use (`"role"` and `"apps"` in the file; absent in files
    /// from before roles: `admin`, every app).
    #[serde(flatten)]
    pub permissions: Permissions,
}

/// The paired-client list, persisted on every change.
#[derive(Debug)]
pub struct ClientStore {
    path: PathBuf,
    clients: Vec<PairedClient>,
}

/// The outcome of looking a client up by name or ID prefix.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Exactly one client matched.
    One(&'a PairedClient),
    /// Nothing matched.
    None,
    /// Several clients matched; the caller must be more specific.
    Ambiguous(Vec<&'a PairedClient>),
}

impl ClientStore {
    /// Loads `clients.json` from the state dir (an absent file means no clients).
    pub fn load(state: &StateDir) -> Result<Self, StateError> {
        let path = state.file(FILE_NAME);
        let clients = match read_optional(&path)? {
            Some(text) => serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?,
            None => Vec::new(),
        };
        Ok(Self { path, clients })
    }

    /// Every paired client, oldest first.
    pub fn list(&self) -> &[PairedClient] {
        &self.clients
    }

    /// Whether a Moonlight client's certificate with this fingerprint is paired.
    pub fn is_paired(&self, fingerprint: &str) -> bool {
        self.clients
            .iter()
            .any(|c| c.id == fingerprint && c.kind == ClientKind::Moonlight)
    }

    /// The paired browser whose credential is `token`.
    pub fn browser(&self, token: &str) -> Option<&PairedClient> {
        let id = fingerprint(token.as_bytes());
        self.clients
            .iter()
            .find(|c| c.kind == ClientKind::Browser && c.id == id)
    }

    /// Stores a browser that paired with credential `token`, as `role` with every app, and
    /// persists the list.
    pub fn add_browser(
        &mut self,
        token: &str,
        device_name: &str,
        role: Role,
    ) -> Result<PairedClient, StateError> {
        self.insert(
            fingerprint(token.as_bytes()),
            String::new(),
            device_name,
            ClientKind::Browser,
            role,
        )
    }

    /// Adds a client as `role` with every app (or re-pairs one: it keeps the role and apps it
    /// had, so pairing again never widens what it may do) and persists the list. Returns the
    /// stored entry.
    pub fn add(
        &mut self,
        cert_der: &[u8],
        cert_pem: String,
        device_name: &str,
        role: Role,
    ) -> Result<PairedClient, StateError> {
        self.insert(
            fingerprint(cert_der),
            cert_pem,
            device_name,
            ClientKind::Moonlight,
            role,
        )
    }

    fn insert(
        &mut self,
        id: String,
        cert_pem: String,
        device_name: &str,
        kind: ClientKind,
        role: Role,
    ) -> Result<PairedClient, StateError> {
        let name = self.unique_name(device_name, &id);
        let paired_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let permissions = self
            .clients
            .iter()
            .find(|c| c.id == id)
            .map_or_else(|| Permissions::all_apps(role), |c| c.permissions.clone());
        let client = PairedClient {
            id: id.clone(),
            name,
            cert_pem,
            paired_at,
            kind,
            permissions,
        };
        let mut next = self.clients.clone();
        next.retain(|c| c.id != id);
        next.push(client.clone());
        self.save(next)?;
        Ok(client)
    }

    /// Removes a client by fingerprint and persists the list. Returns it if it was there.
    pub fn remove(&mut self, id: &str) -> Result<Option<PairedClient>, StateError> {
        let Some(position) = self.clients.iter().position(|c| c.id == id) else {
            return Ok(None);
        };
        let mut next = self.clients.clone();
        let removed = next.remove(position);
        self.save(next)?;
        Ok(Some(removed))
    }

    /// Sets the role and apps of the client with ID `id` and persists the list. Returns the
    /// updated entry, or `None` when no client has that ID.
    pub fn set_permissions(
        &mut self,
        id: &str,
        permissions: Permissions,
    ) -> Result<Option<PairedClient>, StateError> {
        let mut next = self.clients.clone();
        let Some(client) = next.iter_mut().find(|c| c.id == id) else {
            return Ok(None);
        };
        client.permissions = permissions;
        let updated = client.clone();
        self.save(next)?;
        Ok(Some(updated))
    }

    /// The client with ID `id`.
    pub fn by_id(&self, id: &str) -> Option<&PairedClient> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// Finds a client by exact name, or by a prefix (at least 4 hex digits) of its ID.
    pub fn find(&self, name_or_id: &str) -> Lookup<'_> {
        let by_name: Vec<_> = self
            .clients
            .iter()
            .filter(|c| c.name == name_or_id)
            .collect();
        let matches = if by_name.is_empty() && name_or_id.len() >= 4 {
            let prefix = name_or_id.to_ascii_lowercase();
            self.clients
                .iter()
                .filter(|c| c.id.starts_with(&prefix))
                .collect()
        } else {
            by_name
        };
        match matches.as_slice() {
            [] => Lookup::None,
            [one] => Lookup::One(one),
            _ => Lookup::Ambiguous(matches),
        }
    }

    fn unique_name(&self, device_name: &str, id: &str) -> String {
        let base: String = device_name
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '))
            .take(32)
            .collect();
        // Moonlight clients all send the same placeholder name, so it is made unique by ID.
        let base = if base.is_empty() || base == "roth" {
            "client".to_owned()
        } else {
            base
        };
        let taken = |name: &str| self.clients.iter().any(|c| c.name == name && c.id != id);
        if !taken(&base) && base != "client" {
            return base;
        }
        let short = id.get(..8).unwrap_or(id);
        format!("{base}-{short}")
    }

    fn save(&mut self, next: Vec<PairedClient>) -> Result<(), StateError> {
        let json = serde_json::to_string_pretty(&next).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&self.path, json.as_bytes(), 0o600)?;
        self.clients = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, StateDir) {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        (dir, state)
    }

    #[test]
    fn add_find_remove_persist() {
        let (_dir, state) = store();
        let mut clients = ClientStore::load(&state).unwrap();
        let a = clients
            .add(b"cert-a", "A".into(), "roth", Role::Admin)
            .unwrap();
        let b = clients
            .add(b"cert-b", "B".into(), "Living room", Role::Admin)
            .unwrap();
        assert!(a.name.starts_with("client-"));
        assert_eq!(b.name, "Living room");

        let reloaded = ClientStore::load(&state).unwrap();
        assert_eq!(reloaded.list().len(), 2);
        assert!(reloaded.is_paired(&fingerprint(b"cert-a")));
        assert_eq!(reloaded.find("Living room"), Lookup::One(&b));
        assert_eq!(reloaded.find(&a.id[..10]), Lookup::One(&a));
        assert_eq!(reloaded.find("nobody"), Lookup::None);

        let mut clients = reloaded;
        assert_eq!(clients.remove(&a.id).unwrap(), Some(a.clone()));
        assert_eq!(clients.remove(&a.id).unwrap(), None);
        assert!(!ClientStore::load(&state).unwrap().is_paired(&a.id));
    }

    #[test]
    fn browsers_are_found_by_credential_and_never_pass_as_certificates() {
        let (_dir, state) = store();
        let mut clients = ClientStore::load(&state).unwrap();
        let browser = clients
            .add_browser("secret-token", "Chromium", Role::Admin)
            .unwrap();
        assert_eq!(browser.kind, ClientKind::Browser);
        assert_eq!(browser.id, fingerprint(b"secret-token"));
        let reloaded = ClientStore::load(&state).unwrap();
        assert_eq!(reloaded.browser("secret-token"), Some(&browser));
        assert_eq!(reloaded.browser("other-token"), None);
        assert!(
            !reloaded.is_paired(&browser.id),
            "a browser has no certificate"
        );
        let text = std::fs::read_to_string(state.file(FILE_NAME)).unwrap();
        assert!(
            !text.contains("secret-token"),
            "the credential itself is not stored"
        );
    }

    #[test]
    fn files_without_kinds_hold_moonlight_clients() {
        let (_dir, state) = store();
        std::fs::write(
            state.file(FILE_NAME),
            r#"[{"id":"ab","name":"tv","cert_pem":"x","paired_at":1}]"#,
        )
        .unwrap();
        let clients = ClientStore::load(&state).unwrap();
        assert_eq!(clients.list()[0].kind, ClientKind::Moonlight);
        assert!(clients.is_paired("ab"));
    }

    #[test]
    fn files_from_before_roles_hold_admins_with_every_app() {
        let (_dir, state) = store();
        std::fs::write(
            state.file(FILE_NAME),
            r#"[{"id":"ab","name":"tv","cert_pem":"x","paired_at":1,"kind":"moonlight"}]"#,
        )
        .unwrap();
        let clients = ClientStore::load(&state).unwrap();
        assert_eq!(
            clients.list()[0].permissions,
            Permissions::all_apps(Role::Admin)
        );
    }

    #[test]
    fn permissions_are_set_persisted_and_kept_on_repairing() {
        let (_dir, state) = store();
        let mut clients = ClientStore::load(&state).unwrap();
        let tv = clients
            .add(b"cert", "A".into(), "tv", Role::Player)
            .unwrap();
        assert_eq!(tv.permissions, Permissions::all_apps(Role::Player));
        let limited = Permissions {
            role: Role::Spectator,
            apps: Some(vec![5, 9]),
        };
        let updated = clients
            .set_permissions(&tv.id, limited.clone())
            .unwrap()
            .unwrap();
        assert_eq!(updated.permissions, limited);
        assert_eq!(
            clients.set_permissions("nobody", limited.clone()).unwrap(),
            None
        );

        let text = std::fs::read_to_string(state.file(FILE_NAME)).unwrap();
        assert!(
            text.contains(r#""role": "spectator""#) && text.contains(r#""apps": ["#),
            "{text}"
        );
        let mut reloaded = ClientStore::load(&state).unwrap();
        assert_eq!(reloaded.by_id(&tv.id).unwrap().permissions, limited);
        assert_eq!(
            reloaded.list(),
            clients.list(),
            "a round trip changes nothing"
        );

        // Pairing the same certificate again keeps the restriction.
        let again = reloaded
            .add(b"cert", "A".into(), "tv", Role::Admin)
            .unwrap();
        assert_eq!(again.permissions, limited);
        // An unpaired client comes back with the default.
        reloaded.remove(&tv.id).unwrap();
        let fresh = reloaded
            .add(b"cert", "A".into(), "tv", Role::Admin)
            .unwrap();
        assert_eq!(fresh.permissions, Permissions::all_apps(Role::Admin));
    }

    #[test]
    fn repairing_replaces_the_entry() {
        let (_dir, state) = store();
        let mut clients = ClientStore::load(&state).unwrap();
        clients
            .add(b"cert", "A".into(), "phone", Role::Admin)
            .unwrap();
        clients
            .add(b"cert", "A".into(), "phone", Role::Admin)
            .unwrap();
        assert_eq!(clients.list().len(), 1);
        assert_eq!(clients.list()[0].name, "phone");
    }

    #[test]
    fn corrupt_file_is_reported_with_path() {
        let (_dir, state) = store();
        std::fs::write(state.file(FILE_NAME), "[{").unwrap();
        let error = ClientStore::load(&state).unwrap_err().to_string();
        assert!(
            error.contains("clients.json") && error.contains("corrupt"),
            "{error}"
        );
    }
}
