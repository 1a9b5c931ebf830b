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
        let asked = Instant::now();
        let permit = self.slot(deadline).await?;
        self.timings.wait.observe(asked.elapsed());
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
        Ok(Verdict {
            verified,
            answer_at: started + padded,
        })
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
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash_password("secret").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let params = check_phc(&phc).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (19456, 2, 1)
        );
        assert!(verify_password(&phc, b"secret"));
        assert!(!verify_password(&phc, b"secret2"));
        assert!(!verify_password(&phc, b""));
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_salt() {
        assert_ne!(hash_password("x").unwrap(), hash_password("x").unwrap());
    }

    #[test]
    fn rejects_what_is_not_an_argon2_phc_string() {
        assert!(matches!(
            check_phc("fakehashedsecret"),
            Err(PasswordError::NotPhc(_))
        ));
        assert!(matches!(check_phc(""), Err(PasswordError::NotPhc(_))));
        assert!(matches!(
            check_phc("$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"),
            Err(PasswordError::Algorithm(_))
        ));
        assert!(matches!(
            check_phc("$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"),
            Err(PasswordError::Params(_))
        ));
        assert!(matches!(
            check_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ"),
            Err(PasswordError::NotPhc(_))
        ));
        assert!(!verify_password("garbage", b"secret"));
    }

    #[test]
    fn other_frameworks_hashes_are_named_and_never_shown() {
        for (hash, scheme) in [
            // passlib's bcrypt, and the other prefixes bcrypt libraries write.
            (
                "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
                "bcrypt",
            ),
            (
                "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
                "bcrypt",
            ),
            (
                "$2y$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
                "bcrypt",
            ),
            (
                "$bcrypt-sha256$v=2,t=2b,r=12$n79VH.0Q2TMWmt3Oqt9uku$Kq4Noyk3094Y2QlB8NdRT8SvGiI4ft2",
                "bcrypt",
            ),
            (
                "bcrypt_sha256$$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
                "bcrypt",
            ),
            (
                "$pbkdf2-sha256$29000$N2YuJcL5HyPzrmuWiaAbUg$PGpz5iNPMJmcz3BC8eWvmoT5DTQQqAPyGQvvobOA/H0",
                "PBKDF2",
            ),
            (
                "pbkdf2_sha256$600000$c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA=",
                "PBKDF2",
            ),
            ("$6$rounds=656000$c2FsdA$aGFzaA", "SHA-512-crypt"),
        ] {
            assert_eq!(check_phc(hash), Err(PasswordError::Unsupported(scheme)), "{hash}");
            let shown = check_phc(hash).unwrap_err().to_string();
            assert_eq!(
                shown,
                format!(
                    "a {scheme} hash: {scheme} is not supported (argon2 only); \
                     rehash with `password-bearer hash-password`"
                )
            );
            assert!(!verify_password(hash, b"secret"));
        }
        // What matches no known format is not named after its first field.
        assert!(matches!(
            check_phc("$secretword$x$y"),
            Err(PasswordError::NotPhc(e)) if !e.contains("secretword")
        ));
    }

    #[tokio::test]
    async fn the_dummy_hash_uses_the_users_memory_cost() {
        // Unknown users cost a hash at the usual parameters: with other
        // parameters (or none) their answer time would tell them apart.
        let verifier = Verifier::new(Params::new(64, 3, 1, None).unwrap());
        assert_eq!(verifier.verify(None, b"pw").await, Ok(false));
        let pool = verifier.memory.lock().unwrap();
        assert_eq!(pool.len(), 1);
        assert_eq!(pool[0].len(), 64, "the dummy hash used m=64 KiB of blocks");
    }

    #[tokio::test]
    async fn memory_is_reused_and_bounded_by_the_permits() {
        let cheap = Params::new(8, 1, 1, None).unwrap();
        let verifier = Arc::new(Verifier::new(cheap.clone()));
        let phc: Arc<str> = hash_with_params(b"pw", cheap).unwrap().into();
        let checks = verifying(&verifier, &phc, 32);
        for check in checks {
            assert_eq!(check.await.unwrap(), Ok(true));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(verifier.memory.lock().unwrap().len() <= cores);
    }

    #[tokio::test]
    async fn verifier_answers_false_for_unknown_users() {
        let cheap = Params::new(8, 1, 1, None).unwrap();
        let verifier = Verifier::new(cheap.clone());
        let phc: Arc<str> = hash_with_params(b"pw", cheap).unwrap().into();
        assert_eq!(verifier.verify(Some(phc.clone()), b"pw").await, Ok(true));
        assert_eq!(verifier.verify(Some(phc), b"nope").await, Ok(false));
        assert_eq!(verifier.verify(None, b"pw").await, Ok(false));
    }

    /// `n` logins of the right password, each verifying on its own task.
    fn verifying(
        verifier: &Arc<Verifier>,
        phc: &Arc<str>,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<Result<bool, Busy>>> {
        (0..n)
            .map(|_| {
                let (verifier, phc) = (verifier.clone(), phc.clone());
                tokio::spawn(async move { verifier.verify(Some(phc), b"pw").await })
            })
            .collect()
    }

    fn cheap_verifier(slots: usize, max_wait: Duration) -> (Arc<Verifier>, Arc<str>) {
        let cheap = Params::new(8, 1, 1, None).unwrap();
        let phc = hash_with_params(b"pw", cheap.clone()).unwrap().into();
        (Arc::new(Verifier::with_limits(cheap, slots, max_wait)), phc)
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_that_cannot_start_within_the_wait_is_busy() {
        let (verifier, phc) = cheap_verifier(1, Duration::from_millis(1500));
        let held = verifier.permits.clone().acquire_owned().await.unwrap();
        let start = tokio::time::Instant::now();
        let busy = verifier.verify(Some(phc.clone()), b"pw").await;
        assert_eq!(
            busy,
            Err(Busy {
                retry_after: Duration::from_secs(2)
            })
        );
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(1500),
            "the whole wait, no more"
        );
        assert_eq!(verifier.waiting.load(Ordering::Relaxed), 0);
        drop(held);
        assert_eq!(verifier.verify(Some(phc), b"pw").await, Ok(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_already_too_long_is_refused_at_once() {
        let (verifier, phc) = cheap_verifier(2, Duration::from_millis(100));
        // Recent hashes took 100 ms (50 ms at the margin's speed); both
        // slots are taken.
        verifier.hash_micros.store(100_000, Ordering::Relaxed);
        let held = verifier
            .permits
            .clone()
            .acquire_many_owned(2)
            .await
            .unwrap();
        let waiters = verifying(&verifier, &phc, 6);
        tokio::task::yield_now().await;
        // Six wait (the last of them to start after two more rounds, at
        // 50 ms within the wait); the next would need three even at 50 ms.
        assert_eq!(verifier.waiting.load(Ordering::Relaxed), 6);
        let start = tokio::time::Instant::now();
        assert!(verifier.verify(Some(phc.clone()), b"pw").await.is_err());
        assert_eq!(start.elapsed(), Duration::ZERO, "refused without waiting");
        drop(held);
        for waiter in waiters {
            waiter.await.unwrap().ok();
        }
        assert_eq!(verifier.waiting.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cold_queue_is_judged_once_the_first_hash_is_timed() {
        let (verifier, phc) = cheap_verifier(1, Duration::from_secs(2));
        let held = verifier.permits.clone().acquire_owned().await.unwrap();
        // Ten logins arrive before any hash was timed: all of them wait.
        let waiters = verifying(&verifier, &phc, 10);
        tokio::task::yield_now().await;
        assert_eq!(verifier.waiting.load(Ordering::Relaxed), 10);
        // The first hash took 1 s: even were hashes twice as fast, those
        // with five or more ahead of them cannot start within 2 s, and are
        // refused now, not in 2 s.
        let start = tokio::time::Instant::now();
        assert!(average_in(
            &verifier.hash_micros,
            Duration::from_millis(1000)
        ));
        verifier.first_estimate.notify_waiters();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(verifier.waiting.load(Ordering::Relaxed), 5);
        assert_eq!(start.elapsed(), Duration::ZERO);
        let mut refused = 0;
        for waiter in &waiters[5..] {
            refused += usize::from(waiter.is_finished());
        }
        assert_eq!(refused, 5, "the last five");
        drop(held);
        for waiter in waiters {
            waiter.await.unwrap().ok();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_first_hash_refuses_no_login_the_wait_allows() {
        // A fresh server on a busy machine: its first hash took 700 ms
        // (cold memory, other processes), the next ones are fast. Judged on
        // that one sample, the two logins with six and seven ahead of them
        // (three rounds of 700 ms) were refused at once, although the queue
        // drained in time; now the margin lets them wait, and they start.
        let (verifier, phc) = cheap_verifier(2, Duration::from_secs(2));
        let held = verifier
            .permits
            .clone()
            .acquire_many_owned(2)
            .await
            .unwrap();
        let waiters = verifying(&verifier, &phc, 8);
        tokio::task::yield_now().await;
        assert!(average_in(
            &verifier.hash_micros,
            Duration::from_millis(700)
        ));
        verifier.first_estimate.notify_waiters();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(verifier.waiting.load(Ordering::Relaxed), 8, "none refused");
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(held);
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Ok(true));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_given_up_leaves_the_queue() {
        let (verifier, phc) = cheap_verifier(1, Duration::from_secs(2));
        let held = verifier.permits.clone().acquire_owned().await.unwrap();
        let gone = tokio::time::timeout(
            Duration::from_millis(10),
            verifier.verify(Some(phc.clone()), b"pw"),
        )
        .await;
        assert!(gone.is_err());
        assert_eq!(verifier.waiting.load(Ordering::Relaxed), 0);
        drop(held);
        assert_eq!(verifier.verify(Some(phc), b"pw").await, Ok(true));
    }

    #[tokio::test]
    async fn failures_are_answered_at_the_slowest_hash_time_and_successes_at_once() {
        let cheap = Params::new(8, 1, 1, None).unwrap();
        let verifier = Verifier::new(cheap.clone());
        // A user with 512 times the work among users with the cheap one.
        verifier.set_slowest_params(&Params::new(8 * 512, 1, 1, None).unwrap());
        let phc: Arc<str> = hash_with_params(b"pw", cheap).unwrap().into();
        for (hash, password) in [(None, &b"pw"[..]), (Some(phc.clone()), b"nope")] {
            let start = Instant::now();
            assert_eq!(verifier.verify(hash, password).await, Ok(false));
            let took = start.elapsed();
            // Nothing was hashed since: the target it was held to.
            let target = verifier.padding.target();
            assert!(took >= target, "{took:?} < {target:?}");
            assert!(
                target
                    >= Duration::from_nanos(
                        512 * 8 * verifier.padding.unit_nanos.load(Ordering::Relaxed)
                    ),
                "{target:?}"
            );
        }
        let start = Instant::now();
        assert_eq!(verifier.verify(Some(phc), b"pw").await, Ok(true));
        assert!(start.elapsed() < verifier.padding.target(), "not padded");
    }

    #[test]
    fn the_padding_follows_the_slowest_hash() {
        // The larger of the two per-unit times, plus a quarter.
        assert_eq!(padding_target(1000, 40, 0), Duration::from_micros(50));
        assert_eq!(padding_target(1000, 40, 80), Duration::from_micros(100));
        assert_eq!(padding_target(1000, 80, 40), Duration::from_micros(100));
        assert_eq!(padding_target(0, 80, 40), Duration::ZERO);

        let padding = Padding::new(&Params::new(8, 1, 1, None).unwrap());
        assert_eq!(padding.slowest.load(Ordering::Relaxed), 8);
        padding.set_slowest(800);
        padding.observe(8, Duration::from_micros(8));
        assert_eq!(padding.unit_nanos.load(Ordering::Relaxed), 1000);
        assert_eq!(padding.slowest_unit_nanos.load(Ordering::Relaxed), 0);
        assert_eq!(padding.target(), Duration::from_micros(1000));
        // The slowest user's own hashes, slower per unit, set the pace.
        padding.observe(800, Duration::from_micros(1600));
        assert_eq!(padding.slowest_unit_nanos.load(Ordering::Relaxed), 2000);
        assert_eq!(padding.target(), Duration::from_micros(2000));
        // A costlier hash than any user's at load (one added in the
        // database since) raises the slowest.
        padding.observe(1600, Duration::from_micros(4800));
        assert_eq!(padding.slowest.load(Ordering::Relaxed), 1600);
        assert_eq!(padding.slowest_unit_nanos.load(Ordering::Relaxed), 3000);
        // A reload to other parameters forgets the old ones' pace.
        padding.set_slowest(800);
        assert_eq!(padding.slowest_unit_nanos.load(Ordering::Relaxed), 0);
        padding.set_slowest(800);
        padding.observe(800, Duration::from_micros(1600));
        padding.set_slowest(800);
        assert_eq!(
            padding.slowest_unit_nanos.load(Ordering::Relaxed),
            2000,
            "same parameters, kept"
        );
    }

    #[test]
    fn the_hash_time_average_follows_the_hashes() {
        let average = AtomicU64::new(0);
        assert!(average_in(&average, Duration::from_millis(20)), "the first");
        assert_eq!(average.load(Ordering::Relaxed), 20_000);
        for _ in 0..40 {
            assert!(!average_in(&average, Duration::from_millis(40)));
        }
        let now = average.load(Ordering::Relaxed);
        assert!((39_000..=40_000).contains(&now), "{now}");
    }
}
