//! The clock: Hati's certificates (and the clients' checks of them) need a sane date, and
//! pairing is easier to debug with a synchronised one. Both checks only warn.

use std::path::Path;
use std::time::Duration;

use super::{Check, run_with_timeout, which};

/// The first year a correct clock can show (this code was written in it).
const MIN_YEAR: i32 = 2024;

/// How long `timedatectl` may take.
const TIMEDATECTL_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the system year is plausible.
pub fn year_check() -> Check {
    year_verdict(time::OffsetDateTime::now_utc().year())
}

/// The verdict for a year.
fn year_verdict(year: i32) -> Check {
    const ID: &str = "clock";
    if year >= MIN_YEAR {
        Check::ok(ID, format!("system clock says {year}"))
    } else {
        Check::warn(
            ID,
            format!(
                "system clock says {year}: certificates made now are rejected once the clock is \
                 right, and clients may refuse them"
            ),
            "set the clock (sudo timedatectl set-ntp true, or sudo date -s …), then restart Hati",
        )
    }
}

/// Whether the clock is synchronised, where systemd can tell.
pub fn sync_check() -> Check {
    if Path::new("/run/systemd/timesync/synchronized").exists() {
        return sync_verdict(Some(true));
    }
    let answer = which("timedatectl")
        .and_then(|t| {
            run_with_timeout(
                &t,
                &["show", "--property=NTPSynchronized", "--value"],
                TIMEDATECTL_TIMEOUT,
            )
        })
        .filter(|out| out.status.success())
        .and_then(|out| match String::from_utf8_lossy(&out.stdout).trim() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        });
    sync_verdict(answer)
}

/// The verdict: synchronised, not, or unknown.
fn sync_verdict(synchronised: Option<bool>) -> Check {
    const ID: &str = "clock-sync";
    match synchronised {
        Some(true) => Check::ok(ID, "the clock is synchronised (NTP)"),
        Some(false) => Check::warn(
            ID,
            "the clock is not synchronised",
            "turn on time synchronisation: sudo timedatectl set-ntp true",
        ),
        None => Check::ok(
            ID,
            "cannot tell whether the clock is synchronised (no systemd-timesyncd or timedatectl \
             answer); fine in a container, whose clock is the host's",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn years_before_2024_warn() {
        assert_eq!(year_verdict(2026).status, Status::Ok);
        assert_eq!(year_verdict(2024).status, Status::Ok);
        let old = year_verdict(1970);
        assert_eq!(old.status, Status::Warn);
        assert!(old.summary.contains("1970"));
    }

    #[test]
    fn sync_states() {
        assert_eq!(sync_verdict(Some(true)).status, Status::Ok);
        assert_eq!(sync_verdict(Some(false)).status, Status::Warn);
        assert_eq!(sync_verdict(None).status, Status::Ok);
    }
}
