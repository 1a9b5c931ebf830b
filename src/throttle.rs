//! Brute-force throttling of failed logins (RFC 6749 §4.3.2: the password
//! grant's endpoint must protect itself against guessing).
//!
//! Failed logins are counted per submitted username, whether or not the
//! user exists (so a throttled answer reveals nothing about who exists), and
//! per client address, over a sliding window (a minute by default). Past a
//! limit `/token` answers 429 with `Retry-After` before hashing anything,
//! even to the right password. A success resets that username's count, not
//! the address's: one user logging in must not unlock a guessing address.
//!
//! The handler's part, in order:
//!
//! 1. [`Throttle::check`] before the password is hashed; an `Err` is the 429
//!    and its `Retry-After`;
//! 2. after the hash, [`Throttle::record_failure`] or
//!    [`Throttle::record_success`].
//!
//! Memory is bounded whatever clients send: each dimension holds at most
//! [`Limits::max_entries`] keys, evicting the one whose last failure is the
//! oldest; a key holds at most its limit of timestamps; usernames are held
//! as a keyed 64-bit hash, so a 16 KiB username costs 8 bytes. Evicting a
//! live counter needs more than `max_entries` keys failing within one window,
//! each failure costing the attacker a hash's wait and counting against its
//! address, so the eviction cannot cheaply be used to reset a victim's count.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The source of time, injectable so that tests move it by hand instead of
/// sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The current instant; must never go backwards.
    fn now(&self) -> Instant;
}

/// The real clock: [`Instant::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// How many failures are tolerated, over which window, and how many keys
/// may be remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Failed logins per username within [`Self::window`] before that
    /// username is throttled (default 10; 0 disables the dimension).
    pub per_user: u32,
    /// Failed logins per client address within [`Self::window`] before that
    /// address is throttled (default 100; 0 disables the dimension).
    pub per_ip: u32,
    /// The sliding window failures are counted over (default 60 s).
    pub window: Duration,
    /// Most keys held per dimension (default 100 000 usernames and as many
    /// addresses); past it the key whose last failure is the oldest is
    /// forgotten. 0 holds nothing, so throttles nothing.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_user: 10,
            per_ip: 100,
            window: Duration::from_secs(60),
            max_entries: 100_000,
        }
    }
}

/// Most expired keys dropped per call besides the one it touches: keeps
/// each critical section short after a burst; eviction at the cap bounds
/// memory meanwhile.
const PURGE_BATCH: usize = 16;

/// The failure counters of both dimensions. `Send + Sync`: share one behind
/// the server's state.
pub struct Throttle {
    limits: Limits,
    clock: Arc<dyn Clock>,
    /// Times are kept as milliseconds since this instant: half the size of
    /// an `Instant`, and exact enough for whole-second `Retry-After`s.
    epoch: Instant,
    /// Keyed SipHash with a per-process random key, so nobody can craft
    /// usernames that collide on purpose.
    hasher: RandomState,
    // Two std mutexes, not tokio's: every critical section is a few map
    // operations and none is held across an `.await`. Two, so that the
    // dimensions do not wait for each other.
    users: Mutex<Table<u64>>,
    ips: Mutex<Table<IpAddr>>,
}

impl Throttle {
    /// Counters with `limits`, on the system clock.
    pub fn new(limits: Limits) -> Throttle {
        Throttle::with_clock(limits, Arc::new(SystemClock))
    }

    /// Counters with `limits`, on `clock`.
    pub fn with_clock(limits: Limits, clock: Arc<dyn Clock>) -> Throttle {
        let window_ms = u64::try_from(limits.window.as_millis()).unwrap_or(u64::MAX);
        Throttle {
            users: Mutex::new(Table::new(limits.per_user, window_ms, limits.max_entries)),
            ips: Mutex::new(Table::new(limits.per_ip, window_ms, limits.max_entries)),
            epoch: clock.now(),
            hasher: RandomState::new(),
            clock,
            limits,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `Ok`, or `Err(retry_after)` when this username or this address is
    /// throttled now: the whole seconds (at least 1) until its oldest
    /// counted failure leaves the window, the longer of the two when both
    /// are throttled.
    pub fn check(&self, username: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        let now = self.now_ms();
        let user = lock(&self.users).retry_after(self.user_key(username), now);
        let ip = ip.and_then(|ip| lock(&self.ips).retry_after(ip_key(ip), now));
        match user.max(ip) {
            Some(ms) => Err(Duration::from_secs(ms.div_ceil(1000).max(1))),
            None => Ok(()),
        }
    }

    /// Counts a failed login against `username` and, when known, `ip`.
    pub fn record_failure(&self, username: &str, ip: Option<IpAddr>) {
        let now = self.now_ms();
        lock(&self.users).record(self.user_key(username), now);
        if let Some(ip) = ip {
            lock(&self.ips).record(ip_key(ip), now);
        }
    }

    /// Forgets `username`'s failures after it logged in. The address's stay:
    /// a guesser that also knows one password is still a guesser.
    pub fn record_success(&self, username: &str) {
        lock(&self.users).remove(self.user_key(username));
    }

    /// Keys held now, `(usernames, addresses)`; expired ones may still be
    /// counted until they are purged or evicted.
    pub fn len(&self) -> (usize, usize) {
        (lock(&self.users).map.len(), lock(&self.ips).map.len())
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    fn now_ms(&self) -> u64 {
        let elapsed = self.clock.now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    fn user_key(&self, username: &str) -> u64 {
        self.hasher.hash_one(username)
    }
}

impl fmt::Debug for Throttle {
    // The hasher's keys are secret, the clock is a trait object, and the
    // counters are large: limits and sizes say enough.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (users, ips) = self.len();
        f.debug_struct("Throttle")
            .field("limits", &self.limits)
            .field("users", &users)
            .field("ips", &ips)
            .finish_non_exhaustive()
    }
}

/// A poisoned lock is still used: no code under these locks panics, and a
/// throttle that stopped answering would fail every login.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The key of a client address. IPv4-mapped IPv6 addresses (what a
/// dual-stack socket reports for IPv4 clients) count as the IPv4 address;
/// IPv6 addresses are grouped by /64, the usual smallest allocation to one
/// site, so that a client cannot dodge the limit by walking its own subnet.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// One dimension's counters.
struct Table<K> {
    /// Failures a key may have within the window; 0 disables the table.
    limit: u32,
    window_ms: u64,
    cap: usize,
    map: HashMap<K, Entry>,
    /// Keys by the sequence number of their last failure, oldest first:
    /// what to purge and whom to evict.
    order: BTreeMap<u64, K>,
    next_seq: u64,
}

/// One key's failures within the window.
struct Entry {
    /// Milliseconds since the throttle's epoch, oldest first; at most
    /// `limit` of them, since older ones cannot change the verdict.
    times: VecDeque<u64>,
    /// This entry's key in [`Table::order`].
    seq: u64,
}

impl<K: Copy + Eq + Hash> Table<K> {
    fn new(limit: u32, window_ms: u64, cap: usize) -> Table<K> {
        Table {
            limit,
            window_ms,
            cap,
            map: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
        }
    }

    fn enabled(&self) -> bool {
        self.limit > 0 && self.cap > 0 && self.window_ms > 0
    }

    /// Whether a failure at `t` still counts at `now`.
    fn counts(&self, t: u64, now: u64) -> bool {
        now.saturating_sub(t) < self.window_ms
    }

    /// Milliseconds until `key` may try again, when it is throttled.
    fn retry_after(&mut self, key: K, now: u64) -> Option<u64> {
        if !self.enabled() {
            return None;
        }
        self.purge(now);
        let entry = self.map.get_mut(&key)?;
        let window_ms = self.window_ms;
        while entry
            .times
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= window_ms)
        {
            entry.times.pop_front();
        }
        if entry.times.is_empty() {
            self.remove(key);
            return None;
        }
        if entry.times.len() < self.limit as usize {
            return None;
        }
        let oldest = *entry.times.front()?;
        Some(oldest.saturating_add(window_ms).saturating_sub(now))
    }

    fn record(&mut self, key: K, now: u64) {
        if !self.enabled() {
            return;
        }
        self.purge(now);
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(entry) = self.map.get(&key) {
            self.order.remove(&entry.seq);
        } else {
            while self.map.len() >= self.cap {
                let Some((_, oldest)) = self.order.pop_first() else {
                    break;
                };
                self.map.remove(&oldest);
            }
        }
        let entry = self.map.entry(key).or_insert(Entry {
            times: VecDeque::new(),
            seq,
        });
        entry.seq = seq;
        if entry.times.len() >= self.limit as usize {
            entry.times.pop_front();
        }
        entry.times.push_back(now);
        self.order.insert(seq, key);
    }

    fn remove(&mut self, key: K) {
        if let Some(entry) = self.map.remove(&key) {
            self.order.remove(&entry.seq);
        }
    }

    /// Drops up to [`PURGE_BATCH`] keys whose last failure has left the
    /// window: they throttle nothing, and would only wait for eviction.
    fn purge(&mut self, now: u64) {
        for _ in 0..PURGE_BATCH {
            let Some((&seq, &key)) = self.order.first_key_value() else {
                return;
            };
            let last = self.map.get(&key).and_then(|e| e.times.back().copied());
            if last.is_some_and(|t| self.counts(t, now)) {
                return;
            }
            self.order.remove(&seq);
            self.map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock that moves only when told to.
    struct ManualClock {
        start: Instant,
        offset_ms: AtomicU64,
    }

    impl ManualClock {
        fn new() -> Arc<ManualClock> {
            Arc::new(ManualClock {
                start: Instant::now(),
                offset_ms: AtomicU64::new(0),
            })
        }

        fn advance(&self, by: Duration) {
            let ms = u64::try_from(by.as_millis()).expect("test durations are small");
            self.offset_ms.fetch_add(ms, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            self.start + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
        }
    }

    fn throttle(limits: Limits) -> (Throttle, Arc<ManualClock>) {
        let clock = ManualClock::new();
        (Throttle::with_clock(limits, clock.clone()), clock)
    }

    fn limits(per_user: u32, per_ip: u32) -> Limits {
        Limits {
            per_user,
            per_ip,
            ..Limits::default()
        }
    }

    const IP: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    const OTHER_IP: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
    const SECOND: Duration = Duration::from_secs(1);

    fn fail(t: &Throttle, username: &str, ip: Option<IpAddr>, times: u32) {
        for _ in 0..times {
            t.record_failure(username, ip);
        }
    }

    #[test]
    fn defaults_are_the_contracts() {
        let l = Limits::default();
        assert_eq!((l.per_user, l.per_ip), (10, 100));
        assert_eq!(l.window, Duration::from_secs(60));
        assert_eq!(l.max_entries, 100_000);
    }

    #[test]
    fn the_nth_failure_throttles_the_username() {
        let (t, _) = throttle(limits(3, 0));
        fail(&t, "johndoe", IP, 2);
        assert_eq!(t.check("johndoe", IP), Ok(()));
        fail(&t, "johndoe", IP, 1);
        assert!(t.check("johndoe", IP).is_err());
        // From any address: the count is the username's.
        assert!(t.check("johndoe", OTHER_IP).is_err());
        assert!(t.check("johndoe", None).is_err());
    }

    #[test]
    fn other_usernames_are_unaffected() {
        let (t, _) = throttle(limits(3, 0));
        fail(&t, "johndoe", IP, 10);
        assert!(t.check("johndoe", IP).is_err());
        assert_eq!(t.check("alice", IP), Ok(()));
        assert_eq!(t.check("johndoe2", IP), Ok(()));
        assert_eq!(t.check("JohnDoe", IP), Ok(()));
    }

    #[test]
    fn a_success_resets_the_username_only() {
        let (t, _) = throttle(limits(3, 5));
        fail(&t, "johndoe", IP, 3);
        fail(&t, "mallory", IP, 2);
        assert!(t.check("johndoe", None).is_err());
        t.record_success("johndoe");
        assert_eq!(t.check("johndoe", None), Ok(()));
        // The address has 5 failures and stays throttled.
        assert!(t.check("johndoe", IP).is_err());
        assert!(t.check("alice", IP).is_err());
        assert_eq!(t.check("alice", OTHER_IP), Ok(()));
        // The count starts again from zero.
        fail(&t, "johndoe", OTHER_IP, 2);
        assert_eq!(t.check("johndoe", None), Ok(()));
    }

    #[test]
    fn the_address_dimension_is_independent() {
        let (t, _) = throttle(limits(0, 4));
        // Four usernames, one failure each, from one address.
        for name in ["a", "b", "c"] {
            t.record_failure(name, IP);
        }
        assert_eq!(t.check("d", IP), Ok(()));
        t.record_failure("d", IP);
        assert!(t.check("e", IP).is_err());
        assert!(t.check("a", IP).is_err());
        assert_eq!(t.check("a", OTHER_IP), Ok(()));
        assert_eq!(t.check("a", None), Ok(()));
    }

    #[test]
    fn zero_disables_a_dimension_and_holds_nothing() {
        let (t, _) = throttle(limits(0, 0));
        fail(&t, "johndoe", IP, 1000);
        assert_eq!(t.check("johndoe", IP), Ok(()));
        assert_eq!(t.len(), (0, 0));
        assert!(t.is_empty());

        let (t, _) = throttle(Limits {
            max_entries: 0,
            ..limits(1, 1)
        });
        fail(&t, "johndoe", IP, 5);
        assert_eq!(t.check("johndoe", IP), Ok(()));
        assert_eq!(t.len(), (0, 0));
    }

    #[test]
    fn failures_leave_the_window() {
        let (t, clock) = throttle(limits(3, 0));
        t.record_failure("johndoe", IP); // t = 0
        clock.advance(20 * SECOND);
        t.record_failure("johndoe", IP); // t = 20
        clock.advance(20 * SECOND);
        t.record_failure("johndoe", IP); // t = 40
        assert!(t.check("johndoe", IP).is_err());
        clock.advance(20 * SECOND - Duration::from_millis(1));
        assert!(t.check("johndoe", IP).is_err(), "the first still counts");
        clock.advance(Duration::from_millis(1));
        assert_eq!(t.check("johndoe", IP), Ok(()), "the first has left");
        t.record_failure("johndoe", IP); // t = 60: 20, 40, 60
        assert!(t.check("johndoe", IP).is_err());
        clock.advance(60 * SECOND);
        assert_eq!(t.check("johndoe", IP), Ok(()));
        assert_eq!(t.len(), (0, 0), "an expired key is dropped");
    }

    #[test]
    fn retry_after_is_the_wait_for_the_oldest_failure() {
        let (t, clock) = throttle(limits(2, 0));
        t.record_failure("johndoe", IP); // t = 0
        clock.advance(Duration::from_millis(10_500));
        t.record_failure("johndoe", IP); // t = 10.5
        assert_eq!(t.check("johndoe", IP), Err(Duration::from_secs(50)));
        clock.advance(Duration::from_millis(100)); // 49.4 s left: rounded up
        assert_eq!(t.check("johndoe", IP), Err(Duration::from_secs(50)));
        clock.advance(Duration::from_millis(49_399)); // 1 ms left
        assert_eq!(t.check("johndoe", IP), Err(SECOND));
        clock.advance(Duration::from_millis(1));
        assert_eq!(t.check("johndoe", IP), Ok(()));
        // More failures than the limit: the newest `limit` count, so the
        // wait is for the older of those two.
        fail(&t, "johndoe", IP, 5);
        assert_eq!(t.check("johndoe", IP), Err(60 * SECOND));
    }

    #[test]
    fn retry_after_is_the_longer_of_both_dimensions() {
        let (t, clock) = throttle(limits(1, 2));
        t.record_failure("a", IP); // t = 0
        clock.advance(30 * SECOND);
        t.record_failure("b", IP);
        // At t = 30, "b" waits 60 s and the address 30 s.
        assert_eq!(t.check("b", IP), Err(60 * SECOND));
        assert_eq!(t.check("c", IP), Err(30 * SECOND));
        assert_eq!(t.check("b", None), Err(60 * SECOND));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let (t, _) = throttle(limits(0, 2));
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("an address");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("an address");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("an address");
        t.record_failure("x", Some(a));
        t.record_failure("x", Some(b));
        assert!(t.check("x", Some(a)).is_err());
        assert_eq!(t.check("x", Some(c)), Ok(()));

        let v4: IpAddr = "192.0.2.1".parse().expect("an address");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("an address");
        let mapped_other: IpAddr = "::ffff:192.0.2.2".parse().expect("an address");
        t.record_failure("x", Some(mapped));
        t.record_failure("x", Some(v4));
        assert!(t.check("x", Some(v4)).is_err());
        assert!(t.check("x", Some(mapped)).is_err());
        assert_eq!(t.check("x", Some(mapped_other)), Ok(()));
    }

    #[test]
    fn a_million_usernames_stay_within_the_cap() {
        let (t, clock) = throttle(Limits {
            max_entries: 1000,
            ..limits(1, 0)
        });
        for i in 0..1_000_000u32 {
            t.record_failure(&i.to_string(), IP);
            if i % 1000 == 0 {
                clock.advance(Duration::from_millis(1));
                assert!(t.len().0 <= 1000);
            }
        }
        assert_eq!(t.len(), (1000, 0));
        // The newest are held, the oldest are gone.
        assert!(t.check("999999", None).is_err());
        assert!(t.check("999000", None).is_err());
        assert_eq!(t.check("998999", None), Ok(()));
        assert_eq!(t.check("0", None), Ok(()));
    }

    #[test]
    fn eviction_removes_the_key_failed_longest_ago() {
        let (t, clock) = throttle(Limits {
            max_entries: 3,
            ..limits(2, 0)
        });
        fail(&t, "a", None, 2);
        clock.advance(SECOND);
        fail(&t, "b", None, 2);
        clock.advance(SECOND);
        fail(&t, "c", None, 2);
        clock.advance(SECOND);
        t.record_failure("a", None); // "a" is now the most recent
        t.record_failure("d", None); // evicts "b"
        assert_eq!(t.len(), (3, 0));
        assert!(t.check("a", None).is_err());
        assert_eq!(t.check("b", None), Ok(()));
        assert!(t.check("c", None).is_err());
        t.record_failure("d", None);
        assert!(t.check("d", None).is_err());
    }

    #[test]
    fn addresses_are_capped_too() {
        let (t, _) = throttle(Limits {
            max_entries: 100,
            ..limits(0, 5)
        });
        for i in 0..10_000u32 {
            t.record_failure("x", Some(IpAddr::V4(Ipv4Addr::from(i))));
        }
        assert_eq!(t.len(), (0, 100));
    }

    #[test]
    fn expired_keys_are_purged_as_others_come() {
        let (t, clock) = throttle(limits(5, 5));
        for i in 0..100u32 {
            t.record_failure(&i.to_string(), Some(IpAddr::V4(Ipv4Addr::from(i))));
        }
        assert_eq!(t.len(), (100, 100));
        clock.advance(61 * SECOND);
        for _ in 0..10 {
            t.record_failure("new", IP);
        }
        assert_eq!(t.len(), (1, 1));
    }

    #[test]
    fn long_usernames_cost_a_hash() {
        let (t, _) = throttle(limits(1, 0));
        let long = "x".repeat(16 * 1024);
        t.record_failure(&long, None);
        assert!(t.check(&long, None).is_err());
        assert_eq!(t.check(&long[1..], None), Ok(()));
    }

    #[test]
    fn empty_username_and_no_address_do_not_panic() {
        let (t, _) = throttle(limits(1, 1));
        assert_eq!(t.check("", None), Ok(()));
        t.record_failure("", None);
        assert!(t.check("", None).is_err());
        t.record_success("");
        t.record_success("never seen");
        assert_eq!(t.check("", None), Ok(()));
        assert_eq!(t.len(), (0, 0));
    }

    #[test]
    fn it_is_shareable_and_debuggable() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Throttle>();
        let t = Throttle::new(Limits::default());
        t.record_failure("johndoe", IP);
        let shown = format!("{t:?}");
        assert!(shown.contains("users: 1"), "{shown}");
        assert!(!shown.contains("johndoe"), "{shown}");
    }
}
