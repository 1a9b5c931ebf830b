//! How revocations reach the other instances (the parent module's header
//! says the promise): the follower task, subscribed to the `revoked`
//! channel and polling its sequence number, and how the `revoked` set's
//! members and the channel's messages are read.

use super::scripts::{POLL_COUNTS, READ_ALL};
use super::POLL;
use super::UNKNOWN;
use crate::redis::{Redis, CALL_TIMEOUT};
use crate::sessions::{DenyList, Revocation, SessionId, TokenId};
use crate::users::StoreError;
use ::redis::aio::{PubSubSink, PubSubStream};
use futures_util::StreamExt as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{oneshot, Notify};

/// A revocation and its owner as the `revoked` set and its messages name
/// them: `s:<id>:<owner>`, `t:<id>:<owner>`, a mark `m:<issued>:<owner>`,
/// or, as an older version wrote them, `s:<id>` and `t:<id>` without one.
pub(super) fn revocation(member: &str, until: i64) -> Option<(Revocation, Option<&str>)> {
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
pub(super) async fn read_all(
    redis: &Redis,
) -> Result<(u64, Vec<(Revocation, Option<String>)>), StoreError> {
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
pub(super) async fn poll_counts(redis: &Redis) -> Result<(u64, u64), StoreError> {
    let mut call = POLL_COUNTS.prepare_invoke();
    call.key(redis.key("revoked:seq"))
        .key(redis.key("all"))
        .arg(crate::clock::unix_now());
    redis.run(&call).await
}

/// The follower task: keeps every deny-list handed to the store in step
/// with the `revoked` set (see the module's header), and `count` with the
/// sessions' set, until the store is dropped.
pub(super) async fn follow(
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
    tokio::time::timeout(CALL_TIMEOUT, pubsub.subscribe(channel))
        .await
        .ok()?
        .ok()?;
    Some(pubsub.split())
}

/// Whether a subscribed connection answers a `PING` within
/// [`CALL_TIMEOUT`](crate::redis::CALL_TIMEOUT).
pub(super) async fn answers(sink: &mut PubSubSink) -> bool {
    let ping = sink.ping::<::redis::Value>();
    matches!(tokio::time::timeout(CALL_TIMEOUT, ping).await, Ok(Ok(_)))
}

/// A message of the `revoked` channel: `<seq> <until> <member>`, the member
/// with its owner (see [`revocation`]).
pub(super) fn heard(payload: &str) -> Option<(u64, Revocation, Option<&str>)> {
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
