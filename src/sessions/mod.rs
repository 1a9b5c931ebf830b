//! Sessions: what a refresh token stands for, and what was revoked.
//!
//! A password login starts a session ([`Session`]): the user, the scopes
//! granted, an absolute expiry (`--refresh-token-ttl-days`), and a counter.
//! Its refresh token is opaque to clients, but the server can read it:
//! the session's id, the counter's value when the token was issued, and a
//! tag, an HMAC of both under the session's own secret. So rotation needs
//! no list of the tokens used up: a refresh presents the token of the
//! current counter and advances it (RFC 6749 §6); a token whose tag is
//! right but whose counter is behind was used before, so it was stolen,
//! and the whole session is revoked (RFC 9700 §4.14.2). A tag cannot be
//! forged without the session's secret, so knowing a session's id (every
//! access token names it) is not enough to revoke it.
//!
//! One exception, for answers that never arrived: the token just before
//! the current one, presented again within the retry window
//! (`Config::refresh_retry_window`, 60 s by default) of its rotation, is
//! answered once more, as Okta's grace period and Auth0's reuse interval
//! do. A refresh committed but not answered (the process killed, or the
//! answer lost on the way) leaves its client holding that token; its retry
//! is not theft. It moves the counter on once more, so the token the lost
//! answer carried is used up too; a second retry, or one after the window,
//! is a reuse as before. A thief who got there first gains nothing that
//! lasts: the rightful client's next refresh is then a reuse, and the
//! session ends.
//!
//! A session also remembers a fingerprint of its user's password hash at
//! login ([`Session::started_with`]): a refresh whose user's hash has
//! changed since (a new password, or another user re-created under the
//! name) is refused, and the session ended.
//!
//! Revocation is a list of what was revoked (`Revocations`), not of what
//! is allowed: sessions and single access tokens, each kept until the
//! access tokens it covers have expired. `GET /users/me` checks it on every
//! request at the cost of one atomic load while nothing new was revoked
//! (see `token_cache`).
//!
//! Where sessions live is a [`SessionStore`]: in memory
//! ([`memory::MemorySessions`], the default), in a file that survives
//! restarts (`persistent::PersistentSessions`, with the `persist` feature),
//! or anything that implements the trait (a shared store).
//!
//! # Layout
//!
//! - this module: the ids, the [`Session`] record, the [`SessionStore`]
//!   trait, refresh tokens, and the `Revocations` deny-list;
//! - [`memory`]: the in-memory store, bounded.
//! - `persistent` (the `persist` feature): the store of `--state-dir`, a
//!   file kept by an embedded storage engine, bounded too.
//! - `crate::redis::RedisSessions` (the `redis` feature): the store of
//!   `--redis-url`, shared by every instance.

pub mod memory;
#[cfg(feature = "persist")]
pub mod persistent;

use crate::users::StoreError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The future a [`SessionStore`] answers with: boxed, so that the trait is
/// object safe (stores are held as `Arc<dyn SessionStore>`); sessions are
/// touched by logins, refreshes and revocations, never by `/users/me`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// A fresh id: 128 bits from the OS random source.
            pub fn random() -> Result<$name, StoreError> {
                let mut bytes = [0u8; 16];
                getrandom::fill(&mut bytes).map_err(|e| StoreError::new(e.to_string()))?;
                Ok($name(bytes))
            }

            /// The id as its 22-character base64url text, as tokens carry it.
            pub fn encode(&self) -> String {
                URL_SAFE_NO_PAD.encode(self.0)
            }

            /// The id from its text, if that is one.
            pub fn decode(text: &str) -> Option<$name> {
                let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
                bytes.try_into().ok().map($name)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.encode())
            }
        }
    };
}

id_type! {
    /// A session's id: the `sid` claim of its access tokens, and the first
    /// part of its refresh tokens.
    SessionId
}

id_type! {
    /// An access token's id: its `jti` claim.
    TokenId
}

/// One login's session: what its refresh tokens may still obtain.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// The user who logged in.
    pub username: String,
    /// The scopes granted at login, space-separated (possibly empty): a
    /// refresh may narrow them, never widen them.
    pub scope: String,
    /// When the login happened, Unix seconds.
    pub created: i64,
    /// When its refresh tokens stop working, Unix seconds.
    pub expires: i64,
    /// The number of the refresh token now valid; a token of a lower
    /// number has been used up.
    pub counter: u32,
    /// Until when (Unix seconds) the token numbered `counter - 1` may be
    /// presented once more, its answer having perhaps been lost: set by a
    /// rotation, spent (0) by that retry.
    pub retry_until: i64,
    /// Tags its refresh tokens. A secret: never logged, never sent.
    pub secret: [u8; 32],
    /// A digest of the user's password hash at login, keyed with `secret`
    /// ([`Session::started_with`]): it tells whether the hash is still the
    /// same, and nothing else (not the hash, nor which sessions share a
    /// user).
    pub fingerprint: [u8; 16],
}

impl fmt::Debug for Session {
    // Without the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("scope", &self.scope)
            .field("created", &self.created)
            .field("expires", &self.expires)
            .field("counter", &self.counter)
            .field("retry_until", &self.retry_until)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session for `username`, whose password hash is
    /// `hashed_password`, granted `scope`, from `now` to `expires`, with a
    /// fresh id and secret.
    pub fn start(
        username: &str,
        hashed_password: &str,
        scope: &str,
        now: i64,
        expires: i64,
    ) -> Result<Session, StoreError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| StoreError::new(e.to_string()))?;
        let id = SessionId::random()?;
        Ok(Session {
            id,
            username: username.to_owned(),
            scope: scope.to_owned(),
            created: now,
            expires,
            counter: 0,
            retry_until: 0,
            fingerprint: fingerprint(&secret, &id, hashed_password),
            secret,
        })
    }

    /// Whether the session was started while its user's password hash was
    /// `hashed_password` (compared in constant time). A new password, or a
    /// user re-created under the same name, has another hash (argon2 salts
    /// each one afresh), so the sessions started before it no longer are.
    pub fn started_with(&self, hashed_password: &str) -> bool {
        same(
            &fingerprint(&self.secret, &self.id, hashed_password),
            &self.fingerprint,
        )
    }

    /// The rotation of [`SessionStore::advance`], on this copy: the
    /// counter and retry window moved as it says, and what happened. A
    /// store that keeps its sessions as [`Session`]s runs this under its
    /// lock or in its transaction, and removes the session when the
    /// answer is [`Advance::Reused`].
    pub fn rotate(&mut self, from: u32, now: i64, retry_until: i64) -> Advance {
        if now >= self.expires {
            Advance::Unknown
        } else if self.counter == from {
            self.counter = self.counter.saturating_add(1);
            self.retry_until = retry_until;
            Advance::Advanced
        } else if from.checked_add(1) == Some(self.counter) && now < self.retry_until {
            self.counter = self.counter.saturating_add(1);
            self.retry_until = 0;
            Advance::Retried
        } else if self.counter > from {
            Advance::Reused
        } else {
            // Ahead of the counter: never issued.
            Advance::Unknown
        }
    }

    /// The refresh token of number `counter`: base64url of the session's
    /// id, the counter (4 bytes, big-endian) and the tag (16 bytes), 48
    /// characters in all.
    pub fn refresh_token(&self, counter: u32) -> String {
        let mut bytes = [0u8; REFRESH_BYTES];
        bytes[..16].copy_from_slice(&self.id.0);
        bytes[16..20].copy_from_slice(&counter.to_be_bytes());
        bytes[20..].copy_from_slice(&self.tag(counter));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether `token` (read by [`RefreshToken::parse`]) was issued by this
    /// session: its tag is right for its counter (compared in constant time).
    pub fn issued(&self, token: &RefreshToken) -> bool {
        token.session == self.id && same(&self.tag(token.counter), &token.tag)
    }

    fn tag(&self, counter: u32) -> [u8; 16] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC accepts keys of any length");
        mac.update(b"password-bearer refresh\0");
        mac.update(&self.id.0);
        mac.update(&counter.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&full[..16]);
        tag
    }
}

/// Whether two digests are equal, in constant time: a digest is secret
/// until matched, so no early exit on a mismatch.
fn same(a: &[u8; 16], b: &[u8; 16]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

/// A session's fingerprint of `hashed_password`: an HMAC under the
/// session's secret, cut to 128 bits. Keyed, so that a store read by
/// someone else shows no digest of any hash that could be compared across
/// sessions or users; and the hash (a salted argon2 output) could not be
/// guessed from it anyway.
fn fingerprint(secret: &[u8; 32], id: &SessionId, hashed_password: &str) -> [u8; 16] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(b"password-bearer password\0");
    mac.update(&id.0);
    mac.update(hashed_password.as_bytes());
    let full = mac.finalize().into_bytes();
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&full[..16]);
    digest
}

const REFRESH_BYTES: usize = 16 + 4 + 16;

/// A refresh token as read, before its session has vouched for it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RefreshToken {
    /// The session it claims to be from.
    pub session: SessionId,
    /// The counter it claims.
    pub counter: u32,
    tag: [u8; 16],
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("session", &self.session)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// Reads a presented refresh token; `None` if it cannot be one.
    pub fn parse(text: &str) -> Option<RefreshToken> {
        if text.len() != 48 {
            return None;
        }
        let bytes: [u8; REFRESH_BYTES] = URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()?;
        let mut session = [0u8; 16];
        session.copy_from_slice(&bytes[..16]);
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&bytes[20..]);
        Some(RefreshToken {
            session: SessionId(session),
            counter: u32::from_be_bytes(bytes[16..20].try_into().ok()?),
            tag,
        })
    }
}

/// What [`SessionStore::advance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Advance {
    /// The counter was at the token's number and now is one past it.
    Advanced,
    /// The token was the one before the current one, retried within its
    /// retry window, which is now spent: the counter moved on once more,
    /// to two past the token's number.
    Retried,
    /// The counter was already past the token's number: the token was used
    /// before. The store has removed the session.
    Reused,
    /// No such session (never, expired, revoked or evicted).
    Unknown,
}

/// Something revoked, kept until `until` (Unix seconds), when every access
/// token it covers has expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// A whole session: every access token naming it.
    Session(SessionId, i64),
    /// One access token.
    Token(TokenId, i64),
}

/// Where sessions and revocations are kept: in memory by default
/// ([`memory::MemorySessions`]); implement it to keep them in a database.
///
/// A store that cannot answer returns [`StoreError`]: the routes then
/// answer 503 (logins and refreshes) and count nothing against anyone.
pub trait SessionStore: Send + Sync + fmt::Debug + 'static {
    /// Keeps a new session.
    fn create(&self, session: Session) -> StoreFuture<'_, ()>;

    /// The session `id`, unless it has expired by `now`, been revoked or
    /// been forgotten.
    fn get(&self, id: SessionId, now: i64) -> StoreFuture<'_, Option<Session>>;

    /// Moves session `id`'s counter from `from` to `from + 1`, atomically
    /// with the check that it is at `from`, and sets the session's
    /// `retry_until` to `retry_until`: of two refreshes with one token, one
    /// advances and the other finds it [`Advance::Reused`], unless the
    /// other is within the retry window. A token of the number just before
    /// the counter, at `now` before the session's `retry_until`, moves the
    /// counter on once more and spends the window ([`Advance::Retried`]).
    /// Any other token behind the counter is reused: it removes the
    /// session and records it as revoked until `revoke_until`, in the same
    /// step (as [`SessionStore::revoke_session`]).
    fn advance(
        &self,
        id: SessionId,
        from: u32,
        now: i64,
        retry_until: i64,
        revoke_until: i64,
    ) -> StoreFuture<'_, Advance>;

    /// Removes session `id`, and records it as revoked until `until`.
    fn revoke_session(&self, id: SessionId, until: i64) -> StoreFuture<'_, ()>;

    /// Removes every session of `username`, records each as revoked until
    /// `until` (as [`SessionStore::revoke_session`]), and answers their ids:
    /// a reload that removed or disabled the user, or changed their
    /// password, ends their sessions with this.
    fn end_sessions_of(&self, username: String, until: i64) -> StoreFuture<'_, Vec<SessionId>>;

    /// Records access token `id` as revoked until `until`.
    fn revoke_token(&self, id: TokenId, until: i64) -> StoreFuture<'_, ()>;

    /// What was revoked and is still in force at `now`, as the store held it
    /// when it was opened: loaded into the deny-list once, when the app is
    /// built. An in-memory store starts empty.
    fn revocations(&self, now: i64) -> Vec<Revocation>;

    /// Sessions held now (expired ones included until they are purged),
    /// for the `password_bearer_sessions` gauge. Called on every scrape, on
    /// the runtime's thread: answer from a count at hand, not a scan. `None`
    /// (the default) leaves the gauge out.
    fn session_count(&self) -> Option<u64> {
        None
    }

    /// Whether the store can answer now, for `GET /healthz`: `Ok` (the
    /// default) for a store in this process.
    fn health(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Hands the store the app's deny-list, once, when the app is built.
    /// A store shared by several instances keeps it in step with what the
    /// others revoke (the Redis store does, from pub/sub); one that only
    /// this process writes (the default) has nothing to add.
    fn follow(&self, deny_list: DenyList) {
        let _ = deny_list;
    }
}

/// The app's deny-list as a store may feed it ([`SessionStore::follow`]):
/// revocations made by other instances, so that `GET /users/me` refuses
/// their tokens without asking the store.
#[derive(Debug, Clone)]
pub struct DenyList(pub(crate) Arc<Revocations>);

impl DenyList {
    /// Adds `revocation`, made by (or on behalf of) `owner` when known:
    /// tokens it covers are refused from now on. Adding what is already
    /// there keeps the later end.
    pub fn add(&self, revocation: Revocation, owner: Option<&str>, now: i64) {
        self.0.add(revocation, owner, now);
    }
}

/// The deny-list `GET /users/me` checks: the sessions and access tokens
/// revoked, each until its `until`. A generation counter moves on every
/// addition, so that a verified token cached with the generation it was
/// checked at needs no lookup while nothing new was revoked.
///
/// Bounded twice, both in `O(log n)` per addition: at most
/// [`MAX_REVOCATIONS_PER_USER`] entries for one user, so that one account,
/// refreshing and revoking in a loop, can only push out its own entries;
/// and at most `cap` in all (`Config::max_revocations`), past which the
/// entry expiring first is dropped, and logged. Expired entries go first.
#[derive(Debug)]
pub(crate) struct Revocations {
    generation: AtomicU64,
    denied: Mutex<Denied>,
    cap: usize,
}

/// Most deny-list entries one user's revocations may hold: a thousand
/// logouts within an access token's lifetime is more than any person makes.
pub const MAX_REVOCATIONS_PER_USER: usize = 1024;

/// What an entry names.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
enum Denial {
    Session(SessionId),
    Token(TokenId),
}

#[derive(Debug, Default)]
struct Denied {
    /// Each entry's end, and whose it is (unknown for entries loaded from a
    /// store at start).
    until: HashMap<Denial, (i64, Option<Arc<str>>)>,
    /// Every entry by its end, soonest first.
    by_end: BTreeSet<(i64, Denial)>,
    /// Each user's entries by their end.
    by_owner: HashMap<Arc<str>, BTreeSet<(i64, Denial)>>,
}

impl Revocations {
    pub(crate) fn new(cap: usize) -> Revocations {
        Revocations {
            generation: AtomicU64::new(0),
            denied: Mutex::new(Denied::default()),
            cap: cap.max(1),
        }
    }

    /// The generation now: it moves whenever something is revoked.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a token naming session `sid` and token id `jti` (their
    /// claims, as text) is revoked at `now`.
    pub(crate) fn denies(&self, sid: Option<&str>, jti: Option<&str>, now: i64) -> bool {
        let denied = self.lock();
        let in_force = |denial: Denial| {
            denied
                .until
                .get(&denial)
                .is_some_and(|(until, _)| now < *until)
        };
        sid.and_then(SessionId::decode)
            .is_some_and(|sid| in_force(Denial::Session(sid)))
            || jti
                .and_then(TokenId::decode)
                .is_some_and(|jti| in_force(Denial::Token(jti)))
    }

    /// Adds `revocation`, made by (or on behalf of) the user `owner`; the
    /// generation moves after, so that a reader who sees the new generation
    /// sees the entry too.
    pub(crate) fn add(&self, revocation: Revocation, owner: Option<&str>, now: i64) {
        let (denial, until) = match revocation {
            Revocation::Session(id, until) => (Denial::Session(id), until),
            Revocation::Token(id, until) => (Denial::Token(id), until),
        };
        let mut denied = self.lock();
        denied.purge(now);
        // Revoked again: kept until the later of the two ends.
        let until = match denied.remove(denial) {
            Some(before) => before.max(until),
            None => until,
        };
        let owner: Option<Arc<str>> = owner.map(Arc::from);
        if let Some(owner) = &owner {
            let full = denied
                .by_owner
                .get(owner)
                .is_some_and(|own| own.len() >= MAX_REVOCATIONS_PER_USER);
            if full {
                let soonest = denied
                    .by_owner
                    .get(owner)
                    .and_then(|own| own.first().copied());
                if let Some((_, soonest)) = soonest {
                    denied.remove(soonest);
                }
            }
        }
        if denied.until.len() >= self.cap {
            if let Some(&(_, soonest)) = denied.by_end.first() {
                denied.remove(soonest);
            }
            crate::logging::tally(
                crate::logging::SERVER_WARN,
                format_args!(
                    "password-bearer: revocation list full ({} entries): the one expiring \
                     first was dropped",
                    self.cap
                ),
            );
        }
        denied.by_end.insert((until, denial));
        if let Some(owner) = &owner {
            denied
                .by_owner
                .entry(owner.clone())
                .or_default()
                .insert((until, denial));
        }
        denied.until.insert(denial, (until, owner));
        drop(denied);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Entries held now.
    pub(crate) fn len(&self) -> usize {
        self.lock().until.len()
    }

    fn lock(&self) -> MutexGuard<'_, Denied> {
        // Nothing panics under the lock; a poisoned list still denies.
        self.denied.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Denied {
    /// Removes an entry; its end, if it was held.
    fn remove(&mut self, denial: Denial) -> Option<i64> {
        let (until, owner) = self.until.remove(&denial)?;
        self.by_end.remove(&(until, denial));
        if let Some(owner) = owner {
            if let Some(own) = self.by_owner.get_mut(&owner) {
                own.remove(&(until, denial));
                if own.is_empty() {
                    self.by_owner.remove(&owner);
                }
            }
        }
        Some(until)
    }

    /// Drops what no longer covers any unexpired token: from the soonest
    /// end, so each entry is looked at once.
    fn purge(&mut self, now: i64) {
        while let Some(&(until, denial)) = self.by_end.first() {
            if now < until {
                return;
            }
            self.remove(denial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";

    #[test]
    fn a_session_knows_its_users_hash_by_a_keyed_fingerprint_only() {
        let session = Session::start("johndoe", HASH, "", NOW, NOW + 60).unwrap();
        assert!(session.started_with(HASH));
        // Another salt (a new password, or the user re-created), one
        // character more or less: another hash.
        let other = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHU$aGFzaGhhc2g";
        for changed in [other, &HASH[..HASH.len() - 1], &format!("{HASH}x"), ""] {
            assert!(!session.started_with(changed), "{changed}");
        }
        // Keyed by each session's secret: two sessions of one user show
        // unrelated fingerprints, and neither holds the hash.
        let twin = Session::start("johndoe", HASH, "", NOW, NOW + 60).unwrap();
        assert!(twin.started_with(HASH));
        assert_ne!(session.fingerprint, twin.fingerprint);
        assert!(!format!("{session:?}").contains("argon2"));
    }

    #[test]
    fn a_rotation_forgives_one_retry_of_the_previous_token_within_its_window() {
        let mut s = Session::start("johndoe", HASH, "", NOW, NOW + 600).unwrap();
        assert_eq!(s.rotate(1, NOW, NOW + 60), Advance::Unknown, "never issued");
        assert_eq!(s.rotate(0, NOW, NOW + 60), Advance::Advanced);
        assert_eq!((s.counter, s.retry_until), (1, NOW + 60));
        assert_eq!(s.rotate(0, NOW + 59, NOW + 119), Advance::Retried);
        assert_eq!((s.counter, s.retry_until), (2, 0));
        assert_eq!(s.rotate(1, NOW + 59, NOW + 119), Advance::Reused);
        assert_eq!(s.rotate(0, NOW + 59, NOW + 119), Advance::Reused);
        assert_eq!(s.rotate(2, NOW + 60, NOW + 120), Advance::Advanced);
        // At the window's end, the previous token is a reuse.
        assert_eq!(s.rotate(2, NOW + 120, NOW + 180), Advance::Reused);
        // Two tokens back is never a retry.
        assert_eq!(s.rotate(1, NOW + 61, NOW + 121), Advance::Reused);
        assert_eq!(s.rotate(3, NOW + 600, NOW + 660), Advance::Unknown, "ended");
    }

    #[test]
    fn refresh_tokens_round_trip_and_only_their_session_vouches_for_them() {
        let session = Session::start("johndoe", HASH, "me", NOW, NOW + 60).unwrap();
        let text = session.refresh_token(3);
        assert_eq!(text.len(), 48);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let token = RefreshToken::parse(&text).unwrap();
        assert_eq!((token.session, token.counter), (session.id, 3));
        assert!(session.issued(&token));
        // Another session's secret, a changed counter, a changed tag: no.
        let other = Session::start("johndoe", HASH, "me", NOW, NOW + 60).unwrap();
        let mut forged = token;
        forged.session = other.id;
        assert!(!other.issued(&forged));
        let mut bumped = token;
        bumped.counter = 4;
        assert!(!session.issued(&bumped));
        let mut bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
        bytes[35] ^= 1;
        let flipped = RefreshToken::parse(&URL_SAFE_NO_PAD.encode(bytes)).unwrap();
        assert!(!session.issued(&flipped));
        for bad in [
            "",
            "short",
            &"A".repeat(47),
            &"!".repeat(48),
            &format!("{text}="),
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad:?}");
        }
        assert!(!format!("{session:?} {token:?}").contains("secret: ["));
    }

    #[test]
    fn ids_are_128_random_bits_in_22_characters() {
        let a = SessionId::random().unwrap();
        assert_ne!(a, SessionId::random().unwrap());
        assert_eq!(a.encode().len(), 22);
        assert_eq!(SessionId::decode(&a.encode()), Some(a));
        assert_eq!(SessionId::decode("nope"), None);
        assert_eq!(TokenId::decode(&"A".repeat(24)), None);
    }

    #[test]
    fn the_deny_list_denies_until_the_tokens_have_expired() {
        let list = Revocations::new(100);
        let (sid, jti) = (SessionId::random().unwrap(), TokenId::random().unwrap());
        let (sid_text, jti_text) = (sid.encode(), jti.encode());
        assert!(!list.denies(Some(&sid_text), Some(&jti_text), NOW));
        let before = list.generation();
        list.add(Revocation::Session(sid, NOW + 60), Some("johndoe"), NOW);
        assert_ne!(list.generation(), before);
        assert!(list.denies(Some(&sid_text), None, NOW));
        assert!(list.denies(Some(&sid_text), Some("other"), NOW + 59));
        assert!(!list.denies(Some(&sid_text), None, NOW + 60));
        list.add(Revocation::Token(jti, NOW + 10), None, NOW);
        assert!(list.denies(None, Some(&jti_text), NOW));
        assert!(!list.denies(None, None, NOW));
        assert!(!list.denies(Some("not an id"), Some("nor this"), NOW));
    }

    #[test]
    fn the_deny_list_is_bounded_and_drops_what_expires_first() {
        let list = Revocations::new(3);
        let ids: Vec<TokenId> = (0..3).map(|_| TokenId::random().unwrap()).collect();
        for (i, id) in ids.iter().enumerate() {
            list.add(Revocation::Token(*id, NOW + 10 + i as i64), None, NOW);
        }
        let late = TokenId::random().unwrap();
        list.add(Revocation::Token(late, NOW + 100), None, NOW);
        assert_eq!(list.len(), 3);
        assert!(!list.denies(None, Some(&ids[0].encode()), NOW));
        assert!(list.denies(None, Some(&late.encode()), NOW));
        // Expired entries make room before anything in force is dropped.
        let later = TokenId::random().unwrap();
        list.add(Revocation::Token(later, NOW + 200), None, NOW + 50);
        assert_eq!(list.len(), 2);
        assert!(list.denies(None, Some(&late.encode()), NOW + 50));
        // Revoked again: the later end is kept.
        list.add(Revocation::Token(late, NOW + 60), None, NOW + 50);
        assert!(list.denies(None, Some(&late.encode()), NOW + 99));
    }

    #[test]
    fn one_user_can_push_out_only_their_own_revocations() {
        let list = Revocations::new(100_000);
        let victim = TokenId::random().unwrap();
        list.add(Revocation::Token(victim, NOW + 1800), Some("alice"), NOW);
        // An account refreshing and revoking in a loop.
        // (Tokens issued one after the other: each ends a moment later.)
        let first = TokenId::random().unwrap();
        list.add(Revocation::Token(first, NOW + 1800), Some("mallory"), NOW);
        for i in 1..=3 * MAX_REVOCATIONS_PER_USER as i64 {
            let id = TokenId::random().unwrap();
            list.add(Revocation::Token(id, NOW + 1800 + i), Some("mallory"), NOW);
        }
        assert_eq!(list.len(), MAX_REVOCATIONS_PER_USER + 1);
        assert!(list.denies(None, Some(&victim.encode()), NOW));
        assert!(
            !list.denies(None, Some(&first.encode()), NOW),
            "mallory's own, ending first"
        );
    }
}
