//! `hati serve`, `hati gateway` and `hati node`: starts the servers of the role on one [`Host`]
//! and runs until Ctrl-C or SIGTERM, plus the host's background tasks (pairing events onto the
//! bus, stream statistics, reload on SIGHUP).
//!
//! | role    | HTTP/HTTPS, pairing, mDNS | RTSP, control, media | node link |
//! |---------|---------------------------|----------------------|-----------|
//! | serve   | yes                       | yes                  | no        |
//! | gateway | yes (launches go to nodes)| no                   | listens   |
//! | node    | no                        | yes                  | dials     |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::encoders::CodecSupport;
use crate::events::Event;
use crate::host::Host;
use crate::session::ControlCommand;
use crate::stream::ping::StreamKind;

/// How long start-up clean-up may take before the host serves anyway.
const CLEANUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What this process is.
#[derive(Debug, Clone)]
pub enum Role {
    /// `hati serve`: one machine does everything.
    Standalone,
    /// `hati gateway`: clients talk to it; nodes run the sessions.
    Gateway,
    /// `hati node`: runs sessions for a gateway.
    Node(crate::node::NodeSettings),
}

/// Runs the host in `role` until Ctrl-C or SIGTERM.
pub async fn run(
    role: Role,
    config: Config,
    config_path: Option<PathBuf>,
    state_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let gateway_role = matches!(role, Role::Gateway);
    let serves_clients = !matches!(role, Role::Node(_));
    let (host, control_queue) = Host::with_media(config, config_path, state_dir, !gateway_role)?;
    let host = Arc::new(host);
    if gateway_role {
        let settings = host.config().gateway.clone();
        let token = crate::cluster::link::JoinToken::for_gateway(&host.state, &host.identity)?;
        let gateway = crate::gateway::Gateway::new(
            settings,
            token,
            host.config().network.bind,
            host.events.clone(),
        )
        .await
        .context("cannot start the gateway")?;
        let _ = host.gateway.set(Arc::new(gateway));
    }
    // Before any server accepts a session, so nothing of a new session is removed. A gateway
    // runs no sessions (no apps, sinks or sound server) here: only its state needs tidying.
    if gateway_role {
        host.state.remove_stale_temp_files();
    } else if tokio::time::timeout(CLEANUP_TIMEOUT, host.cleanup_stale())
        .await
        .is_err()
    {
        tracing::warn!(
            "start-up clean-up did not finish within {} s",
            CLEANUP_TIMEOUT.as_secs()
        );
    }
    let config = host.config();
    let bind = config.network.bind;
    let listen = |port: u16, key: &'static str| async move {
        let address = SocketAddr::new(bind, port);
        TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} (set by {key} in the config)"))
    };
    let (http, https) = if serves_clients {
        (
            Some(listen(host.ports.http, "network.http_port").await?),
            Some(listen(host.ports.https, "network.https_port").await?),
        )
    } else {
        (None, None)
    };
    let rtsp = if gateway_role {
        None
    } else {
        Some(listen(host.ports.rtsp, "network.rtsp_port").await?)
    };
    let node_link = match host.gateway.get() {
        Some(gateway) => {
            let address = gateway.settings().node_listen;
            Some(TcpListener::bind(address).await.with_context(|| {
                format!("cannot listen on {address} (set by gateway.node_listen in the config)")
            })?)
        }
        None => None,
    };
    let tls = crate::tls::server_config(&host.identity).context("cannot set up TLS")?;
    let admin = crate::admin::AdminSocket::bind(&host.state)?;
    let admin_tcp = match config.admin.listen {
        Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
            format!("cannot listen on {address} (set by admin.listen in the config)")
        })?),
        None => None,
    };
    let (shutdown_tx, shutdown) = watch::channel(false);
    let mut extra_tasks = Vec::new();

    let mdns = if config.network.mdns && serves_clients {
        match crate::mdns::Advertisement::start(&config.hostname, host.ports.http, bind) {
            Ok(advert) => Some(advert),
            Err(error) => {
                tracing::warn!(%error, "mDNS advertisement failed; clients must add this host by address");
                None
            }
        }
    } else {
        None
    };

    match host.codecs.as_ref() {
        CodecSupport { h264: None, .. } => tracing::error!(
            "no H.264 encoder found in GStreamer (see [gstreamer.video] h264_encoders): clients cannot stream"
        ),
        codecs => {
            let [h264, hevc, av1] = codecs.names();
            tracing::info!(?h264, ?hevc, ?av1, "video encoders")
        }
    }
    let paired = host
        .clients
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .list()
        .len();
    let address_of = |listener: &Option<TcpListener>| {
        listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or_else(|| "-".to_owned(), |a| a.to_string())
    };
    match &role {
        Role::Node(settings) => tracing::info!(
            gateway = %settings.gateway,
            name = %settings.name,
            capacity = settings.capacity,
            rtsp = %address_of(&rtsp),
            state_dir = %host.state.path().display(),
            "hati is running as a node; it joins its gateway, where clients pair and launch"
        ),
        _ => tracing::info!(
            hostname = %config.hostname,
            http = %address_of(&http),
            https = %address_of(&https),
            node_link = %address_of(&node_link),
            state_dir = %host.state.path().display(),
            paired_clients = paired,
            connection_limit = host.connections.limit(),
            "hati is running{}; pair from Moonlight, then enter the PIN with `{}`",
            if gateway_role { " as a gateway" } else { "" },
            host.pair_command
        ),
    }

    if let Some(listener) = admin_tcp {
        tracing::info!(address = %listener.local_addr()?, "admin API listening (bearer token required)");
        // Joined like the others below; it ends on the same shutdown signal.
        extra_tasks.push(tokio::spawn(crate::admin::serve_tcp(
            listener,
            host.clone(),
            shutdown.clone(),
        )));
    }
    let mut tasks = vec![
        tokio::spawn(admin.serve(host.clone(), shutdown.clone())),
        tokio::spawn(publish_pairing_events(host.clone(), shutdown.clone())),
        tokio::spawn(reload_on_sighup(host.clone(), shutdown.clone())),
    ];
    if let (Some(http), Some(https)) = (http, https) {
        tasks.push(tokio::spawn(crate::http::serve_http(
            http,
            host.clone(),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(crate::http::serve_https(
            https,
            tls,
            host.clone(),
            shutdown.clone(),
        )));
    }
    if let (Some(listener), Some(gateway)) = (node_link, host.gateway.get()) {
        let node_tls = crate::cluster::link::gateway_tls(&host.identity)
            .context("cannot set up the node link's TLS")?;
        tasks.push(tokio::spawn(crate::gateway::node_link::serve(
            listener,
            gateway.clone(),
            node_tls,
            shutdown.clone(),
        )));
        // Nodes re-dial within seconds of a restart; what none of them reported is stale.
        let gateway = gateway.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(crate::cluster::NODE_TIMEOUT * 2).await;
            gateway.reconcile().await;
        }));
    }
    if let Role::Node(settings) = &role {
        tasks.push(tokio::spawn(crate::node::run(
            host.clone(),
            settings.clone(),
            shutdown.clone(),
        )));
    }
    let control = match rtsp {
        Some(rtsp) => {
            tasks.push(tokio::spawn(crate::rtsp::serve(
                rtsp,
                crate::rtsp::RtspContext {
                    sessions: host.sessions.clone(),
                    ports: host.ports,
                    connections: host.connections.clone(),
                },
                shutdown.clone(),
            )));
            tasks.push(tokio::spawn(publish_stream_stats(
                host.clone(),
                shutdown.clone(),
            )));
            for (socket, kind) in [
                (
                    host.sessions.services().media.video.clone(),
                    StreamKind::Video,
                ),
                (
                    host.sessions.services().media.audio.clone(),
                    StreamKind::Audio,
                ),
            ] {
                tasks.push(tokio::spawn(crate::session::pings::listen(
                    socket,
                    kind,
                    host.sessions.clone(),
                    shutdown.clone(),
                )));
            }
            let control_address = SocketAddr::new(bind, host.ports.control);
            Some(
                crate::control::spawn(
                    control_address,
                    host.sessions.clone(),
                    control_queue,
                    shutdown.clone(),
                )
                .context("cannot start the control stream's thread")?,
            )
        }
        None => None,
    };
    let control = async move {
        match control {
            Some(control) => control.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = wait_for_shutdown_signal() => {}
        result = control => {
            // The control stream only returns early when it cannot start.
            result.map_err(|_| anyhow::anyhow!("the control stream's thread ended"))??;
        }
    }
    tracing::info!("shutting down");
    host.sessions.end_all().await;
    // The termination messages went into the control task's queue; wait until it has sent them.
    let (flushed, sent) = tokio::sync::oneshot::channel();
    if host
        .sessions
        .services()
        .control
        .send(ControlCommand::Flush(flushed))
        .is_ok()
    {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), sent).await;
    }
    let _ = shutdown_tx.send(true);
    for task in tasks.into_iter().chain(extra_tasks) {
        let _ = task.await;
    }
    drop(mdns);
    // Threads may still hold the host (and so the audio server) when the process exits: a
    // private sound server is stopped here, not left to a `Drop` that might not run.
    let audio = host.sessions.services().audio.clone();
    let _ = tokio::task::spawn_blocking(move || audio.stop_private_daemon()).await;
    Ok(())
}

/// Reloads the config on SIGHUP, as daemons do.
async fn reload_on_sighup(host: Arc<Host>, mut shutdown: watch::Receiver<bool>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    loop {
        tokio::select! {
            _ = hangup.recv() => { let _ = host.reload(); }
            _ = shutdown.changed() => return,
        }
    }
}

/// Republishes the pairing state machine's events on the host's bus.
async fn publish_pairing_events(host: Arc<Host>, mut shutdown: watch::Receiver<bool>) {
    use crate::pairing::PairingEvent;
    let mut pairing = host.pairing.subscribe();
    loop {
        let event = tokio::select! {
            event = pairing.recv() => event,
            _ = shutdown.changed() => return,
        };
        let event = match event {
            Ok(PairingEvent::Waiting {
                attempt,
                address,
                device_name,
            }) => Event::PairingWaiting {
                attempt,
                address,
                device_name,
            },
            Ok(PairingEvent::Paired { attempt, client }) => Event::Paired {
                attempt,
                client_id: client.id,
                name: client.name,
            },
            Ok(PairingEvent::Failed { attempt, reason }) => {
                Event::PairingFailed { attempt, reason }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        host.events.publish(event);
    }
}

/// Publishes every streaming session's statistics once a second.
async fn publish_stream_stats(host: Arc<Host>, mut shutdown: watch::Receiver<bool>) {
    use std::collections::HashMap;
    use std::sync::atomic::Ordering::Relaxed;
    let mut previous: HashMap<u32, (u64, u64)> = HashMap::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let mut seen = HashMap::new();
        for session in host.sessions.all() {
            let Some((video, _)) = session.stream_counters() else {
                continue;
            };
            let latency = session.host_latency_us().unwrap_or((0, 0));
            let frames = video.samples.load(Relaxed);
            let bytes = video.bytes_sent.load(Relaxed);
            let (last_frames, last_bytes) = previous.get(&session.id).copied().unwrap_or((0, 0));
            seen.insert(session.id, (frames, bytes));
            host.events.publish(Event::StreamStats {
                session: session.id,
                fps: frames.saturating_sub(last_frames),
                bitrate_kbps: bytes.saturating_sub(last_bytes) * 8 / 1000,
                video_packets: video.packets_sent.load(Relaxed),
                video_frames: frames,
                counters: session.metrics.snapshot(),
                fec_percentage: session.config.streaming.fec_percentage,
                encoder_bitrate_kbps: session.encoder_bitrate_kbps().unwrap_or(0),
                frames_backlogged: video.frames_backlogged.load(Relaxed),
                host_latency_p50_ms: f64::from(latency.0) / 1000.0,
                host_latency_p99_ms: f64::from(latency.1) / 1000.0,
            });
        }
        previous = seen;
    }
}

async fn wait_for_shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match terminate.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
}
