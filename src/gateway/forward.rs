//! One interface over the three ways front ports reach a node (`gateway.forwarding`): the
//! user-space [`Relay`], nftables [`Dnat`], or an operator's own forwarding (nothing to do).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;

use super::dnat::Dnat;
use super::lock;
use super::relay::Relay;
use crate::cluster::PortSet;
use crate::config::Forwarding;

/// Where one session's front ports go.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The front address (the relay's sockets, the DNAT rules' destination).
    pub front_ip: IpAddr,
    /// The session's front ports.
    pub front: PortSet,
    /// The only address the front ports accept traffic from.
    pub client_ip: IpAddr,
    /// The node's address.
    pub node_ip: IpAddr,
    /// The node's ports.
    pub node: PortSet,
}

/// The gateway's forwarding.
pub enum Forwarder {
    /// A relay per session.
    Relay(Mutex<HashMap<u32, Relay>>),
    /// Kernel rules, and the sessions that have them (read back at start: a restarted
    /// gateway finds the rules of streams that kept running).
    Dnat(Dnat, Mutex<HashSet<u32>>),
    /// Someone else forwards.
    External,
}

impl Forwarder {
    /// Sets up the configured kind (`dnat` checks nftables and the sysctl here, so a gateway
    /// that cannot forward says so at start).
    pub async fn open(
        kind: Forwarding,
        table: &str,
        masquerade: bool,
    ) -> Result<Self, super::dnat::DnatError> {
        Ok(match kind {
            Forwarding::Relay => Self::Relay(Mutex::default()),
            Forwarding::Dnat => {
                let dnat = Dnat::open(table, masquerade).await?;
                let existing = dnat
                    .sessions()
                    .await?
                    .into_iter()
                    .filter_map(|session| u32::try_from(session).ok())
                    .collect();
                Self::Dnat(dnat, Mutex::new(existing))
            }
            Forwarding::External => Self::External,
        })
    }

    /// Starts forwarding `route` for `session` (already forwarded: kept as it is).
    pub async fn install(&self, session: u32, route: Route) -> Result<(), String> {
        match self {
            Self::Relay(relays) => {
                if lock(relays).contains_key(&session) {
                    return Ok(());
                }
                let relay = Relay::start(
                    route.front_ip,
                    route.front,
                    route.client_ip,
                    route.node_ip,
                    route.node,
                )
                .await
                .map_err(|error| format!("cannot relay the session's front ports: {error}"))?;
                lock(relays).insert(session, relay);
                Ok(())
            }
            Self::Dnat(dnat, forwarded) => {
                if lock(forwarded).contains(&session) {
                    return Ok(());
                }
                dnat.add(
                    u64::from(session),
                    route.front_ip,
                    route.front,
                    route.client_ip,
                    route.node_ip,
                    route.node,
                )
                .await
                .map_err(|error| format!("cannot forward the session's front ports: {error}"))?;
                lock(forwarded).insert(session);
                Ok(())
            }
            Self::External => Ok(()),
        }
    }

    /// Stops forwarding for `session` (nothing forwarded: nothing happens).
    pub async fn remove(&self, session: u32) {
        match self {
            Self::Relay(relays) => {
                let relay = lock(relays).remove(&session);
                if let Some(relay) = relay {
                    // Its sockets are closed when this returns.
                    relay.stop().await;
                }
            }
            Self::Dnat(dnat, forwarded) => {
                if !lock(forwarded).remove(&session) {
                    return;
                }
                if let Err(error) = dnat.remove(u64::from(session)).await {
                    tracing::warn!(session, %error, "cannot remove the session's DNAT rules");
                }
            }
            Self::External => {}
        }
    }

    /// Drops forwarding of every session not in `keep` (after a restart, once nodes re-reported).
    pub async fn retain(&self, keep: &[u32]) {
        let keep_set: HashSet<u32> = keep.iter().copied().collect();
        match self {
            Self::Relay(relays) => lock(relays).retain(|session, _| keep_set.contains(session)),
            Self::Dnat(dnat, forwarded) => {
                lock(forwarded).retain(|session| keep_set.contains(session));
                let keep: Vec<u64> = keep.iter().copied().map(u64::from).collect();
                if let Err(error) = dnat.retain(&keep).await {
                    tracing::warn!(%error, "cannot remove stale DNAT rules");
                }
            }
            Self::External => {}
        }
    }

    /// Relay statistics of a session (relay mode only).
    pub fn relay_stats(&self, session: u32) -> Option<super::relay::RelayStats> {
        match self {
            Self::Relay(relays) => lock(relays).get(&session).map(Relay::stats),
            _ => None,
        }
    }
}
