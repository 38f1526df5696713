//! The gateway's nodes: admission (and what a re-joining node reports), heartbeats, replies,
//! session reports, and taking a lost node out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::forward::Route;
use super::{
    Gateway, LOST_REMEMBERED, PlacedSession, PlacedState, PlacedStats, ToPage, lock, placement,
};
use crate::cluster::PortSet;
use crate::cluster::protocol::{GatewayMessage, RunningSession, SessionChange};
use crate::events::{EndReason, Event};

/// A connected node.
pub(crate) struct NodeEntry {
    pub(super) name: String,
    pub(super) version: String,
    pub(super) address: IpAddr,
    pub(super) ports: PortSet,
    pub(super) capacity: u32,
    pub(super) codecs: Vec<String>,
    pub(super) fingerprint: String,
    pub(super) connected_since: SystemTime,
    pub(super) load: f32,
    pub(super) running: u32,
    pub(super) placed: u32,
    pub(super) link: mpsc::Sender<GatewayMessage>,
    pub(super) pending: HashMap<u64, oneshot::Sender<Option<String>>>,
    /// Browsers playing here: what the node sends each one's page.
    pub(super) browsers: HashMap<u64, mpsc::Sender<ToPage>>,
}

impl placement::Slots for NodeEntry {
    fn capacity(&self) -> u32 {
        self.capacity
    }
    fn placed(&self) -> u32 {
        self.placed
    }
    fn load(&self) -> f32 {
        self.load
    }
}

/// A node as listings show it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// The gateway's number for it.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// Hati's version on it.
    pub version: String,
    /// Where streams are forwarded.
    pub address: IpAddr,
    /// Sessions it may run together.
    pub capacity: u32,
    /// Sessions placed on it.
    pub sessions: u32,
    /// Its CPU load, 0.0–1.0.
    pub load: f32,
    /// Codecs it encodes.
    pub codecs: Vec<String>,
    /// When it (re)joined, seconds since the Unix epoch.
    pub connected_since: u64,
}

fn placed_from_report(reported: &RunningSession, node: u32) -> PlacedSession {
    PlacedSession {
        id: reported.session,
        node,
        client: crate::state::clients::short_id(&reported.client_id).to_owned(),
        client_id: reported.client_id.clone(),
        client_ip: reported.client_ip,
        app_id: reported.app_id,
        app: reported.app.clone(),
        front: reported.front,
        state: if reported.streaming {
            PlacedState::Streaming
        } else {
            PlacedState::Launched
        },
        stats: None,
    }
}

impl Gateway {
    /// Every connected node.
    pub fn nodes(&self) -> Vec<NodeView> {
        lock(&self.table)
            .nodes
            .iter()
            .map(|(id, node)| NodeView {
                id: *id,
                name: node.name.clone(),
                version: node.version.clone(),
                address: node.address,
                capacity: node.capacity,
                sessions: node.placed,
                load: node.load,
                codecs: node.codecs.clone(),
                connected_since: node
                    .connected_since
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            })
            .collect()
    }

    /// A node's report about one of its sessions.
    pub(crate) async fn session_changed(&self, node: u32, session: u32, change: SessionChange) {
        let ours = lock(&self.table)
            .sessions
            .get(&session)
            .is_some_and(|s| s.node == node);
        if !ours {
            return;
        }
        match change {
            SessionChange::Ended { reason } => self.ended(session, reason).await,
            SessionChange::Streaming | SessionChange::Paused => {
                if let Some(placed) = lock(&self.table).sessions.get_mut(&session) {
                    placed.state = if change == SessionChange::Streaming {
                        PlacedState::Streaming
                    } else {
                        PlacedState::Paused
                    };
                }
            }
        }
    }

    /// A node's figures for one of its sessions.
    pub(crate) fn stats(&self, node: u32, session: u32, stats: PlacedStats) {
        if let Some(placed) = lock(&self.table).sessions.get_mut(&session)
            && placed.node == node
        {
            placed.stats = Some(stats);
        }
    }

    /// A node's answer to request `request`.
    pub(crate) fn replied(&self, node: u32, request: u64, error: Option<String>) {
        let waiter = lock(&self.table)
            .nodes
            .get_mut(&node)
            .and_then(|entry| entry.pending.remove(&request));
        if let Some(waiter) = waiter {
            let _ = waiter.send(error);
        }
    }

    /// A node's heartbeat.
    pub(crate) fn heartbeat(&self, node: u32, sessions: u32, load: f32) {
        if let Some(entry) = lock(&self.table).nodes.get_mut(&node) {
            entry.running = sessions;
            entry.load = if load.is_finite() {
                load.clamp(0.0, 1.0)
            } else {
                1.0
            };
        }
    }

    /// Admits a node: registers it and adopts the sessions it reports. A node re-dialling with
    /// the same certificate replaces its old entry (whose link is closing) without ending its
    /// sessions. Returns the node's number, or why it was refused.
    pub(crate) async fn admit(
        &self,
        hello: crate::cluster::protocol::Hello,
        fingerprint: String,
        link_peer: IpAddr,
        link: mpsc::Sender<GatewayMessage>,
    ) -> Result<u32, String> {
        let address = crate::net::canonical_ip(hello.address.unwrap_or(link_peer));
        let mut adopted = Vec::new();
        let mut refused = Vec::new();
        let id = {
            let mut table = lock(&self.table);
            let previous = table
                .nodes
                .iter()
                .find(|(_, node)| node.fingerprint == fingerprint)
                .map(|(id, _)| *id);
            let previous = previous.and_then(|id| table.nodes.remove(&id).map(|_| id));
            if previous.is_none()
                && table.nodes.len() >= usize::try_from(self.settings.max_nodes).unwrap_or(0)
            {
                return Err(format!(
                    "the gateway has its {} nodes (gateway.max_nodes)",
                    self.settings.max_nodes
                ));
            }
            table.next_node = table.next_node.wrapping_add(1).max(1);
            let id = table.next_node;
            let mut placed = 0;
            for reported in &hello.sessions {
                if table.lost.contains(&reported.session) {
                    refused.push(reported.session);
                    continue;
                }
                match table.sessions.get_mut(&reported.session) {
                    // Known (the link dropped and came back before the node was taken out).
                    Some(session)
                        if Some(session.node) == previous && session.front == reported.front =>
                    {
                        session.node = id;
                        placed += 1;
                        adopted.push((reported.session, self.route_for(reported, address, &hello)));
                    }
                    Some(_) => refused.push(reported.session),
                    None => {
                        if lock(&self.ports).claim(reported.front) {
                            table.insert_session(placed_from_report(reported, id));
                            placed += 1;
                            adopted.push((
                                reported.session,
                                self.route_for(reported, address, &hello),
                            ));
                        } else {
                            refused.push(reported.session);
                        }
                    }
                }
            }
            table.nodes.insert(
                id,
                NodeEntry {
                    name: hello.name.clone(),
                    version: hello.version.clone(),
                    address,
                    ports: hello.ports,
                    capacity: hello.capacity,
                    codecs: hello.codecs.clone(),
                    fingerprint,
                    connected_since: SystemTime::now(),
                    load: 0.0,
                    running: placed,
                    placed,
                    link: link.clone(),
                    pending: HashMap::new(),
                    browsers: HashMap::new(),
                },
            );
            id
        };
        for (session, route) in &adopted {
            if let Err(error) = self.forwarder.install(*session, *route).await {
                tracing::warn!(session, %error, "cannot forward a re-learnt session");
            }
        }
        for session in refused {
            tracing::warn!(session, node = %hello.name, "the node reported a session that ended here (its node was lost) or whose ports are taken; stopping it");
            let _ = link.try_send(GatewayMessage::Stop {
                request: 0,
                session,
                reason: EndReason::Stopped,
            });
        }
        tracing::info!(node = id, name = %hello.name, %address, capacity = hello.capacity, sessions = adopted.len(), "node joined");
        self.events.publish(Event::NodeJoined {
            node: id,
            name: hello.name,
            address,
            capacity: hello.capacity,
            sessions: adopted.len(),
        });
        Ok(id)
    }

    fn route_for(
        &self,
        reported: &RunningSession,
        node_ip: IpAddr,
        hello: &crate::cluster::protocol::Hello,
    ) -> Route {
        let front_ip = match (self.settings.forwarding, self.settings.front_address) {
            (crate::config::Forwarding::Relay, _) => self.relay_bind,
            (_, Some(front)) => front,
            // A DNAT rule kept from before the restart already matches; a new one needs an
            // address: the unspecified one of the client's family matches none, so the
            // operator sets gateway.front_address for DNAT (the docs say so).
            (_, None) => match reported.client_ip {
                IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            },
        };
        Route {
            front_ip,
            front: reported.front,
            client_ip: crate::net::canonical_ip(reported.client_ip),
            node_ip,
            node: hello.ports,
        }
    }

    /// A node's link closed or went silent: it is taken out and its sessions end with
    /// `node_lost`. `link` tells this link from a newer one of the same node.
    pub(crate) async fn node_lost(&self, node: u32, reason: &str) {
        let (name, sessions) = {
            let mut table = lock(&self.table);
            let Some(entry) = table.nodes.remove(&node) else {
                return;
            };
            let sessions: Vec<u32> = table
                .sessions
                .values()
                .filter(|s| s.node == node)
                .map(|s| s.id)
                .collect();
            for session in &sessions {
                if table.lost.len() == LOST_REMEMBERED {
                    table.lost.pop_front();
                }
                table.lost.push_back(*session);
            }
            (entry.name, sessions)
        };
        tracing::warn!(node, %name, %reason, sessions = sessions.len(), "node lost");
        self.events.publish(Event::NodeLost {
            node,
            name,
            reason: reason.to_owned(),
        });
        for session in sessions {
            self.ended(session, EndReason::NodeLost).await;
        }
    }
}
