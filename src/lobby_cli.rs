//! `hati lobby`: open, list, close lobbies of the running host, remove a guest, enter a PIN for
//! a client (through the admin socket; docs/play-together.md).

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use hati::admin::{self, encode_query_value};
use serde_json::Value;

/// What `hati lobby` does.
#[derive(Subcommand)]
pub enum LobbyAction {
    /// List open lobbies and their guests.
    List,
    /// Open a running session to guests (or change its lobby's settings).
    Open {
        /// The owner's session ID, as `hati sessions` shows it.
        session: u32,
        /// Guests must enter this PIN (4 to 8 digits) before they see the lobby.
        #[arg(long)]
        pin: Option<String>,
        /// Most guests at once (1 to 12; default 3).
        #[arg(long = "max")]
        max_guests: Option<u32>,
        /// Admit players only: clients with the spectator role cannot watch.
        #[arg(long)]
        no_spectators: bool,
        /// Players' keyboard and mouse are dropped; only their gamepads reach the app.
        #[arg(long)]
        gamepad_only: bool,
    },
    /// Close a lobby: every guest's stream ends, the owner plays on.
    Close {
        /// The lobby's number, as `hati lobby list` shows it.
        lobby: u32,
    },
    /// Remove a guest: its stream ends.
    Kick {
        /// The lobby's number.
        lobby: u32,
        /// The guest's session ID.
        session: u32,
    },
    /// Enter a lobby's PIN for a paired client, which then sees the lobby's "Join:" entry.
    Unlock {
        /// The lobby's number.
        lobby: u32,
        /// The client's name or (a prefix of) its ID, as `hati clients` shows.
        client: String,
        /// The lobby's PIN.
        pin: String,
    },
}

/// Runs `action` against the host listening on `socket`.
pub fn run(socket: &Path, action: LobbyAction) -> anyhow::Result<ExitCode> {
    let (method, path) = match &action {
        LobbyAction::List => ("GET", "/lobbies".to_owned()),
        LobbyAction::Open {
            session,
            pin,
            max_guests,
            no_spectators,
            gamepad_only,
        } => {
            let mut path = format!("/lobbies/open?session={session}");
            if let Some(pin) = pin {
                path += &format!("&pin={}", encode_query_value(pin));
            }
            if let Some(max) = max_guests {
                path += &format!("&max_guests={max}");
            }
            if *no_spectators {
                path += "&spectators=false";
            }
            if *gamepad_only {
                path += "&guest_input=gamepad_only";
            }
            ("POST", path)
        }
        LobbyAction::Close { lobby } => ("POST", format!("/lobbies/close?lobby={lobby}")),
        LobbyAction::Kick { lobby, session } => (
            "POST",
            format!("/lobbies/kick?lobby={lobby}&session={session}"),
        ),
        LobbyAction::Unlock { lobby, client, pin } => (
            "POST",
            format!(
                "/lobbies/unlock?lobby={lobby}&client={}&pin={}",
                encode_query_value(client),
                encode_query_value(pin)
            ),
        ),
    };
    let (status, body) = admin::request(socket, method, &path)?;
    if status != 200 {
        eprintln!(
            "hati: {}",
            body.get("error")
                .and_then(Value::as_str)
                .unwrap_or("unexpected answer")
        );
        return Ok(ExitCode::FAILURE);
    }
    match action {
        LobbyAction::List => {
            let lobbies = body.as_array().cloned().unwrap_or_default();
            if lobbies.is_empty() {
                println!("no open lobbies");
            }
            for lobby in &lobbies {
                print_lobby(lobby);
            }
        }
        LobbyAction::Open { .. } => {
            if let Some(lobby) = body.get("lobby") {
                print_lobby(lobby);
            }
        }
        LobbyAction::Close { lobby } => println!("closed lobby {lobby}"),
        LobbyAction::Kick { session, .. } => println!("removed guest session {session}"),
        LobbyAction::Unlock { lobby, client, .. } => {
            println!("{client} may now join lobby {lobby}")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_lobby(lobby: &Value) {
    let field = |key: &str| lobby.get(key).cloned().unwrap_or(Value::Null);
    println!(
        "lobby {}: {:?} (app ID {}), session {}, {} guests at most, PIN {}, spectators {}, guest input {}",
        field("lobby"),
        field("join_title").as_str().unwrap_or(""),
        field("join_app_id"),
        field("session"),
        field("max_guests"),
        if field("pin").as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        },
        if field("spectators").as_bool() == Some(true) {
            "admitted"
        } else {
            "refused"
        },
        field("guest_input").as_str().unwrap_or(""),
    );
    for guest in field("guests").as_array().into_iter().flatten() {
        println!(
            "  guest session {}: {} ({}), {}",
            guest.get("session").cloned().unwrap_or(Value::Null),
            guest.get("name").and_then(Value::as_str).unwrap_or(""),
            guest.get("client").and_then(Value::as_str).unwrap_or(""),
            guest.get("role").and_then(Value::as_str).unwrap_or(""),
        );
    }
}
