//! `GET /serverinfo` (PROTOCOL.md §1.3): every field the clients read.

use std::net::IpAddr;

use hati_protocol::xml::XmlReply;

use super::{RequestContext, Transport};
use crate::host::Host;

/// The version that selects TCP RTSP, the encrypted control stream and Sunshine extensions.
pub const APP_VERSION: &str = "7.1.431.-1";
/// The GFE version Sunshine reports (moonlight-qt on macOS needs one for HEVC).
pub const GFE_VERSION: &str = "3.23.0.74";
/// `MaxLumaPixelsHEVC` when HEVC is offered (Sunshine's value).
const MAX_LUMA_PIXELS_HEVC: u64 = 1_869_449_984;
/// Display modes offered for GFE-style mode selection.
const DISPLAY_MODES: [(u32, u32, u32); 4] = [
    (1280, 720, 60),
    (1920, 1080, 60),
    (2560, 1440, 60),
    (3840, 2160, 60),
];

/// Builds the reply for this client.
pub fn serverinfo(host: &Host, context: &RequestContext) -> XmlReply {
    let https = matches!(context.transport, Transport::Https { .. });
    // The router only lets paired certificates through on HTTPS.
    let paired = https;
    // Sunshine reports 127.0.0.1 for IPv6 requests; clients ignore 127.* as a LAN address.
    let local_ip = match context.local_ip() {
        IpAddr::V6(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        v4 => v4,
    };
    let mac = if https {
        mac_address(context.local_ip())
    } else {
        None
    };
    // A gateway offers what every one of its nodes encodes (a launch may land on any of them).
    let codecs = match host
        .gateway
        .get()
        .and_then(|gateway| gateway.common_codecs())
    {
        Some(names) => crate::encoders::CodecSupport::mask_of_names(&names),
        None => host.codecs.server_codec_mode_support(),
    };
    let hevc = codecs & crate::encoders::SCM_HEVC != 0;
    let running_app = context
        .client_fingerprint()
        .and_then(|client| match host.gateway.get() {
            Some(gateway) => gateway.session_of(&client).map(|s| s.app_id),
            None => host.sessions.by_client(&client).map(|s| s.app_id),
        });
    let (current_game, state) = match running_app {
        Some(app_id) => (app_id, "SUNSHINE_SERVER_BUSY"),
        None => (0, "SUNSHINE_SERVER_FREE"),
    };
    XmlReply::ok()
        .element("hostname", &host.config().hostname)
        .element("appversion", APP_VERSION)
        .element("GfeVersion", GFE_VERSION)
        .element("uniqueid", &host.identity.unique_id)
        .element("HttpsPort", host.ports.https)
        .element("ExternalPort", host.ports.http)
        .element(
            "MaxLumaPixelsHEVC",
            if hevc { MAX_LUMA_PIXELS_HEVC } else { 0 },
        )
        .element("mac", mac.unwrap_or_else(|| "00:00:00:00:00:00".into()))
        .element("LocalIP", local_ip)
        .element("ServerCodecModeSupport", codecs)
        .nested("SupportedDisplayMode", |mut modes| {
            for (width, height, fps) in DISPLAY_MODES {
                modes = modes.nested("DisplayMode", |mode| {
                    mode.element("Width", width)
                        .element("Height", height)
                        .element("RefreshRate", fps)
                });
            }
            modes
        })
        .element("PairStatus", u8::from(paired))
        .element("currentgame", current_game)
        .element("state", state)
}

/// The MAC address of the interface that owns `ip` (for Wake-on-LAN).
fn mac_address(ip: IpAddr) -> Option<String> {
    let interface = if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .find(|i| i.ip() == ip && !i.is_loopback())?;
    let mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", interface.name)).ok()?;
    Some(mac.trim().to_owned())
}
