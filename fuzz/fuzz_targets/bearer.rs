//! The `Authorization` header parser on arbitrary bytes: it must never
//! panic, and a token it returns is non-empty, trimmed, and part of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use password_bearer::bearer::bearer_token;

fuzz_target!(|header: &[u8]| {
    if let Ok(token) = bearer_token(Some(header)) {
        assert!(!token.is_empty());
        assert_eq!(token, token.trim_matches(|c: char| c.is_ascii_whitespace()));
        assert!(header.windows(token.len()).any(|w| w == token.as_bytes()));
    }
});
