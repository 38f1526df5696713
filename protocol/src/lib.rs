//! Moonlight host wire formats (see `docs/PROTOCOL.md` of the design notes): everything a network
//! peer can send is parsed here, with no I/O, so each parser can be unit-tested and fuzzed.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod browser;
mod codec;
pub mod control;
pub mod enet;
pub mod input;
pub mod node_link;
pub mod query;
pub mod rtsp;
pub mod sdp;
pub mod xml;
