//! HS256 by hand: decode and verify the tokens the server issues, and
//! forge others (any header, claims, algorithm or key) for it to refuse or
//! accept, without the JWT code under test.

use super::server::TEST_KEY;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Sha256, Sha384, Sha512};

/// Seconds since the epoch, as the server counts them.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text)
        .unwrap_or_else(|e| panic!("{text:?} is unpadded base64url: {e}"))
}

/// The HMAC algorithms a forged token can be signed with.
#[derive(Clone, Copy)]
pub(crate) enum Hs {
    S256,
    S384,
    S512,
}

pub(crate) fn mac(alg: Hs, key: &[u8], input: &[u8]) -> Vec<u8> {
    match alg {
        Hs::S256 => {
            let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }
        Hs::S384 => {
            let mut m = Hmac::<Sha384>::new_from_slice(key).expect("HMAC takes any key");
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }
        Hs::S512 => {
            let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }
    }
}

/// A JWT of the given header and claims texts (used verbatim, so tests can
/// forge any shape), signed with `alg` and `key`.
pub(crate) fn sign_with(alg: Hs, key: &[u8], header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let signature = mac(alg, key, input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// The header PyJWT writes for HS256.
pub(crate) const HS256_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// A well-formed token as PyJWT would mint it with the test key.
pub(crate) fn sign(claims: &str) -> String {
    sign_with(Hs::S256, TEST_KEY, HS256_HEADER, claims)
}

/// Checks `token`'s HS256 signature with `key` ourselves and returns its
/// header and claims.
#[track_caller]
pub(crate) fn decode_verified(token: &str, key: &[u8]) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "three segments in {token:?}");
    let input = format!("{}.{}", parts[0], parts[1]);
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    m.update(input.as_bytes());
    m.verify_slice(&unb64(parts[2]))
        .expect("the signature is HS256 with the expected key");
    let header = serde_json::from_slice(&unb64(parts[0])).expect("header is JSON");
    let claims = serde_json::from_slice(&unb64(parts[1])).expect("claims are JSON");
    (header, claims)
}

/// The claims of a token the test key signed (signature checked).
#[track_caller]
pub(crate) fn token_claims(token: &str) -> Value {
    decode_verified(token, TEST_KEY).1
}
