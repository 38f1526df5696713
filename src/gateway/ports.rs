//! The front port allocator: the configured range cut into sets of four consecutive ports
//! (RTSP, control, video, audio), handed out and taken back in O(1). A set is free again only
//! when its session ended, so two live sessions never share a port.

use std::collections::VecDeque;
use std::ops::RangeInclusive;

use crate::cluster::PortSet;

/// Ports per session.
const PER_SESSION: u16 = 4;

/// Free and used port sets of one range.
#[derive(Debug)]
pub struct PortAllocator {
    first: u16,
    free: VecDeque<u16>,
    used: Vec<bool>,
}

impl PortAllocator {
    /// The sets that fit in `range` (a tail shorter than four ports is left unused).
    pub fn new(range: RangeInclusive<u16>) -> Self {
        let first = *range.start();
        let count = (u32::from(*range.end()) - u32::from(first) + 1) / u32::from(PER_SESSION);
        let count = u16::try_from(count).unwrap_or(u16::MAX);
        Self {
            first,
            free: (0..count).collect(),
            used: vec![false; usize::from(count)],
        }
    }

    /// How many sets the range holds.
    pub fn capacity(&self) -> usize {
        self.used.len()
    }

    /// How many sets are free.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// A free set; `None` when the range is used up.
    pub fn allocate(&mut self) -> Option<PortSet> {
        let index = self.free.pop_front()?;
        if let Some(used) = self.used.get_mut(usize::from(index)) {
            *used = true;
        }
        Some(self.set(index))
    }

    /// Takes `ports` (a set reported by a node after a gateway restart); false when it is not
    /// a set of this range or already taken.
    pub fn claim(&mut self, ports: PortSet) -> bool {
        let Some(index) = self.index_of(ports) else {
            return false;
        };
        match self.used.get_mut(usize::from(index)) {
            Some(used) if !*used => {
                *used = true;
                self.free.retain(|&free| free != index);
                true
            }
            _ => false,
        }
    }

    /// Gives a set back; false (and nothing changes) when it was not handed out.
    pub fn release(&mut self, ports: PortSet) -> bool {
        let Some(index) = self.index_of(ports) else {
            return false;
        };
        match self.used.get_mut(usize::from(index)) {
            Some(used) if *used => {
                *used = false;
                // Freed sets go to the back: a late packet of an ended session does not meet
                // the next session on the same ports at once.
                self.free.push_back(index);
                true
            }
            _ => false,
        }
    }

    fn set(&self, index: u16) -> PortSet {
        let base = self.first + index * PER_SESSION;
        PortSet {
            rtsp: base,
            control: base + 1,
            video: base + 2,
            audio: base + 3,
        }
    }

    fn index_of(&self, ports: PortSet) -> Option<u16> {
        let offset = ports.rtsp.checked_sub(self.first)?;
        let index = offset / PER_SESSION;
        (offset % PER_SESSION == 0
            && usize::from(index) < self.used.len()
            && self.set(index) == ports)
            .then_some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_set_is_handed_out_once_until_released() {
        let mut ports = PortAllocator::new(40000..=40010);
        assert_eq!(ports.capacity(), 2, "the 3-port tail is unused");
        let a = ports.allocate().unwrap();
        let b = ports.allocate().unwrap();
        assert_eq!(a.rtsp, 40000);
        assert_eq!(
            (b.rtsp, b.control, b.video, b.audio),
            (40004, 40005, 40006, 40007)
        );
        assert_eq!(ports.allocate(), None, "the range is used up");
        assert!(ports.release(a));
        assert!(!ports.release(a), "released twice");
        assert_eq!(ports.allocate(), Some(a));
    }

    #[test]
    fn claims_take_only_free_sets_of_the_range() {
        let mut ports = PortAllocator::new(40000..=40015);
        let third = PortSet {
            rtsp: 40008,
            control: 40009,
            video: 40010,
            audio: 40011,
        };
        assert!(ports.claim(third));
        assert!(!ports.claim(third), "already taken");
        let crooked = PortSet {
            rtsp: 40001,
            ..third
        };
        assert!(!ports.claim(crooked));
        assert!(!ports.claim(PortSet {
            rtsp: 50000,
            control: 50001,
            video: 50002,
            audio: 50003
        }));
        let handed: Vec<_> = std::iter::from_fn(|| ports.allocate()).collect();
        assert_eq!(handed.len(), 3);
        assert!(!handed.contains(&third));
    }

    #[test]
    fn the_top_of_the_port_space_does_not_overflow() {
        let mut ports = PortAllocator::new(65532..=65535);
        let set = ports.allocate().unwrap();
        assert_eq!(set.audio, 65535);
        assert_eq!(ports.allocate(), None);
        let mut whole = PortAllocator::new(1024..=65535);
        assert_eq!(whole.capacity(), (65535 - 1024 + 1) / 4);
        let mut count = 0;
        while whole.allocate().is_some() {
            count += 1;
        }
        assert_eq!(count, whole.capacity());
    }
}
