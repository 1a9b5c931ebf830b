//! The Lua scripts of the Redis session store: each of its writes is one
//! script, run atomically by Redis (`EVALSHA`, `EVAL` on a script cache
//! miss), so that two instances never interleave within one. What each
//! reads and writes is said above it; the keys are the parent module's.

use ::redis::Script;
use std::sync::LazyLock;

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
pub(super) static CREATE: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static ADVANCE: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static UNDO_ADVANCE: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static DROP_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
",
    )
});

/// KEYS: session, revoked, seq. ARGV: id, until, now, channel, prefix,
/// owner, most revocations per user.
pub(super) static REVOKE_SESSION: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static END_SESSIONS_OF: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static REVOKE_TOKEN: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static READ_ALL: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static POLL_COUNTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
return {n, redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf')}
",
    )
});
