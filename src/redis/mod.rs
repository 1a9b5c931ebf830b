//! Redis, for what several instances behind one load balancer must share
//! (the `redis` feature, `--redis-url`): sessions and revocations
//! ([`RedisSessions`]) and the failed-login counts ([`RedisThrottle`]).
//!
//! Every step that reads and then writes is one Lua script, run by Redis
//! as one atomic step whichever instance sends it: a refresh token's
//! rotation and its reuse detection, a throttle's check and reservation.
//! Every key expires with what it holds (a session at its end, a
//! revocation when the access tokens it covers have expired, a failure
//! when it leaves the throttle's window), so Redis holds only what is in
//! force. Scripts name keys they compute, so this needs one Redis (a
//! primary with its replicas), not Redis Cluster.
//!
//! Failure: every call has a deadline ([`CALL_TIMEOUT`]); a Redis that
//! does not answer by then is a [`StoreError`], which the routes answer
//! with 503 and `Retry-After`, counting nothing against anyone. The
//! connection is redis-rs's `ConnectionManager`, which reconnects by
//! itself: the first call after Redis is back succeeds, with no restart.
//!
//! A call that timed out may still run: a slow or frozen Redis runs what it
//! received once it moves again. A write whose effect would then outlast
//! the 503 that answered it is undone in the background
//! (`Redis::undo_later`): a failed login's reservations (failures nobody
//! made), a refresh token's rotation (the client, told to retry, would
//! present the token it still holds and be taken for a thief), a login's
//! session (nobody holds its refresh token).
//!
//! # Layout
//!
//! - this module: the connection ([`Redis`]), shared by both parts;
//! - [`sessions`]: the [`crate::sessions::SessionStore`] on Redis, and the
//!   task that keeps each instance's deny-list in step (pub/sub);
//! - [`throttle`]: the failure counts on Redis.

pub mod sessions;
pub mod throttle;

pub use sessions::RedisSessions;
pub use throttle::RedisThrottle;

use crate::users::StoreError;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, FromRedisValue, ScriptInvocation};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a call to Redis may take before the request it serves is
/// answered 503: long enough for a loaded Redis on the local network,
/// short enough that a client waiting behind a dead one is told soon.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// The prefix of every key and channel, so that one Redis can serve other
/// applications (or several deployments, each with its own prefix).
pub const DEFAULT_PREFIX: &str = "password-bearer:";

/// How long an undo waits before it is sent (again), while Redis does not
/// take it; once taken, it is sent once more after twice [`CALL_TIMEOUT`].
const UNDO_EVERY: Duration = Duration::from_millis(500);

/// Most undos waiting at once, per instance: a Redis down for long while
/// clients keep trying holds this many small tasks, each asking Redis
/// twice a second at most; past it, the write stands (logged).
const MAX_UNDOING: usize = 1024;

/// A write's undo, as [`Redis::undo_later`] keeps it.
type Undo = Box<
    dyn Fn(Redis) -> std::pin::Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>> + Send,
>;

/// A connection to one Redis, reconnecting by itself; cheap to clone (the
/// clones share one multiplexed connection).
#[derive(Clone)]
pub struct Redis {
    client: Client,
    connection: ConnectionManager,
    prefix: String,
    /// Undos waiting for Redis ([`Redis::undo_later`]), over every clone.
    undoing: Arc<AtomicUsize>,
    /// Names this connection's writes apart from other instances'
    /// ([`Redis::unique_name`]).
    instance: u64,
    /// Names each write of this connection apart from the others.
    names: Arc<AtomicU64>,
}

impl fmt::Debug for Redis {
    // Without the URL: it may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Checks that `url` is one redis-rs reads (`redis://[:password@]host[:port][/db]`,
    /// `redis+unix:///path`), without connecting. The error never repeats
    /// the URL, which may hold a password.
    pub fn check_url(url: &str) -> Result<(), StoreError> {
        client(url).map(drop)
    }

    /// Connects to the Redis at `url`, its keys and channels named from
    /// `prefix`. Fails when Redis cannot be reached now: the first
    /// connection is made at start, later ones by themselves.
    pub async fn connect(url: &str, prefix: &str) -> Result<Redis, StoreError> {
        let client = client(url)?;
        // Reconnection: at most two quick retries inside one call, then the
        // call fails (503) and the next call tries again.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CALL_TIMEOUT)
            .set_response_timeout(CALL_TIMEOUT)
            .set_number_of_retries(2)
            .set_factor(50)
            .set_max_delay(200);
        let connection = tokio::time::timeout(
            CALL_TIMEOUT * 3,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| StoreError::new("Redis did not answer in time"))?
        .map_err(error)?;
        Ok(Redis {
            client,
            connection,
            prefix: prefix.to_owned(),
            undoing: Arc::new(AtomicUsize::new(0)),
            instance: {
                let mut bytes = [0u8; 8];
                // Two instances drawing the same would only merge two
                // reservations (or rotations) named at the same count.
                let _ = getrandom::fill(&mut bytes);
                u64::from_le_bytes(bytes)
            },
            names: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The key (or channel) `name` under this deployment's prefix.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs a prepared script, within [`CALL_TIMEOUT`].
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection.clone();
        deadline(invocation.invoke_async(&mut connection)).await
    }

    /// Runs one command, within [`CALL_TIMEOUT`].
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        command: &::redis::Cmd,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection.clone();
        deadline(command.query_async(&mut connection)).await
    }

    /// A name no other write of any instance has: a failed login's
    /// reservation, a rotation, which its undo then names.
    pub(crate) fn unique_name(&self) -> String {
        let n = self.names.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{n:x}", self.instance)
    }

    /// For a write that failed and may yet run (see the module's header):
    /// sends `undo`, which must be idempotent, in the background until
    /// Redis takes it, then once more after twice [`CALL_TIMEOUT`], in case
    /// the first arrived ahead of the write it undoes (on a connection made
    /// since); for at most `relevant`, after which the write no longer
    /// matters. `what` names it in the one log line if too many wait.
    pub(crate) fn undo_later<F, Fut>(&self, what: &str, relevant: Duration, undo: F)
    where
        F: Fn(Redis) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        self.spawn_undo(what, relevant, Box::new(move |redis| Box::pin(undo(redis))));
    }

    /// [`Redis::undo_later`], boxed: one task type for every undo, rather
    /// than a spawned task's machinery per caller (about 12 KiB each in the
    /// release binary).
    fn spawn_undo(&self, what: &str, relevant: Duration, undo: Undo) {
        if self.undoing.fetch_add(1, Ordering::Relaxed) >= MAX_UNDOING {
            self.undoing.fetch_sub(1, Ordering::Relaxed);
            crate::logging::tally(
                crate::logging::STORE_DOWN,
                format_args!(
                    "password-bearer: {MAX_UNDOING} writes already waiting for Redis to be \
                     undone; {what} stands"
                ),
            );
            return;
        }
        let redis = self.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut pause = UNDO_EVERY;
            let mut taken = 0;
            while taken < 2 && start.elapsed() < relevant {
                tokio::time::sleep(pause).await;
                if undo(redis.clone()).await.is_ok() {
                    taken += 1;
                    pause = CALL_TIMEOUT * 2;
                }
            }
            redis.undoing.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Whether Redis answers now: a `PING`, for `/healthz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query::<String>(&::redis::cmd("PING")).await.map(drop)
    }

    /// A connection of its own for pub/sub (a subscribed connection can
    /// send nothing else), within [`CALL_TIMEOUT`].
    pub(crate) async fn pubsub(&self) -> Result<::redis::aio::PubSub, StoreError> {
        deadline(self.client.get_async_pubsub()).await
    }
}

/// The client of `url`, which is only read here; the error names what is
/// wrong without the URL.
fn client(url: &str) -> Result<Client, StoreError> {
    if url.starts_with("rediss://") {
        return Err(StoreError::new(
            "rediss:// (TLS to Redis) is not supported: reach Redis on the same host, \
             a private network or a tunnel",
        ));
    }
    Client::open(url).map_err(|e| StoreError::new(format!("not a Redis URL ({:?})", e.kind())))
}

/// `call`, or a [`StoreError`] when it fails or takes longer than
/// [`CALL_TIMEOUT`].
async fn deadline<T>(
    call: impl std::future::Future<Output = ::redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(error(e)),
        Err(_) => Err(StoreError::new("Redis did not answer in time")),
    }
}

/// A redis-rs error as a store error. Its text names the failure (refused,
/// timed out, a script error), never the URL.
fn error(e: ::redis::RedisError) -> StoreError {
    StoreError::new(format!("Redis: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_errors_never_repeat_them() {
        assert!(Redis::check_url("redis://:hunter2@127.0.0.1:6379/0").is_ok());
        assert!(Redis::check_url("redis+unix:///run/redis.sock").is_ok());
        for (url, why) in [
            ("rediss://:hunter2@cache:6380/", "TLS to Redis"),
            ("http://:hunter2@cache/", "not a Redis URL"),
        ] {
            let err = Redis::check_url(url).unwrap_err().to_string();
            assert!(err.contains(why) && !err.contains("hunter2"), "{err}");
        }
    }
}
