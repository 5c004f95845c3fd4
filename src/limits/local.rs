//! The in-process counter store: exact fixed windows in a map sharded 16 ways, each shard
//! under its own lock. A decision that touches several counters (calls, a token reservation,
//! budgets) locks their shards in ascending order, checks every counter, then adds to all of
//! them or to none.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

use super::{Item, Key, Outcome};

const SHARDS: usize = 16;
/// Entries a shard may hold before windows that ended are swept.
const SWEEP_AT: usize = 4096;

struct Window {
    index: u64,
    /// When the window ends (seconds since the epoch).
    ends: u64,
    count: u64,
}

/// Counters of this process.
pub(super) struct Local {
    shards: Vec<Mutex<HashMap<Key, Window>>>,
    hasher: RandomState,
}

impl Local {
    pub(super) fn new() -> Local {
        Local { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(), hasher: RandomState::new() }
    }

    fn shard_of(&self, key: &Key) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, HashMap<Key, Window>> {
        match self.shards[shard].lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Decide `items` at `now`: all are added, or none (the first that does not fit is named).
    pub(super) fn decide(&self, items: &[Item], now: u64) -> Outcome {
        if let [item] = items {
            return self.decide_one(item, now);
        }
        let mut shards: Vec<usize> = items.iter().map(|i| self.shard_of(&i.key)).collect();
        let of_item = shards.clone();
        shards.sort_unstable();
        shards.dedup();
        // Ascending order: two decisions never wait for each other's locks in a cycle.
        let mut guards: Vec<(usize, MutexGuard<'_, HashMap<Key, Window>>)> =
            shards.iter().map(|&s| (s, self.lock(s))).collect();
        let mut out = Outcome { admitted: true, failed: 0, now, counters: Vec::with_capacity(items.len()) };
        for (i, item) in items.iter().enumerate() {
            // Every item's shard is locked; the fallback is never taken.
            let map = guards.iter().position(|(s, _)| *s == of_item[i]).unwrap_or(0);
            let period = item.period.max(1);
            let index = now / period;
            let used = guards[map].1.get(&item.key).filter(|w| w.index == index).map_or(0, |w| w.count);
            out.counters.push((index, used));
            if out.admitted && used.saturating_add(item.amount) > item.limit {
                out.admitted = false;
                out.failed = i;
            }
        }
        if !out.admitted {
            return out;
        }
        for (i, item) in items.iter().enumerate() {
            let g = guards.iter().position(|(s, _)| *s == of_item[i]).unwrap_or(0);
            let map = &mut guards[g].1;
            let period = item.period.max(1);
            let index = now / period;
            if map.len() >= SWEEP_AT {
                // Windows that ended are worth nothing; drop them (bounded memory with many callers).
                map.retain(|_, w| w.ends > now);
            }
            let w = map.entry(item.key.clone()).or_insert(Window { index, ends: (index + 1) * period, count: 0 });
            if w.index != index {
                *w = Window { index, ends: (index + 1) * period, count: 0 };
            }
            w.count = w.count.saturating_add(item.amount);
            out.counters[i].1 = w.count;
        }
        out
    }

    /// [`Local::decide`] for one counter (most endpoints have only a call limit): one lock, no
    /// bookkeeping of shards.
    fn decide_one(&self, item: &Item, now: u64) -> Outcome {
        let period = item.period.max(1);
        let index = now / period;
        let mut map = self.lock(self.shard_of(&item.key));
        if map.len() >= SWEEP_AT {
            map.retain(|_, w| w.ends > now);
        }
        let used = map.get(&item.key).filter(|w| w.index == index).map_or(0, |w| w.count);
        if used.saturating_add(item.amount) > item.limit {
            return Outcome { admitted: false, failed: 0, now, counters: vec![(index, used)] };
        }
        let w = map.entry(item.key.clone()).or_insert(Window { index, ends: (index + 1) * period, count: 0 });
        if w.index != index {
            *w = Window { index, ends: (index + 1) * period, count: 0 };
        }
        w.count = w.count.saturating_add(item.amount);
        Outcome { admitted: true, failed: 0, now, counters: vec![(index, w.count)] }
    }

    /// The window index and count of `key` at `now`, without changing it.
    pub(super) fn peek(&self, key: &Key, period: u64, now: u64) -> (u64, u64) {
        let index = now / period.max(1);
        let used = self.lock(self.shard_of(key)).get(key).filter(|w| w.index == index).map_or(0, |w| w.count);
        (index, used)
    }

    /// Add `delta` to `key`'s count in window `index` (nothing if that window has ended); never
    /// below zero.
    pub(super) fn settle(&self, key: &Key, index: u64, delta: i64) {
        if delta == 0 {
            return;
        }
        if let Some(w) = self.lock(self.shard_of(key)).get_mut(key).filter(|w| w.index == index) {
            w.count = w.count.saturating_add_signed(delta);
        }
    }
}
