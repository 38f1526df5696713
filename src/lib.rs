//! Hati: a Moonlight-compatible game-streaming host.

pub mod admin;
pub mod config;
pub mod encoders;
pub mod host;
pub mod http;
pub mod mdns;
pub mod pairing;
pub mod state;

// runners, audio, gamepads
pub mod audio;
pub mod gamepad;
pub mod runner;
