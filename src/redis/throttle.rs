//! Failed-login counts in Redis: the throttle of `--redis-url`, so that
//! guesses spread over every instance behind a load balancer are limited
//! together, with the in-process [`crate::throttle::Throttle`]'s rules.
//!
//! Each username and each client address (an IPv6 /64, as in process) is
//! a sorted set of its failures by time, `t:u:<hash>` and `t:a:<address>`
//! under the deployment's prefix. The username is hashed (SHA-256, first
//! 128 bits): every instance computes the same key, and a 16 KiB username
//! costs a short key. Each set expires a window after its last failure, so
//! Redis holds only what the window still counts.
//!
//! The same steps as in process, each one script, so atomic across
//! instances: admission checks both limits and reserves one failure
//! against each in one step (N guesses in flight on any number of
//! instances pass it at most the limit's number of times); a success
//! clears the username's failures and returns the address's reservation;
//! a refund returns both; a failure leaves them. Time is Redis's clock
//! (`TIME`), so instances whose clocks differ count one window.
//!
//! A store that fails is not a wrong password. An admission Redis did not
//! answer in time may still run (a slow or frozen Redis runs what it
//! received once it moves again), leaving reservations nobody settles:
//! failures nobody made, which would lock the user out once Redis is back.
//! So an admission that fails is returned, and a settlement that fails is
//! sent again, in the background ([`Redis::undo_later`]): each is
//! idempotent (a `ZREM` or a `DEL` of what this attempt reserved), and
//! none outlives the window, after which the reservation no longer counts.

use super::Redis;
use crate::addr::address_key;
use crate::throttle::{Limits, Throttled};
use crate::users::StoreError;
use ::redis::Script;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

/// KEYS: username's set, address's set. ARGV: the username's limit, the
/// address's (0: not counted), the window in ms, the reservation's name,
/// whether to reserve (1) or only check (0). Answers `{1, 0, 0}` when let
/// through, `{0, user_wait, address_wait}` (ms; -1 when not throttled)
/// when refused.
static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- Writes after TIME: replicated as effects (the default from Redis 7).
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
local function wait(key, limit)
  if limit <= 0 then return -1 end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) < limit then return -1 end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(tonumber(oldest[2]) + window - now, 0)
end
local lu, li = tonumber(ARGV[1]), tonumber(ARGV[2])
local wu, wi = wait(KEYS[1], lu), wait(KEYS[2], li)
if wu >= 0 or wi >= 0 then return {0, wu, wi} end
if ARGV[5] == '1' then
  if lu > 0 then
    redis.call('ZADD', KEYS[1], now, ARGV[4])
    redis.call('PEXPIRE', KEYS[1], window)
  end
  if li > 0 then
    redis.call('ZADD', KEYS[2], now, ARGV[4])
    redis.call('PEXPIRE', KEYS[2], window)
  end
end
return {1, 0, 0}
",
    )
});

/// KEYS: username's set, address's set. ARGV: the reservation's name, what
/// to do with the username's: `clear` (a success), `return` (a refund) or
/// `keep`. The address's reservation is returned.
static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[2] == 'clear' then
  redis.call('DEL', KEYS[1])
elseif ARGV[2] == 'return' then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
",
    )
});

/// The failure counts in Redis (see the module's header).
#[derive(Debug)]
pub struct RedisThrottle {
    redis: Redis,
    limits: Limits,
}

/// An attempt [`RedisThrottle::admit`] let through, its failure reserved;
/// dropped unsettled, the reservation stands as a failure.
#[derive(Debug)]
#[must_use = "settle the attempt: failed, succeeded or refund"]
pub struct SharedAttempt<'a> {
    throttle: &'a RedisThrottle,
    reservation: Reservation,
}

/// One attempt's reservations: where they are, and their name.
#[derive(Debug, Clone)]
struct Reservation {
    /// The username's set, when the attempt names one.
    user: Option<String>,
    ip: String,
    /// The reservation's name in both sets.
    member: String,
}

impl RedisThrottle {
    /// Counts failures in `redis` under `limits` (`max_entries` aside:
    /// Redis holds each key for a window at most).
    pub fn new(redis: Redis, limits: Limits) -> RedisThrottle {
        RedisThrottle { redis, limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Lets an attempt for `username` (none for a refresh token) from `ip`
    /// go ahead, reserving one failure against each, or refuses it when
    /// either is throttled now; an `Err` when Redis cannot answer.
    pub async fn admit(
        &self,
        username: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<Result<SharedAttempt<'_>, Throttled>, StoreError> {
        let member = self.redis.unique_name();
        let reservation = Reservation {
            user: username.map(|u| self.user_key(u)),
            ip: self.ip_key(ip),
            member,
        };
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
            Ok(verdict) => Ok(verdict.map(|()| SharedAttempt {
                throttle: self,
                reservation,
            })),
            Err(e) => {
                // It may have reserved, or may yet (module header).
                self.resend(reservation, Settle::Return);
                Err(e)
            }
        }
    }

    /// `Ok(Ok)` when an attempt for `username` from `ip` could go ahead
    /// now; reserves nothing.
    pub async fn check(
        &self,
        username: &str,
        ip: Option<IpAddr>,
    ) -> Result<Result<(), Throttled>, StoreError> {
        let user = self.user_key(username);
        self.ask(Some(&user), ip.is_some(), &self.ip_key(ip), "", false)
            .await
    }

    /// Whether Redis answers now.
    pub async fn health(&self) -> Result<(), StoreError> {
        self.redis.ping().await
    }

    async fn ask(
        &self,
        user: Option<&str>,
        has_ip: bool,
        ip_key: &str,
        member: &str,
        reserve: bool,
    ) -> Result<Result<(), Throttled>, StoreError> {
        let limits = &self.limits;
        let window_ms = u64::try_from(limits.window.as_millis()).unwrap_or(u64::MAX);
        let on = limits.max_entries > 0 && window_ms > 0;
        let user_limit = if on && user.is_some() {
            limits.per_user
        } else {
            0
        };
        let ip_limit = if on && has_ip { limits.per_ip } else { 0 };
        let none = self.redis.key("t:none");
        let mut call = ADMIT.prepare_invoke();
        call.key(user.unwrap_or(&none))
            .key(ip_key)
            .arg(user_limit)
            .arg(ip_limit)
            .arg(window_ms)
            .arg(member)
            .arg(u8::from(reserve));
        let answer: (u8, i64, i64) = self.redis.run(&call).await?;
        let wait = |ms: i64| u64::try_from(ms).ok();
        Ok(match answer {
            (1, _, _) => Ok(()),
            (_, user, ip) => Err(throttled(wait(user), wait(ip))),
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
    /// The password was wrong (or the user unknown): the reservations
    /// stand; nothing to send.
    pub fn failed(self) {}

    /// The password was right: the username's failures are forgotten, and
    /// the address's reservation is returned. Should Redis fail now, this
    /// is sent again in the background (see the module's header).
    pub async fn succeeded(self) {
        self.settle(Settle::Clear).await;
    }

    /// The attempt was never judged: both reservations are returned (sent
    /// again should Redis fail, as [`SharedAttempt::succeeded`]).
    pub async fn refund(self) {
        self.settle(Settle::Return).await;
    }

    async fn settle(self, settle: Settle) {
        if let Err(e) = self.reservation.settle(&self.throttle.redis, settle).await {
            crate::logging::tally(
                crate::logging::STORE_DOWN,
                format_args!(
                    "password-bearer: a throttle reservation was not settled, sent again \
                     in the background: {e}"
                ),
            );
            self.throttle.resend(self.reservation, settle);
        }
    }
}

/// What a settlement does with the username's failures; the address's
/// reservation is returned either way.
#[derive(Debug, Clone, Copy)]
enum Settle {
    /// A success: every failure of the username is forgotten.
    Clear,
    /// Never judged: this attempt's reservation is returned.
    Return,
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
        };
        let mut call = SETTLE.prepare_invoke();
        call.key(self.user.as_deref().unwrap_or(&none))
            .key(&self.ip)
            .arg(&self.member)
            .arg(user);
        redis.run::<()>(&call).await
    }
}
