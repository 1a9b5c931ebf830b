//! Recently verified tokens, so that a client presenting the same token
//! again skips the HMAC, base64 and JSON work of [`token::verify`] (most of
//! the cost of `GET /users/me`).
//!
//! Safe because a hit requires the whole presented token to equal, byte for
//! byte (its signature's end compared in constant time first), a token that passed full verification
//! under this app's key; the time rules (`exp`, `nbf`) are checked again on
//! every hit, so an entry never outlives its token. The cache is
//! direct-mapped: a fixed number of buckets, each holding one token, so its
//! memory is bounded whatever clients send, and a collision only evicts.
//!
//! A hit also requires the keys to be the ones the token was verified
//! under (their generation, which [`crate::App::reload`] moves on): a key
//! a reload removed stops working at once, cached or not.
//!
//! Revocation is checked here too, cheaply: each entry remembers the
//! deny-list's generation it was last checked against, and a hit looks the
//! token up again only when something was revoked since, so the usual hit
//! costs one atomic load more.
//!
//! An entry may also hold the token's user, when the store's answer cannot
//! change while its keys' generation is current ([`UserStore::fixed_user`]:
//! the built-in [`crate::Users`]); a hit then skips the store's lookup.
//! A reload moves the generation on, so a reloaded user is looked up again.

use crate::sessions::Revocations;
use crate::token::{self, check_times, Claims, SecretKey, TokenError};
use crate::users::{User, UserStore};
use std::sync::{Arc, Mutex, PoisonError};

/// Buckets in the cache: enough for the clients of a small deployment, 32 KiB
/// when empty.
const BUCKETS: usize = 1024;

/// One verified token and its claims.
struct Entry {
    token: Box<[u8]>,
    claims: Arc<Claims>,
    /// Its user, when the store of that generation says the user is fixed.
    user: Option<Arc<User>>,
    /// The generation of the keys (and users) that verified it.
    keys: u64,
    /// The deny-list's generation when this token was last found not
    /// revoked.
    checked: u64,
}

/// A fixed-size cache of verified tokens.
pub(crate) struct TokenCache {
    /// One std mutex per bucket: held for a compare or a swap, never across
    /// an await, and two requests contend only when their tokens share a bucket.
    buckets: Box<[Mutex<Option<Entry>>]>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("buckets", &self.buckets.len())
            .finish()
    }
}

impl TokenCache {
    pub(crate) fn new() -> TokenCache {
        TokenCache {
            buckets: (0..BUCKETS).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// [`token::verify_any`] of the token's bytes under `keys` (of
    /// generation `keys_generation`), answered from the cache when this
    /// exact token was verified before under the same keys; then, when
    /// there is a deny-list, refused if it or its session was revoked. With
    /// the claims, the user `users` (of the same generation) names as
    /// fixed, if any: looked up on a miss, remembered for the hits.
    pub(crate) fn verify<K: Keys + ?Sized, S: UserStore>(
        &self,
        (keys, users): (&K, &S),
        keys_generation: u64,
        token: &[u8],
        now: i64,
        leeway: i64,
        revocations: Option<&Revocations>,
    ) -> Result<(Arc<Claims>, Option<Arc<User>>), TokenError> {
        let bucket = &self.buckets[bucket_of(token)];
        let hit = {
            let mut entry = bucket.lock().unwrap_or_else(PoisonError::into_inner);
            match entry.as_mut() {
                Some(e) if e.keys == keys_generation && same_token(&e.token, token) => {
                    if let Some(revocations) = revocations {
                        let generation = revocations.generation();
                        if e.checked != generation {
                            if denied(revocations, &e.claims, now) {
                                return Err(TokenError::Revoked);
                            }
                            e.checked = generation;
                        }
                    }
                    Some((e.claims.clone(), e.user.clone()))
                }
                _ => None,
            }
        };
        if let Some(hit) = hit {
            check_times(hit.0.exp, hit.0.nbf, now, leeway)?;
            return Ok(hit);
        }
        // Only a miss needs the token as text: a hit equals a token that
        // was UTF-8 when it was verified.
        let text = std::str::from_utf8(token).map_err(|_| TokenError::Malformed)?;
        let claims = Arc::new(keys.verify_token(text, now, leeway)?);
        // The generation before the lookup: an addition racing with it
        // moves the generation, and the next hit looks again.
        let checked = revocations.map_or(0, Revocations::generation);
        if revocations.is_some_and(|r| denied(r, &claims, now)) {
            return Err(TokenError::Revoked);
        }
        let user = users.fixed_user(&claims.sub);
        *bucket.lock().unwrap_or_else(PoisonError::into_inner) = Some(Entry {
            token: token.into(),
            claims: claims.clone(),
            user: user.clone(),
            keys: keys_generation,
            checked,
        });
        Ok((claims, user))
    }
}

/// The keys (and claim rules) a miss verifies a token under: HS256 keys
/// alone ([`token::verify_any`]), or the app's whole set
/// (`UsersAndKeys`: its HS256 and public keys, its issuer and audience).
pub(crate) trait Keys {
    /// The token's claims, fully verified.
    fn verify_token(&self, token: &str, now: i64, leeway: i64) -> Result<Claims, TokenError>;
}

impl Keys for [SecretKey] {
    fn verify_token(&self, token: &str, now: i64, leeway: i64) -> Result<Claims, TokenError> {
        token::verify_any(self, token, now, leeway)
    }
}

impl<const N: usize> Keys for [SecretKey; N] {
    fn verify_token(&self, token: &str, now: i64, leeway: i64) -> Result<Claims, TokenError> {
        token::verify_any(self, token, now, leeway)
    }
}

/// Whether the deny-list names the token or its session, or holds a mark
/// of its user covering it. A token without `jti` or `sid` (minted
/// elsewhere) was never revocable, so no mark was made for it.
pub(crate) fn denied(revocations: &Revocations, claims: &Claims, now: i64) -> bool {
    (claims.sid.is_some() || claims.jti.is_some())
        && revocations.denies(
            &claims.sub,
            claims.iat,
            claims.sid.as_deref(),
            claims.jti.as_deref(),
            now,
        )
}

/// The bucket of a token: from its last eight bytes, the end of the HMAC
/// signature, which is uniformly spread for real tokens. A client crafting
/// tokens for one bucket only evicts entries; it cannot make a hit.
fn bucket_of(token: &[u8]) -> usize {
    // A fixed-size read: copying a tail of any length calls `memcpy`.
    let tail = match token.last_chunk::<8>() {
        Some(tail) => u64::from_le_bytes(*tail),
        None => token.iter().fold(0, |acc, &b| acc << 8 | u64::from(b)),
    };
    let mixed = tail.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 32) as usize % BUCKETS
}

/// Bytes at a token's end compared in constant time: a JWS ends with its
/// signature (HS256's is 43 characters), the one part a client cannot
/// make without the key.
const SIGNED_TAIL: usize = 32;

/// Whether `presented` is the cached token, byte for byte, telling by its
/// time nothing a client could not know: first its signature's last
/// [`SIGNED_TAIL`] bytes, in constant time; only if those match (the
/// client then holds that token's signature, 192 bits it could only have
/// from the token itself) the rest, with an ordinary comparison, as fast
/// as the library's. Without the tail's match, where the rest differs
/// (header and claims, which are base64 and no secret) is never looked at.
fn same_token(cached: &[u8], presented: &[u8]) -> bool {
    if cached.len() != presented.len() {
        return false;
    }
    match (
        cached.last_chunk::<SIGNED_TAIL>(),
        presented.last_chunk::<SIGNED_TAIL>(),
    ) {
        (Some(cached_tail), Some(presented_tail)) => {
            constant_time_eq(cached_tail, presented_tail) && cached == presented
        }
        _ => constant_time_eq(cached, presented),
    }
}

/// Equality whose time depends on the lengths only, not on where the bytes
/// differ (the length of a token is no secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // Eight bytes at a time: the release build optimises this crate for
    // size, which leaves a byte loop unrolled by nobody.
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("chunks of eight"));
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .fold(0u64, |acc, (x, y)| acc | u64::from(x ^ y));
    let diff = a8
        .zip(b8)
        .fold(tail, |acc, (x, y)| acc | (word(x) ^ word(y)));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::issue;

    const NOW: i64 = 1_700_000_000;

    /// A store whose users may change at any time: the default answer.
    struct Changing;

    impl UserStore for Changing {
        fn find(
            &self,
            _: &str,
        ) -> impl std::future::Future<Output = Result<Option<Arc<User>>, crate::users::StoreError>> + Send
        {
            std::future::ready(Ok(None))
        }
    }

    impl TokenCache {
        /// [`TokenCache::verify`]'s claims, for a store whose users are
        /// looked up at every request.
        fn claims_of(
            &self,
            keys: &[SecretKey],
            keys_generation: u64,
            token: &[u8],
            now: i64,
            leeway: i64,
            revocations: Option<&Revocations>,
        ) -> Result<Arc<Claims>, TokenError> {
            self.verify(
                (keys, &Changing),
                keys_generation,
                token,
                now,
                leeway,
                revocations,
            )
            .map(|(claims, user)| {
                assert!(user.is_none(), "a changing store's user is never cached");
                claims
            })
        }
    }

    fn key() -> SecretKey {
        SecretKey::new(b"token-cache-tests-key-0123456789abcdef").unwrap()
    }

    #[test]
    fn bytes_that_are_not_utf8_are_malformed_and_not_cached() {
        let cache = TokenCache::new();
        let bytes = b"\xff\xfe.e30.c2ln";
        for _ in 0..2 {
            assert_eq!(
                cache.claims_of(&[key()], 0, bytes, NOW, 0, None),
                Err(TokenError::Malformed)
            );
        }
    }

    #[test]
    fn a_hit_returns_the_same_claims() {
        let cache = TokenCache::new();
        let token = issue(&key(), "johndoe", NOW, 60);
        let first = cache
            .claims_of(&[key()], 0, token.as_bytes(), NOW, 0, None)
            .unwrap();
        let second = cache
            .claims_of(&[key()], 0, token.as_bytes(), NOW, 0, None)
            .unwrap();
        assert!(Arc::ptr_eq(&first, &second), "the second call is a hit");
        assert_eq!(second.sub, "johndoe");
    }

    #[test]
    fn a_fixed_user_is_remembered_for_its_generation_only() {
        use crate::users::Users;
        let users = Users::demo();
        let cache = TokenCache::new();
        let token = issue(&key(), "johndoe", NOW, 60);
        let verify = |generation| {
            cache
                .verify(
                    (&[key()], &users),
                    generation,
                    token.as_bytes(),
                    NOW,
                    0,
                    None,
                )
                .unwrap()
                .1
                .expect("johndoe is a fixed user")
        };
        let (first, hit) = (verify(0), verify(0));
        assert!(Arc::ptr_eq(&first, users.get("johndoe").unwrap()));
        assert!(Arc::ptr_eq(&first, &hit), "the hit remembers the user");
        // After a reload (generation 1), the new set's store is asked again.
        let reloaded = Users::demo();
        let after = cache
            .verify((&[key()], &reloaded), 1, token.as_bytes(), NOW, 0, None)
            .unwrap()
            .1
            .unwrap();
        assert!(Arc::ptr_eq(&after, reloaded.get("johndoe").unwrap()));
        // A user the store does not have is left to the lookup (and refused there).
        let nobody = issue(&key(), "nobody", NOW, 60);
        assert!(cache
            .verify((&[key()], &users), 0, nobody.as_bytes(), NOW, 0, None)
            .unwrap()
            .1
            .is_none());
    }

    #[test]
    fn expiry_is_checked_on_every_hit() {
        let cache = TokenCache::new();
        let token = issue(&key(), "johndoe", NOW, 60);
        assert!(cache
            .claims_of(&[key()], 0, token.as_bytes(), NOW, 0, None)
            .is_ok());
        assert_eq!(
            cache.claims_of(&[key()], 0, token.as_bytes(), NOW + 60, 0, None),
            Err(TokenError::Expired)
        );
        assert!(
            cache
                .claims_of(&[key()], 0, token.as_bytes(), NOW + 60, 5, None)
                .is_ok(),
            "leeway applies"
        );
    }

    #[test]
    fn a_token_differing_in_one_byte_is_verified_in_full() {
        let cache = TokenCache::new();
        let token = issue(&key(), "johndoe", NOW, 60);
        assert!(cache
            .claims_of(&[key()], 0, token.as_bytes(), NOW, 0, None)
            .is_ok());
        // Same bucket (same tail), different payload byte: must not hit.
        let mut forged = token.clone().into_bytes();
        let dot = forged.iter().position(|&b| b == b'.').unwrap();
        forged[dot + 3] ^= 1;
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(bucket_of(forged.as_bytes()), bucket_of(token.as_bytes()));
        assert!(cache
            .claims_of(&[key()], 0, forged.as_bytes(), NOW, 0, None)
            .is_err());
        assert!(
            cache
                .claims_of(&[key()], 0, token.as_bytes(), NOW, 0, None)
                .is_ok(),
            "the real one still verifies"
        );
    }

    #[test]
    fn another_key_never_hits() {
        // An app has one key and one cache; still, a cached token must not
        // verify under another key's cache, as each cache is filled by its
        // own key's verification.
        let cache = TokenCache::new();
        let other = SecretKey::new(b"another-key-0123456789abcdef-0123456").unwrap();
        let token = issue(&other, "johndoe", NOW, 60);
        assert_eq!(
            cache.claims_of(&[key()], 0, token.as_bytes(), NOW, 0, None),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            cache.claims_of(&[key()], 0, token.as_bytes(), NOW, 0, None),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_cached_under_keys_a_reload_replaced_is_verified_again() {
        let cache = TokenCache::new();
        let old = key();
        let new = SecretKey::new(b"the-key-after-a-reload-0123456789abcdef").unwrap();
        let token = issue(&old, "johndoe", NOW, 60);
        assert!(cache
            .claims_of(
                std::slice::from_ref(&old),
                0,
                token.as_bytes(),
                NOW,
                0,
                None
            )
            .is_ok());
        // The old key removed (generation 1): refused although cached.
        assert_eq!(
            cache.claims_of(
                std::slice::from_ref(&new),
                1,
                token.as_bytes(),
                NOW,
                0,
                None
            ),
            Err(TokenError::BadSignature)
        );
        // Still listed as an old key (generation 2): accepted again.
        assert!(cache
            .claims_of(&[new, old], 2, token.as_bytes(), NOW, 0, None)
            .is_ok());
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
        let long = b"0123456789abcdefghij";
        assert!(constant_time_eq(long, long));
        for i in 0..long.len() {
            let mut other = *long;
            other[i] ^= 0x20;
            assert!(!constant_time_eq(long, &other), "byte {i}");
        }
    }

    #[test]
    fn same_token_is_equality_whatever_byte_differs() {
        let token = issue(&key(), "johndoe", NOW, 60);
        let token = token.as_bytes();
        assert!(same_token(token, token));
        // Every byte, in the signature's tail and before it.
        for i in 0..token.len() {
            let mut other = token.to_vec();
            other[i] ^= 0x01;
            assert!(!same_token(token, &other), "byte {i}");
        }
        assert!(!same_token(token, &token[1..]));
        // Shorter than the tail: compared whole.
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abc", b"abd"));
    }

    #[test]
    fn a_cached_token_is_refused_once_its_session_or_itself_is_revoked() {
        use crate::sessions::{Revocation, Revocations, SessionId, TokenId};
        use crate::token::issue_in_session;
        let cache = TokenCache::new();
        let list = Revocations::new(10, 10);
        let (sid, jti, other) = (
            SessionId::random().unwrap(),
            TokenId::random().unwrap(),
            TokenId::random().unwrap(),
        );
        let mint = |jti: &TokenId| {
            issue_in_session(
                &key(),
                "johndoe",
                None,
                (&jti.encode(), &sid.encode()),
                NOW,
                60,
            )
        };
        let (token, sibling) = (mint(&jti), mint(&other));
        let check = |t: &str| cache.claims_of(&[key()], 0, t.as_bytes(), NOW, 0, Some(&list));
        assert!(check(&token).is_ok());
        assert!(check(&token).is_ok(), "a hit, nothing revoked");
        list.add(Revocation::Token(jti, NOW + 60), None, NOW);
        assert_eq!(check(&token).unwrap_err(), TokenError::Revoked);
        assert!(check(&sibling).is_ok(), "only that token");
        list.add(Revocation::Session(sid, NOW + 60), None, NOW);
        assert_eq!(check(&sibling).unwrap_err(), TokenError::Revoked);
        // Without a deny-list (sessions off), nothing is revoked.
        assert!(cache
            .claims_of(&[key()], 0, token.as_bytes(), NOW, 0, None)
            .is_ok());
    }

    #[test]
    fn a_cached_token_is_refused_once_its_user_is_collapsed_into_a_mark() {
        use crate::sessions::{Revocation, Revocations, SessionId, TokenId};
        use crate::token::issue_in_session;
        let cache = TokenCache::new();
        let list = Revocations::new(10, 10);
        let sid = SessionId::random().unwrap();
        let mint = |user: &str, at: i64| {
            let jti = TokenId::random().unwrap().encode();
            issue_in_session(&key(), user, None, (&jti, &sid.encode()), at, 600)
        };
        let (before, after, other) = (
            mint("johndoe", NOW),
            mint("johndoe", NOW + 1),
            mint("bob", NOW),
        );
        let check = |t: &str| cache.claims_of(&[key()], 0, t.as_bytes(), NOW + 1, 0, Some(&list));
        for token in [&before, &after, &other] {
            assert!(check(token).is_ok());
        }
        list.add(
            Revocation::User {
                issued: NOW,
                until: NOW + 600,
            },
            Some("johndoe"),
            NOW + 1,
        );
        assert_eq!(check(&before).unwrap_err(), TokenError::Revoked, "a hit");
        assert!(check(&after).is_ok(), "issued after the mark");
        assert!(check(&other).is_ok(), "another user's");
    }
}
