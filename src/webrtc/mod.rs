//! Browser play over WebRTC: the signalling a page speaks on `/play/ws`. The `webrtcbin`
//! stream it negotiates is `stream::webrtc`, beside Moonlight's pipelines, so sessions depend
//! on no signalling. Sessions, apps, desktops, audio sinks and the input router are the ones
//! Moonlight clients use; only the transport differs.

pub mod signalling;
