//! Implementation of `hatitestsrc`: a live `PushSrc` paced by the pipeline clock.
//!
//! Each `create()` waits for the next frame time (`frame × 1/fps` in running time, skipping
//! ahead after a stall), takes a buffer from the element's pool, paints it (`paint.rs`) and
//! pushes it with that PTS.

use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use gst::{glib, prelude::*, subclass::prelude::*};
use gst_base::{subclass::base_src::CreateSuccess, subclass::prelude::*};
use gst_video::prelude::*;

use super::paint::{Yuv, paint_plane};
use crate::live::{FramePacer, answer_latency, frame_pool, make_live, src_template};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "hatitestsrc",
        gst::DebugColorFlags::empty(),
        Some("Hati test pattern source"),
    )
});

/// The Test pattern's colours, `0xAARRGGBB` as videotestsrc takes them.
const DEFAULT_BACKGROUND: u32 = 0xff20_60a0;
const DEFAULT_FOREGROUND: u32 = 0xffff_d040;
/// Buffers the pool keeps ready.
const POOL_MIN_BUFFERS: u32 = 2;

#[derive(Debug, Clone, Copy)]
struct Settings {
    background: u32,
    foreground: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            background: DEFAULT_BACKGROUND,
            foreground: DEFAULT_FOREGROUND,
        }
    }
}

/// Negotiated state, from `set_caps()` to `stop()`.
struct State {
    info: gst_video::VideoInfo,
    pool: gst::BufferPool,
    frame_duration: gst::ClockTime,
    frame_index: u64,
}

#[derive(Default)]
pub struct HatiTestSrc {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    pacer: FramePacer,
}

impl HatiTestSrc {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for HatiTestSrc {
    const NAME: &'static str = "HatiTestSrc";
    type Type = super::HatiTestSrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for HatiTestSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecUInt::builder("background")
                    .nick("Background")
                    .blurb("Background colour, 0xAARRGGBB (alpha ignored)")
                    .default_value(DEFAULT_BACKGROUND)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("foreground")
                    .nick("Foreground")
                    .blurb("Colour of the moving square, 0xAARRGGBB (alpha ignored)")
                    .default_value(DEFAULT_FOREGROUND)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings();
        // GObject checks values against the param specs above.
        match pspec.name() {
            "background" => settings.background = value.get().unwrap_or(DEFAULT_BACKGROUND),
            "foreground" => settings.foreground = value.get().unwrap_or(DEFAULT_FOREGROUND),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = *self.settings();
        match pspec.name() {
            "background" => settings.background.to_value(),
            _ => settings.foreground.to_value(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        make_live(&*self.obj());
    }
}

impl GstObjectImpl for HatiTestSrc {}

impl ElementImpl for HatiTestSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Hati test pattern",
                "Source/Video",
                "A live picture: a square moving over a solid background",
                "Hati developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> =
            LazyLock::new(|| vec![src_template(gst_video::VideoFormat::I420, 16)]);
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseSrcImpl for HatiTestSrc {
    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(state) = self.state().take() {
            let _ = state.pool.set_active(false);
        }
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        false
    }

    fn fixate(&self, mut caps: gst::Caps) -> gst::Caps {
        // Unconstrained, the Test pattern's own default mode: 1280×720 at 60 fps.
        caps.truncate();
        if let Some(structure) = caps.make_mut().structure_mut(0) {
            structure.fixate_field_nearest_int("width", 1280);
            structure.fixate_field_nearest_int("height", 720);
            structure.fixate_field_nearest_fraction("framerate", gst::Fraction::new(60, 1));
        }
        self.parent_fixate(caps)
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|_| gst::loggable_error!(CAT, "invalid caps {caps}"))?;
        let fps = info.fps();
        let (numer, denom) = (
            u64::try_from(fps.numer()).unwrap_or(0),
            u64::try_from(fps.denom()).unwrap_or(0),
        );
        if numer == 0 || denom == 0 {
            return Err(gst::loggable_error!(
                CAT,
                "a live source needs a frame rate"
            ));
        }
        let pool =
            frame_pool(caps, POOL_MIN_BUFFERS).map_err(|e| gst::loggable_error!(CAT, "{e}"))?;
        let frame_duration = gst::ClockTime::SECOND
            .mul_div_floor(denom, numer)
            .unwrap_or(gst::ClockTime::SECOND);
        if let Some(old) = self.state().replace(State {
            info,
            pool,
            frame_duration,
            frame_index: 0,
        }) {
            let _ = old.pool.set_active(false);
        }
        gst::debug!(CAT, imp = self, "configured for {caps}");
        Ok(())
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            return answer_latency(q, self.state().as_ref().map(|s| s.frame_duration));
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

impl PushSrcImpl for HatiTestSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        let (frame_index, duration) = {
            let mut state = self.state();
            let Some(state) = state.as_mut() else {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ["no caps negotiated"]);
                return Err(gst::FlowError::NotNegotiated);
            };
            state.frame_index =
                FramePacer::next_frame(&*self.obj(), state.frame_index, state.frame_duration);
            (state.frame_index, state.frame_duration)
        };
        let running_time = duration * frame_index;
        self.pacer.wait_until(&*self.obj(), running_time)?;

        let settings = *self.settings();
        let (background, foreground) = (
            Yuv::from_argb(settings.background),
            Yuv::from_argb(settings.foreground),
        );
        let mut state = self.state();
        let Some(state) = state.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let mut buffer = state.pool.acquire_buffer(None)?;
        {
            let buffer = buffer.make_mut();
            let mut frame =
                gst_video::VideoFrameRef::from_buffer_ref_writable(&mut *buffer, &state.info)
                    .map_err(|_| gst::FlowError::Error)?;
            let (width, height) = (frame.width() as usize, frame.height() as usize);
            for component in 0..3u32 {
                let stride = usize::try_from(frame.plane_stride()[component as usize]).unwrap_or(0);
                let plane = frame
                    .plane_data_mut(component)
                    .map_err(|_| gst::FlowError::Error)?;
                paint_plane(
                    plane,
                    stride,
                    component as usize,
                    width,
                    height,
                    frame_index,
                    background,
                    foreground,
                );
            }
        }
        {
            let buffer = buffer.make_mut();
            buffer.set_pts(running_time);
            buffer.set_dts(gst::ClockTime::NONE);
            buffer.set_duration(duration);
            buffer.set_offset(frame_index);
            buffer.set_offset_end(frame_index + 1);
        }
        state.frame_index = frame_index + 1;
        gst::trace!(CAT, imp = self, "frame {frame_index} at {running_time}");
        Ok(CreateSuccess::NewBuffer(buffer))
    }
}
