//! The requests a handle sends to the compositor thread ([`Command`]) and how the thread
//! answers them.

use std::sync::{atomic::Ordering, mpsc};

use super::{CompositorError, CompositorStats, FrameOutcome};
use crate::{input::InputEvent, render::RenderError, state::State};

/// A request from a handle to the compositor thread.
pub(crate) enum Command {
    /// An input event and when it was sent.
    Input(InputEvent, std::time::Instant),
    Render {
        buffer: gst::Buffer,
        force: bool,
        reply: mpsc::SyncSender<Result<FrameOutcome, CompositorError>>,
    },
    Stats(mpsc::SyncSender<CompositorStats>),
    Stop,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Input(event, _) => f.debug_tuple("Input").field(event).finish(),
            Self::Render { force, .. } => f.debug_struct("Render").field("force", force).finish(),
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
                reply,
            } => {
                let outcome = self.render_buffer(buffer, force);
                // The requester may have given up (flushing); nothing to do then.
                let _ = reply.send(outcome);
            }
            Command::Stats(reply) => {
                let _ = reply.send(CompositorStats {
                    clients: self.client_count.load(Ordering::Relaxed),
                    windows: self.space.elements().count(),
                });
            }
            Command::Stop => self.loop_signal.stop(),
        }
    }

    fn render_buffer(
        &mut self,
        mut buffer: gst::Buffer,
        force: bool,
    ) -> Result<FrameOutcome, CompositorError> {
        let changed = self.frame_changed();
        if !changed && !force {
            return Ok(FrameOutcome::Unchanged(buffer));
        }
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
        Ok(FrameOutcome::Rendered(buffer))
    }
}
