//! Several consumers of one compositor's frames, e.g. the streams of a shared session, each its
//! own `waylanddisplaysrc`: the handle's side ([`FrameConsumer`], which remembers the serial of
//! the frame it last received) and the compositor thread's side ([`LatestFrame`]: the newest
//! frame's serial and, while two or more consumers are registered, a reference to its buffer).
//!
//! A change is rendered once, into the buffer of whichever consumer asks first; a consumer that
//! asks later gets that same buffer by reference ([`FrameOutcome::Shared`]), and one that already
//! has the newest frame is told [`FrameOutcome::Unchanged`]. With a single consumer nothing is
//! kept: its rendered buffer comes back with no other reference, so setting its timestamps
//! copies nothing, exactly as before frames were shared.
//!
//! Serials are `u64` counts of rendered changes: at the highest frame rate allowed (480) they
//! would wrap after a billion years, so wrapping is not handled.

use std::sync::mpsc;

use super::{CompositorError, CompositorHandle, FrameOutcome, command::Command};

/// The serial of "no frame yet": a fresh or reset consumer. Real frames count from 1.
pub(crate) const NO_FRAME: u64 = 0;
/// The serial a caller of [`CompositorHandle::render`] claims: it counts as always having the
/// newest frame, so it sees only `Rendered` and `Unchanged`, as before frames were shared.
pub(crate) const ALWAYS_NEWEST: u64 = u64::MAX;

/// One consumer of a compositor's frames (one stream), from
/// [`CompositorHandle::frame_consumer`]. Not `Clone`: each consumer tracks what it has seen.
#[derive(Debug)]
pub struct FrameConsumer {
    handle: CompositorHandle,
    /// Serial of the frame this consumer last received; [`NO_FRAME`] before the first.
    serial: u64,
}

impl FrameConsumer {
    /// Registers a consumer with the compositor thread (which keeps the newest frame for others
    /// only while two or more are registered).
    pub(super) fn new(handle: CompositorHandle) -> Self {
        // A stopped compositor ignores the registration; `render` then reports `Stopped`.
        let _ = handle.inner.sender.send(Command::AddConsumer);
        Self {
            handle,
            serial: NO_FRAME,
        }
    }

    /// The compositor this consumer reads.
    pub fn handle(&self) -> &CompositorHandle {
        &self.handle
    }

    /// Serial of the frame this consumer last received (0 before the first); it grows by one
    /// per rendered change of the compositor's output.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Forgets the frame this consumer has (e.g. after it dropped its copy), so that the next
    /// [`FrameConsumer::render`] answers `Rendered` or `Shared`, never `Unchanged`.
    pub fn reset(&mut self) {
        self.serial = NO_FRAME;
    }

    /// The newest frame for this consumer. When the output changed since anyone's previous
    /// request (or `force` is set), it is drawn into `buffer` (BGRx, `width * 4` stride unless
    /// the buffer carries a `VideoMeta`): [`FrameOutcome::Rendered`]. Else, when another
    /// consumer received a newer frame than this one has, that frame's buffer is shared and
    /// `buffer` is released: [`FrameOutcome::Shared`]. Else `buffer` comes back untouched:
    /// [`FrameOutcome::Unchanged`]. Blocks until the compositor thread has answered.
    pub fn render(
        &mut self,
        buffer: gst::Buffer,
        force: bool,
    ) -> Result<FrameOutcome, CompositorError> {
        let (outcome, serial) = request(&self.handle, buffer, force, self.serial)?;
        self.serial = serial;
        Ok(outcome)
    }
}

impl Drop for FrameConsumer {
    fn drop(&mut self) {
        // A stopped compositor has nothing left to unregister from.
        let _ = self.handle.inner.sender.send(Command::RemoveConsumer);
    }
}

/// Sends one render request for a consumer that last received frame `seen` and waits for the
/// outcome and the serial of the frame the consumer now has.
pub(super) fn request(
    handle: &CompositorHandle,
    buffer: gst::Buffer,
    force: bool,
    seen: u64,
) -> Result<(FrameOutcome, u64), CompositorError> {
    let (reply, rx) = mpsc::sync_channel(1);
    handle
        .inner
        .sender
        .send(Command::Render {
            buffer,
            force,
            seen,
            reply,
        })
        .map_err(|_| CompositorError::Stopped)?;
    rx.recv().map_err(|_| CompositorError::Stopped)?
}

/// What the compositor thread does with one render request.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Draw into the requester's buffer.
    Render,
    /// Hand the requester this reference to the newest frame.
    Share(gst::Buffer),
    /// The requester has the newest frame already.
    Unchanged,
}

/// The compositor thread's record of the newest frame.
///
/// The output size is fixed for the compositor's life, so a kept buffer always has the size
/// every consumer expects; were resizing ever added, it must call [`LatestFrame::clear`].
#[derive(Debug, Default)]
pub(crate) struct LatestFrame {
    /// Serial of the newest rendered frame; [`NO_FRAME`] before the first.
    serial: u64,
    /// The newest frame, kept only while two or more consumers are registered.
    newest: Option<gst::Buffer>,
    /// Registered [`FrameConsumer`]s.
    consumers: usize,
    /// A change was detected but its rendering failed: the next request must render, since the
    /// damage tracker has already moved past that change.
    missed: bool,
}

impl LatestFrame {
    /// Counts a new consumer.
    pub(crate) fn add_consumer(&mut self) {
        self.consumers = self.consumers.saturating_add(1);
    }

    /// Counts a consumer gone; with fewer than two left, the kept frame goes back to its pool.
    pub(crate) fn remove_consumer(&mut self) {
        self.consumers = self.consumers.saturating_sub(1);
        if !self.sharing() {
            self.newest = None;
        }
    }

    /// Serial of the newest frame.
    pub(crate) fn serial(&self) -> u64 {
        self.serial
    }

    /// Whether the output changed in a way not rendered yet, given the damage check's answer.
    pub(crate) fn changed(&self, damaged: bool) -> bool {
        damaged || self.missed
    }

    /// Decides a request from a consumer that last received frame `seen`.
    pub(crate) fn plan(&mut self, changed: bool, force: bool, seen: u64) -> Plan {
        if changed || force {
            return Plan::Render;
        }
        if seen != NO_FRAME && seen >= self.serial {
            return Plan::Unchanged;
        }
        // Behind: share the kept frame, or (nobody kept it) draw the unchanged output again.
        self.newest.clone().map_or(Plan::Render, Plan::Share)
    }

    /// Records a successful rendering into `buffer`; returns the frame's serial. Redrawing an
    /// unchanged output keeps the serial: the pixels are those of the newest frame.
    pub(crate) fn rendered(&mut self, buffer: &gst::Buffer, changed: bool) -> u64 {
        if changed || self.serial == NO_FRAME {
            self.serial += 1;
        }
        self.missed = false;
        // A reference kept for a single consumer would make its buffer non-writable, costing
        // it a copy when it sets timestamps; keep one only when someone else may want it.
        self.newest = self.sharing().then(|| buffer.clone());
        self.serial
    }

    /// Records a failed rendering of a changed output, so the next request renders again.
    pub(crate) fn failed(&mut self, changed: bool) {
        self.missed |= changed;
    }

    /// Drops the kept frame (the compositor is stopping).
    pub(crate) fn clear(&mut self) {
        self.newest = None;
    }

    fn sharing(&self) -> bool {
        self.consumers >= 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        static INIT: std::sync::Once = std::sync::Once::new();
        INIT.call_once(|| gst::init().expect("gst init"));
    }

    #[track_caller]
    fn assert_render(plan: Plan) {
        assert!(matches!(plan, Plan::Render), "{plan:?}");
    }

    #[track_caller]
    fn assert_unchanged(plan: Plan) {
        assert!(matches!(plan, Plan::Unchanged), "{plan:?}");
    }

    #[track_caller]
    fn assert_shares(plan: Plan, expected: &gst::Buffer) {
        match plan {
            Plan::Share(buffer) => assert_eq!(buffer.as_ptr(), expected.as_ptr()),
            other => panic!("expected Share, got {other:?}"),
        }
    }

    #[test]
    fn a_single_consumer_keeps_no_reference() {
        init();
        let mut latest = LatestFrame::default();
        latest.add_consumer();
        assert_render(latest.plan(true, false, NO_FRAME));
        let frame = gst::Buffer::with_size(16).unwrap();
        assert_eq!(latest.rendered(&frame, true), 1);
        assert!(
            frame.is_writable(),
            "the consumer's buffer must stay writable"
        );
        assert_unchanged(latest.plan(false, false, 1));
        assert_render(latest.plan(true, false, 1));
    }

    #[test]
    fn a_consumer_behind_gets_the_kept_frame_then_unchanged() {
        init();
        let mut latest = LatestFrame::default();
        latest.add_consumer();
        latest.add_consumer();
        let frame = gst::Buffer::with_size(16).unwrap();
        assert_eq!(latest.rendered(&frame, true), 1);
        assert_shares(latest.plan(false, false, NO_FRAME), &frame);
        assert_unchanged(latest.plan(false, false, 1));
        let next = gst::Buffer::with_size(16).unwrap();
        assert_eq!(latest.rendered(&next, true), 2);
        assert_shares(latest.plan(false, false, 1), &next);
        assert_unchanged(latest.plan(false, false, 2));
        // A change is rendered whoever asks, even one up to date.
        assert_render(latest.plan(true, false, 2));
    }

    #[test]
    fn a_consumer_behind_with_nothing_kept_renders_without_a_new_serial() {
        init();
        let mut latest = LatestFrame::default();
        latest.add_consumer();
        let frame = gst::Buffer::with_size(16).unwrap();
        assert_eq!(latest.rendered(&frame, true), 1);
        // An anonymous caller rendered a change: the consumer is behind, and nothing was kept.
        assert_eq!(latest.rendered(&frame, true), 2);
        assert_render(latest.plan(false, false, 1));
        assert_eq!(latest.rendered(&frame, false), 2);
    }

    #[test]
    fn the_kept_frame_is_released_when_sharing_ends() {
        init();
        let mut latest = LatestFrame::default();
        latest.add_consumer();
        latest.add_consumer();
        let frame = gst::Buffer::with_size(16).unwrap();
        latest.rendered(&frame, true);
        assert!(!frame.is_writable(), "no reference kept for sharing");
        latest.remove_consumer();
        assert!(frame.is_writable(), "the kept frame outlived sharing");
        // The one left, were it behind, renders again: nothing is kept for it.
        assert_render(latest.plan(false, false, NO_FRAME));
        latest.add_consumer();
        latest.rendered(&frame, false);
        assert!(!frame.is_writable());
        latest.clear();
        assert!(frame.is_writable(), "clear keeps the frame");
    }

    #[test]
    fn an_anonymous_caller_is_never_behind() {
        init();
        let mut latest = LatestFrame::default();
        latest.add_consumer();
        latest.add_consumer();
        let frame = gst::Buffer::with_size(16).unwrap();
        latest.rendered(&frame, true);
        assert_unchanged(latest.plan(false, false, ALWAYS_NEWEST));
    }

    #[test]
    fn a_failed_rendering_is_rendered_again() {
        init();
        let mut latest = LatestFrame::default();
        latest.failed(true);
        assert!(latest.changed(false));
        latest.failed(false);
        assert!(latest.changed(false));
        latest.rendered(&gst::Buffer::new(), true);
        assert!(!latest.changed(false));
    }
}
