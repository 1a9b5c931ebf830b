//! Password hashes: argon2id PHC strings, checked with RustCrypto `argon2`.
//!
//! Verification is deliberately slow (tens of milliseconds, ~19 MiB each), so
//! the server never runs it on a request thread: [`Verifier`] moves it to
//! tokio's blocking pool behind a semaphore with one permit per core, which
//! bounds both the CPU it takes from other requests and its memory (cores ×
//! the hash's memory cost). Each permit's argon2 memory is allocated on first
//! use and reused after, so a login flood neither allocates nor frees 19 MiB
//! per request, and a server that has seen no login holds none of it.

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Semaphore;

/// Memory cost of new hashes in KiB (OWASP's argon2id minimum).
pub const DEFAULT_M_COST: u32 = 19456;
/// Iterations of new hashes.
pub const DEFAULT_T_COST: u32 = 2;
/// Lanes of new hashes.
pub const DEFAULT_P_COST: u32 = 1;

/// Why a hash could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordError {
    /// The string is not a PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    NotPhc(String),
    /// A PHC string of an algorithm other than argon2.
    Algorithm(String),
    /// The argon2 parameters are out of range.
    Params(String),
    /// The OS random source failed while making a salt.
    Random(String),
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordError::NotPhc(e) => write!(f, "not an argon2 PHC string ({e})"),
            PasswordError::Algorithm(a) => {
                write!(f, "hash algorithm {a:?} is not supported (use argon2id)")
            }
            PasswordError::Params(e) => write!(f, "invalid argon2 parameters ({e})"),
            PasswordError::Random(e) => write!(f, "cannot read random bytes from the OS: {e}"),
        }
    }
}

impl std::error::Error for PasswordError {}

/// Hashes `password` as an argon2id PHC string at the default parameters
/// (m=19456 KiB, t=2, p=1) with a fresh 16-byte salt from the OS.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let params = Params::new(DEFAULT_M_COST, DEFAULT_T_COST, DEFAULT_P_COST, None)
        .expect("constant argon2 parameters are valid");
    hash_with_params(password.as_bytes(), params)
}

fn hash_with_params(password: &[u8], params: Params) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Params(e.to_string()))
}

/// Checks that `phc` is an argon2 PHC string whose parameters argon2 accepts,
/// and returns those parameters. Run on every hash of a users file at load,
/// so that a bad hash stops startup instead of failing every login.
pub fn check_phc(phc: &str) -> Result<Params, PasswordError> {
    let hash = PasswordHash::new(phc).map_err(|e| PasswordError::NotPhc(e.to_string()))?;
    Algorithm::try_from(hash.algorithm)
        .map_err(|_| PasswordError::Algorithm(hash.algorithm.as_str().to_owned()))?;
    if hash.hash.is_none() {
        return Err(PasswordError::NotPhc("no hash value".to_owned()));
    }
    Params::try_from(&hash).map_err(|e| PasswordError::Params(e.to_string()))
}

/// Verifies `password` against a PHC string already accepted by [`check_phc`].
/// Synchronous and slow: callers on the async runtime use [`Verifier`].
pub fn verify_password(phc: &str, password: &[u8]) -> bool {
    verify_with_memory(phc, password, &mut Vec::new())
}

/// [`verify_password`] with argon2's working memory supplied by the caller
/// (grown to the hash's memory cost as needed, kept for the next call).
fn verify_with_memory(phc: &str, password: &[u8], memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(hash.algorithm),
        Params::try_from(&hash),
        hash.salt,
        hash.hash,
    ) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = &mut out[..expected.len()];
    memory.resize(params.block_count(), Block::default());
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, out, &mut memory[..])
        .is_ok()
        // `Output`'s equality is constant-time.
        && Output::new(out).is_ok_and(|out| out == expected)
}

/// Runs password checks off the request threads, a bounded number at a time.
pub struct Verifier {
    /// Tokio's semaphore (not a thread pool of our own) because waiting for a
    /// permit must not block a runtime thread; permits = cores.
    permits: Arc<Semaphore>,
    /// Argon2 working memory, at most one buffer per permit. A std mutex:
    /// held for a push or a pop, never across an await or a hash.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// The cost of the dummy hash computed for unknown usernames, so that
    /// an unknown user costs the same time as a wrong password.
    dummy_params: Params,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier whose dummy hash uses `params`: pass the parameters most of
    /// the users' hashes have, so unknown users take the time real ones do.
    pub fn new(params: Params) -> Verifier {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Verifier {
            permits: Arc::new(Semaphore::new(cores)),
            memory: Arc::new(Mutex::new(Vec::with_capacity(cores))),
            dummy_params: params,
        }
    }

    /// Verifies `password` against `phc`, or, when `phc` is `None` (unknown
    /// user), spends the same work on a dummy hash and answers `false`.
    pub async fn verify(&self, phc: Option<Arc<str>>, password: &[u8]) -> bool {
        let password = password.to_vec();
        let memory = self.memory.clone();
        let dummy_params = self.dummy_params.clone();
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return false; // the semaphore is never closed
        };
        let checked = tokio::task::spawn_blocking(move || {
            let pool = |m: &Mutex<Vec<Vec<Block>>>| {
                // A poisoned pool still holds valid buffers.
                m.lock().unwrap_or_else(PoisonError::into_inner).pop()
            };
            let mut blocks = pool(&memory).unwrap_or_default();
            let ok = match phc {
                Some(phc) => verify_with_memory(&phc, &password, &mut blocks),
                None => {
                    dummy_hash(&dummy_params, &password, &mut blocks);
                    false
                }
            };
            memory
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(blocks);
            drop(permit);
            ok
        })
        .await;
        // A runtime shutting down means "not verified".
        checked.unwrap_or(false)
    }
}

/// The work of one verification at `params`, thrown away.
fn dummy_hash(params: &Params, password: &[u8], memory: &mut Vec<Block>) {
    let mut out = [0u8; 32];
    memory.resize(params.block_count(), Block::default());
    let _ = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, b"dummy-salt-16-by", &mut out, &mut memory[..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash_password("secret").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let params = check_phc(&phc).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (19456, 2, 1)
        );
        assert!(verify_password(&phc, b"secret"));
        assert!(!verify_password(&phc, b"secret2"));
        assert!(!verify_password(&phc, b""));
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_salt() {
        assert_ne!(hash_password("x").unwrap(), hash_password("x").unwrap());
    }

    #[test]
    fn rejects_what_is_not_an_argon2_phc_string() {
        assert!(matches!(
            check_phc("fakehashedsecret"),
            Err(PasswordError::NotPhc(_))
        ));
        assert!(matches!(check_phc(""), Err(PasswordError::NotPhc(_))));
        assert!(matches!(
            check_phc("$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"),
            Err(PasswordError::Algorithm(_))
        ));
        assert!(matches!(
            check_phc("$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"),
            Err(PasswordError::Params(_))
        ));
        assert!(matches!(
            check_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ"),
            Err(PasswordError::NotPhc(_))
        ));
        assert!(!verify_password("garbage", b"secret"));
    }

    #[tokio::test]
    async fn the_dummy_hash_uses_the_users_memory_cost() {
        // Unknown users cost a hash at the usual parameters: with other
        // parameters (or none) their answer time would tell them apart.
        let verifier = Verifier::new(Params::new(64, 3, 1, None).unwrap());
        assert!(!verifier.verify(None, b"pw").await);
        let pool = verifier.memory.lock().unwrap();
        assert_eq!(pool.len(), 1);
        assert_eq!(pool[0].len(), 64, "the dummy hash used m=64 KiB of blocks");
    }

    #[tokio::test]
    async fn memory_is_reused_and_bounded_by_the_permits() {
        let cheap = Params::new(8, 1, 1, None).unwrap();
        let verifier = Arc::new(Verifier::new(cheap.clone()));
        let phc: Arc<str> = hash_with_params(b"pw", cheap).unwrap().into();
        let checks: Vec<_> = (0..32)
            .map(|_| {
                let (verifier, phc) = (verifier.clone(), phc.clone());
                tokio::spawn(async move { verifier.verify(Some(phc), b"pw").await })
            })
            .collect();
        for check in checks {
            assert!(check.await.unwrap());
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(verifier.memory.lock().unwrap().len() <= cores);
    }

    #[tokio::test]
    async fn verifier_answers_false_for_unknown_users() {
        let cheap = Params::new(8, 1, 1, None).unwrap();
        let verifier = Verifier::new(cheap.clone());
        let phc: Arc<str> = hash_with_params(b"pw", cheap).unwrap().into();
        assert!(verifier.verify(Some(phc.clone()), b"pw").await);
        assert!(!verifier.verify(Some(phc), b"nope").await);
        assert!(!verifier.verify(None, b"pw").await);
    }
}
