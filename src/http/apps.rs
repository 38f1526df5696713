//! `GET /applist` and `GET /appasset` (PROTOCOL.md §1.5): the configured apps and their box art
//! (the app's PNG, or a generated one).

use bytes::Bytes;
use hati_protocol::query::Query;
use hati_protocol::xml::XmlReply;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::{response, xml};
use crate::host::Host;

/// The app list, IDs derived from titles.
pub fn applist(host: &Host) -> XmlReply {
    host.config()
        .apps
        .iter()
        .fold(XmlReply::ok(), |reply, app| {
            reply.nested("App", |entry| {
                entry
                    .element("IsHdrSupported", 0)
                    .element("AppTitle", &app.title)
                    .element("ID", app.id())
            })
        })
}

/// The box art PNG of `appid`.
pub fn appasset(host: &Host, query: &Query) -> Response<Full<Bytes>> {
    let id: u32 = match query.number("appid") {
        Ok(id) => id,
        Err(error) => return xml(&XmlReply::error(400, error.to_string())),
    };
    let config = host.config();
    let Some(app) = config.app(id) else {
        return xml(&XmlReply::error(404, format!("no app with ID {id}")));
    };
    match app.icon_png() {
        Ok(png) => response(StatusCode::OK, "image/png", png.into()),
        Err(error) => {
            tracing::warn!(app = %app.title, %error, "cannot serve the app icon");
            xml(&XmlReply::error(500, error.to_string()))
        }
    }
}
