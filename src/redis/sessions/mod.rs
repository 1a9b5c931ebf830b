//! Sessions and revocations in Redis: the [`SessionStore`] of
//! `--redis-url`, so that a refresh token issued by one instance refreshes
//! on any other, and a revocation made on one is honoured by all.
//!
//! Keys (under the deployment's prefix):
//!
//! - `s:<session id>`, a hash: the user, scope, creation, end, counter,
//!   retry window, secret and password fingerprint (a session without the
//!   fingerprint, written by an older build, is not read: its refresh
//!   token gets `invalid_grant`); it expires (`EXPIREAT`) when the session
//!   ends;
//! - `u:<username>`, a sorted set of the user's sessions by end, to cap
//!   them (the oldest goes, as in memory); it expires with the last one;
//! - `revoked`, a sorted set of `s:<session id>:<owner>` and
//!   `t:<token id>:<owner>` by the time the revocation may be forgotten,
//!   and of `m:<owner>`, a user's mark (below); entries past it are removed
//!   at each revocation, and the key expires with its last entry;
//! - `revoked:u:<owner>`, a sorted set of that user's entries, to count
//!   them; it expires with its last entry;
//! - `revoked:marks`, a hash of each mark's latest `iat` covered, by owner;
//!   it expires with the marks;
//! - `revoked:seq`, the number of revocations made, one integer;
//! - `all`, a sorted set of every session by end, for the
//!   `password_bearer_sessions` gauge: what has ended is dropped at each
//!   login, and the key expires with its last entry.
//!
//! Rotation is one script: the counter is compared and moved, or the
//! session removed and revoked, in one atomic step, so of two refreshes
//! with one token on two instances one advances and the other finds it
//! reused (past its retry window) and ends the session for both.
//!
//! A rotation Redis did not answer in time may still run; the client, told
//! 503, retries with the token it holds, which would then look used up:
//! past the retry window, a reuse, and the session ended. So each rotation
//! marks the session with its own name (`a`) and what it changed (`ab`,
//! `rb`: the counter and retry window before it), and one that failed is
//! moved back in the background (`Redis::undo_later`) if it ran and
//! nothing rotated the session since.
//! Likewise a login's session Redis did not confirm is removed: nobody
//! holds its refresh token.
//!
//! # How revocations reach the other instances
//!
//! `GET /users/me` asks no store: it checks the app's deny-list in memory.
//! Every revocation (the same script that records it) publishes a message
//! on the `revoked` channel carrying its sequence number; each instance's
//! follower task, subscribed to it, adds what it hears to its deny-list,
//! within milliseconds. Should a message be lost (the subscription
//! dropped, Redis restarted), the follower notices: a gap in the sequence
//! numbers, a lost subscription (closed, or silent to a `PING` sent every
//! [`POLL`]), or, polled every [`POLL`] too, a sequence number in Redis
//! that it has not heard of; then it reads the whole `revoked` set again,
//! and subscribes again. So a revocation reaches every instance that can
//! reach Redis within [`POLL`] plus a round trip, and usually within one
//! message's delivery.
//!
//! # What bounds the revocations
//!
//! Nothing revoked is dropped (see `Revocations` in `crate::sessions`):
//! a user past [`MAX_REVOCATIONS_PER_USER`] entries has them replaced, in
//! the script that adds the last one, by a mark, every token issued to that
//! user until then, kept until the latest of them ends, and published as
//! one message. So Redis holds at most that many entries per user, plus a
//! mark; each instance's deny-list applies its own caps to what it hears,
//! the owners included, and reads the marks with everything else.

mod follower;
mod scripts;

use super::Redis;
use crate::sessions::{
    Advance, DenyList, Revocation, Session, SessionId, SessionStore, StoreFuture, TokenId,
    MAX_REVOCATIONS_PER_USER,
};
use crate::users::StoreError;
use follower::{follow, poll_counts, read_all};
use scripts::{
    ADVANCE, CREATE, DROP_SESSION, END_SESSIONS_OF, REVOKE_SESSION, REVOKE_TOKEN, UNDO_ADVANCE,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// How often each instance checks that it has heard of every revocation
/// (the worst case of a lost pub/sub message) and counts the sessions, at
/// the cost of one small script per instance per period.
pub const POLL: Duration = Duration::from_millis(500);

/// How long after a failed write its undo is still sent: a Redis frozen
/// longer than this runs the write unanswered and undone.
const UNDO_FOR: Duration = Duration::from_secs(600);

/// [`RedisSessions`]'s answer to [`SessionStore::session_count`] while it
/// has none: Redis has not answered the last count.
const UNKNOWN: u64 = u64::MAX;

/// Sessions and revocations in Redis (see the module's header).
pub struct RedisSessions {
    redis: Redis,
    max_per_user: usize,
    /// Most revocations of one user before they collapse into a mark.
    revocations_per_user: usize,
    /// What was revoked when the store was opened, with the owners, for
    /// [`SessionStore::revocations`].
    snapshot: Vec<(Revocation, Option<String>)>,
    /// The deny-lists the follower task feeds; a std mutex, held to push
    /// one or to add one revocation to each.
    followers: Arc<Mutex<Vec<DenyList>>>,
    /// Tells the follower a deny-list was added: it reads everything again.
    added: Arc<Notify>,
    /// Sessions not yet ended, in every instance, as the follower last
    /// counted them (every [`POLL`]); [`UNKNOWN`] when Redis did not answer.
    count: Arc<AtomicU64>,
    /// Dropped with the store, which ends the follower task.
    _stop: oneshot::Sender<()>,
}

impl std::fmt::Debug for RedisSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessions")
            .field("redis", &self.redis)
            .field("max_per_user", &self.max_per_user)
            .finish_non_exhaustive()
    }
}

impl RedisSessions {
    /// The store on `redis`, at most `max_per_user` sessions per user (the
    /// oldest goes; at least 1). Reads what is revoked now and starts the
    /// task that follows later revocations; fails when Redis cannot answer.
    pub async fn open(redis: Redis, max_per_user: usize) -> Result<RedisSessions, StoreError> {
        let (_, snapshot) = read_all(&redis).await?;
        let (_, sessions) = poll_counts(&redis).await?;
        let followers = Arc::new(Mutex::new(Vec::new()));
        let added = Arc::new(Notify::new());
        let count = Arc::new(AtomicU64::new(sessions));
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(follow(
            redis.clone(),
            followers.clone(),
            count.clone(),
            added.clone(),
            stopped,
        ));
        Ok(RedisSessions {
            redis,
            max_per_user: max_per_user.max(1),
            revocations_per_user: MAX_REVOCATIONS_PER_USER,
            snapshot,
            followers,
            added,
            count,
            _stop: stop,
        })
    }

    /// This store with at most `n` revocations of one user (at least 1;
    /// default [`MAX_REVOCATIONS_PER_USER`]) before they collapse into one
    /// mark, as `Config::max_revocations_per_user` for the deny-list.
    pub fn revocations_per_user(mut self, n: usize) -> RedisSessions {
        self.revocations_per_user = n.max(1);
        self
    }

    fn session_key(&self, id: SessionId) -> String {
        self.redis.key(&format!("s:{}", id.encode()))
    }
}

impl SessionStore for RedisSessions {
    fn create(&self, session: Session) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let id = session.id.encode();
            let mut call = CREATE.prepare_invoke();
            call.key(self.session_key(session.id))
                .key(self.redis.key(&format!("u:{}", session.username)))
                .key(self.redis.key("all"))
                .arg(&id)
                .arg(&session.username)
                .arg(&session.scope)
                .arg(session.created)
                .arg(session.expires)
                .arg(&session.secret[..])
                .arg(self.max_per_user)
                .arg(session.created)
                .arg(self.redis.key(""))
                .arg(&session.fingerprint[..]);
            let created = self.redis.run::<()>(&call).await;
            if created.is_err() {
                // It may yet run: nobody would hold its refresh token.
                let keys = [
                    self.session_key(session.id),
                    self.redis.key(&format!("u:{}", session.username)),
                    self.redis.key("all"),
                ];
                self.redis.undo_later("a session", UNDO_FOR, move |redis| {
                    let mut call = DROP_SESSION.prepare_invoke();
                    for key in &keys {
                        call.key(key);
                    }
                    call.arg(&id);
                    async move { redis.run::<()>(&call).await }
                });
            }
            created
        })
    }

    fn get(&self, id: SessionId, now: i64) -> StoreFuture<'_, Option<Session>> {
        Box::pin(async move {
            let mut command = ::redis::cmd("HMGET");
            command
                .arg(self.session_key(id))
                .arg(&["u", "sc", "c", "e", "n", "r", "k", "f"]);
            let fields: Vec<Option<Vec<u8>>> = self.redis.query(&command).await?;
            Ok(session_from(id, fields).filter(|s| now < s.expires))
        })
    }

    fn advance(
        &self,
        id: SessionId,
        from: u32,
        now: i64,
        retry_until: i64,
        revoke_until: i64,
    ) -> StoreFuture<'_, Advance> {
        Box::pin(async move {
            let rotation = self.redis.unique_name();
            let mut call = ADVANCE.prepare_invoke();
            call.key(self.session_key(id))
                .key(self.redis.key("revoked"))
                .key(self.redis.key("revoked:seq"))
                .arg(from)
                .arg(now)
                .arg(revoke_until)
                .arg(id.encode())
                .arg(self.redis.key("revoked"))
                .arg(self.redis.key(""))
                .arg(&rotation)
                .arg(retry_until)
                .arg(self.revocations_per_user);
            let advanced = self.redis.run::<u8>(&call).await;
            if advanced.is_err() {
                // It may yet run (see the module's header).
                let key = self.session_key(id);
                self.redis
                    .undo_later("a refresh token's rotation", UNDO_FOR, move |redis| {
                        let mut call = UNDO_ADVANCE.prepare_invoke();
                        call.key(&key).arg(&rotation);
                        async move { redis.run::<()>(&call).await }
                    });
            }
            Ok(match advanced? {
                1 => Advance::Advanced,
                2 => Advance::Reused,
                3 => Advance::Retried,
                _ => Advance::Unknown,
            })
        })
    }

    fn revoke_session(&self, id: SessionId, owner: &str, until: i64) -> StoreFuture<'_, ()> {
        let owner = owner.to_owned();
        Box::pin(async move {
            let mut call = REVOKE_SESSION.prepare_invoke();
            call.key(self.session_key(id))
                .key(self.redis.key("revoked"))
                .key(self.redis.key("revoked:seq"))
                .arg(id.encode())
                .arg(until)
                .arg(crate::clock::unix_now())
                .arg(self.redis.key("revoked"))
                .arg(self.redis.key(""))
                .arg(&owner)
                .arg(self.revocations_per_user);
            self.redis.run::<()>(&call).await
        })
    }

    fn end_sessions_of(&self, username: String, until: i64) -> StoreFuture<'_, Vec<SessionId>> {
        Box::pin(async move {
            let mut call = END_SESSIONS_OF.prepare_invoke();
            call.key(self.redis.key(&format!("u:{username}")))
                .key(self.redis.key("revoked"))
                .key(self.redis.key("revoked:seq"))
                .arg(self.redis.key(""))
                .arg(until)
                .arg(crate::clock::unix_now())
                .arg(self.redis.key("revoked"))
                .arg(&username)
                .arg(self.revocations_per_user);
            let ended: Vec<String> = self.redis.run(&call).await?;
            Ok(ended
                .iter()
                .filter_map(|id| SessionId::decode(id))
                .collect())
        })
    }

    fn revoke_token(&self, id: TokenId, owner: &str, until: i64) -> StoreFuture<'_, ()> {
        let owner = owner.to_owned();
        Box::pin(async move {
            let mut call = REVOKE_TOKEN.prepare_invoke();
            call.key(self.redis.key("revoked"))
                .key(self.redis.key("revoked:seq"))
                .arg(id.encode())
                .arg(until)
                .arg(crate::clock::unix_now())
                .arg(self.redis.key("revoked"))
                .arg(&owner)
                .arg(self.revocations_per_user);
            self.redis.run::<()>(&call).await
        })
    }

    fn revocations(&self, now: i64) -> Vec<(Revocation, Option<String>)> {
        self.snapshot
            .iter()
            .filter(|(r, _)| now < r.until())
            .cloned()
            .collect()
    }

    /// Every instance's sessions, not only this one's: the count of the
    /// `all` set, read by the follower every [`POLL`] (so up to that old),
    /// and `None` (the gauge left out) while Redis does not answer it.
    fn session_count(&self) -> Option<u64> {
        Some(self.count.load(Ordering::Relaxed)).filter(|&n| n != UNKNOWN)
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.redis.ping())
    }

    fn follow(&self, deny_list: DenyList) {
        self.followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(deny_list);
        self.added.notify_one();
    }
}

/// A session from its hash's fields (`u sc c e n r k f`), if it is one.
fn session_from(id: SessionId, fields: Vec<Option<Vec<u8>>>) -> Option<Session> {
    let mut fields = fields.into_iter();
    let mut next = || fields.next().flatten();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).ok();
    let number = |bytes: Vec<u8>| std::str::from_utf8(&bytes).ok()?.parse::<i64>().ok();
    let username = text(next()?)?;
    let scope = text(next()?)?;
    let created = number(next()?)?;
    let expires = number(next()?)?;
    let counter = u32::try_from(number(next()?)?).ok()?;
    let retry_until = number(next()?)?;
    let secret: [u8; 32] = next()?.try_into().ok()?;
    let fingerprint: [u8; 16] = next()?.try_into().ok()?;
    Some(Session {
        id,
        username,
        scope,
        created,
        expires,
        counter,
        retry_until,
        secret,
        fingerprint,
    })
}
