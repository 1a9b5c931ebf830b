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
//!    the attempt was never judged (the server was busy, its user store
//!    down, or its client gone before its hash started: `/token` refunds
//!    those itself): that is nobody's failure. An attempt dropped
//!    unsettled (the client went away mid-hash, the request timed out)
//!    counts as failed.
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

mod table;

use crate::addr::address_key;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::net::IpAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use table::{Prehashed, Table, Verdict};
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

#[cfg(test)]
mod tests;
