//! The CLI's side of the unix socket: one blocking request, and query encoding.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

use super::PAIR_OUTCOME_TIMEOUT;

/// Why the CLI could not talk to the running host.
#[derive(Debug, Error)]
pub enum AdminClientError {
    /// No host is listening on the socket.
    #[error(
        "no running hati found (no admin socket at {0}); start it with `hati serve`, with the same --state-dir"
    )]
    NotRunning(PathBuf),
    /// The socket exists but the exchange failed.
    #[error("talking to hati at {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The answer was not what the admin API sends.
    #[error("unexpected answer from hati: {0}")]
    BadAnswer(String),
}

/// Sends one request to the admin socket and returns the HTTP status and JSON body.
pub fn request(
    socket: &Path,
    method: &str,
    path_and_query: &str,
) -> Result<(u16, Value), AdminClientError> {
    exchange(socket, method, path_and_query, None)
}

/// [`request`] with a JSON body (`PATCH /clients/…`).
pub fn request_json(
    socket: &Path,
    method: &str,
    path_and_query: &str,
    body: &Value,
) -> Result<(u16, Value), AdminClientError> {
    exchange(socket, method, path_and_query, Some(body))
}

fn exchange(
    socket: &Path,
    method: &str,
    path_and_query: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), AdminClientError> {
    let io = |source| AdminClientError::Io {
        path: socket.to_owned(),
        source,
    };
    let mut stream = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(AdminClientError::NotRunning(socket.to_owned()));
        }
        Err(e) => return Err(io(e)),
    };
    stream
        .set_read_timeout(Some(PAIR_OUTCOME_TIMEOUT + Duration::from_secs(10)))
        .map_err(io)?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    write!(stream, "{method} {path_and_query} HTTP/1.1\r\nHost: hati\r\nConnection: close\r\n{content_type}Content-Length: {}\r\n\r\n{body}", body.len())
        .map_err(io)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(io)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| AdminClientError::BadAnswer(answer.to_string()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| AdminClientError::BadAnswer(head.to_owned()))?;
    let body =
        serde_json::from_str(body).map_err(|_| AdminClientError::BadAnswer(body.to_owned()))?;
    Ok((status, body))
}

/// Percent-encodes a query value.
pub fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A client's role and apps in words, from its admin API JSON and the host's apps (`GET
/// /apps`, for titles; an empty list shows bare IDs): `player, apps: Steam (123)`.
pub fn describe_permissions(client: &Value, catalogue: &[Value]) -> String {
    let role = client
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("admin");
    let apps = match client.get("apps").and_then(Value::as_array) {
        None => "all apps".to_owned(),
        Some(ids) if ids.is_empty() => "no apps".to_owned(),
        Some(ids) => {
            let named: Vec<String> = ids
                .iter()
                .map(|id| {
                    let title = catalogue
                        .iter()
                        .find(|app| app.get("id") == Some(id))
                        .and_then(|app| app.get("title"))
                        .and_then(Value::as_str);
                    match title {
                        Some(title) => format!("{title} ({id})"),
                        None => id.to_string(),
                    }
                })
                .collect();
            format!("apps: {}", named.join(", "))
        }
    };
    format!("{role}, {apps}")
}

/// The app IDs for `wanted` (IDs, or titles as the host's apps have them, any case), checked
/// against `catalogue` (`GET /apps`); the error names what is unknown and the apps there are.
pub fn resolve_apps(wanted: &[String], catalogue: &[Value]) -> Result<Vec<u32>, String> {
    let apps: Vec<(u32, &str)> = catalogue
        .iter()
        .filter_map(|app| {
            let id = u32::try_from(app.get("id")?.as_u64()?).ok()?;
            Some((id, app.get("title")?.as_str()?))
        })
        .collect();
    wanted
        .iter()
        .map(|word| {
            let word = word.trim();
            apps.iter()
                .find(|(id, title)| word.parse() == Ok(*id) || title.eq_ignore_ascii_case(word))
                .map(|(id, _)| *id)
                .ok_or_else(|| {
                    let known: Vec<String> = apps
                        .iter()
                        .map(|(id, title)| format!("{id} ({title})"))
                        .collect();
                    format!(
                        "no app `{word}` on the host; its apps are: {}",
                        known.join(", ")
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn catalogue() -> Vec<Value> {
        vec![
            json!({ "id": 11, "title": "Desktop" }),
            json!({ "id": 22, "title": "Steam" }),
        ]
    }

    #[test]
    fn permissions_are_described_with_titles_where_known() {
        let apps = catalogue();
        let all = json!({ "role": "admin", "apps": null });
        assert_eq!(describe_permissions(&all, &apps), "admin, all apps");
        let some = json!({ "role": "player", "apps": [22, 99] });
        assert_eq!(
            describe_permissions(&some, &apps),
            "player, apps: Steam (22), 99"
        );
        let none = json!({ "role": "spectator", "apps": [] });
        assert_eq!(describe_permissions(&none, &[]), "spectator, no apps");
        // A listing from an older host without the fields.
        assert_eq!(describe_permissions(&json!({}), &apps), "admin, all apps");
    }

    #[test]
    fn apps_are_resolved_by_id_or_title() {
        let apps = catalogue();
        let wanted = ["22".to_owned(), "desktop".to_owned()];
        assert_eq!(resolve_apps(&wanted, &apps), Ok(vec![22, 11]));
        let error = resolve_apps(&["Chess".to_owned()], &apps).unwrap_err();
        assert!(
            error.contains("`Chess`") && error.contains("22 (Steam)"),
            "{error}"
        );
        assert!(resolve_apps(&["33".to_owned()], &apps).is_err());
    }
}
