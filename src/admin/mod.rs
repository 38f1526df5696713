//! The local admin endpoint: HTTP/1.1 with JSON bodies on a unix socket in the state directory
//! (mode 0600), never on a network port. `hati pair`, `hati clients` and `hati unpair` use it;
//! so can `curl --unix-socket ~/.local/share/hati/admin.sock http://hati/clients`.
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /pair?pin=NNNN` | waits for the pairing's outcome: `{"paired": {client}}` or `{"error": …}` |
//! | `GET /clients` | `[{client}, …]` |
//! | `POST /unpair?client=NAME_OR_ID` | `{"unpaired": {client}}` or `{"error": …}` |
//! | `PATCH /clients/NAME_OR_ID` | body `{"role": …, "apps": [ID, …] or null}`: `{"updated": {client}}` |
//! | `GET /status` | host name, ports, codecs, whether a client waits for a PIN |
//! | `GET /apps` | the configured apps: ID, title, desktop, runner |
//! | `GET /sessions` | running sessions: ID, client, app, streaming, counters |
//! | `GET /pipelines` | `[{name, state}, …]`: every stream pipeline that still exists |
//! | `POST /sessions/stop?id=N` | ends session N as `/cancel` would: `{"stopped": N}` or 404 |
//! | `POST /reload` | re-reads the config file: `{"reloaded": {"apps": N}}`, or 400 with the error |
//! | `GET /events` | Server-Sent Events: every state change (`crate::events`) from now on |
//!
//! Every path is also served under `/api/v1` (`/api/v1/events`, …), the versioned prefix.

use std::time::Duration;

mod auth;
mod client;
mod lobbies;
mod lookup;
mod permissions;
mod routes;
mod server;
mod views;

pub use auth::has_bearer_token;
pub use client::{
    AdminClientError, describe_permissions, encode_query_value, request, request_json, resolve_apps,
};
pub use routes::{api, unpair};
pub use server::{AdminSocket, serve_tcp};
pub use views::client_json;

/// How long `hati pair` waits for the client to finish pairing after the PIN.
const PAIR_OUTCOME_TIMEOUT: Duration = Duration::from_secs(60);
