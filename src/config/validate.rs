//! Checks of a merged configuration: ports, apps and their icons, limits and pipeline
//! templates.

use std::path::Path;

use super::locate::invalid;
use super::template;
use super::{Config, ConfigError};

impl Config {
    /// Every pipeline template with its config key and the variables it may use.
    fn templates(&self) -> Vec<(String, &str, &'static [&'static str])> {
        use super::template::{AUDIO_VARIABLES, VIDEO_VARIABLES};
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

    pub(super) fn resolve_and_validate(
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
        if self.gateway.front_port_range().is_none() {
            return Err(fail(
                "gateway.front_ports".into(),
                format!(
                    "`{}` is not FIRST-LAST with 1024 <= FIRST and room for one session's four ports",
                    self.gateway.front_ports
                ),
            ));
        }
        let table = &self.gateway.nft_table;
        if table.is_empty()
            || table.len() > 32
            || !table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(fail(
                "gateway.nft_table".into(),
                "letters, digits and `_`, at most 32".into(),
            ));
        }
        if self.node.max_sessions == 0 {
            return Err(fail(
                "node.max_sessions".into(),
                "must be at least 1".into(),
            ));
        }
        for (i, app) in self.apps.iter_mut().enumerate() {
            if app.title.trim().is_empty() {
                return Err(fail(format!("apps[{i}].title"), "must not be empty".into()));
            }
            if let Some(lobby) = &app.lobby
                && let Err(error) = lobby.validate()
            {
                let key = match error {
                    crate::lobby::LobbyError::BadPin => "pin",
                    _ => "max_guests",
                };
                return Err(fail(format!("apps[{i}].lobby.{key}"), error.to_string()));
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
        let nice = self.streaming.input_thread_nice;
        if !(-20..=0).contains(&nice) {
            return Err(fail(
                "streaming.input_thread_nice".into(),
                format!(
                    "must be between -20 (highest priority) and 0 (as the encoders) (got {nice})"
                ),
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

fn first_duplicate<'a>(items: impl Iterator<Item = &'a str>) -> Option<(usize, usize)> {
    let items: Vec<&str> = items.collect();
    items
        .iter()
        .enumerate()
        .find_map(|(j, b)| items.iter().take(j).position(|a| a == b).map(|i| (i, j)))
}
