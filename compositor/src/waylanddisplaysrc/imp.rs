//! Implementation of `waylanddisplaysrc`: a live `PushSrc` paced by the pipeline clock.
//!
//! Each `create()` waits for the next frame time (`frame * 1/fps` in running time, `fps` being
//! `output-fps` or else the compositor's), asks the compositor, as this element's
//! [`FrameConsumer`], for a frame in a buffer from the element's pool, and pushes it with that
//! PTS. A frame another element on the same compositor rendered first is pushed by reference
//! (a shallow copy with this element's timestamps). When nothing changed since this element's
//! previous frame, that buffer is pushed again (a shallow copy too), so a static desktop costs
//! no rendering.
//!
//! ```text
//! gst-launch-1.0 waylanddisplaysrc width=1280 height=720 framerate=30 runtime-dir=/run/user/1000 \
//!     ! videoconvert ! autovideosink
//! ```

use std::{
    path::PathBuf,
    sync::{LazyLock, Mutex},
};

use gst::{glib, prelude::*, subclass::prelude::*};
use gst_base::{prelude::*, subclass::base_src::CreateSuccess, subclass::prelude::*};

use gsthati::live::{FramePacer, answer_latency, frame_pool, make_live, src_template};

use crate::{Compositor, CompositorConfig, CompositorHandle, FrameConsumer, FrameOutcome};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "waylanddisplaysrc",
        gst::DebugColorFlags::empty(),
        Some("Hati headless Wayland compositor source"),
    )
});

const DEFAULT_WIDTH: u32 = 1920;
const DEFAULT_HEIGHT: u32 = 1080;
const DEFAULT_FRAMERATE: u32 = 60;
const DEFAULT_XWAYLAND: bool = true;
/// 0: produce frames at the compositor's rate.
const DEFAULT_OUTPUT_FPS: u32 = 0;
/// Highest frame rate, the compositor's own limit.
const MAX_FPS: u32 = 480;
/// Buffers the pool keeps ready.
const POOL_MIN_BUFFERS: u32 = 2;

#[derive(Debug, Clone)]
struct Settings {
    width: u32,
    height: u32,
    framerate: u32,
    runtime_dir: Option<String>,
    wayland_display: Option<String>,
    xwayland: bool,
    output_fps: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
            framerate: DEFAULT_FRAMERATE,
            runtime_dir: None,
            wayland_display: None,
            xwayland: DEFAULT_XWAYLAND,
            output_fps: DEFAULT_OUTPUT_FPS,
        }
    }
}

/// Streaming state, from `start()` to `stop()`.
struct State {
    consumer: FrameConsumer,
    /// Set by `set_caps`.
    pool: Option<gst::BufferPool>,
    /// Frames per second this element produces.
    fps: u32,
    frame_duration: gst::ClockTime,
    frame_index: u64,
    last: Option<gst::Buffer>,
}

#[derive(Default)]
pub struct WaylandDisplaySrc {
    settings: Mutex<Settings>,
    attached: Mutex<Option<CompositorHandle>>,
    state: Mutex<Option<State>>,
    pacer: FramePacer,
}

impl WaylandDisplaySrc {
    pub(super) fn set_compositor(&self, handle: CompositorHandle) {
        *self.attached.lock().unwrap() = Some(handle);
    }

    pub(super) fn compositor(&self) -> Option<CompositorHandle> {
        let state = self.state.lock().unwrap();
        state
            .as_ref()
            .map(|s| s.consumer.handle().clone())
            .or_else(|| self.attached.lock().unwrap().clone())
    }

    /// Caps of the compositor's size at `fps`.
    fn caps_for(config: &CompositorConfig, fps: u32) -> gst::Caps {
        gst_video::VideoCapsBuilder::new()
            .format(gst_video::VideoFormat::Bgrx)
            .width(i32::try_from(config.width).unwrap_or(i32::MAX))
            .height(i32::try_from(config.height).unwrap_or(i32::MAX))
            .framerate(gst::Fraction::new(
                i32::try_from(fps).unwrap_or(i32::MAX),
                1,
            ))
            .build()
    }

    fn compositor_for_start(&self) -> Result<CompositorHandle, gst::ErrorMessage> {
        if let Some(handle) = self.attached.lock().unwrap().clone() {
            return Ok(handle);
        }
        let settings = self.settings.lock().unwrap().clone();
        if let Some(name) = settings.wayland_display.as_deref() {
            return CompositorHandle::by_socket_name(name).ok_or_else(|| {
                gst::error_msg!(
                    gst::ResourceError::NotFound,
                    ["no compositor with socket {name} runs in this process"]
                )
            });
        }
        let mut config = CompositorConfig {
            width: settings.width,
            height: settings.height,
            fps: settings.framerate,
            xwayland: settings.xwayland,
            ..CompositorConfig::default()
        };
        if let Some(dir) = settings.runtime_dir {
            config.runtime_dir = PathBuf::from(dir);
        }
        Compositor::start(config).map_err(|err| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ["cannot start the compositor: {err}"]
            )
        })
    }
}

#[glib::object_subclass]
impl ObjectSubclass for WaylandDisplaySrc {
    const NAME: &'static str = "HatiWaylandDisplaySrc";
    type Type = super::WaylandDisplaySrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for WaylandDisplaySrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecUInt::builder("width")
                    .nick("Width")
                    .blurb("Output width of a compositor the element starts")
                    .minimum(1)
                    .maximum(8192)
                    .default_value(DEFAULT_WIDTH)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("height")
                    .nick("Height")
                    .blurb("Output height of a compositor the element starts")
                    .minimum(1)
                    .maximum(8192)
                    .default_value(DEFAULT_HEIGHT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("framerate")
                    .nick("Frame rate")
                    .blurb("Frames per second of a compositor the element starts")
                    .minimum(1)
                    .maximum(480)
                    .default_value(DEFAULT_FRAMERATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("runtime-dir")
                    .nick("Runtime directory")
                    .blurb("Directory for the socket of a compositor the element starts (default XDG_RUNTIME_DIR)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("wayland-display")
                    .nick("Wayland display")
                    .blurb(
                        "Socket name of a compositor running in this process to use; reads back \
                         the socket name in use",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("xwayland")
                    .nick("XWayland")
                    .blurb("Start XWayland in a compositor the element starts")
                    .default_value(DEFAULT_XWAYLAND)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("output-fps")
                    .nick("Output frame rate")
                    .blurb(
                        "Frames per second this element produces, e.g. a guest's lower rate on a \
                         shared compositor (0: the compositor's rate; clients keep getting frame \
                         callbacks at the compositor's rate)",
                    )
                    .minimum(0)
                    .maximum(MAX_FPS)
                    .default_value(DEFAULT_OUTPUT_FPS)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        // Values are checked by GObject against the param specs above.
        match pspec.name() {
            "width" => settings.width = value.get().unwrap_or(DEFAULT_WIDTH),
            "height" => settings.height = value.get().unwrap_or(DEFAULT_HEIGHT),
            "framerate" => settings.framerate = value.get().unwrap_or(DEFAULT_FRAMERATE),
            "runtime-dir" => settings.runtime_dir = value.get().unwrap_or(None),
            "wayland-display" => settings.wayland_display = value.get().unwrap_or(None),
            "xwayland" => settings.xwayland = value.get().unwrap_or(DEFAULT_XWAYLAND),
            "output-fps" => settings.output_fps = value.get().unwrap_or(DEFAULT_OUTPUT_FPS),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings.lock().unwrap().clone();
        match pspec.name() {
            "width" => settings.width.to_value(),
            "height" => settings.height.to_value(),
            "framerate" => settings.framerate.to_value(),
            "runtime-dir" => settings.runtime_dir.to_value(),
            "wayland-display" => self
                .compositor()
                .map(|c| c.wayland_display().to_owned())
                .or(settings.wayland_display)
                .to_value(),
            "xwayland" => settings.xwayland.to_value(),
            "output-fps" => settings.output_fps.to_value(),
            _ => None::<String>.to_value(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        make_live(&*self.obj());
    }
}

impl GstObjectImpl for WaylandDisplaySrc {}

impl ElementImpl for WaylandDisplaySrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Hati Wayland display source",
                "Source/Video",
                "Runs a headless Wayland compositor and produces its output as raw video",
                "Hati developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> =
            LazyLock::new(|| vec![src_template(gst_video::VideoFormat::Bgrx, 1)]);
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseSrcImpl for WaylandDisplaySrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let compositor = self.compositor_for_start()?;
        let output_fps = self.settings.lock().unwrap().output_fps;
        let fps = match output_fps {
            0 => compositor.config().fps,
            fps => fps,
        }
        .max(1);
        gst::info!(
            CAT,
            imp = self,
            "using compositor {} ({}x{} at {} fps), producing {} fps",
            compositor.wayland_display(),
            compositor.config().width,
            compositor.config().height,
            compositor.config().fps,
            fps
        );
        *self.state.lock().unwrap() = Some(State {
            consumer: compositor.frame_consumer(),
            pool: None,
            fps,
            frame_duration: gst::ClockTime::SECOND / u64::from(fps),
            frame_index: 0,
            last: None,
        });
        self.obj().notify("wayland-display");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(state) = self.state.lock().unwrap().take()
            && let Some(pool) = state.pool
        {
            let _ = pool.set_active(false);
        }
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        false
    }

    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let caps = match self.state.lock().unwrap().as_ref() {
            Some(state) => Self::caps_for(state.consumer.handle().config(), state.fps),
            None => self.obj().src_pad().pad_template_caps(),
        };
        Some(match filter {
            Some(filter) => filter.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|_| gst::loggable_error!(CAT, "invalid caps {caps}"))?;
        let mut state = self.state.lock().unwrap();
        let Some(state) = state.as_mut() else {
            return Err(gst::loggable_error!(CAT, "caps set before start"));
        };
        let config = state.consumer.handle().config();
        if info.width() != config.width || info.height() != config.height {
            return Err(gst::loggable_error!(
                CAT,
                "caps {}x{} do not match the compositor's {}x{}",
                info.width(),
                info.height(),
                config.width,
                config.height
            ));
        }
        let pool =
            frame_pool(caps, POOL_MIN_BUFFERS).map_err(|e| gst::loggable_error!(CAT, "{e}"))?;
        if let Some(old) = state.pool.replace(pool) {
            let _ = old.set_active(false);
        }
        state.last = None;
        // Without a last buffer to repeat, the next frame must not be `Unchanged`.
        state.consumer.reset();
        gst::debug!(CAT, imp = self, "configured for {caps}");
        Ok(())
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let duration = self
                .state
                .lock()
                .unwrap()
                .as_ref()
                .map(|s| s.frame_duration);
            return answer_latency(q, duration);
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.pacer.unlock();
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.pacer.unlock_stop();
        Ok(())
    }
}

impl PushSrcImpl for WaylandDisplaySrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        let (running_time, duration, frame_index) = {
            let mut state = self.state.lock().unwrap();
            let Some(state) = state.as_mut() else {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ["not started"]);
                return Err(gst::FlowError::NotNegotiated);
            };
            // Behind by more than a frame (or started late): skip ahead instead of producing a
            // burst of stale frames.
            state.frame_index =
                FramePacer::next_frame(&*self.obj(), state.frame_index, state.frame_duration);
            (
                state.frame_duration * state.frame_index,
                state.frame_duration,
                state.frame_index,
            )
        };
        self.pacer.wait_until(&*self.obj(), running_time)?;

        let mut state = self.state.lock().unwrap();
        let Some(state) = state.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let Some(pool) = state.pool.as_ref() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["no caps negotiated"]);
            return Err(gst::FlowError::NotNegotiated);
        };
        let target = pool.acquire_buffer(None)?;
        // No need to force a frame when `last` is empty: the consumer is then fresh or reset,
        // and so never answered `Unchanged`.
        let outcome = state.consumer.render(target, false).map_err(|err| {
            gst::element_imp_error!(self, gst::ResourceError::Read, ["compositor failed: {err}"]);
            gst::FlowError::Error
        })?;
        let (mut buffer, fresh) = match outcome {
            // A shared frame is referenced elsewhere too: `make_mut` below gives this stream its
            // own buffer (same pixels) for its timestamps; a rendered one is ours alone.
            FrameOutcome::Rendered(buffer) | FrameOutcome::Shared(buffer) => (buffer, true),
            FrameOutcome::Unchanged(unused) => {
                drop(unused);
                match state.last.as_ref() {
                    // A shallow copy: it shares the pixels and takes new timestamps.
                    Some(last) => (last.copy(), false),
                    None => {
                        gst::element_imp_error!(
                            self,
                            gst::CoreError::Failed,
                            ["the compositor answered Unchanged before any frame"]
                        );
                        return Err(gst::FlowError::Error);
                    }
                }
            }
        };
        {
            let buffer = buffer.make_mut();
            buffer.set_pts(running_time);
            buffer.set_dts(gst::ClockTime::NONE);
            buffer.set_duration(duration);
            buffer.set_offset(frame_index);
            buffer.set_offset_end(frame_index + 1);
        }
        if fresh {
            state.last = Some(buffer.clone());
        }
        state.frame_index = frame_index + 1;
        gst::trace!(CAT, imp = self, "frame {frame_index} at {running_time}");
        Ok(CreateSuccess::NewBuffer(buffer))
    }
}
