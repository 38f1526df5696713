//! What a session's client sends the host, and what goes back to it: pings that steer the
//! media targets, decrypted control messages, input events (from Moonlight's control stream or
//! a browser's data channel), and rumble.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hati_protocol::control::ClientMessage;
use hati_protocol::input::InputEvent;

use super::streaming::ActiveStream;
use super::{ControlCommand, Session, lock};
use crate::stream::ping::StreamKind;
use crate::stream::target::PingOutcome;

impl Session {
    /// Whether pings from `ip` may steer this session's streams: the address that launched
    /// it (over mutual TLS), the gateway that forwards it (a placed session), or the one whose
    /// control connection proved it holds the key.
    fn may_ping_from(&self, ip: IpAddr) -> bool {
        // The target keeps the socket's own form of the address (a `::` socket cannot send
        // to a plain IPv4 address); comparisons use the canonical one.
        let ip = crate::net::canonical_ip(ip);
        ip == self.client_ip || self.gateway_ip == Some(ip) || *lock(&self.control_ip) == Some(ip)
    }

    /// The control stream authenticated a client at `ip` (its first message decrypted).
    pub fn control_authenticated(&self, ip: IpAddr) {
        *lock(&self.control_ip) = Some(crate::net::canonical_ip(ip));
    }

    /// A ping arrived: the stream goes to where it came from, unless the client's current
    /// address is alive or the ping comes from an address that has not authenticated.
    pub fn client_pinged(&self, kind: StreamKind, from: SocketAddr) {
        let target = match kind {
            StreamKind::Video => &self.video_target,
            StreamKind::Audio => &self.audio_target,
        };
        let outcome = if self.may_ping_from(from.ip()) {
            target.offer(from, Instant::now())
        } else {
            PingOutcome::Refused {
                current: target.get().unwrap_or(from),
            }
        };
        match outcome {
            // Moonlight pings every half second: a key frame for each would double the bitrate
            // of a still picture (they did, until a lobby test counted the encoder's key frames).
            PingOutcome::Refreshed => return,
            PingOutcome::Learned => {
                self.metrics.target_changes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(parent: &self.span, ?kind, client = %from, "client address learned from ping");
            }
            PingOutcome::Moved { from: old } => {
                self.metrics.target_changes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(parent: &self.span, ?kind, client = %from, previous = %old, "client address moved (the previous one went silent)");
            }
            PingOutcome::Refused { current } => {
                let refused = self.metrics.refused_pings.fetch_add(1, Ordering::Relaxed) + 1;
                // 1, 2, 4, 8, …: a flood cannot flood the log.
                if refused.is_power_of_two() {
                    tracing::warn!(parent: &self.span, ?kind, from = %from, %current, refused, "ping refused: the stream stays with the client's address");
                }
                return;
            }
        }
        // Frames sent before the client's address was known (or to its old one) went nowhere.
        if kind == StreamKind::Video {
            self.request_idr();
        }
    }

    /// Handles one decrypted control message.
    pub fn on_control_message(&self, message: ClientMessage, received: Instant) {
        let _entered = self.span.enter();
        match message {
            ClientMessage::RequestIdr => {
                self.metrics.idr_requests.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("client asks for a key frame");
                self.request_idr();
            }
            ClientMessage::InvalidateRefFrames {
                first_frame_index,
                last_frame_index,
            } => {
                self.metrics.idr_requests.fetch_add(1, Ordering::Relaxed);
                let dropped = last_frame_index
                    .wrapping_sub(first_frame_index)
                    .saturating_add(1);
                self.metrics
                    .client_frames_dropped
                    .fetch_add(u64::from(dropped), Ordering::Relaxed);
                tracing::debug!(
                    first_frame_index,
                    last_frame_index,
                    "client invalidates reference frames"
                );
                self.request_idr();
            }
            ClientMessage::InputData(bytes) => match InputEvent::parse(&bytes) {
                Ok(event) => self.handle_input(event, received),
                Err(error) => tracing::debug!(%error, "malformed input packet dropped"),
            },
            ClientMessage::FecStatus(status) => {
                self.metrics.record_fec_status(&status);
                tracing::debug!(?status, "client FEC status");
            }
            ClientMessage::LossStats { last_good_frame } => {
                tracing::debug!(last_good_frame, "client loss stats")
            }
            ClientMessage::PeriodicPing | ClientMessage::StartB | ClientMessage::LtrAck { .. } => {}
            ClientMessage::Unknown { packet_type } => {
                tracing::debug!(packet_type, "unknown control message")
            }
        }
    }

    /// Routes one input event (from Moonlight's control stream or a browser's data channel)
    /// to the session's desktop or gamepads; `received` is when it reached the host.
    pub fn handle_input(&self, event: InputEvent, received: Instant) {
        self.metrics.input_events.fetch_add(1, Ordering::Relaxed);
        if let Some(guest) = self.guest()
            && !guest.accepts(&event)
        {
            self.metrics.input_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.input.get() {
            Some(input) => input.handle(event, received),
            None => tracing::debug!(parent: &self.span, "input before launch finished dropped"),
        }
    }

    /// What this session's virtual pads call with their rumble: it goes back to this client
    /// (held weakly: the pads live inside the session).
    pub(super) fn rumble_callback(self: &Arc<Self>) -> crate::gamepad::RumbleCallback {
        let session = Arc::downgrade(self);
        Arc::new(move |controller: u8, motors: crate::gamepad::Motors| {
            if let Some(session) = session.upgrade() {
                session.rumble(controller, motors);
            }
        })
    }

    /// Sets a gamepad's rumble motors on the client: over the data channel for a browser,
    /// over the control stream for Moonlight.
    pub(super) fn rumble(&self, controller: u8, motors: crate::gamepad::Motors) {
        if let Some(ActiveStream::Browser(stream)) = lock(&self.lifecycle).stream.as_ref() {
            stream.send_to_page(&hati_protocol::browser::rumble_message(
                controller,
                motors.low_freq,
                motors.high_freq,
            ));
            return;
        }
        let _ = self.services.control.send(ControlCommand::Rumble {
            session_id: self.id,
            controller: u16::from(controller),
            low_freq: motors.low_freq,
            high_freq: motors.high_freq,
        });
    }
}
