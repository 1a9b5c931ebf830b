//! The JWT decoder on arbitrary strings: it must never panic. The input is
//! tried as a whole token, and as the claims of a token signed with the
//! key, so that the fuzzer also reaches the checks behind the signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use password_bearer::token::{issue, verify, SecretKey};

const KEY: &[u8] = b"fuzzing-key-0123456789abcdef-0123456789";

const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let key = SecretKey::new(KEY).expect("the key is long enough");
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // As a whole token.
    let _ = verify(&key, text, NOW, 0);
    // As the claims of a correctly signed token: an accepted one must have
    // the `sub` and `exp` the rules require.
    if let Ok(claims) = verify(&key, &sign(KEY, text), NOW, 60) {
        assert!(claims.exp > NOW - 60);
        let again = issue(&key, &claims.sub, NOW, 60);
        assert_eq!(verify(&key, &again, NOW, 0).map(|c| c.sub), Ok(claims.sub));
    }
});

/// An HS256 token with `claims` as its payload, signed with `key`.
fn sign(key: &[u8], claims: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}
