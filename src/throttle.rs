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
//! The limits hold under concurrency, and only failures refuse. The
//! handler's part, in order:
//!
//! 1. [`Throttle::admit`] before the password is hashed: in one critical
//!    section it checks both limits and reserves the attempt against each
//!    as *in flight*. A key whose settled failures reached its limit is
//!    refused at once (the 429 and its `Retry-After`). A key whose settled
//!    failures plus attempts in flight reached it makes the attempt *wait*
//!    for one ahead of it to settle, until the caller's deadline (the login
//!    queue's): then [`Refusal::Busy`], a 503 that counts nothing. So N
//!    guesses sent at once cost at most the limit's number of hashes (the
//!    first ones fail, and the waiting ones then see the limit reached),
//!    while N right passwords are never refused as failures: each success
//!    lets the next one in;
//! 2. after the hash, [`Attempt::failed`] (the reservation becomes a
//!    failure), [`Attempt::succeeded`] (the username's failures are reset
//!    and the address's reservation returned), or [`Attempt::refund`] when
//!    the attempt was never judged (the server was busy or its user store
//!    down): that is nobody's failure. An attempt dropped unsettled (the
//!    client went away mid-hash, the request timed out) counts as failed.
//!
//! Waiting is first come, first served per key: a place freed on a key goes
//! to the attempt waiting on it longest, not to a newcomer (nor to whichever
//! waiter runs first), so under a steady flood every login waits about as
//! long as the others. A waiting attempt holds no reservation: only its
//! place in the lines of the keys that hold it back (one number each), and
//! its place in one of [`WAKERS`] fixed [`Notify`] lists (intrusive, in the
//! waiting future itself). So waiters, and what they cost, are bounded by
//! the connections that can send a login. One that gives up (deadline,
//! client gone) leaves nothing behind.
//!
//! Memory is bounded whatever clients send: each dimension holds at most
//! [`Limits::max_entries`] keys; a key holds at most its limit of
//! timestamps and a count of attempts in flight; usernames are held as a
//! keyed 64-bit hash, so a 16 KiB username costs 8 bytes. When a table is
//! full, the key whose last activity is the oldest among those *not*
//! throttled is evicted; a throttled key goes only when every key is
//! throttled. So spraying distinct usernames or addresses, one failure
//! each, evicts only other sprayed keys and never lifts a lockout: that
//! would take `max_entries` throttled keys within one window, each bought
//! with its limit's worth of hashed guesses.

use crate::addr::address_key;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

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
#[non_exhaustive]
pub struct Limits {
    /// Failed logins per username within [`Self::window`] before that
    /// username is throttled (default 10; 0 disables the dimension). Also
    /// the attempts one username may have in flight at once; more wait.
    pub per_user: u32,
    /// Failed logins per client address within [`Self::window`] before that
    /// address is throttled (default 100; 0 disables the dimension). Also
    /// the attempts one address may have in flight at once; more wait.
    pub per_ip: u32,
    /// The sliding window failures are counted over (default 60 s).
    pub window: Duration,
    /// Most keys held per dimension (default 100 000 usernames and as many
    /// addresses); past it a key is evicted, the one whose last activity is
    /// the oldest among those not throttled. 0 holds nothing, so throttles
    /// nothing.
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

/// How many wait lists the keys are spread over. A settlement wakes the
/// lists of its two keys; a waiter of another key on the same list wakes
/// for nothing and waits again. Fixed, so that waiting allocates nothing.
pub const WAKERS: usize = 64;

/// Why an attempt may not go ahead now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Throttled {
    /// The whole seconds (at least 1) until the oldest counted failure
    /// leaves the window; the longer of the two when both are throttled.
    pub retry_after: Duration,
    /// Whether the username is throttled.
    pub username: bool,
    /// Whether the client address is throttled.
    pub address: bool,
}

/// Why [`Throttle::admit`] did not let an attempt go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Settled failures reached a limit: 429, even to the right password.
    Throttled(Throttled),
    /// Attempts in flight filled a budget and none settled by the
    /// deadline: 503, counted as nobody's failure.
    Busy,
}

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
    // Std mutexes, not tokio's: every critical section is a few map
    // operations and none is held across an `.await`. Two, so that the
    // dimensions do not wait for each other where only one is needed;
    // `admit` takes both, always users first.
    users: Mutex<Table<u64, BuildHasherDefault<Prehashed>>>,
    ips: Mutex<Table<IpAddr, RandomState>>,
    /// Attempts waiting for one in flight to settle, by their keys' hash
    /// ([`WAKERS`]); notified at every settlement of a key of theirs.
    wakers: Box<[Notify; WAKERS]>,
    /// Admissions under way that may wait: while none is, a settlement
    /// wakes nobody, and costs no lock of a wait list.
    admitting: AtomicUsize,
    /// The next place in line, handed to an attempt when it first waits.
    tickets: AtomicU64,
}

/// A login attempt [`Throttle::admit`] let through: it is in flight against
/// its username and its address until it is settled. Dropped unsettled
/// (the client went away mid-hash, the request timed out), it counts as a
/// failure: an attempt that may have cost a hash is counted.
#[derive(Debug)]
#[must_use = "settle the attempt: failed, succeeded or refund"]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    /// The username's key; `None` for an attempt that names no user.
    user: Option<u64>,
    /// Whether the username's table holds the attempt in flight.
    user_reserved: bool,
    /// The address's key, when the attempt is in flight against it.
    ip: Option<IpAddr>,
    /// Whether it was settled (dropped unsettled, it failed).
    settled: bool,
}

/// What a settlement does with an attempt in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// A failure: counted in the window.
    Failed,
    /// Never judged: nothing counted.
    Returned,
    /// A success: the key's failures are forgotten too.
    Cleared,
}

impl Attempt<'_> {
    /// The password was wrong (or the user unknown): counted as a failure.
    pub fn failed(mut self) {
        self.settle(Settle::Failed, Settle::Failed);
    }

    /// The password was right: the username's failures are forgotten, and
    /// the address's reservation is returned.
    pub fn succeeded(mut self) {
        self.settle(Settle::Cleared, Settle::Returned);
    }

    /// The attempt was never judged (the server was too busy to hash, or
    /// the user store could not answer): nothing is counted.
    pub fn refund(mut self) {
        self.settle(Settle::Returned, Settle::Returned);
    }

    fn settle(&mut self, user_how: Settle, ip_how: Settle) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let throttle = self.throttle;
        let now = throttle.now_ms();
        // Not held in flight (no username, or the dimension is off): nothing
        // to settle there.
        if let (Some(user), true) = (self.user, self.user_reserved) {
            lock(&throttle.users).settle(user, now, user_how);
        }
        if let Some(ip) = self.ip {
            lock(&throttle.ips).settle(ip, now, ip_how);
        }
        throttle.wake(self.user, self.ip);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.settle(Settle::Failed, Settle::Failed);
    }
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
            wakers: Box::new(std::array::from_fn(|_| Notify::new())),
            admitting: AtomicUsize::new(0),
            tickets: AtomicU64::new(0),
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

    /// Lets an attempt for `username` from `ip` go ahead, holding it in
    /// flight against each; refuses it when either has reached its limit of
    /// settled failures ([`Refusal::Throttled`]); and while the attempts in
    /// flight fill either's budget, waits for one of them to settle, until
    /// `deadline` ([`Refusal::Busy`]). Dropped while waiting, it leaves
    /// nothing behind.
    pub async fn admit(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        deadline: tokio::time::Instant,
    ) -> Result<Attempt<'_>, Refusal> {
        let user = self.user_key(username);
        self.wait_for(Some(user), ip.map(address_key), deadline)
            .await
    }

    /// [`Throttle::admit`] for an attempt that names no username (a refresh
    /// token): only the address's limit applies.
    pub async fn admit_address(
        &self,
        ip: Option<IpAddr>,
        deadline: tokio::time::Instant,
    ) -> Result<Attempt<'_>, Refusal> {
        self.wait_for(None, ip.map(address_key), deadline).await
    }

    /// [`Throttle::admit`] without waiting: [`Refusal::Busy`] at once when
    /// it would wait.
    pub fn try_admit(&self, username: &str, ip: Option<IpAddr>) -> Result<Attempt<'_>, Refusal> {
        self.try_keys(Some(self.user_key(username)), ip.map(address_key))
    }

    /// [`Throttle::admit_address`] without waiting: [`Refusal::Busy`] at
    /// once when it would wait.
    pub fn try_admit_address(&self, ip: Option<IpAddr>) -> Result<Attempt<'_>, Refusal> {
        self.try_keys(None, ip.map(address_key))
    }

    async fn wait_for(
        &self,
        user: Option<u64>,
        ip: Option<IpAddr>,
        deadline: tokio::time::Instant,
    ) -> Result<Attempt<'_>, Refusal> {
        let (user_waker, ip_waker) = self.wakers_of(user, ip);
        // Counted before its first try, so that a settlement after that
        // try sees it (the tables' lock orders the two) and wakes it.
        let _admitting = Admitting::count(&self.admitting);
        // Its place in line, left however the wait ends.
        let mut queued = Queued {
            throttle: self,
            user,
            ip,
            ticket: None,
            in_user: false,
            in_ip: false,
        };
        let mut timeout = pin!(tokio::time::sleep_until(deadline));
        loop {
            // Listening before trying: a settlement between a refusal and
            // the wait below still wakes this attempt.
            let mut user_settled = pin!(user_waker.notified());
            let mut ip_settled = pin!(ip_waker.notified());
            user_settled.as_mut().enable();
            ip_settled.as_mut().enable();
            match self.try_queued(&mut queued) {
                Err(Refusal::Busy) => {}
                verdict => return verdict,
            }
            tokio::select! {
                () = user_settled => {}
                () = ip_settled => {}
                () = &mut timeout => return Err(Refusal::Busy),
            }
        }
    }

    /// One admission's critical section, for an attempt that waits for
    /// nothing: it joins no line.
    fn try_keys(&self, user: Option<u64>, ip: Option<IpAddr>) -> Result<Attempt<'_>, Refusal> {
        let mut queued = Queued {
            throttle: self,
            user,
            ip,
            ticket: None,
            in_user: false,
            in_ip: false,
        };
        // Whatever line it joined is left at once, as `queued` drops.
        self.try_queued(&mut queued)
    }

    /// One admission's critical section, for an attempt with its place in
    /// line: first come, first served, per key. A key's free places go to
    /// those waiting on it longest: an attempt passes only where fewer
    /// attempts older than it wait than there are places free, so neither
    /// a newcomer nor a younger waiter takes the place a settlement freed
    /// for an older one. It waits in line only on the keys that hold it
    /// back, so it holds nobody back on a key it could pass.
    fn try_queued(&self, queued: &mut Queued<'_>) -> Result<Attempt<'_>, Refusal> {
        let now = self.now_ms();
        let (user, ip) = (queued.user, queued.ip);
        let ticket = queued.ticket.unwrap_or(u64::MAX);
        let (left_user, left_ip);
        let verdict = {
            let mut users = lock(&self.users);
            let mut ips = lock(&self.ips);
            let user_verdict = user.map_or(Verdict::Go, |user| users.verdict(user, now, ticket));
            let ip_verdict = ip.map_or(Verdict::Go, |ip| ips.verdict(ip, now, ticket));
            match throttled(user_verdict.throttled(), ip_verdict.throttled()) {
                Err(throttled) => {
                    left_user = queued.leave_user(&mut users, false);
                    left_ip = queued.leave_ip(&mut ips, false);
                    Err(Refusal::Throttled(throttled))
                }
                Ok(()) if user_verdict == Verdict::Wait || ip_verdict == Verdict::Wait => {
                    let ticket = *queued
                        .ticket
                        .get_or_insert_with(|| self.tickets.fetch_add(1, Ordering::Relaxed));
                    left_user = queued.leave_user(&mut users, user_verdict == Verdict::Wait);
                    left_ip = queued.leave_ip(&mut ips, ip_verdict == Verdict::Wait);
                    if let (Some(user), Verdict::Wait, false) = (user, user_verdict, queued.in_user)
                    {
                        users.join(user, ticket);
                        queued.in_user = true;
                    }
                    if let (Some(ip), Verdict::Wait, false) = (ip, ip_verdict, queued.in_ip) {
                        ips.join(ip, ticket);
                        queued.in_ip = true;
                    }
                    Err(Refusal::Busy)
                }
                Ok(()) => {
                    left_user = queued.leave_user(&mut users, false);
                    left_ip = queued.leave_ip(&mut ips, false);
                    Ok(self.reserve(&mut users, &mut ips, user, ip, now))
                }
            }
        };
        // The line moved: those behind may pass now.
        self.wake(user.filter(|_| left_user), ip.filter(|_| left_ip));
        verdict
    }

    /// Holds an attempt in flight against both keys; the tables locked.
    fn reserve(
        &self,
        users: &mut Table<u64, BuildHasherDefault<Prehashed>>,
        ips: &mut Table<IpAddr, RandomState>,
        user: Option<u64>,
        ip: Option<IpAddr>,
        now: u64,
    ) -> Attempt<'_> {
        let user_reserved = user.is_some_and(|user| users.reserve(user, now));
        let ip = ip.filter(|&ip| ips.reserve(ip, now));
        Attempt {
            throttle: self,
            user,
            user_reserved,
            ip,
            settled: false,
        }
    }

    /// `Ok` when `username` and `ip` have not reached their limits of
    /// settled failures; reserves nothing. For answers that cost no hash
    /// and must count nothing, yet must not tell a throttled client
    /// anything new.
    pub fn check(&self, username: &str, ip: Option<IpAddr>) -> Result<(), Throttled> {
        let now = self.now_ms();
        let user = lock(&self.users)
            .verdict(self.user_key(username), now, u64::MAX)
            .throttled();
        let ip = ip.and_then(|ip| {
            lock(&self.ips)
                .verdict(address_key(ip), now, u64::MAX)
                .throttled()
        });
        throttled(user, ip)
    }

    /// Counts a failed login against `username` and, when known, `ip`,
    /// without admission: for failures judged elsewhere.
    pub fn record_failure(&self, username: &str, ip: Option<IpAddr>) {
        let now = self.now_ms();
        let user = self.user_key(username);
        lock(&self.users).record(user, now);
        let ip = ip.map(address_key);
        if let Some(ip) = ip {
            lock(&self.ips).record(ip, now);
        }
        self.wake(Some(user), ip);
    }

    /// Forgets `username`'s failures after it logged in. The address's stay:
    /// a guesser that also knows one password is still a guesser.
    pub fn record_success(&self, username: &str) {
        let user = self.user_key(username);
        lock(&self.users).clear(user);
        self.wake(Some(user), None);
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

    /// The wait lists of a username's and an address's key.
    fn wakers_of(&self, user: Option<u64>, ip: Option<IpAddr>) -> (&Notify, &Notify) {
        // The usernames' keys are keyed hashes already; an address is
        // hashed with the same secret key, so nobody aims at one list.
        let user = user.unwrap_or(0);
        let ip = ip.map_or(0, |ip| self.hasher.hash_one(ip));
        // Truncation is the point: the low bits pick a list.
        #[allow(clippy::cast_possible_truncation)]
        let pick = |hash: u64| &self.wakers[hash as usize % WAKERS];
        (pick(user), pick(ip))
    }

    /// Wakes the attempts that may be waiting on these keys.
    fn wake(&self, user: Option<u64>, ip: Option<IpAddr>) {
        if self.admitting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let (user_waker, ip_waker) = self.wakers_of(user, ip);
        if user.is_some() {
            user_waker.notify_waiters();
        }
        if ip.is_some() && !std::ptr::eq(user_waker, ip_waker) {
            ip_waker.notify_waiters();
        }
    }
}

/// An attempt's place in line, on the keys that hold it back; left when
/// it is let through, refused, or given up (dropped).
struct Queued<'a> {
    throttle: &'a Throttle,
    user: Option<u64>,
    ip: Option<IpAddr>,
    /// Its place, from the first time it had to wait; `None` before.
    ticket: Option<u64>,
    /// Whether it waits in line on the username, and on the address.
    in_user: bool,
    in_ip: bool,
}

impl Queued<'_> {
    /// Leaves the username's line unless `stay`; whether it left it.
    fn leave_user(
        &mut self,
        users: &mut Table<u64, BuildHasherDefault<Prehashed>>,
        stay: bool,
    ) -> bool {
        match (self.user, self.ticket, self.in_user && !stay) {
            (Some(user), Some(ticket), true) => {
                users.leave(user, ticket);
                self.in_user = false;
                true
            }
            _ => false,
        }
    }

    /// Leaves the address's line unless `stay`; whether it left it.
    fn leave_ip(&mut self, ips: &mut Table<IpAddr, RandomState>, stay: bool) -> bool {
        match (self.ip, self.ticket, self.in_ip && !stay) {
            (Some(ip), Some(ticket), true) => {
                ips.leave(ip, ticket);
                self.in_ip = false;
                true
            }
            _ => false,
        }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if !self.in_user && !self.in_ip {
            return;
        }
        let throttle = self.throttle;
        let left_user = self.leave_user(&mut lock(&throttle.users), false);
        let left_ip = self.leave_ip(&mut lock(&throttle.ips), false);
        throttle.wake(self.user.filter(|_| left_user), self.ip.filter(|_| left_ip));
    }
}

/// One admission under way, counted in [`Throttle::admitting`] until it
/// ends, its future dropped included.
struct Admitting<'a>(&'a AtomicUsize);

impl Admitting<'_> {
    fn count(admitting: &AtomicUsize) -> Admitting<'_> {
        admitting.fetch_add(1, Ordering::SeqCst);
        Admitting(admitting)
    }
}

impl Drop for Admitting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The verdict from each dimension's wait in milliseconds, if throttled.
fn throttled(user: Option<u64>, ip: Option<u64>) -> Result<(), Throttled> {
    match user.max(ip) {
        Some(ms) => Err(Throttled {
            retry_after: Duration::from_secs(ms.div_ceil(1000).max(1)),
            username: user.is_some(),
            address: ip.is_some(),
        }),
        None => Ok(()),
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

/// The hasher of the usernames' table, whose keys are already keyed
/// SipHash outputs: hashing them again would only cost time, and nobody
/// can aim collisions at values they cannot compute.
#[derive(Default)]
struct Prehashed(u64);

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
enum Verdict {
    /// Below its limit, counting the attempts in flight.
    Go,
    /// Below its limit of settled failures, but not with those in flight.
    Wait,
    /// At its limit of settled failures: milliseconds until the oldest
    /// leaves the window.
    Throttled(u64),
}

impl Verdict {
    fn throttled(self) -> Option<u64> {
        match self {
            Verdict::Throttled(ms) => Some(ms),
            Verdict::Go | Verdict::Wait => None,
        }
    }
}

/// One dimension's counters.
struct Table<K, H> {
    /// Failures a key may have within the window; 0 disables the table.
    limit: u32,
    window_ms: u64,
    cap: usize,
    map: HashMap<K, Entry, H>,
    /// The attempts waiting for a place on a key, by their place in line,
    /// sorted (places are handed out in order, so a join is nearly always
    /// a push); only keys someone waits on (waiters are bounded by
    /// connections).
    lines: HashMap<K, Vec<u64>, H>,
    /// Keys below their limit by the sequence number of their last
    /// activity (a failure or an admission), oldest first: what to purge,
    /// and whom to evict first.
    open: BTreeMap<u64, K>,
    /// Keys at their limit (throttled), the same way: evicted only when no
    /// open key is left.
    full: BTreeMap<u64, K>,
    next_seq: u64,
}

/// One key's failures within the window, and its attempts in flight.
struct Entry {
    /// Settled failures, milliseconds since the throttle's epoch, oldest
    /// first; at most `limit` of them, since older ones cannot change the
    /// verdict.
    times: VecDeque<u64>,
    /// Attempts admitted and not settled yet; at most `limit`, as
    /// admission lets no more through.
    in_flight: u32,
    /// This entry's key in [`Table::open`] or [`Table::full`].
    seq: u64,
    /// Which of the two it is in.
    full: bool,
}

impl<K: Copy + Eq + Hash, H: BuildHasher + Default> Table<K, H> {
    fn new(limit: u32, window_ms: u64, cap: usize) -> Table<K, H> {
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
    fn verdict(&mut self, key: K, now: u64, ticket: u64) -> Verdict {
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
    fn join(&mut self, key: K, ticket: u64) {
        let line = self.lines.entry(key).or_default();
        let at = line.partition_point(|&t| t < ticket);
        line.insert(at, ticket);
    }

    /// Takes the attempt with place `ticket` out of `key`'s line.
    fn leave(&mut self, key: K, ticket: u64) {
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
    fn reserve(&mut self, key: K, now: u64) -> bool {
        let Some(entry) = self.touch(key, now) else {
            return false;
        };
        entry.in_flight = entry.in_flight.saturating_add(1);
        self.reindex(key);
        true
    }

    /// Counts a failure of `key` at `now`; whether the table counts at all.
    fn record(&mut self, key: K, now: u64) -> bool {
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
    fn settle(&mut self, key: K, now: u64, how: Settle) {
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
    fn clear(&mut self, key: K) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;
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

    /// [`Throttle::check`]'s verdict as the wait alone.
    fn wait(t: &Throttle, username: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        t.check(username, ip).map_err(|e| e.retry_after)
    }

    /// The 429 of a refusal; panics on a 503.
    fn throttled_by(refusal: Refusal) -> Throttled {
        match refusal {
            Refusal::Throttled(throttled) => throttled,
            Refusal::Busy => panic!("a wait, not a 429"),
        }
    }

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
        assert_eq!(wait(&t, "johndoe", IP), Ok(()));
        fail(&t, "johndoe", IP, 1);
        assert!(wait(&t, "johndoe", IP).is_err());
        // From any address: the count is the username's.
        assert!(wait(&t, "johndoe", OTHER_IP).is_err());
        assert!(wait(&t, "johndoe", None).is_err());
    }

    #[test]
    fn other_usernames_are_unaffected() {
        let (t, _) = throttle(limits(3, 0));
        fail(&t, "johndoe", IP, 10);
        assert!(wait(&t, "johndoe", IP).is_err());
        assert_eq!(wait(&t, "alice", IP), Ok(()));
        assert_eq!(wait(&t, "johndoe2", IP), Ok(()));
        assert_eq!(wait(&t, "JohnDoe", IP), Ok(()));
    }

    #[test]
    fn a_success_resets_the_username_only() {
        let (t, _) = throttle(limits(3, 5));
        fail(&t, "johndoe", IP, 3);
        fail(&t, "mallory", IP, 2);
        assert!(wait(&t, "johndoe", None).is_err());
        t.record_success("johndoe");
        assert_eq!(wait(&t, "johndoe", None), Ok(()));
        // The address has 5 failures and stays throttled.
        assert!(wait(&t, "johndoe", IP).is_err());
        assert!(wait(&t, "alice", IP).is_err());
        assert_eq!(wait(&t, "alice", OTHER_IP), Ok(()));
        // The count starts again from zero.
        fail(&t, "johndoe", OTHER_IP, 2);
        assert_eq!(wait(&t, "johndoe", None), Ok(()));
    }

    #[test]
    fn the_address_dimension_is_independent() {
        let (t, _) = throttle(limits(0, 4));
        // Four usernames, one failure each, from one address.
        for name in ["a", "b", "c"] {
            t.record_failure(name, IP);
        }
        assert_eq!(wait(&t, "d", IP), Ok(()));
        t.record_failure("d", IP);
        assert!(wait(&t, "e", IP).is_err());
        assert!(wait(&t, "a", IP).is_err());
        assert_eq!(wait(&t, "a", OTHER_IP), Ok(()));
        assert_eq!(wait(&t, "a", None), Ok(()));
    }

    #[test]
    fn zero_disables_a_dimension_and_holds_nothing() {
        let (t, _) = throttle(limits(0, 0));
        fail(&t, "johndoe", IP, 1000);
        assert_eq!(wait(&t, "johndoe", IP), Ok(()));
        assert_eq!(t.len(), (0, 0));
        assert!(t.is_empty());

        let (t, _) = throttle(Limits {
            max_entries: 0,
            ..limits(1, 1)
        });
        fail(&t, "johndoe", IP, 5);
        assert_eq!(wait(&t, "johndoe", IP), Ok(()));
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
        assert!(wait(&t, "johndoe", IP).is_err());
        clock.advance(20 * SECOND - Duration::from_millis(1));
        assert!(wait(&t, "johndoe", IP).is_err(), "the first still counts");
        clock.advance(Duration::from_millis(1));
        assert_eq!(wait(&t, "johndoe", IP), Ok(()), "the first has left");
        t.record_failure("johndoe", IP); // t = 60: 20, 40, 60
        assert!(wait(&t, "johndoe", IP).is_err());
        clock.advance(60 * SECOND);
        assert_eq!(wait(&t, "johndoe", IP), Ok(()));
        assert_eq!(t.len(), (0, 0), "an expired key is dropped");
    }

    #[test]
    fn retry_after_is_the_wait_for_the_oldest_failure() {
        let (t, clock) = throttle(limits(2, 0));
        t.record_failure("johndoe", IP); // t = 0
        clock.advance(Duration::from_millis(10_500));
        t.record_failure("johndoe", IP); // t = 10.5
        assert_eq!(wait(&t, "johndoe", IP), Err(Duration::from_secs(50)));
        clock.advance(Duration::from_millis(100)); // 49.4 s left: rounded up
        assert_eq!(wait(&t, "johndoe", IP), Err(Duration::from_secs(50)));
        clock.advance(Duration::from_millis(49_399)); // 1 ms left
        assert_eq!(wait(&t, "johndoe", IP), Err(SECOND));
        clock.advance(Duration::from_millis(1));
        assert_eq!(wait(&t, "johndoe", IP), Ok(()));
        // More failures than the limit: the newest `limit` count, so the
        // wait is for the older of those two.
        fail(&t, "johndoe", IP, 5);
        assert_eq!(wait(&t, "johndoe", IP), Err(60 * SECOND));
    }

    #[test]
    fn retry_after_is_the_longer_of_both_dimensions() {
        let (t, clock) = throttle(limits(1, 2));
        t.record_failure("a", IP); // t = 0
        clock.advance(30 * SECOND);
        t.record_failure("b", IP);
        // At t = 30, "b" waits 60 s and the address 30 s.
        assert_eq!(wait(&t, "b", IP), Err(60 * SECOND));
        assert_eq!(wait(&t, "c", IP), Err(30 * SECOND));
        assert_eq!(wait(&t, "b", None), Err(60 * SECOND));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let (t, _) = throttle(limits(0, 2));
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("an address");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("an address");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("an address");
        t.record_failure("x", Some(a));
        t.record_failure("x", Some(b));
        assert!(wait(&t, "x", Some(a)).is_err());
        assert_eq!(wait(&t, "x", Some(c)), Ok(()));

        let v4: IpAddr = "192.0.2.1".parse().expect("an address");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("an address");
        let mapped_other: IpAddr = "::ffff:192.0.2.2".parse().expect("an address");
        t.record_failure("x", Some(mapped));
        t.record_failure("x", Some(v4));
        assert!(wait(&t, "x", Some(v4)).is_err());
        assert!(wait(&t, "x", Some(mapped)).is_err());
        assert_eq!(wait(&t, "x", Some(mapped_other)), Ok(()));
    }

    #[test]
    fn a_flood_of_usernames_stays_within_the_cap() {
        // Throttled keys all (limit 1), so eviction takes the oldest of them.
        let (t, clock) = throttle(Limits {
            max_entries: 1000,
            ..limits(1, 0)
        });
        for i in 0..200_000u32 {
            t.record_failure(&i.to_string(), IP);
            if i % 1000 == 0 {
                clock.advance(Duration::from_millis(1));
                assert!(t.len().0 <= 1000);
            }
        }
        assert_eq!(t.len(), (1000, 0));
        // The newest are held, the oldest are gone.
        assert!(wait(&t, "199999", None).is_err());
        assert!(wait(&t, "199000", None).is_err());
        assert_eq!(wait(&t, "198999", None), Ok(()));
        assert_eq!(wait(&t, "0", None), Ok(()));
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
        assert!(wait(&t, "a", None).is_err());
        assert_eq!(wait(&t, "b", None), Ok(()));
        assert!(wait(&t, "c", None).is_err());
        t.record_failure("d", None);
        assert!(wait(&t, "d", None).is_err());
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
        assert!(wait(&t, &long, None).is_err());
        assert_eq!(wait(&t, &long[1..], None), Ok(()));
    }

    #[test]
    fn empty_username_and_no_address_do_not_panic() {
        let (t, _) = throttle(limits(1, 1));
        assert_eq!(wait(&t, "", None), Ok(()));
        t.record_failure("", None);
        assert!(wait(&t, "", None).is_err());
        t.record_success("");
        t.record_success("never seen");
        assert_eq!(wait(&t, "", None), Ok(()));
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

    #[test]
    fn admission_reserves_so_concurrent_guesses_get_at_most_the_limit() {
        let (t, _) = throttle(limits(10, 0));
        // Forty guesses in flight at once: none has been judged yet.
        let admitted: Vec<Attempt<'_>> = (0..40)
            .filter_map(|_| t.try_admit("johndoe", IP).ok())
            .collect();
        assert_eq!(admitted.len(), 10);
        // The eleventh would wait: ten in flight fill the budget, yet no
        // failure is settled, so it is no 429.
        assert_eq!(t.try_admit("johndoe", IP).unwrap_err(), Refusal::Busy);
        assert_eq!(wait(&t, "johndoe", IP), Ok(()), "nothing settled yet");
        admitted.into_iter().for_each(Attempt::failed);
        let refused = throttled_by(t.try_admit("johndoe", OTHER_IP).unwrap_err());
        assert!(refused.username && !refused.address, "{refused:?}");
    }

    #[test]
    fn from_many_addresses_the_username_still_gets_its_limit() {
        let (t, _) = throttle(limits(10, 100));
        let admitted = (0..40u32)
            .filter_map(|i| {
                t.try_admit("johndoe", Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))))
                    .ok()
            })
            .count();
        assert_eq!(admitted, 10);
    }

    #[test]
    fn the_address_limit_reserves_too() {
        let (t, _) = throttle(limits(0, 5));
        let admitted: Vec<_> = (0..40)
            .filter_map(|i| t.try_admit(&format!("user{i}"), IP).ok())
            .collect();
        assert_eq!(admitted.len(), 5);
        assert_eq!(t.try_admit("other", IP).unwrap_err(), Refusal::Busy);
        assert!(t.try_admit("other", OTHER_IP).is_ok());
        admitted.into_iter().for_each(Attempt::failed);
        let refused = throttled_by(t.try_admit("other", IP).unwrap_err());
        assert!(refused.address && !refused.username, "{refused:?}");
    }

    #[test]
    fn a_success_resets_the_username_and_returns_the_address_reservation() {
        let (t, _) = throttle(limits(3, 3));
        for attempt in [t.try_admit("johndoe", IP), t.try_admit("johndoe", IP)] {
            attempt.unwrap().failed();
        }
        t.try_admit("johndoe", IP).unwrap().succeeded();
        // The username starts again from zero; the address keeps its two
        // failures, not the success.
        assert_eq!(wait(&t, "johndoe", None), Ok(()));
        t.try_admit("x", IP).unwrap().failed();
        assert!(wait(&t, "y", IP).is_err(), "two failures and this one");
    }

    #[test]
    fn a_refund_counts_nothing() {
        let (t, _) = throttle(limits(2, 2));
        for _ in 0..10 {
            t.try_admit("johndoe", IP).unwrap().refund();
        }
        assert_eq!(wait(&t, "johndoe", IP), Ok(()));
        assert!(t.is_empty(), "{t:?}");
        // A refund takes back its own reservation, not another's.
        t.try_admit("johndoe", IP).unwrap().failed();
        let pending = t.try_admit("johndoe", IP).unwrap();
        assert_eq!(t.try_admit("johndoe", IP).unwrap_err(), Refusal::Busy);
        pending.refund();
        assert_eq!(wait(&t, "johndoe", IP), Ok(()));
        t.try_admit("johndoe", IP).unwrap().failed();
        assert!(wait(&t, "johndoe", IP).is_err());
    }

    #[test]
    fn an_address_only_attempt_leaves_usernames_alone() {
        let (t, _) = throttle(limits(1, 2));
        t.try_admit("johndoe", OTHER_IP).unwrap().failed();
        t.try_admit_address(IP).unwrap().failed();
        // A success refunds the address and resets no username.
        t.try_admit_address(IP).unwrap().refund();
        assert!(wait(&t, "johndoe", None).is_err());
        assert_eq!(wait(&t, "x", IP), Ok(()));
        t.try_admit_address(IP).unwrap().failed();
        let refused = throttled_by(t.try_admit_address(IP).unwrap_err());
        assert!(refused.address && !refused.username);
        assert!(t.try_admit_address(None).is_ok());
    }

    #[test]
    fn a_dropped_attempt_counts_as_a_failure() {
        let (t, _) = throttle(limits(1, 0));
        drop(t.try_admit("johndoe", None).unwrap());
        assert!(wait(&t, "johndoe", None).is_err());
    }

    #[test]
    fn a_check_reserves_nothing() {
        let (t, _) = throttle(limits(1, 1));
        for _ in 0..5 {
            assert_eq!(wait(&t, "johndoe", IP), Ok(()));
        }
        assert!(t.is_empty());
    }

    #[test]
    fn eviction_takes_keys_that_are_not_throttled_first() {
        let (t, clock) = throttle(Limits {
            max_entries: 3,
            ..limits(2, 0)
        });
        fail(&t, "victim", None, 2);
        clock.advance(SECOND);
        for i in 0..100 {
            t.record_failure(&format!("spray{i}"), None);
        }
        assert_eq!(t.len().0, 3);
        assert!(wait(&t, "victim", None).is_err(), "the lockout survived");
        assert!(wait(&t, "spray99", None).is_ok());
        // Throttled keys go too once nothing else is left, oldest first.
        fail(&t, "a", None, 2);
        fail(&t, "b", None, 2);
        fail(&t, "c", None, 2);
        assert_eq!(wait(&t, "victim", None), Ok(()));
        assert!(wait(&t, "a", None).is_err() && wait(&t, "c", None).is_err());
    }

    #[test]
    fn a_lockout_survives_a_million_usernames_from_thousands_of_64s() {
        // The default limits and table sizes, and the spray an attacker
        // with a /52 of IPv6 can send within one window: a million
        // distinct usernames from 4096 /64s, each attempt admitted while
        // its address may still fail, and failed.
        let (t, clock) = throttle(Limits::default());
        let victim_ip = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)));
        for _ in 0..10 {
            t.try_admit("victim", victim_ip).unwrap().failed();
        }
        for i in 0..90 {
            t.try_admit(&format!("other{i}"), victim_ip)
                .unwrap()
                .failed();
        }
        assert!(t.check("victim", None).is_err());
        assert!(t.check("anyone", victim_ip).unwrap_err().address);
        let prefix = 0x2001_0db8_0000_0000_u128 << 64;
        let mut admitted = 0u32;
        let mut username = String::new();
        for i in 0..1_000_000u128 {
            let subnet = i % 4096;
            let ip = IpAddr::V6(std::net::Ipv6Addr::from(prefix | (subnet << 64) | i));
            username.clear();
            write!(username, "spray{i}").unwrap();
            if let Ok(attempt) = t.try_admit(&username, Some(ip)) {
                attempt.failed();
                admitted += 1;
            }
            if i % 100_000 == 0 {
                clock.advance(SECOND);
            }
        }
        // Each /64 got its 100 failures; the rest were refused unhashed.
        assert_eq!(admitted, 4096 * 100);
        let (users, ips) = t.len();
        assert!(users <= 100_000 && ips <= 100_000, "{users} {ips}");
        assert!(t.check("victim", None).unwrap_err().username);
        assert!(t.check("anyone", victim_ip).unwrap_err().address);
        // And the lockout still ends when its window does.
        clock.advance(60 * SECOND);
        assert_eq!(wait(&t, "victim", victim_ip), Ok(()));
    }

    #[test]
    fn a_success_keeps_the_other_attempts_in_flight() {
        // One right password among guesses in flight: resetting the
        // username's failures must not free the guesses' places, or a
        // guesser who also sends one good login would get past the limit.
        let (t, _) = throttle(limits(3, 0));
        let good = t.try_admit("johndoe", IP).unwrap();
        let guesses = [t.try_admit("johndoe", IP), t.try_admit("johndoe", IP)];
        good.succeeded();
        let third = t.try_admit("johndoe", IP).unwrap();
        assert_eq!(t.try_admit("johndoe", IP).unwrap_err(), Refusal::Busy);
        guesses.into_iter().for_each(|g| g.unwrap().failed());
        third.failed();
        assert!(throttled_by(t.try_admit("johndoe", IP).unwrap_err()).username);
    }

    #[tokio::test(start_paused = true)]
    async fn right_passwords_past_the_budget_wait_and_are_let_in() {
        let t = Arc::new(throttle(limits(10, 100)).0);
        let deadline = tokio::time::Instant::now() + 2 * SECOND;
        // 1000 logins of one user from 100 addresses at once, each right.
        let mut logins = tokio::task::JoinSet::new();
        for i in 0..1000u32 {
            let t = t.clone();
            logins.spawn(async move {
                let ip = Some(IpAddr::V4(Ipv4Addr::from(0x7f00_0000 + i % 100)));
                let attempt = t.admit("johndoe", ip, deadline).await?;
                // A hash's worth of time, ten at once.
                tokio::time::sleep(Duration::from_millis(10)).await;
                attempt.succeeded();
                Ok::<(), Refusal>(())
            });
        }
        let mut ok = 0;
        while let Some(login) = logins.join_next().await {
            assert_eq!(login.unwrap(), Ok(()));
            ok += 1;
        }
        assert_eq!(ok, 1000, "every one in, ten at a time, within 2 s");
        assert!(t.is_empty(), "{t:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_guesses_see_the_limit_reached_and_get_their_429() {
        let t = Arc::new(throttle(limits(10, 0)).0);
        let deadline = tokio::time::Instant::now() + 2 * SECOND;
        let mut guesses = tokio::task::JoinSet::new();
        for i in 0..40u32 {
            let t = t.clone();
            guesses.spawn(async move {
                let ip = Some(IpAddr::V4(Ipv4Addr::from(0x7f00_0000 + i)));
                let attempt = t.admit("johndoe", ip, deadline).await?;
                tokio::time::sleep(Duration::from_millis(10)).await;
                attempt.failed();
                Ok::<(), Refusal>(())
            });
        }
        let (mut hashed, mut throttled) = (0, 0);
        while let Some(guess) = guesses.join_next().await {
            match guess.unwrap() {
                Ok(()) => hashed += 1,
                Err(Refusal::Throttled(_)) => throttled += 1,
                Err(Refusal::Busy) => panic!("a 503 where the limit was known"),
            }
        }
        assert_eq!((hashed, throttled), (10, 30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_at_the_deadline_and_leaves_nothing() {
        let t = Arc::new(throttle(limits(1, 0)).0);
        let held = t.try_admit("johndoe", IP).unwrap();
        let start = tokio::time::Instant::now();
        let refused = t.admit("johndoe", OTHER_IP, start + SECOND).await;
        assert_eq!(refused.unwrap_err(), Refusal::Busy);
        assert_eq!(start.elapsed(), SECOND);
        // A waiter given up (its client gone) leaves no reservation.
        let gone = tokio::time::timeout(
            Duration::from_millis(10),
            t.admit("johndoe", OTHER_IP, start + 10 * SECOND),
        )
        .await;
        assert!(gone.is_err());
        held.refund();
        assert!(t.is_empty(), "{t:?}");
        t.admit("johndoe", IP, start).await.unwrap().succeeded();
        // The deadline in the past: admitted when free, Busy when not.
        let held = t.try_admit("johndoe", IP).unwrap();
        assert_eq!(
            t.admit("johndoe", IP, start).await.unwrap_err(),
            Refusal::Busy
        );
        held.refund();
    }

    #[tokio::test(start_paused = true)]
    async fn a_freed_place_goes_to_the_attempt_waiting_longest() {
        let t = Arc::new(throttle(limits(1, 0)).0);
        let deadline = tokio::time::Instant::now() + 10 * SECOND;
        let held = t.try_admit("johndoe", IP).unwrap();
        let mut waiters = Vec::new();
        for i in 0..3u32 {
            let t = t.clone();
            waiters.push(tokio::spawn(async move {
                let attempt = t.admit("johndoe", IP, deadline).await?;
                let admitted = tokio::time::Instant::now();
                tokio::time::sleep(SECOND).await;
                attempt.succeeded();
                Ok::<_, Refusal>((i, admitted))
            }));
            // Each in line before the next comes.
            tokio::task::yield_now().await;
        }
        held.succeeded();
        // A newcomer does not take the place freed for those in line.
        assert_eq!(t.try_admit("johndoe", OTHER_IP).unwrap_err(), Refusal::Busy);
        let mut order = Vec::new();
        for waiter in waiters {
            order.push(waiter.await.unwrap().unwrap());
        }
        order.sort_by_key(|&(_, admitted)| admitted);
        let order: Vec<u32> = order.into_iter().map(|(i, _)| i).collect();
        assert_eq!(order, [0, 1, 2], "first come, first served");
        assert!(t.is_empty(), "{t:?}");
        assert!(lock(&t.users).lines.is_empty(), "nobody left in line");
    }
}
