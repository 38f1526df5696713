//! Input before encoding: the threads that carry a client's input (the control stream's own
//! thread, where its gate and loop run, and each session's compositor thread, which applies
//! every event) run at a negative nice value (`streaming.input_thread_nice`), so a busy encoder
//! cannot keep them waiting for a CPU. On two cores shared by several x264 encoders, that wait
//! was the whole of a client's worst input delay while another client's session started.
//!
//! Every raised thread also gets `SCHED_RESET_ON_FORK`: the threads and processes it starts
//! (Xwayland, the blocking pool's threads) begin at nice 0, so only the input path runs ahead;
//! the async runtime, the encoders, the sender and the apps stay at 0. Raising needs
//! `CAP_SYS_NICE` or a nice limit (`RLIMIT_NICE`, systemd's `LimitNICE=`); without either the
//! threads stay at 0 and the host says so once.

use std::sync::Once;
use std::sync::atomic::{AtomicI32, Ordering};

/// The nice value [`raise_input_thread`] sets; 0 = leave threads alone.
static INPUT_NICE: AtomicI32 = AtomicI32::new(0);
/// Threads raised so far, for `GET /status`.
static RAISED: AtomicI32 = AtomicI32::new(0);
/// The refusal is logged once, not per thread.
static REFUSED: Once = Once::new();

/// Sets the nice value input threads get from now on (`streaming.input_thread_nice`).
pub fn set_input_nice(nice: i32) {
    INPUT_NICE.store(nice.clamp(-20, 0), Ordering::Relaxed);
}

/// How many threads run at the input priority now or did (`GET /status`).
pub fn raised_threads() -> i32 {
    RAISED.load(Ordering::Relaxed)
}

/// Raises the calling thread to the input priority (see the module doc); a refusal is logged
/// once and otherwise ignored: the thread just runs at its old priority.
pub fn raise_input_thread() {
    let nice = INPUT_NICE.load(Ordering::Relaxed);
    if nice == 0 {
        return;
    }
    match raise_current_thread(nice) {
        Ok(()) => {
            RAISED.fetch_add(1, Ordering::Relaxed);
        }
        Err(error) => REFUSED.call_once(|| {
            tracing::info!(
                %error,
                nice,
                "input threads stay at normal priority: give the host CAP_SYS_NICE or a nice \
                 limit (systemd LimitNICE={nice}, docker --cap-add SYS_NICE), or set \
                 streaming.input_thread_nice = 0 to silence this"
            );
        }),
    }
}

/// Sets the calling thread's nice value and its reset-on-fork flag.
fn raise_current_thread(nice: i32) -> std::io::Result<()> {
    // SAFETY: plain system calls on the calling thread (tid 0 = self); `param` outlives the call.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_OTHER | libc::SCHED_RESET_ON_FORK, &param) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let tid = libc::gettid();
        // `PRIO_PROCESS` with a thread id changes that thread only on Linux.
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The calling thread's nice value.
#[cfg(test)]
fn current_nice() -> i32 {
    // SAFETY: reads the calling thread's priority; errno is cleared first as getpriority may
    // legitimately return -1.
    unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn may_raise() -> bool {
        // SAFETY: reads this process's effective uid.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn a_raised_thread_runs_ahead_and_its_children_do_not() {
        if !may_raise() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root: raising a thread must be tested there"
            );
            eprintln!("skipped: raising a thread's priority needs root here");
            return;
        }
        let (raised, child) = std::thread::spawn(|| {
            raise_current_thread(-7).expect("root may raise a thread");
            let child = std::thread::spawn(current_nice).join().unwrap();
            (current_nice(), child)
        })
        .join()
        .unwrap();
        assert_eq!(raised, -7);
        assert_eq!(child, 0, "threads a raised thread starts begin at nice 0");
        assert_eq!(current_nice(), 0, "only the calling thread changes");
    }

    #[test]
    fn zero_leaves_threads_alone() {
        std::thread::spawn(|| {
            raise_input_thread();
            assert_eq!(current_nice(), 0);
        })
        .join()
        .unwrap();
    }
}
