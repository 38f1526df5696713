//! The requests a handle sends to the compositor thread ([`Command`]) and how the thread
//! answers them.

use std::sync::{atomic::Ordering, mpsc};

use super::{CompositorError, CompositorStats, FrameOutcome, consumer::Plan};
use crate::{input::InputEvent, render::RenderError, state::State};

/// A request from a handle to the compositor thread.
pub(crate) enum Command {
    /// An input event and when it reached the host (or was handed over).
    Input(InputEvent, std::time::Instant),
    /// A frame for a consumer that last received frame `seen`; the reply carries the serial of
    /// the frame it then has.
    Render {
        buffer: gst::Buffer,
        force: bool,
        seen: u64,
        reply: mpsc::SyncSender<Result<(FrameOutcome, u64), CompositorError>>,
    },
    /// A [`super::FrameConsumer`] was created.
    AddConsumer,
    /// A [`super::FrameConsumer`] was dropped.
    RemoveConsumer,
    Stats(mpsc::SyncSender<CompositorStats>),
    Stop,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Input(event, _) => f.debug_tuple("Input").field(event).finish(),
            Self::Render { force, seen, .. } => f
                .debug_struct("Render")
                .field("force", force)
                .field("seen", seen)
                .finish(),
            Self::AddConsumer => f.write_str("AddConsumer"),
            Self::RemoveConsumer => f.write_str("RemoveConsumer"),
            Self::Stats(_) => f.write_str("Stats"),
            Self::Stop => f.write_str("Stop"),
        }
    }
}

impl State {
    pub(super) fn handle_command(&mut self, command: Command) {
        match command {
            Command::Input(event, sent) => {
                self.process_input(event);
                self.input_delays.record(sent.elapsed());
            }
            Command::Render {
                buffer,
                force,
                seen,
                reply,
            } => {
                let outcome = self.answer_render(buffer, force, seen);
                // The requester may have given up (flushing); nothing to do then.
                let _ = reply.send(outcome);
            }
            Command::AddConsumer => self.latest.add_consumer(),
            Command::RemoveConsumer => self.latest.remove_consumer(),
            Command::Stats(reply) => {
                let _ = reply.send(CompositorStats {
                    clients: self.client_count.load(Ordering::Relaxed),
                    windows: self.space.elements().count(),
                });
            }
            Command::Stop => {
                // The kept frame belongs to a consumer's pool: return it now, not at exit.
                self.latest.clear();
                self.loop_signal.stop();
            }
        }
    }

    /// Renders once per change, whoever asks first, and shares that frame with the consumers
    /// that ask later (see [`super::consumer`]).
    fn answer_render(
        &mut self,
        buffer: gst::Buffer,
        force: bool,
        seen: u64,
    ) -> Result<(FrameOutcome, u64), CompositorError> {
        let damaged = self.frame_changed();
        let changed = self.latest.changed(damaged);
        match self.latest.plan(changed, force, seen) {
            Plan::Unchanged => Ok((FrameOutcome::Unchanged(buffer), seen)),
            Plan::Share(frame) => Ok((FrameOutcome::Shared(frame), self.latest.serial())),
            Plan::Render => match self.render_buffer(buffer) {
                Ok(buffer) => {
                    let serial = self.latest.rendered(&buffer, changed);
                    Ok((FrameOutcome::Rendered(buffer), serial))
                }
                Err(err) => {
                    self.latest.failed(changed);
                    Err(err)
                }
            },
        }
    }

    /// Draws the output into `buffer`.
    fn render_buffer(&mut self, mut buffer: gst::Buffer) -> Result<gst::Buffer, CompositorError> {
        let stride = buffer
            .meta::<gst_video::VideoMeta>()
            .and_then(|meta| meta.stride().first().copied())
            .and_then(|s| usize::try_from(s).ok())
            .unwrap_or_else(|| usize::try_from(self.size.0).unwrap_or(0).saturating_mul(4));
        {
            let buffer = buffer.get_mut().ok_or(RenderError::NotWritable)?;
            let mut map = buffer
                .map_writable()
                .map_err(|_| RenderError::NotWritable)?;
            self.render_into(map.as_mut_slice(), stride)?;
        }
        Ok(buffer)
    }
}
