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
    let mut view = json!({
        "id": session.id,
        "client": short_id(&session.client_id),
        "app": session.app.title,
        "state": session.state(),
        "streaming": session.is_streaming(),
        "desktop": session.desktop().map(|d| d.wayland_display().to_owned()),
        "audio_sink": session.audio_sink().map(|(sink, _)| sink),
        "video_key_frames": session.stream_counters().map(|(video, _)| video.key_frames.load(std::sync::atomic::Ordering::Relaxed)),
        "packets": session.packet_counts().map(|c| json!({
            "video_sent": c.video_sent,
            "video_dropped": c.video_dropped,
            "audio_sent": c.audio_sent,
            "audio_dropped": c.audio_dropped,
        })),
        "video_target": session.video_target.get().map(|a| a.to_string()),
        "audio_target": session.audio_target.get().map(|a| a.to_string()),
        "input_delay": session.desktop().map(input_delay_json),
        "guest": session.guest().map(|g| json!({ "lobby": g.lobby, "owner": g.owner, "role": g.role })),
        "gamepads": session.gamepads(),
    });
    // The counters sit beside the fields above, as in the `stream_stats` event.
    if let (Some(view), Ok(Value::Object(counters))) = (
        view.as_object_mut(),
        serde_json::to_value(session.metrics.snapshot()),
    ) {
        view.extend(counters);
    }
    view
}

/// How long the desktop's injected input waited for its compositor: cumulative counts per
/// bucket, each bucket's upper bound in µs (`null`: no bound).
fn input_delay_json(desktop: &hati_compositor::CompositorHandle) -> Value {
    use hati_compositor::delays::{BUCKETS, bucket_upper_us};
    let bounds: Vec<Option<u64>> = (0..BUCKETS)
        .map(|bucket| Some(bucket_upper_us(bucket)).filter(|&bound| bound != u64::MAX))
        .collect();
    json!({ "bucket_upper_us": bounds, "counts": desktop.input_delays().to_vec() })
}

/// A client as the admin API shows it (no certificate), with its role and the IDs of the apps
/// it may use (`null`: every app).
pub fn client_json(client: &PairedClient) -> Value {
    json!({
        "id": client.id,
        "name": client.name,
        "paired_at": client.paired_at,
        "kind": client.kind,
        "role": client.permissions.role,
        "apps": client.permissions.apps,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// The OpenAPI document's `SessionCounters` lists exactly the counters the session JSON
    /// and the `stream_stats` event carry, all required.
    #[test]
    fn openapi_session_counters_match_the_snapshot() {
        let document: Value = serde_json::from_str(super::super::routes::OPENAPI).unwrap();
        let schema = &document["components"]["schemas"]["SessionCounters"];
        let mut documented: Vec<&str> = schema["properties"]
            .as_object()
            .expect("SessionCounters has properties")
            .keys()
            .map(String::as_str)
            .collect();
        let mut required: Vec<&str> = schema["required"]
            .as_array()
            .expect("SessionCounters lists what is required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let snapshot = serde_json::to_value(crate::session::SessionCounters::default()).unwrap();
        let mut counters: Vec<&str> = snapshot
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        documented.sort_unstable();
        required.sort_unstable();
        counters.sort_unstable();
        assert_eq!(
            documented, counters,
            "src/admin/openapi.json SessionCounters"
        );
        assert_eq!(required, counters, "every counter is always present");
    }
}
