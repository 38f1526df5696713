//! Which video codecs this machine can encode: per codec, the first `[gstreamer.video]` encoder
//! entry whose elements all exist in GStreamer. Clients are offered only those codecs
//! (`ServerCodecModeSupport`, PROTOCOL.md §1.3).

use crate::config::{EncoderConfig, VideoPipelineConfig};

/// `ServerCodecModeSupport` bit for H.264.
pub const SCM_H264: u32 = 0x0000_0001;
/// `ServerCodecModeSupport` bit for HEVC Main.
pub const SCM_HEVC: u32 = 0x0000_0100;
/// `ServerCodecModeSupport` bit for AV1 Main 8-bit.
pub const SCM_AV1_MAIN8: u32 = 0x0001_0000;

/// The encoder entry chosen for each codec, if any.
#[derive(Debug, Clone, Default)]
pub struct CodecSupport {
    /// The H.264 encoder entry.
    pub h264: Option<EncoderConfig>,
    /// The HEVC encoder entry.
    pub hevc: Option<EncoderConfig>,
    /// The AV1 encoder entry.
    pub av1: Option<EncoderConfig>,
}

impl CodecSupport {
    /// Probes GStreamer's registry (GStreamer must be initialised).
    pub fn probe(config: &VideoPipelineConfig) -> Self {
        Self::choose(config, |element| {
            gst::ElementFactory::find(element).is_some()
        })
    }

    /// Chooses with an arbitrary element-existence check.
    pub fn choose(config: &VideoPipelineConfig, exists: impl Fn(&str) -> bool) -> Self {
        let first = |list: &[EncoderConfig]| {
            list.iter()
                .find(|entry| entry.check_elements.iter().all(|element| exists(element)))
                .cloned()
        };
        Self {
            h264: first(&config.h264_encoders),
            hevc: first(&config.hevc_encoders),
            av1: first(&config.av1_encoders),
        }
    }

    /// The chosen entries' names, for logs and the admin API.
    pub fn names(&self) -> [Option<&str>; 3] {
        [&self.h264, &self.hevc, &self.av1].map(|entry| entry.as_ref().map(|e| e.name.as_str()))
    }

    /// The `ServerCodecModeSupport` bit mask of codecs named `h264`, `hevc`, `av1` (what nodes
    /// report to a gateway).
    pub fn mask_of_names<S: AsRef<str>>(names: &[S]) -> u32 {
        names.iter().fold(0, |mask, name| {
            mask | match name.as_ref() {
                "h264" => SCM_H264,
                "hevc" => SCM_HEVC,
                "av1" => SCM_AV1_MAIN8,
                _ => 0,
            }
        })
    }

    /// The `ServerCodecModeSupport` bit mask.
    pub fn server_codec_mode_support(&self) -> u32 {
        let mut mask = 0;
        if self.h264.is_some() {
            mask |= SCM_H264;
        }
        if self.hevc.is_some() {
            mask |= SCM_HEVC;
        }
        if self.av1.is_some() {
            mask |= SCM_AV1_MAIN8;
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn first_available_entry_wins_and_mask_follows() {
        let config = Config::default_config().unwrap();
        let video = &config.gstreamer.video;
        let software = CodecSupport::choose(video, |e| matches!(e, "x264enc" | "x265enc"));
        assert_eq!(software.names(), [Some("x264"), Some("x265"), None]);
        assert_eq!(software.server_codec_mode_support(), SCM_H264 | SCM_HEVC);
        assert_eq!(
            CodecSupport::mask_of_names(&["hevc", "h264", "vp9"]),
            SCM_H264 | SCM_HEVC
        );

        let nvidia = CodecSupport::choose(video, |e| e != "vah264enc");
        assert_eq!(nvidia.names()[0], Some("nvcodec"));
        assert_eq!(
            nvidia.server_codec_mode_support(),
            SCM_H264 | SCM_HEVC | SCM_AV1_MAIN8
        );

        assert_eq!(
            CodecSupport::choose(video, |_| false).server_codec_mode_support(),
            0
        );
    }
}
