//! Where the client's input goes. The compositor implements [`InputSink`] for apps in a Wayland
//! session; until a session has one, input is logged at debug level.

use hati_protocol::input::InputEvent;

/// Receives the client's decoded input events, in order.
pub trait InputSink: Send + Sync {
    /// Handles one event.
    fn handle(&self, event: InputEvent);
}

/// Logs every event at debug level (sessions without a compositor).
#[derive(Debug, Default)]
pub struct LoggingInputSink;

impl InputSink for LoggingInputSink {
    fn handle(&self, event: InputEvent) {
        tracing::debug!(?event, "input");
    }
}
