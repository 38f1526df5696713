//! `PATCH /clients/{id}`: changes a paired client's role and the apps it may use
//! ([`crate::state::permissions`]). `{id}` is its name or a prefix of its ID, as for
//! `/unpair`; the body is `{"role": "player", "apps": [ID, …]}`, either key optional, `"apps":
//! null` for every app. Parsed whole and checked against the configured apps before anything is
//! stored.

use std::time::Duration;

use bytes::Bytes;
use hati_protocol::query::Query;
use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::lookup::find_client;
use super::views::client_json;
use crate::config::AppConfig;
use crate::host::Host;
use crate::state::clients::PairedClient;
use crate::state::permissions::{MAX_APPS, Permissions, Role};

/// The largest body taken: [`MAX_APPS`] IDs of ten digits with their commas, and some room.
const MAX_BODY: usize = 16 * 1024;
/// How long the body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The shape of the body, for errors.
const BODY_SHAPE: &str =
    r#"{"role": "admin" | "player" | "spectator", "apps": [app ID, …] or null for every app}"#;

/// The body of `PATCH /clients/{id}`: what to change; a key left out stays as it is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientChange {
    /// The new role.
    #[serde(default)]
    pub role: Option<Role>,
    /// `None`: unchanged; `Some(None)`: every app; `Some(Some(ids))`: those apps.
    #[serde(default, deserialize_with = "present")]
    pub apps: Option<Option<Vec<u32>>>,
}

/// Tells a key given as `null` (`Some(None)`) from one left out (`None`, through `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl ClientChange {
    /// Parses a request body; the error is the admin API's 400 message.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let change: Self = serde_json::from_slice(body)
            .map_err(|e| format!("the body must be {BODY_SHAPE}: {e}"))?;
        if change.role.is_none() && change.apps.is_none() {
            return Err(format!(
                "nothing to change: the body must be {BODY_SHAPE}, with one key or both"
            ));
        }
        if let Some(Some(ids)) = &change.apps
            && ids.len() > MAX_APPS
        {
            return Err(format!(
                "`apps` lists {} IDs; at most {MAX_APPS}",
                ids.len()
            ));
        }
        Ok(change)
    }

    /// `current` with this change applied; every listed ID must be one of `catalogue`'s apps
    /// (the error names the unknown ID and the apps there are). IDs are kept sorted, once each.
    pub fn apply(
        &self,
        current: &Permissions,
        catalogue: &[AppConfig],
    ) -> Result<Permissions, String> {
        let apps = match &self.apps {
            None => current.apps.clone(),
            Some(None) => None,
            Some(Some(ids)) => {
                if let Some(unknown) = ids
                    .iter()
                    .find(|id| catalogue.iter().all(|app| app.id() != **id))
                {
                    let known: Vec<String> = catalogue
                        .iter()
                        .map(|app| format!("{} ({})", app.id(), app.title))
                        .collect();
                    return Err(format!(
                        "no app with ID {unknown}; the apps are: {} (IDs as `hati apps` and \
                         /applist show them)",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ));
                }
                let mut ids = ids.clone();
                ids.sort_unstable();
                ids.dedup();
                Some(ids)
            }
        };
        Ok(Permissions {
            role: self.role.unwrap_or(current.role),
            apps,
        })
    }
}

/// Answers `PATCH /clients/{segment}` (the path segment still percent-encoded) with `body`.
pub async fn patch_client(
    host: &Host,
    segment: &str,
    body: hyper::body::Incoming,
) -> (StatusCode, Value) {
    let bad = |message: String| (StatusCode::BAD_REQUEST, json!({ "error": message }));
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let change = match ClientChange::parse(&body) {
        Ok(change) => change,
        Err(message) => return bad(message),
    };
    let name_or_id = decode_segment(segment);
    let current = {
        let clients = host
            .clients
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match find_client(&clients, &name_or_id) {
            Ok(id) => clients.by_id(&id).cloned(),
            Err(refusal) => return refusal,
        }
    };
    let Some(current) = current else {
        return gone();
    };
    let permissions = match change.apply(&current.permissions, &host.config().apps) {
        Ok(permissions) => permissions,
        Err(message) => return bad(message),
    };
    updated(host.set_permissions(&current.id, permissions))
}

async fn read_body(body: hyper::body::Incoming) -> Result<Bytes, (StatusCode, Value)> {
    let collect = Limited::new(body, MAX_BODY).collect();
    match tokio::time::timeout(BODY_TIMEOUT, collect).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(_)) => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({ "error": format!("the body is over {MAX_BODY} bytes") }),
        )),
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            json!({ "error": "the body was too slow to arrive" }),
        )),
    }
}

/// The client's name or ID prefix from its percent-encoded path segment (a name may hold
/// spaces). The query decoder does the decoding; `&`, `=` and `+` mean nothing special in a
/// path, so they are escaped first.
fn decode_segment(segment: &str) -> String {
    let escaped = segment
        .replace('&', "%26")
        .replace('=', "%3D")
        .replace('+', "%2B");
    Query::parse(&format!("c={escaped}"))
        .ok()
        .and_then(|query| query.get("c").map(str::to_owned))
        .unwrap_or_default()
}

fn gone() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({ "error": "the client was removed meanwhile" }),
    )
}

fn updated(result: Result<Option<PairedClient>, crate::state::StateError>) -> (StatusCode, Value) {
    match result {
        Ok(Some(client)) => (StatusCode::OK, json!({ "updated": client_json(&client) })),
        Ok(None) => gone(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": error.to_string() }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn catalogue() -> Vec<AppConfig> {
        Config::from_toml(
            "[[apps]]\ntitle = \"Desktop\"\n[[apps]]\ntitle = \"Steam\"\n",
            "test",
            None,
        )
        .unwrap()
        .apps
    }

    #[test]
    fn absent_null_and_listed_apps_are_told_apart() {
        let apps = catalogue();
        let (desktop, steam) = (apps[0].id(), apps[1].id());
        let limited = Permissions {
            role: Role::Player,
            apps: Some(vec![steam]),
        };

        let role_only = ClientChange::parse(br#"{"role": "spectator"}"#).unwrap();
        assert_eq!(role_only.apps, None);
        assert_eq!(
            role_only.apply(&limited, &apps).unwrap(),
            Permissions {
                role: Role::Spectator,
                apps: Some(vec![steam])
            }
        );

        let every_app = ClientChange::parse(br#"{"apps": null}"#).unwrap();
        assert_eq!(every_app.apps, Some(None));
        assert_eq!(
            every_app.apply(&limited, &apps).unwrap(),
            Permissions::all_apps(Role::Player)
        );

        let body = format!(r#"{{"role": "admin", "apps": [{steam}, {desktop}, {steam}]}}"#);
        let both = ClientChange::parse(body.as_bytes()).unwrap();
        let mut sorted = vec![desktop, steam];
        sorted.sort_unstable();
        assert_eq!(
            both.apply(&limited, &apps).unwrap(),
            Permissions {
                role: Role::Admin,
                apps: Some(sorted)
            }
        );
    }

    #[test]
    fn bad_bodies_are_refused_with_what_is_wrong() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "the body must be"),
            (br#"{}"#, "nothing to change"),
            (br#"{"role": "plyer"}"#, "unknown variant `plyer`"),
            (
                br#"{"role": "player", "colour": 1}"#,
                "unknown field `colour`",
            ),
            (br#"{"apps": "all"}"#, "invalid type"),
            (br#"{"apps": [-1]}"#, "invalid value"),
        ];
        for (body, expected) in cases {
            let error = ClientChange::parse(body).unwrap_err();
            assert!(error.contains(expected), "{body:?}: {error}");
        }
        let too_many = format!(r#"{{"apps": [{}]}}"#, vec!["1"; MAX_APPS + 1].join(","));
        let error = ClientChange::parse(too_many.as_bytes()).unwrap_err();
        assert!(error.contains("at most 1024"), "{error}");
    }

    #[test]
    fn an_unknown_app_id_is_refused_with_the_apps_there_are() {
        let apps = catalogue();
        let change = ClientChange::parse(br#"{"apps": [7]}"#).unwrap();
        let error = change.apply(&Permissions::default(), &apps).unwrap_err();
        assert!(error.contains("no app with ID 7"), "{error}");
        assert!(
            error.contains(&format!("{} (Desktop)", apps[0].id())),
            "{error}"
        );
    }

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(decode_segment("Living%20room"), "Living room");
        assert_eq!(decode_segment("a&b=c+d"), "a&b=c+d");
        assert_eq!(decode_segment("0123abcd"), "0123abcd");
    }
}
