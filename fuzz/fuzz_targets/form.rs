//! The `/token` form parser on arbitrary bytes: it must never panic, and an
//! accepted form always has a non-empty username and password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use password_bearer::form::parse_token_form;

fuzz_target!(|body: &[u8]| {
    if let Ok(form) = parse_token_form(body) {
        assert!(!form.username.is_empty() && !form.password.is_empty());
    }
});
