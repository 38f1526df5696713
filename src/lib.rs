//! Hati: a Moonlight-compatible game-streaming host.

pub mod admin;
pub mod audio;
pub mod config;
pub mod encoders;
pub mod gamepad;
pub mod host;
pub mod http;
pub mod mdns;
pub mod pairing;
pub mod runner;
pub mod state;
