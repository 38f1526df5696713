//! The media path of a session: its GStreamer pipelines (Moonlight's RTP in `media`, a
//! browser's `webrtcbin` in `webrtc`), and the UDP endpoints that learn each client's address
//! from its pings (PROTOCOL.md §4.1, §5.1) and send the payloaders' packets there.

pub mod counters;
pub mod media;
pub mod ping;
pub mod qos;
pub mod sender;
pub mod share;
pub mod target;
pub mod webrtc;

pub use media::{MediaStream, StreamError};
pub use target::Target;

use std::sync::{Mutex, PoisonError};

use gst::prelude::*;

/// Every pipeline built for a stream that still exists, held weakly: what `GET /pipelines`
/// lists, so a leaked pipeline can be seen from outside.
static LIVE_PIPELINES: Mutex<Vec<gst::glib::WeakRef<gst::Pipeline>>> = Mutex::new(Vec::new());

/// Notes a pipeline built for a stream (once per stream start, never per frame).
pub(crate) fn register_pipeline(pipeline: &gst::Pipeline) {
    let mut live = LIVE_PIPELINES
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    live.retain(|weak| weak.upgrade().is_some());
    live.push(pipeline.downgrade());
}

/// A pipeline that still exists.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PipelineInfo {
    /// Its name: `hati-video-<session>`, `hati-audio-<session>` or `hati-webrtc-<session>`.
    pub name: String,
    /// Its current state, lower case (`playing`, `paused`, `ready`, `null`).
    pub state: String,
}

/// The pipelines built for streams that still exist, whatever their state.
pub fn live_pipelines() -> Vec<PipelineInfo> {
    let live: Vec<gst::Pipeline> = LIVE_PIPELINES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(|weak| weak.upgrade())
        .collect();
    live.iter()
        .map(|pipeline| PipelineInfo {
            name: pipeline.name().to_string(),
            state: format!("{:?}", pipeline.current_state()).to_lowercase(),
        })
        .collect()
}
