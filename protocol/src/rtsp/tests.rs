//! Tests for RTSP requests, responses and encrypted frames (docs/PROTOCOL.md §2.1–2.3, §2.5, §2.8):
//! known answers, round trips, one test per error variant, and a mutation robustness run of the
//! module's fuzzing entry point.

use super::*;
use crate::sdp::tests::ANNOUNCE_720P60_H264;

const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const IMS: &str = "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The seven requests moonlight-common-c sends to a `7.1.431.-1` host at 192.168.1.2 over TCP
/// (§2.2), byte for byte as `serializeRtspMessage` writes them.
pub(crate) fn handshake() -> Vec<Vec<u8>> {
    let common = |n: u32| format!("CSeq: {n}\r\nX-GS-ClientVersion: 14\r\nHost: 192.168.1.2\r\n");
    let setup = |n: u32, stream: &str, session: bool| {
        format!(
            "SETUP streamid={stream} RTSP/1.0\r\n{}{}Transport: unicast;X-GS-ClientPort=50000-50001\r\n{IMS}\r\n",
            common(n),
            if session {
                "Session: DEADBEEFCAFE\r\n"
            } else {
                ""
            }
        )
    };
    vec![
        format!("OPTIONS rtsp://192.168.1.2:48010 RTSP/1.0\r\n{}\r\n", common(1)),
        format!(
            "DESCRIBE rtsp://192.168.1.2:48010 RTSP/1.0\r\n{}Accept: application/sdp\r\n{IMS}\r\n",
            common(2)
        ),
        setup(3, "audio/0/0", false),
        setup(4, "video/0/0", true),
        setup(5, "control/13/0", true),
        format!(
            "ANNOUNCE streamid=control/13/0 RTSP/1.0\r\n{}Session: DEADBEEFCAFE\r\nContent-type: application/sdp\r\nContent-length: {}\r\n\r\n{ANNOUNCE_720P60_H264}",
            common(6),
            ANNOUNCE_720P60_H264.len()
        ),
        format!("PLAY / RTSP/1.0\r\n{}Session: DEADBEEFCAFE\r\n\r\n", common(7)),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

fn complete(buf: &[u8]) -> RtspRequest {
    match RtspRequest::parse(buf) {
        Ok(Parsed::Complete { request, consumed }) => {
            assert_eq!(consumed, buf.len());
            request
        }
        other => panic!("expected a complete request, got {other:?}"),
    }
}

#[test]
fn known_answer_handshake_requests() {
    let reqs: Vec<_> = handshake().iter().map(|r| complete(r)).collect();
    let methods: Vec<_> = reqs.iter().map(|r| r.method.clone()).collect();
    assert_eq!(
        methods,
        [
            Method::Options,
            Method::Describe,
            Method::Setup,
            Method::Setup,
            Method::Setup,
            Method::Announce,
            Method::Play
        ]
    );
    let cseqs: Vec<_> = reqs.iter().map(|r| r.cseq).collect();
    assert_eq!(cseqs, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(reqs[0].target, "rtsp://192.168.1.2:48010");
    assert_eq!(reqs[1].header("accept"), Some("application/sdp"));
    let kinds: Vec<_> = reqs[2..5].iter().map(RtspRequest::stream_kind).collect();
    assert_eq!(
        kinds,
        [
            Some(StreamKind::Audio),
            Some(StreamKind::Video),
            Some(StreamKind::Control)
        ]
    );
    assert_eq!(reqs[2].session(), None);
    assert_eq!(reqs[3].session(), Some("DEADBEEFCAFE"));
    assert_eq!(
        reqs[2].header("Transport"),
        Some("unicast;X-GS-ClientPort=50000-50001")
    );
    assert_eq!(reqs[5].body, ANNOUNCE_720P60_H264.as_bytes());
    assert_eq!(reqs[5].host_requests_high_quality_audio(), Some(true));
    assert!(crate::sdp::StreamConfig::parse(&reqs[5].body).is_ok());
    assert_eq!(reqs[6].target, "/");
    assert_eq!(reqs[6].stream_kind(), None);
}

#[test]
fn requests_round_trip_byte_exact() {
    for raw in handshake() {
        assert_eq!(complete(&raw).encode(), raw);
    }
}

#[test]
fn every_prefix_is_incomplete() {
    for raw in handshake() {
        for len in 0..raw.len() {
            assert_eq!(
                RtspRequest::parse(&raw[..len]),
                Ok(Parsed::Incomplete),
                "{len} of {}",
                raw.len()
            );
        }
    }
}

#[test]
fn body_split_across_reads() {
    let raw = &handshake()[5];
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(RtspRequest::parse(&raw[..head_end]), Ok(Parsed::Incomplete));
    assert_eq!(
        RtspRequest::parse(&raw[..head_end + 100]),
        Ok(Parsed::Incomplete)
    );
}

#[test]
fn following_bytes_are_left_unconsumed() {
    let mut buf = handshake()[5].clone();
    let first = buf.len();
    buf.extend_from_slice(&handshake()[6]);
    let Ok(Parsed::Complete { request, consumed }) = RtspRequest::parse(&buf) else {
        panic!();
    };
    assert_eq!(consumed, first);
    assert_eq!(request.method, Method::Announce);
    assert_eq!(complete(&buf[consumed..]).method, Method::Play);
}

#[test]
fn lenient_forms() {
    // Header names in any case, LF-only lines, no space or extra spaces after the colon.
    let raw = b"TEARDOWN / RTSP/1.0\ncseq:9\nCONTENT-LENGTH:   2  \nhost: 0.0.0.0\n\nhi";
    let r = complete(raw);
    assert_eq!(r.method, Method::Teardown);
    assert_eq!((r.cseq, r.body.as_slice()), (9, &b"hi"[..]));
    assert_eq!(r.host_requests_high_quality_audio(), Some(false));
    let r = complete(b"GET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    assert_eq!(r.method, Method::Other("GET_PARAMETER".into()));
}

#[test]
fn stream_kind_from_target() {
    for (target, kind) in [
        ("streamid=audio/0/0", Some(StreamKind::Audio)),
        ("streamid=video/0/0", Some(StreamKind::Video)),
        ("streamid=control/13/0", Some(StreamKind::Control)),
        ("streamid=control", Some(StreamKind::Control)),
        ("streamid=subtitles/0/0", None),
        ("streamid=", None),
        ("rtsp://0.0.0.0:48010", None),
        ("/", None),
    ] {
        assert_eq!(StreamKind::from_target(target), kind, "{target}");
    }
}

#[test]
fn known_answer_responses() {
    assert_eq!(
        RtspResponse::ok(1).encode(),
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"
    );
    assert_eq!(
        RtspResponse::ok(3)
            .with_header("Session", "DEADBEEFCAFE;timeout = 90")
            .with_header("Transport", "server_port=48000")
            .with_header("X-SS-Ping-Payload", "0123456789abcdef")
            .encode(),
        b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: DEADBEEFCAFE;timeout = 90\r\n\
Transport: server_port=48000\r\nX-SS-Ping-Payload: 0123456789abcdef\r\n\r\n"
    );
    assert_eq!(
        RtspResponse::ok(2).with_body("a=x:1\n").encode(),
        b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\na=x:1\n"
    );
    assert_eq!(
        RtspResponse::new(StatusCode::NOT_FOUND, 5).encode(),
        b"RTSP/1.0 404 NOT FOUND\r\nCSeq: 5\r\n\r\n"
    );
    assert_eq!(
        RtspResponse::for_error(&RtspError::MissingCSeq, 0).encode(),
        b"RTSP/1.0 400 BAD REQUEST\r\nCSeq: 0\r\n\r\n"
    );
    for (code, text) in [
        (StatusCode::SESSION_NOT_FOUND, "454 Session Not Found"),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error",
        ),
        (StatusCode::NOT_IMPLEMENTED, "501 Not Implemented"),
        (StatusCode::FORBIDDEN, "403 Forbidden"),
        (StatusCode(299), "299 Unknown"),
    ] {
        let encoded = RtspResponse::new(code, 1).encode();
        assert!(encoded.starts_with(format!("RTSP/1.0 {text}\r\n").as_bytes()));
    }
}

/// The client's header rule (§2.1): the name ends at `:`, and the value starts two bytes later.
#[test]
fn response_headers_have_exactly_one_space() {
    let encoded = RtspResponse::ok(4)
        .with_header("X-SS-Connect-Data", 1234567)
        .with_header("Evil", "a\r\nInjected: 1")
        .encode();
    let text = String::from_utf8(encoded).unwrap();
    let head = text.split("\r\n\r\n").next().unwrap();
    for line in head.split("\r\n").skip(1) {
        let colon = line.find(':').unwrap();
        assert_eq!(&line[colon..colon + 2], ": ", "{line}");
        assert_ne!(line.as_bytes()[colon + 2], b' ', "{line}");
    }
    assert!(head.contains("Evil: aInjected: 1"), "{head}");
}

#[test]
fn known_answer_setup_replies() {
    assert_eq!(
        RtspResponse::setup(
            3,
            "DEADBEEFCAFE",
            48000,
            SetupIdentifier::PingPayload("0123456789abcdef")
        )
        .encode(),
        b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: DEADBEEFCAFE;timeout = 90\r\n\
Transport: server_port=48000\r\nX-SS-Ping-Payload: 0123456789abcdef\r\n\r\n"
    );
    assert_eq!(
        RtspResponse::setup(5, "DEADBEEFCAFE", 47999, SetupIdentifier::ConnectData(8)).encode(),
        b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: DEADBEEFCAFE;timeout = 90\r\n\
Transport: server_port=47999\r\nX-SS-Connect-Data: 8\r\n\r\n"
    );
    let plain = RtspResponse::setup(4, "S", 47998, SetupIdentifier::None);
    assert_eq!(plain.headers.len(), 2);
}

#[test]
fn responses_round_trip() {
    let r = RtspResponse::ok(3)
        .with_header("Session", "DEADBEEFCAFE;timeout = 90")
        .with_body(b"body\n".to_vec());
    assert_eq!(RtspResponse::parse(&r.encode()), Ok(r.clone()));
    assert_eq!(
        RtspResponse::parse(&r.encode()).unwrap().header("session"),
        Some("DEADBEEFCAFE;timeout = 90")
    );
}

// Vectors computed with an independent AES-GCM (Python `cryptography`), key 00..0f (§2.8).
/// `RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n` sealed by the host with seq 1 (IV origin 'H').
const SEALED_RESPONSE_SEQ1: &str = "8000001c00000001f1734c68fca6356daf5717bc54c6f6a2600872b43a271f6b4fc685cedf9a7cb84351077c0cc521456e1d06e9";
/// The OPTIONS request for `rtspenc://192.168.1.2:48010` sealed by the client with seq 1.
const SEALED_OPTIONS_SEQ1: &str = "80000064000000012e3085c377b84b8f9caf4af7652611189fe452003a42126629e9a38df3e5ba69a1abdae54db4096793128c2f938581913821fbdd67511f0997ad4e9aa1e265489dffc5816d7305aaa292bdb4479023852bab579af10f1fa6686708c648116687cf041167469d8d479a4b8989cfc9934b824b98fa";

#[test]
fn known_answer_sealed_response() {
    let cipher = RtspCipher::new(&KEY);
    let sealed = cipher
        .seal_response(1, &RtspResponse::ok(1).encode())
        .unwrap();
    assert_eq!(sealed, hex(SEALED_RESPONSE_SEQ1));
    let opened = cipher.open_response(&sealed).unwrap();
    assert_eq!(opened.seq, 1);
    assert_eq!(
        RtspResponse::parse(&opened.plaintext),
        Ok(RtspResponse::ok(1))
    );
}

#[test]
fn known_answer_sealed_request() {
    let cipher = RtspCipher::new(&KEY);
    let frame = hex(SEALED_OPTIONS_SEQ1);
    assert_eq!(is_sealed(&frame), Some(true));
    assert_eq!(is_sealed(b"OPTIONS"), Some(false));
    assert_eq!(is_sealed(b""), None);
    let Ok(Parsed::Complete { request, consumed }) = cipher.parse_request(&frame) else {
        panic!();
    };
    assert_eq!(consumed, frame.len());
    assert_eq!(request.method, Method::Options);
    assert_eq!(request.target, "rtspenc://192.168.1.2:48010");
    assert_eq!(request.cseq, 1);
    for len in 0..frame.len() {
        assert_eq!(cipher.parse_request(&frame[..len]), Ok(Parsed::Incomplete));
    }
}

#[test]
fn sealed_announce_round_trip() {
    let cipher = RtspCipher::new(&KEY);
    let raw = &handshake()[5];
    let frame = cipher.seal_request(6, raw).unwrap();
    let mut buf = frame.clone();
    buf.extend_from_slice(b"next");
    let Ok(Parsed::Complete { request, consumed }) = cipher.parse_request(&buf) else {
        panic!();
    };
    assert_eq!(consumed, frame.len());
    assert_eq!(request.encode(), *raw);
}

#[test]
fn error_line_too_long() {
    let mut raw = b"OPTIONS ".to_vec();
    raw.extend(std::iter::repeat_n(b'a', MAX_LINE_LEN + 1));
    assert_eq!(RtspRequest::parse(&raw), Err(RtspError::LineTooLong));
    raw.extend_from_slice(b" RTSP/1.0\r\n\r\n");
    assert_eq!(RtspRequest::parse(&raw), Err(RtspError::LineTooLong));
}

#[test]
fn error_head_too_long() {
    let line = format!("X-Pad: {}\r\n", "p".repeat(300));
    let raw = format!("OPTIONS / RTSP/1.0\r\nCSeq: 1\r\n{}\r\n", line.repeat(30));
    assert_eq!(
        RtspRequest::parse(raw.as_bytes()),
        Err(RtspError::HeadTooLong)
    );
    // Also while still waiting for the blank line.
    let raw = format!("OPTIONS / RTSP/1.0\r\n{}", line.repeat(30));
    assert_eq!(
        RtspRequest::parse(raw.as_bytes()),
        Err(RtspError::HeadTooLong)
    );
}

#[test]
fn error_too_many_headers() {
    let raw = format!(
        "OPTIONS / RTSP/1.0\r\n{}\r\n",
        "CSeq: 1\r\n".repeat(MAX_HEADERS + 1)
    );
    assert_eq!(
        RtspRequest::parse(raw.as_bytes()),
        Err(RtspError::TooManyHeaders)
    );
}

#[test]
fn error_body_too_large() {
    let raw = b"ANNOUNCE / RTSP/1.0\r\nCSeq: 1\r\nContent-length: 40000\r\n\r\n";
    assert_eq!(
        RtspRequest::parse(raw),
        Err(RtspError::BodyTooLarge { declared: 40000 })
    );
    let raw = b"ANNOUNCE / RTSP/1.0\r\nCSeq: 1\r\nContent-length: 99999999999999999999\r\n\r\n";
    assert_eq!(
        RtspRequest::parse(raw),
        Err(RtspError::InvalidContentLength)
    );
}

#[test]
fn error_malformed_request_line() {
    for raw in [
        &b"OPTIONS\r\nCSeq: 1\r\n\r\n"[..],
        b"OPTIONS /\r\nCSeq: 1\r\n\r\n",
        b"OPTIONS  RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        b"OPTIONS / RTSP/1.0 extra\r\nCSeq: 1\r\n\r\n",
        b"\r\n\r\n",
    ] {
        assert_eq!(
            RtspRequest::parse(raw),
            Err(RtspError::MalformedRequestLine),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn error_malformed_status_line() {
    assert_eq!(
        RtspResponse::parse(b"RTSP/1.0 OK\r\nCSeq: 1\r\n\r\n"),
        Err(RtspError::MalformedStatusLine)
    );
    assert_eq!(
        RtspResponse::parse(b"RTSP/1.0 2x0 OK\r\nCSeq: 1\r\n\r\n"),
        Err(RtspError::MalformedStatusLine)
    );
}

#[test]
fn error_unsupported_version() {
    assert_eq!(
        RtspRequest::parse(b"OPTIONS / RTSP/2.0\r\nCSeq: 1\r\n\r\n"),
        Err(RtspError::UnsupportedVersion)
    );
    assert_eq!(
        RtspRequest::parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Err(RtspError::UnsupportedVersion)
    );
    assert_eq!(
        RtspResponse::parse(b"HTTP/1.1 200 OK\r\nCSeq: 1\r\n\r\n"),
        Err(RtspError::UnsupportedVersion)
    );
}

#[test]
fn error_malformed_header() {
    for raw in [
        &b"OPTIONS / RTSP/1.0\r\nCSeq 1\r\n\r\n"[..],
        b"OPTIONS / RTSP/1.0\r\n: 1\r\n\r\n",
        b"OPTIONS / RTSP/1.0\r\nC Seq: 1\r\n\r\n",
        b"OPTIONS / RTSP/1.0\r\nCSeq: 1\x00\r\n\r\n",
    ] {
        assert_eq!(RtspRequest::parse(raw), Err(RtspError::MalformedHeader));
    }
}

#[test]
fn error_not_utf8() {
    assert_eq!(
        RtspRequest::parse(b"OPTIONS / RTSP/1.0\r\nX: \xFF\r\n\r\n"),
        Err(RtspError::NotUtf8)
    );
}

#[test]
fn error_invalid_content_length() {
    for value in ["-1", "+5", "", "1e3", "0x10"] {
        let raw = format!("ANNOUNCE / RTSP/1.0\r\nCSeq: 1\r\nContent-length: {value}\r\n\r\n");
        assert_eq!(
            RtspRequest::parse(raw.as_bytes()),
            Err(RtspError::InvalidContentLength),
            "{value:?}"
        );
    }
}

#[test]
fn error_duplicate_header() {
    assert_eq!(
        RtspRequest::parse(b"OPTIONS / RTSP/1.0\r\nCSeq: 1\r\ncseq: 2\r\n\r\n"),
        Err(RtspError::DuplicateHeader { name: "CSeq" })
    );
    assert_eq!(
        RtspRequest::parse(
            b"OPTIONS / RTSP/1.0\r\nCSeq: 1\r\nContent-length: 1\r\nContent-Length: 2\r\n\r\nab"
        ),
        Err(RtspError::DuplicateHeader {
            name: "Content-length"
        })
    );
}

#[test]
fn error_missing_cseq() {
    assert_eq!(
        RtspRequest::parse(b"OPTIONS / RTSP/1.0\r\nHost: x\r\n\r\n"),
        Err(RtspError::MissingCSeq)
    );
    assert_eq!(
        RtspResponse::parse(b"RTSP/1.0 200 OK\r\nSession: x\r\n\r\n"),
        Err(RtspError::MissingCSeq)
    );
}

#[test]
fn error_invalid_cseq() {
    for value in ["x", "-1", "4294967296", ""] {
        let raw = format!("OPTIONS / RTSP/1.0\r\nCSeq: {value}\r\n\r\n");
        assert_eq!(
            RtspRequest::parse(raw.as_bytes()),
            Err(RtspError::InvalidCSeq),
            "{value:?}"
        );
    }
}

#[test]
fn error_trailing_bytes() {
    let mut raw = handshake()[0].clone();
    raw.push(b'x');
    assert_eq!(
        RtspRequest::parse_exact(&raw),
        Err(RtspError::TrailingBytes)
    );
    let cipher = RtspCipher::new(&KEY);
    let frame = cipher.seal_request(1, &raw).unwrap();
    assert_eq!(cipher.parse_request(&frame), Err(RtspError::TrailingBytes));
}

#[test]
fn error_truncated() {
    let raw = &handshake()[5];
    let cipher = RtspCipher::new(&KEY);
    let frame = cipher.seal_request(1, &raw[..raw.len() - 1]).unwrap();
    assert_eq!(cipher.parse_request(&frame), Err(RtspError::Truncated));
    assert_eq!(
        RtspResponse::parse(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n"),
        Err(RtspError::Truncated)
    );
}

#[test]
fn error_not_sealed() {
    let cipher = RtspCipher::new(&KEY);
    assert_eq!(
        cipher.parse_request(&handshake()[0]),
        Err(RtspError::NotSealed)
    );
    assert_eq!(
        cipher.open_request(&handshake()[0]),
        Err(RtspError::NotSealed)
    );
}

#[test]
fn error_sealed_length() {
    let cipher = RtspCipher::new(&KEY);
    let too_big = (ENCRYPTED_BIT | (MAX_SEALED_PLAINTEXT_LEN as u32 + 1)).to_be_bytes();
    assert_eq!(
        RtspCipher::frame_len(&too_big),
        Err(RtspError::SealedLength)
    );
    let mut frame = hex(SEALED_OPTIONS_SEQ1);
    frame.push(0);
    assert_eq!(cipher.open_request(&frame), Err(RtspError::SealedLength));
    assert_eq!(
        cipher.open_request(&frame[..3]),
        Err(RtspError::SealedLength)
    );
    assert_eq!(
        cipher.seal_response(1, &vec![0; MAX_SEALED_PLAINTEXT_LEN + 1]),
        Err(RtspError::SealedLength)
    );
}

#[test]
fn error_decrypt() {
    let cipher = RtspCipher::new(&KEY);
    let frame = hex(SEALED_OPTIONS_SEQ1);
    // A client frame opened as if the host had sent it uses the wrong IV.
    assert_eq!(cipher.open_response(&frame), Err(RtspError::Decrypt));
    for i in [4, 8, 24, frame.len() - 1] {
        let mut f = frame.clone();
        f[i] ^= 0x40;
        assert_eq!(cipher.open_request(&f), Err(RtspError::Decrypt), "byte {i}");
    }
}

#[test]
fn every_error_maps_to_400() {
    assert_eq!(RtspError::Decrypt.status(), StatusCode::BAD_REQUEST);
    assert_eq!(StatusCode::BAD_REQUEST.reason(), "BAD REQUEST");
}

/// The handshake requests and a few responses as seeds.
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = handshake();
    seeds.push(
        RtspResponse::ok(3)
            .with_header("Session", "DEADBEEFCAFE;timeout = 90")
            .with_header("Transport", "server_port=48000")
            .encode(),
    );
    seeds.push(
        RtspResponse::ok(2)
            .with_body(crate::sdp::DescribeBody::default().encode())
            .encode(),
    );
    seeds
}

#[test]
fn robustness_no_panic() {
    let seeds = seeds();
    crate::input::tests::mutate_and_feed(&seeds, 20_000, fuzzing::request);
    crate::input::tests::mutate_and_feed(&seeds, 10_000, fuzzing::response);
    crate::input::tests::mutate_and_feed(&seeds[..3], 2_000, fuzzing::sealed_request);
    let cipher = RtspCipher::new(&[0x42; 16]);
    let sealed: Vec<_> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| cipher.seal_request(i as u32, s).unwrap())
        .collect();
    crate::input::tests::mutate_and_feed(&sealed, 5_000, |d| {
        let _ = cipher.parse_request(d);
    });
}
