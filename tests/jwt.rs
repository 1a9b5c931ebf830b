//! Token verification seen over HTTP: tokens forged with the test key (as
//! PyJWT would mint them) are accepted, every rule of the contract's
//! "Tokens" section refuses with 401 "Invalid authentication credentials",
//! and which key verifies a token: a rotation with `kid`, old keys still
//! verifying, a dropped key refused. (Keys swapped on a running server are
//! `reload`'s surface.)

use crate::sessions::{field, login_json, me_status, quiet};
use crate::support::*;
use password_bearer::token::SecretKey;
use password_bearer::users::Users;
use password_bearer::Config;
use serde_json::Value;
use std::time::Duration;

/// `GET /users/me` with `token` must be the invalid-credentials 401.
async fn assert_refused(server: &TestServer, token: &str, why: &str) {
    let resp = get_me(server.addr, &format!("Bearer {token}")).await;
    assert_eq!(
        resp.status,
        401,
        "{why}: token {token:?} got {}",
        resp.text()
    );
    assert_401(&resp, INVALID_CREDENTIALS);
}

/// `GET /users/me` with `token` must be johndoe's profile.
async fn assert_accepted(server: &TestServer, token: &str, why: &str) {
    let resp = get_me(server.addr, &format!("Bearer {token}")).await;
    assert_eq!(
        resp.status,
        200,
        "{why}: token {token:?} got {}",
        resp.text()
    );
    assert_json_exact(&resp, 200, JOHNDOE_ME);
}

fn claims(sub: &str, exp: i64) -> String {
    format!(r#"{{"sub":"{sub}","iat":{},"exp":{exp}}}"#, now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_minted_like_pyjwt_is_accepted() {
    let server = start().await;
    assert_accepted(
        &server,
        &sign(&claims("johndoe", now() + 600)),
        "sub/iat/exp",
    )
    .await;
    // PyJWT's `jwt.encode({"sub": ..., "exp": ...}, key)` has no iat.
    let token = sign(&format!(r#"{{"sub":"johndoe","exp":{}}}"#, now() + 600));
    assert_accepted(&server, &token, "sub/exp only").await;
    // Key order, whitespace and extra claims do not matter.
    let token = sign_with(
        Hs::S256,
        TEST_KEY,
        r#"{ "typ": "JWT", "alg": "HS256" }"#,
        &format!(
            r#"{{ "exp": {}, "jti": "x", "sub": "johndoe" }}"#,
            now() + 600
        ),
    );
    assert_accepted(&server, &token, "reordered, spaced, extra claim").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused() {
    let server = start().await;
    assert_refused(
        &server,
        &sign(&claims("johndoe", now() - 3600)),
        "an hour ago",
    )
    .await;
    assert_refused(
        &server,
        &sign(&claims("johndoe", now() - 1)),
        "a second ago",
    )
    .await;
    // Expired when now >= exp: exp == now is already dead.
    assert_refused(&server, &sign(&claims("johndoe", now())), "exp == now").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leeway_extends_exp_by_at_most_a_minute() {
    let mut config = Config::new(Users::demo(), test_key());
    config.leeway = Duration::from_secs(30);
    let server = start_with(config).await;
    assert_accepted(
        &server,
        &sign(&claims("johndoe", now() - 10)),
        "within leeway",
    )
    .await;
    assert_refused(
        &server,
        &sign(&claims("johndoe", now() - 40)),
        "past leeway",
    )
    .await;

    // A larger leeway is capped at 60 s.
    let mut config = Config::new(Users::demo(), test_key());
    config.leeway = Duration::from_secs(3600);
    let server = start_with(config).await;
    assert_refused(&server, &sign(&claims("johndoe", now() - 120)), "cap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbf_is_enforced() {
    let server = start().await;
    let future = format!(
        r#"{{"sub":"johndoe","exp":{},"nbf":{}}}"#,
        now() + 600,
        now() + 300
    );
    assert_refused(&server, &sign(&future), "nbf in the future").await;
    let past = format!(
        r#"{{"sub":"johndoe","exp":{},"nbf":{}}}"#,
        now() + 600,
        now() - 300
    );
    assert_accepted(&server, &sign(&past), "nbf in the past").await;
    let string_nbf = format!(
        r#"{{"sub":"johndoe","exp":{},"nbf":"{}"}}"#,
        now() + 600,
        now() - 300
    );
    assert_refused(&server, &sign(&string_nbf), "string nbf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_times_do_not_crash_the_check() {
    // exp + leeway and nbf - leeway must not overflow (a debug build would
    // panic and drop the connection instead of answering).
    let mut config = Config::new(Users::demo(), test_key());
    config.leeway = Duration::from_secs(60);
    let server = start_with(config).await;
    for claims in [
        format!(r#"{{"sub":"johndoe","exp":{}}}"#, i64::MAX),
        format!(r#"{{"sub":"johndoe","exp":{}}}"#, i64::MIN),
        format!(
            r#"{{"sub":"johndoe","exp":{},"nbf":{}}}"#,
            i64::MAX,
            i64::MIN
        ),
        format!(
            r#"{{"sub":"johndoe","exp":{},"nbf":{}}}"#,
            i64::MAX,
            i64::MAX
        ),
        r#"{"sub":"johndoe","exp":18446744073709551615}"#.to_owned(),
        r#"{"sub":"johndoe","exp":1e400}"#.to_owned(),
    ] {
        let resp = get_me(server.addr, &format!("Bearer {}", sign(&claims))).await;
        assert!(
            resp.status == 200 || resp.status == 401,
            "{claims}: {} {}",
            resp.status,
            resp.text()
        );
    }
    // Values that are not i64 NumericDates at all are refused.
    let token = sign(r#"{"sub":"johndoe","exp":18446744073709551615}"#);
    assert_refused(&server, &token, "exp beyond i64").await;
    assert_refused(&server, &sign(&claims("johndoe", i64::MIN)), "exp i64::MIN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exp_must_be_an_integer_and_sub_a_string() {
    let server = start().await;
    let later = now() + 600;
    for (claims, why) in [
        (
            format!(r#"{{"sub":"johndoe","exp":"{later}"}}"#),
            "string exp",
        ),
        (
            format!(r#"{{"sub":"johndoe","exp":{later}.5}}"#),
            "fractional exp",
        ),
        (r#"{"sub":"johndoe","exp":null}"#.to_owned(), "null exp"),
        (r#"{"sub":"johndoe"}"#.to_owned(), "no exp"),
        (format!(r#"{{"exp":{later}}}"#), "no sub"),
        (format!(r#"{{"sub":null,"exp":{later}}}"#), "null sub"),
        (format!(r#"{{"sub":42,"exp":{later}}}"#), "numeric sub"),
        (
            format!(r#"{{"sub":["johndoe"],"exp":{later}}}"#),
            "array sub",
        ),
        (
            format!(r#"[{{"sub":"johndoe","exp":{later}}}]"#),
            "claims not an object",
        ),
        ("not json".to_owned(), "claims not JSON"),
    ] {
        assert_refused(&server, &sign(&claims), why).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_hs256_is_accepted() {
    let server = start().await;
    let body = claims("johndoe", now() + 600);
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(body.as_bytes())
    );
    assert_refused(&server, &unsigned, "alg none, no signature").await;
    for (header, why) in [
        (r#"{"alg":"none","typ":"JWT"}"#, "alg none, HS256 MAC"),
        (r#"{"alg":"None","typ":"JWT"}"#, "alg None"),
        (r#"{"alg":"hs256","typ":"JWT"}"#, "alg in lowercase"),
        (r#"{"alg":"RS256","typ":"JWT"}"#, "alg RS256"),
        (r#"{"alg":"ES256","typ":"JWT"}"#, "alg ES256"),
        (r#"{"typ":"JWT"}"#, "no alg"),
        (r#"{"alg":["HS256"],"typ":"JWT"}"#, "alg not a string"),
        (r#"["HS256"]"#, "header not an object"),
        ("HS256", "header not JSON"),
    ] {
        assert_refused(&server, &sign_with(Hs::S256, TEST_KEY, header, &body), why).await;
    }
    // The other HMACs, signed for real with the same key.
    let hs512 = sign_with(Hs::S512, TEST_KEY, r#"{"alg":"HS512","typ":"JWT"}"#, &body);
    assert_refused(&server, &hs512, "HS512").await;
    let hs384 = sign_with(Hs::S384, TEST_KEY, r#"{"alg":"HS384","typ":"JWT"}"#, &body);
    assert_refused(&server, &hs384, "HS384").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_fetching_and_critical_headers_are_refused() {
    let server = start().await;
    let body = claims("johndoe", now() + 600);
    for header in [
        r#"{"alg":"HS256","typ":"JWT","jku":"https://evil.example/keys"}"#,
        r#"{"alg":"HS256","typ":"JWT","jwk":{"kty":"oct","k":"AAAA"}}"#,
        r#"{"alg":"HS256","typ":"JWT","x5u":"https://evil.example/cert"}"#,
        r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#,
    ] {
        assert_refused(
            &server,
            &sign_with(Hs::S256, TEST_KEY, header, &body),
            header,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_and_foreign_keys_are_refused() {
    let server = start().await;
    let token = login(server.addr, "johndoe", "secret").await;
    assert_accepted(&server, &token, "control: the issued token").await;
    let parts: Vec<&str> = token.split('.').collect();

    // alice's claims under johndoe's signature.
    let (_, mut claims_value) = decode_verified(&token, TEST_KEY);
    claims_value["sub"] = "alice".into();
    let forged_payload = b64(claims_value.to_string().as_bytes());
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_refused(&server, &tampered, "payload swapped").await;

    // A longer life under the old signature.
    claims_value["sub"] = "johndoe".into();
    claims_value["exp"] = (now() + 999_999).into();
    let extended = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims_value.to_string().as_bytes()),
        parts[2]
    );
    assert_refused(&server, &extended, "exp extended").await;

    // One flipped bit in the first signature byte (the last base64
    // character carries padding bits, so flip the first).
    let mut sig = unb64(parts[2]);
    sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
    assert_refused(&server, &flipped, "signature bit flipped").await;
    let truncated = format!("{}.{}.{}", parts[0], parts[1], b64(&sig[..31]));
    assert_refused(&server, &truncated, "signature truncated").await;
    let empty_sig = format!("{}.{}.", parts[0], parts[1]);
    assert_refused(&server, &empty_sig, "signature empty").await;

    let foreign_key = b"another-key-of-the-same-length-0123456789ab";
    let foreign = sign_with(
        Hs::S256,
        foreign_key,
        HS256_HEADER,
        &claims("johndoe", now() + 600),
    );
    assert_refused(&server, &foreign, "foreign key").await;
    // A key that is the test key plus whitespace: the server trims key
    // files, but the key itself is exact bytes.
    let padded = [TEST_KEY, b" "].concat();
    let near = sign_with(
        Hs::S256,
        &padded,
        HS256_HEADER,
        &claims("johndoe", now() + 600),
    );
    assert_refused(&server, &near, "key plus a space").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_for_a_user_that_does_not_exist_is_refused() {
    let server = start().await;
    assert_refused(
        &server,
        &sign(&claims("ghost", now() + 600)),
        "no such user",
    )
    .await;
    assert_refused(&server, &sign(&claims("", now() + 600)), "empty sub").await;
    assert_refused(
        &server,
        &sign(&claims("JohnDoe", now() + 600)),
        "other case",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_removed_from_the_users_file_loses_access() {
    // The token was issued by a server that knew bob; the next server (same
    // key) no longer lists him.
    let users = users_with(&[("bob", "pw", false)]);
    let first = start_with(Config::new(users, test_key())).await;
    let token = login(first.addr, "bob", "pw").await;
    let second = start().await;
    assert_refused(&second, &token, "bob is gone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compact_serialization_is_strict() {
    let server = start().await;
    let token = sign(&claims("johndoe", now() + 600));
    let parts: Vec<&str> = token.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);

    // Padding (a 32-byte MAC is 43 characters unpadded).
    assert_eq!(s.len(), 43);
    assert_refused(&server, &format!("{h}.{p}.{s}="), "padded signature").await;
    // A 28-byte header needs one `=`; signed over the padded text, so only
    // the padding is wrong. The unpadded twin is the control.
    let header = br#"{"alg":"HS256", "typ":"JWT"}"#;
    let resign = |h: &str| {
        let input = format!("{h}.{p}");
        format!(
            "{input}.{}",
            b64(&mac(Hs::S256, TEST_KEY, input.as_bytes()))
        )
    };
    assert_accepted(&server, &resign(&b64(header)), "control: unpadded").await;
    let padded_header = base64_padded(header);
    assert!(padded_header.ends_with('='), "the header needs padding");
    assert_refused(
        &server,
        &resign(&padded_header),
        "padded header, validly signed",
    )
    .await;

    for (bad, why) in [
        (format!("{h}.{p}"), "two segments"),
        (format!("{h}.{p}.{s}.{s}"), "four segments"),
        (format!("{h}.{p}.{s}."), "trailing dot"),
        (format!(".{h}.{p}.{s}"), "leading dot"),
        (format!("{h}..{s}"), "empty payload"),
        (format!("{h}.{p}.{s}!"), "non-base64 character"),
        (format!("{h}.{p} .{s}"), "space inside"),
        ("..".to_owned(), "only dots"),
        (".".to_owned(), "one dot"),
    ] {
        assert_refused(&server, &bad, why).await;
    }

    // Standard base64 (`+`, `/`) where base64url is required: sign until
    // the MAC has a `-` or `_`, then translate it.
    let mut found = None;
    for n in 0..1000 {
        let t = sign(&format!(
            r#"{{"sub":"johndoe","exp":{},"n":{n}}}"#,
            now() + 600
        ));
        if t.rsplit('.').next().unwrap().contains(['-', '_']) {
            found = Some(t);
            break;
        }
    }
    let t = found.expect("some MAC contains - or _");
    assert_accepted(&server, &t, "control").await;
    let standard = t.replace('-', "+").replace('_', "/");
    assert_refused(&server, &standard, "standard base64 alphabet").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spaces_around_the_token_are_trimmed() {
    let server = start().await;
    let token = sign(&claims("johndoe", now() + 600));
    for value in [
        format!("Bearer  {token}"),
        format!("Bearer    {token}   "),
        format!("Bearer {token} "),
    ] {
        let resp = get_me(server.addr, &value).await;
        assert_json_exact(&resp, 200, JOHNDOE_ME);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_token_is_refused() {
    let server = start().await;
    assert_refused(&server, "", "empty").await;
    assert_refused(&server, "   ", "only spaces").await;
}

fn base64_padded(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_keeps_everyone_logged_in() {
    let old_key = test_key();
    let new_key = SecretKey::new(b"the next key, rotated in: 32 bytes or more").unwrap();
    let server = start_with(quiet()).await;
    let before = login_json(server.addr, "johndoe", "secret", "").await;
    drop(server);

    // Restarted with the new key signing and the old one verifying.
    let mut config = quiet();
    config.key = new_key.clone();
    config.old_keys = vec![old_key];
    let server = start_with(config).await;
    let old_access = field(&before, "access_token");
    assert_eq!(me_status(server.addr, &old_access).await, 200);
    let pyjwt = sign(&format!(r#"{{"sub":"johndoe","exp":{}}}"#, now() + 600));
    assert_eq!(
        me_status(server.addr, &pyjwt).await,
        200,
        "no kid: each key is tried"
    );
    let after = login_json(server.addr, "johndoe", "secret", "").await;
    let token = field(&after, "access_token");
    let header: Value = serde_json::from_slice(&unb64(token.split('.').next().unwrap())).unwrap();
    assert_eq!(header["kid"], new_key.kid());
    assert_eq!(me_status(server.addr, &token).await, 200);

    // A kid no key has, signed with a key the server holds: refused.
    let forged = sign_with(
        Hs::S256,
        TEST_KEY,
        r#"{"alg":"HS256","kid":"unknown-key","typ":"JWT"}"#,
        &format!(r#"{{"sub":"johndoe","exp":{}}}"#, now() + 600),
    );
    assert_401(
        &get_me(server.addr, &format!("Bearer {forged}")).await,
        INVALID_CREDENTIALS,
    );
    drop(server);

    // Once the old key is dropped, its tokens are refused.
    let mut config = quiet();
    config.key = new_key;
    let server = start_with(config).await;
    assert_eq!(me_status(server.addr, &old_access).await, 401);
    assert_eq!(me_status(server.addr, &token).await, 200);
}

/// A client credentials grant's token (`gty` "client-credentials" and
/// `client_id` its `sub`) names a client, never a user: refused at
/// `/users/me` in every build, the `clients` feature or not, since an
/// instance built without it may share its key with one built with it.
/// The same claims without `gty`, or with a `client_id` that is not the
/// `sub`, are a user's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_credentials_token_is_refused_in_every_build() {
    let server = start().await;
    let exp = now() + 600;
    let client = format!(
        r#"{{"sub":"johndoe","iat":{},"exp":{exp},"client_id":"johndoe","gty":"client-credentials"}}"#,
        now()
    );
    for _ in 0..2 {
        // Twice: the refusal is never cached as a user's token.
        assert_refused(&server, &sign(&client), "a client's token").await;
    }
    let user = format!(
        r#"{{"sub":"johndoe","iat":{},"exp":{exp},"client_id":"johndoe"}}"#,
        now()
    );
    assert_accepted(&server, &sign(&user), "client_id without gty").await;
    let other = format!(
        r#"{{"sub":"johndoe","iat":{},"exp":{exp},"client_id":"reports","gty":"client-credentials"}}"#,
        now()
    );
    assert_accepted(&server, &sign(&other), "gty for another client_id").await;
}
