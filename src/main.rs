//! The `hati` command line: `serve`, `gateway`, `node`, `pair`, `clients`, `unpair`, `nodes`,
//! `doctor`, `config check`.

use std::path::PathBuf;
use std::process::ExitCode;

mod lobby_cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hati::admin::{self, AdminClientError, encode_query_value};
use hati::config::Config;
use hati::daemon::Role;
use hati::state::StateDir;
use hati::state::clients::{ClientStore, short_id};

/// A Moonlight-compatible game-streaming host.
#[derive(Parser)]
#[command(name = "hati", version, about)]
struct Cli {
    /// State directory (host identity, paired clients, admin socket).
    /// Default: $XDG_DATA_HOME/hati, else ~/.local/share/hati.
    #[arg(long, global = true, env = "HATI_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host (the embedded default config is used unless --config is given).
    Serve {
        /// A config.toml holding the keys to change from the default.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run the gateway of many machines: clients pair and launch here; `hati node`s run the
    /// sessions (docs/many-machines.md).
    Gateway {
        /// A config.toml holding the keys to change from the default.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run sessions for a gateway (it serves no HTTP; clients use the gateway).
    Node {
        /// A config.toml holding the keys to change from the default.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The gateway's node-link address, host:port (default: node.gateway in the config).
        #[arg(long, env = "HATI_GATEWAY", value_name = "HOST:PORT")]
        gateway: Option<String>,
        /// The join token `hati join-token` prints on the gateway.
        #[arg(
            long,
            env = "HATI_JOIN_TOKEN",
            value_name = "TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
    },
    /// Print the token nodes join this gateway with (made on first use; keep it secret).
    JoinToken,
    /// List the nodes of the running gateway.
    Nodes,
    /// Enter the PIN Moonlight shows, completing the pairing it started.
    Pair {
        /// The 4-digit PIN.
        pin: String,
    },
    /// List paired clients with their roles and apps (`hati clients set` changes them).
    Clients {
        #[command(subcommand)]
        action: Option<ClientsAction>,
    },
    /// Remove a paired client.
    Unpair {
        /// The client's name or (a prefix of) its ID, as `hati clients` shows.
        client: String,
    },
    /// List the configured apps of the running host.
    Apps,
    /// List the running sessions of the running host.
    Sessions,
    /// Re-read the running host's config file (also on SIGHUP): new sessions use it.
    Reload,
    /// End a session of the running host (its app is stopped, the client told).
    Stop {
        /// The session's ID, as `hati sessions` shows it.
        session: u32,
    },
    /// Check what this machine can do for Hati and what is missing, with a fix for each.
    /// Exits 0 when nothing needed is missing, 1 when a check failed, 2 on a config error.
    Doctor {
        /// A config.toml holding the keys to change from the default.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print one JSON object (`{"ok": bool, "checks": [...]}`) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Lobbies of the running host: let other clients join a running session
    /// (docs/play-together.md).
    Lobby {
        #[command(subcommand)]
        action: lobby_cli::LobbyAction,
    },
}

#[derive(Subcommand)]
enum ClientsAction {
    /// Set a client's role and the apps it may use (docs/permissions.md); needs the running
    /// host.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["role", "apps", "all_apps"])))]
    Set {
        /// The client's name or (a prefix of) its ID, as `hati clients` shows.
        client: String,
        /// admin: launches any app it may use; player: the same, and will join lobbies to
        /// play; spectator: launches nothing, will join lobbies only to watch.
        #[arg(long, value_parser = ["admin", "player", "spectator"])]
        role: Option<String>,
        /// The only apps it may use: IDs or titles as `hati apps` shows them, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            value_name = "ID_OR_TITLE,…",
            conflicts_with = "all_apps"
        )]
        apps: Option<Vec<String>>,
        /// Let it use every app (the default for new clients).
        #[arg(long)]
        all_apps: bool,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate a config file (merged over the default) without starting the host.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("hati: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let state_dir = cli.state_dir;
    match cli.command {
        Command::Serve { config } => run_role(config, state_dir, |_| Ok(Role::Standalone)),
        Command::Gateway { config } => run_role(config, state_dir, |_| Ok(Role::Gateway)),
        Command::Node {
            config,
            gateway,
            token,
        } => run_role(config, state_dir, |config| {
            let gateway = gateway.or_else(|| config.node.gateway.clone()).context(
                "which gateway? give --gateway HOST:PORT, HATI_GATEWAY or node.gateway in the config",
            )?;
            let token: hati::cluster::link::JoinToken = token
                .context("no join token: give --token or HATI_JOIN_TOKEN (`hati join-token` on the gateway prints it)")?
                .parse()?;
            Ok(Role::Node(hati::node::NodeSettings {
                gateway,
                token,
                name: config.node.name.clone().unwrap_or_else(machine_name),
                capacity: config.node.max_sessions,
                address: config.node.address,
            }))
        }),
        Command::JoinToken => {
            let state = StateDir::open(state(&state_dir).path())?;
            let identity = hati::state::identity::HostIdentity::load_or_create(&state)?;
            let token = hati::cluster::link::JoinToken::for_gateway(&state, &identity)?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Nodes => {
            let (_, body) = admin::request(&state(&state_dir).admin_socket(), "GET", "/nodes")?;
            let nodes = body.as_array().cloned().unwrap_or_default();
            if nodes.is_empty() {
                println!("no nodes");
            }
            for node in &nodes {
                let number = |key: &str| node.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
                println!(
                    "{:>4}  {}  {}  sessions {}/{}  load {:.0}%  version {}  since {}",
                    number("id"),
                    text(node, "name"),
                    text(node, "address"),
                    number("sessions"),
                    number("capacity"),
                    node.get("load").and_then(|v| v.as_f64()).unwrap_or(0.0) * 100.0,
                    text(node, "version"),
                    format_time(number("connected_since"))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pair { pin } => {
            let socket = state(&state_dir).admin_socket();
            let path = format!("/pair?pin={}", encode_query_value(&pin));
            println!("waiting for the client to finish pairing…");
            let (status, body) = admin::request(&socket, "POST", &path)?;
            match body.get("paired") {
                Some(client) if status == 200 => {
                    println!(
                        "paired: {} (ID {})",
                        text(client, "name"),
                        short_id(&text(client, "id"))
                    );
                    Ok(ExitCode::SUCCESS)
                }
                _ => fail(&body),
            }
        }
        Command::Clients {
            action:
                Some(ClientsAction::Set {
                    client,
                    role,
                    apps,
                    all_apps,
                }),
        } => {
            let socket = state(&state_dir).admin_socket();
            let (_, catalogue) = admin::request(&socket, "GET", "/apps")?;
            let catalogue = catalogue.as_array().cloned().unwrap_or_default();
            let mut change = serde_json::Map::new();
            if let Some(role) = role {
                change.insert("role".into(), role.into());
            }
            if all_apps {
                change.insert("apps".into(), serde_json::Value::Null);
            } else if let Some(apps) = apps {
                let ids = admin::resolve_apps(&apps, &catalogue).map_err(anyhow::Error::msg)?;
                change.insert("apps".into(), ids.into());
            }
            let path = format!("/clients/{}", encode_query_value(&client));
            let (status, body) =
                admin::request_json(&socket, "PATCH", &path, &serde_json::Value::Object(change))?;
            match body.get("updated") {
                Some(client) if status == 200 => {
                    println!(
                        "{} (ID {}): {}",
                        text(client, "name"),
                        short_id(&text(client, "id")),
                        admin::describe_permissions(client, &catalogue)
                    );
                    Ok(ExitCode::SUCCESS)
                }
                _ => fail(&body),
            }
        }
        Command::Clients { action: None } => {
            let socket = state(&state_dir).admin_socket();
            let (clients, catalogue) = match admin::request(&socket, "GET", "/clients") {
                Ok((_, body)) => {
                    // App titles for the listing; IDs alone if the host cannot say.
                    let catalogue = admin::request(&socket, "GET", "/apps")
                        .ok()
                        .and_then(|(_, apps)| apps.as_array().cloned())
                        .unwrap_or_default();
                    (body.as_array().cloned().unwrap_or_default(), catalogue)
                }
                Err(AdminClientError::NotRunning(_)) => {
                    let store = ClientStore::load(&StateDir::open(state(&state_dir).path())?)?;
                    let clients = store.list().iter().map(admin::client_json).collect();
                    (clients, Vec::new())
                }
                Err(error) => return Err(error.into()),
            };
            if clients.is_empty() {
                println!("no paired clients");
            }
            for client in &clients {
                let when = client
                    .get("paired_at")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                let kind = match text(client, "kind").as_str() {
                    "browser" => "  (browser)",
                    _ => "",
                };
                println!(
                    "{}  {}  paired {}{kind}  {}",
                    short_id(&text(client, "id")),
                    text(client, "name"),
                    format_time(when),
                    admin::describe_permissions(client, &catalogue)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Unpair { client } => {
            let socket = state(&state_dir).admin_socket();
            let path = format!("/unpair?client={}", encode_query_value(&client));
            let (status, body) = match admin::request(&socket, "POST", &path) {
                Ok((status, body)) => (status, body),
                Err(AdminClientError::NotRunning(_)) => {
                    let mut store = ClientStore::load(&StateDir::open(state(&state_dir).path())?)?;
                    let (status, body) = admin::unpair(&mut store, &client);
                    (status.as_u16(), body)
                }
                Err(error) => return Err(error.into()),
            };
            match body.get("unpaired") {
                Some(client) if status == 200 => {
                    println!(
                        "unpaired: {} (ID {})",
                        text(client, "name"),
                        short_id(&text(client, "id"))
                    );
                    Ok(ExitCode::SUCCESS)
                }
                _ => fail(&body),
            }
        }
        Command::Apps => {
            let (_, body) = admin::request(&state(&state_dir).admin_socket(), "GET", "/apps")?;
            for app in body.as_array().into_iter().flatten() {
                let runner = match app.get("runner") {
                    Some(runner) if !runner.is_null() => format!(
                        "{} {}",
                        text(runner, "type"),
                        runner
                            .get("cmd")
                            .or(runner.get("image"))
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                    ),
                    _ => "nothing runs".to_owned(),
                };
                let desktop = if app.get("desktop").and_then(|v| v.as_bool()) == Some(true) {
                    "desktop"
                } else {
                    "no desktop"
                };
                let id = app.get("id").and_then(|v| v.as_u64()).unwrap_or(0);
                println!("{id:>10}  {}  ({desktop}; {runner})", text(app, "title"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sessions => {
            let (_, body) = admin::request(&state(&state_dir).admin_socket(), "GET", "/sessions")?;
            let sessions = body.as_array().cloned().unwrap_or_default();
            if sessions.is_empty() {
                println!("no sessions");
            }
            for session in &sessions {
                let id = session.get("id").and_then(|v| v.as_u64()).unwrap_or(0);
                let streaming = if session.get("streaming").and_then(|v| v.as_bool()) == Some(true)
                {
                    "streaming"
                } else {
                    "paused"
                };
                // A gateway's session says what its node reported.
                let state = match session.get("node") {
                    Some(_) => text(session, "state"),
                    None => streaming.to_owned(),
                };
                let node = match session.get("node_name").and_then(|v| v.as_str()) {
                    Some(name) => format!("  node {name}"),
                    None => String::new(),
                };
                println!(
                    "{id:>10}  client {}  app {}  {state}{node}",
                    text(session, "client"),
                    text(session, "app")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reload => {
            let socket = state(&state_dir).admin_socket();
            let (status, body) = admin::request(&socket, "POST", "/reload")?;
            if status == 200 {
                println!(
                    "config reloaded: {} apps",
                    body["reloaded"]["apps"].as_u64().unwrap_or(0)
                );
                Ok(ExitCode::SUCCESS)
            } else {
                fail(&body)
            }
        }
        Command::Lobby { action } => lobby_cli::run(&state(&state_dir).admin_socket(), action),
        Command::Stop { session } => {
            let socket = state(&state_dir).admin_socket();
            let (status, body) =
                admin::request(&socket, "POST", &format!("/sessions/stop?id={session}"))?;
            if status == 200 {
                println!("stopped session {session}");
                Ok(ExitCode::SUCCESS)
            } else {
                fail(&body)
            }
        }
        Command::Doctor { config, json } => {
            let config = match Config::load(config.as_deref()) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("hati: {error}");
                    return Ok(ExitCode::from(2));
                }
            };
            let options = hati::doctor::Options {
                config,
                state_dir: state(&state_dir).path().to_path_buf(),
            };
            let report = hati::doctor::run(&options);
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            Ok(ExitCode::from(report.exit_code()))
        }
        Command::Config {
            action: ConfigAction::Check { file },
        } => {
            let config = Config::load(Some(&file))?;
            let ports = config.ports();
            println!(
                "{}: OK ({} app(s); HTTP {} HTTPS {} RTSP {} video {} control {} audio {})",
                file.display(),
                config.apps.len(),
                ports.http,
                ports.https,
                ports.rtsp,
                ports.video,
                ports.control,
                ports.audio
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn state(state_dir: &Option<PathBuf>) -> StateDirPath {
    StateDirPath(state_dir.clone().unwrap_or_else(StateDir::default_path))
}

/// A state directory path that is not created just to look for a socket in it.
struct StateDirPath(PathBuf);

impl StateDirPath {
    fn admin_socket(&self) -> PathBuf {
        self.0.join("admin.sock")
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

fn fail(body: &serde_json::Value) -> anyhow::Result<ExitCode> {
    eprintln!(
        "hati: {}",
        body.get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("unexpected answer")
    );
    Ok(ExitCode::FAILURE)
}

fn text(value: &serde_json::Value, key: &str) -> String {
    value
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned()
}

fn format_time(unix: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap_or(0))
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|_| unix.to_string())
}

/// Runs a daemon role: memory and logging set up, the config loaded (the embedded default
/// unless `config_path`), then `role_for` (which may read the config) picks the role.
fn run_role(
    config_path: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    role_for: impl FnOnce(&Config) -> anyhow::Result<Role>,
) -> anyhow::Result<ExitCode> {
    hati::memory::limit_arenas();
    init_logging();
    let config = Config::load(config_path.as_deref())?;
    let role = role_for(&config)?;
    // The control stream's thread and the compositor threads raise themselves to it.
    hati::priority::set_input_nice(config.streaming.input_thread_nice);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(hati::daemon::run(role, config, config_path, state_dir))?;
    Ok(ExitCode::SUCCESS)
}

/// This machine's hostname, for a node's default name.
fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "node".to_owned())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_enet=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}
