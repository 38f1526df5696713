//! `moonlightvideopay` implementation: a plain `gst::Element` with a chain function.
//!
//! Owns the per-stream video packetisation state (`docs/PROTOCOL.md` §4.2–§4.6): packet counter,
//! frame index (1, 2, 3, … per input buffer), FEC encoder cache and the AES-GCM IV counter. Each
//! input buffer must be one access unit; its packets (data and parity, in send order) are
//! written straight into one output buffer (from a buffer pool: no allocation per frame once
//! warm) and pushed as a `gst::BufferList` of sub-buffers that share that memory, one per
//! datagram; or, with `single-buffer=true` (Hati's sender), as that one buffer, whose packets
//! are `packet-size` bytes each (a field of the src caps).
//!
//! ```text
//! gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency \
//!     ! video/x-h264,stream-format=byte-stream,alignment=au \
//!     ! moonlightvideopay payload-size=1392 fec-percentage=20 min-required-fec-packets=2 \
//!     ! udpsink host=127.0.0.1 port=47998
//! ```
//!
//! Input caps: `video/x-h264` / `video/x-h265` with `stream-format=byte-stream,alignment=au`
//! (Annex B with in-band parameter sets on IDR, §4.3), or `video/x-av1,alignment=tu` in the
//! low-overhead OBU format (`stream-format=obu-stream` or unset, as `av1enc` sends it).
//!
//! Frame header fields:
//! * frame type: 2 (IDR) for buffers without `DELTA_UNIT`, else 1;
//! * RTP timestamp: the running time of the buffer PTS in 90 kHz ticks (0 without a PTS);
//! * host processing latency: if the buffer carries a `GstReferenceTimestampMeta` with reference
//!   caps `timestamp/x-unix` (capture wall-clock time, ns since the Unix epoch), now minus that;
//!   otherwise the element clock's current running time minus the running time of the PTS
//!   (which is the capture time when a live source timestamps at capture); 0 when neither is
//!   known. Clamped to 6.5535 s.

use std::sync::{LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::packetizer::{Config, FrameMeta, FrameType, VideoPacketizer};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "moonlightvideopay",
        gst::DebugColorFlags::empty(),
        Some("Moonlight video payloader"),
    )
});

const DEFAULT_PAYLOAD_SIZE: u32 = 1392;
const DEFAULT_FEC_PERCENTAGE: u32 = 20;
const DEFAULT_MIN_REQUIRED_FEC_PACKETS: u32 = 2;
const DEFAULT_ENCRYPT: bool = false;
const DEFAULT_DROP_PERCENTAGE: u32 = 0;
const DEFAULT_INITIAL_PACKET_INDEX: u32 = 0;

/// Reference caps of the capture-time meta this element understands.
pub(crate) const CAPTURE_TIME_REFERENCE: &str = "timestamp/x-unix";

#[derive(Debug, Clone)]
struct Settings {
    payload_size: u32,
    fec_percentage: u32,
    min_required_fec_packets: u32,
    encrypt: bool,
    aes_key: Option<[u8; 16]>,
    drop_percentage: u32,
    initial_packet_index: u32,
    single_buffer: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            payload_size: DEFAULT_PAYLOAD_SIZE,
            fec_percentage: DEFAULT_FEC_PERCENTAGE,
            min_required_fec_packets: DEFAULT_MIN_REQUIRED_FEC_PACKETS,
            encrypt: DEFAULT_ENCRYPT,
            aes_key: None,
            drop_percentage: DEFAULT_DROP_PERCENTAGE,
            initial_packet_index: DEFAULT_INITIAL_PACKET_INDEX,
            single_buffer: false,
        }
    }
}

/// Frames whose host processing latency the `stats` property summarises (about 4 s at 60 fps).
const LATENCY_WINDOW: usize = 256;

/// The host processing latencies of the last [`LATENCY_WINDOW`] frames, in 0.1 ms units.
struct LatencyWindow {
    values: [u16; LATENCY_WINDOW],
    next: usize,
    filled: usize,
}

impl LatencyWindow {
    fn new() -> Self {
        Self {
            values: [0; LATENCY_WINDOW],
            next: 0,
            filled: 0,
        }
    }

    fn push(&mut self, units: u16) {
        if let Some(slot) = self.values.get_mut(self.next) {
            *slot = units;
        }
        self.next = (self.next + 1) % LATENCY_WINDOW;
        self.filled = (self.filled + 1).min(LATENCY_WINDOW);
    }

    /// (p50, p99) in µs, or zeros before the first frame.
    fn percentiles_us(&self) -> (u32, u32) {
        let mut sorted = self.values;
        let window = sorted.get_mut(..self.filled).unwrap_or_default();
        if window.is_empty() {
            return (0, 0);
        }
        window.sort_unstable();
        let at = |q: usize| {
            let index = (window.len() * q / 100).min(window.len() - 1);
            u32::from(window.get(index).copied().unwrap_or(0)) * 100
        };
        (at(50), at(99))
    }
}

struct State {
    packetizer: VideoPacketizer,
    latencies: LatencyWindow,
    segment: gst::FormattedSegment<gst::ClockTime>,
    /// Bresenham accumulator for `drop-percentage`.
    drop_acc: u32,
    dropped_frames: u64,
    /// Recycles frame buffers (no allocation per frame once warm), with its buffers' size.
    pool: Option<(gst::BufferPool, usize)>,
}

impl State {
    /// A buffer of `size` bytes from the pool; a frame larger than the pool's buffers replaces
    /// the pool with one of bigger buffers (rare: the first big key frames).
    fn frame_buffer(&mut self, size: usize) -> Result<gst::Buffer, gst::FlowError> {
        if self
            .pool
            .as_ref()
            .is_none_or(|(_, capacity)| *capacity < size)
        {
            if let Some((old, _)) = self.pool.take() {
                let _ = old.set_active(false);
            }
            let capacity = size.next_power_of_two().max(64 * 1024);
            let pool = gst::BufferPool::new();
            let mut config = pool.config();
            config.set_params(None, u32::try_from(capacity).unwrap_or(u32::MAX), 0, 0);
            pool.set_config(config).map_err(|_| gst::FlowError::Error)?;
            pool.set_active(true).map_err(|_| gst::FlowError::Error)?;
            self.pool = Some((pool, capacity));
        }
        let (pool, _) = self.pool.as_ref().ok_or(gst::FlowError::Error)?;
        let mut buffer = pool.acquire_buffer(None)?;
        buffer
            .get_mut()
            .ok_or(gst::FlowError::Error)?
            .set_size(size);
        Ok(buffer)
    }
}

/// The element.
pub struct MoonlightVideoPay {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

/// `ns` of running time as a 90 kHz RTP timestamp (wrapping).
fn rtp_timestamp_90k(running_time: gst::ClockTime) -> u32 {
    (u128::from(running_time.nseconds()) * 90_000 / 1_000_000_000) as u32
}

/// Latency in 0.1 ms units, saturating at `u16::MAX`.
fn latency_units(ns: u64) -> u16 {
    u16::try_from(ns / 100_000).unwrap_or(u16::MAX)
}

impl MoonlightVideoPay {
    fn sink_chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self.settings.lock().unwrap().clone();
        let mut state_guard = self.state.lock().unwrap();
        let Some(state) = state_guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        state.packetizer.set_fec(
            u8::try_from(settings.fec_percentage).unwrap_or(u8::MAX),
            u8::try_from(settings.min_required_fec_packets).unwrap_or(u8::MAX),
        );

        let Ok(map) = buffer.map_readable() else {
            gst::warning!(CAT, imp = self, "unreadable input buffer, dropping it");
            return Ok(gst::FlowSuccess::Ok);
        };

        let frame_type = if buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
            FrameType::PFrame
        } else {
            FrameType::Idr
        };
        let running_time = buffer
            .pts()
            .and_then(|pts| state.segment.to_running_time(pts));
        let meta = FrameMeta {
            frame_type,
            rtp_timestamp: running_time.map_or(0, rtp_timestamp_90k),
            host_processing_latency: self.host_latency(&buffer, running_time),
        };
        state.latencies.push(meta.host_processing_latency);

        let plan = match state.packetizer.plan(map.len()) {
            Ok(plan) => plan,
            Err(err) => {
                state.dropped_frames += 1;
                gst::warning!(
                    CAT,
                    imp = self,
                    "dropping frame of {} bytes: {err}",
                    map.len()
                );
                return Ok(gst::FlowSuccess::Ok);
            }
        };
        if plan.fec_disabled {
            gst::debug!(
                CAT,
                imp = self,
                "frame of {} bytes needs > 4 blocks, FEC off",
                map.len()
            );
        }

        let mut out = state.frame_buffer(plan.total_len()).inspect_err(|_| {
            gst::error!(
                CAT,
                imp = self,
                "cannot get a buffer of {} bytes",
                plan.total_len()
            );
        })?;
        let info = {
            let Some(out_ref) = out.get_mut() else {
                return Err(gst::FlowError::Error);
            };
            out_ref.set_pts(buffer.pts());
            out_ref.set_dts(buffer.dts());
            out_ref.set_duration(buffer.duration());
            let Ok(mut omap) = out_ref.map_writable() else {
                return Err(gst::FlowError::Error);
            };
            match state.packetizer.packetize_into(&map, &meta, &mut omap) {
                Ok(info) => info,
                Err(err) => {
                    state.dropped_frames += 1;
                    gst::warning!(CAT, imp = self, "dropping frame: {err}");
                    return Ok(gst::FlowSuccess::Ok);
                }
            }
        };
        drop(map);

        let stride = info.plan.packet_len;
        let count = info.plan.total_packets();
        gst::trace!(
            CAT,
            imp = self,
            "frame {} ({:?}): {} bytes, {} packets from seq {}",
            info.frame_index,
            frame_type,
            info.plan.au_len,
            count,
            info.first_sequence
        );
        if settings.single_buffer && settings.drop_percentage == 0 {
            drop(state_guard);
            // One buffer per frame, its packets `packet-size` bytes each (see the src caps).
            return self.srcpad.push(out);
        }
        // A list of sub-buffers sharing the frame's memory, one per packet (kept).
        let mut list = gst::BufferList::new_sized(count);
        {
            let Some(list_ref) = list.get_mut() else {
                return Err(gst::FlowError::Error);
            };
            for k in 0..count {
                if settings.drop_percentage > 0 {
                    state.drop_acc += settings.drop_percentage.min(100);
                    if state.drop_acc >= 100 {
                        state.drop_acc -= 100;
                        continue;
                    }
                }
                // A sub-buffer sharing the frame's memory: no copy.
                let mut packet = out
                    .copy_region(gst::BufferCopyFlags::MEMORY, k * stride..(k + 1) * stride)
                    .map_err(|_| gst::FlowError::Error)?;
                if let Some(p) = packet.get_mut() {
                    p.set_pts(buffer.pts());
                    p.set_dts(buffer.dts());
                }
                list_ref.add(packet);
            }
        }
        drop(state_guard);

        if list.is_empty() {
            return Ok(gst::FlowSuccess::Ok);
        }
        self.srcpad.push_list(list)
    }

    /// Host processing latency for the frame header, see the module docs.
    fn host_latency(&self, buffer: &gst::BufferRef, running_time: Option<gst::ClockTime>) -> u16 {
        for meta in buffer.iter_meta::<gst::ReferenceTimestampMeta>() {
            if meta
                .reference()
                .structure(0)
                .is_some_and(|s| s.name() == CAPTURE_TIME_REFERENCE)
            {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                return latency_units(now.saturating_sub(meta.timestamp().nseconds()));
            }
        }
        let obj = self.obj();
        let (Some(running_time), Some(clock), Some(base_time)) =
            (running_time, obj.clock(), obj.base_time())
        else {
            return 0;
        };
        let now = clock.time().saturating_sub(base_time);
        latency_units(now.saturating_sub(running_time).nseconds())
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            EventView::Caps(c) => {
                let structure = c.caps().structure(0);
                let encoding = match structure.map(|s| s.name().as_str()) {
                    Some("video/x-h264") => "H264",
                    Some("video/x-h265") => "H265",
                    Some("video/x-av1")
                        if structure
                            .and_then(|s| s.get_optional::<&str>("stream-format").ok())
                            .flatten()
                            .is_none_or(|f| f == "obu-stream") =>
                    {
                        "AV1"
                    }
                    _ => {
                        gst::warning!(CAT, imp = self, "unsupported caps {:?}", c.caps());
                        return false;
                    }
                };
                let settings = self.settings.lock().unwrap().clone();
                let packet_size = self
                    .state
                    .lock()
                    .unwrap()
                    .as_ref()
                    .and_then(|state| state.packetizer.plan(1).ok())
                    .map_or(0, |plan| plan.packet_len);
                let caps = gst::Caps::builder("application/x-moonlight-rtp")
                    .field("media", "video")
                    .field("encoding-name", encoding)
                    .field(
                        "payload-size",
                        i32::try_from(settings.payload_size).unwrap_or(0),
                    )
                    .field("packet-size", i32::try_from(packet_size).unwrap_or(0))
                    .field("encrypted", settings.encrypt)
                    .build();
                self.srcpad.push_event(gst::event::Caps::new(&caps))
            }
            EventView::Segment(s) => {
                match s.segment().downcast_ref::<gst::ClockTime>() {
                    Some(segment) => {
                        if let Some(state) = self.state.lock().unwrap().as_mut() {
                            state.segment = segment.clone();
                        }
                    }
                    None => {
                        gst::warning!(CAT, imp = self, "segment not in time format");
                    }
                }
                gst::Pad::event_default(pad, Some(&*self.obj()), event)
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let key = match (settings.encrypt, settings.aes_key) {
            (false, _) => None,
            (true, Some(key)) => Some(key),
            (true, None) => {
                return Err(gst::error_msg!(
                    gst::LibraryError::Settings,
                    ["encrypt=true needs a 32-hex-digit aes-key"]
                ));
            }
        };
        let cfg = Config {
            payload_size: settings.payload_size as usize,
            fec_percentage: u8::try_from(settings.fec_percentage).unwrap_or(u8::MAX),
            min_required_fec_packets: u8::try_from(settings.min_required_fec_packets)
                .unwrap_or(u8::MAX),
        };
        let mut packetizer = VideoPacketizer::new(cfg, key).map_err(|err| {
            gst::error_msg!(gst::LibraryError::Settings, ["invalid settings: {err}"])
        })?;
        packetizer.set_next_packet_index(settings.initial_packet_index);
        *self.state.lock().unwrap() = Some(State {
            packetizer,
            latencies: LatencyWindow::new(),
            segment: gst::FormattedSegment::new(),
            drop_acc: 0,
            dropped_frames: 0,
            pool: None,
        });
        gst::debug!(
            CAT,
            imp = self,
            "started: {cfg:?}, encrypted {}",
            key.is_some()
        );
        Ok(())
    }

    fn stop(&self) {
        if let Some(state) = self.state.lock().unwrap().take() {
            gst::debug!(
                CAT,
                imp = self,
                "stopped after {} frames ({} dropped)",
                state.packetizer.next_frame_index().wrapping_sub(1),
                state.dropped_frames
            );
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for MoonlightVideoPay {
    const NAME: &'static str = "HatiMoonlightVideoPay";
    type Type = super::MoonlightVideoPay;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("sink").unwrap();
        let sinkpad = gst::Pad::builder_from_template(&templ)
            .chain_function(|pad, parent, buffer| {
                MoonlightVideoPay::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain(pad, buffer),
                )
            })
            .event_function(|pad, parent, event| {
                MoonlightVideoPay::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(pad, event),
                )
            })
            .build();
        let templ = klass.pad_template("src").unwrap();
        let srcpad = gst::Pad::builder_from_template(&templ).build();
        Self {
            sinkpad,
            srcpad,
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(None),
        }
    }
}

impl ObjectImpl for MoonlightVideoPay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecUInt::builder("payload-size")
                    .nick("Payload size")
                    .blurb("P: bytes per packet after the RTP header (x-nv-video[0].packetSize)")
                    .minimum(super::packetizer::MIN_PAYLOAD_SIZE as u32)
                    .maximum(super::packetizer::MAX_PAYLOAD_SIZE as u32)
                    .default_value(DEFAULT_PAYLOAD_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("fec-percentage")
                    .nick("FEC percentage")
                    .blurb("Parity packets per block as a percentage of data packets (0 = off)")
                    .maximum(255)
                    .default_value(DEFAULT_FEC_PERCENTAGE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("min-required-fec-packets")
                    .nick("Minimum FEC packets")
                    .blurb("Minimum parity packets per block when FEC is on")
                    .maximum(255)
                    .default_value(DEFAULT_MIN_REQUIRED_FEC_PACKETS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("encrypt")
                    .nick("Encrypt")
                    .blurb("AES-128-GCM video encryption (SS_ENC_VIDEO)")
                    .default_value(DEFAULT_ENCRYPT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("aes-key")
                    .nick("AES key")
                    .blurb("The session rikey as 32 hex digits (write-only)")
                    .write_only()
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("drop-percentage")
                    .nick("Drop percentage")
                    .blurb("Debug: deterministically drop this share of outgoing packets")
                    .maximum(100)
                    .default_value(DEFAULT_DROP_PERCENTAGE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("frames, dropped-frames, latency-p50-us and latency-p99-us (host processing latency over the last 256 frames)")
                    .read_only()
                    .build(),
                glib::ParamSpecBoolean::builder("single-buffer")
                    .nick("Single buffer")
                    .blurb("Push each frame as one buffer of back-to-back packets, `packet-size` bytes each (in the src caps), instead of a list of one buffer per packet")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("initial-packet-index")
                    .nick("Initial packet index")
                    .blurb("Debug: the 32-bit packet counter's first value (low 16 bits = RTP sequence)")
                    .default_value(DEFAULT_INITIAL_PACKET_INDEX)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        match pspec.name() {
            "payload-size" => settings.payload_size = value.get().unwrap(),
            "fec-percentage" => settings.fec_percentage = value.get().unwrap(),
            "min-required-fec-packets" => settings.min_required_fec_packets = value.get().unwrap(),
            "encrypt" => settings.encrypt = value.get().unwrap(),
            "aes-key" => {
                settings.aes_key = crate::aes_key_property(value).unwrap_or_else(|()| {
                    gst::error!(
                        CAT,
                        imp = self,
                        "aes-key must be 32 hex digits; key cleared"
                    );
                    None
                });
            }
            "drop-percentage" => settings.drop_percentage = value.get().unwrap(),
            "single-buffer" => settings.single_buffer = value.get().unwrap(),
            "initial-packet-index" => settings.initial_packet_index = value.get().unwrap(),
            name => unimplemented!("property {name}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings.lock().unwrap();
        match pspec.name() {
            "payload-size" => settings.payload_size.to_value(),
            "fec-percentage" => settings.fec_percentage.to_value(),
            "min-required-fec-packets" => settings.min_required_fec_packets.to_value(),
            "encrypt" => settings.encrypt.to_value(),
            "drop-percentage" => settings.drop_percentage.to_value(),
            "single-buffer" => settings.single_buffer.to_value(),
            "initial-packet-index" => settings.initial_packet_index.to_value(),
            "stats" => {
                drop(settings);
                let state = self.state.lock().unwrap();
                let (frames, dropped, (p50, p99)) = state.as_ref().map_or((0, 0, (0, 0)), |s| {
                    (
                        u64::from(s.packetizer.next_frame_index().wrapping_sub(1)),
                        s.dropped_frames,
                        s.latencies.percentiles_us(),
                    )
                });
                gst::Structure::builder("moonlightvideopay-stats")
                    .field("frames", frames)
                    .field("dropped-frames", dropped)
                    .field("latency-p50-us", p50)
                    .field("latency-p99-us", p99)
                    .build()
                    .to_value()
            }
            name => unimplemented!("property {name}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }
}

impl GstObjectImpl for MoonlightVideoPay {}

impl ElementImpl for MoonlightVideoPay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Moonlight video payloader",
                "Codec/Payloader/Network/RTP",
                "Packetizes H.264/HEVC/AV1 access units into Moonlight video RTP packets with \
                 Reed-Solomon FEC and optional AES-GCM encryption",
                "Hati developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let sink_caps = gst::Caps::builder_full()
                .structure(
                    gst::Structure::builder("video/x-h264")
                        .field("stream-format", "byte-stream")
                        .field("alignment", "au")
                        .build(),
                )
                .structure(
                    gst::Structure::builder("video/x-h265")
                        .field("stream-format", "byte-stream")
                        .field("alignment", "au")
                        .build(),
                )
                .structure(
                    // av1enc (1.22) leaves stream-format out; other formats are refused in the
                    // caps event.
                    gst::Structure::builder("video/x-av1")
                        .field("alignment", "tu")
                        .build(),
                )
                .build();
            let src_caps = gst::Caps::builder("application/x-moonlight-rtp")
                .field("media", "video")
                .build();
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &sink_caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &src_caps,
                )
                .unwrap(),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            self.start().map_err(|err| {
                self.post_error_message(err);
                gst::StateChangeError
            })?;
        }
        let ret = self.parent_change_state(transition);
        if transition == gst::StateChange::PausedToReady {
            self.stop();
        }
        ret
    }
}
