//! Just enough of ENet's wire format (PROTOCOL.md §3.1) to vet a datagram before an ENet host
//! spends a peer slot on it: the protocol header and the CONNECT command.

/// Header flag: a 2-byte sent time follows the peer ID.
const HEADER_FLAG_SENT_TIME: u16 = 1 << 15;
/// Header flag: the rest is compressed (Moonlight's client never compresses).
const HEADER_FLAG_COMPRESSED: u16 = 1 << 14;
/// The command number of CONNECT.
const COMMAND_CONNECT: u8 = 2;
/// Low bits of the command byte: the command number.
const COMMAND_MASK: u8 = 0x0F;
/// Size of a CONNECT command, header included.
const CONNECT_LEN: usize = 48;

/// What a CONNECT command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The client's random ID of this connection attempt (its retransmissions repeat it).
    pub connect_id: u32,
    /// The connect data: Moonlight sends the session ID from RTSP SETUP, or 0.
    pub data: u32,
}

/// Why a datagram is not a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectParseError {
    /// Shorter than a header and one CONNECT command.
    #[error("datagram of {0} bytes is too short for an ENet CONNECT")]
    TooShort(usize),
    /// The header says the body is compressed.
    #[error("compressed ENet datagram")]
    Compressed,
    /// The first command is another one.
    #[error("first ENet command is {0}, not CONNECT")]
    NotConnect(u8),
}

/// Parses `datagram` as an ENet datagram whose first command is CONNECT.
pub fn parse_connect(datagram: &[u8]) -> Result<ConnectRequest, ConnectParseError> {
    let too_short = ConnectParseError::TooShort(datagram.len());
    let peer_id = datagram
        .first_chunk::<2>()
        .map(|b| u16::from_be_bytes(*b))
        .ok_or(too_short)?;
    if peer_id & HEADER_FLAG_COMPRESSED != 0 {
        return Err(ConnectParseError::Compressed);
    }
    let header_len = if peer_id & HEADER_FLAG_SENT_TIME != 0 {
        4
    } else {
        2
    };
    let command = datagram
        .get(header_len..header_len + CONNECT_LEN)
        .ok_or(too_short)?;
    let number = command.first().map_or(0, |c| c & COMMAND_MASK);
    if number != COMMAND_CONNECT {
        return Err(ConnectParseError::NotConnect(number));
    }
    let be32 = |at: usize| {
        command
            .get(at..)
            .and_then(<[u8]>::first_chunk::<4>)
            .map_or(0, |b| u32::from_be_bytes(*b))
    };
    Ok(ConnectRequest {
        connect_id: be32(40),
        data: be32(44),
    })
}

/// Entry points for the fuzz targets.
pub mod fuzzing {
    /// Parses arbitrary bytes as a CONNECT datagram; must never panic.
    pub fn connect(data: &[u8]) {
        let _ = super::parse_connect(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CONNECT as moonlight-common-c's ENet sends it: peer ID 0x8FFF (sent time, no peer),
    /// sent time, then the command with the ACK flag, channel 0xFF, reliable sequence 1.
    fn connect_datagram(connect_id: u32, data: u32) -> Vec<u8> {
        let mut d = vec![0x8F, 0xFF, 0x12, 0x34, 0x82, 0xFF, 0x00, 0x01];
        d.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]); // outgoing peer 0, sessions
        for value in [1392u32, 65536, 0x30, 0, 0, 5000, 2, 2] {
            d.extend_from_slice(&value.to_be_bytes());
        }
        d.extend_from_slice(&connect_id.to_be_bytes());
        d.extend_from_slice(&data.to_be_bytes());
        d
    }

    #[test]
    fn reads_connect_id_and_data() {
        let d = connect_datagram(0xdead_beef, 0x1234_5678);
        assert_eq!(
            parse_connect(&d),
            Ok(ConnectRequest {
                connect_id: 0xdead_beef,
                data: 0x1234_5678
            })
        );
        // Without the sent-time field.
        let mut short = d.clone();
        short.drain(2..4);
        short[0] = 0x0F;
        assert_eq!(parse_connect(&short).map(|c| c.data), Ok(0x1234_5678));
    }

    #[test]
    fn refuses_other_datagrams() {
        let d = connect_datagram(1, 2);
        for len in 0..d.len() {
            assert_eq!(
                parse_connect(&d[..len]),
                Err(ConnectParseError::TooShort(len))
            );
        }
        let mut ping = d.clone();
        ping[4] = 0x85;
        assert_eq!(parse_connect(&ping), Err(ConnectParseError::NotConnect(5)));
        let mut compressed = d;
        compressed[0] |= 0x40;
        assert_eq!(
            parse_connect(&compressed),
            Err(ConnectParseError::Compressed)
        );
    }

    #[test]
    fn robustness_no_panic() {
        let seed = connect_datagram(7, 9);
        let mut x = 0x9e37_79b9u32;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut d = seed.clone();
            let at = (x as usize) % d.len();
            d[at] ^= (x >> 8) as u8;
            d.truncate((x >> 16) as usize % (d.len() + 1));
            fuzzing::connect(&d);
        }
    }
}
