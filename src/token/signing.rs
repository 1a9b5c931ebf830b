//! Asymmetric keys: [`SigningKey`], a private key that signs access tokens
//! (`EdDSA` with Ed25519, `ES256` with P-256), read from a PEM PKCS#8 file,
//! and [`VerifyingKey`], its public half, as the JWKS publishes it and as
//! a verifier holds it. The crypto is ring's (docs/benchmarks.md,
//! "Asymmetric signing", says why ring and not RustCrypto).
//!
//! Built with the `signing` feature (ring's code adds 0.3 MB to a binary;
//! nothing with `tls`, which builds ring already).
//!
//! A key's id is its RFC 7638 JWK thumbprint: the SHA-256 of the canonical
//! JSON of its public members, base64url. Every instance reading the same
//! key file therefore publishes the same `kid`, and a verifier can check
//! that a published key is the one its `kid` names.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use sha2::{Digest, Sha256};

use super::Algorithm;

/// Bytes of an Ed25519 or ES256 (r ‖ s) signature.
pub(crate) const ASYMMETRIC_SIGNATURE_LEN: usize = 64;

/// A public key that verifies tokens: an Ed25519 point or a P-256 point,
/// its algorithm and its `kid`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    alg: Algorithm,
    /// Ed25519: the 32-byte point; P-256: `04 ‖ x ‖ y`, 65 bytes.
    public: Vec<u8>,
    kid: String,
}

impl VerifyingKey {
    /// An Ed25519 public key from its 32 bytes (a JWK's `x`).
    pub fn ed25519(x: &[u8]) -> Option<VerifyingKey> {
        (x.len() == 32).then(|| VerifyingKey::new(Algorithm::EdDSA, x.to_vec()))
    }

    /// A P-256 public key from its coordinates (a JWK's `x` and `y`, 32
    /// bytes each). Whether the point is on the curve is checked at each
    /// verification (by ring), which refuses every signature if not.
    pub fn p256(x: &[u8], y: &[u8]) -> Option<VerifyingKey> {
        if x.len() != 32 || y.len() != 32 {
            return None;
        }
        let mut public = Vec::with_capacity(65);
        public.push(4);
        public.extend_from_slice(x);
        public.extend_from_slice(y);
        Some(VerifyingKey::new(Algorithm::ES256, public))
    }

    fn new(alg: Algorithm, public: Vec<u8>) -> VerifyingKey {
        let mut key = VerifyingKey {
            alg,
            public,
            kid: String::new(),
        };
        key.kid = URL_SAFE_NO_PAD.encode(Sha256::digest(key.canonical_jwk()));
        key
    }

    /// The algorithm its signatures are made with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Its `kid`: the RFC 7638 thumbprint (SHA-256) of its public JWK.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWK's members a thumbprint covers, in RFC 7638's form: the
    /// required members only, in lexicographic order, no white space.
    fn canonical_jwk(&self) -> String {
        match self.alg {
            Algorithm::ES256 => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(&self.public[1..33]),
                URL_SAFE_NO_PAD.encode(&self.public[33..65]),
            ),
            _ => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(&self.public)
            ),
        }
    }

    /// The key as a JWKS lists it: `kty`, `crv`, `x` (and `y`), `kid`,
    /// `alg`, `use: "sig"`; public members only.
    pub fn to_jwk(&self) -> serde_json::Value {
        let mut jwk = serde_json::json!({
            "kty": if self.alg == Algorithm::ES256 { "EC" } else { "OKP" },
            "crv": if self.alg == Algorithm::ES256 { "P-256" } else { "Ed25519" },
            "kid": self.kid,
            "alg": self.alg.name(),
            "use": "sig",
        });
        match self.alg {
            Algorithm::ES256 => {
                jwk["x"] = URL_SAFE_NO_PAD.encode(&self.public[1..33]).into();
                jwk["y"] = URL_SAFE_NO_PAD.encode(&self.public[33..65]).into();
            }
            _ => jwk["x"] = URL_SAFE_NO_PAD.encode(&self.public).into(),
        }
        jwk
    }

    /// Whether `signature` is this key's over `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            _ => &signature::ED25519,
        };
        signature::UnparsedPublicKey::new(alg, &self.public)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({}, kid={})", self.alg, self.kid)
    }
}

/// The private half.
enum Pair {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair, SystemRandom),
}

/// A private key that signs access tokens: Ed25519 (`EdDSA`) or P-256
/// (`ES256`), with its public half and `kid`. Cloning shares the key.
#[derive(Clone)]
pub struct SigningKey {
    pair: std::sync::Arc<Pair>,
    public: VerifyingKey,
}

/// `1.3.101.112`, Ed25519, as DER (RFC 8410).
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// `1.2.840.10045.2.1`, an elliptic-curve public key.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `1.2.840.10045.3.1.7`, the P-256 curve.
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

impl SigningKey {
    /// A key from a PKCS#8 document in PEM (`-----BEGIN PRIVATE KEY-----`),
    /// as `openssl genpkey -algorithm ed25519` or `openssl genpkey
    /// -algorithm EC -pkeyopt ec_paramgen_curve:P-256` write it (also
    /// `openssl ecparam -genkey | openssl pkcs8 -topk8 -nocrypt`). The
    /// error never holds the key's content.
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, SigningKeyError> {
        SigningKey::from_pkcs8_der(&pem_body(pem)?)
    }

    /// A key from the file at `path` ([`Self::from_pem`]).
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<SigningKey, SigningKeyError> {
        let pem = std::fs::read(path).map_err(|e| SigningKeyError::Read(e.to_string()))?;
        SigningKey::from_pem(&pem)
    }

    /// A key from a PKCS#8 document in DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, SigningKeyError> {
        // The algorithm identifier comes first, within the first 32 bytes.
        let head = &der[..der.len().min(40)];
        let has = |oid: &[u8]| head.windows(oid.len()).any(|w| w == oid);
        if has(OID_ED25519) {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|_| SigningKeyError::Invalid)?;
            let public = VerifyingKey::ed25519(pair.public_key().as_ref())
                .ok_or(SigningKeyError::Invalid)?;
            return Ok(SigningKey {
                pair: std::sync::Arc::new(Pair::Ed25519(pair)),
                public,
            });
        }
        if has(OID_EC_PUBLIC_KEY) {
            if !has(OID_P256) {
                return Err(SigningKeyError::Unsupported(
                    "an EC key on a curve other than P-256",
                ));
            }
            let rng = SystemRandom::new();
            let pair =
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                    .map_err(|_| SigningKeyError::Invalid)?;
            let point = pair.public_key().as_ref();
            let public = VerifyingKey::p256(&point[1..33], &point[33..65])
                .ok_or(SigningKeyError::Invalid)?;
            return Ok(SigningKey {
                pair: std::sync::Arc::new(Pair::P256(pair, rng)),
                public,
            });
        }
        Err(SigningKeyError::Unsupported(
            "a key other than Ed25519 or P-256",
        ))
    }

    /// Its public half.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.public.alg
    }

    /// Its `kid` (the public key's RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// The signature of `message` (a JWS signing input,
    /// `header.payload`), 64 bytes: Ed25519's, or ES256's `r ‖ s`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &*self.pair {
            Pair::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            Pair::P256(pair, rng) => pair
                .sign(rng, message)
                .expect("ECDSA signing fails only if the system's random source does")
                .as_ref()
                .to_vec(),
        }
    }
}

impl fmt::Debug for SigningKey {
    // Nothing of the private key: the algorithm and the public key's id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey({}, kid={})",
            self.public.alg, self.public.kid
        )
    }
}

/// Why a [`SigningKey`] could not be read. Never holds the key's content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigningKeyError {
    /// The file could not be read; the I/O error's message.
    Read(String),
    /// Not a PEM `PRIVATE KEY` block (the PKCS#8 form); says what it is
    /// instead when that is recognisable.
    NotPkcs8Pem(&'static str),
    /// A PKCS#8 key of a kind not supported.
    Unsupported(&'static str),
    /// A PKCS#8 Ed25519 or P-256 key that does not parse or is not valid.
    Invalid,
}

impl fmt::Display for SigningKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigningKeyError::Read(message) => write!(f, "cannot read: {message}"),
            SigningKeyError::NotPkcs8Pem(what) => write!(
                f,
                "not a PEM PKCS#8 private key (-----BEGIN PRIVATE KEY-----): {what}"
            ),
            SigningKeyError::Unsupported(what) => write!(
                f,
                "{what}; signing keys are Ed25519 (EdDSA) or P-256 (ES256)"
            ),
            SigningKeyError::Invalid => {
                f.write_str("not a valid PKCS#8 Ed25519 or P-256 private key")
            }
        }
    }
}

impl std::error::Error for SigningKeyError {}

/// The DER inside the file's one `PRIVATE KEY` PEM block.
fn pem_body(pem: &[u8]) -> Result<Vec<u8>, SigningKeyError> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let text = std::str::from_utf8(pem)
        .map_err(|_| SigningKeyError::NotPkcs8Pem("the file is not text (a DER key? use PEM)"))?;
    let Some(start) = text.find(BEGIN) else {
        let what = if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            "it is encrypted (openssl pkcs8 -topk8 -nocrypt decrypts it)"
        } else if text.contains("-----BEGIN EC PRIVATE KEY-----") {
            "it is a SEC1 EC key (openssl pkcs8 -topk8 -nocrypt converts it)"
        } else if text.contains("PUBLIC KEY-----") {
            "it is a public key; the private key signs"
        } else {
            "no such block"
        };
        return Err(SigningKeyError::NotPkcs8Pem(what));
    };
    let body = &text[start + BEGIN.len()..];
    let end = body
        .find(END)
        .ok_or(SigningKeyError::NotPkcs8Pem("the block has no END line"))?;
    let base64: String = body[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(base64)
        .map_err(|_| SigningKeyError::NotPkcs8Pem("the block is not base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 Appendix A's key (RFC 8032's first test vector), as
    /// `openssl genpkey -algorithm ed25519` writes a key: PKCS#8 v1.
    const RFC8037_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
        -----END PRIVATE KEY-----\n";

    /// A P-256 key from `openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`; its x, y and thumbprint computed apart,
    /// with openssl (`pkey -pubout`) and Python's hashlib and json.
    const P256_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNjvR5hWLfG4bltJY\n\
        HDxxBtqqpPFZvLPNvHrcqOahV8OhRANCAASZ6AvnAxpki2W5jq/coGvZy+O2V0DB\n\
        +zOHNN5fI7074CqNqPLAYLqI8h03BqRZp6mGetAxzWWRzY8aCTm1sEyy\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn ed25519_kid_is_rfc8037s_thumbprint() {
        let key = SigningKey::from_pem(RFC8037_PEM.as_bytes()).unwrap();
        assert_eq!(key.algorithm(), Algorithm::EdDSA);
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let jwk = key.verifying_key().to_jwk();
        assert_eq!(jwk["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(jwk["crv"], "Ed25519");
    }

    #[test]
    fn p256_kid_is_its_thumbprint() {
        let key = SigningKey::from_pem(P256_PEM.as_bytes()).unwrap();
        assert_eq!(key.algorithm(), Algorithm::ES256);
        assert_eq!(key.kid(), "9W01I_mCIMNlSbzS82EIDxSKW8llYDS-QwkKWxioJIE");
        let jwk = key.verifying_key().to_jwk();
        assert_eq!(jwk["x"], "megL5wMaZItluY6v3KBr2cvjtldAwfszhzTeXyO9O-A");
        assert_eq!(jwk["y"], "Ko2o8sBguojyHTcGpFmnqYZ60DHNZZHNjxoJObWwTLI");
        let members: Vec<&String> = jwk.as_object().unwrap().keys().collect();
        assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
    }

    #[test]
    fn signatures_verify_under_the_public_key_only() {
        for pem in [RFC8037_PEM, P256_PEM] {
            let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
            let signature = key.sign(b"header.payload");
            assert_eq!(signature.len(), ASYMMETRIC_SIGNATURE_LEN);
            assert!(key.verifying_key().verifies(b"header.payload", &signature));
            assert!(!key.verifying_key().verifies(b"header.payloaD", &signature));
        }
    }

    #[test]
    fn bad_files_say_what_they_are_and_never_their_content() {
        let body = "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v";
        for (pem, expected) in [
            (
                format!("-----BEGIN EC PRIVATE KEY-----\n{body}\n-----END EC PRIVATE KEY-----\n"),
                "SEC1",
            ),
            (
                format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
                "valid",
            ),
            (
                format!("-----BEGIN PRIVATE KEY-----\n{body}!\n-----END PRIVATE KEY-----\n"),
                "base64",
            ),
            (
                format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"),
                "public key",
            ),
            (body.to_owned(), "no such block"),
        ] {
            let message = SigningKey::from_pem(pem.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains(body), "{message}");
        }
    }
}
