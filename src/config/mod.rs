//! `config.toml`: the typed configuration, the embedded default (`config/default.toml`), and the
//! merge of a user's file over it. A user's file holds only what it changes: tables merge key by
//! key, any other value (lists such as `[[apps]]` included) replaces the default's.
//!
//! Every error names the key and, when it comes from the user's file, its line.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

pub mod icon;
pub mod template;

/// The documented default configuration, embedded in the binary.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Why a configuration could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}:{line}:{column}: TOML syntax error: {message}")]
    Syntax {
        /// Where the text came from (a path, or "embedded default").
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// A key is unknown, or its value has the wrong type or an invalid value.
    #[error("{origin}{}: key `{key}`: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// Where the text came from.
        origin: String,
        /// The dotted key path, e.g. `network.http_port` or `apps[1].title`.
        key: String,
        /// 1-based line of the key in the user's file, when it is there.
        line: Option<usize>,
        /// What is wrong with it.
        message: String,
    },
}

/// The whole configuration after merging the user's file over the default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The name Moonlight shows for this host.
    pub hostname: String,
    /// Addresses and ports.
    pub network: NetworkConfig,
    /// PIN entry limits.
    pub pairing: PairingConfig,
    /// Stream settings the client does not choose.
    pub streaming: StreamingConfig,
    /// The admin API's network listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Browser play (the `/play` page, WebRTC).
    pub webrtc: WebRtcConfig,
    /// Switches for testing; keep them off.
    pub debug: DebugConfig,
    /// The apps offered to clients, in order.
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    /// GStreamer pipeline parts.
    pub gstreamer: GstreamerConfig,
}

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

/// Every port Hati listens on, with the derived defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// HTTP (pairing, serverinfo).
    pub http: u16,
    /// HTTPS (mutual TLS).
    pub https: u16,
    /// RTSP (TCP).
    pub rtsp: u16,
    /// Video (UDP).
    pub video: u16,
    /// Control stream (UDP, ENet).
    pub control: u16,
    /// Audio (UDP).
    pub audio: u16,
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

impl Config {
    /// The embedded default configuration.
    pub fn default_config() -> Result<Self, ConfigError> {
        Self::from_toml(DEFAULT_TOML, "embedded default", None)
    }

    /// Loads `path` merged over the default, or the default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Self::default_config();
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string(), path.parent())
    }

    /// Parses a user's TOML text merged over the default. `origin` names it in errors;
    /// relative icon paths are resolved against `base_dir`.
    pub fn from_toml(
        text: &str,
        origin: &str,
        base_dir: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let user: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| syntax_error(e, text, origin))?;
        let mut merged: toml::Table = DEFAULT_TOML
            .parse()
            .map_err(|e: toml::de::Error| syntax_error(e, DEFAULT_TOML, "embedded default"))?;
        merge_tables(&mut merged, user);

        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(merged))
            .map_err(|e| {
                let key = e.path().to_string();
                let message = e.into_inner().message().to_owned();
                invalid(text, origin, key, message)
            })?;
        config.resolve_and_validate(text, origin, base_dir)?;
        Ok(config)
    }

    /// Every pipeline template with its config key and the variables it may use.
    fn templates(&self) -> Vec<(String, &str, &'static [&'static str])> {
        use self::template::{AUDIO_VARIABLES, VIDEO_VARIABLES};
        let video = &self.gstreamer.video;
        let mut templates = vec![
            (
                "gstreamer.video.source".to_owned(),
                video.source.as_str(),
                VIDEO_VARIABLES,
            ),
            (
                "gstreamer.video.video_params".to_owned(),
                video.video_params.as_str(),
                VIDEO_VARIABLES,
            ),
            (
                "gstreamer.audio.source".to_owned(),
                self.gstreamer.audio.source.as_str(),
                AUDIO_VARIABLES,
            ),
            (
                "gstreamer.audio.sink_source".to_owned(),
                self.gstreamer.audio.sink_source.as_str(),
                AUDIO_VARIABLES,
            ),
            (
                "gstreamer.audio.encoder".to_owned(),
                self.gstreamer.audio.encoder.as_str(),
                AUDIO_VARIABLES,
            ),
        ];
        for (codec, list) in [
            ("h264", &video.h264_encoders),
            ("hevc", &video.hevc_encoders),
            ("av1", &video.av1_encoders),
        ] {
            for (i, entry) in list.iter().enumerate() {
                let key = format!("gstreamer.video.{codec}_encoders[{i}].pipeline");
                templates.push((key, entry.pipeline.as_str(), VIDEO_VARIABLES));
                if let Some(webrtc) = &entry.webrtc_pipeline {
                    let key = format!("gstreamer.video.{codec}_encoders[{i}].webrtc_pipeline");
                    templates.push((key, webrtc.as_str(), VIDEO_VARIABLES));
                }
            }
        }
        for (i, app) in self.apps.iter().enumerate() {
            let v = &app.video;
            let a = &app.audio;
            let parts = [
                ("video.source", &v.source, VIDEO_VARIABLES),
                ("video.video_params", &v.video_params, VIDEO_VARIABLES),
                ("video.h264_encoder", &v.h264_encoder, VIDEO_VARIABLES),
                ("video.hevc_encoder", &v.hevc_encoder, VIDEO_VARIABLES),
                ("video.av1_encoder", &v.av1_encoder, VIDEO_VARIABLES),
                ("audio.source", &a.source, AUDIO_VARIABLES),
                ("audio.encoder", &a.encoder, AUDIO_VARIABLES),
            ];
            for (name, value, variables) in parts {
                if let Some(template) = value {
                    templates.push((format!("apps[{i}].{name}"), template.as_str(), variables));
                }
            }
        }
        templates
    }

    /// The ports, with derived defaults filled in.
    pub fn ports(&self) -> Ports {
        let n = &self.network;
        // Validation guarantees the derived values fit in a u16.
        let derive = |explicit: Option<u16>, offset: i32| {
            explicit.unwrap_or_else(|| u16::try_from(i32::from(n.http_port) + offset).unwrap_or(0))
        };
        Ports {
            http: n.http_port,
            https: derive(n.https_port, -5),
            rtsp: derive(n.rtsp_port, 21),
            video: derive(n.video_port, 9),
            control: derive(n.control_port, 10),
            audio: derive(n.audio_port, 11),
        }
    }

    fn resolve_and_validate(
        &mut self,
        text: &str,
        origin: &str,
        base_dir: Option<&Path>,
    ) -> Result<(), ConfigError> {
        let fail = |key: String, message: String| invalid(text, origin, key, message);
        if self.hostname.trim().is_empty() {
            return Err(fail("hostname".into(), "must not be empty".into()));
        }
        let n = &self.network;
        let derived = [
            ("https_port", n.https_port, -5),
            ("rtsp_port", n.rtsp_port, 21),
            ("video_port", n.video_port, 9),
            ("control_port", n.control_port, 10),
            ("audio_port", n.audio_port, 11),
        ];
        if n.http_port == 0 {
            return Err(fail("network.http_port".into(), "must not be 0".into()));
        }
        for (name, explicit, offset) in derived {
            let value = explicit
                .map(i32::from)
                .unwrap_or(i32::from(n.http_port) + offset);
            if !(1..=65535).contains(&value) {
                let key = if explicit.is_some() {
                    format!("network.{name}")
                } else {
                    "network.http_port".into()
                };
                return Err(fail(
                    key,
                    format!("{name} would be {value}, outside 1..=65535; set it explicitly"),
                ));
            }
        }
        let ports = self.ports();
        let all = [
            ports.http,
            ports.https,
            ports.rtsp,
            ports.video,
            ports.control,
            ports.audio,
        ];
        for (i, port) in all.iter().enumerate() {
            if all.iter().skip(i + 1).any(|other| other == port) {
                return Err(fail("network".into(), format!("port {port} is used twice")));
            }
        }
        for (i, app) in self.apps.iter_mut().enumerate() {
            if app.title.trim().is_empty() {
                return Err(fail(format!("apps[{i}].title"), "must not be empty".into()));
            }
            if let Some(icon) = &app.icon {
                let resolved = match base_dir {
                    Some(dir) if icon.is_relative() => dir.join(icon),
                    _ => icon.clone(),
                };
                if !resolved.is_file() {
                    return Err(fail(
                        format!("apps[{i}].icon"),
                        format!("no such file: {}", resolved.display()),
                    ));
                }
                app.icon = Some(resolved);
            }
        }
        if let Some((i, j)) = first_duplicate(self.apps.iter().map(|a| a.title.as_str())) {
            return Err(fail(
                format!("apps[{j}].title"),
                format!("same title as apps[{i}]"),
            ));
        }
        let pacing = self.streaming.pacing_multiple;
        if !(1.0..=100.0).contains(&pacing) {
            return Err(fail(
                "streaming.pacing_multiple".into(),
                format!("must be between 1.0 and 100.0 (got {pacing})"),
            ));
        }
        let webrtc = &self.webrtc;
        if (webrtc.min_port == 0) != (webrtc.max_port == 0) || webrtc.min_port > webrtc.max_port {
            return Err(fail(
                "webrtc.min_port".into(),
                format!(
                    "min_port and max_port are both 0 (any port) or a range with min_port <= max_port (got {}..{})",
                    webrtc.min_port, webrtc.max_port
                ),
            ));
        }
        if webrtc.min_bitrate_kbps == 0 || webrtc.min_bitrate_kbps > webrtc.max_bitrate_kbps {
            return Err(fail(
                "webrtc.min_bitrate_kbps".into(),
                format!(
                    "must be between 1 and max_bitrate_kbps ({})",
                    webrtc.max_bitrate_kbps
                ),
            ));
        }
        if self.debug.drop_video_packets_percent > 100 {
            return Err(fail(
                "debug.drop_video_packets_percent".into(),
                "must be at most 100".into(),
            ));
        }
        for (key, template, variables) in self.templates() {
            if let Err(error) = template::check_template(template, variables) {
                return Err(fail(key, error.to_string()));
            }
        }
        Ok(())
    }
}

/// Deep-merges `user` into `base`: tables merge recursively, anything else replaces.
fn merge_tables(base: &mut toml::Table, user: toml::Table) {
    for (key, value) in user {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(user_table)) => {
                merge_tables(base_table, user_table);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn first_duplicate<'a>(items: impl Iterator<Item = &'a str>) -> Option<(usize, usize)> {
    let items: Vec<&str> = items.collect();
    items
        .iter()
        .enumerate()
        .find_map(|(j, b)| items.iter().take(j).position(|a| a == b).map(|i| (i, j)))
}

fn syntax_error(error: toml::de::Error, text: &str, origin: &str) -> ConfigError {
    let (line, column) = error
        .span()
        .map(|span| line_column(text, span.start))
        .unwrap_or((1, 1));
    ConfigError::Syntax {
        origin: origin.to_owned(),
        line,
        column,
        message: error.message().to_owned(),
    }
}

fn invalid(text: &str, origin: &str, key: String, message: String) -> ConfigError {
    let line = key_line(text, &key);
    ConfigError::Invalid {
        origin: origin.to_owned(),
        key,
        line,
        message,
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The line of a dotted key path (`network.http_port`, `apps[1].title`) in `text`, if the key
/// appears there. Falls back to the nearest enclosing key that does.
fn key_line(text: &str, path: &str) -> Option<usize> {
    let document = toml_edit::ImDocument::parse(text).ok()?;
    let mut item: &toml_edit::Item = document.as_item();
    let mut span = None;
    for segment in split_key_path(path) {
        let next = match segment {
            PathSegment::Key(key) => item.get(key),
            PathSegment::Index(index) => item.get(index),
        };
        let Some(next) = next else { break };
        item = next;
        span = item_span(item).or(span);
    }
    span.map(|offset| line_column(text, offset).0)
}

fn item_span(item: &toml_edit::Item) -> Option<usize> {
    match item {
        toml_edit::Item::Value(value) => value.span().map(|s| s.start),
        toml_edit::Item::Table(table) => table.span().map(|s| s.start),
        toml_edit::Item::ArrayOfTables(tables) => tables.span().map(|s| s.start),
        toml_edit::Item::None => None,
    }
}

enum PathSegment<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_key_path(path: &str) -> Vec<PathSegment<'_>> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            segments.push(PathSegment::Key(key));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(index) = index.parse() {
                segments.push(PathSegment::Index(index));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::default_config().unwrap();
        assert_eq!(config.hostname, "Hati");
        assert_eq!(
            config.ports(),
            Ports {
                http: 47989,
                https: 47984,
                rtsp: 48010,
                video: 47998,
                control: 47999,
                audio: 48000
            }
        );
        assert!(config.network.mdns);
        assert_eq!(
            config.apps.first().map(|a| a.title.as_str()),
            Some("Desktop")
        );
    }

    #[test]
    fn user_file_changes_only_its_keys() {
        let config =
            Config::from_toml("[network]\nhttp_port = 50000\n", "user.toml", None).unwrap();
        assert_eq!(config.ports().http, 50000);
        assert_eq!(config.ports().https, 49995);
        assert_eq!(config.ports().audio, 50011);
        assert_eq!(config.hostname, "Hati");
        assert!(config.network.mdns);
        assert!(!config.gstreamer.video.h264_encoders.is_empty());
    }

    #[test]
    fn explicit_port_overrides_derivation() {
        let config = Config::from_toml(
            "[network]\nhttp_port = 50000\nrtsp_port = 51000\n",
            "u",
            None,
        )
        .unwrap();
        assert_eq!(config.ports().rtsp, 51000);
    }

    #[test]
    fn apps_list_replaces_default() {
        let config = Config::from_toml(
            "[[apps]]\ntitle = \"A\"\n[[apps]]\ntitle = \"B\"\n",
            "u",
            None,
        )
        .unwrap();
        let titles: Vec<_> = config.apps.iter().map(|a| a.title.as_str()).collect();
        assert_eq!(titles, ["A", "B"]);
    }

    #[test]
    fn typo_names_key_and_line() {
        let text = "hostname = \"x\"\n\n[network]\nhtp_port = 1\n";
        let error = Config::from_toml(text, "cfg.toml", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("cfg.toml:4"), "{error}");
        assert!(error.contains("network.htp_port"), "{error}");
        assert!(error.contains("unknown field"), "{error}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let text = "[network]\nmdns = true\nhttp_port = \"fast\"\n";
        let error = Config::from_toml(text, "cfg.toml", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("cfg.toml:3"), "{error}");
        assert!(error.contains("network.http_port"), "{error}");
        assert!(error.contains("invalid type"), "{error}");
    }

    #[test]
    fn error_inside_apps_array_names_index_and_line() {
        let text = "[[apps]]\ntitle = \"A\"\n\n[[apps]]\ntitle = 7\n";
        let error = Config::from_toml(text, "cfg.toml", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("apps[1].title"), "{error}");
        assert!(error.contains("cfg.toml:5"), "{error}");
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let error = Config::from_toml("[network\n", "cfg.toml", None)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("cfg.toml:1:"), "{error}");
        assert!(error.contains("syntax"), "{error}");
    }

    #[test]
    fn bad_values_are_rejected() {
        let cases = [
            ("[network]\nbind = \"not-an-ip\"\n", "network.bind"),
            ("[network]\nhttp_port = 65530\n", "network.http_port"),
            ("[network]\nhttp_port = 0\n", "network.http_port"),
            ("hostname = \"  \"\n", "hostname"),
            (
                "[[apps]]\ntitle = \"A\"\n[[apps]]\ntitle = \"A\"\n",
                "apps[1].title",
            ),
            (
                "[[apps]]\ntitle = \"A\"\nicon = \"/nonexistent.png\"\n",
                "apps[0].icon",
            ),
            (
                "[[apps]]\ntitle = \"A\"\n[apps.video]\nsource = \"x width={widht}\"\n",
                "apps[0].video.source",
            ),
            (
                "[debug]\ndrop_video_packets_percent = 101\n",
                "debug.drop_video_packets_percent",
            ),
            ("[webrtc]\nmin_port = 49000\n", "webrtc.min_port"),
            (
                "[webrtc]\nmin_port = 49100\nmax_port = 49000\n",
                "webrtc.min_port",
            ),
            (
                "[webrtc]\nmin_bitrate_kbps = 0\n",
                "webrtc.min_bitrate_kbps",
            ),
            (
                "[webrtc]\nmin_bitrate_kbps = 50000\n",
                "webrtc.min_bitrate_kbps",
            ),
        ];
        for (text, key) in cases {
            let error = Config::from_toml(text, "u", None).unwrap_err().to_string();
            assert!(error.contains(key), "{text:?} gave {error}");
        }
    }
}
