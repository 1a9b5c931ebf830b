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
//! moved back in the background ([`Redis::undo_later`]) if it ran and
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

use super::Redis;
use crate::sessions::{
    Advance, DenyList, Revocation, Session, SessionId, SessionStore, StoreFuture, TokenId,
    MAX_REVOCATIONS_PER_USER,
};
use crate::users::StoreError;
use ::redis::aio::{PubSubSink, PubSubStream};
use ::redis::Script;
use futures_util::StreamExt as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// How often each instance checks that it has heard of every revocation
/// (the worst case of a lost pub/sub message) and counts the sessions, at
/// the cost of one small script per instance per period.
pub const POLL: Duration = Duration::from_millis(500);

/// Records a revocation by `owner` and tells every instance: prepended to
/// the scripts that revoke. The entry keeps the later of two ends; what has
/// expired is dropped; the sets live as long as their last entry. Past
/// `per_user` entries of the owner, they collapse into the owner's mark
/// (widened if there is one), which is published instead of the entry.
const REVOKE_LUA: &str = r"
local function expire_with_last(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then redis.call('EXPIREAT', key, last[2]) end
  return last[2]
end
local function revoke(zset, seq, channel, entry, untilv, now, owner, per_user)
  local marks = zset .. ':marks'
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', zset, '-inf', now)) do
    if string.sub(m, 1, 2) == 'm:' then redis.call('HDEL', marks, string.sub(m, 3)) end
  end
  redis.call('ZREMRANGEBYSCORE', zset, '-inf', now)
  local member = entry .. ':' .. owner
  local before = redis.call('ZSCORE', zset, member)
  if before and tonumber(before) > tonumber(untilv) then untilv = before end
  redis.call('ZADD', zset, untilv, member)
  local mine = zset .. ':u:' .. owner
  redis.call('ZREMRANGEBYSCORE', mine, '-inf', now)
  redis.call('ZADD', mine, untilv, member)
  expire_with_last(mine)
  if redis.call('ZCARD', mine) > tonumber(per_user) then
    local own = redis.call('ZRANGE', mine, 0, -1, 'WITHSCORES')
    local latest = tonumber(now)
    for i = 1, #own, 2 do
      redis.call('ZREM', zset, own[i])
      if tonumber(own[i + 1]) > latest then latest = tonumber(own[i + 1]) end
    end
    redis.call('DEL', mine)
    local issued = tonumber(now)
    local was = redis.call('HGET', marks, owner)
    if was and tonumber(was) > issued then issued = tonumber(was) end
    was = redis.call('ZSCORE', zset, 'm:' .. owner)
    if was and tonumber(was) > latest then latest = tonumber(was) end
    redis.call('HSET', marks, owner, issued)
    redis.call('ZADD', zset, latest, 'm:' .. owner)
    redis.call('EXPIREAT', marks, expire_with_last(zset))
    untilv, member = latest, 'm:' .. issued .. ':' .. owner
  else
    expire_with_last(zset)
  end
  local n = redis.call('INCR', seq)
  redis.call('PUBLISH', channel, n .. ' ' .. untilv .. ' ' .. member)
end
";

/// KEYS: session, user's set, every session's set. ARGV: id, username,
/// scope, created, end, secret, most sessions per user, now, prefix,
/// password fingerprint.
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local function add(zset, score, member)
  redis.call('ZADD', zset, score, member)
  local last = redis.call('ZRANGE', zset, -1, -1, 'WITHSCORES')
  redis.call('EXPIREAT', zset, last[2])
end
redis.call('HSET', KEYS[1], 'u', ARGV[2], 'sc', ARGV[3], 'c', ARGV[4], 'e', ARGV[5], 'n', 0, 'r', 0, 'k', ARGV[6], 'f', ARGV[10])
redis.call('EXPIREAT', KEYS[1], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[8])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[7]) + 1
if over > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #oldest, 2 do
    redis.call('DEL', ARGV[9] .. 's:' .. oldest[i])
    redis.call('ZREM', KEYS[3], oldest[i])
  end
end
add(KEYS[2], ARGV[5], ARGV[1])
add(KEYS[3], ARGV[5], ARGV[1])
",
    )
});

/// KEYS: session, revoked, seq. ARGV: from, now, revoke until, id,
/// channel, prefix, this rotation's name, retry until, most revocations
/// per user. Answers 0 unknown, 1 advanced, 2 reused (and revoked), 3
/// retried (as [`Session::rotate`]).
static ADVANCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{REVOKE_LUA}{}",
        r"
local v = redis.call('HMGET', KEYS[1], 'n', 'e', 'u', 'r')
if not v[1] or tonumber(ARGV[2]) >= tonumber(v[2]) then return 0 end
local n, from, r = tonumber(v[1]), tonumber(ARGV[1]), v[4] or '0'
if n == from or (n == from + 1 and tonumber(ARGV[2]) < tonumber(r)) then
  local retried = n ~= from
  redis.call('HINCRBY', KEYS[1], 'n', 1)
  redis.call('HSET', KEYS[1], 'r', retried and '0' or ARGV[8], 'a', ARGV[7], 'ab', v[1], 'rb', r)
  if retried then return 3 end
  return 1
end
if n < from then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[6] .. 'u:' .. v[3], ARGV[4])
redis.call('ZREM', ARGV[6] .. 'all', ARGV[4])
revoke(KEYS[2], KEYS[3], ARGV[5], 's:' .. ARGV[4], ARGV[3], ARGV[2], v[3], ARGV[9])
return 2
"
    ))
});

/// KEYS: session. ARGV: the rotation's name. Moves the counter and retry
/// window back to what they were if that rotation moved them and no
/// rotation has since (each one writes its name over the last's).
static UNDO_ADVANCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('HMGET', KEYS[1], 'a', 'ab', 'rb')
if v[1] == ARGV[1] and v[2] and v[3] then
  redis.call('HSET', KEYS[1], 'n', v[2], 'r', v[3])
  redis.call('HDEL', KEYS[1], 'a', 'ab', 'rb')
end
return 1
",
    )
});

/// KEYS: session, user's set, every session's set. ARGV: id. Removes a
/// session without revoking it (nobody holds its tokens).
static DROP_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
",
    )
});

/// How long after a failed write its undo is still sent: a Redis frozen
/// longer than this runs the write unanswered and undone.
const UNDO_FOR: Duration = Duration::from_secs(600);

/// KEYS: session, revoked, seq. ARGV: id, until, now, channel, prefix,
/// owner, most revocations per user.
static REVOKE_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{REVOKE_LUA}{}",
        r"
local u = redis.call('HGET', KEYS[1], 'u')
if u then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', ARGV[5] .. 'u:' .. u, ARGV[1])
  redis.call('ZREM', ARGV[5] .. 'all', ARGV[1])
end
revoke(KEYS[2], KEYS[3], ARGV[4], 's:' .. ARGV[1], ARGV[2], ARGV[3], ARGV[6], ARGV[7])
return 1
"
    ))
});

/// KEYS: user's set, revoked, seq. ARGV: prefix, until, now, channel,
/// username, most revocations per user. Ends every session of the user, each revoked; answers their
/// ids.
static END_SESSIONS_OF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{REVOKE_LUA}{}",
        r"
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. 's:' .. id)
  redis.call('ZREM', ARGV[1] .. 'all', id)
  revoke(KEYS[2], KEYS[3], ARGV[4], 's:' .. id, ARGV[2], ARGV[3], ARGV[5], ARGV[6])
end
redis.call('DEL', KEYS[1])
return ids
"
    ))
});

/// KEYS: revoked, seq. ARGV: token id, until, now, channel, owner, most
/// revocations per user.
static REVOKE_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{REVOKE_LUA}{}",
        r"
revoke(KEYS[1], KEYS[2], ARGV[4], 't:' .. ARGV[1], ARGV[2], ARGV[3], ARGV[5], ARGV[6])
return 1
"
    ))
});

/// KEYS: revoked, seq. ARGV: now. Answers the sequence number and every
/// revocation in force, as one snapshot: whatever a later message says is
/// newer than it. A mark is answered as its message names it,
/// `m:<issued>:<owner>`.
static READ_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
local all = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES')
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'm:' then
    local owner = string.sub(all[i], 3)
    local issued = redis.call('HGET', KEYS[1] .. ':marks', owner) or all[i + 1]
    all[i] = 'm:' .. issued .. ':' .. owner
  end
end
return {n, all}
",
    )
});

/// KEYS: revoked:seq, every session's set. ARGV: now. Answers the
/// sequence number and the sessions not yet ended, for the follower's tick.
static POLL_COUNTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
return {n, redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf')}
",
    )
});

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

/// A revocation and its owner as the `revoked` set and its messages name
/// them: `s:<id>:<owner>`, `t:<id>:<owner>`, a mark `m:<issued>:<owner>`,
/// or, as an older version wrote them, `s:<id>` and `t:<id>` without one.
fn revocation(member: &str, until: i64) -> Option<(Revocation, Option<&str>)> {
    let (kind, rest) = member.split_once(':')?;
    // Ids are base64url, times digits: the owner is all after the next `:`.
    let (named, owner) = match rest.split_once(':') {
        Some((named, owner)) => (named, Some(owner).filter(|o| !o.is_empty())),
        None => (rest, None),
    };
    let revocation = match kind {
        "s" => Revocation::Session(SessionId::decode(named)?, until),
        "t" => Revocation::Token(TokenId::decode(named)?, until),
        "m" => Revocation::User {
            issued: named.parse::<f64>().ok()? as i64,
            until,
        },
        _ => return None,
    };
    Some((revocation, owner))
}

/// Every revocation in force with its owner, and the sequence number they
/// come to.
async fn read_all(redis: &Redis) -> Result<(u64, Vec<(Revocation, Option<String>)>), StoreError> {
    let now = crate::clock::unix_now();
    let mut call = READ_ALL.prepare_invoke();
    call.key(redis.key("revoked"))
        .key(redis.key("revoked:seq"))
        .arg(now);
    let (seq, flat): (u64, Vec<String>) = redis.run(&call).await?;
    let revocations = flat
        .chunks_exact(2)
        .filter_map(|pair| {
            let until = pair[1].parse::<f64>().ok()? as i64;
            let (revocation, owner) = revocation(&pair[0], until)?;
            Some((revocation, owner.map(str::to_owned)))
        })
        .collect();
    Ok((seq, revocations))
}

/// What woke the follower.
enum Event {
    Stop,
    Added,
    /// A message, or `None` when the subscription was lost.
    Message(Option<String>),
    Tick,
}

/// The sequence number of the last revocation, and the sessions not yet
/// ended, in one round trip.
async fn poll_counts(redis: &Redis) -> Result<(u64, u64), StoreError> {
    let mut call = POLL_COUNTS.prepare_invoke();
    call.key(redis.key("revoked:seq"))
        .key(redis.key("all"))
        .arg(crate::clock::unix_now());
    redis.run(&call).await
}

/// The follower task: keeps every deny-list handed to the store in step
/// with the `revoked` set (see the module's header), and `count` with the
/// sessions' set, until the store is dropped.
async fn follow(
    redis: Redis,
    followers: Arc<Mutex<Vec<DenyList>>>,
    count: Arc<AtomicU64>,
    added: Arc<Notify>,
    mut stop: oneshot::Receiver<()>,
) {
    let channel = redis.key("revoked");
    let mut subscription: Option<(PubSubSink, PubSubStream)> = None;
    // The sequence number of the first revocation not yet heard of.
    let mut next: u64 = 0;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = async {
            match subscription.as_mut() {
                Some((_, stream)) => stream.next().await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            _ = &mut stop => Event::Stop,
            () = added.notified() => Event::Added,
            message = message => Event::Message(message.and_then(|m| m.get_payload::<String>().ok())),
            _ = tick.tick() => Event::Tick,
        };
        let behind = match event {
            Event::Stop => return,
            Event::Added => true,
            Event::Message(None) => {
                subscription = None;
                true
            }
            Event::Message(Some(payload)) => match heard(&payload) {
                Some((seq, revocation, owner)) => {
                    feed(&followers, revocation, owner);
                    if seq == next {
                        next += 1;
                    }
                    seq > next
                }
                None => false,
            },
            Event::Tick => {
                let polled = poll_counts(&redis).await;
                let sessions = polled.as_ref().map_or(UNKNOWN, |&(_, sessions)| sessions);
                count.store(sessions, Ordering::Relaxed);
                match subscription.as_mut() {
                    None => {
                        subscription = subscribe(&redis, &channel).await;
                        subscription.is_some()
                    }
                    Some((sink, _)) => {
                        // Behind Redis's count: read everything now, before
                        // the ping, which may take its whole deadline.
                        if matches!(polled, Ok((seq, _)) if seq >= next) {
                            catch_up(&redis, &followers, &mut next).await;
                        }
                        // A subscription that no longer answers (a
                        // connection cut without a word) is dropped, to be
                        // made again at the next tick (which reads
                        // everything again).
                        if !answers(sink).await {
                            subscription = None;
                        }
                        false
                    }
                }
            }
        };
        if behind {
            catch_up(&redis, &followers, &mut next).await;
        }
    }
}

/// Reads every revocation in force into the deny-lists, and moves `next`
/// past the sequence number they come to; on failure, the next tick tries
/// again.
async fn catch_up(redis: &Redis, followers: &Mutex<Vec<DenyList>>, next: &mut u64) {
    if let Ok((seq, all)) = read_all(redis).await {
        for (revocation, owner) in all {
            feed(followers, revocation, owner.as_deref());
        }
        *next = (*next).max(seq + 1);
    }
}

/// Adds `revocation` to every deny-list the store feeds.
fn feed(followers: &Mutex<Vec<DenyList>>, revocation: Revocation, owner: Option<&str>) {
    let now = crate::clock::unix_now();
    for deny_list in followers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        deny_list.add(revocation, owner, now);
    }
}

/// A subscription to `channel` on a connection of its own.
async fn subscribe(redis: &Redis, channel: &str) -> Option<(PubSubSink, PubSubStream)> {
    let mut pubsub = redis.pubsub().await.ok()?;
    tokio::time::timeout(super::CALL_TIMEOUT, pubsub.subscribe(channel))
        .await
        .ok()?
        .ok()?;
    Some(pubsub.split())
}

/// Whether a subscribed connection answers a `PING` within
/// [`super::CALL_TIMEOUT`].
async fn answers(sink: &mut PubSubSink) -> bool {
    let ping = sink.ping::<::redis::Value>();
    matches!(
        tokio::time::timeout(super::CALL_TIMEOUT, ping).await,
        Ok(Ok(_))
    )
}

/// A message of the `revoked` channel: `<seq> <until> <member>`, the member
/// with its owner (see [`revocation`]).
fn heard(payload: &str) -> Option<(u64, Revocation, Option<&str>)> {
    let mut parts = payload.splitn(3, ' ');
    let seq = parts.next()?.parse().ok()?;
    let until = parts.next()?.parse::<f64>().ok()? as i64;
    let (revocation, owner) = revocation(parts.next()?, until)?;
    Some((seq, revocation, owner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_messages_read_with_their_owners() {
        let (sid, jti) = (SessionId::random().unwrap(), TokenId::random().unwrap());
        let member = format!("s:{}:bob", sid.encode());
        assert_eq!(
            revocation(&member, 9),
            Some((Revocation::Session(sid, 9), Some("bob")))
        );
        // A username may hold `:` and spaces; an older version's has none.
        let message = format!("7 1700000000 t:{}:a: b", jti.encode());
        assert_eq!(
            heard(&message),
            Some((7, Revocation::Token(jti, 1_700_000_000), Some("a: b")))
        );
        assert_eq!(
            revocation(&format!("t:{}", jti.encode()), 9),
            Some((Revocation::Token(jti, 9), None))
        );
        assert_eq!(
            revocation("m:1700000000:mallory", 1_700_001_800),
            Some((
                Revocation::User {
                    issued: 1_700_000_000,
                    until: 1_700_001_800
                },
                Some("mallory")
            ))
        );
        for bad in ["", "x:1:a", "s:nope:bob", "m:soon:bob", "t"] {
            assert_eq!(revocation(bad, 9), None, "{bad}");
        }
    }
}
