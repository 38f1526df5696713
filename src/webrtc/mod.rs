//! Browser play over WebRTC: the signalling a page speaks on `/play/ws` and the `webrtcbin`
//! stream it negotiates. Sessions, apps, desktops, audio sinks and the input router are the
//! ones Moonlight clients use; only the transport differs.

pub mod signalling;
pub mod stream;
