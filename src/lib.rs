//! Hati: a Moonlight-compatible game-streaming host.

pub mod admin;
pub mod audio;
pub mod bitrate;
pub mod config;
pub mod control;
pub mod crypto;
pub mod daemon;
pub mod doctor;
pub mod encoders;
pub mod events;
pub mod gamepad;
pub mod host;
pub mod http;
pub mod input;
pub mod mdns;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod pairing;
pub mod pipeline;
pub mod rtsp;
pub mod runner;
pub mod session;
pub mod state;
pub mod stream;
pub mod webrtc;
