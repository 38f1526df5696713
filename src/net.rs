//! Network plumbing shared by the TCP servers: canonical peer addresses and the connection
//! budget that keeps unauthenticated peers from using up the host's file descriptors.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// `ip`, with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a socket bound to `::` sees
/// for IPv4 peers) shown as the IPv4 address it is.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// `address` with [`canonical_ip`] applied to its IP.
pub fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(address.ip()), address.port())
}

/// File descriptors kept out of the connection budget: sockets, pipes to apps and GStreamer,
/// Wayland, PulseAudio, the state dir.
const RESERVED_FDS: u64 = 256;
/// The budget never goes below this, however low the descriptor limit.
const MIN_CONNECTIONS: usize = 16;
/// Nor above this: GameStream clients open one connection per request.
const MAX_CONNECTIONS: usize = 4096;

/// Raises the soft limit on open files to the hard limit (systemd's default soft limit is 1024)
/// and returns how many TCP connections the servers may hold at once in total.
pub fn connection_budget_from_rlimit() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let raised = rustix::process::Rlimit {
            current: Some(maximum.min(1 << 20)),
            maximum: Some(maximum),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = raised;
        }
    }
    let soft = limit.current.unwrap_or(u64::MAX);
    // Each connection may cost two descriptors (the socket, and one the process it triggers
    // opens), so half of what is left.
    let budget = soft.saturating_sub(RESERVED_FDS) / 2;
    usize::try_from(budget)
        .unwrap_or(MAX_CONNECTIONS)
        .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

/// Bounds the TCP connections of the HTTP, HTTPS and RTSP servers together. When full, a new
/// connection takes the place of the oldest one that has not yet sent a whole request (a peer
/// that opens connections and sends nothing cannot lock out a real client); when every held
/// connection is busy, the new one is refused.
#[derive(Debug)]
pub struct ConnectionBudget {
    limit: usize,
    inner: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    next_id: u64,
    /// Oldest first, by admission order.
    held: BTreeMap<u64, Arc<Slot>>,
}

#[derive(Debug, Default)]
struct Slot {
    busy: AtomicBool,
    evicted: Notify,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all {limit} connection slots are serving requests")]
pub struct BudgetFull {
    /// The budget.
    pub limit: usize,
}

impl ConnectionBudget {
    /// A budget of `limit` connections.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            inner: Mutex::default(),
        })
    }

    /// The budget.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.slots().held.len()
    }

    /// Admits a connection, evicting the oldest idle one when the budget is used up.
    pub fn admit(self: &Arc<Self>) -> Result<ConnectionPermit, BudgetFull> {
        let mut slots = self.slots();
        if slots.held.len() >= self.limit {
            let idle = slots
                .held
                .iter()
                .find(|(_, slot)| !slot.busy.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            let Some(id) = idle else {
                return Err(BudgetFull { limit: self.limit });
            };
            if let Some(slot) = slots.held.remove(&id) {
                // notify_one stores a permit, so the connection sees it even if it is not
                // waiting yet.
                slot.evicted.notify_one();
            }
        }
        let id = slots.next_id;
        slots.next_id += 1;
        let slot = Arc::new(Slot::default());
        slots.held.insert(id, slot.clone());
        Ok(ConnectionPermit {
            budget: self.clone(),
            id,
            slot,
        })
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionPermit {
    budget: Arc<ConnectionBudget>,
    id: u64,
    slot: Arc<Slot>,
}

impl ConnectionPermit {
    /// The connection sent a whole request: it is no longer evicted for newcomers.
    pub fn mark_busy(&self) {
        self.slot.busy.store(true, Ordering::Relaxed);
    }

    /// Resolves when a newcomer took this connection's place; the connection should close.
    pub async fn evicted(&self) {
        self.slot.evicted.notified().await;
    }

    /// Runs `work` until it finishes or this connection is evicted; `None` when evicted.
    pub async fn run<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            output = work => Some(output),
            () = self.evicted() => None,
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut slots = self.budget.slots();
        // The slot may already be gone (evicted); only remove our own.
        if slots
            .held
            .get(&self.id)
            .is_some_and(|slot| Arc::ptr_eq(slot, &self.slot))
        {
            slots.held.remove(&self.id);
        }
    }
}

/// Accepts connections on `listener` within `budget` until shutdown, and runs `handle` for
/// each with its canonical peer and local addresses and its permit. The HTTP, HTTPS and RTSP
/// servers share this.
pub async fn accept_within_budget<F, Fut>(
    listener: tokio::net::TcpListener,
    budget: Arc<ConnectionBudget>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    handle: F,
) where
    F: Fn(tokio::net::TcpStream, SocketAddr, SocketAddr, ConnectionPermit) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut refused = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let peer = canonical(peer);
                    let local = stream.local_addr().map_or(peer, canonical);
                    match budget.admit() {
                        Ok(permit) => {
                            tokio::spawn(handle(stream, peer, local, permit));
                        }
                        Err(full) => {
                            refused += 1;
                            if refused % 1000 == 1 {
                                tracing::warn!(%peer, refused, "connection refused: {full}");
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn mapped_addresses_become_ipv4() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(canonical_ip(mapped), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            canonical_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
        let address: SocketAddr = "[::ffff:10.0.0.2]:47989".parse().unwrap();
        assert_eq!(canonical(address).to_string(), "10.0.0.2:47989");
    }

    #[tokio::test]
    async fn full_budget_evicts_the_oldest_idle_connection() {
        let budget = ConnectionBudget::new(3);
        let first = budget.admit().unwrap();
        let second = budget.admit().unwrap();
        second.mark_busy();
        let third = budget.admit().unwrap();
        assert_eq!(budget.held(), 3);
        // Full: the oldest idle one (first) makes room; the busy one stays.
        let fourth = budget.admit().unwrap();
        assert_eq!(budget.held(), 3);
        tokio::time::timeout(std::time::Duration::from_secs(1), first.evicted())
            .await
            .expect("the oldest idle connection is told to close");
        drop(first); // dropping an evicted permit must not free someone else's slot
        assert_eq!(budget.held(), 3);
        // Next in line is third (second is busy).
        let _fifth = budget.admit().unwrap();
        assert!(third.run(std::future::pending::<()>()).await.is_none());
        drop(fourth);
        assert_eq!(budget.held(), 2);
    }

    #[test]
    fn refuses_when_every_connection_is_busy() {
        let budget = ConnectionBudget::new(2);
        let a = budget.admit().unwrap();
        let b = budget.admit().unwrap();
        a.mark_busy();
        b.mark_busy();
        assert_eq!(budget.admit().unwrap_err(), BudgetFull { limit: 2 });
        drop(a);
        assert!(budget.admit().is_ok());
    }

    #[test]
    fn budget_follows_the_descriptor_limit() {
        let budget = connection_budget_from_rlimit();
        assert!((MIN_CONNECTIONS..=MAX_CONNECTIONS).contains(&budget));
    }
}
