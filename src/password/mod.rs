//! Password hashes: argon2id PHC strings, checked with RustCrypto `argon2`.
//!
//! Verification is deliberately slow (tens of milliseconds, ~19 MiB each), so
//! the server never runs it on a request thread: [`Verifier`] moves it to
//! tokio's blocking pool behind a semaphore with one permit per core, which
//! bounds both the CPU it takes from other requests and its memory (cores ×
//! the hash's memory cost), and behind a bounded queue, so that a flood of
//! logins is refused quickly rather than served late. Each permit's argon2 memory is allocated on first
//! use and reused after, so a login flood neither allocates nor frees 19 MiB
//! per request, and a server that has seen no login holds none of it.
//!
//! A failed check (wrong password, unknown or disabled user alike) is
//! answered no sooner than a hash at the slowest parameters among the users
//! would take: the time of a failure tells nothing about the parameters of
//! the user it named, nor whether that user exists (see `Padding`).

use crate::counters::Histogram;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Memory cost of new hashes in KiB (OWASP's argon2id minimum).
pub const DEFAULT_M_COST: u32 = 19456;
/// Iterations of new hashes.
pub const DEFAULT_T_COST: u32 = 2;
/// Lanes of new hashes.
pub const DEFAULT_P_COST: u32 = 1;

/// Why a hash could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordError {
    /// The string is not a PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    NotPhc(String),
    /// A PHC string of an algorithm other than argon2.
    Algorithm(String),
    /// The argon2 parameters are out of range.
    Params(String),
    /// The OS random source failed while making a salt.
    Random(String),
    /// A well-known hash format other than argon2 (bcrypt, as passlib and
    /// Django make it; PBKDF2; scrypt; crypt(3)'s SHA-2 and MD5): its name.
    Unsupported(&'static str),
}

/// Hash formats a users file imported from another framework may hold, by
/// prefix, with the name an error gives them: told apart so that a bcrypt
/// hash is not reported as a PHC string with a bad salt. Only these fixed
/// names are ever shown: the text of a hash that matches none is not.
const FOREIGN_SCHEMES: &[(&str, &str)] = &[
    ("$2a$", "bcrypt"),
    ("$2b$", "bcrypt"),
    ("$2x$", "bcrypt"),
    ("$2y$", "bcrypt"),
    // passlib's bcrypt_sha256 (`$bcrypt-sha256$v=2,t=2b,r=12$...`).
    ("$bcrypt-sha256$", "bcrypt"),
    // Django's: `bcrypt$$2b$...`, `bcrypt_sha256$$2b$...`.
    ("bcrypt$", "bcrypt"),
    ("bcrypt_sha256$", "bcrypt"),
    // passlib's `$pbkdf2-sha256$29000$...`; Django's `pbkdf2_sha256$...`.
    ("$pbkdf2", "PBKDF2"),
    ("pbkdf2_", "PBKDF2"),
    ("$scrypt$", "scrypt"),
    ("scrypt$", "scrypt"),
    ("$7$", "scrypt"),
    ("$1$", "MD5-crypt"),
    ("$5$", "SHA-256-crypt"),
    ("$6$", "SHA-512-crypt"),
];

/// The name of the foreign hash format `text` is in, if it is a known one.
fn foreign_scheme(text: &str) -> Option<&'static str> {
    FOREIGN_SCHEMES
        .iter()
        .find(|(prefix, _)| text.starts_with(prefix))
        .map(|&(_, name)| name)
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordError::NotPhc(e) => write!(f, "not an argon2 PHC string ({e})"),
            PasswordError::Algorithm(a) => write!(
                f,
                "hash algorithm {a:?} is not supported (use argon2id); \
                 rehash with `password-bearer hash-password`"
            ),
            PasswordError::Params(e) => write!(f, "invalid argon2 parameters ({e})"),
            PasswordError::Random(e) => write!(f, "cannot read random bytes from the OS: {e}"),
            PasswordError::Unsupported(scheme) => write!(
                f,
                "a {scheme} hash: {scheme} is not supported (argon2 only); \
                 rehash with `password-bearer hash-password`"
            ),
        }
    }
}

impl std::error::Error for PasswordError {}

/// Hashes `password` as an argon2id PHC string at the default parameters
/// (m=19456 KiB, t=2, p=1) with a fresh 16-byte salt from the OS.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    hash_with_params(password.as_bytes(), Params::DEFAULT)
}

// argon2's defaults are ours: `Params::DEFAULT` is these parameters, with
// no `Result` to `expect` (whose error `Debug` every binary would carry).
const _: () = assert!(
    Params::DEFAULT_M_COST == DEFAULT_M_COST
        && Params::DEFAULT_T_COST == DEFAULT_T_COST
        && Params::DEFAULT_P_COST == DEFAULT_P_COST
);

fn hash_with_params(password: &[u8], params: Params) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Random(e.to_string()))?;
    // 16 bytes is a valid salt length: this error cannot happen, and is
    // mapped rather than `expect`ed so that no panic path (and no `Debug`
    // of the error) reaches the binary.
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Params(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Params(e.to_string()))
}

/// Checks that `phc` is an argon2 PHC string whose parameters argon2 accepts,
/// and returns those parameters. Run on every hash of a users file at load,
/// so that a bad hash stops startup instead of failing every login.
pub fn check_phc(phc: &str) -> Result<Params, PasswordError> {
    let hash = PasswordHash::new(phc).map_err(|e| match foreign_scheme(phc) {
        Some(scheme) => PasswordError::Unsupported(scheme),
        None => PasswordError::NotPhc(e.to_string()),
    })?;
    Algorithm::try_from(hash.algorithm)
        .map_err(|_| PasswordError::Algorithm(hash.algorithm.as_str().to_owned()))?;
    if hash.hash.is_none() {
        return Err(PasswordError::NotPhc("no hash value".to_owned()));
    }
    Params::try_from(&hash).map_err(|e| PasswordError::Params(e.to_string()))
}

/// Verifies `password` against a PHC string already accepted by [`check_phc`].
/// Synchronous and slow: callers on the async runtime use [`Verifier`].
pub fn verify_password(phc: &str, password: &[u8]) -> bool {
    verify_with_memory(phc, password, &mut Vec::new()).0
}

/// [`verify_password`] with argon2's working memory supplied by the caller
/// (grown to the hash's memory cost as needed, kept for the next call);
/// also the hash's [`cost_units`] (0 for a string that is not one).
fn verify_with_memory(phc: &str, password: &[u8], memory: &mut Vec<Block>) -> (bool, u64) {
    let Ok(hash) = PasswordHash::new(phc) else {
        return (false, 0);
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(hash.algorithm),
        Params::try_from(&hash),
        hash.salt,
        hash.hash,
    ) else {
        return (false, 0);
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(version)) => version,
        Some(Err(_)) => return (false, 0),
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return (false, 0);
    };
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = &mut out[..expected.len()];
    memory.resize(params.block_count(), Block::default());
    let units = cost_units(&params);
    let ok = Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, out, &mut memory[..])
        .is_ok()
        // `Output`'s equality is constant-time.
        && Output::new(out).is_ok_and(|out| out == expected);
    (ok, units)
}

/// What [`Verifier::verify_by`] found: whether the password matched, and
/// when a failure may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a failure is answered after `padded`"]
pub struct Verdict {
    /// Whether the password matched the hash.
    pub verified: bool,
    /// No failure is answered before this: a hash at the slowest
    /// parameters among the users would finish then (see `Padding`).
    answer_at: tokio::time::Instant,
}

impl Verdict {
    /// [`Self::verified`], after waiting, for a failure, until it may be
    /// answered (a timer: no CPU, no hash slot, no thread); a success is
    /// not held back.
    pub async fn padded(self) -> bool {
        if !self.verified {
            tokio::time::sleep_until(self.answer_at).await;
        }
        self.verified
    }
}

/// A hash slot held: [`Verifier::slot_by`] gives it, [`Verifier::verify_in`]
/// hashes in it.
#[derive(Debug)]
#[must_use = "a slot is for a hash: pass it to `verify_in`"]
pub(crate) struct Slot(OwnedSemaphorePermit);

/// A login that could not start its hash within the queue's wait: it is
/// answered 503 at once, not hashed, and counted as nobody's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Busy {
    /// When to try again: the queue's wait, in whole seconds, at least 1.
    pub retry_after: Duration,
}

/// Runs password checks off the request threads, a bounded number at a
/// time, behind a bounded queue.
///
/// A hash is the one expensive thing a client can ask for, so logins queue
/// for a slot, and a login that could not start its hash within `max_wait`
/// is refused ([`Busy`]) instead of holding its connection for as long as
/// the queue takes. It is refused at once when the queue ahead of it
/// already needs longer than that (judged from the recent hashes' time,
/// with a margin of twice the speed), and after `max_wait` at the
/// latest (measured from its arrival: [`Verifier::verify_by`]).
pub struct Verifier {
    /// Tokio's semaphore (not a thread pool of our own) because waiting for
    /// a permit must not block a runtime thread; fair, so the queue is FIFO.
    permits: Arc<Semaphore>,
    slots: usize,
    max_wait: Duration,
    /// Logins waiting for a permit now.
    waiting: AtomicUsize,
    /// Hashes started so far, to tell a waiting login how many of those
    /// ahead of it have started since it arrived.
    started: AtomicUsize,
    /// Notified when the first hash has been timed.
    first_estimate: Arc<Notify>,
    /// The recent hashes' wall time, a moving average in microseconds; 0
    /// until the first hash.
    hash_micros: Arc<AtomicU64>,
    /// Argon2 working memory, at most one buffer per permit. A std mutex:
    /// held for a push or a pop, never across an await or a hash.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// The cost of the dummy hash computed for unknown usernames, so that
    /// an unknown user costs the same work as a wrong password. Behind a
    /// lock because a reload of the users may change it; read once per
    /// login, beside a hash.
    dummy_params: Mutex<Params>,
    /// What a failure's answer is held back to.
    padding: Arc<Padding>,
    /// The queue's waits and the hashes' times, for the metrics.
    timings: Arc<HashTimings>,
}

/// How long logins waited for a hash slot, and how long hashes took.
#[derive(Debug, Default)]
pub(crate) struct HashTimings {
    pub(crate) wait: Histogram,
    pub(crate) hash: Histogram,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("slots", &self.slots)
            .field("max_wait", &self.max_wait)
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The default number of hashes at once: one per core the process may use.
pub fn default_slots() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Verifier {
    /// A verifier with one slot per core and a two-second queue, whose
    /// dummy hash uses `params`: pass the parameters most of the users'
    /// hashes have, so unknown users take the time real ones do.
    pub fn new(params: Params) -> Verifier {
        Verifier::with_limits(params, default_slots(), Duration::from_secs(2))
    }

    /// A verifier running `slots` hashes at once (at least 1), each of
    /// which may wait up to `max_wait` for its slot.
    pub fn with_limits(params: Params, slots: usize, max_wait: Duration) -> Verifier {
        let slots = slots.max(1);
        Verifier {
            permits: Arc::new(Semaphore::new(slots)),
            slots,
            max_wait,
            waiting: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            first_estimate: Arc::new(Notify::new()),
            hash_micros: Arc::new(AtomicU64::new(0)),
            memory: Arc::new(Mutex::new(Vec::with_capacity(slots))),
            padding: Arc::new(Padding::new(&params)),
            dummy_params: Mutex::new(params),
            timings: Arc::default(),
        }
    }

    /// Logins waiting for a hash slot now.
    pub(crate) fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Hashes running now.
    pub(crate) fn in_progress(&self) -> usize {
        self.slots - self.permits.available_permits()
    }

    /// The queue's waits and the hashes' times.
    pub(crate) fn timings(&self) -> &HashTimings {
        &self.timings
    }

    /// Verifies `password` against `phc`, or, when `phc` is `None` (unknown
    /// user), spends the same work on a dummy hash and answers `false`;
    /// [`Busy`] when the hash could not start in time. A `false` comes no
    /// sooner than a hash at the slowest parameters would (the wait is a
    /// timer: it holds no hash slot and no thread).
    pub async fn verify(&self, phc: Option<Arc<str>>, password: &[u8]) -> Result<bool, Busy> {
        let verdict = self.verify_by(phc, password, self.deadline()).await?;
        Ok(verdict.padded().await)
    }

    /// When a login arriving now must have started its hash: now plus the
    /// queue's wait. A login spends it on its turn among the attempts in
    /// flight ([`crate::throttle::Throttle::admit`]), then on a hash slot.
    pub fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.max_wait
    }

    /// [`Verifier::verify`] for a login that must start its hash by
    /// `deadline` ([`Verifier::deadline`], taken when it arrived), answered
    /// as soon as the hash is done: the caller records a failure, then
    /// waits out its padding ([`Verdict::padded`]), so that the logins
    /// waiting for their turn behind this one are not held back by it.
    pub async fn verify_by(
        &self,
        phc: Option<Arc<str>>,
        password: &[u8],
        deadline: tokio::time::Instant,
    ) -> Result<Verdict, Busy> {
        let slot = self.slot_by(deadline).await?;
        Ok(self.verify_in(slot, phc, password).await)
    }

    /// [`Verifier::verify_by`]'s first half: a hash slot, to be had by
    /// `deadline`. A caller that must know whether its hash has started
    /// (a login dropped before then cost no hash) holds it between the two
    /// halves, with no `.await` between them.
    pub(crate) async fn slot_by(&self, deadline: tokio::time::Instant) -> Result<Slot, Busy> {
        let asked = Instant::now();
        let permit = self.slot(deadline).await?;
        self.timings.wait.observe(asked.elapsed());
        Ok(Slot(permit))
    }

    /// [`Verifier::verify_by`]'s second half: the hash, started at the
    /// first poll in `slot`, which it frees when done.
    pub(crate) async fn verify_in(
        &self,
        slot: Slot,
        phc: Option<Arc<str>>,
        password: &[u8],
    ) -> Verdict {
        let Slot(permit) = slot;
        let timings = self.timings.clone();
        let password = password.to_vec();
        let memory = self.memory.clone();
        let dummy_params = self
            .dummy_params
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let hash_micros = self.hash_micros.clone();
        let first_estimate = self.first_estimate.clone();
        let padding = self.padding.clone();
        // Tokio's clock, the one the padding's timer runs on.
        let started = tokio::time::Instant::now();
        let checked = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let pool = |m: &Mutex<Vec<Vec<Block>>>| {
                // A poisoned pool still holds valid buffers.
                m.lock().unwrap_or_else(PoisonError::into_inner).pop()
            };
            let mut blocks = pool(&memory).unwrap_or_default();
            let (ok, units) = match phc {
                Some(phc) => verify_with_memory(&phc, &password, &mut blocks),
                None => {
                    dummy_hash(&dummy_params, &password, &mut blocks);
                    (false, cost_units(&dummy_params))
                }
            };
            memory
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(blocks);
            drop(permit);
            let took = started.elapsed();
            timings.hash.observe(took);
            if average_in(&hash_micros, took) {
                first_estimate.notify_waiters();
            }
            padding.observe(units, took);
            (ok, padding.target())
        })
        .await;
        // A runtime shutting down means "not verified".
        let (verified, padded) = checked.unwrap_or((false, Duration::ZERO));
        Verdict {
            verified,
            answer_at: started + padded,
        }
    }

    /// From now on, the dummy hash of unknown usernames costs `params`.
    pub fn set_dummy_params(&self, params: Params) {
        *self
            .dummy_params
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = params;
    }

    /// From now on, failures are padded to the time of a hash at `params`,
    /// the slowest parameters among the users (or at a slower hash's, once
    /// one is checked). Called with the users, at start and on reload.
    pub fn set_slowest_params(&self, params: &Params) {
        self.padding.set_slowest(cost_units(params));
    }

    /// A hash slot, or [`Busy`] when none is to be had by `deadline`.
    async fn slot(&self, deadline: tokio::time::Instant) -> Result<OwnedSemaphorePermit, Busy> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            self.started.fetch_add(1, Ordering::Relaxed);
            return Ok(permit);
        }
        let busy = Busy {
            retry_after: Duration::from_secs(self.max_wait.as_secs_f64().ceil().max(1.0) as u64),
        };
        let waiting = Waiting::join(self);
        if !self.can_start_by(&waiting, deadline) {
            return Err(busy);
        }
        let permit = self.permits.clone().acquire_owned();
        let timeout = tokio::time::sleep_until(deadline);
        tokio::pin!(permit, timeout);
        let mut estimated = self.hash_micros.load(Ordering::Relaxed) > 0;
        loop {
            let first_estimate = self.first_estimate.notified();
            tokio::select! {
                biased;
                permit = &mut permit => {
                    self.started.fetch_add(1, Ordering::Relaxed);
                    // The semaphore is never closed.
                    return permit.map_err(|_| busy);
                }
                () = &mut timeout => return Err(busy),
                // Logins that arrived before any hash was timed are judged
                // once the first one is: a cold server's first burst is
                // refused as soon as that is known, not after the wait.
                () = first_estimate, if !estimated => {
                    estimated = true;
                    if !self.can_start_by(&waiting, deadline) {
                        return Err(busy);
                    }
                }
            }
        }
    }

    /// Whether the login `waiting` may start its hash by `deadline`, as far
    /// as the recent hashes' time tells; unknown (no hash timed yet) is yes.
    ///
    /// Only a clear no refuses early: the estimate is one moving average
    /// (on a cold server, one hash that also paid for its first use of the
    /// memory, on a machine busy with others), so a login is refused
    /// before the deadline only when it could not start in time even were
    /// hashes [`ESTIMATE_MARGIN`] times faster than estimated, and counted
    /// behind no more logins than are waiting now. The rest wait, and the
    /// deadline itself judges them: work the server can do in time is not
    /// refused on a guess.
    fn can_start_by(&self, waiting: &Waiting<'_>, deadline: tokio::time::Instant) -> bool {
        let micros = self.hash_micros.load(Ordering::Relaxed) / ESTIMATE_MARGIN;
        if micros == 0 {
            return true;
        }
        // Those ahead of it that have started since it arrived are not
        // ahead any more, nor are more than all but itself of those waiting
        // now (some ahead of it gave up); the rest start `slots` at a time,
        // each round taking about one hash.
        let started = self
            .started
            .load(Ordering::Relaxed)
            .wrapping_sub(waiting.started);
        let waiting_now = self.waiting.load(Ordering::Relaxed).saturating_sub(1);
        let ahead = waiting.ahead.saturating_sub(started).min(waiting_now);
        let rounds = u32::try_from(ahead / self.slots).unwrap_or(u32::MAX);
        tokio::time::Instant::now() + Duration::from_micros(micros).saturating_mul(rounds)
            <= deadline
    }
}

/// How much faster than the estimate hashes would have to run for a login
/// refused early to have started in time (see [`Verifier::can_start_by`]).
const ESTIMATE_MARGIN: u64 = 2;

/// One login in the queue, counted from its arrival until it has a slot or
/// gives up (its future dropped included).
struct Waiting<'a> {
    count: &'a AtomicUsize,
    /// How many were already waiting when it arrived.
    ahead: usize,
    /// [`Verifier::started`] when it arrived.
    started: usize,
}

impl Waiting<'_> {
    fn join(verifier: &Verifier) -> Waiting<'_> {
        Waiting {
            count: &verifier.waiting,
            ahead: verifier.waiting.fetch_add(1, Ordering::Relaxed),
            started: verifier.started.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Folds one hash's time into the moving average (weight 1/8: a few
/// hashes follow a change of load, one outlier moves it little); whether
/// it was the first.
fn average_in(average: &AtomicU64, took: Duration) -> bool {
    fold_in(average, u64::try_from(took.as_micros()).unwrap_or(u64::MAX))
}

/// Folds `sample` (made at least 1) into the moving average `average`, 0
/// until its first sample; whether it was the first.
fn fold_in(average: &AtomicU64, sample: u64) -> bool {
    let sample = sample.max(1);
    let old = average.load(Ordering::Relaxed);
    let new = if old == 0 {
        sample
    } else {
        old - old / 8 + sample / 8
    };
    // A race with another hash loses one sample of an average: harmless.
    average.store(new, Ordering::Relaxed);
    old == 0
}

/// The work of a hash at `params`, in argon2 blocks processed (memory blocks
/// × passes): what its time is proportional to, nearly (per unit, a 64 MiB
/// hash is measured up to 40% slower than a 19 MiB one, its memory being
/// further from the cache).
fn cost_units(params: &Params) -> u64 {
    u64::try_from(params.block_count()).unwrap_or(u64::MAX) * u64::from(params.t_cost())
}

/// How long a failed check is held back: until a hash at the slowest
/// parameters would have finished, so that a wrong password for a user with
/// costly parameters, for a user with the usual ones, for a disabled user,
/// and an unknown username (a dummy hash at the usual ones) are answered
/// alike.
///
/// Padding, rather than rehashing each user to the server's parameters at
/// their next successful login (pwdlib's `verify_and_update`): the users
/// file and the database are the operator's, which the server never writes,
/// and a user who never logs in would keep their parameters, and so their
/// tell, for ever. The wait is a timer after the hash, so it costs no CPU,
/// no hash slot and no thread; a successful login is never held back (its
/// client knows the password already).
///
/// The slowest hash's time is estimated from the hashes this process runs,
/// as time per [`cost_units`], so it follows the machine's load: from every
/// hash, and from the slowest parameters' own hashes when there are some
/// (per unit they are the slower); the larger of the two, plus a quarter,
/// so that the slowest user's own failures are mostly padded too.
#[derive(Debug, Default)]
struct Padding {
    /// The slowest parameters' [`cost_units`]: from the users at start and
    /// reload, raised by any slower hash checked since (a user inserted in
    /// the database with other parameters).
    slowest: AtomicU64,
    /// Nanoseconds per unit, a moving average over every hash.
    unit_nanos: AtomicU64,
    /// The same over the slowest parameters' hashes only; 0 until one.
    slowest_unit_nanos: AtomicU64,
}

/// The margin over the estimate, in quarters.
const PADDING_QUARTERS: u64 = 5;

impl Padding {
    fn new(params: &Params) -> Padding {
        Padding {
            slowest: AtomicU64::new(cost_units(params)),
            ..Padding::default()
        }
    }

    fn set_slowest(&self, units: u64) {
        if self.slowest.swap(units, Ordering::Relaxed) != units {
            // Timed at other parameters.
            self.slowest_unit_nanos.store(0, Ordering::Relaxed);
        }
    }

    /// Learns from one hash of `units` that took `took`.
    fn observe(&self, units: u64, took: Duration) {
        if units == 0 {
            return;
        }
        let per_unit = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX) / units;
        fold_in(&self.unit_nanos, per_unit);
        let slowest = self.slowest.fetch_max(units, Ordering::Relaxed);
        if units > slowest {
            self.slowest_unit_nanos.store(per_unit, Ordering::Relaxed);
        } else if units == slowest {
            fold_in(&self.slowest_unit_nanos, per_unit);
        }
    }

    /// How long after its hash started a failure is answered.
    fn target(&self) -> Duration {
        padding_target(
            self.slowest.load(Ordering::Relaxed),
            self.unit_nanos.load(Ordering::Relaxed),
            self.slowest_unit_nanos.load(Ordering::Relaxed),
        )
    }
}

/// [`Padding::target`] from its three figures.
fn padding_target(slowest: u64, unit_nanos: u64, slowest_unit_nanos: u64) -> Duration {
    let per_unit = unit_nanos.max(slowest_unit_nanos);
    Duration::from_nanos(
        slowest
            .saturating_mul(per_unit)
            .saturating_mul(PADDING_QUARTERS)
            / 4,
    )
}

/// The work of one verification at `params`, thrown away.
fn dummy_hash(params: &Params, password: &[u8], memory: &mut Vec<Block>) {
    let mut out = [0u8; 32];
    memory.resize(params.block_count(), Block::default());
    let _ = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, b"dummy-salt-16-by", &mut out, &mut memory[..]);
}

#[cfg(test)]
mod tests;
