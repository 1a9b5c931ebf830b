//! The `/token` body reader on multipart bodies of arbitrary bytes: it must
//! never panic, and whatever it accepts is a form whose values are the
//! body's own bytes (no decoding) with a non-empty username and password.
//! The first byte picks the `Content-Type`; with 3, the input's first line
//! is the `Content-Type` itself, so the boundary parsing is fuzzed too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use password_bearer::form::parse_token_body;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (content_type, body): (&[u8], &[u8]) = match pick % 4 {
        0 => (b"multipart/form-data; boundary=B", rest),
        1 => (b"Multipart/Form-Data; boundary=\"b o\"", rest),
        2 => (b"multipart/form-data; boundary=--x", rest),
        _ => match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        },
    };
    if let Ok(form) = parse_token_body(Some(content_type), body, false) {
        assert!(!form.username.is_empty() && !form.password.is_empty());
        for value in [&form.username, &form.password] {
            // Valid UTF-8 is taken as it is: the value stands in the body.
            if !value.contains('\u{FFFD}') {
                let bytes = value.as_bytes();
                assert!(body.windows(bytes.len()).any(|w| w == bytes));
            }
        }
    }
});
