//! What a session counts (its own module, so the event bus can carry the snapshot without
//! depending on `session`): one list of counters ([`SessionMetrics`], atomics bumped on the
//! control and ping paths) and its snapshot ([`SessionCounters`], the one shape the admin API's
//! session JSON, the `stream_stats` event and the OpenAPI document's `SessionCounters` show).
//!
//! Adding a counter takes two edits: a line in `session_counters!` below and its property in
//! `src/admin/openapi.json` (a unit test there checks the two agree).

use std::sync::atomic::{AtomicU64, Ordering};

use hati_protocol::control::FecStatus;
use serde::Serialize;

macro_rules! session_counters {
    ($($(#[doc = $doc:literal])+ $name:ident,)+) => {
        /// Counters of one session, bumped without locks.
        #[derive(Debug, Default)]
        pub struct SessionMetrics {
            $($(#[doc = $doc])+ pub $name: AtomicU64,)+
        }

        /// The session's counters at one moment.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        pub struct SessionCounters {
            $($(#[doc = $doc])+ pub $name: u64,)+
        }

        impl SessionMetrics {
            /// Every counter, read now (each on its own: counters bumped meanwhile may or may
            /// not show).
            pub fn snapshot(&self) -> SessionCounters {
                SessionCounters {
                    $($name: self.$name.load(Ordering::Relaxed),)+
                }
            }
        }
    };
}

session_counters! {
    /// IDR requests and reference-frame invalidations received.
    idr_requests,
    /// FEC status reports received (each is a frame that needed recovery or was lost).
    fec_status_reports,
    /// Frames the client rebuilt from parity packets.
    client_frames_recovered,
    /// Frames the client could not rebuild (too few packets arrived).
    client_frames_lost,
    /// Data packets the client reported missing in those frames.
    client_packets_missing,
    /// Frames the client dropped and asked to have re-referenced (reference-frame
    /// invalidation ranges).
    client_frames_dropped,
    /// Input events received (control stream or data channel).
    input_events,
    /// Input events a lobby's rule dropped: everything a spectator sends, a gamepad-only
    /// guest's keyboard, mouse, touch and pen.
    input_dropped,
    /// Times a stream's target address was learned or moved.
    target_changes,
    /// Pings refused because they would have moved a live stream or came from a stranger.
    refused_pings,
    /// Control messages dropped as replays (a sequence number seen before).
    replayed_control_messages,
}

impl SessionMetrics {
    /// Counts one FEC status report: a frame recovered from parity or lost, and its missing
    /// data packets.
    pub(crate) fn record_fec_status(&self, status: &FecStatus) {
        self.fec_status_reports.fetch_add(1, Ordering::Relaxed);
        let data = u64::from(status.total_data_packets);
        let received_data = u64::from(status.received_data_packets);
        let received = received_data + u64::from(status.received_parity_packets);
        self.client_packets_missing
            .fetch_add(data.saturating_sub(received_data), Ordering::Relaxed);
        if received >= data {
            self.client_frames_recovered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.client_frames_lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fec_reports_count_recovered_and_lost_frames() {
        let metrics = SessionMetrics::default();
        let status = |data, parity| FecStatus {
            frame_index: 1,
            highest_received_sequence_number: 0,
            next_contiguous_sequence_number: 0,
            missing_packets_before_highest_received: 0,
            total_data_packets: 10,
            total_parity_packets: 2,
            received_data_packets: data,
            received_parity_packets: parity,
            fec_percentage: 20,
            multi_fec_block_index: 0,
            multi_fec_block_count: 1,
        };
        metrics.record_fec_status(&status(9, 2));
        metrics.record_fec_status(&status(7, 2));
        let counters = metrics.snapshot();
        assert_eq!(counters.client_frames_recovered, 1);
        assert_eq!(counters.client_frames_lost, 1);
        assert_eq!(counters.client_packets_missing, 4);
        assert_eq!(counters.fec_status_reports, 2);
    }

    #[test]
    fn counters_near_their_limit_wrap_instead_of_panicking() {
        let metrics = SessionMetrics::default();
        metrics.input_events.store(u64::MAX, Ordering::Relaxed);
        metrics.input_events.fetch_add(1, Ordering::Relaxed);
        assert_eq!(metrics.snapshot().input_events, 0);
    }
}
