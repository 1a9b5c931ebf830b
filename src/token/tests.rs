use super::*;
use sha2::Sha512;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef-test-key";
const NOW: i64 = 1_700_000_000;

// Vectors made once with PyJWT 2.15.1:
//   python3 -c 'import jwt; k=b"0123456789abcdef0123456789abcdef-test-key";
//     print(jwt.encode({"sub":"johndoe","iat":1700000000,"exp":1700001800}, k, algorithm="HS256"))'
// and likewise with the claims in the comments below.

/// `{"sub":"johndoe","iat":1700000000,"exp":1700001800}`
const PYJWT_FULL: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJqb2huZG9lIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDE4MDB9.9jWe6DHt6XX05ipjqSqmzWBnXVVf6hk_XvB6puvW1Hk";
/// `{"sub":"johndoe","exp":4102444800}`
const PYJWT_SUB_EXP: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJqb2huZG9lIiwiZXhwIjo0MTAyNDQ0ODAwfQ.F_j_79a4GTUlddYMXctjB86C7w8llLezs30p2RyFdXQ";
/// `{"sub":"alice","exp":4102444800,"iat":1699999000,"nbf":1699999000,
/// "scope":"me items","jti":"abc123","aud":"x"}`
const PYJWT_EXTRA: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMCwiaWF0IjoxNjk5OTk5MDAwLCJuYmYiOjE2OTk5OTkwMDAsInNjb3BlIjoibWUgaXRlbXMiLCJqdGkiOiJhYmMxMjMiLCJhdWQiOiJ4In0.vZ2N97RoOH_aQ2dZqEtlu44F5CYhgoQcsqVwKcsM_3w";

fn key() -> SecretKey {
    SecretKey::new(KEY).expect("test key is long enough")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs already-encoded segments with HS256 under the test key, so the
/// rule under test is reached past the signature check.
fn sign_segments(header_b64: &str, payload_b64: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(KEY).expect("any key length");
    mac.update(format!("{header_b64}.{payload_b64}").as_bytes());
    let sig = b64(&mac.finalize().into_bytes());
    format!("{header_b64}.{payload_b64}.{sig}")
}

fn sign(header_json: &str, payload_json: &str) -> String {
    sign_segments(&b64(header_json.as_bytes()), &b64(payload_json.as_bytes()))
}

const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn claims_err(payload_json: &str) -> TokenError {
    verify(&key(), &sign(HS256, payload_json), NOW, 0).expect_err("claims must be refused")
}

fn header_err(header_json: &str) -> TokenError {
    let payload = r#"{"sub":"johndoe","exp":1700001800}"#;
    verify(&key(), &sign(header_json, payload), NOW, 0).expect_err("header must be refused")
}

#[test]
fn header_constant_is_pyjwt_header() {
    assert_eq!(HEADER_B64, b64(HS256.as_bytes()));
}

#[test]
fn round_trip() {
    let token = issue(&key(), "johndoe", NOW, 1800);
    let claims = verify(&key(), &token, NOW + 10, 0).expect("fresh token verifies");
    assert_eq!(
        claims,
        Claims {
            sub: "johndoe".into(),
            iat: Some(NOW),
            exp: NOW + 1800,
            nbf: None,
            scope: None,
            jti: None,
            sid: None,
            iss: None,
            aud: vec![],
            client_id: None,
            client_credentials: false,
        }
    );
    let scoped = issue_scoped(&key(), "johndoe", Some("me items"), NOW, 60);
    let claims = verify(&key(), &scoped, NOW, 0).unwrap();
    assert_eq!(claims.scopes().collect::<Vec<_>>(), ["me", "items"]);
    assert_eq!(
        claims_err(r#"{"sub":"a","exp":4102444800,"scope":["me"]}"#),
        TokenError::InvalidClaims
    );
    assert_eq!(
        claims_err(r#"{"sub":"a","exp":4102444800,"scope":null}"#),
        TokenError::InvalidClaims
    );
}

#[test]
fn issue_matches_pyjwt_byte_for_byte() {
    assert_eq!(issue(&key(), "johndoe", NOW, 1800), PYJWT_FULL);
}

#[test]
fn accepts_pyjwt_tokens() {
    let c = verify(&key(), PYJWT_SUB_EXP, NOW, 0).expect("sub/exp token verifies");
    assert_eq!(
        c,
        Claims {
            sub: "johndoe".into(),
            iat: None,
            exp: 4_102_444_800,
            nbf: None,
            scope: None,
            jti: None,
            sid: None,
            iss: None,
            aud: vec![],
            client_id: None,
            client_credentials: false,
        }
    );
    let c = verify(&key(), PYJWT_EXTRA, NOW, 0).expect("token with extra claims verifies");
    assert_eq!(
        c,
        Claims {
            sub: "alice".into(),
            iat: Some(1_699_999_000),
            exp: 4_102_444_800,
            nbf: Some(1_699_999_000),
            scope: Some("me items".into()),
            jti: Some("abc123".into()),
            sid: None,
            iss: None,
            // Read with the `signing` feature only, as before it.
            aud: if cfg!(feature = "signing") {
                vec!["x".into()]
            } else {
                vec![]
            },
            client_id: None,
            client_credentials: false,
        }
    );
}

fn other_key() -> SecretKey {
    SecretKey::new(b"another key for rotation tests, 32+ bytes").unwrap()
}

#[test]
fn session_tokens_carry_kid_jti_sid_and_pyjwt_header_order() {
    let token = issue_in_session(&key(), "johndoe", Some("me"), ("j1", "s1"), NOW, 60);
    let header = URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(header).unwrap(),
        format!(r#"{{"alg":"HS256","kid":"{}","typ":"JWT"}}"#, key().kid())
    );
    let claims = verify(&key(), &token, NOW, 0).unwrap();
    assert_eq!(
        (claims.jti.as_deref(), claims.sid.as_deref()),
        (Some("j1"), Some("s1"))
    );
    assert_eq!(key().kid().len(), 11);
    assert_ne!(key().kid(), other_key().kid());
    assert!(!format!("{:?}", key()).contains("test-key"));
}

#[test]
fn every_key_verifies_and_a_kid_must_name_the_signer() {
    let keys = [other_key(), key()];
    // Signed by the old key, with or without a kid: still accepted.
    let plain = issue(&key(), "johndoe", NOW, 60);
    let with_kid = issue_in_session(&key(), "johndoe", None, ("j", "s"), NOW, 60);
    assert!(verify_any(&keys, &plain, NOW, 0).is_ok());
    assert!(verify_any(&keys, &with_kid, NOW, 0).is_ok());
    assert!(verify_any(&keys, PYJWT_FULL, NOW, 0).is_ok());
    // A key no longer listed: refused.
    assert_eq!(
        verify_any(&[other_key()], &with_kid, NOW, 0),
        Err(TokenError::BadSignature)
    );
    // A kid naming a key other than the one that signed, or no key.
    let lying = format!(
        r#"{{"alg":"HS256","kid":"{}","typ":"JWT"}}"#,
        other_key().kid()
    );
    let token = sign(&lying, r#"{"sub":"a","exp":4102444800}"#);
    assert_eq!(
        verify_any(&keys, &token, NOW, 0),
        Err(TokenError::UnknownKey)
    );
    let unknown = sign(
        r#"{"alg":"HS256","kid":"nobody","typ":"JWT"}"#,
        r#"{"sub":"a","exp":4102444800}"#,
    );
    assert_eq!(
        verify_any(&keys, &unknown, NOW, 0),
        Err(TokenError::UnknownKey)
    );
    let not_text = sign(
        r#"{"alg":"HS256","kid":7}"#,
        r#"{"sub":"a","exp":4102444800}"#,
    );
    assert_eq!(
        verify_any(&keys, &not_text, NOW, 0),
        Err(TokenError::Malformed)
    );
}

#[test]
fn too_long() {
    let token = "a".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(verify(&key(), &token, NOW, 0), Err(TokenError::TooLong));
    // A valid token padded past the limit is refused on length alone.
    let long_sub = "x".repeat(MAX_TOKEN_LEN);
    let token = issue(&key(), &long_sub, NOW, 60);
    assert_eq!(verify(&key(), &token, NOW, 0), Err(TokenError::TooLong));
}

#[test]
fn alg_none_with_empty_signature() {
    let h = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let p = b64(br#"{"sub":"johndoe","exp":4102444800}"#);
    let token = format!("{h}.{p}.");
    assert_eq!(
        verify(&key(), &token, NOW, 0),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn hs512_signed_with_hs512() {
    let h = b64(br#"{"alg":"HS512","typ":"JWT"}"#);
    let p = b64(br#"{"sub":"johndoe","exp":4102444800}"#);
    let mut mac = Hmac::<Sha512>::new_from_slice(KEY).expect("any key length");
    mac.update(format!("{h}.{p}").as_bytes());
    let token = format!("{h}.{p}.{}", b64(&mac.finalize().into_bytes()));
    // 64-byte signature: refused before the header is even read.
    assert_eq!(
        verify(&key(), &token, NOW, 0),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn wrong_alg_under_a_valid_hs256_mac() {
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"HS512","typ":"JWT"}"#,
        r#"{"alg":"RS256","typ":"JWT"}"#,
        r#"{"alg":"ES256","typ":"JWT"}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"alg":null}"#,
        r#"{"alg":256}"#,
        r#"{"typ":"JWT"}"#,
    ] {
        assert_eq!(header_err(header), TokenError::Algorithm, "{header}");
    }
}

#[test]
fn forbidden_header_parameters() {
    for header in [
        r#"{"alg":"HS256","jku":"https://evil.example/jwks.json"}"#,
        r#"{"alg":"HS256","jwk":{"kty":"oct","k":"AAAA"}}"#,
        r#"{"alg":"HS256","x5u":"https://evil.example/cert.pem"}"#,
        r#"{"alg":"HS256","x5c":["MIIB"]}"#,
        r#"{"alg":"HS256","crit":["exp"]}"#,
        r#"{"alg":"HS256","jku":null}"#,
    ] {
        assert_eq!(header_err(header), TokenError::ForbiddenHeader, "{header}");
    }
}

#[test]
fn header_not_an_object_or_repeated() {
    for header in [
        r#"["HS256"]"#,
        r#"["HS256",null,null,null,null,null]"#,
        r#""HS256""#,
        "null",
        "{",
        r#"{"alg":"HS256"} x"#,
        r#"{"alg":"none","alg":"HS256"}"#,
        r#"{"alg":"HS256","alg":"HS256"}"#,
    ] {
        assert_eq!(header_err(header), TokenError::Malformed, "{header}");
    }
}

#[test]
fn header_may_omit_typ_and_carry_its_keys_kid() {
    let own = format!(r#"{{"kid":"{}","alg":"HS256"}}"#, key().kid());
    let token = sign(&own, r#"{"sub":"a","exp":4102444800}"#);
    assert!(verify(&key(), &token, NOW, 0).is_ok());
    // Any other kid is a key we do not know.
    let token = sign(
        r#"{"kid":"1","alg":"HS256"}"#,
        r#"{"sub":"a","exp":4102444800}"#,
    );
    assert_eq!(verify(&key(), &token, NOW, 0), Err(TokenError::UnknownKey));
}

#[test]
fn padding_is_refused() {
    // The header is 27 bytes, a multiple of 3, so it never needs
    // padding; pad the payload instead. The MAC covers the padded text,
    // so only the encoding rule can refuse it.
    let p = b64(br#"{"sub":"a","exp":4102444800}"#);
    let pad = "=".repeat((4 - p.len() % 4) % 4);
    assert!(!pad.is_empty());
    let token = sign_segments(HEADER_B64, &format!("{p}{pad}"));
    assert_eq!(verify(&key(), &token, NOW, 0), Err(TokenError::Malformed));
    // Padding on the signature, too.
    let good = issue(&key(), "johndoe", NOW, 60);
    assert_eq!(
        verify(&key(), &format!("{good}="), NOW, 0),
        Err(TokenError::Malformed)
    );
}

#[test]
fn non_canonical_base64_is_refused() {
    // The payload's last char carries trailing bits; set one of them.
    // The MAC is over the altered text, so only canonicity can refuse it.
    let p = b64(br#"{"sub":"a","exp":4102444800}"#);
    let last = p.chars().last().expect("non-empty");
    let idx = URL_SAFE_ALPHABET.find(last).expect("alphabet char");
    assert_eq!(
        idx & 0b11,
        0,
        "trailing bits of a canonical encoding are zero"
    );
    let bumped = URL_SAFE_ALPHABET.as_bytes()[idx | 1] as char;
    let p2 = format!("{}{bumped}", &p[..p.len() - 1]);
    assert!(URL_SAFE_NO_PAD.decode(&p2).is_err());
    let token = sign_segments(HEADER_B64, &p2);
    assert_eq!(verify(&key(), &token, NOW, 0), Err(TokenError::Malformed));

    // Same on the signature: 32 bytes = 43 chars, the last has 2 spare bits.
    let good = issue(&key(), "johndoe", NOW, 60);
    let (body, sig) = good.rsplit_once('.').expect("three segments");
    let last = sig.chars().last().expect("non-empty");
    let idx = URL_SAFE_ALPHABET.find(last).expect("alphabet char");
    let bumped = URL_SAFE_ALPHABET.as_bytes()[idx ^ 1] as char;
    let token = format!("{body}.{}{bumped}", &sig[..sig.len() - 1]);
    assert_eq!(verify(&key(), &token, NOW, 0), Err(TokenError::Malformed));
}

const URL_SAFE_ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#[test]
fn standard_alphabet_is_refused() {
    let token = sign_segments(HEADER_B64, "eyJzdWIiOiJhIiwiZXhwIjo0MTAyNDQ0ODAwfQ+/");
    assert_eq!(verify(&key(), &token, NOW, 0), Err(TokenError::Malformed));
}

#[test]
fn wrong_segment_count() {
    let good = issue(&key(), "johndoe", NOW, 60);
    let (two, _) = good.rsplit_once('.').expect("three segments");
    assert_eq!(verify(&key(), two, NOW, 0), Err(TokenError::Malformed));
    assert_eq!(
        verify(&key(), &format!("{good}.x"), NOW, 0),
        Err(TokenError::Malformed)
    );
    assert_eq!(
        verify(&key(), &format!("{good}."), NOW, 0),
        Err(TokenError::Malformed)
    );
    assert_eq!(verify(&key(), "", NOW, 0), Err(TokenError::Malformed));
    assert_eq!(verify(&key(), "..", NOW, 0), Err(TokenError::Malformed));
}

#[test]
fn empty_header_or_payload() {
    let good = issue(&key(), "johndoe", NOW, 60);
    let mut parts = good.split('.');
    let (h, p, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    assert_eq!(
        verify(&key(), &format!(".{p}.{s}"), NOW, 0),
        Err(TokenError::Malformed)
    );
    assert_eq!(
        verify(&key(), &format!("{h}..{s}"), NOW, 0),
        Err(TokenError::Malformed)
    );
    // Even when the MAC over the empty segment is right.
    assert_eq!(
        verify(&key(), &sign_segments(h, ""), NOW, 0),
        Err(TokenError::Malformed)
    );
}

#[test]
fn signature_of_31_bytes() {
    let good = issue(&key(), "johndoe", NOW, 60);
    let (body, sig) = good.rsplit_once('.').expect("three segments");
    let bytes = URL_SAFE_NO_PAD.decode(sig).expect("our signature decodes");
    let token = format!("{body}.{}", b64(&bytes[..31]));
    assert_eq!(
        verify(&key(), &token, NOW, 0),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn tampered_payload() {
    let good = issue(&key(), "johndoe", NOW, 60);
    let mut parts = good.split('.');
    let (h, _, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let p = b64(br#"{"sub":"admin","iat":1700000000,"exp":1700000060}"#);
    assert_eq!(
        verify(&key(), &format!("{h}.{p}.{s}"), NOW, 0),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn foreign_key() {
    let other = SecretKey::new(b"another key, also at least 32 bytes").expect("long enough");
    let token = issue(&other, "johndoe", NOW, 60);
    assert_eq!(
        verify(&key(), &token, NOW, 0),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        verify(&other, PYJWT_SUB_EXP, NOW, 0),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn exp_must_be_an_integer() {
    for payload in [
        r#"{"sub":"a","exp":"4102444800"}"#,
        r#"{"sub":"a","exp":4102444800.5}"#,
        r#"{"sub":"a","exp":1.5}"#,
        r#"{"sub":"a","exp":1e10}"#,
        r#"{"sub":"a","exp":4102444800.0}"#,
        r#"{"sub":"a","exp":null}"#,
        r#"{"sub":"a","exp":true}"#,
        r#"{"sub":"a","exp":9223372036854775808}"#,
        r#"{"sub":"a"}"#,
    ] {
        assert_eq!(claims_err(payload), TokenError::InvalidClaims, "{payload}");
    }
}

#[test]
fn iat_and_nbf_must_be_integers_when_present() {
    for payload in [
        r#"{"sub":"a","exp":4102444800,"iat":"1"}"#,
        r#"{"sub":"a","exp":4102444800,"iat":1.5}"#,
        r#"{"sub":"a","exp":4102444800,"iat":null}"#,
        r#"{"sub":"a","exp":4102444800,"nbf":"1"}"#,
        r#"{"sub":"a","exp":4102444800,"nbf":1e3}"#,
        r#"{"sub":"a","exp":4102444800,"nbf":null}"#,
    ] {
        assert_eq!(claims_err(payload), TokenError::InvalidClaims, "{payload}");
    }
}

#[test]
fn sub_required_and_a_string() {
    for payload in [
        r#"{"exp":4102444800}"#,
        r#"{"sub":42,"exp":4102444800}"#,
        r#"{"sub":null,"exp":4102444800}"#,
        r#"{"sub":["a"],"exp":4102444800}"#,
    ] {
        assert_eq!(claims_err(payload), TokenError::InvalidClaims, "{payload}");
    }
}

#[test]
fn duplicate_claims() {
    for payload in [
        r#"{"sub":"a","sub":"admin","exp":4102444800}"#,
        r#"{"sub":"a","s\u0075b":"admin","exp":4102444800}"#,
        r#"{"sub":"a","exp":1,"exp":4102444800}"#,
    ] {
        assert_eq!(claims_err(payload), TokenError::InvalidClaims, "{payload}");
    }
}

#[test]
fn claims_not_an_object_or_not_json() {
    assert_eq!(claims_err(r#"["a",4102444800]"#), TokenError::InvalidClaims);
    // Positional arrays that fill every field must still be refused.
    assert_eq!(
        claims_err(r#"["a",1,4102444800,1]"#),
        TokenError::InvalidClaims
    );
    assert_eq!(
        claims_err(r#" ["a",1,4102444800]"#),
        TokenError::InvalidClaims
    );
    assert_eq!(claims_err("42"), TokenError::InvalidClaims);
    assert_eq!(
        claims_err(r#"{"sub":"a","exp":4102444800"#),
        TokenError::Malformed
    );
    assert_eq!(
        claims_err(r#"{"sub":"a","exp":4102444800} x"#),
        TokenError::Malformed
    );
}

#[test]
fn expired_exactly_at_exp() {
    let token = issue(&key(), "johndoe", NOW, 60);
    assert!(verify(&key(), &token, NOW + 59, 0).is_ok());
    assert_eq!(
        verify(&key(), &token, NOW + 60, 0),
        Err(TokenError::Expired)
    );
}

#[test]
fn leeway_extends_exp_and_nbf() {
    let token = issue(&key(), "johndoe", NOW, 60);
    assert!(verify(&key(), &token, NOW + 60, 5).is_ok());
    assert!(verify(&key(), &token, NOW + 64, 5).is_ok());
    assert_eq!(
        verify(&key(), &token, NOW + 65, 5),
        Err(TokenError::Expired)
    );

    let token = sign(HS256, r#"{"sub":"a","exp":4102444800,"nbf":1700000010}"#);
    assert!(verify(&key(), &token, NOW, 10).is_ok());
    assert_eq!(verify(&key(), &token, NOW, 9), Err(TokenError::NotYetValid));
}

#[test]
fn nbf_in_future() {
    let token = sign(HS256, r#"{"sub":"a","exp":4102444800,"nbf":1700000001}"#);
    assert_eq!(verify(&key(), &token, NOW, 0), Err(TokenError::NotYetValid));
    assert!(verify(&key(), &token, NOW + 1, 0).is_ok());
}

#[test]
fn extreme_times_do_not_overflow() {
    let token = sign(HS256, r#"{"sub":"a","exp":9223372036854775807}"#);
    assert!(verify(&key(), &token, NOW, 60).is_ok());
    assert_eq!(
        verify(&key(), &token, i64::MAX, 60),
        Err(TokenError::Expired)
    );
    let token = sign(
        HS256,
        r#"{"sub":"a","exp":4102444800,"nbf":-9223372036854775808}"#,
    );
    assert!(verify(&key(), &token, NOW, 60).is_ok());
    let token = sign(HS256, r#"{"sub":"a","exp":-9223372036854775808}"#);
    assert_eq!(
        verify(&key(), &token, i64::MIN, 0),
        Err(TokenError::Expired)
    );
    let token = issue(&key(), "a", i64::MAX - 1, i64::MAX);
    assert!(verify(&key(), &token, NOW, 0).is_ok());
}

#[test]
fn unknown_claims_ignored() {
    let token = sign(
        HS256,
        r#"{"roles":{"deep":[1,2]},"sub":"a","exp":4102444800,"x":null}"#,
    );
    assert!(verify(&key(), &token, NOW, 0).is_ok());
}

#[test]
fn short_key_rejected() {
    assert_eq!(
        SecretKey::new(&[7u8; 31]).map(|_| ()),
        Err(KeyError::TooShort { len: 31 })
    );
    assert!(SecretKey::new(&[7u8; 32]).is_ok());
    assert_eq!(
        KeyError::TooShort { len: 31 }.to_string(),
        "secret key is 31 bytes; at least 32 are required"
    );
}

#[test]
fn random_keys_differ() {
    let a = SecretKey::random().expect("OS RNG works in tests");
    let b = SecretKey::random().expect("OS RNG works in tests");
    let token = issue(&a, "a", NOW, 60);
    assert!(verify(&a, &token, NOW, 0).is_ok());
    assert_eq!(verify(&b, &token, NOW, 0), Err(TokenError::BadSignature));
}

#[test]
fn debug_hides_key() {
    let shown = format!("{:?} {:#?}", key(), key());
    let kid = key().kid().to_owned();
    assert_eq!(shown, format!("SecretKey(kid={kid}) SecretKey(kid={kid})"));
    assert!(!shown.contains("0123456789abcdef"));
    assert!(!shown.contains("48, 49, 50"));
}

#[test]
fn errors_do_not_echo_input() {
    for e in [
        TokenError::TooLong,
        TokenError::Malformed,
        TokenError::BadSignature,
        TokenError::Algorithm,
        TokenError::ForbiddenHeader,
        TokenError::InvalidClaims,
        TokenError::Expired,
        TokenError::NotYetValid,
    ] {
        let s = e.to_string();
        assert!(!s.is_empty() && !s.contains("eyJ"), "{s}");
    }
}
