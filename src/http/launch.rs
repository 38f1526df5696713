//! `GET /launch`, `/resume` and `/cancel` (PROTOCOL.md §1.6–1.7): create, re-key and end the
//! client's session. Sessions are keyed by the client's certificate, never its address.

use hati_protocol::query::{Query, QueryError};
use hati_protocol::xml::XmlReply;

use super::RequestContext;
use crate::host::Host;
use crate::session::{LaunchError, LaunchParams, LaunchRequest, MoonlightKey};

/// `surroundAudioInfo` for stereo, the default when a client omits it.
const STEREO_SURROUND_INFO: u32 = 0x0003_0002;

/// `/launch`: asks the session manager to start the app's desktop, audio sink and app.
pub async fn launch(host: &Host, context: &RequestContext, query: &Query) -> XmlReply {
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
    let corever = params.key.as_ref().map_or(0, |key| key.corever);
    if let Some(gateway) = host.gateway.get() {
        let config = host.config();
        let Some(app) = config.app(app_id) else {
            return XmlReply::error(404, format!("no app with ID {app_id}"));
        };
        let launch = crate::gateway::ClientLaunch {
            client_id: client,
            client_ip: context.peer.ip(),
            front_ip: context.local_ip(),
            app_id,
            app: app.title.clone(),
            params,
        };
        return match gateway.launch(launch).await {
            Ok(front) => XmlReply::ok()
                .element(
                    "sessionUrl0",
                    session_url(host, context, corever, Some(front.rtsp)),
                )
                .element("gamesession", 1),
            Err(error) => XmlReply::error(error.status(), error.to_string()),
        };
    }
    let request = LaunchRequest {
        client_id: client,
        client_ip: context.peer.ip(),
        app_id,
        config: host.config(),
        params,
        placement: None,
    };
    match host.sessions.launch(request).await {
        Ok(_) => XmlReply::ok()
            .element("sessionUrl0", session_url(host, context, corever, None))
            .element("gamesession", 1),
        Err(error) => XmlReply::error(launch_status(&error), error.to_string()),
    }
}

/// The status code Moonlight shows with each refusal.
fn launch_status(error: &LaunchError) -> u32 {
    match error {
        LaunchError::UnknownApp(_) => 404,
        LaunchError::AlreadyRunning => 400,
        LaunchError::NotRunning => 503,
        LaunchError::WrongClientKind => 409,
        LaunchError::Resources { .. } | LaunchError::EndedWhileLaunching(_) => 500,
    }
}

/// `/resume`: moonlight-python sends only the key, key ID, audio info and `corever`.
pub async fn resume(host: &Host, context: &RequestContext, query: &Query) -> XmlReply {
    let Some(client) = context.client_fingerprint() else {
        return XmlReply::unauthorized("/resume");
    };
    let (rikey, rikeyid) = match keys(query) {
        Ok(keys) => keys,
        Err(error) => return XmlReply::error(400, error.to_string()),
    };
    let corever = query.number("corever").unwrap_or(0);
    let key = MoonlightKey {
        rikey,
        rikeyid,
        corever,
    };
    if let Some(gateway) = host.gateway.get() {
        return match gateway.resume(&client, &key).await {
            Ok(front) => XmlReply::ok()
                .element(
                    "sessionUrl0",
                    session_url(host, context, corever, Some(front.rtsp)),
                )
                .element("resume", 1),
            Err(error) => XmlReply::error(error.status(), error.to_string()),
        };
    }
    match host.sessions.resume(&client, Some(key)) {
        Ok(_) => XmlReply::ok()
            .element("sessionUrl0", session_url(host, context, corever, None))
            .element("resume", 1),
        Err(error) => XmlReply::error(launch_status(&error), error.to_string()),
    }
}

/// `/cancel`: ends the client's session and the app, answering once everything is released.
pub async fn cancel(host: &Host, context: &RequestContext) -> XmlReply {
    if let Some(client) = context.client_fingerprint() {
        match host.gateway.get() {
            Some(gateway) => {
                gateway.cancel(&client).await;
            }
            None => {
                host.sessions.cancel(&client).await;
            }
        }
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
        mode,
        surround_info: query
            .number("surroundAudioInfo")
            .unwrap_or(STEREO_SURROUND_INFO),
        key: Some(MoonlightKey {
            rikey,
            rikeyid,
            corever: query.number("corever").unwrap_or(0),
        }),
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
fn session_url(
    host: &Host,
    context: &RequestContext,
    corever: u32,
    front_rtsp: Option<u16>,
) -> String {
    let scheme = if corever >= 1 { "rtspenc" } else { "rtsp" };
    // A gateway's session is reached on its own front RTSP port, at the front address.
    let (address, port) = match (host.gateway.get(), front_rtsp) {
        (Some(gateway), Some(port)) => (gateway.front_address(context.local_ip()), port),
        _ => (context.local_ip(), host.ports.rtsp),
    };
    // SocketAddr brackets IPv6 addresses, as a URL needs.
    format!("{scheme}://{}", std::net::SocketAddr::new(address, port))
}
