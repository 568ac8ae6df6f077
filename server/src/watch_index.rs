//! Which watches a changed key concerns: the index the shared watch dispatcher routes events
//! with.
//!
//! Watches are kept in three groups so that matching one key costs little whatever the number
//! of watches: single-key watches in a hash map by key (one lookup), prefix watches in a hash
//! map by prefix (one lookup per distinct prefix length present, usually a handful), and every
//! other range (from-key, arbitrary `[start, end)`) in a list checked one by one (rare in
//! practice: etcd clients watch keys and prefixes). Many watches on the same key or prefix share
//! one bucket, so 10,000 watchers of one prefix cost one lookup per event plus the visit of each
//! watcher, which delivery costs anyway.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use etch_engine::{prefix_end, Range};

/// A watch: the stream that owns it and its id on that stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchKey {
    /// The stream's id (given by the dispatcher).
    pub stream: u64,
    /// The watch id, unique on its stream.
    pub id: i64,
}

/// What a watch asks for, fixed at creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSpec {
    /// The watched keys.
    pub range: Range,
    /// Include each event's previous key-value.
    pub prev_kv: bool,
    /// Leave out puts.
    pub no_put: bool,
    /// Leave out deletes.
    pub no_delete: bool,
}

impl WatchSpec {
    /// Whether an event of this kind passes the watch's filters.
    pub fn wants(&self, is_put: bool) -> bool {
        if is_put {
            !self.no_put
        } else {
            !self.no_delete
        }
    }
}

/// A watch in the index: its spec and the first revision it is to receive.
#[derive(Clone, Debug)]
pub struct Entry {
    /// What the watch asks for.
    pub spec: WatchSpec,
    /// Events below this revision were delivered another way (or precede the watch).
    pub from: i64,
}

/// Where an entry lives, so that removal finds it.
#[derive(Clone, Debug)]
enum Slot {
    Single(Vec<u8>),
    Prefix(Vec<u8>),
    Other,
}

type Bucket = HashMap<WatchKey, Entry>;

/// The watches of every stream that follow the shared path.
#[derive(Default)]
pub struct WatchIndex {
    single: HashMap<Vec<u8>, Bucket>,
    prefix: HashMap<Vec<u8>, Bucket>,
    /// Number of distinct prefixes of each length in `prefix`.
    prefix_lens: BTreeMap<usize, usize>,
    other: Bucket,
    slots: HashMap<WatchKey, Slot>,
    by_stream: HashMap<u64, BTreeSet<i64>>,
    prev_kv: usize,
}

impl WatchIndex {
    /// Number of watches in the index.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the index holds no watch.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Number of watches that want previous key-values.
    pub fn prev_kv_watches(&self) -> usize {
        self.prev_kv
    }

    /// Whether `key` is in the index.
    pub fn contains(&self, key: &WatchKey) -> bool {
        self.slots.contains_key(key)
    }

    /// Adds a watch, replacing one with the same key.
    pub fn insert(&mut self, key: WatchKey, entry: Entry) {
        self.remove(&key);
        let range = &entry.spec.range;
        let slot = if range.is_single() {
            Slot::Single(range.start().to_vec())
        } else if is_prefix(range) {
            Slot::Prefix(range.start().to_vec())
        } else {
            Slot::Other
        };
        if entry.spec.prev_kv {
            self.prev_kv += 1;
        }
        match &slot {
            Slot::Single(k) => {
                self.single.entry(k.clone()).or_default().insert(key, entry);
            }
            Slot::Prefix(p) => {
                let bucket = self.prefix.entry(p.clone()).or_default();
                if bucket.is_empty() {
                    *self.prefix_lens.entry(p.len()).or_default() += 1;
                }
                bucket.insert(key, entry);
            }
            Slot::Other => {
                self.other.insert(key, entry);
            }
        }
        self.slots.insert(key, slot);
        self.by_stream.entry(key.stream).or_default().insert(key.id);
    }

    /// Removes a watch; returns its entry if it was there.
    pub fn remove(&mut self, key: &WatchKey) -> Option<Entry> {
        let slot = self.slots.remove(key)?;
        if let Some(ids) = self.by_stream.get_mut(&key.stream) {
            ids.remove(&key.id);
            if ids.is_empty() {
                self.by_stream.remove(&key.stream);
            }
        }
        let entry = match slot {
            Slot::Single(k) => take(&mut self.single, &k, key),
            Slot::Prefix(p) => {
                let entry = take(&mut self.prefix, &p, key);
                if !self.prefix.contains_key(&p) {
                    if let Some(n) = self.prefix_lens.get_mut(&p.len()) {
                        *n -= 1;
                        if *n == 0 {
                            self.prefix_lens.remove(&p.len());
                        }
                    }
                }
                entry
            }
            Slot::Other => self.other.remove(key),
        };
        if entry.as_ref().is_some_and(|e| e.spec.prev_kv) {
            self.prev_kv -= 1;
        }
        entry
    }

    /// Removes every watch of `stream`; returns them.
    pub fn remove_stream(&mut self, stream: u64) -> Vec<(i64, Entry)> {
        let ids = self.by_stream.get(&stream).cloned().unwrap_or_default();
        ids.into_iter()
            .filter_map(|id| {
                self.remove(&WatchKey { stream, id })
                    .map(|entry| (id, entry))
            })
            .collect()
    }

    /// Every stream with a watch in the index.
    pub fn streams(&self) -> Vec<u64> {
        self.by_stream.keys().copied().collect()
    }

    /// Calls `f` for each watch whose range holds `key`.
    pub fn for_each_match(&self, key: &[u8], mut f: impl FnMut(&WatchKey, &Entry)) {
        if let Some(bucket) = self.single.get(key) {
            bucket.iter().for_each(|(k, e)| f(k, e));
        }
        for &len in self.prefix_lens.keys() {
            if len > key.len() {
                break;
            }
            if let Some(bucket) = self.prefix.get(&key[..len]) {
                bucket.iter().for_each(|(k, e)| f(k, e));
            }
        }
        for (k, e) in &self.other {
            if e.spec.range.contains(key) {
                f(k, e);
            }
        }
    }
}

/// Whether `range` is exactly the keys starting with its start key, so that membership is a
/// prefix test. (An all-0xff prefix has no upper bound and is left to the general list.)
fn is_prefix(range: &Range) -> bool {
    let start = range.start();
    !start.is_empty() && range.end() != [0] && range.end() == prefix_end(start).as_slice()
}

fn take(map: &mut HashMap<Vec<u8>, Bucket>, bucket: &[u8], key: &WatchKey) -> Option<Entry> {
    let b = map.get_mut(bucket)?;
    let entry = b.remove(key);
    if b.is_empty() {
        map.remove(bucket);
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(range: Range) -> WatchSpec {
        WatchSpec {
            range,
            prev_kv: false,
            no_put: false,
            no_delete: false,
        }
    }

    fn matches(index: &WatchIndex, key: &[u8]) -> Vec<i64> {
        let mut ids = Vec::new();
        index.for_each_match(key, |k, _| ids.push(k.id));
        ids.sort();
        ids
    }

    #[test]
    fn matches_agree_with_range_contains() {
        let ranges = [
            Range::key("a"),
            Range::key("ab"),
            Range::prefix("a"),
            Range::prefix("ab"),
            Range::prefix("b"),
            Range::between("aa", "ac"),
            Range::from_key("b"),
            Range::all(),
            Range::prefix([0xff]),
        ];
        let mut index = WatchIndex::default();
        for (i, r) in ranges.iter().enumerate() {
            let key = WatchKey {
                stream: (i % 3) as u64,
                id: i as i64,
            };
            index.insert(
                key,
                Entry {
                    spec: spec(r.clone()),
                    from: 1,
                },
            );
        }
        let keys: [&[u8]; 9] = [
            b"a",
            b"ab",
            b"abc",
            b"aa",
            b"ac",
            b"b",
            b"bz",
            b"c",
            b"\xff\x01",
        ];
        for key in keys {
            let expected: Vec<i64> = ranges
                .iter()
                .enumerate()
                .filter(|(_, r)| r.contains(key))
                .map(|(i, _)| i as i64)
                .collect();
            assert_eq!(matches(&index, key), expected, "key {key:?}");
        }
        // Removal, one by one and by stream, leaves nothing behind.
        assert!(index
            .remove(&WatchKey { stream: 2, id: 2 })
            .is_some_and(|e| e.spec.range == Range::prefix("a")));
        assert_eq!(matches(&index, b"ab"), vec![1, 3, 5, 7]);
        let gone = index.remove_stream(0);
        assert_eq!(gone.len(), 3);
        assert_eq!(matches(&index, b"ab"), vec![1, 5, 7]);
        index.remove_stream(1);
        index.remove_stream(2);
        assert!(index.is_empty());
        assert!(index.prefix_lens.is_empty() && index.prefix.is_empty());
        assert!(index.single.is_empty() && index.other.is_empty());
    }

    #[test]
    fn counts_prev_kv_watches() {
        let mut index = WatchIndex::default();
        let key = WatchKey { stream: 1, id: 1 };
        let mut s = spec(Range::key("k"));
        s.prev_kv = true;
        index.insert(key, Entry { spec: s, from: 1 });
        assert_eq!(index.prev_kv_watches(), 1);
        index.remove(&key);
        assert_eq!(index.prev_kv_watches(), 0);
    }
}
