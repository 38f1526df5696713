//! The device side: a virtual pad on `/dev/uinput` (evdev crate), with force feedback.
//!
//! Each pad has a thread that waits (poll) on the uinput descriptor for the kernel's
//! force-feedback requests: effect uploads and erasures (answered at once) and play/stop/gain
//! events, which feed a [`RumbleState`]. Whenever the motor values change, the thread calls the
//! pad's rumble callback. Dropping the pad wakes the thread through a pipe, joins it, and
//! destroys the device (the kernel removes it when the descriptor closes).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use evdev::uinput::VirtualDevice;
use evdev::{
    AbsInfo, AttributeSet, BusType, EventSummary, FFEffectCode, FFEffectKind, InputEvent, InputId,
    KeyCode, UInputCode, UinputAbsSetup,
};
use rustix::event::{PollFd, PollFlags, Timespec, poll};

use super::rumble::{MAX_EFFECTS, Motors, RumbleState};
use super::{GamepadError, PadDevice, PadFactory, PadSpec, RumbleCallback};

/// Creates pads on `/dev/uinput`.
#[derive(Debug, Default, Clone, Copy)]
pub struct UinputFactory;

impl PadFactory for UinputFactory {
    type Pad = UinputPad;

    fn create(&mut self, spec: PadSpec, rumble: RumbleCallback) -> Result<UinputPad, GamepadError> {
        UinputPad::create(spec, rumble)
    }
}

/// A virtual pad on `/dev/uinput`.
#[derive(Debug)]
pub struct UinputPad {
    device: Arc<Mutex<VirtualDevice>>,
    wake: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    node: Option<PathBuf>,
}

impl UinputPad {
    /// Creates the device for `spec` (named after its kind and player) and starts its
    /// force-feedback thread, which rumbles `spec.controller`.
    pub fn create(spec: PadSpec, rumble: RumbleCallback) -> Result<Self, GamepadError> {
        let PadSpec {
            kind, controller, ..
        } = spec;
        let builder = VirtualDevice::builder().map_err(GamepadError::from_open)?;
        let identity = kind.identity();
        let name = spec.device_name();
        // Made of a fixed prefix and a number: it holds no NUL byte.
        let phys = CString::new(spec.phys()).map_err(|e| GamepadError::Create(e.into()))?;
        let keys: AttributeSet<KeyCode> = kind.keys().into_iter().collect();
        let ff: AttributeSet<FFEffectCode> = [FFEffectCode::FF_RUMBLE, FFEffectCode::FF_GAIN]
            .into_iter()
            .collect();
        let mut builder = builder
            .name(&name)
            .with_phys(&phys)
            .map_err(GamepadError::Create)?
            .input_id(InputId::new(
                BusType::BUS_USB,
                identity.vendor,
                identity.product,
                identity.version,
            ))
            .with_keys(&keys)
            .map_err(GamepadError::Create)?;
        for axis in kind.axes() {
            let info = AbsInfo::new(axis.rest, axis.min, axis.max, axis.fuzz, axis.flat, 0);
            builder = builder
                .with_absolute_axis(&UinputAbsSetup::new(axis.code, info))
                .map_err(GamepadError::Create)?;
        }
        let mut device = builder
            .with_ff(&ff)
            .map_err(GamepadError::Create)?
            .with_ff_effects_max(MAX_EFFECTS as u32)
            .build()
            .map_err(GamepadError::Create)?;
        let node = device
            .enumerate_dev_nodes_blocking()
            .ok()
            .and_then(|mut nodes| nodes.next())
            .and_then(Result::ok);

        // A second descriptor for the same uinput file, so the thread can poll without holding
        // the device lock.
        let poll_fd = device
            .as_fd()
            .try_clone_to_owned()
            .map_err(GamepadError::Create)?;
        let device = Arc::new(Mutex::new(device));
        let (wake_read, wake_write) =
            rustix::pipe::pipe().map_err(|e| GamepadError::Thread(e.into()))?;
        let thread_device = Arc::clone(&device);
        let thread = thread::Builder::new()
            .name(format!("pad-ff-{controller}"))
            .spawn(move || {
                force_feedback_loop(&thread_device, &poll_fd, &wake_read, controller, &rumble)
            })
            .map_err(GamepadError::Thread)?;
        Ok(Self {
            device,
            wake: Some(wake_write),
            thread: Some(thread),
            node,
        })
    }
}

impl PadDevice for UinputPad {
    fn write(&mut self, events: &[InputEvent]) -> Result<(), GamepadError> {
        let mut device = self
            .device
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        device.emit(events).map_err(GamepadError::Write)
    }

    fn node(&self) -> Option<PathBuf> {
        self.node.clone()
    }
}

impl Drop for UinputPad {
    fn drop(&mut self) {
        // Closing the write end makes the read end readable (end of file): the thread exits.
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn force_feedback_loop(
    device: &Mutex<VirtualDevice>,
    poll_fd: &OwnedFd,
    wake: &OwnedFd,
    controller: u8,
    rumble: &RumbleCallback,
) {
    let mut state = RumbleState::new();
    let mut pending = Vec::new();
    loop {
        let now = Instant::now();
        let timeout = state
            .next_change(now)
            .map(|at| {
                at.saturating_duration_since(now)
                    .max(Duration::from_millis(1))
            })
            .and_then(|d| Timespec::try_from(d).ok());
        let mut fds = [
            PollFd::new(poll_fd, PollFlags::IN),
            PollFd::new(wake, PollFlags::IN),
        ];
        let (device_ready, woken) = match poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {
                let [device_fd, wake_fd] = &fds;
                (
                    !device_fd.revents().is_empty(),
                    !wake_fd.revents().is_empty(),
                )
            }
            Err(rustix::io::Errno::INTR) => (false, false),
            Err(error) => {
                tracing::warn!(%error, controller, "gamepad force feedback stopped");
                break;
            }
        };
        if woken {
            break;
        }
        if device_ready {
            let mut device = device
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            pending.clear();
            match device.fetch_events() {
                Ok(events) => pending.extend(events),
                Err(error) => {
                    tracing::warn!(%error, controller, "cannot read force-feedback requests");
                    break;
                }
            }
            for event in pending.drain(..) {
                handle_request(&mut device, &mut state, event);
            }
        }
        if let Some(motors) = state.poll(Instant::now()) {
            rumble(controller, motors);
        }
    }
    // The pad is going away: leave the client's motors off.
    state.stop_all();
    if state.poll(Instant::now()).is_some() {
        rumble(controller, Motors::default());
    }
}

fn handle_request(device: &mut VirtualDevice, state: &mut RumbleState, event: InputEvent) {
    match event.destructure() {
        EventSummary::UInput(request, UInputCode::UI_FF_UPLOAD, _) => {
            match device.process_ff_upload(request) {
                Ok(mut upload) => {
                    let effect = upload.effect();
                    let accepted = match effect.kind {
                        FFEffectKind::Rumble {
                            strong_magnitude,
                            weak_magnitude,
                        } => state.upload(
                            upload.effect_id(),
                            strong_magnitude,
                            weak_magnitude,
                            effect.replay.delay,
                            effect.replay.length,
                        ),
                        // Only FF_RUMBLE is advertised; anything else is refused.
                        _ => false,
                    };
                    if !accepted {
                        upload.set_retval(-libc_einval());
                    }
                    // Dropping `upload` completes the request with its retval.
                }
                Err(error) => tracing::debug!(%error, "force-feedback upload failed"),
            }
        }
        EventSummary::UInput(request, UInputCode::UI_FF_ERASE, _) => {
            match device.process_ff_erase(request) {
                Ok(erase) => {
                    if let Ok(id) = i16::try_from(erase.effect_id()) {
                        state.erase(id);
                    }
                }
                Err(error) => tracing::debug!(%error, "force-feedback erase failed"),
            }
        }
        EventSummary::ForceFeedback(_, FFEffectCode::FF_GAIN, value) => {
            state.set_gain(u16::try_from(value.clamp(0, 0xffff)).unwrap_or(u16::MAX));
        }
        EventSummary::ForceFeedback(_, FFEffectCode(id), value) => {
            if let Ok(id) = i16::try_from(id) {
                state.play(id, value > 0, Instant::now());
            }
        }
        _ => {}
    }
}

/// `EINVAL`, the answer to an effect the pad does not support.
fn libc_einval() -> i32 {
    rustix::io::Errno::INVAL.raw_os_error()
}

impl GamepadError {
    fn from_open(error: io::Error) -> Self {
        let reason = match error.kind() {
            io::ErrorKind::NotFound => {
                "/dev/uinput does not exist (load the uinput kernel module: `modprobe uinput`)".to_owned()
            }
            io::ErrorKind::PermissionDenied => "/dev/uinput is not writable by this user (install udev/60-hati.rules and add the user to the input group)".to_owned(),
            _ => format!("cannot open /dev/uinput: {error}"),
        };
        GamepadError::Unavailable { reason }
    }
}
