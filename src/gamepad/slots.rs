//! Player slots of one running app shared by several Moonlight clients ("co-op lobbies"):
//! pure bookkeeping, no device.
//!
//! Each client numbers its own controllers 0–15 (`docs/PROTOCOL.md` §3.7). When several clients
//! share a session, the app sees one set of pads, so every (player, controller number) pair
//! needs its own app slot. As Wolf does, the owner's controllers 0–3 always sit in slots 0–3
//! (reserved even before they are plugged in); every other controller, a guest's or the owner's
//! fifth and up, takes the lowest free slot from 4 on when first used. Guests that join in turn
//! therefore get slots after the owner's in join order, and a slot freed by a leaving guest or
//! an unplugged pad is reused lowest-first.

/// Most app slots one session has (Moonlight sends at most 16 controllers).
pub const MAX_SLOTS: u8 = 16;

/// Slots reserved for the owner's controllers of the same number.
const OWNER_RESERVED: u8 = 4;

/// Who a pad belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Player {
    /// A guest client that joined the session, by guest id.
    Guest(u32),
    /// The client that launched the app.
    Owner,
}

/// Which (player, controller number) holds each app slot.
#[derive(Debug, Clone, Default)]
pub struct PadSlots {
    slots: [Option<(Player, u8)>; MAX_SLOTS as usize],
}

impl PadSlots {
    /// An empty table: no slot is held.
    pub fn new() -> Self {
        Self::default()
    }

    /// The app slot for `player`'s controller `number` (0..16), allocating one on first use.
    ///
    /// Returns `None` when `number` is out of range or every slot that `player` may take is
    /// held. Owner numbers 0..=3 always map to slots 0..=3; any other controller takes the
    /// lowest free slot from 4 on.
    pub fn slot_for(&mut self, player: Player, number: u8) -> Option<u8> {
        if number >= MAX_SLOTS {
            return None;
        }
        if player == Player::Owner && number < OWNER_RESERVED {
            let entry = self.slots.get_mut(usize::from(number))?;
            *entry = Some((player, number));
            return Some(number);
        }
        if let Some(slot) = self.find(player, number) {
            return Some(slot);
        }
        let (slot, entry) = self
            .slots
            .iter_mut()
            .enumerate()
            .skip(usize::from(OWNER_RESERVED))
            .find(|(_, entry)| entry.is_none())?;
        *entry = Some((player, number));
        // The table has MAX_SLOTS (16) entries, so every index fits in a u8.
        u8::try_from(slot).ok()
    }

    /// Where rumble for app slot `slot` goes: the player and its controller number.
    pub fn rumble_target(&self, slot: u8) -> Option<(Player, u8)> {
        self.slots.get(usize::from(slot)).copied().flatten()
    }

    /// A player left: frees its slots and returns them (each is an unplug for the app), ascending.
    pub fn release(&mut self, player: Player) -> Vec<u8> {
        let mut freed = Vec::new();
        for (slot, entry) in (0..MAX_SLOTS).zip(self.slots.iter_mut()) {
            if matches!(entry, Some((owner, _)) if *owner == player) {
                *entry = None;
                freed.push(slot);
            }
        }
        freed
    }

    /// A controller was unplugged by its player (arrival mask bit cleared): frees that one slot.
    pub fn unplug(&mut self, player: Player, number: u8) -> Option<u8> {
        let slot = self.find(player, number)?;
        let entry = self.slots.get_mut(usize::from(slot))?;
        *entry = None;
        Some(slot)
    }

    /// The slot `player`'s controller `number` holds, if any.
    fn find(&self, player: Player, number: u8) -> Option<u8> {
        (0..MAX_SLOTS)
            .zip(self.slots.iter())
            .find(|(_, entry)| **entry == Some((player, number)))
            .map(|(slot, _)| slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Player = Player::Guest(7);
    const B: Player = Player::Guest(9);

    #[test]
    fn owner_numbers_0_to_3_are_fixed() {
        let mut slots = PadSlots::new();
        // A guest joining first must not take the owner's reserved slots.
        assert_eq!(slots.slot_for(A, 0), Some(4));
        // Out of order, and repeated: still the same fixed slot.
        assert_eq!(slots.slot_for(Player::Owner, 3), Some(3));
        assert_eq!(slots.slot_for(Player::Owner, 0), Some(0));
        assert_eq!(slots.slot_for(Player::Owner, 3), Some(3));
        assert_eq!(slots.slot_for(Player::Owner, 1), Some(1));
        assert_eq!(slots.slot_for(Player::Owner, 2), Some(2));
        // The owner's fifth pad takes a free slot like a guest's.
        assert_eq!(slots.slot_for(Player::Owner, 4), Some(5));
    }

    #[test]
    fn guests_get_slots_from_4_in_join_order() {
        let mut slots = PadSlots::new();
        assert_eq!(slots.slot_for(Player::Owner, 0), Some(0));
        assert_eq!(slots.slot_for(A, 0), Some(4));
        assert_eq!(slots.slot_for(A, 1), Some(5));
        assert_eq!(slots.slot_for(B, 0), Some(6));
        assert_eq!(slots.slot_for(B, 1), Some(7));
    }

    #[test]
    fn interleaved_guest_pads_keep_stable_slots() {
        let mut slots = PadSlots::new();
        assert_eq!(slots.slot_for(A, 0), Some(4));
        assert_eq!(slots.slot_for(B, 0), Some(5));
        assert_eq!(slots.slot_for(A, 1), Some(6));
        assert_eq!(slots.slot_for(B, 2), Some(7));
        // Every later packet finds the same slot, and allocates nothing new.
        for _ in 0..3 {
            assert_eq!(slots.slot_for(B, 0), Some(5));
            assert_eq!(slots.slot_for(A, 1), Some(6));
            assert_eq!(slots.slot_for(A, 0), Some(4));
            assert_eq!(slots.slot_for(B, 2), Some(7));
        }
        assert_eq!(slots.slot_for(A, 2), Some(8));
    }

    #[test]
    fn rumble_goes_back_to_its_player_and_number() {
        let mut slots = PadSlots::new();
        assert_eq!(slots.slot_for(Player::Owner, 1), Some(1));
        assert_eq!(slots.slot_for(A, 3), Some(4));
        assert_eq!(slots.slot_for(B, 3), Some(5));
        assert_eq!(slots.rumble_target(1), Some((Player::Owner, 1)));
        assert_eq!(slots.rumble_target(4), Some((A, 3)));
        assert_eq!(slots.rumble_target(5), Some((B, 3)));
        // Slots without a pad, and slots past the end, rumble no one.
        assert_eq!(slots.rumble_target(0), None);
        assert_eq!(slots.rumble_target(6), None);
        assert_eq!(slots.rumble_target(MAX_SLOTS), None);
        assert_eq!(slots.rumble_target(u8::MAX), None);
    }

    #[test]
    fn release_frees_only_that_guest_and_slots_are_reused_lowest_first() {
        let mut slots = PadSlots::new();
        assert_eq!(slots.slot_for(Player::Owner, 0), Some(0));
        assert_eq!(slots.slot_for(A, 0), Some(4));
        assert_eq!(slots.slot_for(B, 0), Some(5));
        assert_eq!(slots.slot_for(A, 1), Some(6));
        assert_eq!(slots.slot_for(B, 1), Some(7));
        assert_eq!(slots.slot_for(A, 2), Some(8));

        assert_eq!(slots.release(A), vec![4, 6, 8]);
        assert_eq!(slots.release(A), Vec::<u8>::new());
        assert_eq!(slots.rumble_target(4), None);
        assert_eq!(slots.rumble_target(0), Some((Player::Owner, 0)));
        assert_eq!(slots.rumble_target(5), Some((B, 0)));
        assert_eq!(slots.rumble_target(7), Some((B, 1)));

        let c = Player::Guest(11);
        assert_eq!(slots.slot_for(c, 2), Some(4));
        assert_eq!(slots.slot_for(c, 0), Some(6));
        assert_eq!(slots.slot_for(c, 1), Some(8));
        assert_eq!(slots.slot_for(c, 3), Some(9));
    }

    #[test]
    fn exhaustion_returns_none() {
        let mut slots = PadSlots::new();
        for number in 0..12 {
            assert_eq!(slots.slot_for(A, number), Some(number + 4));
        }
        // Slots 4..16 are full; guests never spill into the owner's reserved 0..=3.
        assert_eq!(slots.slot_for(B, 0), None);
        assert_eq!(slots.slot_for(A, 12), None);
        assert_eq!(slots.slot_for(Player::Owner, 4), None);
        // The owner's reserved slots are still there, and held pads still resolve.
        assert_eq!(slots.slot_for(Player::Owner, 0), Some(0));
        assert_eq!(slots.slot_for(A, 11), Some(15));
        // A freed slot can be taken again.
        assert_eq!(slots.unplug(A, 5), Some(9));
        assert_eq!(slots.slot_for(B, 0), Some(9));
        assert_eq!(slots.slot_for(B, 1), None);
    }

    #[test]
    fn unplug_then_replug_gets_a_slot_again() {
        let mut slots = PadSlots::new();
        assert_eq!(slots.slot_for(A, 0), Some(4));
        assert_eq!(slots.slot_for(A, 1), Some(5));
        assert_eq!(slots.slot_for(Player::Owner, 2), Some(2));

        assert_eq!(slots.unplug(A, 0), Some(4));
        assert_eq!(slots.rumble_target(4), None);
        assert_eq!(slots.rumble_target(5), Some((A, 1)));
        // Unplugging again, or a pad that was never plugged, frees nothing.
        assert_eq!(slots.unplug(A, 0), None);
        assert_eq!(slots.unplug(B, 1), None);
        assert_eq!(slots.slot_for(A, 0), Some(4));

        assert_eq!(slots.unplug(Player::Owner, 2), Some(2));
        assert_eq!(slots.rumble_target(2), None);
        assert_eq!(slots.slot_for(Player::Owner, 2), Some(2));
    }

    #[test]
    fn numbers_from_16_are_out_of_range() {
        let mut slots = PadSlots::new();
        assert_eq!(slots.slot_for(Player::Owner, MAX_SLOTS), None);
        assert_eq!(slots.slot_for(A, MAX_SLOTS), None);
        assert_eq!(slots.slot_for(A, u8::MAX), None);
        assert_eq!(slots.unplug(A, MAX_SLOTS), None);
        // A rejected number allocates nothing.
        assert_eq!(slots.slot_for(A, 15), Some(4));
    }
}
