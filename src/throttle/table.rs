//! One dimension's failure counts (the usernames', or the addresses'):
//! each key's failures within the window and its attempts in flight, the
//! lines of attempts waiting on a key, and the eviction that bounds the
//! table's memory (the parent module's header says what each promises).

use super::{Settle, PURGE_BATCH};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};

/// The hasher of the usernames' table, whose keys are already keyed
/// SipHash outputs: hashing them again would only cost time, and nobody
/// can aim collisions at values they cannot compute.
#[derive(Default)]
pub(super) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else is folded in, not lost.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// What one key says of an attempt now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Below its limit, counting the attempts in flight.
    Go,
    /// Below its limit of settled failures, but not with those in flight.
    Wait,
    /// At its limit of settled failures: milliseconds until the oldest
    /// leaves the window.
    Throttled(u64),
}

impl Verdict {
    pub(super) fn throttled(self) -> Option<u64> {
        match self {
            Verdict::Throttled(ms) => Some(ms),
            Verdict::Go | Verdict::Wait => None,
        }
    }
}

/// One dimension's counters.
pub(super) struct Table<K, H> {
    /// Failures a key may have within the window; 0 disables the table.
    pub(super) limit: u32,
    pub(super) window_ms: u64,
    pub(super) cap: usize,
    pub(super) map: HashMap<K, Entry, H>,
    /// The attempts waiting for a place on a key, by their place in line,
    /// sorted (places are handed out in order, so a join is nearly always
    /// a push); only keys someone waits on (waiters are bounded by
    /// connections).
    pub(super) lines: HashMap<K, Vec<u64>, H>,
    /// Keys below their limit by the sequence number of their last
    /// activity (a failure or an admission), oldest first: what to purge,
    /// and whom to evict first.
    open: BTreeMap<u64, K>,
    /// Keys at their limit (throttled), the same way: evicted only when no
    /// open key is left.
    pub(super) full: BTreeMap<u64, K>,
    next_seq: u64,
}

/// One key's failures within the window, and its attempts in flight.
pub(super) struct Entry {
    /// Settled failures, milliseconds since the throttle's epoch, oldest
    /// first; at most `limit` of them, since older ones cannot change the
    /// verdict.
    pub(super) times: VecDeque<u64>,
    /// Attempts admitted and not settled yet; at most `limit`, as
    /// admission lets no more through.
    in_flight: u32,
    /// This entry's key in [`Table::open`] or [`Table::full`].
    seq: u64,
    /// Which of the two it is in.
    pub(super) full: bool,
}

impl<K: Copy + Eq + Hash, H: BuildHasher + Default> Table<K, H> {
    pub(super) fn new(limit: u32, window_ms: u64, cap: usize) -> Table<K, H> {
        Table {
            limit,
            window_ms,
            cap,
            map: HashMap::default(),
            lines: HashMap::default(),
            open: BTreeMap::new(),
            full: BTreeMap::new(),
            next_seq: 0,
        }
    }

    fn enabled(&self) -> bool {
        self.limit > 0 && self.cap > 0 && self.window_ms > 0
    }

    /// What `key` says of one more attempt now, from the attempt with
    /// place `ticket` in line (`u64::MAX`: a newcomer, behind everyone);
    /// drops the failures that have left the window.
    pub(super) fn verdict(&mut self, key: K, now: u64, ticket: u64) -> Verdict {
        if !self.enabled() {
            return Verdict::Go;
        }
        let window_ms = self.window_ms;
        let limit = self.limit as usize;
        // Waiting older than it, as many as there are places at most.
        let lines = &self.lines;
        let older = |free: usize| {
            lines
                .get(&key)
                .map_or(0, |line| line.partition_point(|&t| t < ticket).min(free))
        };
        let Some(entry) = self.map.get_mut(&key) else {
            return if older(limit) >= limit {
                Verdict::Wait
            } else {
                Verdict::Go
            };
        };
        while entry
            .times
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= window_ms)
        {
            entry.times.pop_front();
        }
        let taken = entry.times.len() + entry.in_flight as usize;
        let verdict = match entry.times.front() {
            Some(&oldest) if entry.times.len() >= limit => {
                Verdict::Throttled(oldest.saturating_add(window_ms).saturating_sub(now))
            }
            _ if taken >= limit => Verdict::Wait,
            _ if older(limit - taken) >= limit - taken => Verdict::Wait,
            _ => Verdict::Go,
        };
        if entry.times.is_empty() && entry.in_flight == 0 {
            self.remove(key);
        } else {
            self.reindex(key);
        }
        verdict
    }

    /// Puts the attempt with place `ticket` in `key`'s line.
    pub(super) fn join(&mut self, key: K, ticket: u64) {
        let line = self.lines.entry(key).or_default();
        let at = line.partition_point(|&t| t < ticket);
        line.insert(at, ticket);
    }

    /// Takes the attempt with place `ticket` out of `key`'s line.
    pub(super) fn leave(&mut self, key: K, ticket: u64) {
        if let Some(line) = self.lines.get_mut(&key) {
            if let Ok(at) = line.binary_search(&ticket) {
                line.remove(at);
            }
            if line.is_empty() {
                self.lines.remove(&key);
            }
        }
    }

    /// Holds one attempt of `key` in flight from `now`; whether the table
    /// counts at all.
    pub(super) fn reserve(&mut self, key: K, now: u64) -> bool {
        let Some(entry) = self.touch(key, now) else {
            return false;
        };
        entry.in_flight = entry.in_flight.saturating_add(1);
        self.reindex(key);
        true
    }

    /// Counts a failure of `key` at `now`; whether the table counts at all.
    pub(super) fn record(&mut self, key: K, now: u64) -> bool {
        let limit = self.limit as usize;
        let Some(entry) = self.touch(key, now) else {
            return false;
        };
        if entry.times.len() >= limit {
            entry.times.pop_front();
        }
        entry.times.push_back(now);
        self.reindex(key);
        true
    }

    /// Settles one attempt of `key` held in flight.
    pub(super) fn settle(&mut self, key: K, now: u64, how: Settle) {
        if let Some(entry) = self.map.get_mut(&key) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
        }
        match how {
            Settle::Failed => {
                self.record(key, now);
            }
            Settle::Returned => self.drop_if_idle(key),
            Settle::Cleared => self.clear(key),
        }
    }

    /// Forgets `key`'s failures; its attempts in flight stay.
    pub(super) fn clear(&mut self, key: K) {
        if let Some(entry) = self.map.get_mut(&key) {
            entry.times.clear();
        }
        self.drop_if_idle(key);
    }

    /// Removes `key` when it holds neither failures nor attempts.
    fn drop_if_idle(&mut self, key: K) {
        match self.map.get(&key) {
            Some(entry) if entry.times.is_empty() && entry.in_flight == 0 => self.remove(key),
            Some(_) => self.reindex(key),
            None => {}
        }
    }

    /// `key`'s entry, made if need be (evicting at the cap), moved to the
    /// young end of its order: `now` is its last activity. `None` when the
    /// table counts nothing.
    fn touch(&mut self, key: K, now: u64) -> Option<&mut Entry> {
        if !self.enabled() {
            return None;
        }
        self.purge(now);
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.cap {
                let victim = match self.open.pop_first() {
                    Some((_, victim)) => victim,
                    None => match self.full.pop_first() {
                        Some((_, victim)) => victim,
                        None => break,
                    },
                };
                self.map.remove(&victim);
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = self.map.entry(key).or_insert(Entry {
            times: VecDeque::new(),
            in_flight: 0,
            seq,
            full: false,
        });
        let old = std::mem::replace(&mut entry.seq, seq);
        if entry.full {
            self.full.remove(&old);
        } else {
            self.open.remove(&old);
        }
        entry.full = false;
        self.open.insert(seq, key);
        self.map.get_mut(&key)
    }

    /// Files `key` under `open` or `full` by whether it is at its limit.
    fn reindex(&mut self, key: K) {
        let limit = self.limit as usize;
        let Some(entry) = self.map.get_mut(&key) else {
            return;
        };
        let full = entry.times.len() >= limit;
        if full == entry.full {
            return;
        }
        entry.full = full;
        let (from, to) = if full {
            (&mut self.open, &mut self.full)
        } else {
            (&mut self.full, &mut self.open)
        };
        from.remove(&entry.seq);
        to.insert(entry.seq, key);
    }

    fn remove(&mut self, key: K) {
        if let Some(entry) = self.map.remove(&key) {
            if entry.full {
                self.full.remove(&entry.seq);
            } else {
                self.open.remove(&entry.seq);
            }
        }
    }

    /// Drops up to [`PURGE_BATCH`] keys of each order whose last failure
    /// has left the window and that have no attempt in flight: they
    /// throttle nothing, and would only wait for eviction. Called where the
    /// table grows.
    fn purge(&mut self, now: u64) {
        for full in [false, true] {
            for _ in 0..PURGE_BATCH {
                let order = if full { &self.full } else { &self.open };
                let Some((_, &key)) = order.first_key_value() else {
                    break;
                };
                let live = self.map.get(&key).is_some_and(|e| {
                    e.in_flight > 0
                        || e.times
                            .back()
                            .is_some_and(|&t| now.saturating_sub(t) < self.window_ms)
                });
                if live {
                    break;
                }
                self.remove(key);
            }
        }
    }
}
