//! Where a session's packets go: the address its client pings from. Read on the per-frame path
//! without locks, written when a ping arrives.

use std::net::SocketAddr;

use arc_swap::ArcSwapOption;

/// A client's UDP address for one stream, unknown until its first ping.
#[derive(Debug, Default)]
pub struct Target(ArcSwapOption<SocketAddr>);

impl Target {
    /// The current address, if a ping has arrived.
    pub fn get(&self) -> Option<SocketAddr> {
        self.0.load().as_deref().copied()
    }

    /// Sets the address; returns true when it changed.
    pub fn set(&self, address: SocketAddr) -> bool {
        let previous = self.0.swap(Some(std::sync::Arc::new(address)));
        previous.as_deref() != Some(&address)
    }

    /// Forgets the address (the stream stopped; the next one pings again).
    pub fn clear(&self) {
        self.0.store(None);
    }
}
