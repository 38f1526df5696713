//! `moonlightaudiopay` implementation: a plain `gst::Element` with a chain function.
//!
//! Owns the audio stream state of `docs/PROTOCOL.md` §5.2–§5.4: RTP sequence (from 0) and
//! timestamp (from 0, +`packet-duration` ms per packet), AES-128-CBC with the per-packet IV
//! `BE32(rikeyid + seq) ‖ 0^12`, and the 4+2 FEC blocks aligned to sequence numbers `4k`.
//! Each input buffer must be one Opus packet of `packet-duration` ms. Bad input (empty or
//! oversized packets) is dropped with a warning and does not consume a sequence number.
//!
//! ```text
//! gst-launch-1.0 audiotestsrc is-live=true ! audio/x-raw,rate=48000,channels=2 \
//!     ! opusenc frame-size=5 bitrate-type=cbr bitrate=96000 \
//!     ! moonlightaudiopay packet-duration=5 encrypt=true \
//!       aes-key=000102030405060708090a0b0c0d0e0f rikeyid=1234 \
//!     ! udpsink host=127.0.0.1 port=48000
//! ```

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::packetizer::{AudioConfig, AudioPacketizer};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "moonlightaudiopay",
        gst::DebugColorFlags::empty(),
        Some("Moonlight audio payloader"),
    )
});

const DEFAULT_PACKET_DURATION: u32 = 5;
const DEFAULT_ENCRYPT: bool = false;
const DEFAULT_RIKEYID: i32 = 0;
const DEFAULT_INITIAL_SEQUENCE: u32 = 0;

#[derive(Debug, Clone)]
struct Settings {
    packet_duration: u32,
    encrypt: bool,
    aes_key: Option<[u8; 16]>,
    rikeyid: i32,
    initial_sequence: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            packet_duration: DEFAULT_PACKET_DURATION,
            encrypt: DEFAULT_ENCRYPT,
            aes_key: None,
            rikeyid: DEFAULT_RIKEYID,
            initial_sequence: DEFAULT_INITIAL_SEQUENCE,
        }
    }
}

struct State {
    packetizer: AudioPacketizer,
    skipped_fec_blocks: u64,
}

/// The element.
pub struct MoonlightAudioPay {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

fn buffer_from(bytes: &[u8], pts: Option<gst::ClockTime>) -> gst::Buffer {
    let mut buffer = gst::Buffer::from_mut_slice(bytes.to_vec());
    if let Some(b) = buffer.get_mut() {
        b.set_pts(pts);
    }
    buffer
}

impl MoonlightAudioPay {
    fn sink_chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state_guard = self.state.lock().unwrap();
        let Some(state) = state_guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let Ok(map) = buffer.map_readable() else {
            gst::warning!(CAT, imp = self, "unreadable input buffer, dropping it");
            return Ok(gst::FlowSuccess::Ok);
        };
        let pts = buffer.pts();
        let packets = match state.packetizer.packetize(&map) {
            Ok(p) => p,
            Err(err) => {
                gst::warning!(CAT, imp = self, "dropping audio packet: {err}");
                return Ok(gst::FlowSuccess::Ok);
            }
        };
        let mut list = gst::BufferList::new_sized(3);
        {
            let Some(list_ref) = list.get_mut() else {
                return Err(gst::FlowError::Error);
            };
            list_ref.add(buffer_from(packets.data, pts));
            if let Some(fec) = packets.fec {
                for f in fec {
                    list_ref.add(buffer_from(f, pts));
                }
            }
        }
        if packets.fec_skipped {
            state.skipped_fec_blocks += 1;
            // Rate-limited: the first time, then every 1000th block.
            if state.skipped_fec_blocks % 1000 == 1 {
                gst::warning!(
                    CAT,
                    imp = self,
                    "audio block ending at seq {} has unequal payload sizes, no FEC sent \
                     ({} such blocks); use CBR Opus",
                    packets.sequence,
                    state.skipped_fec_blocks
                );
            }
        }
        drop(map);
        drop(state_guard);
        self.srcpad.push_list(list)
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            EventView::Caps(_) => {
                let caps = gst::Caps::builder("application/x-moonlight-rtp")
                    .field("media", "audio")
                    .field("encrypted", self.settings.lock().unwrap().encrypt)
                    .build();
                self.srcpad.push_event(gst::event::Caps::new(&caps))
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
        let cfg = AudioConfig {
            packet_duration_ms: settings.packet_duration,
            key,
            rikeyid: settings.rikeyid,
        };
        let mut packetizer = AudioPacketizer::new(cfg);
        packetizer.set_next_sequence(u16::try_from(settings.initial_sequence).unwrap_or(u16::MAX));
        *self.state.lock().unwrap() = Some(State {
            packetizer,
            skipped_fec_blocks: 0,
        });
        gst::debug!(
            CAT,
            imp = self,
            "started: {} ms packets, encrypted {}",
            settings.packet_duration,
            key.is_some()
        );
        Ok(())
    }

    fn stop(&self) {
        self.state.lock().unwrap().take();
    }
}

#[glib::object_subclass]
impl ObjectSubclass for MoonlightAudioPay {
    const NAME: &'static str = "HatiMoonlightAudioPay";
    type Type = super::MoonlightAudioPay;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("sink").unwrap();
        let sinkpad = gst::Pad::builder_from_template(&templ)
            .chain_function(|pad, parent, buffer| {
                MoonlightAudioPay::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain(pad, buffer),
                )
            })
            .event_function(|pad, parent, event| {
                MoonlightAudioPay::catch_panic_pad_function(
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

impl ObjectImpl for MoonlightAudioPay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecUInt::builder("packet-duration")
                    .nick("Packet duration")
                    .blurb("Opus packet duration in ms (x-nv-aqos.packetDuration)")
                    .minimum(1)
                    .maximum(1000)
                    .default_value(DEFAULT_PACKET_DURATION)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("encrypt")
                    .nick("Encrypt")
                    .blurb("AES-128-CBC audio encryption")
                    .default_value(DEFAULT_ENCRYPT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("aes-key")
                    .nick("AES key")
                    .blurb("The session rikey as 32 hex digits (write-only)")
                    .write_only()
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("rikeyid")
                    .nick("rikeyid")
                    .blurb("The session rikeyid (first IV word is rikeyid + sequence)")
                    .default_value(DEFAULT_RIKEYID)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("initial-sequence")
                    .nick("Initial sequence")
                    .blurb("Debug: the first RTP sequence number (rounded down to a multiple of 4)")
                    .maximum(u32::from(u16::MAX))
                    .default_value(DEFAULT_INITIAL_SEQUENCE)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        match pspec.name() {
            "packet-duration" => settings.packet_duration = value.get().unwrap(),
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
            "rikeyid" => settings.rikeyid = value.get().unwrap(),
            "initial-sequence" => settings.initial_sequence = value.get().unwrap(),
            name => unimplemented!("property {name}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings.lock().unwrap();
        match pspec.name() {
            "packet-duration" => settings.packet_duration.to_value(),
            "encrypt" => settings.encrypt.to_value(),
            "rikeyid" => settings.rikeyid.to_value(),
            "initial-sequence" => settings.initial_sequence.to_value(),
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

impl GstObjectImpl for MoonlightAudioPay {}

impl ElementImpl for MoonlightAudioPay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Moonlight audio payloader",
                "Codec/Payloader/Network/RTP",
                "Packetizes Opus packets into Moonlight audio RTP packets with 4+2 \
                 Reed-Solomon FEC and optional AES-CBC encryption",
                "Hati developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let sink_caps = gst::Caps::builder("audio/x-opus").build();
            let src_caps = gst::Caps::builder("application/x-moonlight-rtp")
                .field("media", "audio")
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
