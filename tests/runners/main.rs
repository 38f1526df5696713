//! Integration tests of the session's building blocks against the real things: host processes,
//! the local Docker engine, a private PulseAudio daemon, and `/dev/uinput` (absent in CI, so
//! the gamepad test checks that gamepads degrade cleanly).
//!
//! A test whose external dependency is missing prints `SKIPPED: <why>` and returns; with
//! `HATI_REQUIRE_DOCKER=1` or `HATI_REQUIRE_PULSEAUDIO=1` set (`scripts/test.sh` sets both), or
//! under CI (`CI=true`), a missing dependency fails the test instead, so a skipped check is never
//! counted as passed there.

mod audio;
mod docker;
mod gamepad;
mod logs;
mod process;

/// Whether a missing dependency must fail the test: `require_var` is `1`, or `CI` is `true`.
pub fn required(require_var: &str) -> bool {
    std::env::var(require_var).as_deref() == Ok("1")
        || std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Prints `SKIPPED: <reason>` straight to the process's stderr: libtest captures `println!` and
/// `eprintln!` alike and hides them for a passing test, but not a write to `io::stderr()`.
pub fn print_skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {reason}");
}

/// Returns from the test with a `SKIPPED` line, or fails it where the dependency is
/// [`required`].
#[macro_export]
macro_rules! skip_or_fail {
    ($require_var:expr, $($reason:tt)+) => {{
        let reason = format!($($reason)+);
        if $crate::required($require_var) {
            panic!("{reason} (and {}=1 or CI=true requires it)", $require_var);
        }
        $crate::print_skip(&reason);
        return;
    }};
}

/// What the session manager keeps across `.await`s and tasks must be `Send` (and shared ones
/// `Sync`).
#[test]
fn handles_can_live_in_tokio_tasks() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<hati::runner::Launcher>();
    send::<hati::runner::RunningApp>();
    send_sync::<hati::audio::AudioServer>();
    send::<hati::audio::SessionSink>();
    send::<hati::gamepad::GamepadManager>();
}
