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
    write!(stream, "{method} {path_and_query} HTTP/1.1\r\nHost: hati\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
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
