//! GStreamer elements that turn encoded media into Moonlight's RTP packets.
