//! Where a session's packets go: the address its client pings from. Read on the per-frame path
//! without locks, written when a ping arrives.
//!
//! Once a client pings, its address holds while it keeps pinging (every 500 ms): a ping from
//! any other address or port is refused, so a LAN peer cannot pull the stream away. Only when
//! the address has been silent for [`STALE_AFTER`] may a new one take over (the client's NAT
//! mapping or port changed).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

/// How long the current address must have been silent before another may replace it.
pub const STALE_AFTER: Duration = Duration::from_secs(3);

/// What a ping did to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingOutcome {
    /// The first address: the stream now goes there.
    Learned,
    /// From the current address: it stays.
    Refreshed,
    /// The current address had gone silent; the stream moved here.
    Moved {
        /// The silent address.
        from: SocketAddr,
    },
    /// Another address while the current one is alive: ignored.
    Refused {
        /// The address that keeps the stream.
        current: SocketAddr,
    },
}

/// A client's UDP address for one stream, unknown until its first ping.
#[derive(Debug, Default)]
pub struct Target {
    address: ArcSwapOption<SocketAddr>,
    /// Milliseconds since [`EPOCH`] of the last ping from `address`.
    last_ping_ms: AtomicU64,
}

/// The reference point of `last_ping_ms` (monotonic).
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn millis(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_millis()).unwrap_or(u64::MAX)
}

impl Target {
    /// The current address, if a ping has arrived.
    pub fn get(&self) -> Option<SocketAddr> {
        self.address.load().as_deref().copied()
    }

    /// A ping from `from` arrived at `now`. Pings of one stream arrive on one task, so the
    /// load-then-store below does not race with another ping.
    pub fn offer(&self, from: SocketAddr, now: Instant) -> PingOutcome {
        let now_ms = millis(now);
        let outcome = match self.get() {
            None => PingOutcome::Learned,
            Some(current) if current == from => PingOutcome::Refreshed,
            Some(current) => {
                let silent_ms = now_ms.saturating_sub(self.last_ping_ms.load(Ordering::Relaxed));
                if u128::from(silent_ms) >= STALE_AFTER.as_millis() {
                    PingOutcome::Moved { from: current }
                } else {
                    return PingOutcome::Refused { current };
                }
            }
        };
        if outcome != PingOutcome::Refreshed {
            self.address.store(Some(Arc::new(from)));
        }
        self.last_ping_ms.store(now_ms, Ordering::Relaxed);
        outcome
    }

    /// Forgets the address (the stream stopped; the next one pings again).
    pub fn clear(&self) {
        self.address.store(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_live_address_keeps_the_stream() {
        let target = Target::default();
        let t0 = Instant::now();
        let client = addr("10.0.0.2:5000");
        assert_eq!(target.offer(client, t0), PingOutcome::Learned);
        for (k, intruder) in ["10.0.0.2:5001", "10.0.0.9:5000"].into_iter().enumerate() {
            let at = t0 + Duration::from_millis(100 * (k as u64 + 1));
            assert_eq!(
                target.offer(addr(intruder), at),
                PingOutcome::Refused { current: client }
            );
        }
        // The client keeps pinging every 500 ms; an intruder never gets a gap.
        for k in 1..20u64 {
            let at = t0 + Duration::from_millis(500 * k);
            assert_eq!(target.offer(client, at), PingOutcome::Refreshed);
            let later = at + Duration::from_millis(250);
            assert!(matches!(
                target.offer(addr("10.0.0.2:6000"), later),
                PingOutcome::Refused { .. }
            ));
        }
        assert_eq!(target.get(), Some(client));
    }

    #[test]
    fn a_silent_address_can_be_replaced() {
        let target = Target::default();
        let t0 = Instant::now();
        let old = addr("10.0.0.2:5000");
        let new = addr("10.0.0.2:5002");
        target.offer(old, t0);
        assert!(matches!(
            target.offer(new, t0 + STALE_AFTER / 2),
            PingOutcome::Refused { .. }
        ));
        assert_eq!(
            target.offer(new, t0 + STALE_AFTER),
            PingOutcome::Moved { from: old }
        );
        assert_eq!(target.get(), Some(new));
        target.clear();
        assert_eq!(target.get(), None);
        assert_eq!(target.offer(old, t0 + STALE_AFTER), PingOutcome::Learned);
    }
}
