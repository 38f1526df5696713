//! Session sinks against a real private `pulseaudio` started by each test, with real
//! playback and capture through GStreamer's `pulsesink`/`pulsesrc` (as the session's audio
//! pipeline captures).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hati::audio::{AudioError, AudioServer};

use crate::{logs, skip_or_fail};

const REQUIRE: &str = "HATI_REQUIRE_PULSEAUDIO";

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

async fn private_server(dir: &Path) -> Result<AudioServer, String> {
    logs::init();
    if !have("pulseaudio") {
        return Err("`pulseaudio` is not installed (Debian package pulseaudio)".into());
    }
    AudioServer::spawn_private(&dir.join("pulse"))
        .await
        .map_err(|e| e.to_string())
}

/// Peak absolute sample of little-endian s16 audio.
fn peak(raw: &[u8]) -> i32 {
    raw.chunks_exact(2)
        .map(|pair| i32::from(i16::from_le_bytes([pair[0], pair[1]])).abs())
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn sink_carries_audio_from_player_to_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let server = match private_server(dir.path()).await {
        Ok(server) => server,
        Err(reason) => skip_or_fail!(REQUIRE, "audio tests: {reason}"),
    };
    if !have("gst-launch-1.0") {
        skip_or_fail!(
            REQUIRE,
            "audio playback test: gst-launch-1.0 is not installed (gstreamer1.0-tools)"
        );
    }
    assert!(server.is_private());
    assert!(server.pulse_server().starts_with("unix:"));
    assert_eq!(
        server.socket_path().unwrap(),
        dir.path().join("pulse/native")
    );

    let sink = server.create_sink(11, 2).await.unwrap();
    assert_eq!(sink.sink_name(), "hati-11");
    assert_eq!(sink.monitor_source(), "hati-11.monitor");
    assert_eq!(
        sink.env(),
        [
            ("PULSE_SERVER".to_owned(), server.pulse_server().to_owned()),
            ("PULSE_SINK".to_owned(), "hati-11".to_owned())
        ]
    );
    assert_eq!(server.hati_sinks().await.unwrap(), ["hati-11"]);

    // Record 1.5 s from the monitor while a 440 Hz tone plays into the sink.
    let recording = dir.path().join("monitor.raw");
    let mut recorder = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "pulsesrc",
            &format!("device={}", sink.monitor_source()),
            "num-buffers=150",
            "!",
        ])
        .args([
            "audio/x-raw,format=S16LE,rate=48000,channels=2",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", recording.display()))
        .env("PULSE_SERVER", sink.pulse_server())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let player = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "audiotestsrc",
            "freq=440",
            "volume=0.5",
            "num-buffers=100",
            "!",
        ])
        .args([
            "audio/x-raw,rate=48000,channels=2",
            "!",
            "pulsesink",
            &format!("device={}", sink.sink_name()),
        ])
        .env("PULSE_SERVER", sink.pulse_server())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(player.success(), "playback into the sink failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    let recorded = loop {
        if let Some(status) = recorder.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = recorder.kill();
            panic!("recording from the monitor did not finish");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(recorded.success(), "recording from the monitor failed");
    let raw = std::fs::read(&recording).unwrap();
    assert!(raw.len() > 48_000, "recorded only {} bytes", raw.len());
    let loudest = peak(&raw);
    assert!(loudest > 4_000, "the monitor was silent (peak {loudest})");

    sink.remove().await.unwrap();
    assert!(server.hati_sinks().await.unwrap().is_empty());
}

#[tokio::test]
async fn twenty_create_remove_cycles_leave_no_sink() {
    let dir = tempfile::tempdir().unwrap();
    let server = match private_server(dir.path()).await {
        Ok(server) => server,
        Err(reason) => skip_or_fail!(REQUIRE, "audio tests: {reason}"),
    };
    for cycle in 0..20 {
        let channels = [2, 6, 8][cycle % 3];
        let sink = server
            .create_sink(100 + cycle as u32, channels)
            .await
            .unwrap();
        assert_eq!(server.hati_sinks().await.unwrap(), [sink.sink_name()]);
        sink.remove().await.unwrap();
    }
    assert!(server.hati_sinks().await.unwrap().is_empty());
    // A dropped sink is unloaded in the background.
    drop(server.create_sink(200, 2).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.hati_sinks().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "dropped sink not unloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(
        server.create_sink(1, 3).await,
        Err(AudioError::Channels(3))
    ));
}

#[tokio::test]
async fn stale_sinks_are_cleaned_up_and_others_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = match private_server(dir.path()).await {
        Ok(server) => server,
        Err(reason) => skip_or_fail!(REQUIRE, "audio tests: {reason}"),
    };
    // A crashed run: another connection made sinks and never removed them.
    let crashed = AudioServer::connect(Some(server.pulse_server()))
        .await
        .unwrap();
    assert!(!crashed.is_private());
    std::mem::forget(crashed.create_sink(31, 2).await.unwrap());
    std::mem::forget(crashed.create_sink(32, 2).await.unwrap());
    drop(crashed);
    // A sink that is not Hati's.
    let other = Command::new("pactl")
        .args(["load-module", "module-null-sink", "sink_name=someone-else"])
        .env("PULSE_SERVER", server.pulse_server())
        .output();
    let other_loaded = matches!(&other, Ok(output) if output.status.success());
    if !other_loaded {
        eprintln!("note: pactl unavailable; not checking that foreign sinks survive");
    }

    assert_eq!(server.hati_sinks().await.unwrap().len(), 2);
    assert_eq!(server.cleanup_stale().await.unwrap(), 2);
    assert!(server.hati_sinks().await.unwrap().is_empty());
    let names: Vec<String> = server
        .sinks()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    if other_loaded {
        assert!(names.contains(&"someone-else".to_owned()), "{names:?}");
    }
    // A leftover sink with the session's own name is replaced, not duplicated.
    std::mem::forget(server.create_sink(40, 2).await.unwrap());
    let again = server.create_sink(40, 2).await.unwrap();
    assert_eq!(server.hati_sinks().await.unwrap(), ["hati-40"]);
    again.remove().await.unwrap();
}

#[tokio::test]
async fn unreachable_server_is_a_connect_error_and_the_daemon_stops_with_its_server() {
    logs::init();
    let error = AudioServer::connect(Some("unix:/nonexistent/hati/native"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AudioError::Connect { server, .. } if server == "unix:/nonexistent/hati/native"),
        "{error}"
    );

    let dir = tempfile::tempdir().unwrap();
    let server = match private_server(dir.path()).await {
        Ok(server) => server,
        Err(reason) => skip_or_fail!(REQUIRE, "audio tests: {reason}"),
    };
    let address = server.pulse_server().to_owned();
    AudioServer::connect(Some(&address)).await.unwrap();
    drop(server);
    assert!(
        AudioServer::connect(Some(&address)).await.is_err(),
        "the private daemon stops when dropped"
    );
}
