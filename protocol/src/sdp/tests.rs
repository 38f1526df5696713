//! Tests for ANNOUNCE parsing and DESCRIBE building (docs/PROTOCOL.md §2.4, §2.6, §5.5): known
//! answers, round trips, one test per error variant, and a mutation robustness run of the module's
//! fuzzing entry point.

use super::*;

/// The ANNOUNCE body moonlight-common-c (`SdpGenerator.c`) builds for a `7.1.431.-1` host that
/// advertised `encryptionSupported:5`: 1280x720@60, H.264, 10 Mbps local (adjusted 8000),
/// packet size 1392, stereo normal quality, 5 ms audio, client opted in to audio encryption
/// (NV flags 0x87 | 0x20 = 167, encryptionEnabled CONTROL_V2 | AUDIO = 5), decoder with RFI
/// support (maxNumReferenceFrames 0), 60 Hz display, BT.709 limited (encoderCscMode 2).
pub(crate) const ANNOUNCE_720P60_H264: &str = "v=0\r\n\
o=android 0 14 IN IPv4 192.168.1.2\r\n\
s=NVIDIA Streaming Client\r\n\
a=x-ml-general.featureFlags:3 \r\n\
a=x-ss-general.encryptionEnabled:5 \r\n\
a=x-ss-video[0].chromaSamplingType:0 \r\n\
a=x-nv-video[0].clientViewportWd:1280 \r\n\
a=x-nv-video[0].clientViewportHt:720 \r\n\
a=x-nv-video[0].maxFPS:60 \r\n\
a=x-nv-video[0].packetSize:1392 \r\n\
a=x-nv-video[0].rateControlMode:4 \r\n\
a=x-nv-video[0].timeoutLengthMs:7000 \r\n\
a=x-nv-video[0].framesWithInvalidRefThreshold:0 \r\n\
a=x-nv-video[0].initialBitrateKbps:8000 \r\n\
a=x-nv-video[0].initialPeakBitrateKbps:8000 \r\n\
a=x-nv-vqos[0].bw.minimumBitrateKbps:8000 \r\n\
a=x-nv-vqos[0].bw.maximumBitrateKbps:8000 \r\n\
a=x-ml-video.configuredBitrateKbps:10000 \r\n\
a=x-nv-vqos[0].fec.enable:1 \r\n\
a=x-nv-vqos[0].videoQualityScoreUpdateTime:5000 \r\n\
a=x-nv-vqos[0].qosTrafficType:5 \r\n\
a=x-nv-aqos.qosTrafficType:4 \r\n\
a=x-nv-general.featureFlags:167 \r\n\
a=x-nv-general.useReliableUdp:13 \r\n\
a=x-nv-vqos[0].fec.minRequiredFecPackets:2 \r\n\
a=x-nv-vqos[0].bllFec.enable:0 \r\n\
a=x-nv-vqos[0].drc.enable:0 \r\n\
a=x-nv-general.enableRecoveryMode:0 \r\n\
a=x-nv-video[0].videoEncoderSlicesPerFrame:1 \r\n\
a=x-nv-clientSupportHevc:0 \r\n\
a=x-nv-vqos[0].bitStreamFormat:0 \r\n\
a=x-nv-video[0].dynamicRangeMode:0 \r\n\
a=x-nv-video[0].maxNumReferenceFrames:0 \r\n\
a=x-nv-video[0].clientRefreshRateX100:6000 \r\n\
a=x-nv-audio.surround.numChannels:2 \r\n\
a=x-nv-audio.surround.channelMask:3 \r\n\
a=x-nv-audio.surround.enable:0 \r\n\
a=x-nv-audio.surround.AudioQuality:0 \r\n\
a=x-nv-aqos.packetDuration:5 \r\n\
a=x-nv-video[0].encoderCscMode:2 \r\n\
t=0 0\r\n\
m=video 47998  \r\n";

fn expected_720p() -> StreamConfig {
    StreamConfig {
        width: 1280,
        height: 720,
        fps: 60,
        client_refresh_rate_x100: 6000,
        packet_size: 1392,
        bitrate: Bitrates {
            initial_kbps: Some(8000),
            initial_peak_kbps: Some(8000),
            minimum_kbps: Some(8000),
            maximum_kbps: 8000,
            configured_kbps: 10000,
        },
        min_required_fec_packets: 2,
        slices_per_frame: 1,
        codec: VideoCodec::H264,
        dynamic_range: DynamicRange::Sdr,
        chroma_sampling: ChromaSampling::Yuv420,
        max_reference_frames: 0,
        color_space: ColorSpace::Rec709,
        color_range: ColorRange::Limited,
        intra_refresh: false,
        audio: AudioParams {
            channels: 2,
            channel_mask: 3,
            high_quality: false,
            packet_duration_ms: 5,
        },
        nv_feature_flags: 167,
        ml_feature_flags: 3,
        encryption_enabled: EncryptionFlags(5),
        control_protocol: 13,
        video_qos_type: 5,
        audio_qos_type: 4,
    }
}

/// Replaces (or with `None`, removes) one attribute line of the known-answer body.
fn with_attr(name: &str, value: Option<&str>) -> String {
    ANNOUNCE_720P60_H264
        .split_inclusive("\r\n")
        .filter_map(|line| {
            if line.starts_with(&format!("a={name}:")) {
                value.map(|v| format!("a={name}:{v} \r\n"))
            } else {
                Some(line.to_owned())
            }
        })
        .collect()
}

#[test]
fn known_answer_announce() {
    let config = StreamConfig::parse(ANNOUNCE_720P60_H264.as_bytes()).unwrap();
    assert_eq!(config, expected_720p());
    assert!(config.audio_encrypted());
    assert!(!config.video_encrypted());
    assert!(config.control_v2());
    assert!(config.session_id_v1());
    assert!(config.fec_status_reports());
}

#[test]
fn announce_encode_is_byte_exact() {
    assert_eq!(expected_720p().to_sdp("192.168.1.2"), ANNOUNCE_720P60_H264);
}

#[test]
fn announce_round_trips_for_other_settings() {
    let mut c = expected_720p();
    c.width = 3840;
    c.height = 2160;
    c.fps = 120;
    c.codec = VideoCodec::Av1;
    c.dynamic_range = DynamicRange::Hdr;
    c.chroma_sampling = ChromaSampling::Yuv444;
    c.color_space = ColorSpace::Rec2020;
    c.color_range = ColorRange::Full;
    c.intra_refresh = true;
    c.bitrate.initial_kbps = None;
    c.audio = AudioParams {
        channels: 8,
        channel_mask: 0x63F,
        high_quality: true,
        packet_duration_ms: 10,
    };
    c.encryption_enabled = EncryptionFlags(7);
    let sdp = c.to_sdp("::1");
    assert!(!sdp.contains("clientSupportHevc"), "AV1 omits it");
    assert_eq!(StreamConfig::parse(sdp.as_bytes()), Ok(c));
    c.codec = VideoCodec::Hevc;
    assert_eq!(StreamConfig::parse(c.to_sdp("h").as_bytes()), Ok(c));
}

#[test]
fn video_encryption_and_csc() {
    let body = with_attr("x-ss-general.encryptionEnabled", Some("3"));
    let c = StreamConfig::parse(body.as_bytes()).unwrap();
    assert!(c.video_encrypted());
    // Audio still encrypted through the NV feature flag alone.
    assert!(c.audio_encrypted());
    let body = with_attr("x-nv-general.featureFlags", Some("135"));
    let body = body.replace("encryptionEnabled:5", "encryptionEnabled:1");
    assert!(
        !StreamConfig::parse(body.as_bytes())
            .unwrap()
            .audio_encrypted()
    );

    let body = with_attr("x-nv-video[0].encoderCscMode", Some("5"));
    let c = StreamConfig::parse(body.as_bytes()).unwrap();
    assert_eq!(
        (c.color_space, c.color_range),
        (ColorSpace::Rec2020, ColorRange::Full)
    );
}

#[test]
fn omitted_attributes_take_sunshine_defaults() {
    let mut body = ANNOUNCE_720P60_H264.to_owned();
    for name in [
        "x-nv-video[0].encoderCscMode",
        "x-nv-vqos[0].bitStreamFormat",
        "x-nv-video[0].dynamicRangeMode",
        "x-nv-aqos.packetDuration",
        "x-nv-general.useReliableUdp",
        "x-nv-vqos[0].fec.minRequiredFecPackets",
        "x-nv-general.featureFlags",
        "x-ml-general.featureFlags",
        "x-nv-vqos[0].qosTrafficType",
        "x-nv-aqos.qosTrafficType",
        "x-ml-video.configuredBitrateKbps",
        "x-ss-general.encryptionEnabled",
        "x-ss-video[0].chromaSamplingType",
        "x-nv-video[0].clientRefreshRateX100",
        "x-nv-video[0].initialBitrateKbps",
    ] {
        let prefix = format!("a={name}:");
        body = body
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with(&prefix))
            .collect();
    }
    let c = StreamConfig::parse(body.as_bytes()).unwrap();
    assert_eq!(c.color_space, ColorSpace::Rec601);
    assert_eq!(c.color_range, ColorRange::Limited);
    assert_eq!(c.codec, VideoCodec::H264);
    assert_eq!(c.dynamic_range, DynamicRange::Sdr);
    assert_eq!(c.audio.packet_duration_ms, 5);
    assert_eq!(c.control_protocol, 1);
    assert_eq!(c.min_required_fec_packets, 0);
    assert_eq!(c.nv_feature_flags, 135);
    assert_eq!(c.ml_feature_flags, 0);
    assert_eq!((c.video_qos_type, c.audio_qos_type), (5, 4));
    assert_eq!(c.bitrate.configured_kbps, 0);
    assert_eq!(c.bitrate.initial_kbps, None);
    assert_eq!(c.encryption_enabled, EncryptionFlags::NONE);
    assert_eq!(c.chroma_sampling, ChromaSampling::Yuv420);
    assert_eq!(c.client_refresh_rate_x100, 0);
    assert!(!c.intra_refresh);
    assert!(!c.audio_encrypted(), "135 has no 0x20 bit");
}

#[test]
fn tolerates_bare_lf_and_missing_trailing_space() {
    let body = ANNOUNCE_720P60_H264.replace(" \r\n", "\n");
    assert_eq!(StreamConfig::parse(body.as_bytes()), Ok(expected_720p()));
}

#[test]
fn unknown_and_valueless_attributes_are_ignored() {
    let body = ANNOUNCE_720P60_H264.replace("t=0 0", "a=recvonly\r\na=x-future.thing:zz \r\nt=0 0");
    assert_eq!(StreamConfig::parse(body.as_bytes()), Ok(expected_720p()));
}

#[test]
fn opus_layout_selection() {
    let c = expected_720p();
    assert_eq!(c.opus_layout(None), &OpusLayout::STEREO);
    assert_eq!(c.opus_layout(Some(true)), &OpusLayout::STEREO_HQ);
    assert_eq!(c.opus_layout(Some(false)), &OpusLayout::STEREO);
    let mut s = c;
    s.audio.channels = 6;
    s.audio.high_quality = true;
    // The Host header only matters for stereo.
    assert_eq!(s.opus_layout(Some(false)), &OpusLayout::SURROUND_51_HQ);
    s.audio.channels = 8;
    s.audio.high_quality = false;
    assert_eq!(s.opus_layout(Some(true)), &OpusLayout::SURROUND_71);
    assert_eq!(OpusLayout::select(4, false), None);
}

#[test]
fn opus_table_matches_sunshine() {
    let rows: Vec<_> = OpusLayout::ALL
        .iter()
        .map(|l| (l.channels, l.streams, l.coupled_streams, l.bitrate / 1000))
        .collect();
    assert_eq!(
        rows,
        [
            (2, 1, 1, 96),
            (2, 1, 1, 512),
            (6, 4, 2, 256),
            (6, 6, 0, 1536),
            (8, 5, 3, 450),
            (8, 8, 0, 2048)
        ]
    );
    for l in &OpusLayout::ALL {
        assert_eq!(l.mapping.len(), usize::from(l.channels));
        assert_eq!(l.streams + l.coupled_streams, l.channels);
    }
}

/// The client's rewrite of a normal-quality mapping (§5.5): LFE moves from last to index 3.
fn client_rewrite(orig: &[u8]) -> Vec<u8> {
    let c = orig.len();
    let mut new = orig[..3].to_vec();
    new.push(orig[c - 1]);
    new.extend_from_slice(&orig[3..c - 1]);
    new
}

#[test]
fn surround_params_lines() {
    let lines: Vec<_> = OpusLayout::ALL
        .iter()
        .map(OpusLayout::surround_params_line)
        .collect();
    assert_eq!(
        lines,
        [
            "a=fmtp:97 surround-params=21101",
            "a=fmtp:97 surround-params=21101",
            "a=fmtp:97 surround-params=642012453",
            "a=fmtp:97 surround-params=660012345",
            "a=fmtp:97 surround-params=85301245673",
            "a=fmtp:97 surround-params=88001234567",
        ]
    );
    // After the client's rewrite, the normal-quality mappings become the true (identity) ones.
    for l in [OpusLayout::SURROUND_51, OpusLayout::SURROUND_71] {
        assert_eq!(client_rewrite(&l.advertised_mapping()), l.mapping);
    }
    // A malformed hand-built layout does not panic.
    let odd = OpusLayout {
        channels: 3,
        streams: 3,
        coupled_streams: 0,
        mapping: &[0, 1, 2],
        bitrate: 1,
        high_quality: false,
    };
    assert_eq!(odd.advertised_mapping(), [0, 1, 2]);
}

/// What the client extracts from a DESCRIBE body with `strstr` (§2.4).
#[derive(Debug, PartialEq)]
struct ClientView {
    hevc: bool,
    av1: bool,
    rfi: bool,
    feature_flags: Option<u32>,
    supported: Option<u32>,
    requested: Option<u32>,
    surround6: Vec<String>,
    surround8: Vec<String>,
}

fn client_view(body: &str) -> ClientView {
    let num = |key: &str| {
        body.find(key).map(|i| {
            body[i + key.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap()
        })
    };
    let surround = |c: char| {
        let prefix = format!("a=fmtp:97 surround-params={c}");
        body.match_indices(&prefix)
            .map(|(i, _)| {
                body[i + prefix.len() - 1..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect()
            })
            .collect()
    };
    ClientView {
        hevc: body.contains("sprop-parameter-sets=AAAAAU"),
        av1: body.contains("AV1/90000"),
        rfi: body.contains("x-nv-video[0].refPicInvalidation"),
        feature_flags: num("x-ss-general.featureFlags:"),
        supported: num("x-ss-general.encryptionSupported:"),
        requested: num("x-ss-general.encryptionRequested:"),
        surround6: surround('6'),
        surround8: surround('8'),
    }
}

#[test]
fn describe_minimal_matches_protocol_sample() {
    let body = DescribeBody::default().encode();
    assert_eq!(
        body,
        "a=x-ss-general.featureFlags:0\n\
         a=x-ss-general.encryptionSupported:5\n\
         a=x-ss-general.encryptionRequested:1\n\
         a=fmtp:97 surround-params=21101\n\
         a=fmtp:97 surround-params=21101\n\
         a=fmtp:97 surround-params=642012453\n\
         a=fmtp:97 surround-params=660012345\n\
         a=fmtp:97 surround-params=85301245673\n\
         a=fmtp:97 surround-params=88001234567\n"
    );
}

#[test]
fn describe_full_as_the_client_reads_it() {
    let d = DescribeBody {
        feature_flags: HostFeatureFlags::PEN_TOUCH_EVENTS
            | HostFeatureFlags::CONTROLLER_TOUCH_EVENTS,
        encryption_supported: EncryptionFlags::CONTROL_V2
            | EncryptionFlags::VIDEO
            | EncryptionFlags::AUDIO,
        encryption_requested: EncryptionFlags::CONTROL_V2,
        ref_pic_invalidation: true,
        hevc: true,
        av1: true,
    };
    let body = d.encode();
    assert!(body.contains(
        "a=x-nv-video[0].refPicInvalidation:1\nsprop-parameter-sets=AAAAAU\na=rtpmap:98 AV1/90000\n"
    ));
    assert_eq!(
        client_view(&body),
        ClientView {
            hevc: true,
            av1: true,
            rfi: true,
            feature_flags: Some(3),
            supported: Some(7),
            requested: Some(1),
            surround6: vec!["642012453".into(), "660012345".into()],
            surround8: vec!["85301245673".into(), "88001234567".into()],
        }
    );
    let plain = client_view(&DescribeBody::default().encode());
    assert!(!plain.hevc && !plain.av1 && !plain.rfi);
}

#[test]
fn encoder_bitrate_follows_sunshine() {
    let c = expected_720p();
    // 10000 * 80% = 8000; audio 2*96 = 192 (< 1600) -> 7808; 500 (< 780) -> 7308.
    assert_eq!(c.encoder_bitrate_kbps(20, false), 7308);
    // FEC above 80% is not subtracted; HQ stereo 512 (< 2000) -> 9488; 500 -> 8988.
    assert_eq!(c.encoder_bitrate_kbps(90, true), 8988);
    let mut tiny = c;
    tiny.bitrate.configured_kbps = 500;
    // 500 -> 400; audio capped at 80 -> 320; overhead capped at 32 -> 288.
    assert_eq!(tiny.encoder_bitrate_kbps(20, false), 288);
    tiny.bitrate.configured_kbps = 0;
    assert_eq!(tiny.encoder_bitrate_kbps(20, false), 8000);
}

#[test]
fn error_too_long() {
    let body = vec![b'\n'; MAX_SDP_LEN + 1];
    assert_eq!(StreamConfig::parse(&body), Err(SdpError::TooLong));
}

#[test]
fn error_too_many_lines() {
    let body = "x=\n".repeat(MAX_SDP_LINES + 1);
    assert_eq!(
        StreamConfig::parse(body.as_bytes()),
        Err(SdpError::TooManyLines)
    );
}

#[test]
fn error_not_utf8() {
    let mut body = ANNOUNCE_720P60_H264.as_bytes().to_vec();
    body[4] = 0xFF;
    assert_eq!(StreamConfig::parse(&body), Err(SdpError::NotUtf8));
}

#[test]
fn error_missing_attribute() {
    for name in [
        "x-nv-video[0].clientViewportWd",
        "x-nv-video[0].clientViewportHt",
        "x-nv-video[0].maxFPS",
        "x-nv-video[0].packetSize",
        "x-nv-vqos[0].bw.maximumBitrateKbps",
        "x-nv-video[0].videoEncoderSlicesPerFrame",
        "x-nv-video[0].maxNumReferenceFrames",
        "x-nv-audio.surround.numChannels",
        "x-nv-audio.surround.channelMask",
    ] {
        let body = with_attr(name, None);
        assert_eq!(
            StreamConfig::parse(body.as_bytes()),
            Err(SdpError::MissingAttribute { attribute: name }),
            "{name}"
        );
    }
    // AudioQuality defaults to normal quality when absent.
    let body = with_attr("x-nv-audio.surround.AudioQuality", None);
    assert!(
        !StreamConfig::parse(body.as_bytes())
            .unwrap()
            .audio
            .high_quality
    );
}

#[test]
fn error_duplicate_attribute() {
    let body = ANNOUNCE_720P60_H264.replace("t=0 0", "a=x-nv-video[0].maxFPS:30 \r\nt=0 0");
    assert_eq!(
        StreamConfig::parse(body.as_bytes()),
        Err(SdpError::DuplicateAttribute {
            attribute: "x-nv-video[0].maxFPS"
        })
    );
}

#[test]
fn error_invalid_number() {
    for bad in ["", "-1", "0x10", "1 2", "4294967296", "12a"] {
        let body = with_attr("x-nv-video[0].packetSize", Some(bad));
        assert_eq!(
            StreamConfig::parse(body.as_bytes()),
            Err(SdpError::InvalidNumber {
                attribute: "x-nv-video[0].packetSize"
            }),
            "{bad:?}"
        );
    }
}

#[test]
fn error_out_of_range() {
    for (name, value) in [
        ("x-nv-video[0].clientViewportWd", 0),
        ("x-nv-video[0].clientViewportHt", 20_000),
        ("x-nv-video[0].maxFPS", 0),
        ("x-nv-video[0].packetSize", 16),
        ("x-nv-vqos[0].bw.maximumBitrateKbps", 0),
        ("x-nv-video[0].videoEncoderSlicesPerFrame", 0),
        ("x-nv-video[0].maxNumReferenceFrames", 17),
        ("x-nv-vqos[0].bitStreamFormat", 3),
        ("x-nv-video[0].dynamicRangeMode", 2),
        ("x-nv-video[0].encoderCscMode", 6),
        ("x-nv-audio.surround.numChannels", 4),
        ("x-nv-audio.surround.AudioQuality", 2),
        ("x-nv-aqos.packetDuration", 7),
        ("x-nv-vqos[0].fec.minRequiredFecPackets", 256),
    ] {
        let body = with_attr(name, Some(&value.to_string()));
        assert_eq!(
            StreamConfig::parse(body.as_bytes()),
            Err(SdpError::OutOfRange {
                attribute: name,
                value
            }),
            "{name}"
        );
    }
}

/// The known-answer ANNOUNCE body and variants as seeds.
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    let mut other = expected_720p();
    other.codec = VideoCodec::Hevc;
    other.audio.channels = 6;
    other.audio.channel_mask = 0x3F;
    vec![
        ANNOUNCE_720P60_H264.as_bytes().to_vec(),
        ANNOUNCE_720P60_H264.replace(" \r\n", "\n").into_bytes(),
        other.to_sdp("fe80::1").into_bytes(),
    ]
}

#[test]
fn robustness_no_panic() {
    crate::input::tests::mutate_and_feed(&seeds(), 20_000, fuzzing::announce);
}
