//! Hati: a Moonlight-compatible game-streaming host.
