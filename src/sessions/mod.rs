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
//! restarts (`state_dir::StateDirSessions`, with the `state-dir` feature),
//! or anything that implements the trait (a shared store).
//!
//! # Layout
//!
//! - this module: the ids and the [`SessionStore`] trait, with what its
//!   calls answer ([`Advance`], [`Revocation`]);
//! - `refresh_token`: the [`Session`] record and its [`RefreshToken`]s'
//!   format (re-exported here);
//! - `revocations`: the deny-list, `Revocations`, and the [`DenyList`] a
//!   store feeds (re-exported here);
//! - [`memory`]: the in-memory store, bounded.
//! - `state_dir` (the `state-dir` feature): the store of `--state-dir`, a
//!   file kept by an embedded storage engine, bounded too.
//! - `crate::redis::RedisSessions` (the `redis` feature): the store of
//!   `--redis-url`, shared by every instance.

pub mod memory;
mod refresh_token;
mod revocations;
#[cfg(feature = "state-dir")]
pub mod state_dir;

/// The store of `--state-dir` under its name before issue 19.
#[cfg(feature = "state-dir")]
#[deprecated(note = "renamed `sessions::state_dir`, after its flag `--state-dir`")]
pub mod persistent {
    /// The store of `--state-dir`, renamed [`StateDirSessions`](super::state_dir::StateDirSessions).
    #[deprecated(
        note = "renamed `sessions::state_dir::StateDirSessions`, after its flag `--state-dir`"
    )]
    pub type PersistentSessions = super::state_dir::StateDirSessions;
    pub use super::state_dir::{OpenError, DEFAULT_MAX_REVOCATIONS, FILE_NAME};
}

pub use refresh_token::{RefreshToken, Session};
pub(crate) use revocations::Revocations;
pub use revocations::{DenyList, MAX_REVOCATIONS_PER_USER};

use crate::users::StoreError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

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

#[cfg(test)]
mod tests;
