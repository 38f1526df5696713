//! Where a new session goes: the connected node with a free slot whose share of its capacity
//! in use is lowest (then the lowest CPU load, then the oldest node), so sessions spread out.

use std::collections::BTreeMap;

/// What placement needs to know of a node.
pub trait Slots {
    /// Sessions it may run together.
    fn capacity(&self) -> u32;
    /// Sessions placed on it, launches under way included.
    fn placed(&self) -> u32;
    /// Its CPU load, 0.0–1.0.
    fn load(&self) -> f32;
}

/// The node a new session should go to; `None` when every node is full (or none is connected).
pub fn choose<N: Slots>(nodes: &BTreeMap<u32, N>) -> Option<u32> {
    nodes
        .iter()
        .filter(|(_, node)| node.placed() < node.capacity())
        .min_by(|(a_id, a), (b_id, b)| {
            // placed/capacity compared without division: a.placed * b.cap vs b.placed * a.cap.
            let share_a = u64::from(a.placed()) * u64::from(b.capacity());
            let share_b = u64::from(b.placed()) * u64::from(a.capacity());
            share_a
                .cmp(&share_b)
                .then(a.load().total_cmp(&b.load()))
                .then(a_id.cmp(b_id))
        })
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Node(u32, u32, f32);
    impl Slots for Node {
        fn capacity(&self) -> u32 {
            self.0
        }
        fn placed(&self) -> u32 {
            self.1
        }
        fn load(&self) -> f32 {
            self.2
        }
    }

    #[test]
    fn the_least_used_share_wins_and_full_nodes_are_skipped() {
        let mut nodes = BTreeMap::new();
        nodes.insert(1, Node(4, 2, 0.1)); // half used
        nodes.insert(2, Node(8, 2, 0.9)); // a quarter used
        nodes.insert(3, Node(1, 1, 0.0)); // full
        assert_eq!(choose(&nodes), Some(2));
        nodes.insert(2, Node(8, 4, 0.9)); // half used, busier CPU
        assert_eq!(choose(&nodes), Some(1));
        nodes.insert(1, Node(4, 4, 0.1));
        nodes.insert(2, Node(8, 8, 0.1));
        assert_eq!(choose(&nodes), None, "every node is full");
        assert_eq!(choose::<Node>(&BTreeMap::new()), None);
    }

    #[test]
    fn ties_go_to_the_lower_load_then_the_older_node() {
        let mut nodes = BTreeMap::new();
        nodes.insert(5, Node(2, 0, 0.5));
        nodes.insert(7, Node(2, 0, 0.2));
        assert_eq!(choose(&nodes), Some(7));
        nodes.insert(7, Node(2, 0, 0.5));
        assert_eq!(choose(&nodes), Some(5));
    }
}
