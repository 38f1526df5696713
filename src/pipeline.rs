//! Stream pipelines from `config.toml`, as Wolf builds them: the app's (or the default) source,
//! the conversion, the first usable encoder for the negotiated codec, then Hati's payloader and
//! an `appsink` that hands packets to the sender. Parts are templates whose `{variables}` are
//! filled from the client's RTSP ANNOUNCE.

use std::fmt::Write;

use hati_protocol::query::encode_hex;
use hati_protocol::sdp::{OpusLayout, StreamConfig, VideoCodec};
use thiserror::Error;

use crate::config::template::{TemplateError, fill};
use crate::config::{AppConfig, Config};
use crate::encoders::CodecSupport;

/// Name of the source showing the session's desktop.
pub const DESKTOP_SOURCE: &str = "hati_desktop";
/// Name of the element after the source whose buffers get the capture timestamp.
pub const CAPTURE_ELEMENT: &str = "hati_capture";
/// Name of the payloader in the video pipeline.
pub const VIDEO_PAYLOADER: &str = "hati_videopay";
/// Name of the `webrtcbin` in a browser session's pipeline.
pub const WEBRTC_BIN: &str = "hati_webrtc";
/// Name of the video RTP payloader in a browser session's pipeline.
pub const VIDEO_RTP: &str = "hati_rtp_video";
/// Name of the audio RTP payloader in a browser session's pipeline.
pub const AUDIO_RTP: &str = "hati_rtp_audio";
/// Name of the audio payloader.
pub const AUDIO_PAYLOADER: &str = "hati_audiopay";
/// Name of the appsink at the end of both pipelines.
pub const SINK: &str = "hati_sink";

/// Why a session's pipeline description could not be built.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The client asked for a codec this host offers no encoder for.
    #[error("no {0:?} encoder is available on this host")]
    NoEncoder(VideoCodec),
    /// A template is broken (normally caught at config load).
    #[error("{part}: {source}")]
    Template {
        /// Which part.
        part: &'static str,
        /// What is wrong.
        source: TemplateError,
    },
}

/// Everything the video pipeline depends on besides the config.
pub struct VideoRequest<'a> {
    /// The session's ID (names elements, fills `{session_id}`).
    pub session_id: u32,
    /// The client's negotiated stream.
    pub stream: &'a StreamConfig,
    /// AES key when the client enabled video encryption.
    pub encryption_key: Option<[u8; 16]>,
    /// The session has a desktop: it is the default source.
    pub desktop: bool,
    /// A lobby guest sharing the owner's encoder: the pipeline starts at the payloader, which
    /// takes the owner's encoded frames (`stream::share`); no source, conversion or encoder.
    pub shared: bool,
}

/// The `gst-launch` description of a session's video pipeline.
pub fn video_description(
    config: &Config,
    app: &AppConfig,
    codecs: &CodecSupport,
    request: &VideoRequest<'_>,
) -> Result<String, PipelineError> {
    let stream = request.stream;
    let (chosen, app_override) = match stream.codec {
        VideoCodec::H264 => (&codecs.h264, &app.video.h264_encoder),
        VideoCodec::Hevc => (&codecs.hevc, &app.video.hevc_encoder),
        VideoCodec::Av1 => (&codecs.av1, &app.video.av1_encoder),
    };
    let encoder = match (app_override, chosen) {
        (Some(pipeline), _) => pipeline.as_str(),
        (None, Some(entry)) => entry.pipeline.as_str(),
        (None, None) => return Err(PipelineError::NoEncoder(stream.codec)),
    };
    let fec = u32::from(config.streaming.fec_percentage);
    let values = [
        ("width", stream.width.to_string()),
        ("height", stream.height.to_string()),
        ("fps", stream.fps.to_string()),
        (
            "bitrate",
            stream.encoder_bitrate_kbps(fec, false).max(500).to_string(),
        ),
        (
            "slices_per_frame",
            stream.slices_per_frame.max(1).to_string(),
        ),
        ("session_id", request.session_id.to_string()),
    ];
    let encoded = if request.shared {
        String::new()
    } else {
        format!(
            "{} ! {} ! ",
            video_front(config, app, &values, request.desktop)?,
            video_part("video encoder", encoder, &values)?
        )
    };
    let mut description = format!(
        "{encoded}moonlightvideopay name={VIDEO_PAYLOADER} single-buffer=true payload-size={} fec-percentage={fec} min-required-fec-packets={}",
        stream.packet_size, stream.min_required_fec_packets,
    );
    if let Some(key) = request.encryption_key {
        let _ = write!(description, " encrypt=true aes-key={}", encode_hex(&key));
    }
    if config.debug.drop_video_packets_percent > 0 {
        let _ = write!(
            description,
            " drop-percentage={}",
            config.debug.drop_video_packets_percent
        );
    }
    if config.debug.video_first_packet_index > 0 {
        let _ = write!(
            description,
            " initial-packet-index={}",
            config.debug.video_first_packet_index
        );
    }
    let _ = write!(
        description,
        " ! appsink name={SINK} sync=false async=false emit-signals=false max-buffers=8"
    );
    Ok(description)
}

/// Fills one video template with `values`, naming the part in errors.
fn video_part(
    name: &'static str,
    template: &str,
    values: &[(&str, String)],
) -> Result<String, PipelineError> {
    fill(template, values).map_err(|source| PipelineError::Template { part: name, source })
}

/// The source, the capture-time stamp and the conversion: what every video pipeline starts
/// with, Moonlight's or a browser's.
fn video_front(
    config: &Config,
    app: &AppConfig,
    values: &[(&str, String)],
    desktop: bool,
) -> Result<String, PipelineError> {
    let video = &config.gstreamer.video;
    let desktop_source = format!("waylanddisplaysrc name={DESKTOP_SOURCE}");
    let default_source = if desktop {
        desktop_source.as_str()
    } else {
        video.source.as_str()
    };
    let source = video_part(
        "video source",
        app.video.source.as_deref().unwrap_or(default_source),
        values,
    )?;
    let params = video_part(
        "video_params",
        app.video
            .video_params
            .as_deref()
            .unwrap_or(&video.video_params),
        values,
    )?;
    Ok(format!(
        "{source} ! identity name={CAPTURE_ELEMENT} silent=true ! {params}"
    ))
}

/// What a browser asked for, and what its session has.
pub struct WebRtcRequest {
    /// The session's ID.
    pub session_id: u32,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Start video bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// The session has a desktop: it is the default source.
    pub desktop: bool,
    /// The PulseAudio sink the app plays into and its server, if any.
    pub sink: Option<(String, String)>,
}

/// The `gst-launch` description of a browser session's pipeline: video (H.264 from the first
/// usable encoder entry's `webrtc_pipeline`) and Opus audio into one `webrtcbin` named
/// [`WEBRTC_BIN`].
pub fn webrtc_description(
    config: &Config,
    app: &AppConfig,
    codecs: &CodecSupport,
    request: &WebRtcRequest,
) -> Result<String, PipelineError> {
    let encoder = match (&app.video.h264_encoder, &codecs.h264) {
        (Some(pipeline), _) => pipeline.as_str(),
        (None, Some(entry)) => entry
            .webrtc_pipeline
            .as_deref()
            .unwrap_or(entry.pipeline.as_str()),
        (None, None) => return Err(PipelineError::NoEncoder(VideoCodec::H264)),
    };
    let values = [
        ("width", request.width.to_string()),
        ("height", request.height.to_string()),
        ("fps", request.fps.to_string()),
        ("bitrate", request.bitrate_kbps.to_string()),
        ("slices_per_frame", "1".to_owned()),
        ("session_id", request.session_id.to_string()),
    ];
    let front = video_front(config, app, &values, request.desktop)?;
    let encoder = video_part("video encoder", encoder, &values)?;
    let loss = match config.debug.drop_video_packets_percent {
        0 => String::new(),
        percent => format!(
            " ! identity drop-probability={}",
            f64::from(percent.min(100)) / 100.0
        ),
    };
    let audio_request = AudioRequest {
        session_id: request.session_id,
        layout: &OpusLayout {
            bitrate: config.webrtc.audio_bitrate,
            ..OpusLayout::STEREO
        },
        packet_duration_ms: 20,
        sink: request.sink.clone(),
        encryption: None,
        shared: false,
    };
    let (audio_source, audio_encoder) = audio_parts(config, app, &audio_request)?;
    // Browsers reassemble RTP themselves: 1200-byte packets pass every tunnel and TURN relay.
    Ok(format!(
        "webrtcbin name={WEBRTC_BIN} bundle-policy=max-bundle latency=0 \
         {front} ! {encoder} ! rtph264pay name={VIDEO_RTP} config-interval=-1 \
         aggregate-mode=zero-latency mtu=1200{loss} ! \
         application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000 ! {WEBRTC_BIN}. \
         {audio_source} ! {audio_encoder} ! rtpopuspay name={AUDIO_RTP} mtu=1200 ! \
         application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! {WEBRTC_BIN}."
    ))
}

/// Everything the audio pipeline depends on besides the config.
pub struct AudioRequest<'a> {
    /// The session's ID.
    pub session_id: u32,
    /// The Opus layout negotiated.
    pub layout: &'a OpusLayout,
    /// Opus frame duration in ms.
    pub packet_duration_ms: u32,
    /// The PulseAudio sink the app plays into and its server, if any.
    pub sink: Option<(String, String)>,
    /// AES key and `rikeyid` when audio is encrypted.
    pub encryption: Option<([u8; 16], i32)>,
    /// A lobby guest sharing the owner's Opus encoder: the pipeline starts at the payloader,
    /// which takes the owner's packets (`stream::share`).
    pub shared: bool,
}

/// The `gst-launch` description of a session's audio pipeline.
pub fn audio_description(
    config: &Config,
    app: &AppConfig,
    request: &AudioRequest<'_>,
) -> Result<String, PipelineError> {
    let encoded = if request.shared {
        String::new()
    } else {
        let (source, encoder) = audio_parts(config, app, request)?;
        format!("{source} ! {encoder} ! ")
    };
    let mut description = format!(
        "{encoded}moonlightaudiopay name={AUDIO_PAYLOADER} packet-duration={}",
        request.packet_duration_ms
    );
    if let Some((key, rikeyid)) = request.encryption {
        let _ = write!(
            description,
            " encrypt=true aes-key={} rikeyid={rikeyid}",
            encode_hex(&key)
        );
    }
    if config.debug.audio_first_sequence > 0 {
        let _ = write!(
            description,
            " initial-sequence={}",
            config.debug.audio_first_sequence
        );
    }
    let _ = write!(
        description,
        " ! appsink name={SINK} sync=false async=false emit-signals=false max-buffers=64"
    );
    Ok(description)
}

/// What a running app without a sink plays.
const SILENCE: &str = "audiotestsrc is-live=true wave=silence";

/// The audio source (the session's sink monitor, or the configured source) and encoder.
fn audio_parts(
    config: &Config,
    app: &AppConfig,
    request: &AudioRequest<'_>,
) -> Result<(String, String), PipelineError> {
    let audio = &config.gstreamer.audio;
    let values = [
        ("channels", request.layout.channels.to_string()),
        ("bitrate", request.layout.bitrate.to_string()),
        ("packet_duration", request.packet_duration_ms.to_string()),
        (
            "sink_name",
            request
                .sink
                .as_ref()
                .map(|(name, _)| name.clone())
                .unwrap_or_default(),
        ),
        (
            "pulse_server",
            request
                .sink
                .as_ref()
                .map(|(_, server)| server.clone())
                .unwrap_or_default(),
        ),
        ("session_id", request.session_id.to_string()),
    ];
    let part = |name: &'static str, template: &str| {
        fill(template, &values).map_err(|source| PipelineError::Template { part: name, source })
    };
    // An app that runs but got no sink (no PulseAudio server could be had) streams silence,
    // not the test tone an app without a runner plays: a tone would pass for the app's sound.
    let default_source = if request.sink.is_some() {
        audio.sink_source.as_str()
    } else if app.runner.is_some() {
        SILENCE
    } else {
        audio.source.as_str()
    };
    let source = part(
        "audio source",
        app.audio.source.as_deref().unwrap_or(default_source),
    )?;
    let encoder = part(
        "audio encoder",
        app.audio.encoder.as_deref().unwrap_or(&audio.encoder),
    )?;
    Ok((source, encoder))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pipelines_describe_the_whole_chain() {
        let config = Config::default_config().unwrap();
        let app = config
            .apps
            .iter()
            .find(|a| a.title == "Test pattern")
            .unwrap();
        let codecs = CodecSupport::choose(&config.gstreamer.video, |e| e == "x264enc");
        let body = StreamConfig::parse(ANNOUNCE).unwrap();
        let request = VideoRequest {
            session_id: 7,
            stream: &body,
            encryption_key: None,
            desktop: false,
            shared: false,
        };
        let video = video_description(&config, app, &codecs, &request).unwrap();
        assert!(video.contains("x264enc"), "{video}");
        assert!(
            video.contains("width=1280,height=720,framerate=60/1"),
            "{video}"
        );
        assert!(
            video.contains(
                "moonlightvideopay name=hati_videopay single-buffer=true payload-size=1392 fec-percentage=20"
            )
        );
        assert!(video.ends_with("max-buffers=8"));

        let hevc = StreamConfig {
            codec: VideoCodec::Hevc,
            ..body
        };
        let request = VideoRequest {
            session_id: 7,
            stream: &hevc,
            encryption_key: None,
            desktop: false,
            shared: false,
        };
        assert!(matches!(
            video_description(&config, app, &codecs, &request),
            Err(PipelineError::NoEncoder(VideoCodec::Hevc))
        ));

        let audio = AudioRequest {
            session_id: 7,
            layout: &OpusLayout::STEREO,
            packet_duration_ms: 5,
            sink: None,
            encryption: Some(([0x11; 16], -5)),
            shared: false,
        };
        let audio = audio_description(&config, app, &audio).unwrap();
        assert!(
            audio.contains("opusenc bitrate=96000 bitrate-type=cbr frame-size=5"),
            "{audio}"
        );
        assert!(
            audio.contains("encrypt=true aes-key=11111111111111111111111111111111 rikeyid=-5"),
            "{audio}"
        );
    }

    #[test]
    fn a_running_app_without_a_sink_streams_silence_not_the_test_tone() {
        let config = Config::default_config().unwrap();
        let desktop = config.apps.iter().find(|a| a.runner.is_some()).unwrap();
        let pattern = config
            .apps
            .iter()
            .find(|a| a.title == "Test pattern")
            .unwrap();
        let request = |sink: Option<(String, String)>| AudioRequest {
            session_id: 7,
            layout: &OpusLayout::STEREO,
            packet_duration_ms: 5,
            sink,
            encryption: None,
            shared: false,
        };
        let without_sink = audio_description(&config, desktop, &request(None)).unwrap();
        assert!(without_sink.starts_with(SILENCE), "{without_sink}");
        let with_sink = request(Some(("hati-7".into(), "unix:/run/p".into())));
        let with_sink = audio_description(&config, desktop, &with_sink).unwrap();
        assert!(
            with_sink.starts_with("pulsesrc server=unix:/run/p device=hati-7.monitor"),
            "{with_sink}"
        );
        let tone = audio_description(&config, pattern, &request(None)).unwrap();
        assert!(
            tone.starts_with("audiotestsrc is-live=true wave=sine"),
            "{tone}"
        );
    }

    const ANNOUNCE: &[u8] = b"v=0\r\no=android 0 14 IN IPv4 127.0.0.1\r\ns=NVIDIA Streaming Client\r\n\
a=x-nv-video[0].clientViewportWd:1280 \r\na=x-nv-video[0].clientViewportHt:720 \r\n\
a=x-nv-video[0].maxFPS:60 \r\na=x-nv-video[0].packetSize:1392 \r\n\
a=x-nv-video[0].videoEncoderSlicesPerFrame:1 \r\na=x-nv-video[0].maxNumReferenceFrames:1 \r\n\
a=x-nv-video[0].initialBitrateKbps:8000 \r\na=x-nv-vqos[0].bw.maximumBitrateKbps:8000 \r\n\
a=x-ml-video.configuredBitrateKbps:10000 \r\na=x-nv-vqos[0].fec.minRequiredFecPackets:2 \r\n\
a=x-nv-vqos[0].bitStreamFormat:0 \r\na=x-nv-audio.surround.numChannels:2 \r\n\
a=x-nv-audio.surround.channelMask:3 \r\na=x-nv-aqos.packetDuration:5 \r\nt=0 0\r\nm=video 47998  \r\n";
}
