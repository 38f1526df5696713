//! `config.toml`: the typed configuration, the embedded default (`config/default.toml`), and the
//! merge of a user's file over it. A user's file holds only what it changes: tables merge key by
//! key, any other value (lists such as `[[apps]]` included) replaces the default's.
//!
//! Every error names the key and, when it comes from the user's file, its line.

use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

pub mod icon;
mod load;
mod locate;
mod schema;
pub mod template;
mod validate;

pub use load::DEFAULT_TOML;
pub use schema::{
    AdminConfig, AppAudioConfig, AppConfig, AppVideoConfig, AudioPipelineConfig, DebugConfig,
    EncoderConfig, Forwarding, GatewayConfig, GstreamerConfig, NetworkConfig, NodeConfig,
    PairingConfig, StreamingConfig, VideoPipelineConfig, WebRtcConfig, stable_hash,
};

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
    /// `hati gateway`'s settings.
    pub gateway: GatewayConfig,
    /// `hati node`'s settings.
    pub node: NodeConfig,
    /// The apps offered to clients, in order.
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    /// GStreamer pipeline parts.
    pub gstreamer: GstreamerConfig,
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

impl Config {
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

    /// The app with this ID (see [`AppConfig::id`]), if one is configured.
    pub fn app(&self, id: u32) -> Option<&AppConfig> {
        self.apps.iter().find(|app| app.id() == id)
    }
}

/// Permissions check apps by ID and name them by title.
impl crate::state::permissions::CatalogueApp for AppConfig {
    fn id(&self) -> u32 {
        AppConfig::id(self)
    }

    fn title(&self) -> &str {
        &self.title
    }
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
    fn app_is_found_by_id() {
        let config = Config::from_toml(
            "[[apps]]\ntitle = \"A\"\n[[apps]]\ntitle = \"B\"\n",
            "u",
            None,
        )
        .unwrap();
        let b = &config.apps[1];
        assert_eq!(config.app(b.id()).map(|a| a.title.as_str()), Some("B"));
        let unused = (1..).find(|id| config.apps.iter().all(|a| a.id() != *id));
        assert!(config.app(unused.unwrap()).is_none());
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
    fn default_role_is_admin_and_a_typo_names_the_key_and_the_roles() {
        let config = Config::default_config().unwrap();
        assert_eq!(
            config.pairing.default_role,
            crate::state::permissions::Role::Admin
        );
        let config =
            Config::from_toml("[pairing]\ndefault_role = \"spectator\"\n", "u", None).unwrap();
        assert_eq!(
            config.pairing.default_role,
            crate::state::permissions::Role::Spectator
        );
        let error = Config::from_toml("[pairing]\ndefault_role = \"plyer\"\n", "cfg.toml", None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("cfg.toml:2") && error.contains("pairing.default_role"),
            "{error}"
        );
        assert!(
            error.contains("plyer") && error.contains("`admin`, `player`, `spectator`"),
            "{error}"
        );
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
