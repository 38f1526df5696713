//! `GET /launch`, `/resume` and `/cancel` (PROTOCOL.md §1.6–1.7): create, re-key and end the
//! client's session. Sessions are keyed by the client's certificate, never its address.

use std::sync::Arc;

use hati_protocol::query::{Query, QueryError};
use hati_protocol::xml::XmlReply;

use super::RequestContext;
use crate::gamepad::GamepadManager;
use crate::host::Host;
use crate::input::SessionInput;
use crate::session::resources::AppResources;
use crate::session::{ControlCommand, LaunchParams, NewSession};

/// `surroundAudioInfo` for stereo, the default when a client omits it.
const STEREO_SURROUND_INFO: u32 = 0x0003_0002;

/// `/launch`: starts the app's desktop, audio sink and app, then registers the session.
pub async fn launch(host: &Arc<Host>, context: &RequestContext, query: &Query) -> XmlReply {
    let Some(client) = context.client_fingerprint() else {
        return XmlReply::unauthorized("/launch");
    };
    let params = match launch_params(query) {
        Ok(params) => params,
        Err(error) => return XmlReply::error(400, error.to_string()),
    };
    let app_id: u32 = match query.number("appid") {
        Ok(id) => id,
        Err(error) => return XmlReply::error(400, error.to_string()),
    };
    let config = host.config();
    let Some(app) = config.apps.iter().find(|app| app.id() == app_id) else {
        return XmlReply::error(404, format!("no app with ID {app_id}"));
    };
    if host.sessions.is_running(&client) {
        return XmlReply::error(400, "An app is already running on this host");
    }
    let corever = params.corever;
    let (id, span) = host.sessions.new_session_id(&client);
    let audio = if app.runner.is_some() {
        host.audio().await
    } else {
        None
    };
    let started = {
        use tracing::Instrument;
        AppResources::start(id, app, params.mode, audio.as_ref(), &host.launcher)
            .instrument(span.clone())
            .await
    };
    let resources = match started {
        Ok(resources) => resources,
        Err(error) => {
            tracing::error!(parent: &span, app = %app.title, %error, "launch failed");
            return XmlReply::error(500, format!("{}: {error}", app.title));
        }
    };
    let control = host.control_commands.clone();
    let rumble = Arc::new(move |controller: u8, motors: crate::gamepad::Motors| {
        let _ = control.send(ControlCommand::Rumble {
            session_id: id,
            controller: u16::from(controller),
            low_freq: motors.low_freq,
            high_freq: motors.high_freq,
        });
    });
    let seat = resources.compositor.as_ref().map(|c| c.input_sender());
    let input = Arc::new(SessionInput::new(
        seat,
        GamepadManager::new(id, app.joypad_type, rumble),
    ));
    let new = NewSession {
        id,
        span,
        client_id: &client,
        client_ip: context.peer.ip(),
        app,
        params,
        resources,
        input,
    };
    match host.sessions.launch(new) {
        Ok(session) => {
            if let Some(mut exit) = session.app_exit_watch() {
                let host = host.clone();
                tokio::spawn(async move {
                    while exit.borrow_and_update().is_none() {
                        if exit.changed().await.is_err() {
                            return;
                        }
                    }
                    let status = exit.borrow().clone();
                    tracing::info!(parent: &session.span, ?status, "the app exited; ending the session");
                    host.sessions
                        .end_session(session.id, crate::events::EndReason::AppExited)
                        .await;
                });
            }
            XmlReply::ok()
                .element("sessionUrl0", session_url(host, context, corever))
                .element("gamesession", 1)
        }
        Err(mut resources) => {
            resources.release().await;
            XmlReply::error(400, "An app is already running on this host")
        }
    }
}

/// `/resume`: moonlight-python sends only the key, key ID, audio info and `corever`.
pub fn resume(host: &Host, context: &RequestContext, query: &Query) -> XmlReply {
    let Some(client) = context.client_fingerprint() else {
        return XmlReply::unauthorized("/resume");
    };
    let (rikey, rikeyid) = match keys(query) {
        Ok(keys) => keys,
        Err(error) => return XmlReply::error(400, error.to_string()),
    };
    let corever = query.number("corever").unwrap_or(0);
    match host.sessions.resume(&client, rikey, rikeyid, corever) {
        Ok(_) => XmlReply::ok()
            .element("sessionUrl0", session_url(host, context, corever))
            .element("resume", 1),
        Err(_) => XmlReply::error(503, "No app is running; launch one"),
    }
}

/// `/cancel`: ends the client's session and the app, answering once everything is released.
pub async fn cancel(host: &Host, context: &RequestContext) -> XmlReply {
    if let Some(client) = context.client_fingerprint() {
        host.sessions.cancel(&client).await;
    }
    XmlReply::ok().element("cancel", 1)
}

fn launch_params(query: &Query) -> Result<LaunchParams, QueryError> {
    let (rikey, rikeyid) = keys(query)?;
    let mode = query.get("mode").and_then(|mode| {
        let mut parts = mode.split('x').map(|p| p.parse::<u32>().ok());
        Some((parts.next()??, parts.next()??, parts.next()??))
    });
    Ok(LaunchParams {
        rikey,
        rikeyid,
        mode,
        surround_info: query
            .number("surroundAudioInfo")
            .unwrap_or(STEREO_SURROUND_INFO),
        corever: query.number("corever").unwrap_or(0),
    })
}

fn keys(query: &Query) -> Result<([u8; 16], i32), QueryError> {
    let rikey: [u8; 16] = query
        .hex("rikey")?
        .try_into()
        .map_err(|_| QueryError::Malformed {
            name: "rikey",
            reason: "expected 32 hex digits",
        })?;
    // Clients send the key ID as a signed 32-bit number (it can be negative).
    let rikeyid = query.number::<i64>("rikeyid")?;
    let rikeyid = i32::try_from(rikeyid)
        .or_else(|_| u32::try_from(rikeyid).map(|v| v as i32))
        .map_err(|_| QueryError::Malformed {
            name: "rikeyid",
            reason: "expected a 32-bit number",
        })?;
    Ok((rikey, rikeyid))
}

/// `rtspenc://` when the client can encrypt RTSP (`corever` ≥ 1), so requests can be matched to
/// their session by key.
fn session_url(host: &Host, context: &RequestContext, corever: u32) -> String {
    let scheme = if corever >= 1 { "rtspenc" } else { "rtsp" };
    // SocketAddr brackets IPv6 addresses, as a URL needs.
    let address = std::net::SocketAddr::new(context.local_ip(), host.ports.rtsp);
    format!("{scheme}://{address}")
}
