//! Which failed-login counts the routes use: this process's
//! [`Throttle`] (the default, a few map operations under a lock), or, with
//! the `redis` feature and `Config::shared_throttle`, the counts every
//! instance shares in Redis ([`crate::redis::RedisThrottle`]). One enum, so
//! that the in-process path stays a direct call: its `async` answers at
//! once.
//!
//! Either way the routes follow the same steps (admit, then failed,
//! succeeded or refund); only the shared counts can fail to answer, which
//! is [`Refused::Unavailable`]: 503, and nothing counted.

use crate::app::{App, Config};
use crate::auth::store_unavailable;
use crate::error::ApiError;
use crate::throttle::{Attempt, Throttle, Throttled};
use crate::users::{StoreError, UserStore};
use std::net::{IpAddr, SocketAddr};

/// The failed-login counts in use.
#[derive(Debug)]
pub(crate) enum Limiter {
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
    /// The shared counts cannot be reached: 503. (Never built without the
    /// `redis` feature, where every count is in process.)
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Unavailable(StoreError),
}

/// An attempt let through, one failure reserved against it.
#[derive(Debug)]
#[must_use = "settle the attempt: failed, succeeded or refund"]
pub(crate) enum Admitted<'a> {
    Local(Attempt<'a>),
    #[cfg(feature = "redis")]
    Shared(crate::redis::throttle::SharedAttempt<'a>),
}

impl Limiter {
    /// The counts `config` asks for.
    pub(crate) fn new<S>(config: &Config<S>) -> Limiter {
        #[cfg(feature = "redis")]
        if let Some(redis) = &config.shared_throttle {
            return Limiter::Shared(crate::redis::RedisThrottle::new(
                redis.clone(),
                config.throttle.clone(),
            ));
        }
        Limiter::Local(Throttle::new(config.throttle.clone()))
    }

    /// [`Throttle::admit`]: an attempt for `username` from `ip`.
    pub(crate) async fn admit(
        &self,
        username: &str,
        ip: Option<IpAddr>,
    ) -> Result<Admitted<'_>, Refused> {
        match self {
            Limiter::Local(throttle) => throttle
                .admit(username, ip)
                .map(Admitted::Local)
                .map_err(Refused::Throttled),
            #[cfg(feature = "redis")]
            Limiter::Shared(shared) => {
                shared_verdict(shared.admit(Some(username), ip).await).map(Admitted::Shared)
            }
        }
    }

    /// [`Throttle::admit_address`]: an attempt that names no username.
    pub(crate) async fn admit_address(&self, ip: Option<IpAddr>) -> Result<Admitted<'_>, Refused> {
        match self {
            Limiter::Local(throttle) => throttle
                .admit_address(ip)
                .map(Admitted::Local)
                .map_err(Refused::Throttled),
            #[cfg(feature = "redis")]
            Limiter::Shared(shared) => {
                shared_verdict(shared.admit(None, ip).await).map(Admitted::Shared)
            }
        }
    }

    /// [`Throttle::check`]: whether an attempt could go ahead; reserves
    /// nothing.
    pub(crate) async fn check(&self, username: &str, ip: Option<IpAddr>) -> Result<(), Refused> {
        match self {
            Limiter::Local(throttle) => throttle.check(username, ip).map_err(Refused::Throttled),
            #[cfg(feature = "redis")]
            Limiter::Shared(shared) => shared_verdict(shared.check(username, ip).await),
        }
    }

    /// Whether the counts can be reached, for `/healthz`.
    pub(crate) async fn health(&self) -> Result<(), StoreError> {
        match self {
            Limiter::Local(_) => Ok(()),
            #[cfg(feature = "redis")]
            Limiter::Shared(shared) => shared.health().await,
        }
    }
}

#[cfg(feature = "redis")]
fn shared_verdict<T>(verdict: Result<Result<T, Throttled>, StoreError>) -> Result<T, Refused> {
    match verdict {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(throttled)) => Err(Refused::Throttled(throttled)),
        Err(e) => Err(Refused::Unavailable(e)),
    }
}

impl Admitted<'_> {
    /// The attempt failed: its reservations stand.
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
    /// Whether this is a 429 (counted as a throttled login), not a 503.
    pub(crate) fn is_throttled(&self) -> bool {
        matches!(self, Refused::Throttled(_))
    }
}

impl<S: UserStore> App<S> {
    /// The answer to a refused attempt: 429 and its log tally when
    /// throttled, 503 when the shared counts cannot be reached.
    pub(crate) fn refused(
        &self,
        refused: Refused,
        username: &str,
        peer: Option<SocketAddr>,
    ) -> ApiError {
        match refused {
            Refused::Throttled(throttled) => self.throttled(throttled, username, peer),
            Refused::Unavailable(e) => store_unavailable(&e),
        }
    }
}
