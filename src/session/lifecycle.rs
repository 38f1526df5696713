//! A session's lifecycle: the states it goes through, the table of the transitions allowed
//! between them, and [`Lifecycle`], the state and the stream it runs under one lock.

use serde::Serialize;

use super::streaming::ActiveStream;
use hati_protocol::sdp::StreamConfig;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Its desktop, audio sink and app are starting.
    #[default]
    Launching,
    /// Launched; the client has not announced a stream yet.
    WaitingForClient,
    /// Pipelines run.
    Streaming,
    /// The client disconnected; `/resume` picks the session up again.
    Paused,
    /// Everything it held is released (or being released).
    Ended,
}

impl SessionState {
    /// Whether the lifecycle allows going from `self` to `next`.
    pub(super) fn may_become(self, next: Self) -> bool {
        use SessionState::*;
        matches!(
            (self, next),
            (Launching, WaitingForClient)
                | (WaitingForClient | Streaming | Paused, Streaming)
                | (Streaming, Paused)
                | (Launching | WaitingForClient | Streaming | Paused, Ended)
        )
    }

    /// Whether the session waits for its client (the client timeout runs).
    pub(super) fn awaits_client(self) -> bool {
        matches!(self, Self::WaitingForClient | Self::Paused)
    }
}

/// A session's state and the stream it runs, under one lock: a change of one is seen with the
/// other, so an end can never miss a stream stored after it looked.
///
/// Invariants: `stream` is `None` unless `state` is `Streaming` (it is also briefly `None`
/// while a new stream replaces the old one); `generation` grows by one with every stored
/// stream and `epoch` with every state change. The lock is never held while a pipeline is
/// built, changes state or is dropped (see `worker`).
#[derive(Default)]
pub(super) struct Lifecycle {
    pub(super) state: SessionState,
    /// Bumped by every state change, so a timer armed in one state knows it was left.
    pub(super) epoch: u64,
    pub(super) stream: Option<ActiveStream>,
    /// The stream configuration of the last ANNOUNCE.
    pub(super) stream_config: Option<StreamConfig>,
    /// Bumped by every stream stored, so a task of an older stream knows it was replaced.
    pub(super) generation: u64,
}

impl Lifecycle {
    /// Moves to `next` if the transition table allows it; false (and nothing changes)
    /// otherwise. Every state change of a session goes through here.
    pub(super) fn transition(&mut self, next: SessionState) -> bool {
        if !self.state.may_become(next) {
            return false;
        }
        self.state = next;
        self.epoch += 1;
        true
    }

    /// Moves to `Streaming` with `stream` (one step, so an end sees both or neither); hands
    /// the stream back if the session may not stream now (it ended meanwhile).
    pub(super) fn start_streaming(&mut self, stream: ActiveStream) -> Result<u64, ActiveStream> {
        if !self.transition(SessionState::Streaming) {
            return Err(stream);
        }
        self.stream = Some(stream);
        self.generation += 1;
        Ok(self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::SessionState::*;

    #[test]
    fn lifecycle_moves_forward_and_ends_once() {
        assert!(Launching.may_become(WaitingForClient));
        assert!(WaitingForClient.may_become(Streaming));
        assert!(Streaming.may_become(Paused));
        assert!(Paused.may_become(Streaming));
        assert!(
            Streaming.may_become(Streaming),
            "a new ANNOUNCE restarts the stream"
        );
        for state in [Launching, WaitingForClient, Streaming, Paused] {
            assert!(state.may_become(Ended));
        }
        for state in [Launching, WaitingForClient, Streaming, Paused, Ended] {
            assert!(!Ended.may_become(state), "ended is final");
        }
        assert!(
            !Launching.may_become(Streaming),
            "no stream before the app started"
        );
        assert!(!WaitingForClient.may_become(Paused));
    }
}
