//! The JSON shapes the admin API shows apps, sessions and clients in.

use serde_json::{Value, json};

use crate::state::clients::{PairedClient, short_id};

pub(super) fn app_json(app: &crate::config::AppConfig) -> Value {
    let runner = match &app.runner {
        Some(crate::runner::RunnerConfig::Process(process)) => {
            json!({ "type": "process", "cmd": process.cmd })
        }
        Some(crate::runner::RunnerConfig::Docker(docker)) => {
            json!({ "type": "docker", "image": docker.image })
        }
        None => Value::Null,
    };
    json!({ "id": app.id(), "title": app.title, "desktop": app.compositor, "runner": runner })
}

pub(super) fn session_json(session: &crate::session::Session) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    json!({
        "id": session.id,
        "client": short_id(&session.client_id),
        "app": session.app.title,
        "state": session.state(),
        "streaming": session.is_streaming(),
        "desktop": session.desktop().map(|d| d.wayland_display().to_owned()),
        "audio_sink": session.audio_sink().map(|(sink, _)| sink),
        "idr_requests": session.metrics.idr_requests.load(Relaxed),
        "input_events": session.metrics.input_events.load(Relaxed),
        "fec_status_reports": session.metrics.fec_status_reports.load(Relaxed),
        "client_frames_recovered": session.metrics.client_frames_recovered.load(Relaxed),
        "client_frames_lost": session.metrics.client_frames_lost.load(Relaxed),
        "client_packets_missing": session.metrics.client_packets_missing.load(Relaxed),
        "client_frames_dropped": session.metrics.client_frames_dropped.load(Relaxed),
        "target_changes": session.metrics.target_changes.load(Relaxed),
        "refused_pings": session.metrics.refused_pings.load(Relaxed),
        "replayed_control_messages": session.metrics.replayed_control_messages.load(Relaxed),
        "packets": session.packet_counts().map(|c| json!({
            "video_sent": c.video_sent,
            "video_dropped": c.video_dropped,
            "audio_sent": c.audio_sent,
            "audio_dropped": c.audio_dropped,
        })),
        "video_target": session.video_target.get().map(|a| a.to_string()),
        "audio_target": session.audio_target.get().map(|a| a.to_string()),
    })
}

/// A client as the admin API shows it (no certificate).
pub fn client_json(client: &PairedClient) -> Value {
    json!({ "id": client.id, "name": client.name, "paired_at": client.paired_at, "kind": client.kind })
}
