//! Property tests of the parsers that read what clients send: the `/token`
//! form (urlencoded and multipart), the `Authorization` header and the JWT.
//! Arbitrary input never panics, valid input round-trips (a multipart form
//! to what its urlencoded twin gives), and every kind of tampering is
//! refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use password_bearer::bearer::bearer_token;
use password_bearer::error::ApiError;
use password_bearer::form::{parse_token_body, parse_token_form};
use password_bearer::token::{self, SecretKey, TokenError, MAX_TOKEN_LEN};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::Value;
use sha2::Sha256;

/// The key every token here is issued or signed with.
const KEY: &[u8] = b"property-tests-key-0123456789-abcdefghijklmnop";
/// Another valid key, which must refuse them all.
const OTHER_KEY: &[u8] = b"property-tests-key-0123456789-abcdefghijklmnoq";
/// A fixed "now": tokens issued at it are valid at it.
const NOW: i64 = 1_800_000_000;
/// `{"alg":"HS256","typ":"JWT"}`, the header of every token we issue.
const HS256_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
/// The base64url alphabet, the dot and padding: what a token is made of.
const TOKEN_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=";

fn key() -> SecretKey {
    SecretKey::new(KEY).expect("the test key is long enough")
}

fn other_key() -> SecretKey {
    SecretKey::new(OTHER_KEY).expect("the test key is long enough")
}

/// A compact JWS of `header` and `payload` bytes, HS256-signed with [`KEY`]:
/// tokens our `issue` would never mint, that still pass the signature check.
fn sign(header: &[u8], payload: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).expect("HMAC takes any key");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Modest case counts keep the whole file to a few seconds unoptimised. No
/// failure file is written: a failure prints its minimal input, which
/// belongs in a unit test of the parser.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Non-empty strings of any Unicode scalar values.
fn non_empty_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 1..24).prop_map(String::from_iter)
}

/// A `sub` claim: any Unicode, short enough for the token to stay well
/// under [`MAX_TOKEN_LEN`] even with every character JSON-escaped.
fn sub() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..64).prop_map(String::from_iter)
}

/// Text that looks like a token: base64url characters, dots, padding.
fn tokenish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKEN_CHARS.as_bytes()), 0..200)
        .prop_map(|bytes| String::from_utf8(bytes).expect("ASCII"))
}

/// Form-looking bodies: field names, `=`, `&`, `+` and percent escapes.
fn formish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(&b"username"[..]),
        Just(&b"password"[..]),
        Just(&b"grant_type"[..]),
        Just(&b"scope"[..]),
        Just(&b"client_id"[..]),
        Just(&b"client_secret"[..]),
        Just(&b"="[..]),
        Just(&b"&"[..]),
        Just(&b"+"[..]),
        Just(&b"%"[..]),
        Just(&b"%FF"[..]),
        Just(&b"%2"[..]),
        Just(&b"%C3%A9"[..]),
        Just(&b"password"[..]),
        Just(&b"x"[..]),
        Just(&b"\xff"[..]),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

/// The `/token` fields, and one that is ignored.
const FIELD_NAMES: [&str; 7] = [
    "grant_type",
    "username",
    "password",
    "scope",
    "client_id",
    "client_secret",
    "other",
];

/// Multipart-looking bodies for boundary `B`: delimiters, line ends of
/// every kind, header lines, parameters, quotes and escapes.
fn multipartish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(&b"--B"[..]),
        Just(&b"--B--"[..]),
        Just(&b"--"[..]),
        Just(&b"\r\n"[..]),
        Just(&b"\r"[..]),
        Just(&b"\n"[..]),
        Just(&b" "[..]),
        Just(&b"\t"[..]),
        Just(&b"Content-Disposition: form-data"[..]),
        Just(&b"content-disposition:"[..]),
        Just(&b"Content-Type: text/plain"[..]),
        Just(&b"; name="[..]),
        Just(&b"; filename="[..]),
        Just(&b"\"username\""[..]),
        Just(&b"password"[..]),
        Just(&b"\""[..]),
        Just(&b"\\"[..]),
        Just(&b";"[..]),
        Just(&b":"[..]),
        Just(&b"="[..]),
        Just(&b"C:\\x"[..]),
        Just(&b"secret"[..]),
        Just(&b"\xff"[..]),
    ];
    prop::collection::vec(piece, 0..48).prop_map(|pieces| pieces.concat())
}

/// `Content-Type` values a multipart body may come with: good, odd, bad.
fn multipart_content_type() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"multipart/form-data; boundary=B".to_vec()),
        Just(b"Multipart/Form-Data; boundary=\"B\"".to_vec()),
        Just(b"multipart/form-data".to_vec()),
        Just(b"multipart/form-data; boundary=".to_vec()),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(|params| {
            let mut value = b"multipart/form-data;".to_vec();
            value.extend(params);
            value
        }),
    ]
}

/// One multipart part's way of writing its `Content-Disposition` name.
#[derive(Debug, Clone, Copy)]
enum NameStyle {
    Quoted,
    Bare,
    Spaced,
}

/// A multipart encoding of `fields` with `boundary`, in one of the ways
/// clients write it; `extras` adds a preamble, transport padding, part
/// headers we ignore, a file for a field we ignore and an epilogue.
fn multipart_body(
    boundary: &str,
    fields: &[(usize, String)],
    styles: &[NameStyle],
    extras: bool,
) -> Vec<u8> {
    let padding = if extras { " \t" } else { "" };
    let mut body = String::new();
    if extras {
        body.push_str("preamble\r\n");
    }
    for (i, (field, value)) in fields.iter().enumerate() {
        let name = FIELD_NAMES[*field];
        let name = match styles[i % styles.len()] {
            NameStyle::Quoted => format!("name=\"{name}\""),
            NameStyle::Bare => format!("name={name}"),
            NameStyle::Spaced => format!("NAME = \"{name}\" "),
        };
        body.push_str(&format!("--{boundary}{padding}\r\n"));
        body.push_str(&format!("Content-Disposition: form-data; {name}\r\n"));
        if extras {
            body.push_str("Content-Type: text/plain; charset=utf-8\r\n");
        }
        body.push_str(&format!("\r\n{value}\r\n"));
    }
    if extras {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\n\r\n\r\n--{boundary}x\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--"));
    if extras {
        body.push_str("\r\nepilogue\r\n");
    }
    body.into_bytes()
}

/// The urlencoded twin of a field list.
fn urlencoded_body(fields: &[(usize, String)]) -> Vec<u8> {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (field, value) in fields {
        serializer.append_pair(FIELD_NAMES[*field], value);
    }
    serializer.finish().into_bytes()
}

/// Boundaries as clients make them, from RFC 2046's characters.
fn boundary() -> impl Strategy<Value = String> {
    "[0-9A-Za-z'()+_,./:=?-]{0,69}[0-9A-Za-z]"
}

/// Field values: any Unicode (CR, LF and dashes included), often empty.
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        4 => prop::collection::vec(any::<char>(), 1..16).prop_map(String::from_iter),
        2 => prop::collection::vec(prop::sample::select(&['\r', '\n', '-', ' ', '"', 'a'][..]), 1..12)
            .prop_map(String::from_iter),
    ]
}

/// Whether no value holds the delimiter: a sender picks its boundary so.
fn delimiter_free(boundary: &str, fields: &[(usize, String)]) -> bool {
    let delimiter = format!("\r\n--{boundary}");
    fields.iter().all(|(_, value)| !value.contains(&delimiter))
}

const MULTIPART: &str = "multipart/form-data; boundary=";
const URLENCODED: &[u8] = b"application/x-www-form-urlencoded";

/// JSON that is not an object: null, booleans, numbers, strings, arrays
/// (nested, and of the `[sub, iat, exp]` shape that a derived struct would
/// read by position), with JSON white space around.
fn non_object_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_map(Value::Array)
    });
    let positional = (sub(), any::<i64>()).prop_map(|(sub, iat)| {
        serde_json::json!([sub, iat, NOW + 600]) // sub, iat, exp in field order
    });
    let json = prop_oneof![value, positional].prop_map(|v| v.to_string());
    let blank = "[ \t\r\n]{0,3}";
    (blank, json, blank).prop_map(|(before, json, after)| format!("{before}{json}{after}"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn form_never_panics_on_any_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_token_form(&body);
    }

    #[test]
    fn form_never_panics_on_form_like_bytes(body in formish()) {
        if let Ok(form) = parse_token_form(&body) {
            prop_assert!(!form.username.is_empty() && !form.password.is_empty());
            prop_assert!(form.scopes.iter().all(|s| !s.is_empty() && !s.contains(' ')));
        }
    }

    #[test]
    fn form_round_trips_any_unicode(
        username in non_empty_text(),
        password in non_empty_text(),
        scopes in prop::collection::vec("[^ ]{1,8}", 0..4),
        client_id in prop::option::of(non_empty_text()),
        grant_type in any::<bool>(),
    ) {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        if grant_type {
            serializer.append_pair("grant_type", "password");
        }
        serializer.append_pair("username", &username);
        serializer.append_pair("password", &password);
        if !scopes.is_empty() {
            serializer.append_pair("scope", &scopes.join(" "));
        }
        if let Some(client_id) = &client_id {
            serializer.append_pair("client_id", client_id);
        }
        let body = serializer.finish();
        let form = parse_token_form(body.as_bytes());
        prop_assert!(form.is_ok(), "{body:?} refused: {form:?}");
        let form = form.expect("checked above");
        prop_assert_eq!(form.username, username);
        prop_assert_eq!(form.password, password);
        prop_assert_eq!(form.scopes, scopes);
        prop_assert_eq!(form.client_id, client_id);
        prop_assert_eq!(form.grant_type.is_some(), grant_type);
    }

    #[test]
    fn multipart_never_panics_on_any_bytes(
        content_type in multipart_content_type(),
        body in prop_oneof![prop::collection::vec(any::<u8>(), 0..512), multipartish()],
    ) {
        // Every body gets an answer: a form, a 422 or a 400.
        if let Ok(form) = parse_token_body(Some(&content_type), &body, false) {
            prop_assert!(!form.username.is_empty() && !form.password.is_empty());
            prop_assert!(form.scopes.iter().all(|s| !s.is_empty() && !s.contains(' ')));
        }
    }

    #[test]
    fn multipart_answers_as_its_urlencoded_twin(
        boundary in boundary(),
        fields in prop::collection::vec((0usize..FIELD_NAMES.len(), field_value()), 0..8),
        styles in prop::collection::vec(
            prop_oneof![Just(NameStyle::Quoted), Just(NameStyle::Bare), Just(NameStyle::Spaced)],
            1..4,
        ),
        extras in any::<bool>(),
    ) {
        // Missing, empty, repeated and unknown fields, bad grant types: the
        // same form or the same errors, whichever the encoding.
        prop_assume!(delimiter_free(&boundary, &fields));
        let multipart = multipart_body(&boundary, &fields, &styles, extras);
        let content_type = format!("{MULTIPART}\"{boundary}\"");
        prop_assert_eq!(
            parse_token_body(Some(content_type.as_bytes()), &multipart, false),
            parse_token_body(Some(URLENCODED), &urlencoded_body(&fields), false),
            "{}", String::from_utf8_lossy(&multipart)
        );
    }

    #[test]
    fn multipart_round_trips_any_unicode(
        boundary in boundary(),
        username in non_empty_text(),
        password in prop::collection::vec(prop_oneof![any::<char>(), Just('\r'), Just('\n'), Just('-')], 1..24)
            .prop_map(String::from_iter),
        scopes in prop::collection::vec("[^ ]{1,8}", 0..4),
        client_id in prop::option::of(non_empty_text()),
        grant_type in any::<bool>(),
        extras in any::<bool>(),
    ) {
        let mut fields = vec![(1, username.clone()), (2, password.clone())];
        if grant_type {
            fields.insert(0, (0, "password".to_owned()));
        }
        if !scopes.is_empty() {
            fields.push((3, scopes.join(" ")));
        }
        if let Some(client_id) = &client_id {
            fields.push((4, client_id.clone()));
        }
        prop_assume!(delimiter_free(&boundary, &fields));
        let multipart = multipart_body(&boundary, &fields, &[NameStyle::Quoted], extras);
        let content_type = format!("{MULTIPART}{boundary}");
        let form = parse_token_body(Some(content_type.as_bytes()), &multipart, false);
        prop_assert_eq!(&form, &parse_token_body(Some(URLENCODED), &urlencoded_body(&fields), false));
        let form = form.expect("checked above");
        prop_assert_eq!(form.username, username);
        prop_assert_eq!(form.password, password);
        prop_assert_eq!(form.scopes, scopes);
        prop_assert_eq!(form.client_id, client_id);
        prop_assert_eq!(form.grant_type.is_some(), grant_type);
    }

    #[test]
    fn bearer_never_panics_on_any_bytes(header in prop::option::of(prop::collection::vec(any::<u8>(), 0..128))) {
        if let Ok(token) = bearer_token(header.as_deref()) {
            // Whatever is accepted is a printable-ASCII token after `Bearer `.
            let header = header.as_deref().expect("no header is never a token");
            prop_assert!(header[..7].eq_ignore_ascii_case(b"bearer "));
            prop_assert!(!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()));
        }
    }

    #[test]
    fn bearer_reads_the_token_of_any_spelling(
        upper in prop::collection::vec(any::<bool>(), 6),
        gap in "[ ][ \t]{0,3}",
        after in "[ \t]{0,3}",
        token in "[!-~]{1,64}",
    ) {
        let scheme: String = "bearer"
            .chars()
            .zip(&upper)
            .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
            .collect();
        let header = format!("{scheme}{gap}{token}{after}");
        prop_assert_eq!(bearer_token(Some(header.as_bytes())), Ok(token.as_str()));
    }

    #[test]
    fn bearer_refuses_other_schemes(scheme in "[A-Za-z]{1,10}", rest in ".{0,20}") {
        prop_assume!(!scheme.eq_ignore_ascii_case("bearer"));
        let header = format!("{scheme} {rest}");
        prop_assert_eq!(bearer_token(Some(header.as_bytes())), Err(ApiError::NotAuthenticated));
    }

    #[test]
    fn verify_never_panics_on_any_string(text in ".{0,300}", leeway in 0i64..=60) {
        prop_assert!(token::verify(&key(), &text, NOW, leeway).is_err());
    }

    #[test]
    fn verify_never_panics_on_three_segments(
        header in "[A-Za-z0-9_=-]{0,80}",
        payload in "[A-Za-z0-9_=-]{0,120}",
        signature in "[A-Za-z0-9_=-]{0,50}",
        now in any::<i64>(),
    ) {
        let candidate = format!("{header}.{payload}.{signature}");
        prop_assert!(token::verify(&key(), &candidate, now, 0).is_err());
    }

    #[test]
    fn verify_never_panics_on_signed_arbitrary_bytes(
        header in prop::collection::vec(any::<u8>(), 0..64),
        payload in prop::collection::vec(any::<u8>(), 0..128),
        now in any::<i64>(),
    ) {
        // Past the signature, the JSON readers see arbitrary bytes.
        let _ = token::verify(&key(), &sign(&header, &payload), now, 60);
    }

    #[test]
    fn issued_tokens_verify_with_their_key_only(
        sub in sub(),
        now in -(1i64 << 40)..(1i64 << 40),
        ttl in 1i64..(1 << 40),
    ) {
        let issued = token::issue(&key(), &sub, now, ttl);
        let claims = token::verify(&key(), &issued, now, 0);
        prop_assert!(claims.is_ok(), "{issued} refused: {claims:?}");
        let claims = claims.expect("checked above");
        prop_assert_eq!(&claims.sub, &sub);
        prop_assert_eq!((claims.iat, claims.exp, claims.nbf), (Some(now), now + ttl, None));
        // Still valid one second before expiry, dead at it.
        prop_assert!(token::verify(&key(), &issued, now + ttl - 1, 0).is_ok());
        prop_assert_eq!(token::verify(&key(), &issued, now + ttl, 0), Err(TokenError::Expired));
        prop_assert_eq!(
            token::verify(&other_key(), &issued, now, 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn any_single_character_change_is_refused(
        sub in sub(),
        position in any::<prop::sample::Index>(),
        replacement in prop_oneof![
            prop::sample::select(TOKEN_CHARS.chars().collect::<Vec<_>>()),
            any::<char>(),
        ],
    ) {
        let issued = token::issue(&key(), &sub, NOW, 600);
        let mut chars: Vec<char> = issued.chars().collect();
        let i = position.index(chars.len());
        prop_assume!(chars[i] != replacement);
        chars[i] = replacement;
        let tampered: String = chars.into_iter().collect();
        let result = token::verify(&key(), &tampered, NOW, 0);
        prop_assert!(result.is_err(), "changing char {i} gives {tampered}, accepted: {result:?}");
    }

    #[test]
    fn another_last_character_of_a_segment_is_refused(
        sub in sub(),
        segment in 0usize..3,
        replacement in prop::sample::select(TOKEN_CHARS.as_bytes()),
    ) {
        // A segment's last character carries unused low bits: a lenient
        // decoder reads several spellings as the same bytes, which would
        // let one signature stand for many tokens.
        let issued = token::issue(&key(), &sub, NOW, 600);
        let mut segments: Vec<String> = issued.split('.').map(str::to_owned).collect();
        let last = segments[segment].pop().expect("segments are not empty");
        prop_assume!(last != char::from(replacement));
        segments[segment].push(char::from(replacement));
        let tampered = segments.join(".");
        prop_assert!(token::verify(&key(), &tampered, NOW, 0).is_err(), "{tampered} accepted");
    }

    #[test]
    fn any_deleted_or_inserted_character_is_refused(
        sub in sub(),
        position in any::<prop::sample::Index>(),
        inserted in prop::option::of(prop::sample::select(TOKEN_CHARS.chars().collect::<Vec<_>>())),
    ) {
        let issued = token::issue(&key(), &sub, NOW, 600);
        let mut chars: Vec<char> = issued.chars().collect();
        match inserted {
            Some(c) => chars.insert(position.index(chars.len() + 1), c),
            None => {
                chars.remove(position.index(chars.len()));
            }
        }
        let tampered: String = chars.into_iter().collect();
        prop_assert!(token::verify(&key(), &tampered, NOW, 0).is_err(), "{tampered} accepted");
    }

    #[test]
    fn wrong_segment_counts_are_refused(
        sub in sub(),
        picks in prop::collection::vec(0usize..3, 0..7),
        extra in "[A-Za-z0-9_-]{0,8}",
    ) {
        prop_assume!(picks.len() != 3);
        let issued = token::issue(&key(), &sub, NOW, 600);
        let segments: Vec<&str> = issued.split('.').collect();
        let mut parts: Vec<&str> = picks.iter().map(|&i| segments[i]).collect();
        if picks.is_empty() {
            parts.push(&extra);
        }
        let candidate = parts.join(".");
        prop_assert!(token::verify(&key(), &candidate, NOW, 0).is_err(), "{candidate} accepted");
        // The valid token with a fourth segment, empty or not.
        let longer = format!("{issued}.{extra}");
        prop_assert_eq!(token::verify(&key(), &longer, NOW, 0), Err(TokenError::Malformed));
    }

    #[test]
    fn padding_is_refused(sub in sub(), segment in 0usize..3, pads in 1usize..4) {
        let issued = token::issue(&key(), &sub, NOW, 600);
        let mut segments: Vec<String> = issued.split('.').map(str::to_owned).collect();
        segments[segment].push_str(&"=".repeat(pads));
        let padded = segments.join(".");
        prop_assert!(token::verify(&key(), &padded, NOW, 0).is_err(), "{padded} accepted");
    }

    #[test]
    fn the_length_limit_is_exact(len in (MAX_TOKEN_LEN - 400)..(MAX_TOKEN_LEN + 400)) {
        // A `sub` of ASCII letters: each byte of it is 4/3 bytes of token.
        let fixed = token::issue(&key(), "", NOW, 600).len();
        let sub = "a".repeat((len.saturating_sub(fixed)) * 3 / 4);
        let issued = token::issue(&key(), &sub, NOW, 600);
        let result = token::verify(&key(), &issued, NOW, 0);
        if issued.len() > MAX_TOKEN_LEN {
            prop_assert_eq!(result, Err(TokenError::TooLong));
        } else {
            prop_assert!(result.is_ok(), "{} bytes refused: {result:?}", issued.len());
        }
    }

    #[test]
    fn anything_over_the_length_limit_is_refused(extra in 1usize..2000, filler in tokenish()) {
        let text = format!("{filler}{}", "A".repeat(MAX_TOKEN_LEN + extra));
        prop_assert_eq!(token::verify(&key(), &text, NOW, 0), Err(TokenError::TooLong));
    }

    #[test]
    fn signed_non_object_claims_are_refused(claims in non_object_json()) {
        let forged = sign(HS256_HEADER.as_bytes(), claims.as_bytes());
        prop_assert_eq!(
            token::verify(&key(), &forged, NOW, 0),
            Err(TokenError::InvalidClaims),
            "claims {}", claims
        );
    }

    #[test]
    fn signed_non_object_headers_are_refused(header in non_object_json()) {
        let claims = format!(r#"{{"sub":"johndoe","exp":{}}}"#, NOW + 600);
        let forged = sign(header.as_bytes(), claims.as_bytes());
        prop_assert!(token::verify(&key(), &forged, NOW, 0).is_err(), "header {header} accepted");
    }
}
