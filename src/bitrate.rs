//! Adaptive bitrate: once a second, from what the client reported over the control stream
//! (data packets missing, frames lost beyond FEC, key-frame requests), what the host sent, and
//! whether the host's own send queue overflowed (the first hop cannot take the rate),
//! lower the encoder's bitrate quickly when the link is congested and raise it slowly back
//! toward what the client asked for.
//!
//! Loss that FEC repairs and that stays small (random loss on Wi-Fi) is not congestion: the
//! bitrate stays. Congestion is heavy packet loss, frames lost outright, or repeated key-frame
//! requests (a client that sees no whole frame reports no FEC status, only asks for key frames).
//! On congestion the new bitrate is what got through in the last second (the sent rate times the
//! share delivered), with 10% headroom, and never more than 70% of the current one; the next
//! 2 seconds are not judged (their reports still describe the old rate). The rate where
//! congestion struck is remembered: below 95% of it the bitrate climbs 5% every 2 clean seconds;
//! above, it probes only after 20 clean seconds, so a link at its limit is not hit again every
//! few seconds.

/// Cumulative counters of one session, read once a second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observation {
    /// Video packets (data and parity) the host handed to the kernel.
    pub packets_sent: u64,
    /// Data packets the client reported missing (FEC status reports).
    pub packets_missing: u64,
    /// Frames the client could not rebuild.
    pub frames_lost: u64,
    /// Key-frame requests and reference-frame invalidations.
    pub idr_requests: u64,
    /// Frames the host's sender dropped because its queue was full.
    pub frames_backlogged: u64,
}

/// Why the bitrate changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The link lost too much: lowered.
    Congestion,
    /// Clean for a while: raised.
    Recovery,
}

/// Share of sent packets reported missing in one second above which the link is congested.
const CONGESTED_LOSS: f64 = 0.05;
/// Frames lost beyond FEC in one second from which the link is congested (one can be bad luck
/// under random loss).
const CONGESTED_FRAMES_LOST: u64 = 2;
/// Key-frame requests in one second from which the link is congested.
const CONGESTED_IDR_REQUESTS: u64 = 2;
/// Seconds after a cut whose reports are not judged.
const SETTLE_S: u32 = 2;
/// Clean seconds between raises below the remembered ceiling.
const RAISE_EVERY_S: u32 = 2;
/// Clean seconds before probing above the ceiling.
const PROBE_AFTER_S: u32 = 20;

/// The controller of one stream.
#[derive(Debug)]
pub struct BitrateController {
    max_kbps: u32,
    min_kbps: u32,
    current_kbps: u32,
    /// The bitrate at the last congestion, if any.
    ceiling_kbps: Option<u32>,
    clean_seconds: u32,
    /// Seconds left before reports are judged again after a cut.
    settling: u32,
    last: Observation,
}

impl BitrateController {
    /// Starts at `max_kbps` (the client's request as the encoder got it); never goes below
    /// `min_kbps`.
    pub fn new(max_kbps: u32, min_kbps: u32, start: Observation) -> Self {
        Self {
            max_kbps,
            min_kbps: min_kbps.min(max_kbps),
            current_kbps: max_kbps,
            ceiling_kbps: None,
            clean_seconds: 0,
            // A stream's first seconds carry start-up key-frame requests, not congestion.
            settling: SETTLE_S,
            last: start,
        }
    }

    /// The bitrate now chosen, kbit/s.
    pub fn current_kbps(&self) -> u32 {
        self.current_kbps
    }

    /// One second passed with these cumulative counters; returns the new bitrate if it changes.
    pub fn tick(&mut self, now: Observation) -> Option<(u32, Change)> {
        let sent = now.packets_sent.saturating_sub(self.last.packets_sent);
        let missing = now
            .packets_missing
            .saturating_sub(self.last.packets_missing);
        let lost = now.frames_lost.saturating_sub(self.last.frames_lost);
        let idr = now.idr_requests.saturating_sub(self.last.idr_requests);
        let backlogged = now
            .frames_backlogged
            .saturating_sub(self.last.frames_backlogged);
        self.last = now;
        if sent == 0 {
            return None;
        }
        if self.settling > 0 {
            self.settling -= 1;
            return None;
        }
        let loss = (missing as f64 / sent as f64).min(1.0);
        let congested = loss > CONGESTED_LOSS
            || backlogged > 0
            || lost >= CONGESTED_FRAMES_LOST
            || idr >= CONGESTED_IDR_REQUESTS
            || (lost > 0 && idr > 0);
        if congested {
            self.clean_seconds = 0;
            self.settling = SETTLE_S;
            self.ceiling_kbps = Some(self.current_kbps);
            let delivered = f64::from(self.current_kbps) * (1.0 - loss) * 0.9;
            let cut = f64::from(self.current_kbps) * 0.7;
            let next = (delivered.min(cut) as u32).max(self.min_kbps);
            return self.set(next, Change::Congestion);
        }
        self.clean_seconds += 1;
        if self.current_kbps >= self.max_kbps {
            return None;
        }
        let below_ceiling = self
            .ceiling_kbps
            .is_none_or(|ceiling| f64::from(self.current_kbps) < 0.95 * f64::from(ceiling));
        let due = if below_ceiling {
            self.clean_seconds >= RAISE_EVERY_S
        } else {
            self.clean_seconds >= PROBE_AFTER_S
        };
        if !due {
            return None;
        }
        self.clean_seconds = 0;
        let mut next = (f64::from(self.current_kbps) * 1.05).ceil() as u32;
        if below_ceiling && let Some(ceiling) = self.ceiling_kbps {
            next = next
                .min((0.95 * f64::from(ceiling)) as u32)
                .max(self.current_kbps + 1);
        } else if !below_ceiling {
            // A successful probe: the link carries more than it did.
            self.ceiling_kbps = None;
        }
        self.set(next.min(self.max_kbps), Change::Recovery)
    }

    fn set(&mut self, kbps: u32, change: Change) -> Option<(u32, Change)> {
        if kbps == self.current_kbps {
            return None;
        }
        self.current_kbps = kbps;
        Some((kbps, change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `seconds` of a link that delivers at most `capacity_kbps` of a sender at the
    /// controller's bitrate (packets of 10 kbit), with `random_loss` on top; returns the
    /// bitrate after each second.
    fn simulate(
        controller: &mut BitrateController,
        capacity_kbps: u32,
        random_loss: f64,
        seconds: u32,
    ) -> Vec<u32> {
        let mut counters = Observation::default();
        let mut trace = Vec::new();
        for _ in 0..seconds {
            let rate = controller.current_kbps();
            let packets = u64::from(rate / 10).max(1);
            let over = rate.saturating_sub(capacity_kbps);
            let congestion_loss = f64::from(over) / f64::from(rate);
            let loss = (congestion_loss + random_loss).min(1.0);
            let missing = (packets as f64 * loss) as u64;
            counters.packets_sent += packets;
            counters.packets_missing += missing;
            if congestion_loss > 0.0 {
                counters.frames_lost += 30;
                counters.idr_requests += 5;
            }
            controller.tick(counters);
            trace.push(controller.current_kbps());
        }
        trace
    }

    #[test]
    fn congestion_brings_the_bitrate_under_the_link_within_seconds() {
        let mut controller = BitrateController::new(40_000, 1_000, Observation::default());
        let trace = simulate(&mut controller, 15_000, 0.0, 60);
        assert!(trace[2] < 15_000, "{trace:?}");
        // From the tenth second on, almost always under the link, and not far under it.
        let over = trace[10..].iter().filter(|&&r| r > 15_000).count();
        assert!(over <= 3, "{over} seconds over the link: {trace:?}");
        assert!(trace[10..].iter().all(|&r| r > 9_000), "{trace:?}");
    }

    #[test]
    fn a_full_send_queue_is_congestion() {
        let mut controller = BitrateController::new(20_000, 1_000, Observation::default());
        let mut counters = Observation::default();
        for _ in 0..3 {
            counters.packets_sent += 1_000;
            controller.tick(counters);
        }
        counters.packets_sent += 1_000;
        counters.frames_backlogged += 3;
        let change = controller.tick(counters);
        assert!(
            matches!(change, Some((kbps, Change::Congestion)) if kbps < 20_000),
            "{change:?}"
        );
    }

    #[test]
    fn random_loss_that_fec_repairs_keeps_the_bitrate() {
        let mut controller = BitrateController::new(20_000, 1_000, Observation::default());
        let trace = simulate(&mut controller, u32::MAX, 0.02, 30);
        assert!(trace.iter().all(|&r| r == 20_000), "{trace:?}");
    }

    #[test]
    fn bitrate_climbs_back_to_the_request_when_the_link_clears() {
        let mut controller = BitrateController::new(20_000, 1_000, Observation::default());
        simulate(&mut controller, 5_000, 0.0, 10);
        assert!(controller.current_kbps() < 5_000);
        let trace = simulate(&mut controller, u32::MAX, 0.0, 200);
        assert_eq!(*trace.last().unwrap(), 20_000, "{trace:?}");
    }

    #[test]
    fn never_below_the_minimum_and_silent_seconds_change_nothing() {
        let mut controller = BitrateController::new(20_000, 3_000, Observation::default());
        simulate(&mut controller, 100, 0.0, 20);
        assert_eq!(controller.current_kbps(), 3_000);
        let before = controller.current_kbps();
        assert_eq!(controller.tick(controller.last), None);
        assert_eq!(controller.current_kbps(), before);
    }
}
