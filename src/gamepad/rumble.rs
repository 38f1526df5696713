//! Force feedback bookkeeping for a virtual pad: pure code, no device.
//!
//! A game drives rumble through the kernel's force-feedback interface: it uploads `FF_RUMBLE`
//! effects (a strong and a weak motor magnitude, a delay and a length), then plays and stops
//! them by id, and may set a global gain. uinput hands those requests to Hati; [`RumbleState`]
//! keeps the effects and works out the two motor values the client should run, as the kernel's
//! memoryless FF core does for real pads: playing effects add up (saturating), an effect with
//! length 0 plays until stopped, and the gain scales the result.
//!
//! Moonlight's rumble message carries `lowFreqMotor` (the strong, heavy motor) and
//! `highFreqMotor` (the weak, light motor).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most effects one pad holds (the device advertises this many slots).
pub const MAX_EFFECTS: usize = 16;

/// Motor values to send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Motors {
    /// Low-frequency (strong) motor, 0–65535.
    pub low_freq: u16,
    /// High-frequency (weak) motor, 0–65535.
    pub high_freq: u16,
}

#[derive(Debug, Clone, Copy)]
struct Effect {
    strong: u16,
    weak: u16,
    delay: Duration,
    length: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Playing {
    starts: Instant,
    ends: Option<Instant>,
}

/// The uploaded effects of one pad, which of them play, and the last motor values reported.
#[derive(Debug)]
pub struct RumbleState {
    effects: HashMap<i16, Effect>,
    playing: HashMap<i16, Playing>,
    gain: u16,
    reported: Motors,
}

impl Default for RumbleState {
    fn default() -> Self {
        Self {
            effects: HashMap::new(),
            playing: HashMap::new(),
            gain: u16::MAX,
            reported: Motors::default(),
        }
    }
}

impl RumbleState {
    /// A pad with no effects, full gain, motors off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores (or replaces) rumble effect `id`. Returns false when the pad is full.
    pub fn upload(
        &mut self,
        id: i16,
        strong: u16,
        weak: u16,
        delay_ms: u16,
        length_ms: u16,
    ) -> bool {
        if !self.effects.contains_key(&id) && self.effects.len() >= MAX_EFFECTS {
            return false;
        }
        let effect = Effect {
            strong,
            weak,
            delay: Duration::from_millis(delay_ms.into()),
            length: Duration::from_millis(length_ms.into()),
        };
        self.effects.insert(id, effect);
        true
    }

    /// Forgets effect `id` (stopping it).
    pub fn erase(&mut self, id: i16) {
        self.effects.remove(&id);
        self.playing.remove(&id);
    }

    /// Starts (`play`) or stops effect `id` at `now`. Unknown ids are ignored.
    pub fn play(&mut self, id: i16, play: bool, now: Instant) {
        match (play, self.effects.get(&id)) {
            (true, Some(effect)) => {
                let starts = now + effect.delay;
                let ends = (!effect.length.is_zero()).then(|| starts + effect.length);
                self.playing.insert(id, Playing { starts, ends });
            }
            _ => {
                self.playing.remove(&id);
            }
        }
    }

    /// Sets the global gain (0–65535).
    pub fn set_gain(&mut self, gain: u16) {
        self.gain = gain;
    }

    /// Stops every effect.
    pub fn stop_all(&mut self) {
        self.playing.clear();
    }

    /// The motor values at `now`.
    pub fn motors(&self, now: Instant) -> Motors {
        let (mut strong, mut weak) = (0u16, 0u16);
        for (id, playing) in &self.playing {
            let active = playing.starts <= now && playing.ends.is_none_or(|end| now < end);
            if let (true, Some(effect)) = (active, self.effects.get(id)) {
                strong = strong.saturating_add(effect.strong);
                weak = weak.saturating_add(effect.weak);
            }
        }
        Motors {
            low_freq: scale(strong, self.gain),
            high_freq: scale(weak, self.gain),
        }
    }

    /// Drops finished effects and returns the motor values at `now` if they differ from the
    /// last ones returned.
    pub fn poll(&mut self, now: Instant) -> Option<Motors> {
        self.playing
            .retain(|_, p| p.ends.is_none_or(|end| now < end));
        let motors = self.motors(now);
        (motors != self.reported).then(|| {
            self.reported = motors;
            motors
        })
    }

    /// When the motor values next change on their own (an effect starting after its delay or
    /// reaching its end), if ever.
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        self.playing
            .values()
            .flat_map(|p| [Some(p.starts), p.ends])
            .flatten()
            .filter(|&t| t > now)
            .min()
    }
}

fn scale(value: u16, gain: u16) -> u16 {
    // value * gain / 65535 ≤ 65535, so the conversion cannot fail.
    u16::try_from(u32::from(value) * u32::from(gain) / u32::from(u16::MAX)).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn play_and_stop_report_changes_once() {
        let t0 = Instant::now();
        let mut rumble = RumbleState::new();
        assert!(rumble.upload(0, 0x8000, 0x1000, 0, 0));
        assert_eq!(rumble.poll(t0), None);
        rumble.play(0, true, t0);
        assert_eq!(
            rumble.poll(t0),
            Some(Motors {
                low_freq: 0x8000,
                high_freq: 0x1000
            })
        );
        assert_eq!(
            rumble.poll(t0 + ms(5000)),
            None,
            "length 0 plays until stopped"
        );
        rumble.play(0, false, t0 + ms(5000));
        assert_eq!(rumble.poll(t0 + ms(5000)), Some(Motors::default()));
    }

    #[test]
    fn length_and_delay() {
        let t0 = Instant::now();
        let mut rumble = RumbleState::new();
        rumble.upload(3, 100, 200, 50, 100);
        rumble.play(3, true, t0);
        assert_eq!(rumble.next_change(t0), Some(t0 + ms(50)));
        assert_eq!(rumble.poll(t0), None);
        assert_eq!(
            rumble.poll(t0 + ms(50)),
            Some(Motors {
                low_freq: 100,
                high_freq: 200
            })
        );
        assert_eq!(rumble.next_change(t0 + ms(50)), Some(t0 + ms(150)));
        assert_eq!(rumble.poll(t0 + ms(150)), Some(Motors::default()));
        assert_eq!(rumble.next_change(t0 + ms(150)), None);
    }

    #[test]
    fn effects_add_up_and_gain_scales() {
        let t0 = Instant::now();
        let mut rumble = RumbleState::new();
        rumble.upload(0, 0xf000, 0, 0, 0);
        rumble.upload(1, 0xf000, 0x100, 0, 0);
        rumble.play(0, true, t0);
        rumble.play(1, true, t0);
        assert_eq!(
            rumble.motors(t0),
            Motors {
                low_freq: 0xffff,
                high_freq: 0x100
            }
        );
        rumble.set_gain(0x8000);
        assert_eq!(rumble.motors(t0).low_freq, 0x8000);
        rumble.erase(0);
        rumble.set_gain(u16::MAX);
        assert_eq!(
            rumble.motors(t0),
            Motors {
                low_freq: 0xf000,
                high_freq: 0x100
            }
        );
        rumble.stop_all();
        assert_eq!(rumble.motors(t0), Motors::default());
    }

    #[test]
    fn re_upload_updates_a_playing_effect_and_slots_are_capped() {
        let t0 = Instant::now();
        let mut rumble = RumbleState::new();
        rumble.upload(0, 10, 10, 0, 0);
        rumble.play(0, true, t0);
        rumble.upload(0, 20, 30, 0, 0);
        assert_eq!(
            rumble.motors(t0),
            Motors {
                low_freq: 20,
                high_freq: 30
            }
        );
        for id in 1..MAX_EFFECTS as i16 {
            assert!(rumble.upload(id, 1, 1, 0, 0));
        }
        assert!(!rumble.upload(99, 1, 1, 0, 0));
        assert!(
            rumble.upload(5, 2, 2, 0, 0),
            "replacing an existing id needs no new slot"
        );
        rumble.play(42, true, t0);
        assert_eq!(
            rumble.motors(t0),
            Motors {
                low_freq: 20,
                high_freq: 30
            },
            "unknown id ignored"
        );
    }
}
