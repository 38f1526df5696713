//! `GET /applist` and `GET /appasset` (PROTOCOL.md §1.5): the configured apps the client may
//! launch (its permissions, [`crate::state::permissions`]) and their box art (the app's PNG, or
//! a generated one).

use bytes::Bytes;
use hati_protocol::query::Query;
use hati_protocol::xml::XmlReply;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::{response, xml};
use crate::host::Host;

/// The app list for the paired client with ID `client_id`: the apps it may launch, IDs
/// derived from titles.
pub fn applist(host: &Host, client_id: &str) -> XmlReply {
    let config = host.config();
    let apps = host
        .visible_apps(client_id, &config)
        .into_iter()
        .map(|app| (app.title.clone(), app.id()));
    // Open lobbies the client may join come last, as "Join: <app> (<owner>)".
    let lobbies = crate::host::lobbies::join_entries(host, client_id)
        .into_iter()
        .map(|lobby| (lobby.join_title, lobby.join_app_id));
    apps.chain(lobbies)
        .fold(XmlReply::ok(), |reply, (title, id)| {
            reply.nested("App", |entry| {
                entry
                    .element("IsHdrSupported", 0)
                    .element("AppTitle", &title)
                    .element("ID", id)
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
    // A "Join:" entry shows its lobby's app.
    let id = host
        .sessions
        .lobby_for_app_id(id)
        .map_or(id, |(_, owner_app)| owner_app);
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
