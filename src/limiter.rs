//! Which failed-login counts the routes use: this process's
//! [`Throttle`] (the default, a few map operations under a lock), or, with
//! the `redis` feature and `Config::shared_throttle`, the counts every
//! instance shares in Redis ([`crate::redis::RedisThrottle`]). One enum, so
//! that the in-process path stays a direct call: its `async` answers at
//! once.
//!
//! Either way the routes follow the same steps (admit, then failed,
//! succeeded or refund), and an attempt past a budget of attempts in
//! flight waits, within the login queue's wait, for one ahead of it to
//! settle ([`Refused::Busy`] when none did: 503, nothing counted). Only the
//! shared counts can fail to answer, which is [`Refused::Unavailable`]:
//! 503, and nothing counted.

use crate::counters::{Counters, Login};
use crate::throttle::{Attempt, Limits, Refusal, Throttle, Throttled};
use crate::users::StoreError;
use std::net::IpAddr;
use std::time::Duration;

/// The failed-login counts in use, and how long an attempt may wait for
/// its turn.
#[derive(Debug)]
pub(crate) struct Limiter {
    counts: Counts,
    /// The login queue's wait: what an attempt that names no deadline of
    /// its own (a refresh) may wait for its turn.
    wait: Duration,
}

/// Where the counts are. One per app, made once and never moved: the
/// variants' sizes do not matter, and boxing the larger would only add a
/// pointer to follow at each admission.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Counts {
    /// In this process.
    Local(Throttle),
    /// In Redis, shared by every instance.
    #[cfg(feature = "redis")]
    Shared(crate::redis::RedisThrottle),
}

/// Why an attempt may not go ahead.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Too many failures: 429.
    Throttled(Throttled),
    /// Attempts in flight filled a budget and none settled within the
    /// wait: 503 with `Retry-After` (the wait, in whole seconds), nothing
    /// counted.
    Busy(Duration),
    /// The shared counts cannot be reached: 503. (Never built without the
    /// `redis` feature, where every count is in process.)
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Unavailable(StoreError),
}

/// An attempt let through, held in flight until it is settled.
#[derive(Debug)]
#[must_use = "settle the attempt: failed, succeeded or refund"]
pub(crate) enum Admitted<'a> {
    Local(Attempt<'a>),
    #[cfg(feature = "redis")]
    Shared(crate::redis::throttle::SharedAttempt<'a>),
}

impl Limiter {
    /// The counts a `Config` asks for: `limits`, kept in Redis when
    /// `shared` names a connection, and the login queue's `wait`. Takes
    /// the settings rather than the `Config`, so that this module sits
    /// below `app` and never imports it.
    pub(crate) fn new(
        limits: &Limits,
        wait: Duration,
        #[cfg(feature = "redis")] shared: Option<&crate::redis::Redis>,
    ) -> Limiter {
        #[cfg(feature = "redis")]
        if let Some(redis) = shared {
            return Limiter {
                counts: Counts::Shared(crate::redis::RedisThrottle::new(
                    redis.clone(),
                    limits.clone(),
                )),
                wait,
            };
        }
        Limiter {
            counts: Counts::Local(Throttle::new(limits.clone())),
            wait,
        }
    }

    /// [`Throttle::admit`]: an attempt for `username` from `ip`, which may
    /// wait for its turn until `deadline`.
    pub(crate) async fn admit(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        deadline: tokio::time::Instant,
    ) -> Result<Admitted<'_>, Refused> {
        match &self.counts {
            Counts::Local(throttle) => self
                .verdict(throttle.admit(username, ip, deadline).await)
                .map(Admitted::Local),
            #[cfg(feature = "redis")]
            Counts::Shared(shared) => self
                .shared_verdict(shared.admit(Some(username), ip, deadline).await)
                .map(Admitted::Shared),
        }
    }

    /// [`Throttle::admit_address`]: an attempt that names no username; it
    /// may wait for its turn for the login queue's wait.
    pub(crate) async fn admit_address(&self, ip: Option<IpAddr>) -> Result<Admitted<'_>, Refused> {
        let deadline = tokio::time::Instant::now() + self.wait;
        match &self.counts {
            Counts::Local(throttle) => self
                .verdict(throttle.admit_address(ip, deadline).await)
                .map(Admitted::Local),
            #[cfg(feature = "redis")]
            Counts::Shared(shared) => self
                .shared_verdict(shared.admit(None, ip, deadline).await)
                .map(Admitted::Shared),
        }
    }

    fn verdict<T>(&self, verdict: Result<T, Refusal>) -> Result<T, Refused> {
        verdict.map_err(|refusal| match refusal {
            Refusal::Throttled(throttled) => Refused::Throttled(throttled),
            // The login queue's own words: its wait, at least a second.
            Refusal::Busy => Refused::Busy(Duration::from_secs(
                self.wait.as_secs_f64().ceil().max(1.0) as u64,
            )),
        })
    }

    #[cfg(feature = "redis")]
    fn shared_verdict<T>(
        &self,
        verdict: Result<Result<T, Refusal>, StoreError>,
    ) -> Result<T, Refused> {
        match verdict {
            Ok(verdict) => self.verdict(verdict),
            Err(e) => Err(Refused::Unavailable(e)),
        }
    }

    /// [`Throttle::check`]: whether an attempt could go ahead; reserves
    /// nothing.
    pub(crate) async fn check(&self, username: &str, ip: Option<IpAddr>) -> Result<(), Refused> {
        match &self.counts {
            Counts::Local(throttle) => throttle.check(username, ip).map_err(Refused::Throttled),
            #[cfg(feature = "redis")]
            Counts::Shared(shared) => match shared.check(username, ip).await {
                Ok(verdict) => verdict.map_err(Refused::Throttled),
                Err(e) => Err(Refused::Unavailable(e)),
            },
        }
    }

    /// Whether the counts can be reached, for `/healthz`.
    pub(crate) async fn health(&self) -> Result<(), StoreError> {
        match &self.counts {
            Counts::Local(_) => Ok(()),
            #[cfg(feature = "redis")]
            Counts::Shared(shared) => shared.health().await,
        }
    }
}

impl Admitted<'_> {
    /// The attempt failed: it is counted.
    pub(crate) fn failed(self) {
        match self {
            Admitted::Local(attempt) => attempt.failed(),
            #[cfg(feature = "redis")]
            Admitted::Shared(attempt) => attempt.failed(),
        }
    }

    /// The password was right ([`Attempt::succeeded`]).
    pub(crate) async fn succeeded(self) {
        match self {
            Admitted::Local(attempt) => attempt.succeeded(),
            #[cfg(feature = "redis")]
            Admitted::Shared(attempt) => attempt.succeeded().await,
        }
    }

    /// [`Admitted::refund`] without waiting (Redis's in the background),
    /// for a caller that cannot await: a login dropped before its hash
    /// started.
    pub(crate) fn refund_now(self) {
        match self {
            Admitted::Local(attempt) => attempt.refund(),
            #[cfg(feature = "redis")]
            Admitted::Shared(attempt) => attempt.refund_in_background(),
        }
    }

    /// The attempt was never judged ([`Attempt::refund`]).
    pub(crate) async fn refund(self) {
        match self {
            Admitted::Local(attempt) => attempt.refund(),
            #[cfg(feature = "redis")]
            Admitted::Shared(attempt) => attempt.refund().await,
        }
    }
}

impl Refused {
    /// Counts a refused login by its kind: a 429 as throttled, a wait run
    /// out as busy (the login queue's 503); a store down is counted by the
    /// request's status alone.
    pub(crate) fn count(&self, counters: &Counters) {
        match self {
            Refused::Throttled(_) => counters.login(Login::Throttled),
            Refused::Busy(_) => counters.login(Login::Busy),
            Refused::Unavailable(_) => {}
        }
    }
}
