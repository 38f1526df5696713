//! The RTSP handshake on TCP 48010: `docs/PROTOCOL.md` §2.1 (framing quirks), §2.2 (requests),
//! §2.3 (responses), §2.5 (SETUP targets) and §2.8 (encrypted RTSP).
//!
//! [`RtspRequest::parse`] reads one request from the bytes received so far and says whether more
//! are needed ([`Parsed::Incomplete`]); [`RtspResponse::encode`] writes a reply in the exact form
//! moonlight-common-c's parser accepts. [`RtspCipher`] seals and opens `rtspenc://` frames. The
//! SDP bodies are handled in [`crate::sdp`].

use core::fmt;

use aes_gcm::aead::{AeadInOut, Key, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use thiserror::Error;

use crate::codec::{Reader, Writer};
use crate::control::crate_iv;

/// Longest request or status line, or header line, accepted (bytes, without the line end).
pub const MAX_LINE_LEN: usize = 2048;

/// Longest head (request line plus headers plus the blank line) accepted, in bytes.
pub const MAX_HEAD_LEN: usize = 8192;

/// Most header lines accepted in one message.
pub const MAX_HEADERS: usize = 32;

/// Largest `Content-length` accepted. The ANNOUNCE SDP is about 2 KiB.
pub const MAX_BODY_LEN: usize = 32 * 1024;

/// The only protocol token the client sends and accepts.
pub const RTSP_VERSION: &str = "RTSP/1.0";

/// High bit of `typeAndLength` that marks an encrypted RTSP frame.
pub const ENCRYPTED_BIT: u32 = 0x8000_0000;

/// Bytes before the ciphertext of an encrypted frame: typeAndLength, sequence number, tag.
pub const SEALED_HEADER_LEN: usize = 24;

/// Largest plaintext accepted inside an encrypted frame.
pub const MAX_SEALED_PLAINTEXT_LEN: usize = MAX_HEAD_LEN + MAX_BODY_LEN;

/// Why an RTSP message or encrypted frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtspError {
    /// A line is longer than [`MAX_LINE_LEN`].
    #[error("RTSP line longer than {MAX_LINE_LEN} bytes")]
    LineTooLong,
    /// The head is longer than [`MAX_HEAD_LEN`] without its blank line.
    #[error("RTSP head longer than {MAX_HEAD_LEN} bytes")]
    HeadTooLong,
    /// More than [`MAX_HEADERS`] header lines.
    #[error("more than {MAX_HEADERS} RTSP headers")]
    TooManyHeaders,
    /// `Content-length` is larger than [`MAX_BODY_LEN`].
    #[error("RTSP body of {declared} bytes exceeds {MAX_BODY_LEN}")]
    BodyTooLarge {
        /// The declared length.
        declared: u64,
    },
    /// The request line is not `METHOD SP target SP version`.
    #[error("malformed RTSP request line")]
    MalformedRequestLine,
    /// The status line is not `version SP code SP reason`.
    #[error("malformed RTSP status line")]
    MalformedStatusLine,
    /// The protocol token is not exactly `RTSP/1.0`.
    #[error("RTSP version is not RTSP/1.0")]
    UnsupportedVersion,
    /// A header line has no `:`, or an empty or invalid name.
    #[error("malformed RTSP header line")]
    MalformedHeader,
    /// The head is not valid UTF-8.
    #[error("RTSP head is not valid UTF-8")]
    NotUtf8,
    /// `Content-length` is not a decimal number.
    #[error("invalid RTSP Content-length")]
    InvalidContentLength,
    /// A header that must appear at most once appeared twice.
    #[error("duplicate RTSP header {name}")]
    DuplicateHeader {
        /// The header.
        name: &'static str,
    },
    /// The request has no `CSeq` header.
    #[error("RTSP request without CSeq")]
    MissingCSeq,
    /// `CSeq` is not a decimal u32.
    #[error("invalid RTSP CSeq")]
    InvalidCSeq,
    /// Bytes follow a complete message where none may (inside an encrypted frame).
    #[error("trailing bytes after RTSP message")]
    TrailingBytes,
    /// A buffer that must hold a whole message ends early: the plaintext of an encrypted frame,
    /// or a response read until the connection closed.
    #[error("RTSP message is truncated")]
    Truncated,
    /// A frame expected to be encrypted lacks the high bit of `typeAndLength`.
    #[error("RTSP frame is not encrypted")]
    NotSealed,
    /// An encrypted frame is larger than [`MAX_SEALED_PLAINTEXT_LEN`], or its length does not
    /// match the bytes given.
    #[error("encrypted RTSP frame length is invalid")]
    SealedLength,
    /// The AES-GCM tag did not verify.
    #[error("encrypted RTSP frame failed to decrypt")]
    Decrypt,
}

impl RtspError {
    /// The status to answer with, decided in one place. Every cause is the client's fault.
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

/// An RTSP method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `OPTIONS`.
    Options,
    /// `DESCRIBE`.
    Describe,
    /// `SETUP`.
    Setup,
    /// `ANNOUNCE`.
    Announce,
    /// `PLAY`.
    Play,
    /// `TEARDOWN`.
    Teardown,
    /// Anything else; answer 404 NOT FOUND as Sunshine does.
    Other(String),
}

impl Method {
    fn from_token(token: &str) -> Self {
        match token {
            "OPTIONS" => Self::Options,
            "DESCRIBE" => Self::Describe,
            "SETUP" => Self::Setup,
            "ANNOUNCE" => Self::Announce,
            "PLAY" => Self::Play,
            "TEARDOWN" => Self::Teardown,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Options => "OPTIONS",
            Self::Describe => "DESCRIBE",
            Self::Setup => "SETUP",
            Self::Announce => "ANNOUNCE",
            Self::Play => "PLAY",
            Self::Teardown => "TEARDOWN",
            Self::Other(s) => s,
        }
    }
}

/// Which stream a SETUP is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `streamid=audio/0/0`.
    Audio,
    /// `streamid=video/0/0`.
    Video,
    /// `streamid=control/13/0`.
    Control,
}

impl StreamKind {
    /// Picks the stream from a SETUP target the way Sunshine does: the text between the first
    /// `=` and the next `/`.
    pub fn from_target(target: &str) -> Option<Self> {
        let (_, rest) = target.split_once('=')?;
        let kind = rest.split('/').next()?;
        match kind {
            "audio" => Some(Self::Audio),
            "video" => Some(Self::Video),
            "control" => Some(Self::Control),
            _ => None,
        }
    }
}

/// One header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Name as sent (compare with [`str::eq_ignore_ascii_case`]).
    pub name: String,
    /// Value, with surrounding spaces and tabs removed.
    pub value: String,
}

/// A parsed RTSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspRequest {
    /// The method.
    pub method: Method,
    /// The target, opaque: `rtsp://0.0.0.0:48010`, `streamid=audio/0/0`, `/`.
    pub target: String,
    /// The `CSeq` header.
    pub cseq: u32,
    /// Every header in order, `CSeq` and `Content-length` included.
    pub headers: Vec<Header>,
    /// The body: `Content-length` bytes after the blank line.
    pub body: Vec<u8>,
}

/// The outcome of [`RtspRequest::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole request yet: read more bytes and parse again.
    Incomplete,
    /// A whole request.
    Complete {
        /// The request.
        request: RtspRequest,
        /// Bytes of the input it used; the rest belongs to whatever follows.
        consumed: usize,
    },
}

/// A parsed head: start line, headers, and where the body starts.
struct Head<'a> {
    start: &'a str,
    headers: Vec<Header>,
    body_start: usize,
}

/// Reads lines up to the blank line. `Ok(None)` means the head is not complete yet.
fn parse_head(buf: &[u8]) -> Result<Option<Head<'_>>, RtspError> {
    let mut pos = 0usize;
    let mut start: Option<&str> = None;
    let mut headers = Vec::new();
    loop {
        let rest = buf.get(pos..).unwrap_or_default();
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > MAX_LINE_LEN {
                return Err(RtspError::LineTooLong);
            }
            if buf.len() > MAX_HEAD_LEN {
                return Err(RtspError::HeadTooLong);
            }
            return Ok(None);
        };
        let raw = rest.get(..nl).unwrap_or_default();
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.len() > MAX_LINE_LEN {
            return Err(RtspError::LineTooLong);
        }
        pos = pos.saturating_add(nl).saturating_add(1);
        if pos > MAX_HEAD_LEN {
            return Err(RtspError::HeadTooLong);
        }
        let line = core::str::from_utf8(line).map_err(|_| RtspError::NotUtf8)?;
        match start {
            None => start = Some(line),
            Some(start) if line.is_empty() => {
                return Ok(Some(Head {
                    start,
                    headers,
                    body_start: pos,
                }));
            }
            Some(_) => {
                if headers.len() == MAX_HEADERS {
                    return Err(RtspError::TooManyHeaders);
                }
                headers.push(parse_header(line)?);
            }
        }
    }
}

fn parse_header(line: &str) -> Result<Header, RtspError> {
    let (name, value) = line.split_once(':').ok_or(RtspError::MalformedHeader)?;
    let name = name.trim_end_matches([' ', '\t']);
    let valid_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    let value = value.trim_matches([' ', '\t']);
    if !valid_name || value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(RtspError::MalformedHeader);
    }
    Ok(Header {
        name: name.to_owned(),
        value: value.to_owned(),
    })
}

/// Finds the single value of a header that must not repeat.
fn unique_header<'h>(
    headers: &'h [Header],
    name: &'static str,
) -> Result<Option<&'h str>, RtspError> {
    let mut found = headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name));
    let first = found.next();
    if found.next().is_some() {
        return Err(RtspError::DuplicateHeader { name });
    }
    Ok(first.map(|h| h.value.as_str()))
}

/// Parses an unsigned decimal with only ASCII digits (no sign, no spaces).
fn decimal<T: core::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn content_length(headers: &[Header]) -> Result<usize, RtspError> {
    let Some(value) = unique_header(headers, "Content-length")? else {
        return Ok(0);
    };
    let declared: u64 = decimal(value).ok_or(RtspError::InvalidContentLength)?;
    match usize::try_from(declared) {
        Ok(len) if len <= MAX_BODY_LEN => Ok(len),
        _ => Err(RtspError::BodyTooLarge { declared }),
    }
}

fn find_header<'h>(headers: &'h [Header], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    // Names and values come from this host, never straight from a peer, but a stray line break
    // would still split the message; drop CR and LF rather than emit them.
    let clean = |s: &str| {
        s.bytes()
            .filter(|b| *b != b'\r' && *b != b'\n')
            .collect::<Vec<_>>()
    };
    out.extend_from_slice(&clean(name));
    out.extend_from_slice(b": ");
    out.extend_from_slice(&clean(value));
    out.extend_from_slice(b"\r\n");
}

impl RtspRequest {
    /// Builds a request with `CSeq` as its first header (client side; used by tests).
    pub fn new(method: Method, target: impl Into<String>, cseq: u32) -> Self {
        Self {
            method,
            target: target.into(),
            cseq,
            headers: vec![Header {
                name: "CSeq".to_owned(),
                value: cseq.to_string(),
            }],
            body: Vec::new(),
        }
    }

    /// Parses one request from the start of `buf`.
    ///
    /// Header names are matched case-insensitively (the client sends `Content-length`). Lines may
    /// end in CRLF or LF. The body is exactly `Content-length` bytes; bytes after it are left
    /// unconsumed.
    pub fn parse(buf: &[u8]) -> Result<Parsed, RtspError> {
        let Some(head) = parse_head(buf)? else {
            return Ok(Parsed::Incomplete);
        };
        let mut parts = head.start.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(RtspError::MalformedRequestLine);
        };
        if method.is_empty() || target.is_empty() {
            return Err(RtspError::MalformedRequestLine);
        }
        if version != RTSP_VERSION {
            return Err(RtspError::UnsupportedVersion);
        }
        let cseq = unique_header(&head.headers, "CSeq")?.ok_or(RtspError::MissingCSeq)?;
        let cseq = decimal(cseq).ok_or(RtspError::InvalidCSeq)?;
        let body_len = content_length(&head.headers)?;
        let Some(end) = head.body_start.checked_add(body_len) else {
            return Err(RtspError::BodyTooLarge {
                declared: body_len as u64,
            });
        };
        let Some(body) = buf.get(head.body_start..end) else {
            return Ok(Parsed::Incomplete);
        };
        Ok(Parsed::Complete {
            request: Self {
                method: Method::from_token(method),
                target: target.to_owned(),
                cseq,
                headers: head.headers,
                body: body.to_vec(),
            },
            consumed: end,
        })
    }

    /// Parses a buffer that must hold exactly one whole request, as inside an encrypted frame.
    pub fn parse_exact(buf: &[u8]) -> Result<Self, RtspError> {
        match Self::parse(buf)? {
            Parsed::Incomplete => Err(RtspError::Truncated),
            Parsed::Complete { request, consumed } if consumed == buf.len() => Ok(request),
            Parsed::Complete { .. } => Err(RtspError::TrailingBytes),
        }
    }

    /// The first header called `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// For SETUP: which stream the target names.
    pub fn stream_kind(&self) -> Option<StreamKind> {
        StreamKind::from_target(&self.target)
    }

    /// The `Session` header up to its first `;`.
    pub fn session(&self) -> Option<&str> {
        self.header("Session")
            .map(|s| s.split(';').next().unwrap_or(s).trim())
    }

    /// Sunshine's stereo-quality rule (§2.2): a `Host` header without `0.0.0.0` asks for high
    /// quality stereo. `None` if there is no `Host` header.
    pub fn host_requests_high_quality_audio(&self) -> Option<bool> {
        self.header("Host").map(|h| !h.contains("0.0.0.0"))
    }

    /// Appends a header.
    pub fn with_header(mut self, name: &str, value: impl fmt::Display) -> Self {
        self.headers.push(Header {
            name: name.to_owned(),
            value: value.to_string(),
        });
        self
    }

    /// Sets the body and appends `Content-length` for it, as the client does for ANNOUNCE.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        let len = self.body.len();
        self.with_header("Content-length", len)
    }

    /// Serialises the request as the client does (headers in order, CRLF, then the body).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.push(b' ');
        out.extend_from_slice(RTSP_VERSION.as_bytes());
        out.extend_from_slice(b"\r\n");
        for h in &self.headers {
            write_header(&mut out, &h.name, &h.value);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The identifier a SETUP reply hands the client (§2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupIdentifier<'a> {
    /// Audio and video: `X-SS-Ping-Payload`. The client uses it only if it is exactly 16 ASCII
    /// characters (Sunshine sends 8 random bytes in hex).
    PingPayload(&'a str),
    /// Control: `X-SS-Connect-Data`, which the client puts in the ENet CONNECT `data` field.
    ConnectData(u32),
    /// Neither (legacy pings and IP matching).
    None,
}

/// An RTSP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// 200 OK: the only status the client accepts during the handshake.
    pub const OK: Self = Self(200);
    /// 400 BAD REQUEST: unparseable request or ANNOUNCE.
    pub const BAD_REQUEST: Self = Self(400);
    /// 401 Unauthorized.
    pub const UNAUTHORIZED: Self = Self(401);
    /// 403 Forbidden.
    pub const FORBIDDEN: Self = Self(403);
    /// 404 NOT FOUND: unknown method or SETUP target.
    pub const NOT_FOUND: Self = Self(404);
    /// 454 Session Not Found.
    pub const SESSION_NOT_FOUND: Self = Self(454);
    /// 500 Internal Server Error.
    pub const INTERNAL_SERVER_ERROR: Self = Self(500);
    /// 501 Not Implemented.
    pub const NOT_IMPLEMENTED: Self = Self(501);
    /// 503 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self(503);

    /// The reason phrase written after the code (Sunshine's spelling where it has one).
    pub fn reason(self) -> &'static str {
        match self.0 {
            200 => "OK",
            400 => "BAD REQUEST",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NOT FOUND",
            454 => "Session Not Found",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            _ => "Unknown",
        }
    }
}

/// An RTSP response in the form the client's parser needs (§2.1, §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspResponse {
    /// Status code.
    pub status: StatusCode,
    /// Echo of the request's `CSeq`; always written as the first header.
    pub cseq: u32,
    /// Further headers, in order (`Session`, `Transport`, `X-SS-Ping-Payload`, ...).
    pub headers: Vec<Header>,
    /// Body; DESCRIBE must have one.
    pub body: Vec<u8>,
}

impl RtspResponse {
    /// A reply with `status`.
    pub fn new(status: StatusCode, cseq: u32) -> Self {
        Self {
            status,
            cseq,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `200 OK` reply.
    pub fn ok(cseq: u32) -> Self {
        Self::new(StatusCode::OK, cseq)
    }

    /// A SETUP reply (§2.5): `Session: <id>;timeout = 90`, `Transport: server_port=<port>`, and
    /// the identifier the client echoes later.
    pub fn setup(cseq: u32, session_id: &str, server_port: u16, id: SetupIdentifier<'_>) -> Self {
        let reply = Self::ok(cseq)
            .with_header("Session", format_args!("{session_id};timeout = 90"))
            .with_header("Transport", format_args!("server_port={server_port}"));
        match id {
            SetupIdentifier::PingPayload(payload) => {
                reply.with_header("X-SS-Ping-Payload", payload)
            }
            // Plain decimal: the client reads it with strtoul(.., 0), where a leading 0 is octal.
            SetupIdentifier::ConnectData(data) => reply.with_header("X-SS-Connect-Data", data),
            SetupIdentifier::None => reply,
        }
    }

    /// The reply for a request that failed to parse (`CSeq: 0` when it was not readable).
    pub fn for_error(error: &RtspError, cseq: u32) -> Self {
        Self::new(error.status(), cseq)
    }

    /// Appends a header. CR and LF are dropped from the name and value when encoding.
    pub fn with_header(mut self, name: &str, value: impl fmt::Display) -> Self {
        self.headers.push(Header {
            name: name.to_owned(),
            value: value.to_string(),
        });
        self
    }

    /// Sets the body. No `Content-Length` is added: the client reads until the host closes.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Serialises: status line, `CSeq`, headers with exactly one space after `:`, CRLF line
    /// ends, a blank line, then the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        out.extend_from_slice(
            format!(
                "{RTSP_VERSION} {} {}\r\n",
                self.status.0,
                self.status.reason()
            )
            .as_bytes(),
        );
        write_header(&mut out, "CSeq", &self.cseq.to_string());
        for h in &self.headers {
            write_header(&mut out, &h.name, &h.value);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// Parses a whole response the way the client reads it (body = everything after the blank
    /// line). For tests and fuzzing; the host never receives responses.
    pub fn parse(buf: &[u8]) -> Result<Self, RtspError> {
        let head = parse_head(buf)?.ok_or(RtspError::Truncated)?;
        let mut parts = head.start.splitn(3, ' ');
        let (Some(version), Some(code), Some(_reason)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(RtspError::MalformedStatusLine);
        };
        if version != RTSP_VERSION {
            return Err(RtspError::UnsupportedVersion);
        }
        let code = decimal::<u16>(code).ok_or(RtspError::MalformedStatusLine)?;
        let cseq = unique_header(&head.headers, "CSeq")?.ok_or(RtspError::MissingCSeq)?;
        let cseq = decimal(cseq).ok_or(RtspError::InvalidCSeq)?;
        let headers = head
            .headers
            .into_iter()
            .filter(|h| !h.name.eq_ignore_ascii_case("CSeq"))
            .collect();
        Ok(Self {
            status: StatusCode(code),
            cseq,
            headers,
            body: buf.get(head.body_start..).unwrap_or_default().to_vec(),
        })
    }

    /// The first header called `name`, compared case-insensitively (`CSeq` is not in the list).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Whether a buffer starts an encrypted frame (high bit of its first byte). Plaintext requests
/// start with an ASCII method name. `None` for an empty buffer.
pub fn is_sealed(buf: &[u8]) -> Option<bool> {
    buf.first().map(|b| b & 0x80 != 0)
}

/// AES-128-GCM keyed with rikey, for `rtspenc://` (§2.8).
#[derive(Clone)]
pub struct RtspCipher {
    aead: Aes128Gcm,
}

impl fmt::Debug for RtspCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("RtspCipher").finish_non_exhaustive()
    }
}

/// An opened encrypted frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsealed {
    /// The frame's sequence number (client frames count from 1).
    pub seq: u32,
    /// The decrypted RTSP message.
    pub plaintext: Vec<u8>,
}

impl RtspCipher {
    /// Keys the cipher with rikey.
    pub fn new(key: &[u8; 16]) -> Self {
        Self {
            aead: Aes128Gcm::new(&Key::<Aes128Gcm>::from(*key)),
        }
    }

    /// Total length of the encrypted frame that starts `buf`, once its first 4 bytes are in.
    /// `Ok(None)` means fewer than 4 bytes have arrived.
    pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, RtspError> {
        let Some(type_and_length) = Reader::new(buf).be_u32() else {
            return Ok(None);
        };
        if type_and_length & ENCRYPTED_BIT == 0 {
            return Err(RtspError::NotSealed);
        }
        let len = usize::try_from(type_and_length & !ENCRYPTED_BIT)
            .map_err(|_| RtspError::SealedLength)?;
        if len > MAX_SEALED_PLAINTEXT_LEN {
            return Err(RtspError::SealedLength);
        }
        Ok(Some(SEALED_HEADER_LEN + len))
    }

    fn seal(&self, origin: u8, seq: u32, plaintext: &[u8]) -> Result<Vec<u8>, RtspError> {
        if plaintext.len() > MAX_SEALED_PLAINTEXT_LEN {
            return Err(RtspError::SealedLength);
        }
        let len = u32::try_from(plaintext.len()).map_err(|_| RtspError::SealedLength)?;
        let mut body = plaintext.to_vec();
        let nonce = Nonce::from(crate_iv(seq, origin, b'R'));
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce, &[], body.as_mut_slice().into())
            .map_err(|_| RtspError::SealedLength)?;
        let mut w = Writer::default();
        w.be_u32(ENCRYPTED_BIT | len);
        w.be_u32(seq);
        w.bytes(&tag);
        w.bytes(&body);
        Ok(w.into_inner())
    }

    fn open(&self, origin: u8, frame: &[u8]) -> Result<Unsealed, RtspError> {
        let total = Self::frame_len(frame)?.ok_or(RtspError::SealedLength)?;
        if total != frame.len() {
            return Err(RtspError::SealedLength);
        }
        let mut r = Reader::new(frame);
        let (Some(_), Some(seq), Some(tag)) = (r.be_u32(), r.be_u32(), r.array::<16>()) else {
            return Err(RtspError::SealedLength);
        };
        let mut plaintext = r.rest().to_vec();
        let nonce = Nonce::from(crate_iv(seq, origin, b'R'));
        self.aead
            .decrypt_inout_detached(
                &nonce,
                &[],
                plaintext.as_mut_slice().into(),
                &Tag::from(tag),
            )
            .map_err(|_| RtspError::Decrypt)?;
        Ok(Unsealed { seq, plaintext })
    }

    /// Encrypts a serialised response (IV origin `'H'`); `seq` is the host's counter from 1.
    pub fn seal_response(&self, seq: u32, response: &[u8]) -> Result<Vec<u8>, RtspError> {
        self.seal(b'H', seq, response)
    }

    /// Decrypts exactly one client frame (IV origin `'C'`). Rejects trailing bytes.
    pub fn open_request(&self, frame: &[u8]) -> Result<Unsealed, RtspError> {
        self.open(b'C', frame)
    }

    /// Encrypts a serialised request as the client does; for tests and fuzzing.
    pub fn seal_request(&self, seq: u32, request: &[u8]) -> Result<Vec<u8>, RtspError> {
        self.seal(b'C', seq, request)
    }

    /// Decrypts a host frame as the client does; for tests and fuzzing.
    pub fn open_response(&self, frame: &[u8]) -> Result<Unsealed, RtspError> {
        self.open(b'H', frame)
    }

    /// Reads one encrypted request from the bytes received so far: `Incomplete` until the whole
    /// frame is in, then the decrypted request, which must fill the frame exactly.
    pub fn parse_request(&self, buf: &[u8]) -> Result<Parsed, RtspError> {
        let Some(total) = Self::frame_len(buf)? else {
            return Ok(Parsed::Incomplete);
        };
        let Some(frame) = buf.get(..total) else {
            return Ok(Parsed::Incomplete);
        };
        let opened = self.open_request(frame)?;
        Ok(Parsed::Complete {
            request: RtspRequest::parse_exact(&opened.plaintext)?,
            consumed: total,
        })
    }
}

/// Entry points for the fuzz targets in `fuzz/`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{Parsed, RtspCipher, RtspRequest, RtspResponse};

    /// Parses a request; a complete one must re-encode to bytes that parse to the same request.
    pub fn request(data: &[u8]) {
        if let Ok(Parsed::Complete { request, consumed }) = RtspRequest::parse(data) {
            assert!(consumed <= data.len());
            let encoded = request.encode();
            let again = RtspRequest::parse(&encoded);
            assert_eq!(
                again,
                Ok(Parsed::Complete {
                    request,
                    consumed: encoded.len()
                })
            );
        }
    }

    /// Parses a response as the client would, and checks the encode round trip.
    pub fn response(data: &[u8]) {
        if let Ok(response) = RtspResponse::parse(data) {
            assert_eq!(RtspResponse::parse(&response.encode()), Ok(response));
        }
    }

    /// Feeds the bytes to the encrypted-frame reader, then seals them as a client frame and
    /// checks that opening it gives the same result as parsing them in the clear.
    pub fn sealed_request(data: &[u8]) {
        let cipher = RtspCipher::new(&[0x42; 16]);
        let _ = cipher.parse_request(data);
        if let Ok(frame) = cipher.seal_request(1, data) {
            let opened = cipher.open_request(&frame).map(|u| u.plaintext);
            assert_eq!(opened.as_deref(), Ok(data));
            let clear = RtspRequest::parse_exact(data);
            match cipher.parse_request(&frame) {
                Ok(Parsed::Complete { request, .. }) => assert_eq!(clear, Ok(request)),
                Ok(Parsed::Incomplete) => panic!("a whole frame is never incomplete"),
                Err(e) => assert_eq!(clear, Err(e)),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
