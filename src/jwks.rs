//! Verifying this server's tokens elsewhere, from its JWKS alone: a Rust
//! service in the same deployment parses `GET /.well-known/jwks.json`
//! into a [`Jwks`] and checks each bearer token with [`Jwks::verify`]
//! under its [`Rules`] (the algorithms it allows, the issuer and audience
//! it expects, the leeway), getting the claims or a typed [`TokenError`].
//! No `App`, no hyper: fetching the document (and fetching it again on an
//! unknown `kid`, honouring `Cache-Control: max-age`) is the service's,
//! as `examples/resource_server.rs` shows.
//!
//! The rules are the server's own ([`crate::token::verify_with`]): the
//! signature is checked before any JSON is read, the header's `alg` must
//! be the algorithm of the key that verified it and one the service
//! allows, a `kid` must name that key, `typ` must be RFC 9068's `at+jwt`,
//! `crit`, `jku`, `jwk`, `x5u` and `x5c` are refused, and the claims are
//! typed strictly; `iss` and `aud` must be the ones expected.
//!
//! ```
//! use password_bearer::jwks::{Jwks, Rules};
//! use password_bearer::token::{self, Algorithm, Profile, Signer, SigningKey};
//!
//! // The server's side: an Ed25519 key (as `openssl genpkey -algorithm
//! // ed25519` writes it) and a token it issued.
//! let pem = "-----BEGIN PRIVATE KEY-----\n\
//!            MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
//!            -----END PRIVATE KEY-----\n";
//! let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
//! let profile = Profile::new(Some("https://auth.example".into()), Some("api".into()));
//! let now = 1_700_000_000;
//! let access = token::issue_access(
//!     Signer::Key(&key), &profile, "johndoe", None, (Some("id-1"), None), now, 1800,
//! );
//! let document = Jwks::from_keys([key.verifying_key().clone()]).to_json();
//!
//! // The resource server's side: the JWKS document it fetched, and its rules.
//! let jwks = Jwks::from_json(&document).unwrap();
//! let rules = Rules::new(&[Algorithm::EdDSA], "https://auth.example", "api");
//! let claims = jwks.verify_at(&access, &rules, now + 60).unwrap();
//! assert_eq!(claims.sub, "johndoe");
//! assert!(jwks.verify_at(&access, &Rules::new(&[Algorithm::EdDSA], "https://auth.example", "other"), now).is_err());
//! ```

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use crate::clock::unix_now;
pub use crate::token::TokenError;
use crate::token::{self, Algorithm, Claims, Verification, VerifyingKey};

/// The public keys of a JWKS document that this crate can verify with
/// (Ed25519 and P-256 keys for signatures); other keys (RSA, keys for
/// encryption) are skipped, as JWKS consumers do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<VerifyingKey>,
}

/// What a token must be, besides well signed by a key of the [`Jwks`].
#[derive(Debug, Clone)]
pub struct Rules {
    /// The algorithms accepted (an allow-list; at least one).
    pub algorithms: Vec<Algorithm>,
    /// `iss` must be exactly this.
    pub issuer: String,
    /// `aud` must be, or list, this.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (at most 60
    /// are used).
    pub leeway: u64,
}

impl Rules {
    /// The rules with no leeway.
    pub fn new(algorithms: &[Algorithm], issuer: &str, audience: &str) -> Rules {
        Rules {
            algorithms: algorithms.to_vec(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway: 0,
        }
    }
}

/// Why a JWKS document could not be read. Says nothing of the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksError {
    /// Not JSON, or not an object with a `keys` list of objects.
    Malformed,
    /// A key of a supported type (`OKP` Ed25519, `EC` P-256) whose members
    /// are missing or not base64url of the right length.
    BadKey,
    /// A key whose `kid` is not its RFC 7638 thumbprint, as this server's
    /// always are (the `kid` given).
    KidMismatch(String),
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::Malformed => f.write_str("the JWKS is not a JSON object with a keys list"),
            JwksError::BadKey => f.write_str("a JWKS key has missing or malformed members"),
            JwksError::KidMismatch(kid) => {
                write!(f, "the JWKS key {kid:?} is not the key its kid names")
            }
        }
    }
}

impl std::error::Error for JwksError {}

/// One member of `keys`, as sent.
#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<Jwk>,
}

impl Jwks {
    /// A set of the given keys.
    pub fn from_keys(keys: impl IntoIterator<Item = VerifyingKey>) -> Jwks {
        Jwks {
            keys: keys.into_iter().collect(),
        }
    }

    /// The keys of a JWKS document. A key of a type this crate does not
    /// verify with is skipped; one of a supported type that is malformed,
    /// or whose `kid` is not its thumbprint, fails the whole document, so
    /// that a key is never silently missing.
    pub fn from_json(document: &str) -> Result<Jwks, JwksError> {
        let document: Document =
            serde_json::from_str(document).map_err(|_| JwksError::Malformed)?;
        let mut keys = Vec::new();
        for jwk in document.keys {
            if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let decode = |member: &Option<String>| {
                member
                    .as_deref()
                    .and_then(|m| URL_SAFE_NO_PAD.decode(m).ok())
                    .ok_or(JwksError::BadKey)
            };
            let key = match (jwk.kty.as_deref(), jwk.crv.as_deref()) {
                (Some("OKP"), Some("Ed25519")) => {
                    VerifyingKey::ed25519(&decode(&jwk.x)?).ok_or(JwksError::BadKey)?
                }
                (Some("EC"), Some("P-256")) => {
                    VerifyingKey::p256(&decode(&jwk.x)?, &decode(&jwk.y)?)
                        .ok_or(JwksError::BadKey)?
                }
                _ => continue,
            };
            // A key published for another algorithm than its type's is not
            // one to verify with.
            if jwk
                .alg
                .as_deref()
                .is_some_and(|alg| alg != key.algorithm().name())
            {
                continue;
            }
            if let Some(kid) = jwk.kid {
                if kid != key.kid() {
                    return Err(JwksError::KidMismatch(kid));
                }
            }
            keys.push(key);
        }
        Ok(Jwks { keys })
    }

    /// The document, `{"keys":[...]}`, as `GET /.well-known/jwks.json`
    /// serves it.
    pub fn to_json(&self) -> String {
        let keys: Vec<serde_json::Value> = self.keys.iter().map(VerifyingKey::to_jwk).collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// The keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Whether a key has this `kid`: a service seeing a token whose `kid`
    /// is unknown fetches the document again (with a cooldown).
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|key| key.kid() == kid)
    }

    /// The claims of `token` if it verifies under these keys and `rules`,
    /// now.
    pub fn verify(&self, token: &str, rules: &Rules) -> Result<Claims, TokenError> {
        self.verify_at(token, rules, unix_now())
    }

    /// [`Jwks::verify`] at `now` (Unix seconds).
    pub fn verify_at(&self, token: &str, rules: &Rules, now: i64) -> Result<Claims, TokenError> {
        // No algorithm allowed would otherwise read as "any".
        if rules.algorithms.is_empty() {
            return Err(TokenError::Algorithm);
        }
        let verification = Verification {
            secrets: &[],
            public: &self.keys,
            algorithms: &rules.algorithms,
            issuer: Some(&rules.issuer),
            audience: Some(&rules.audience),
            access_token_typ: true,
        };
        let leeway = rules.leeway.min(60) as i64;
        token::verify_with(&verification, token, now, leeway)
    }
}
