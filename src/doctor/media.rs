//! Media: which `[gstreamer.video]` encoder entry serves each codec (through
//! [`CodecSupport::probe`], as the host chooses), which hardware encoder elements GStreamer
//! has, and whether apps can have sound (PulseAudio).

use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::devices::{EncoderFamily, RenderNode};
use super::{Check, which};
use crate::config::{Config, EncoderConfig};
use crate::encoders::CodecSupport;

/// Hardware encoder elements worth naming when GStreamer has them.
const HARDWARE_ELEMENTS: &[&str] = &[
    "nvh264enc",
    "nvh265enc",
    "nvav1enc",
    "nvcudah264enc",
    "nvcudah265enc",
    "vah264enc",
    "vah265enc",
    "vaav1enc",
    "vah264lpenc",
    "vah265lpenc",
    "vaapih264enc",
    "vaapih265enc",
    "qsvh264enc",
    "qsvh265enc",
    "qsvav1enc",
    "msdkh264enc",
    "msdkh265enc",
    "msdkav1enc",
    "v4l2h264enc",
    "v4l2h265enc",
];

/// Prefixes of hardware encoder element names (all of them end in `enc`).
const HARDWARE_PREFIXES: &[&str] = &["nv", "va", "qsv", "msdk", "v4l2", "amf"];

/// Seconds allowed for connecting to an existing PulseAudio server.
const PULSE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One codec's line of the report.
struct Codec {
    id: &'static str,
    label: &'static str,
    /// What to do when no entry is usable.
    missing_fix: &'static str,
    /// Whether a missing encoder fails the report.
    required: bool,
}

const H264: Codec = Codec {
    id: "encoder.h264",
    label: "H.264",
    missing_fix: "install gstreamer1.0-plugins-ugly (x264enc, software) or, with a GPU, \
                  gstreamer1.0-plugins-bad (va, nvcodec) and the GPU's driver; check the \
                  [[gstreamer.video.h264_encoders]] entries of your config",
    required: true,
};

const HEVC: Codec = Codec {
    id: "encoder.hevc",
    label: "HEVC",
    missing_fix: "install gstreamer1.0-plugins-bad (x265enc, software; va and nvcodec with a \
                  GPU); clients use H.264 meanwhile",
    required: false,
};

const AV1: Codec = Codec {
    id: "encoder.av1",
    label: "AV1",
    missing_fix: "AV1 needs a GPU encoder (NVIDIA RTX 40, Intel Arc, AMD RX 7000 or newer) with \
                  gstreamer1.0-plugins-bad (nvcodec, va); clients use H.264 or HEVC meanwhile",
    required: false,
};

/// Whether an element name is a hardware encoder's.
pub fn is_hardware_element(element: &str) -> bool {
    element.ends_with("enc") && HARDWARE_PREFIXES.iter().any(|p| element.starts_with(p))
}

/// Whether an encoder entry encodes in hardware (one of its elements is a hardware encoder).
pub fn is_hardware_entry(entry: &EncoderConfig) -> bool {
    entry
        .check_elements
        .iter()
        .any(|element| is_hardware_element(element))
}

/// The encoder checks: one per codec, then which hardware encoder elements exist.
pub fn encoder_checks(config: &Config, nodes: &[RenderNode]) -> Vec<Check> {
    if let Err(error) = gst::init() {
        return vec![Check::fail(
            H264.id,
            format!("GStreamer cannot start: {error}"),
            "install GStreamer 1.22 or newer with its base, good, bad and ugly plugin sets (see \
             docs/install.md)",
        )];
    }
    let support = CodecSupport::probe(&config.gstreamer.video);
    let present: Vec<&str> = HARDWARE_ELEMENTS
        .iter()
        .copied()
        .filter(|element| gst::ElementFactory::find(element).is_some())
        .collect();
    let families: Vec<EncoderFamily> = nodes
        .iter()
        .filter_map(|node| node.driver.as_deref().and_then(EncoderFamily::for_driver))
        .collect();
    vec![
        codec_check(&H264, support.h264.as_ref()),
        codec_check(&HEVC, support.hevc.as_ref()),
        codec_check(&AV1, support.av1.as_ref()),
        hardware_check(&present, &families, nodes.len()),
    ]
}

/// The verdict for one codec, given the entry the host would choose.
fn codec_check(codec: &Codec, chosen: Option<&EncoderConfig>) -> Check {
    let Some(entry) = chosen else {
        let summary = format!(
            "no usable {} encoder: none of the configured entries' elements exist",
            codec.label
        );
        return if codec.required {
            Check::fail(codec.id, summary, codec.missing_fix)
        } else {
            Check::warn(codec.id, summary, codec.missing_fix)
        };
    };
    let kind = if is_hardware_entry(entry) {
        "hardware"
    } else {
        "software"
    };
    Check::ok(
        codec.id,
        format!(
            "{} via the \"{}\" entry ({kind}: {})",
            codec.label,
            entry.name,
            entry.check_elements.join(", ")
        ),
    )
}

/// The hardware encoder elements found, set against the GPUs present.
fn hardware_check(present: &[&str], families: &[EncoderFamily], nodes: usize) -> Check {
    const ID: &str = "hardware-encoders";
    if !present.is_empty() {
        return Check::ok(
            ID,
            format!(
                "hardware encoder elements in GStreamer: {}",
                present.join(", ")
            ),
        );
    }
    if nodes == 0 {
        return Check::ok(
            ID,
            "no hardware encoder elements in GStreamer (none expected without a GPU)",
        );
    }
    let fix = if families.contains(&EncoderFamily::Nvenc) {
        "install gstreamer1.0-plugins-bad (nvcodec) and the NVIDIA driver's NVENC library \
         (libnvidia-encode); nvidia-smi must list the GPU"
    } else {
        "install gstreamer1.0-plugins-bad (va) and the VA-API driver (intel-media-va-driver for \
         Intel, mesa-va-drivers for AMD); `vainfo` must list encode entrypoints (VAEntrypointEncSlice)"
    };
    Check::warn(
        ID,
        "a GPU is present but GStreamer has no hardware encoder element: encoding in software",
        fix,
    )
}

/// Where an existing PulseAudio server would be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PulseServer {
    /// A Unix socket.
    Unix(PathBuf),
    /// `host:port` over TCP.
    Tcp(String),
}

/// The first server of a `PULSE_SERVER` value (`unix:/path`, `/path`, `tcp:host[:port]`, `host`;
/// a leading `{machine-id}` is ignored).
fn parse_pulse_server(value: &str) -> Option<PulseServer> {
    let first = value.split_whitespace().next()?;
    let first = match first.strip_prefix('{') {
        Some(rest) => rest.split_once('}')?.1,
        None => first,
    };
    if let Some(path) = first.strip_prefix("unix:") {
        return Some(PulseServer::Unix(path.into()));
    }
    if first.starts_with('/') {
        return Some(PulseServer::Unix(first.into()));
    }
    let host = ["tcp:", "tcp4:", "tcp6:"]
        .iter()
        .find_map(|p| first.strip_prefix(p))
        .unwrap_or(first);
    if host.is_empty() {
        return None;
    }
    let address = if host.starts_with('[') {
        if host.contains("]:") {
            host.to_owned()
        } else {
            format!("{host}:4713")
        }
    } else {
        match host.matches(':').count() {
            0 => format!("{host}:4713"),
            1 => host.to_owned(),
            // A bare IPv6 address.
            _ => format!("[{host}]:4713"),
        }
    };
    Some(PulseServer::Tcp(address))
}

/// Whether a server answers a connection.
fn reachable(server: &PulseServer) -> bool {
    match server {
        PulseServer::Unix(path) => UnixStream::connect(path).is_ok(),
        PulseServer::Tcp(address) => address.to_socket_addrs().is_ok_and(|mut addrs| {
            addrs.any(|a| TcpStream::connect_timeout(&a, PULSE_CONNECT_TIMEOUT).is_ok())
        }),
    }
}

/// PulseAudio: the `pulseaudio` program (Hati starts a private server) or a running server.
pub fn pulseaudio_check() -> Check {
    let binary = which("pulseaudio");
    let server = match std::env::var("PULSE_SERVER") {
        Ok(value) => parse_pulse_server(&value).map(|s| (format!("PULSE_SERVER={value}"), s)),
        Err(_) => std::env::var_os("XDG_RUNTIME_DIR").map(|dir| {
            let path = PathBuf::from(dir).join("pulse/native");
            (path.display().to_string(), PulseServer::Unix(path))
        }),
    };
    let server = server.map(|(name, s)| (name, reachable(&s)));
    pulse_verdict(binary, server)
}

/// The verdict, given the program's path and (where one is named) the server and whether it
/// answered.
fn pulse_verdict(binary: Option<PathBuf>, server: Option<(String, bool)>) -> Check {
    const ID: &str = "pulseaudio";
    if let Some(binary) = binary {
        return Check::ok(
            ID,
            format!(
                "{} found: Hati starts its own private PulseAudio server",
                binary.display()
            ),
        );
    }
    match server {
        Some((name, true)) => Check::ok(
            ID,
            format!("no pulseaudio program, but the PulseAudio server at {name} answers"),
        ),
        Some((name, false)) => Check::fail(
            ID,
            format!(
                "no pulseaudio program on PATH, and no PulseAudio server answers at {name}: apps \
                 have no sound"
            ),
            "sudo apt install pulseaudio (Hati starts a private server itself), or start the \
             server named there",
        ),
        None => Check::fail(
            ID,
            "no pulseaudio program on PATH and no PulseAudio server (PULSE_SERVER and \
             XDG_RUNTIME_DIR unset): apps have no sound",
            "sudo apt install pulseaudio (Hati starts a private server itself)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn entry(name: &str, elements: &[&str]) -> EncoderConfig {
        EncoderConfig {
            name: name.into(),
            check_elements: elements.iter().map(|e| e.to_string()).collect(),
            pipeline: String::new(),
            webrtc_pipeline: None,
        }
    }

    #[test]
    fn hardware_and_software_elements() {
        for hw in [
            "nvh264enc",
            "vah264enc",
            "vaapih264enc",
            "qsvh264enc",
            "v4l2h264enc",
        ] {
            assert!(is_hardware_element(hw), "{hw}");
        }
        for sw in [
            "x264enc",
            "x265enc",
            "av1enc",
            "svtav1enc",
            "rav1enc",
            "valve",
            "cudaupload",
        ] {
            assert!(!is_hardware_element(sw), "{sw}");
        }
        assert!(is_hardware_entry(&entry(
            "nvcodec",
            &["nvh264enc", "cudaupload"]
        )));
        assert!(!is_hardware_entry(&entry("x264", &["x264enc"])));
    }

    #[test]
    fn default_config_entries_are_classified() {
        let config = Config::default_config().unwrap();
        let video = &config.gstreamer.video;
        let names = |list: &[EncoderConfig], hw: bool| -> Vec<String> {
            list.iter()
                .filter(|e| is_hardware_entry(e) == hw)
                .map(|e| e.name.clone())
                .collect()
        };
        assert_eq!(names(&video.h264_encoders, false), ["x264"]);
        assert_eq!(names(&video.h264_encoders, true), ["nvcodec", "va"]);
        assert_eq!(names(&video.hevc_encoders, false), ["x265"]);
    }

    #[test]
    fn missing_h264_fails_but_missing_hevc_and_av1_warn() {
        assert_eq!(codec_check(&H264, None).status, Status::Fail);
        assert_eq!(codec_check(&HEVC, None).status, Status::Warn);
        assert_eq!(codec_check(&AV1, None).status, Status::Warn);
        let x264 = entry("x264", &["x264enc"]);
        let ok = codec_check(&H264, Some(&x264));
        assert_eq!(ok.status, Status::Ok);
        assert!(ok.summary.contains("software: x264enc"), "{}", ok.summary);
        let nv = entry("nvcodec", &["nvh264enc", "cudaupload"]);
        assert!(codec_check(&H264, Some(&nv)).summary.contains("hardware"));
    }

    #[test]
    fn hardware_verdict_follows_the_gpus() {
        assert_eq!(hardware_check(&["vah264enc"], &[], 1).status, Status::Ok);
        assert_eq!(hardware_check(&[], &[], 0).status, Status::Ok);
        let va = hardware_check(&[], &[EncoderFamily::VaApi], 1);
        assert_eq!(va.status, Status::Warn);
        assert!(va.fix.unwrap().contains("vainfo"));
        let nv = hardware_check(&[], &[EncoderFamily::Nvenc], 1);
        assert!(nv.fix.unwrap().contains("nvcodec"));
    }

    #[test]
    fn pulse_server_values() {
        assert_eq!(
            parse_pulse_server("unix:/run/pulse/native"),
            Some(PulseServer::Unix("/run/pulse/native".into()))
        );
        assert_eq!(
            parse_pulse_server("/tmp/p"),
            Some(PulseServer::Unix("/tmp/p".into()))
        );
        assert_eq!(
            parse_pulse_server("tcp:box:1234"),
            Some(PulseServer::Tcp("box:1234".into()))
        );
        assert_eq!(
            parse_pulse_server("box"),
            Some(PulseServer::Tcp("box:4713".into()))
        );
        assert_eq!(
            parse_pulse_server("{abc}unix:/s other"),
            Some(PulseServer::Unix("/s".into()))
        );
        assert_eq!(
            parse_pulse_server("tcp6:[::1]"),
            Some(PulseServer::Tcp("[::1]:4713".into()))
        );
        assert_eq!(parse_pulse_server("  "), None);
    }

    #[test]
    fn pulse_verdicts() {
        assert_eq!(
            pulse_verdict(Some("/usr/bin/pulseaudio".into()), None).status,
            Status::Ok
        );
        assert_eq!(
            pulse_verdict(None, Some(("x".into(), true))).status,
            Status::Ok
        );
        let down = pulse_verdict(None, Some(("x".into(), false)));
        assert_eq!(down.status, Status::Fail);
        let none = pulse_verdict(None, None);
        assert_eq!(none.status, Status::Fail);
        assert!(none.fix.unwrap().contains("apt install pulseaudio"));
    }
}
