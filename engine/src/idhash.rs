//! A hasher for page ids in the writer's in-memory maps.
//!
//! The dirty-node map is touched for every node a commit reads or writes, so SipHash (std's
//! default, built to resist keys chosen by an attacker) was a fifth of the CPU of a bulk load.
//! Page ids come from the allocator, never from users, so a multiplicative hash is enough.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::page::PageId;

/// Fibonacci hashing of one `u64`: multiply by 2^64 / golden ratio and keep the high bits in
/// the low half too, since hashbrown takes its bucket index from the low bits and its tag from
/// the high ones.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let h = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^ (h >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for page ids; anything else is folded in byte by byte so
        // the hasher stays correct (if slow) for other key types.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x100_0000_01B3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// A map keyed by page id.
pub(crate) type IdMap<V> = HashMap<PageId, V, BuildHasherDefault<IdHasher>>;
/// A set of page ids.
pub(crate) type IdSet = HashSet<PageId, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keep_every_id() {
        let mut m: IdMap<u64> = IdMap::default();
        for id in (0..10_000u64).map(|i| i * 4096 + 2) {
            m.insert(id, id + 1);
        }
        assert_eq!(m.len(), 10_000);
        assert!((0..10_000u64).all(|i| m[&(i * 4096 + 2)] == i * 4096 + 3));
    }
}
