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
//! is allowed: sessions and single access tokens, each kept with its user
//! until the access tokens it covers have expired, and, for a user past the
//! caps, one mark in place of their entries (nothing revoked is ever
//! dropped to make room). `GET /users/me` checks it on every
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
/// token it covers has expired. Each is made by (or on behalf of) a user,
/// its owner, which the stores keep with it: what bounds one user's
/// entries (see `Revocations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// A whole session: every access token naming it.
    Session(SessionId, i64),
    /// One access token.
    Token(TokenId, i64),
    /// Every access token of its owner issued (`iat`) at or before
    /// `issued`: what one user's many entries collapse into past their cap,
    /// so that no revocation is ever dropped to make room.
    User {
        /// The latest `iat` covered, Unix seconds.
        issued: i64,
        /// When it may be forgotten, Unix seconds.
        until: i64,
    },
}

impl Revocation {
    /// When it may be forgotten: every token it covers has expired.
    pub fn until(&self) -> i64 {
        match *self {
            Revocation::Session(_, until)
            | Revocation::Token(_, until)
            | Revocation::User { until, .. } => until,
        }
    }
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

    /// Removes session `id`, and records it as revoked until `until`, by
    /// `owner` (the session's user).
    fn revoke_session(&self, id: SessionId, owner: &str, until: i64) -> StoreFuture<'_, ()>;

    /// Removes every session of `username`, records each as revoked until
    /// `until` (as [`SessionStore::revoke_session`]), and answers their ids:
    /// a reload that removed or disabled the user, or changed their
    /// password, ends their sessions with this.
    fn end_sessions_of(&self, username: String, until: i64) -> StoreFuture<'_, Vec<SessionId>>;

    /// Records access token `id` as revoked until `until`, by `owner` (its
    /// `sub`).
    fn revoke_token(&self, id: TokenId, owner: &str, until: i64) -> StoreFuture<'_, ()>;

    /// What was revoked and is still in force at `now`, each with its owner
    /// (`None` only for entries an older version wrote without one), as the
    /// store held it when it was opened: loaded into the deny-list once,
    /// when the app is built, where each counts against its owner's cap.
    /// An in-memory store starts empty.
    fn revocations(&self, now: i64) -> Vec<(Revocation, Option<String>)>;

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
/// revoked, each until its `until`, and the users whose entries were
/// collapsed. A generation counter moves on every addition, so that a
/// verified token cached with the generation it was checked at needs no
/// lookup while nothing new was revoked.
///
/// # Bounded, and nothing revoked is ever dropped
///
/// A revocation that answered 200 must hold until the tokens it names
/// expire, whatever anyone else does; and memory must stay bounded though
/// one account, refreshing and revoking in a loop, can add an entry per
/// request. Dropping entries (the soonest to expire, or the user's own)
/// bounds memory but undoes revocations someone relies on. So past its
/// caps the list does not drop an entry, it widens one: a user's entries
/// are replaced by one mark, "every token of this user issued up to now is
/// revoked", kept until the latest of them ends. Every token the entries
/// named is covered by the mark (each was issued before it was revoked,
/// hence before the mark), so no revocation is lost; what is given up is
/// that user's other tokens of before the mark (they log in or refresh
/// again), never another user's revocation. The mark compares the token's
/// `iat` with this host's clock: instances sharing a store must keep their
/// clocks in step, as `exp` already requires.
///
/// The caps:
/// - one user's entries pass `per_user` (default
///   [`MAX_REVOCATIONS_PER_USER`]): that user's entries collapse, in
///   `O(log n)` per entry;
/// - all entries pass `cap` (`Config::max_revocations`): the user holding
///   the most collapses (found by a scan of the users, which frees their
///   entries for the next additions), then the next, until the list is
///   within its cap.
///
/// So the list holds at most `cap` entries plus one mark per user who
/// passed a cap (users are the operator's, each mark a name and two
/// times). Entries without an owner (written by an older version, so
/// within one token lifetime of an upgrade) cannot collapse: over the cap
/// with nothing else left, the one expiring first is dropped. Collapses and
/// drops are logged (one line per user and period) and counted
/// (`password_bearer_revocations_collapsed_total`). The stores keep the
/// same marks with the same owners, so a restart loads what was in force.
#[derive(Debug)]
pub(crate) struct Revocations {
    generation: AtomicU64,
    denied: Mutex<Denied>,
    cap: usize,
    per_user: usize,
    /// Entries collapsed into marks or dropped, for the metrics.
    collapsed: AtomicU64,
}

/// Most deny-list entries one user's revocations may hold before they
/// collapse into a mark: a thousand logouts within an access token's
/// lifetime is more than any person makes.
pub const MAX_REVOCATIONS_PER_USER: usize = 1024;

/// What an entry names.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
enum Denial {
    Session(SessionId),
    Token(TokenId),
}

#[derive(Debug, Default)]
struct Denied {
    /// Each entry's end, and whose it is (unknown only for entries an older
    /// version stored without an owner).
    until: HashMap<Denial, (i64, Option<Arc<str>>)>,
    /// Every entry by its end, soonest first.
    by_end: BTreeSet<(i64, Denial)>,
    /// Each user's entries by their end.
    by_owner: HashMap<Arc<str>, BTreeSet<(i64, Denial)>>,
    /// Each collapsed user's mark: tokens issued up to `.0` are revoked
    /// until `.1`. Ended ones go when a mark is set: marks are few (one
    /// per user who passed a cap), so no index of their ends is kept.
    marks: HashMap<Arc<str>, (i64, i64)>,
}

impl Revocations {
    /// A list of at most `cap` entries, `per_user` for one user (each at
    /// least 1), plus the marks.
    pub(crate) fn new(cap: usize, per_user: usize) -> Revocations {
        Revocations {
            generation: AtomicU64::new(0),
            denied: Mutex::new(Denied::default()),
            cap: cap.max(1),
            per_user: per_user.max(1),
            collapsed: AtomicU64::new(0),
        }
    }

    /// The generation now: it moves whenever something is revoked.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a token of `sub` issued at `iat`, naming session `sid` and
    /// token id `jti` (their claims, as text), is revoked at `now`.
    pub(crate) fn denies(
        &self,
        sub: &str,
        iat: Option<i64>,
        sid: Option<&str>,
        jti: Option<&str>,
        now: i64,
    ) -> bool {
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
            // A token without `iat` could be of any time: the mark covers it.
            || denied.marks.get(sub).is_some_and(|&(issued, until)| {
                now < until && iat.is_none_or(|iat| iat <= issued)
            })
    }

    /// Adds `revocation`, made by (or on behalf of) the user `owner`; the
    /// generation moves after, so that a reader who sees the new generation
    /// sees the entry too.
    pub(crate) fn add(&self, revocation: Revocation, owner: Option<&str>, now: i64) {
        let mut denied = self.lock();
        denied.purge(now);
        let owner: Option<Arc<str>> = owner.map(Arc::from);
        match (revocation, owner) {
            (Revocation::User { issued, until }, Some(owner)) => {
                if now < until {
                    denied.mark(owner, issued, until, now);
                }
            }
            // A mark of nobody covers nothing.
            (Revocation::User { .. }, None) => {}
            (Revocation::Session(id, until), owner) => {
                self.insert(&mut denied, Denial::Session(id), until, owner, now);
            }
            (Revocation::Token(id, until), owner) => {
                self.insert(&mut denied, Denial::Token(id), until, owner, now);
            }
        }
        drop(denied);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn insert(
        &self,
        denied: &mut Denied,
        denial: Denial,
        until: i64,
        owner: Option<Arc<str>>,
        now: i64,
    ) {
        // Revoked again: kept until the later of the two ends.
        let until = match denied.remove(denial) {
            Some(before) => before.max(until),
            None => until,
        };
        denied.insert(denial, until, owner.clone());
        if let Some(owner) = owner {
            if denied.by_owner.get(&owner).map_or(0, BTreeSet::len) > self.per_user {
                self.collapse(denied, &owner, now, "passed its cap of entries");
            }
        }
        while denied.until.len() > self.cap {
            let largest = denied
                .by_owner
                .iter()
                .max_by_key(|(_, own)| own.len())
                .map(|(owner, _)| owner.clone());
            match largest {
                Some(largest) => self.collapse(
                    denied,
                    &largest,
                    now,
                    "held the most entries of a full list",
                ),
                None => {
                    let Some(&(_, soonest)) = denied.by_end.first() else {
                        break;
                    };
                    denied.remove(soonest);
                    self.collapsed.fetch_add(1, Ordering::Relaxed);
                    crate::logging::tally(
                        crate::logging::SERVER_WARN,
                        format_args!(
                            "password-bearer: revocation list full ({} entries, none with an \
                             owner): the one expiring first was dropped",
                            self.cap
                        ),
                    );
                }
            }
        }
    }

    /// Replaces `owner`'s entries with their mark: every token issued to
    /// them up to `now`, revoked until the latest entry's end.
    fn collapse(&self, denied: &mut Denied, owner: &Arc<str>, now: i64, why: &str) {
        let Some(own) = denied.by_owner.get(owner).cloned() else {
            return;
        };
        let latest = own.last().map_or(now, |&(until, _)| until);
        for &(_, denial) in &own {
            denied.remove(denial);
        }
        denied.mark(owner.clone(), now, latest, now);
        self.collapsed
            .fetch_add(own.len() as u64, Ordering::Relaxed);
        crate::logging::tally(
            crate::logging::SERVER_WARN,
            format_args!(
                "password-bearer: the revocations of username={} {why}: they were collapsed \
                 into one, of every token issued to that user until then",
                crate::logging::Quoted(owner)
            ),
        );
    }

    /// Entries and marks held now (ended marks until the next is set).
    pub(crate) fn len(&self) -> usize {
        let denied = self.lock();
        denied.until.len() + denied.marks.len()
    }

    /// Entries collapsed into marks (or, without an owner, dropped) so far.
    pub(crate) fn collapsed(&self) -> u64 {
        self.collapsed.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Denied> {
        // Nothing panics under the lock; a poisoned list still denies.
        self.denied.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Denied {
    fn insert(&mut self, denial: Denial, until: i64, owner: Option<Arc<str>>) {
        self.by_end.insert((until, denial));
        if let Some(owner) = &owner {
            let own = self.by_owner.entry(owner.clone()).or_default();
            own.insert((until, denial));
        }
        self.until.insert(denial, (until, owner));
    }

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

    /// Sets or widens `owner`'s mark: the later of each bound. Called at
    /// `now`, it drops the marks that have ended.
    fn mark(&mut self, owner: Arc<str>, issued: i64, until: i64, now: i64) {
        self.marks.retain(|_, &mut (_, until)| now < until);
        let (issued, until) = match self.marks.get(&owner) {
            Some(&(before_issued, before_until)) => {
                (before_issued.max(issued), before_until.max(until))
            }
            None => (issued, until),
        };
        self.marks.insert(owner, (issued, until));
    }

    /// Drops what no longer covers any unexpired token: from the soonest
    /// end, so each entry is looked at once.
    fn purge(&mut self, now: i64) {
        while let Some(&(until, denial)) = self.by_end.first() {
            if now < until {
                break;
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
        let list = Revocations::new(100, MAX_REVOCATIONS_PER_USER);
        let (sid, jti) = (SessionId::random().unwrap(), TokenId::random().unwrap());
        let (sid_text, jti_text) = (sid.encode(), jti.encode());
        let denies = |sid: Option<&str>, jti: Option<&str>, now: i64| {
            list.denies("johndoe", Some(NOW), sid, jti, now)
        };
        assert!(!denies(Some(&sid_text), Some(&jti_text), NOW));
        let before = list.generation();
        list.add(Revocation::Session(sid, NOW + 60), Some("johndoe"), NOW);
        assert_ne!(list.generation(), before);
        assert!(denies(Some(&sid_text), None, NOW));
        assert!(denies(Some(&sid_text), Some("other"), NOW + 59));
        assert!(!denies(Some(&sid_text), None, NOW + 60));
        list.add(Revocation::Token(jti, NOW + 10), None, NOW);
        assert!(denies(None, Some(&jti_text), NOW));
        assert!(!denies(None, None, NOW));
        assert!(!denies(Some("not an id"), Some("nor this"), NOW));
    }

    #[test]
    fn entries_without_an_owner_are_bounded_and_drop_what_expires_first() {
        let list = Revocations::new(3, MAX_REVOCATIONS_PER_USER);
        let denies =
            |id: &TokenId, now: i64| list.denies("x", Some(NOW), None, Some(&id.encode()), now);
        let ids: Vec<TokenId> = (0..3).map(|_| TokenId::random().unwrap()).collect();
        for (i, id) in ids.iter().enumerate() {
            list.add(Revocation::Token(*id, NOW + 10 + i as i64), None, NOW);
        }
        let late = TokenId::random().unwrap();
        list.add(Revocation::Token(late, NOW + 100), None, NOW);
        assert_eq!((list.len(), list.collapsed()), (3, 1));
        assert!(!denies(&ids[0], NOW));
        assert!(denies(&late, NOW));
        // Expired entries make room before anything in force is dropped.
        let later = TokenId::random().unwrap();
        list.add(Revocation::Token(later, NOW + 200), None, NOW + 50);
        assert_eq!(list.len(), 2);
        assert!(denies(&late, NOW + 50));
        // Revoked again: the later end is kept.
        list.add(Revocation::Token(late, NOW + 60), None, NOW + 50);
        assert!(denies(&late, NOW + 99));
    }

    /// A token of `sub` issued at `iat` with id `jti`, denied at `now`?
    fn denies_token(list: &Revocations, sub: &str, iat: i64, jti: &TokenId, now: i64) -> bool {
        list.denies(sub, Some(iat), None, Some(&jti.encode()), now)
    }

    #[test]
    fn a_user_past_their_cap_collapses_into_a_mark_and_loses_no_revocation() {
        let list = Revocations::new(100_000, 8);
        let victim = TokenId::random().unwrap();
        list.add(Revocation::Token(victim, NOW + 1800), Some("alice"), NOW);
        // An account refreshing and revoking in a loop: every token it
        // revoked stays revoked, the first ones included.
        let mut flood = Vec::new();
        for i in 0..3 * 9 {
            let id = TokenId::random().unwrap();
            list.add(
                Revocation::Token(id, NOW + 1800 + i),
                Some("mallory"),
                NOW + i,
            );
            flood.push((id, NOW + i));
        }
        for &(id, iat) in &flood {
            assert!(denies_token(&list, "mallory", iat, &id, NOW + 30), "{iat}");
        }
        assert!(denies_token(&list, "alice", NOW, &victim, NOW + 30));
        // What mallory gave up: its tokens of before the last collapse,
        // revoked or not; later ones work, and alice's others too.
        let other = TokenId::random().unwrap();
        assert!(denies_token(&list, "mallory", NOW + 1, &other, NOW + 30));
        assert!(!denies_token(
            &list,
            "mallory",
            NOW + 100,
            &other,
            NOW + 100
        ));
        assert!(!denies_token(&list, "alice", NOW, &other, NOW + 30));
        // Three collapses into one mark, and alice's entry.
        assert_eq!(list.len(), 2);
        assert_eq!(list.collapsed(), 3 * 9);
        // The mark lasts as long as the latest entry it replaced.
        assert!(denies_token(&list, "mallory", NOW, &flood[0].0, NOW + 1825));
        assert!(!denies_token(
            &list,
            "mallory",
            NOW,
            &flood[0].0,
            NOW + 1826
        ));
    }

    #[test]
    fn over_the_total_cap_the_largest_holder_collapses_not_the_others() {
        let list = Revocations::new(10, 100);
        let alice: Vec<TokenId> = (0..3).map(|_| TokenId::random().unwrap()).collect();
        for id in &alice {
            // Expiring first: a drop of the soonest would take these.
            list.add(Revocation::Token(*id, NOW + 30), Some("alice"), NOW);
        }
        let mut flood = Vec::new();
        for i in 0..20 {
            let id = TokenId::random().unwrap();
            list.add(Revocation::Token(id, NOW + 1800), Some("mallory"), NOW + i);
            flood.push((id, NOW + i));
        }
        assert!(list.len() <= 10 + 1, "{}", list.len());
        for id in &alice {
            assert!(denies_token(&list, "alice", NOW, id, NOW + 5));
        }
        for &(id, iat) in &flood {
            assert!(denies_token(&list, "mallory", iat, &id, NOW + 25));
        }
        assert!(list.collapsed() > 0);
        // A full list of users holding one each: they collapse one by one,
        // each into their own mark, and each still denies.
        let list = Revocations::new(2, 100);
        let ids: Vec<TokenId> = (0..4).map(|_| TokenId::random().unwrap()).collect();
        for (i, id) in ids.iter().enumerate() {
            list.add(
                Revocation::Token(*id, NOW + 60),
                Some(&format!("u{i}")),
                NOW,
            );
        }
        for (i, id) in ids.iter().enumerate() {
            assert!(denies_token(&list, &format!("u{i}"), NOW, id, NOW + 1));
        }
    }

    #[test]
    fn loaded_marks_widen_and_expire() {
        let list = Revocations::new(10, 10);
        let id = TokenId::random().unwrap();
        list.add(
            Revocation::User {
                issued: NOW,
                until: NOW + 100,
            },
            Some("bob"),
            NOW,
        );
        list.add(
            Revocation::User {
                issued: NOW - 50,
                until: NOW + 200,
            },
            Some("bob"),
            NOW,
        );
        list.add(
            Revocation::User {
                issued: NOW,
                until: NOW + 100,
            },
            None,
            NOW,
        );
        assert_eq!(list.len(), 1);
        assert!(denies_token(&list, "bob", NOW, &id, NOW + 150));
        assert!(!denies_token(&list, "bob", NOW + 1, &id, NOW + 1));
        // No iat: could be of any time.
        assert!(list.denies("bob", None, None, Some(&id.encode()), NOW + 1));
        assert!(!denies_token(&list, "bobby", NOW, &id, NOW + 1));
        assert!(!denies_token(&list, "bob", NOW, &id, NOW + 200), "ended");
        list.add(
            Revocation::User {
                issued: NOW,
                until: NOW + 300,
            },
            Some("carol"),
            NOW + 200,
        );
        assert_eq!(list.len(), 1, "bob's ended mark went when carol's came");
    }
}
