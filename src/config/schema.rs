//! The typed sections of `config.toml`, as serde reads them: `[network]`, `[pairing]`,
//! `[streaming]`, `[admin]`, `[webrtc]`, `[debug]`, `[[apps]]` and `[gstreamer]`.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[network]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Address every server listens on.
    pub bind: IpAddr,
    /// The HTTP port; the others derive from it unless set.
    pub http_port: u16,
    /// HTTPS port (default `http_port - 5`).
    pub https_port: Option<u16>,
    /// RTSP port (default `http_port + 21`).
    pub rtsp_port: Option<u16>,
    /// Video UDP port (default `http_port + 9`).
    pub video_port: Option<u16>,
    /// Control (ENet) UDP port (default `http_port + 10`).
    pub control_port: Option<u16>,
    /// Audio UDP port (default `http_port + 11`).
    pub audio_port: Option<u16>,
    /// Advertise `_nvstream._tcp` with mDNS.
    pub mdns: bool,
}

/// `[admin]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve the admin API (`/api/v1/`) on this TCP address too, every request with the
    /// bearer token from `<state>/api-token`; absent: only the unix socket and the dashboard.
    pub listen: Option<std::net::SocketAddr>,
}

/// `[pairing]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairingConfig {
    /// Failed PIN attempts per client address before a lockout.
    pub max_failed_attempts: u32,
    /// Length of that lockout.
    pub lockout_seconds: u64,
    /// How long a pairing client waits for the PIN.
    pub pin_timeout_seconds: u64,
    /// The role a newly paired client gets (`admin`, `player` or `spectator`), with every app.
    #[serde(default)]
    pub default_role: crate::state::permissions::Role,
}

/// `[streaming]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamingConfig {
    /// Video FEC parity share in percent (0 = off).
    pub fec_percentage: u8,
    /// Offer AES-GCM video encryption to clients that ask for it.
    pub video_encryption: bool,
    /// End a session whose client has not connected (after launch) or come back (after a
    /// disconnect) within this many seconds; 0 keeps it until cancelled.
    pub client_timeout_s: u64,
    /// Lower the encoder's bitrate when the client reports congestion, and raise it back.
    pub adaptive_bitrate: bool,
    /// The lowest bitrate adaptation goes to, kbit/s.
    pub min_bitrate_kbps: u32,
    /// The video sender's token bucket refills at this multiple of the encoder's bitrate.
    pub pacing_multiple: f64,
    /// Nice value (-20..=0) of the threads that carry input: the control stream's thread and
    /// each compositor's; 0 leaves them at the encoders' priority.
    pub input_thread_nice: i32,
}

/// `[webrtc]`: browser play.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebRtcConfig {
    /// Serve the play page (`/play`) and its WebRTC signalling.
    pub enabled: bool,
    /// STUN and TURN servers for players behind NAT (none: host candidates only, for LANs).
    #[serde(default)]
    pub ice_servers: Vec<hati_protocol::browser::IceServer>,
    /// The lowest UDP port of the host's ICE sockets (0: any free port).
    #[serde(default)]
    pub min_port: u16,
    /// The highest UDP port of the host's ICE sockets (0: any free port).
    #[serde(default)]
    pub max_port: u16,
    /// The lowest video bitrate congestion control goes to, kbit/s.
    pub min_bitrate_kbps: u32,
    /// The highest video bitrate a browser may ask for, kbit/s.
    pub max_bitrate_kbps: u32,
    /// Opus bitrate, bit/s.
    pub audio_bitrate: u32,
}

/// `[gateway]`: `hati gateway` only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where nodes dial in (TCP, mutual TLS).
    pub node_listen: std::net::SocketAddr,
    /// The address clients use for this gateway; absent: the address each request arrived on.
    pub front_address: Option<IpAddr>,
    /// The front ports sessions get, `"FIRST-LAST"`, four per session.
    pub front_ports: String,
    /// How front ports reach the node.
    pub forwarding: Forwarding,
    /// The nftables table `dnat` forwarding owns.
    pub nft_table: String,
    /// `dnat`: masquerade forwarded traffic, so nodes answer through the gateway wherever it is.
    pub masquerade: bool,
    /// Nodes that may be connected at once.
    pub max_nodes: u32,
}

/// How the gateway's front ports reach a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Forwarding {
    /// A user-space relay in the gateway (works anywhere; one extra hop).
    Relay,
    /// nftables DNAT rules the gateway programs (kernel path; needs CAP_NET_ADMIN).
    Dnat,
    /// Something else forwards them (a load balancer programmed by an operator); the gateway
    /// only allocates the ports and tells the nodes.
    External,
}

/// `[node]`: `hati node` only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The gateway's node-link address, `host:port` (`HATI_GATEWAY` overrides it).
    pub gateway: Option<String>,
    /// The node's name in listings; absent: the machine's hostname.
    pub name: Option<String>,
    /// Sessions this node runs together.
    pub max_sessions: u32,
    /// The address the gateway forwards streams to; absent: the one the link comes from.
    pub address: Option<IpAddr>,
}

impl GatewayConfig {
    /// `front_ports` as a range; `None` when malformed or too small for one session.
    pub fn front_port_range(&self) -> Option<std::ops::RangeInclusive<u16>> {
        let (first, last) = self.front_ports.split_once('-')?;
        let first: u16 = first.trim().parse().ok()?;
        let last: u16 = last.trim().parse().ok()?;
        (first >= 1024 && last >= first && last - first >= 3).then_some(first..=last)
    }
}

/// `[debug]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugConfig {
    /// Drop this percentage of outgoing video packets (to exercise FEC).
    pub drop_video_packets_percent: u8,
    /// First value of the 32-bit video packet counter (tests start it just below a wrap).
    pub video_first_packet_index: u32,
    /// First audio RTP sequence number, rounded down to a multiple of 4.
    pub audio_first_sequence: u16,
    /// Which pads gamepad input creates: `uinput` (real ones) or `record` (no device, for
    /// tests where the kernel has no `/dev/uinput`).
    pub virtual_pads: crate::gamepad::VirtualPads,
}

/// One `[[apps]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The title Moonlight shows.
    pub title: String,
    /// Box art: a PNG file (relative paths are relative to the config file).
    pub icon: Option<PathBuf>,
    /// Give the session its own headless Wayland desktop (the video shows it).
    #[serde(default = "default_true")]
    pub compositor: bool,
    /// Start XWayland in the desktop, for X11 apps (when the `Xwayland` binary exists).
    #[serde(default = "default_true")]
    pub xwayland: bool,
    /// What runs inside the session; absent: nothing runs.
    pub runner: Option<crate::runner::RunnerConfig>,
    /// The kind of virtual gamepad the app sees.
    #[serde(default)]
    pub joypad_type: crate::gamepad::JoypadType,
    /// Overrides of the global video pipeline parts.
    #[serde(default)]
    pub video: AppVideoConfig,
    /// Overrides of the global audio pipeline parts.
    #[serde(default)]
    pub audio: AppAudioConfig,
    /// `[apps.lobby]`: every session of this app opens a lobby with these settings at launch
    /// (docs/play-together.md); absent: only `hati lobby open` and the dashboard open one.
    pub lobby: Option<crate::lobby::LobbySettings>,
}

/// `[apps.video]`: per-app replacements for `[gstreamer.video]` parts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppVideoConfig {
    /// Replaces `gstreamer.video.source`.
    pub source: Option<String>,
    /// Replaces `gstreamer.video.video_params`.
    pub video_params: Option<String>,
    /// Replaces the chosen H.264 encoder's pipeline.
    pub h264_encoder: Option<String>,
    /// Replaces the chosen HEVC encoder's pipeline.
    pub hevc_encoder: Option<String>,
    /// Replaces the chosen AV1 encoder's pipeline.
    pub av1_encoder: Option<String>,
}

/// `[apps.audio]`: per-app replacements for `[gstreamer.audio]` parts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppAudioConfig {
    /// Replaces `gstreamer.audio.source`.
    pub source: Option<String>,
    /// Replaces `gstreamer.audio.encoder`.
    pub encoder: Option<String>,
}

/// `[gstreamer]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GstreamerConfig {
    /// `[gstreamer.video]`.
    pub video: VideoPipelineConfig,
    /// `[gstreamer.audio]`.
    pub audio: AudioPipelineConfig,
}

/// `[gstreamer.audio]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioPipelineConfig {
    /// The default audio source of sessions without an audio sink.
    pub source: String,
    /// The audio source of sessions whose app plays into a session sink.
    pub sink_source: String,
    /// Conversion and Opus encoding.
    pub encoder: String,
}

/// `[gstreamer.video]`: the default source, conversion, and per codec an ordered list of
/// encoders.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoPipelineConfig {
    /// The default video source.
    pub source: String,
    /// Scaling and conversion to what the encoders take.
    pub video_params: String,
    /// H.264 encoders, best first.
    #[serde(default)]
    pub h264_encoders: Vec<EncoderConfig>,
    /// HEVC encoders, best first.
    #[serde(default)]
    pub hevc_encoders: Vec<EncoderConfig>,
    /// AV1 encoders, best first.
    #[serde(default)]
    pub av1_encoders: Vec<EncoderConfig>,
}

/// One encoder entry: usable when every element in `check_elements` exists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// A short name for logs ("x264", "nvcodec").
    pub name: String,
    /// GStreamer element factories that must exist for this entry to be chosen.
    pub check_elements: Vec<String>,
    /// The encoder part of the pipeline (a template).
    pub pipeline: String,
    /// The encoder part for browsers (WebRTC), when its output must differ (an H.264 profile
    /// every browser decodes); absent: `pipeline`.
    #[serde(default)]
    pub webrtc_pipeline: Option<String>,
}

impl AppConfig {
    /// The app's ID in `/applist`: derived from its title, so it stays the same when apps are
    /// reordered, and never 0 (clients reject 0).
    pub fn id(&self) -> u32 {
        (stable_hash(&self.title) & 0x7fff_ffff).max(1)
    }
}

fn default_true() -> bool {
    true
}

/// A hash of `text` that is the same on every machine and every run.
pub fn stable_hash(text: &str) -> u32 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}
