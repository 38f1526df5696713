//! `hati gateway`: the one address clients talk to in front of many nodes.
//!
//! The gateway keeps the host identity, the paired clients and the app catalog (it is a
//! [`crate::host::Host`] that runs no sessions itself), and a table of nodes and of the sessions
//! placed on them. A launch picks a node ([`placement`]), gives the session four ports on the
//! front address ([`ports`]), starts forwarding them to the node ([`forward`]), and asks the
//! node, over its link ([`node_link`]), to create the session with those ports; the client gets
//! the front RTSP port in `sessionUrl0` and the node names the front ports in its SETUP replies.
//! Nodes joining, reporting and leaving are in [`nodes`]; browsers' signalling in [`browser`].
//!
//! Invariants: a session is in the table from its placement until it ends; while it is there
//! its ports are taken and its node's `placed` counts it. The table's lock is never held across
//! an `.await`.

mod browser;
pub mod dnat;
pub mod forward;
pub mod node_link;
mod nodes;
pub mod placement;
pub mod ports;
pub mod relay;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;

pub use self::browser::{BrowserChannel, BrowserRequest, ToPage};
use self::forward::{Forwarder, Route};
use self::nodes::NodeEntry;
pub use self::nodes::NodeView;
use self::ports::PortAllocator;
use crate::cluster::PortSet;
use crate::cluster::link::JoinToken;
use crate::cluster::protocol::{GatewayMessage, LaunchOrder};
use crate::config::GatewayConfig;
use crate::events::{EndReason, Event, EventBus};
use crate::session::{LaunchParams, MoonlightKey};

/// How long a node may take to start a session's app (a Docker app may pull nothing but still
/// takes seconds to start).
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a node may take to resume or stop a session.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How many sessions of lost nodes the gateway remembers (see `Table::lost`).
const LOST_REMEMBERED: usize = 4096;
/// Signalling messages queued for one page.
const BROWSER_QUEUE: usize = 64;
/// `surroundAudioInfo` for stereo.
const STEREO: u32 = 0x0003_0002;

/// Locks a table, going on after a panic elsewhere (the table stays consistent: every change
/// is made whole under the lock).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a launch, resume or stop through the gateway failed. The text reaches the client.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// This client already has a session.
    #[error("An app is already running on this host")]
    AlreadyRunning,
    /// `/resume` without a session.
    #[error("No app is running; launch one")]
    NotRunning,
    /// Every node is full, or none has joined.
    #[error("no free node: {0}")]
    NoFreeNode(String),
    /// The front port range is used up.
    #[error("no free front ports: all {0} port sets of gateway.front_ports are in use")]
    NoFreePorts(usize),
    /// The node refused or failed.
    #[error("{0}")]
    Node(String),
}

impl GatewayError {
    /// The status Moonlight shows with it.
    pub fn status(&self) -> u32 {
        match self {
            Self::AlreadyRunning => 400,
            Self::NotRunning | Self::NoFreeNode(_) | Self::NoFreePorts(_) => 503,
            Self::Node(_) => 500,
        }
    }
}

/// A client's launch, as the gateway's HTTPS server received it.
#[derive(Debug)]
pub struct ClientLaunch {
    /// The client's certificate fingerprint.
    pub client_id: String,
    /// Its address.
    pub client_ip: IpAddr,
    /// The local address the request arrived on (DNAT rules match it).
    pub front_ip: IpAddr,
    /// The app's ID.
    pub app_id: u32,
    /// The app's title.
    pub app: String,
    /// What `/launch` carried.
    pub params: LaunchParams,
}

/// Where a placed session is in its life, as its node reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlacedState {
    /// The node is starting it.
    Launching,
    /// Its app runs; the client has not streamed yet.
    Launched,
    /// The client streams.
    Streaming,
    /// The client went away; the session waits for a resume.
    Paused,
}

/// A session placed on a node.
#[derive(Debug, Clone, Serialize)]
pub struct PlacedSession {
    /// The session's ID (the node uses the same).
    pub id: u32,
    /// The node that runs it.
    pub node: u32,
    /// The client's certificate fingerprint.
    #[serde(skip)]
    pub client_id: String,
    /// The client's short ID.
    pub client: String,
    /// Its address.
    pub client_ip: IpAddr,
    /// The app's ID.
    pub app_id: u32,
    /// The app's title.
    pub app: String,
    /// The session's front ports.
    pub front: PortSet,
    /// Its state.
    pub state: PlacedState,
    /// Its node's latest figures (once a second while it streams).
    pub stats: Option<PlacedStats>,
}

/// A placed session's figures as its node reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlacedStats {
    /// Video frames sent in the last second.
    pub fps: u64,
    /// Video bitrate sent in the last second, kbit/s.
    pub bitrate_kbps: u64,
    /// Video frames sent in total.
    pub video_frames: u64,
}

#[derive(Default)]
struct Table {
    nodes: BTreeMap<u32, NodeEntry>,
    /// Changed only through `insert_session` and `remove_session`, which keep `by_client`.
    sessions: HashMap<u32, PlacedSession>,
    /// Client ID → its sessions (one, unless nodes reported more after a restart): every
    /// `/launch`, `/resume` and `/cancel` looks its client up, and a scan of 10 000 sessions'
    /// IDs under the lock was most of a launch's cost at that scale
    /// (`cargo bench --bench gateway_scale`).
    by_client: HashMap<String, Vec<u32>>,
    next_node: u32,
    /// Sessions ended because their node was lost, newest last (at most [`LOST_REMEMBERED`]):
    /// a node that was only cut off reports them when it re-joins, and is told to stop them,
    /// since their clients were told they ended.
    lost: std::collections::VecDeque<u32>,
}

impl Table {
    fn insert_session(&mut self, session: PlacedSession) {
        self.by_client
            .entry(session.client_id.clone())
            .or_default()
            .push(session.id);
        self.sessions.insert(session.id, session);
    }

    fn remove_session(&mut self, id: u32) -> Option<PlacedSession> {
        let session = self.sessions.remove(&id)?;
        if let Some(ids) = self.by_client.get_mut(&session.client_id) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                self.by_client.remove(&session.client_id);
            }
        }
        Some(session)
    }

    fn session_of(&self, client_id: &str) -> Option<&PlacedSession> {
        let ids = self.by_client.get(client_id)?;
        ids.iter().find_map(|id| self.sessions.get(id))
    }
}

/// The gateway's state.
pub struct Gateway {
    settings: GatewayConfig,
    token: JoinToken,
    relay_bind: IpAddr,
    table: Mutex<Table>,
    ports: Mutex<PortAllocator>,
    forwarder: Forwarder,
    events: EventBus,
    next_request: AtomicU64,
}

impl Gateway {
    /// A gateway with no node yet. `relay_bind` is the address relays listen on.
    pub async fn new(
        settings: GatewayConfig,
        token: JoinToken,
        relay_bind: IpAddr,
        events: EventBus,
    ) -> anyhow::Result<Self> {
        let range = settings
            .front_port_range()
            .ok_or_else(|| anyhow::anyhow!("gateway.front_ports is not a port range"))?;
        let forwarder = Forwarder::open(
            settings.forwarding,
            &settings.nft_table,
            settings.masquerade,
        )
        .await?;
        Ok(Self {
            ports: Mutex::new(PortAllocator::new(range)),
            settings,
            token,
            relay_bind,
            table: Mutex::default(),
            forwarder,
            events,
            next_request: AtomicU64::new(1),
        })
    }

    /// The join token nodes need.
    pub fn token(&self) -> &JoinToken {
        &self.token
    }

    /// The gateway's settings.
    pub fn settings(&self) -> &GatewayConfig {
        &self.settings
    }

    /// The address for the client's stream URL: `gateway.front_address`, else the one its
    /// request arrived on.
    pub fn front_address(&self, arrived_on: IpAddr) -> IpAddr {
        self.settings.front_address.unwrap_or(arrived_on)
    }

    /// The client's session: its ID and app.
    pub fn session_of(&self, client_id: &str) -> Option<PlacedSession> {
        lock(&self.table).session_of(client_id).cloned()
    }

    /// The codecs every joined node encodes (what `/serverinfo` may offer: a launch can land on
    /// any node); `None` before a node joined.
    pub fn common_codecs(&self) -> Option<Vec<String>> {
        let table = lock(&self.table);
        let mut nodes = table.nodes.values();
        let mut common = nodes.next()?.codecs.clone();
        for node in nodes {
            common.retain(|codec| node.codecs.contains(codec));
        }
        Some(common)
    }

    /// Every placed session.
    pub fn sessions(&self) -> Vec<PlacedSession> {
        let mut sessions: Vec<_> = lock(&self.table).sessions.values().cloned().collect();
        sessions.sort_by_key(|s| s.id);
        sessions
    }

    /// Relay counters of a session (relay forwarding only).
    pub fn relay_stats(&self, session: u32) -> Option<relay::RelayStats> {
        self.forwarder.relay_stats(session)
    }

    /// The front port sets: (free, all). Every set is free again once every session ended.
    pub fn free_port_sets(&self) -> (usize, usize) {
        let ports = lock(&self.ports);
        (ports.available(), ports.capacity())
    }

    /// Places a client's launch on a node and returns the session's front ports.
    pub async fn launch(&self, launch: ClientLaunch) -> Result<PortSet, GatewayError> {
        self.place(launch).await.map(|session| session.front)
    }

    /// Places a client's launch on a node; the session as placed.
    async fn place(&self, launch: ClientLaunch) -> Result<PlacedSession, GatewayError> {
        // A session of this client that never streamed is a start that failed on the client's
        // side (it launches again instead of resuming): it makes way, as on a single host.
        if let Some(stale) = self.session_of(&launch.client_id) {
            if matches!(stale.state, PlacedState::Launching | PlacedState::Launched) {
                tracing::info!(
                    session = stale.id,
                    "the client launched again before its stream started; ending the stale session"
                );
                self.stop(stale.id, EndReason::Cancelled).await?;
            } else {
                return Err(GatewayError::AlreadyRunning);
            }
        }
        let (session, node_id, node_name, route, link) = {
            let mut table = lock(&self.table);
            if table.session_of(&launch.client_id).is_some() {
                return Err(GatewayError::AlreadyRunning);
            }
            let Some(node_id) = placement::choose(&table.nodes) else {
                return Err(GatewayError::NoFreeNode(if table.nodes.is_empty() {
                    "no node has joined this gateway".into()
                } else {
                    format!(
                        "all {} nodes are running as many sessions as they may",
                        table.nodes.len()
                    )
                }));
            };
            let front = {
                let mut ports = lock(&self.ports);
                match ports.allocate() {
                    Some(front) => front,
                    None => return Err(GatewayError::NoFreePorts(ports.capacity())),
                }
            };
            let id = loop {
                let id = u32::from_be_bytes(crate::crypto::random::<4>()) & 0x7fff_ffff;
                if id != 0 && !table.sessions.contains_key(&id) {
                    break id;
                }
            };
            let Some(node) = table.nodes.get_mut(&node_id) else {
                lock(&self.ports).release(front);
                return Err(GatewayError::NoFreeNode("the chosen node left".into()));
            };
            node.placed += 1;
            let route = Route {
                front_ip: self.route_front_ip(launch.front_ip),
                front,
                client_ip: crate::net::canonical_ip(launch.client_ip),
                node_ip: node.address,
                node: node.ports,
            };
            let node_name = node.name.clone();
            let link = node.link.clone();
            table.insert_session(PlacedSession {
                id,
                node: node_id,
                client: crate::state::clients::short_id(&launch.client_id).to_owned(),
                client_id: launch.client_id.clone(),
                client_ip: launch.client_ip,
                app_id: launch.app_id,
                app: launch.app.clone(),
                front,
                state: PlacedState::Launching,
                stats: None,
            });
            (id, node_id, node_name, route, link)
        };
        drop(link);
        // A browser's media goes over ICE, not the front ports.
        let moonlight = launch.params.key.is_some();
        if moonlight && let Err(error) = self.forwarder.install(session, route).await {
            self.forget(session).await;
            return Err(GatewayError::Node(error));
        }
        let order = |request| {
            GatewayMessage::Launch(Box::new(LaunchOrder {
                request,
                session,
                client_id: launch.client_id.clone(),
                client_ip: launch.client_ip,
                app_id: launch.app_id,
                app: launch.app.clone(),
                mode: launch.params.mode,
                surround_info: launch.params.surround_info,
                key: launch
                    .params
                    .key
                    .as_ref()
                    .map(crate::session::MoonlightKey::to_wire),
                front: route.front,
            }))
        };
        if let Err(error) = self.request(node_id, order, LAUNCH_TIMEOUT).await {
            tracing::warn!(session, node = %node_name, %error, "the node did not start the session");
            self.forget(session).await;
            return Err(error);
        }
        if let Some(placed) = lock(&self.table).sessions.get_mut(&session)
            && placed.state == PlacedState::Launching
        {
            placed.state = PlacedState::Launched;
        }
        tracing::info!(session, node = %node_name, front_rtsp = route.front.rtsp, app = %launch.app, "session placed");
        self.events.publish(Event::SessionLaunched {
            session,
            client: crate::state::clients::short_id(&launch.client_id).to_owned(),
            app: launch.app.clone(),
        });
        self.events.publish(Event::SessionPlaced {
            session,
            node: node_id,
            node_name,
            front_rtsp_port: route.front.rtsp,
        });
        lock(&self.table)
            .sessions
            .get(&session)
            .cloned()
            .ok_or_else(|| GatewayError::Node("the session ended as it started".into()))
    }

    /// A Moonlight client's `/resume`: its node re-keys the session.
    pub async fn resume(
        &self,
        client_id: &str,
        key: &MoonlightKey,
    ) -> Result<PortSet, GatewayError> {
        let session = self
            .session_of(client_id)
            .filter(|s| s.state != PlacedState::Launching)
            .ok_or(GatewayError::NotRunning)?;
        let key = key.to_wire();
        self.request(
            session.node,
            |request| GatewayMessage::Resume {
                request,
                session: session.id,
                key,
            },
            REQUEST_TIMEOUT,
        )
        .await?;
        self.events.publish(Event::SessionResumed {
            session: session.id,
        });
        Ok(session.front)
    }

    /// `/cancel` of a client: its session ends on its node; false without one.
    pub async fn cancel(&self, client_id: &str) -> bool {
        match self.session_of(client_id) {
            Some(session) => {
                let _ = self.stop(session.id, EndReason::Cancelled).await;
                true
            }
            None => false,
        }
    }

    /// Ends session `id` on its node (and here, whatever the node answers).
    pub async fn stop(&self, id: u32, reason: EndReason) -> Result<(), GatewayError> {
        let node = lock(&self.table).sessions.get(&id).map(|s| s.node);
        let Some(node) = node else {
            return Err(GatewayError::NotRunning);
        };
        let result = self
            .request(
                node,
                |request| GatewayMessage::Stop {
                    request,
                    session: id,
                    reason,
                },
                REQUEST_TIMEOUT,
            )
            .await;
        self.ended(id, reason).await;
        result
    }

    /// Sends a request to a node and waits for its reply.
    async fn request(
        &self,
        node: u32,
        message: impl FnOnce(u64) -> GatewayMessage,
        timeout: Duration,
    ) -> Result<(), GatewayError> {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply) = oneshot::channel();
        let link = {
            let mut table = lock(&self.table);
            let entry = table
                .nodes
                .get_mut(&node)
                .ok_or_else(|| GatewayError::Node("the session's node went away".into()))?;
            entry.pending.insert(request, reply_tx);
            entry.link.clone()
        };
        let gone = || GatewayError::Node("the session's node went away".into());
        if tokio::time::timeout(timeout, link.send(message(request)))
            .await
            .map_err(|_| gone())?
            .is_err()
        {
            return Err(gone());
        }
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(error))) => Err(GatewayError::Node(error)),
            Ok(Err(_)) => Err(gone()),
            Err(_) => {
                if let Some(entry) = lock(&self.table).nodes.get_mut(&node) {
                    entry.pending.remove(&request);
                }
                Err(GatewayError::Node(format!(
                    "the node did not answer within {} s",
                    timeout.as_secs()
                )))
            }
        }
    }

    /// The front address forwarding uses: relays listen on the configured bind address; DNAT
    /// rules match the address the request arrived on.
    fn route_front_ip(&self, arrived_on: IpAddr) -> IpAddr {
        match self.settings.forwarding {
            crate::config::Forwarding::Relay => self.relay_bind,
            _ => crate::net::canonical_ip(arrived_on),
        }
    }

    /// Removes a session from the table and stops its forwarding; the session it was.
    async fn forget(&self, id: u32) -> Option<PlacedSession> {
        let session = {
            let mut table = lock(&self.table);
            let session = table.remove_session(id)?;
            if let Some(node) = table.nodes.get_mut(&session.node) {
                node.placed = node.placed.saturating_sub(1);
            }
            lock(&self.ports).release(session.front);
            session
        };
        self.forwarder.remove(id).await;
        Some(session)
    }

    /// A session ended (its node said so, it was stopped, or its node was lost).
    async fn ended(&self, id: u32, reason: EndReason) {
        if self.forget(id).await.is_some() {
            tracing::info!(session = id, ?reason, "session ended");
            self.events.publish(Event::SessionEnded {
                session: id,
                reason,
            });
        }
    }

    /// Once nodes had time to re-dial after a start, drops the forwarding of sessions none of
    /// them reported (DNAT rules a previous run left for streams that ended meanwhile).
    pub async fn reconcile(&self) {
        let keep: Vec<u32> = lock(&self.table).sessions.keys().copied().collect();
        self.forwarder.retain(&keep).await;
    }
}

#[cfg(test)]
mod tests;
