//! Hati: a Moonlight-compatible game-streaming host.

pub mod config;
pub mod pairing;
pub mod state;
