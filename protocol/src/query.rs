//! Lenient query-string parsing for GameStream requests (PROTOCOL.md §1.2): clients send empty
//! parameters (`&&corever=1`), lower- or upper-case hex, and signed integers (`rikeyid`).

use thiserror::Error;

/// Longest query string accepted; real clients send well under 1 KiB plus a PEM certificate.
pub const MAX_QUERY_LEN: usize = 64 * 1024;

/// Why a query parameter could not be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum QueryError {
    /// The whole query string is longer than [`MAX_QUERY_LEN`].
    #[error("query string is too long")]
    TooLong,
    /// A required parameter is absent.
    #[error("missing parameter `{0}`")]
    Missing(&'static str),
    /// A parameter is present but its value has the wrong form.
    #[error("parameter `{name}` is malformed: {reason}")]
    Malformed {
        /// The parameter's name.
        name: &'static str,
        /// What form was expected.
        reason: &'static str,
    },
}

/// The decoded parameters of one query string, in order of appearance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `a=1&b=2&&c`: empty parameters are skipped, `+` and `%XX` are decoded, a key
    /// without `=` has an empty value. Invalid percent escapes are kept literally.
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        if raw.len() > MAX_QUERY_LEN {
            return Err(QueryError::TooLong);
        }
        let pairs = raw
            .split('&')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let (key, value) = part.split_once('=').unwrap_or((part, ""));
                (percent_decode(key), percent_decode(value))
            })
            .collect();
        Ok(Self { pairs })
    }

    /// The first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of `name`, or an error naming it.
    pub fn require(&self, name: &'static str) -> Result<&str, QueryError> {
        self.get(name).ok_or(QueryError::Missing(name))
    }

    /// The value of `name` decoded from hex (either case).
    pub fn hex(&self, name: &'static str) -> Result<Vec<u8>, QueryError> {
        decode_hex(self.require(name)?).ok_or(QueryError::Malformed {
            name,
            reason: "expected an even number of hex digits",
        })
    }

    /// The value of `name` as a decimal integer of type `T`.
    pub fn number<T: std::str::FromStr>(&self, name: &'static str) -> Result<T, QueryError> {
        self.require(name)?
            .trim()
            .parse()
            .map_err(|_| QueryError::Malformed {
                name,
                reason: "expected a decimal number",
            })
    }
}

/// Decodes a hex string of either case; `None` if it has an odd length or a non-hex digit.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match pair {
            [high, low] => Some(hex_value(*high)? << 4 | hex_value(*low)?),
            _ => None,
        })
        .collect()
}

/// Encodes bytes as upper-case hex, as Sunshine does.
pub fn encode_hex(bytes: &[u8]) -> String {
    let digit = |nibble: u8| {
        char::from_digit(u32::from(nibble), 16)
            .unwrap_or('0')
            .to_ascii_uppercase()
    };
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(digit(byte >> 4));
        out.push(digit(byte & 0x0f));
    }
    out
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&first, tail)) = rest.split_first() {
        match first {
            b'+' => {
                out.push(b' ');
                rest = tail;
            }
            b'%' => match tail {
                [high, low, after @ ..]
                    if hex_value(*high).is_some() && hex_value(*low).is_some() =>
                {
                    out.push(hex_value(*high).unwrap_or(0) << 4 | hex_value(*low).unwrap_or(0));
                    rest = after;
                }
                _ => {
                    out.push(b'%');
                    rest = tail;
                }
            },
            other => {
                out.push(other);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Entry points for the fuzz targets.
pub mod fuzzing {
    use super::{Query, encode_hex};

    /// Parses arbitrary bytes as a query string; whatever parses must survive a round trip
    /// through full percent-encoding, and the typed getters must not panic.
    pub fn query(data: &[u8]) {
        let raw = String::from_utf8_lossy(data);
        let Ok(query) = Query::parse(&raw) else {
            return;
        };
        for name in [
            "uniqueid",
            "salt",
            "clientcert",
            "rikey",
            "rikeyid",
            "mode",
            "corever",
        ] {
            let _ = query.get(name);
            let _ = query.hex(name);
            let _ = query.number::<i64>(name);
            let _ = query.number::<u32>(name);
        }
        let encode = |text: &str| -> String {
            text.bytes()
                .map(|b| format!("%{}", encode_hex(&[b])))
                .collect()
        };
        let reencoded: Vec<String> = query
            .pairs
            .iter()
            .filter(|(key, _)| !key.is_empty())
            .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
            .collect();
        if let Ok(again) = Query::parse(&reencoded.join("&")) {
            let kept: Vec<_> = query.pairs.iter().filter(|(k, _)| !k.is_empty()).collect();
            let back: Vec<_> = again.pairs.iter().collect();
            assert_eq!(kept, back, "query round trip");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robustness_no_panic() {
        let seeds: [&[u8]; 4] = [
            b"uniqueid=0123456789ABCDEF&rikey=00ff&rikeyid=-5&&corever=1",
            b"a=%zz&b=%4&c=+%41%42",
            b"salt=%00%ff%C3%A9",
            &[0xff, b'=', 0xfe, b'&', b'%'],
        ];
        let mut x = 0x2545_f491u32;
        for round in 0..20_000usize {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut data = seeds[round % seeds.len()].to_vec();
            let at = x as usize % data.len();
            data[at] = (x >> 8) as u8;
            if x & 1 == 0 {
                data.insert(at, b"%&=+"[(x >> 3) as usize % 4]);
            }
            fuzzing::query(&data);
        }
    }

    #[test]
    fn parses_moonlight_python_launch_query() {
        let query = Query::parse(
            "uniqueid=0123456789ABCDEF&uuid=ab&appid=1&mode=1280x720x60&rikey=00112233445566778899aabbccddeeff\
             &rikeyid=-12345&gcpersist=0&&corever=1",
        )
        .unwrap();
        assert_eq!(query.get("appid"), Some("1"));
        assert_eq!(query.get("corever"), Some("1"));
        assert_eq!(query.number::<i32>("rikeyid"), Ok(-12345));
        assert_eq!(query.hex("rikey").unwrap().len(), 16);
    }

    #[test]
    fn percent_and_plus_decoding() {
        let query = Query::parse("devicename=my+phone%21&bad=%zz&k").unwrap();
        assert_eq!(query.get("devicename"), Some("my phone!"));
        assert_eq!(query.get("bad"), Some("%zz"));
        assert_eq!(query.get("k"), Some(""));
    }

    #[test]
    fn missing_and_malformed_parameters_are_named() {
        let query = Query::parse("salt=abc&n=x").unwrap();
        assert_eq!(query.require("pin"), Err(QueryError::Missing("pin")));
        assert!(matches!(
            query.hex("salt"),
            Err(QueryError::Malformed { name: "salt", .. })
        ));
        assert!(matches!(
            query.number::<u32>("n"),
            Err(QueryError::Malformed { name: "n", .. })
        ));
    }

    #[test]
    fn too_long_query_is_rejected() {
        let long = "a".repeat(MAX_QUERY_LEN + 1);
        assert_eq!(Query::parse(&long), Err(QueryError::TooLong));
    }

    #[test]
    fn hex_round_trip_any_case() {
        assert_eq!(decode_hex("0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(encode_hex(&[0x0a, 0xff]), "0AFF");
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
