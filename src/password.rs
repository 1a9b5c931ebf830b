//! Password hashes: argon2id PHC strings, checked with RustCrypto `argon2`.
//!
//! Verification is deliberately slow (tens of milliseconds, ~19 MiB each), so
//! the server never runs it on a request thread: [`Verifier`] moves it to
//! tokio's blocking pool behind a semaphore with one permit per core, which
//! bounds both the CPU it takes from other requests and its memory (cores ×
//! the hash's memory cost).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::fmt;
use std::sync::Arc;
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
    match PasswordHash::new(phc) {
        // `Argon2::default()` is only a fallback: verification takes the
        // algorithm, version and parameters from the PHC string itself.
        Ok(hash) => Argon2::default().verify_password(password, &hash).is_ok(),
        Err(_) => false,
    }
}

/// Runs password checks off the request threads, a bounded number at a time.
pub struct Verifier {
    /// Tokio's semaphore (not a thread pool of our own) because waiting for a
    /// permit must not block a runtime thread; permits = cores.
    permits: Arc<Semaphore>,
    /// Checked against when the username is unknown, so that an unknown user
    /// costs the same time as a wrong password.
    dummy: Arc<str>,
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
    pub fn new(params: Params) -> Result<Verifier, PasswordError> {
        let mut random = [0u8; 24];
        getrandom::fill(&mut random).map_err(|e| PasswordError::Random(e.to_string()))?;
        let dummy = hash_with_params(&random, params)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Verifier {
            permits: Arc::new(Semaphore::new(cores)),
            dummy: dummy.into(),
        })
    }

    /// Verifies `password` against `phc`, or against the dummy hash when
    /// `phc` is `None` (unknown user; the answer is then always `false`).
    pub async fn verify(&self, phc: Option<Arc<str>>, password: &[u8]) -> bool {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.clone());
        let password = password.to_vec();
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return false; // the semaphore is never closed
        };
        let checked = tokio::task::spawn_blocking(move || {
            let ok = verify_password(&phc, &password);
            drop(permit);
            ok
        })
        .await;
        // A panicking hash (it does not) or a runtime shutting down both mean
        // "not verified".
        known && checked.unwrap_or(false)
    }
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

    #[test]
    fn the_dummy_hash_costs_what_the_users_hashes_cost() {
        // Unknown users are verified against it: with other parameters (or
        // no hash at all) their answer time would tell them apart.
        let params = Params::new(64, 3, 1, None).unwrap();
        let verifier = Verifier::new(params.clone()).unwrap();
        assert!(verifier.dummy.starts_with("$argon2id$v=19$m=64,t=3,p=1$"));
        let dummy = check_phc(&verifier.dummy).unwrap();
        assert_eq!((dummy.m_cost(), dummy.t_cost(), dummy.p_cost()), (64, 3, 1));
    }

    #[tokio::test]
    async fn verifier_answers_false_for_unknown_users() {
        let cheap = Params::new(8, 1, 1, None).unwrap();
        let verifier = Verifier::new(cheap.clone()).unwrap();
        let phc: Arc<str> = hash_with_params(b"pw", cheap).unwrap().into();
        assert!(verifier.verify(Some(phc.clone()), b"pw").await);
        assert!(!verifier.verify(Some(phc), b"nope").await);
        assert!(!verifier.verify(None, b"pw").await);
    }
}
