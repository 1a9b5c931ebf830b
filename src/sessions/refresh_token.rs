//! A session's record and its refresh tokens: the format a client holds
//! (the session's id, the counter, a tag under the session's own secret),
//! and the keyed fingerprint of the user's password hash at login.

use super::{Advance, SessionId, StoreError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

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
    ///
    /// [`SessionStore::advance`]: super::SessionStore::advance
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

    pub(super) fn tag(&self, counter: u32) -> [u8; 16] {
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
pub(super) fn same(a: &[u8; 16], b: &[u8; 16]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

/// A session's fingerprint of `hashed_password`: an HMAC under the
/// session's secret, cut to 128 bits. Keyed, so that a store read by
/// someone else shows no digest of any hash that could be compared across
/// sessions or users; and the hash (a salted argon2 output) could not be
/// guessed from it anyway.
pub(super) fn fingerprint(secret: &[u8; 32], id: &SessionId, hashed_password: &str) -> [u8; 16] {
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
    pub(super) tag: [u8; 16],
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
