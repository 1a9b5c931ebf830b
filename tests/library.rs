//! The crate's building blocks, without an `App` or HTTP: key length and
//! key files, issuing and verifying tokens (checked against our own HMAC),
//! password hashes, and loading users files. (An `App` in an embedder's
//! program is `embedding`'s surface.)

use crate::cli::{Proc, TempDir};
use crate::support::*;
use password_bearer::app::Config;
use password_bearer::password::hash_password;
use password_bearer::token::{issue, verify, KeyError, SecretKey};
use password_bearer::users::Users;

#[test]
fn a_key_needs_32_bytes() {
    assert!(SecretKey::new(&[7; 31]).is_err());
    assert!(SecretKey::new(b"").is_err());
    assert!(SecretKey::new(&[7; 32]).is_ok());
    assert!(SecretKey::new(&[7; 200]).is_ok());
}

#[test]
fn issued_tokens_are_hs256_with_sub_iat_exp() {
    let key = test_key();
    let token = issue(&key, "johndoe", 1_700_000_000, 1800);
    let (header, claims) = decode_verified(&token, TEST_KEY);
    assert_eq!(header, serde_json::json!({"alg": "HS256", "typ": "JWT"}));
    assert_eq!(
        claims,
        serde_json::json!({"sub": "johndoe", "iat": 1_700_000_000, "exp": 1_700_001_800})
    );
    assert!(!token.contains('='), "unpadded: {token}");
}

#[test]
fn verify_accepts_until_exp_and_honours_the_leeway() {
    let key = test_key();
    let token = issue(&key, "johndoe", 1_000, 100);
    let Ok(claims) = verify(&key, &token, 1_000, 0) else {
        panic!("valid at issue time")
    };
    assert_eq!(claims.sub, "johndoe");
    assert_eq!(claims.iat, Some(1_000));
    assert_eq!(claims.exp, 1_100);
    assert_eq!(claims.nbf, None);
    assert!(
        verify(&key, &token, 1_099, 0).is_ok(),
        "one second before exp"
    );
    assert!(
        verify(&key, &token, 1_100, 0).is_err(),
        "expired at now == exp"
    );
    assert!(verify(&key, &token, 1_105, 10).is_ok(), "within the leeway");
    assert!(verify(&key, &token, 1_110, 10).is_err(), "at exp + leeway");
}

#[test]
fn verify_refuses_other_keys_and_forgeries() {
    let key = test_key();
    let other = SecretKey::new(&[9; 32]).expect("32 bytes");
    let token = issue(&other, "johndoe", 1_000, 100);
    assert!(verify(&key, &token, 1_000, 0).is_err(), "foreign key");
    let hs512 = sign_with(
        Hs::S512,
        TEST_KEY,
        r#"{"alg":"HS512","typ":"JWT"}"#,
        r#"{"sub":"johndoe","exp":2000}"#,
    );
    assert!(verify(&key, &hs512, 1_000, 0).is_err(), "HS512");
    let nbf = sign(r#"{"sub":"johndoe","exp":2000,"nbf":1500}"#);
    assert!(verify(&key, &nbf, 1_000, 0).is_err(), "nbf ahead");
    let Ok(claims) = verify(&key, &nbf, 1_600, 0) else {
        panic!("valid once nbf has passed")
    };
    assert_eq!(claims.nbf, Some(1_500));
    assert_eq!(claims.iat, None);
    let string_exp = sign(r#"{"sub":"johndoe","exp":"2000"}"#);
    assert!(verify(&key, &string_exp, 1_000, 0).is_err(), "string exp");
}

#[test]
fn hashes_are_salted_argon2id_with_the_owasp_parameters() {
    let first = hash_password("secret").expect("hashing succeeds");
    let second = hash_password("secret").expect("hashing succeeds");
    assert!(
        first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{first}"
    );
    assert_ne!(first, second, "a fresh salt each time");
}

#[test]
fn users_files_in_the_seed_shape_load_and_bad_ones_do_not() {
    let hash = hash_password("pw").expect("hashing succeeds");
    let good = serde_json::json!({
        "johndoe": {
            "username": "johndoe",
            "full_name": "John Doe",
            "email": "johndoe@example.com",
            "hashed_password": hash,
            "disabled": false,
        }
    });
    assert!(Users::from_json(&good.to_string()).is_ok());
    for bad in [
        "not json".to_owned(),
        serde_json::json!({"x": {"hashed_password": hash}}).to_string(),
        serde_json::json!({"x": {"username": "x"}}).to_string(),
        serde_json::json!({"x": {"username": "x", "hashed_password": "fakehashedx"}}).to_string(),
    ] {
        assert!(Users::from_json(&bad).is_err(), "{bad}");
    }
}

/// `SecretKey::from_file` reads a key file as the binary's
/// `--secret-key-file` does (trimmed), so an embedded app and the binary
/// sharing the file accept each other's tokens; the bytes as read, final
/// newline and all, are another key, refused with a bare 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_is_one_key_for_an_embedded_app_and_the_binary() {
    let dir = TempDir::new();
    let key_file = dir.file("key", b" a-shared-key-file-of-more-than-32-bytes-0123\n");
    let mut binary = Proc::spawn(&["--port", "0", "--secret-key-file", &key_file]);
    let binary = binary.wait_listening();
    let key = SecretKey::from_file(&key_file).expect("a readable key file");
    let embedded = start_with(Config::new(Users::demo(), key)).await;

    let from_binary = login(binary, "johndoe", "secret").await;
    let from_embedded = login(embedded.addr, "johndoe", "secret").await;
    for (addr, token) in [(embedded.addr, &from_binary), (binary, &from_embedded)] {
        assert_json_exact(
            &get_me(addr, &format!("Bearer {token}")).await,
            200,
            JOHNDOE_ME,
        );
    }

    // What `from_file` saves an embedder from.
    let untrimmed = std::fs::read(&key_file).expect("read the key file");
    let untrimmed = SecretKey::new(&untrimmed).expect("long enough");
    let mismatched = start_with(Config::new(Users::demo(), untrimmed)).await;
    assert_401(
        &get_me(mismatched.addr, &format!("Bearer {from_binary}")).await,
        INVALID_CREDENTIALS,
    );
}

#[test]
fn a_key_file_that_cannot_serve_is_an_error() {
    let dir = TempDir::new();
    let missing = dir.0.join("no-such.key");
    match SecretKey::from_file(&missing) {
        Err(e @ KeyError::Read { kind, .. }) => {
            assert_eq!(kind, std::io::ErrorKind::NotFound);
            assert!(e.to_string().starts_with("cannot read: "), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // 36 bytes on disk, 31 once trimmed: the trimmed length counts.
    let padded = dir.file(
        "padded.key",
        &[b"  ".as_slice(), &[b'k'; 31], b"\n\n\n"].concat(),
    );
    assert_eq!(
        SecretKey::from_file(&padded).map(|_| ()),
        Err(KeyError::TooShort { len: 31 })
    );
}
