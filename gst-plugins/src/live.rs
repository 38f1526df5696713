//! What Hati's live raw-video sources (`hatitestsrc`, the compositor's `waylanddisplaysrc`)
//! share: pacing by the pipeline clock (wait for each frame's running time, skip ahead instead
//! of bursting after a stall, wake up on flush), their buffer pool, and their latency answer.

use std::sync::Mutex;

use gst::prelude::*;

/// The clock wait of one live source (`unlock` interrupts it).
#[derive(Debug, Default)]
pub struct FramePacer {
    wait: Mutex<ClockWait>,
}

#[derive(Debug, Default)]
struct ClockWait {
    flushing: bool,
    clock_id: Option<gst::SingleShotClockId>,
}

impl FramePacer {
    /// The index of the next frame to produce: `next`, or, when the clock is already more than
    /// one frame past it (a late start or a stall), the frame due now.
    pub fn next_frame(
        element: &impl IsA<gst::Element>,
        next: u64,
        duration: gst::ClockTime,
    ) -> u64 {
        let Some(now) = running_time_now(element) else {
            return next;
        };
        if now > duration * next + duration {
            now.nseconds() / duration.nseconds().max(1)
        } else {
            next
        }
    }

    /// Waits until the pipeline clock reaches `running_time`; `Err(Flushing)` when unlocked.
    /// Without a clock (not yet playing) it returns at once.
    pub fn wait_until(
        &self,
        element: &impl IsA<gst::Element>,
        running_time: gst::ClockTime,
    ) -> Result<(), gst::FlowError> {
        let (Some(clock), Some(base_time)) = (element.clock(), element.base_time()) else {
            return Ok(());
        };
        let id = {
            let mut wait = self.lock();
            if wait.flushing {
                return Err(gst::FlowError::Flushing);
            }
            let id = clock.new_single_shot_id(base_time + running_time);
            wait.clock_id = Some(id.clone());
            id
        };
        let (result, _jitter) = id.wait();
        let mut wait = self.lock();
        wait.clock_id = None;
        if result == Err(gst::ClockError::Unscheduled) || wait.flushing {
            return Err(gst::FlowError::Flushing);
        }
        Ok(())
    }

    /// Interrupts a wait and refuses new ones (`BaseSrc::unlock`).
    pub fn unlock(&self) {
        let mut wait = self.lock();
        wait.flushing = true;
        if let Some(id) = wait.clock_id.take() {
            id.unschedule();
        }
    }

    /// Allows waits again (`BaseSrc::unlock_stop`).
    pub fn unlock_stop(&self) {
        self.lock().flushing = false;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockWait> {
        self.wait
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The element's current running time, if it has a clock.
fn running_time_now(element: &impl IsA<gst::Element>) -> Option<gst::ClockTime> {
    let clock = element.clock()?;
    let base_time = element.base_time()?;
    clock.time().checked_sub(base_time)
}

/// An active pool of `min_buffers` or more frames for `caps` (raw video).
pub fn frame_pool(caps: &gst::Caps, min_buffers: u32) -> Result<gst::BufferPool, String> {
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|_| format!("invalid caps {caps}"))?;
    let size = u32::try_from(info.size()).map_err(|_| "frame too large".to_owned())?;
    let pool = gst::BufferPool::new();
    let mut config = pool.config();
    config.set_params(Some(caps), size, min_buffers, 0);
    pool.set_config(config)
        .map_err(|_| "cannot configure the buffer pool".to_owned())?;
    pool.set_active(true)
        .map_err(|_| "cannot activate the buffer pool".to_owned())?;
    Ok(pool)
}

/// Answers a latency query for a live source whose frames last `frame_duration` (none yet:
/// not answered).
pub fn answer_latency(
    query: &mut gst::query::Latency,
    frame_duration: Option<gst::ClockTime>,
) -> bool {
    match frame_duration {
        Some(duration) => {
            query.set(true, duration, gst::ClockTime::NONE);
            true
        }
        None => false,
    }
}

/// The always-present `src` pad template of a live raw-video source producing `format`, any
/// size from `min_size` to 8192 and 1–480 frames per second.
pub fn src_template(format: gst_video::VideoFormat, min_size: i32) -> gst::PadTemplate {
    let caps = gst_video::VideoCapsBuilder::new()
        .format(format)
        .width_range(min_size..=8192)
        .height_range(min_size..=8192)
        .framerate_range(gst::Fraction::new(1, 1)..=gst::Fraction::new(480, 1))
        .build();
    // The caps above are well-formed, so the template always builds.
    gst::PadTemplate::new(
        "src",
        gst::PadDirection::Src,
        gst::PadPresence::Always,
        &caps,
    )
    .expect("valid pad template")
}

/// Marks a source live and timed (call from `constructed`).
pub fn make_live(source: &impl IsA<gst_base::BaseSrc>) {
    use gst_base::prelude::BaseSrcExt;
    source.set_live(true);
    source.set_format(gst::Format::Time);
}
