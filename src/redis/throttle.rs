//! Failed-login counts in Redis: the throttle of `--redis-url`, so that
//! guesses spread over every instance behind a load balancer are limited
//! together, with the in-process [`crate::throttle::Throttle`]'s rules.
//!
//! Each username and each client address (an IPv6 /64, as in process) is
//! a sorted set of its counted attempts by time, `t:u:<hash>` and
//! `t:a:<address>` under the deployment's prefix, beside a second set of
//! those still in flight (`…:f`); the settled failures are the first set
//! less the second. The username is hashed (SHA-256, first 128 bits):
//! every instance computes the same key, and a 16 KiB username costs a
//! short key. Each set expires a window after its last change, so Redis
//! holds only what the window still counts.
//!
//! The same steps as in process, each one script, so atomic across
//! instances: admission refuses a key whose settled failures reached its
//! limit, answers "wait" to one whose settled failures plus attempts in
//! flight did, and otherwise holds the attempt in flight against both keys
//! (N guesses in flight on any number of instances pass it at most the
//! limit's number of times). A waiting attempt asks again with backoff
//! ([`FIRST_POLL`] doubling to [`MAX_POLL`]), sooner when an attempt of this
//! instance settles, until its deadline: then the 503 of the login queue,
//! nothing counted. A failure moves the attempt from in flight to failed; a
//! success clears the username's settled failures and returns the
//! address's reservation; a refund returns both. An attempt in flight whose
//! instance died before settling it holds its place until the window
//! passes. Time is Redis's clock (`TIME`), so instances whose clocks differ
//! count one window.
//!
//! A store that fails is not a wrong password. An admission Redis did not
//! answer in time may still run (a slow or frozen Redis runs what it
//! received once it moves again), leaving reservations nobody settles:
//! failures nobody made, which would lock the user out once Redis is back.
//! So an admission that fails is returned, and a settlement that fails is
//! sent again, in the background (`Redis::undo_later`): each is
//! idempotent (a `ZREM` or a clear of what this attempt reserved), and
//! none outlives the window, after which the reservation no longer counts.

use super::Redis;
use crate::addr::address_key;
use crate::throttle::{Limits, Refusal, Throttled};
use crate::users::StoreError;
use ::redis::Script;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::pin::pin;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::sync::Notify;

/// KEYS: username's set, address's set, and their sets in flight. ARGV:
/// the username's limit, the address's (0: not counted), the window in
/// ms, the reservation's name, whether to reserve (1) or only check (0).
/// Answers `{1, 0, 0}` when let through (or, checking, not throttled),
/// `{2, 0, 0}` when it must wait, `{0, user_wait, address_wait}` (ms; -1
/// when not throttled) when refused.
static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- Writes after TIME: replicated as effects (the default from Redis 7).
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
-- The settled failures' wait when at the limit (-1 otherwise), and
-- whether the attempts in flight fill the rest.
local function judge(key, flight, limit)
  if limit <= 0 then return -1, false end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', flight, '-inf', now - window)
  local all = redis.call('ZCARD', key)
  if all - redis.call('ZCARD', flight) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return math.max(tonumber(oldest[2]) + window - now, 0), false
  end
  return -1, all >= limit
end
local lu, li = tonumber(ARGV[1]), tonumber(ARGV[2])
local wu, fu = judge(KEYS[1], KEYS[3], lu)
local wi, fi = judge(KEYS[2], KEYS[4], li)
if wu >= 0 or wi >= 0 then return {0, wu, wi} end
if ARGV[5] ~= '1' then return {1, 0, 0} end
if fu or fi then return {2, 0, 0} end
local function reserve(key, flight)
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('ZADD', flight, now, ARGV[4])
  redis.call('PEXPIRE', key, window)
  redis.call('PEXPIRE', flight, window)
end
if lu > 0 then reserve(KEYS[1], KEYS[3]) end
if li > 0 then reserve(KEYS[2], KEYS[4]) end
return {1, 0, 0}
",
    )
});

/// KEYS: username's set, address's set, and their sets in flight. ARGV:
/// the reservation's name, what to do with the username's: `clear` (a
/// success), `return` (a refund), `fail` or `keep` (no username); with the
/// address's: `return` or `fail`; the window in ms. Idempotent.
static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local member = ARGV[1]
local function settle(key, flight, how)
  if how == 'keep' then return end
  redis.call('ZREM', flight, member)
  if how == 'return' then
    redis.call('ZREM', key, member)
  elseif how == 'clear' then
    -- The settled failures go; the other attempts in flight stay.
    local others = redis.call('ZRANGE', flight, 0, -1, 'WITHSCORES')
    redis.call('DEL', key)
    for i = 1, #others, 2 do
      redis.call('ZADD', key, others[i + 1], others[i])
    end
    if #others > 0 then redis.call('PEXPIRE', key, ARGV[4]) end
  end
end
settle(KEYS[1], KEYS[3], ARGV[2])
settle(KEYS[2], KEYS[4], ARGV[3])
return 1
",
    )
});

/// The first pause of an attempt waiting for its turn, before it asks
/// again; doubled at each ask.
pub const FIRST_POLL: Duration = Duration::from_millis(10);

/// The longest pause between two asks of a waiting attempt: each waiter
/// asks Redis at most this often, so N waiters cost N / `MAX_POLL` small
/// scripts a second at most.
pub const MAX_POLL: Duration = Duration::from_millis(200);

/// The failure counts in Redis (see the module's header).
#[derive(Debug)]
pub struct RedisThrottle {
    redis: Redis,
    limits: Limits,
    /// Notified (one waiter) at each settlement of this instance's: the
    /// place it frees is taken by one attempt, without waiting for its
    /// next ask. Settlements on other instances are seen at the next ask.
    settled: Notify,
}

/// An attempt [`RedisThrottle::admit`] let through, in flight; dropped
/// unsettled, it counts as failed.
#[derive(Debug)]
#[must_use = "settle the attempt: failed, succeeded or refund"]
pub struct SharedAttempt<'a> {
    throttle: &'a RedisThrottle,
    /// `None` once settled.
    reservation: Option<Reservation>,
}

/// One attempt's reservations: where they are, and their name.
#[derive(Debug, Clone)]
struct Reservation {
    /// The username's set, when the attempt names one.
    user: Option<String>,
    ip: String,
    /// The reservation's name in both sets.
    member: String,
    window_ms: u64,
}

/// What one ask of [`ADMIT`] answered.
enum Verdict {
    Go,
    Wait,
    Throttled(Throttled),
}

impl RedisThrottle {
    /// Counts failures in `redis` under `limits` (`max_entries` aside:
    /// Redis holds each key for a window at most).
    pub fn new(redis: Redis, limits: Limits) -> RedisThrottle {
        RedisThrottle {
            redis,
            limits,
            settled: Notify::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Lets an attempt for `username` (none for a refresh token) from `ip`
    /// go ahead, holding it in flight against each; refuses it when either
    /// has reached its limit of settled failures; while the attempts in
    /// flight fill either's budget, asks again until `deadline`
    /// ([`Refusal::Busy`]). An `Err` when Redis cannot answer.
    pub async fn admit(
        &self,
        username: Option<&str>,
        ip: Option<IpAddr>,
        deadline: tokio::time::Instant,
    ) -> Result<Result<SharedAttempt<'_>, Refusal>, StoreError> {
        let reservation = Reservation {
            user: username.map(|u| self.user_key(u)),
            ip: self.ip_key(ip),
            member: self.redis.unique_name(),
            window_ms: self.window_ms(),
        };
        let mut pause = FIRST_POLL;
        loop {
            // Listening before asking: a settlement meanwhile still wakes it.
            let mut settled = pin!(self.settled.notified());
            settled.as_mut().enable();
            let asked = self
                .ask(
                    reservation.user.as_deref(),
                    ip.is_some(),
                    &reservation.ip,
                    &reservation.member,
                    true,
                )
                .await;
            match asked {
                Ok(Verdict::Go) => {
                    return Ok(Ok(SharedAttempt {
                        throttle: self,
                        reservation: Some(reservation),
                    }))
                }
                Ok(Verdict::Throttled(throttled)) => return Ok(Err(Refusal::Throttled(throttled))),
                Ok(Verdict::Wait) => {
                    let now = tokio::time::Instant::now();
                    if now >= deadline {
                        return Ok(Err(Refusal::Busy));
                    }
                    let next = (now + pause).min(deadline);
                    tokio::select! {
                        () = settled => {}
                        () = tokio::time::sleep_until(next) => {}
                    }
                    pause = (pause * 2).min(MAX_POLL);
                }
                Err(e) => {
                    // It may have reserved, or may yet (module header).
                    self.resend(reservation, Settle::Return);
                    return Err(e);
                }
            }
        }
    }

    /// `Ok(Ok)` when `username` and `ip` have not reached their limits of
    /// settled failures; reserves nothing.
    pub async fn check(
        &self,
        username: &str,
        ip: Option<IpAddr>,
    ) -> Result<Result<(), Throttled>, StoreError> {
        let user = self.user_key(username);
        Ok(
            match self
                .ask(Some(&user), ip.is_some(), &self.ip_key(ip), "", false)
                .await?
            {
                Verdict::Throttled(throttled) => Err(throttled),
                Verdict::Go | Verdict::Wait => Ok(()),
            },
        )
    }

    /// Whether Redis answers now.
    pub async fn health(&self) -> Result<(), StoreError> {
        self.redis.ping().await
    }

    fn window_ms(&self) -> u64 {
        u64::try_from(self.limits.window.as_millis()).unwrap_or(u64::MAX)
    }

    async fn ask(
        &self,
        user: Option<&str>,
        has_ip: bool,
        ip_key: &str,
        member: &str,
        reserve: bool,
    ) -> Result<Verdict, StoreError> {
        let limits = &self.limits;
        let window_ms = self.window_ms();
        let on = limits.max_entries > 0 && window_ms > 0;
        let user_limit = if on && user.is_some() {
            limits.per_user
        } else {
            0
        };
        let ip_limit = if on && has_ip { limits.per_ip } else { 0 };
        let none = self.redis.key("t:none");
        let user = user.unwrap_or(&none);
        let mut call = ADMIT.prepare_invoke();
        call.key(user)
            .key(ip_key)
            .key(in_flight(user))
            .key(in_flight(ip_key))
            .arg(user_limit)
            .arg(ip_limit)
            .arg(window_ms)
            .arg(member)
            .arg(u8::from(reserve));
        let answer: (u8, i64, i64) = self.redis.run(&call).await?;
        let wait = |ms: i64| u64::try_from(ms).ok();
        Ok(match answer {
            (1, _, _) => Verdict::Go,
            (2, _, _) => Verdict::Wait,
            (_, user, ip) => Verdict::Throttled(throttled(wait(user), wait(ip))),
        })
    }

    /// Sends `settle` for `reservation` again in the background, until
    /// Redis takes it (see the module's header).
    fn resend(&self, reservation: Reservation, settle: Settle) {
        self.redis.undo_later(
            "a failed-login reservation",
            self.limits.window,
            move |redis| {
                let reservation = reservation.clone();
                async move { reservation.settle(&redis, settle).await }
            },
        );
    }

    fn user_key(&self, username: &str) -> String {
        let digest = Sha256::digest(username.as_bytes());
        self.redis
            .key(&format!("t:u:{}", URL_SAFE_NO_PAD.encode(&digest[..16])))
    }

    fn ip_key(&self, ip: Option<IpAddr>) -> String {
        match ip {
            Some(ip) => self.redis.key(&format!("t:a:{}", address_key(ip))),
            None => self.redis.key("t:none"),
        }
    }
}

/// The set of `key`'s attempts in flight.
fn in_flight(key: &str) -> String {
    format!("{key}:f")
}

/// The verdict from each dimension's wait in milliseconds, if throttled,
/// as the in-process throttle words it.
fn throttled(user: Option<u64>, ip: Option<u64>) -> Throttled {
    let ms = user.max(ip).unwrap_or(0);
    Throttled {
        retry_after: Duration::from_secs(ms.div_ceil(1000).max(1)),
        username: user.is_some(),
        address: ip.is_some(),
    }
}

impl SharedAttempt<'_> {
    /// The password was wrong (or the user unknown): the attempt counts as
    /// a failure, no longer in flight. Sent in the background, so that the
    /// answer does not wait for it (and sent again should Redis fail).
    pub fn failed(mut self) {
        self.fail_in_background();
    }

    /// The password was right: the username's failures are forgotten, and
    /// the address's reservation is returned. Should Redis fail now, this
    /// is sent again in the background (see the module's header).
    pub async fn succeeded(mut self) {
        self.settle(Settle::Clear).await;
    }

    /// The attempt was never judged: both reservations are returned (sent
    /// again should Redis fail, as [`SharedAttempt::succeeded`]).
    pub async fn refund(mut self) {
        self.settle(Settle::Return).await;
    }

    async fn settle(&mut self, settle: Settle) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let throttle = self.throttle;
        if let Err(e) = reservation.settle(&throttle.redis, settle).await {
            crate::logging::tally(
                crate::logging::STORE_DOWN,
                format_args!(
                    "password-bearer: a throttle reservation was not settled, sent again \
                     in the background: {e}"
                ),
            );
            throttle.resend(reservation, settle);
        }
        throttle.settled.notify_one();
    }

    /// [`SharedAttempt::refund`] from a task of its own, for a caller that
    /// cannot await (a login dropped before its hash started).
    pub fn refund_in_background(mut self) {
        self.settle_in_background(Settle::Return);
    }

    /// Settles the attempt as failed from a task of its own: from `failed`,
    /// and from `drop` (where nothing can be awaited).
    fn fail_in_background(&mut self) {
        self.settle_in_background(Settle::Fail);
    }

    fn settle_in_background(&mut self, settle: Settle) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let throttle = self.throttle;
        // Outside a runtime (it is shutting down) nothing can be sent: the
        // attempt stays in flight until the window passes.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let redis = throttle.redis.clone();
        let relevant = throttle.limits.window;
        runtime.spawn(async move {
            if reservation.settle(&redis, settle).await.is_err() {
                redis.undo_later("a login's settlement", relevant, move |redis| {
                    let reservation = reservation.clone();
                    async move { reservation.settle(&redis, settle).await }
                });
            }
        });
        // Waiters learn of it at their next ask; one is woken to ask now
        // (the settlement may not have landed yet: it asks again later).
        throttle.settled.notify_one();
    }
}

impl Drop for SharedAttempt<'_> {
    fn drop(&mut self) {
        self.fail_in_background();
    }
}

/// What a settlement does with the username's failures; the address's
/// reservation is returned, or counted for `Fail`.
#[derive(Debug, Clone, Copy)]
enum Settle {
    /// A success: every settled failure of the username is forgotten.
    Clear,
    /// Never judged: this attempt's reservation is returned.
    Return,
    /// A failure: this attempt is no longer in flight, and counts.
    Fail,
}

impl Reservation {
    /// Runs [`SETTLE`] for this reservation: idempotent, so it may be sent
    /// again.
    async fn settle(&self, redis: &Redis, settle: Settle) -> Result<(), StoreError> {
        let none = redis.key("t:none");
        let user = match (&self.user, settle) {
            (None, _) => "keep",
            (Some(_), Settle::Clear) => "clear",
            (Some(_), Settle::Return) => "return",
            (Some(_), Settle::Fail) => "fail",
        };
        let ip = match settle {
            Settle::Clear | Settle::Return => "return",
            Settle::Fail => "fail",
        };
        let user_key = self.user.as_deref().unwrap_or(&none);
        let mut call = SETTLE.prepare_invoke();
        call.key(user_key)
            .key(&self.ip)
            .key(in_flight(user_key))
            .key(in_flight(&self.ip))
            .arg(&self.member)
            .arg(user)
            .arg(ip)
            .arg(self.window_ms);
        redis.run::<()>(&call).await
    }
}
