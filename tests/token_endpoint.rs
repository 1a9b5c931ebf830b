//! `POST /token`: the OAuth2 password grant. Successful logins and the JWT
//! they return, FastAPI's 400 and 422 bodies with RFC 6749's `error` added,
//! form decoding, the body limit, and the headers every answer carries.

use crate::support::*;
use password_bearer::users::Users;
use password_bearer::Config;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_credentials_return_a_bearer_jwt_signed_with_the_key() {
    let server = start().await;
    let before = now();
    let resp = post_token(server.addr, "username=johndoe&password=secret").await;
    let after = now();

    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_json_headers(&resp);
    assert_token_endpoint_headers(&resp);
    let body = resp.json();
    let object = body.as_object().expect("an object");
    let mut keys: Vec<_> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "refresh_token", "token_type"]
    );
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 1800);

    let token = body["access_token"].as_str().expect("a string token");
    let (header, claims) = decode_verified(token, TEST_KEY);
    assert_eq!(
        header,
        serde_json::json!({"alg": "HS256", "kid": test_key().kid(), "typ": "JWT"})
    );
    assert_eq!(claims["sub"], "johndoe");
    // A session's token: its own id and its session's, 128 bits each.
    for id in ["jti", "sid"] {
        let text = claims[id].as_str().expect("a string id");
        assert_eq!(unb64(text).len(), 16, "{id}: {text}");
    }
    let iat = claims["iat"].as_i64().expect("iat is an integer");
    let exp = claims["exp"].as_i64().expect("exp is an integer");
    assert!((before..=after).contains(&iat), "iat {iat} is now");
    assert_eq!(exp - iat, 1800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_lifetime_sets_expires_in_and_exp() {
    let mut config = Config::new(Users::demo(), test_key());
    config.token_ttl = Duration::from_secs(5 * 60);
    let server = start_with(config).await;
    let resp = post_token(server.addr, "username=johndoe&password=secret").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["expires_in"], 300);
    let (_, claims) = decode_verified(resp.json()["access_token"].as_str().unwrap(), TEST_KEY);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_still_gets_a_token() {
    // The seed checks `disabled` when the token is used, not at login.
    let server = start().await;
    let token = login(server.addr, "alice", "secret2").await;
    let (_, claims) = decode_verified(&token, TEST_KEY);
    assert_eq!(claims["sub"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_are_indistinguishable() {
    let server = start().await;
    let wrong_password = post_token(server.addr, "username=johndoe&password=bad").await;
    let unknown_user = post_token(server.addr, "username=nobody&password=bad").await;
    let wrong_case = post_token(server.addr, "username=johndoe&password=SECRET").await;
    for resp in [&wrong_password, &unknown_user, &wrong_case] {
        assert_invalid_grant(resp);
    }
    assert_eq!(wrong_password.body, unknown_user.body);
    assert_eq!(
        wrong_password.headers_without_date(),
        unknown_user.headers_without_date()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_body_is_fastapis_422_for_both_fields() {
    let server = start().await;
    // curl -X POST with no body: no content type at all.
    let resp = request(server.addr, "POST", "/token", &[], b"").await;
    assert_422(
        &resp,
        &[MISSING_USERNAME, MISSING_PASSWORD],
        "invalid_request",
    );
    let resp = post_token(server.addr, "").await;
    assert_422(
        &resp,
        &[MISSING_USERNAME, MISSING_PASSWORD],
        "invalid_request",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_missing_field_gets_its_own_entry() {
    let server = start().await;
    let resp = post_token(server.addr, "password=x").await;
    assert_422(&resp, &[MISSING_USERNAME], "invalid_request");
    let resp = post_token(server.addr, "username=johndoe").await;
    assert_422(&resp, &[MISSING_PASSWORD], "invalid_request");
    let resp = post_token(server.addr, "scope=a&client_id=b&client_secret=c").await;
    assert_422(
        &resp,
        &[MISSING_USERNAME, MISSING_PASSWORD],
        "invalid_request",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_values_count_as_missing() {
    let server = start().await;
    let resp = post_token(server.addr, "username=&password=").await;
    assert_422(
        &resp,
        &[MISSING_USERNAME, MISSING_PASSWORD],
        "invalid_request",
    );
    let resp = post_token(server.addr, "username&password=secret").await;
    assert_422(&resp, &[MISSING_USERNAME], "invalid_request");
    let resp = post_token(server.addr, "username=johndoe&password=").await;
    assert_422(&resp, &[MISSING_PASSWORD], "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_other_content_types_are_422() {
    let server = start().await;
    let json = br#"{"username":"johndoe","password":"secret"}"#;
    let resp = request(
        server.addr,
        "POST",
        "/token",
        &[("Content-Type", "application/json")],
        json,
    )
    .await;
    assert_422(
        &resp,
        &[MISSING_USERNAME, MISSING_PASSWORD],
        "invalid_request",
    );
    // A form body under a content type that is not a form is not read.
    let resp = request(
        server.addr,
        "POST",
        "/token",
        &[("Content-Type", "text/plain")],
        b"username=johndoe&password=secret",
    )
    .await;
    assert_422(
        &resp,
        &[MISSING_USERNAME, MISSING_PASSWORD],
        "invalid_request",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_type_other_than_password_is_unsupported() {
    let server = start().await;
    let resp = post_token(
        server.addr,
        "grant_type=foo&username=johndoe&password=secret",
    )
    .await;
    assert_422(
        &resp,
        &[&grant_type_mismatch("foo")],
        "unsupported_grant_type",
    );
    // FastAPI lists every problem at once, grant_type first.
    let resp = post_token(server.addr, "grant_type=foo").await;
    assert_422(
        &resp,
        &[
            &grant_type_mismatch("foo"),
            MISSING_USERNAME,
            MISSING_PASSWORD,
        ],
        "unsupported_grant_type",
    );
    // The pattern is exact: no case folding, no prefix match; `input` is
    // the decoded value.
    let resp = post_token(
        server.addr,
        "username=johndoe&password=secret&grant_type=Password",
    )
    .await;
    assert_422(
        &resp,
        &[&grant_type_mismatch("Password")],
        "unsupported_grant_type",
    );
    let resp = post_token(
        server.addr,
        "grant_type=client%20credentials+x&username=johndoe&password=secret",
    )
    .await;
    assert_422(
        &resp,
        &[&grant_type_mismatch("client credentials x")],
        "unsupported_grant_type",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_type_password_or_empty_and_the_optional_fields_are_accepted() {
    let server = start().await;
    let resp = post_token(
        server.addr,
        "grant_type=password&username=johndoe&password=secret&scope=users:read%20items&client_id=x&client_secret=y",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_token_endpoint_headers(&resp);
    // An empty grant_type counts as absent, and unknown fields are ignored,
    // even repeated.
    let resp = post_token(
        server.addr,
        "grant_type=&username=johndoe&password=secret&foo=bar&foo=baz",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_field_is_refused_with_one_entry_per_field() {
    let server = start().await;
    // Even when both values are right: RFC 6749 §3.1 forbids repeats.
    let resp = post_token(
        server.addr,
        "username=johndoe&username=johndoe&password=secret",
    )
    .await;
    assert_422(&resp, &[&duplicate("username")], "invalid_request");
    let resp = post_token(
        server.addr,
        "password=secret&username=johndoe&password=other&username=x",
    )
    .await;
    assert_422(
        &resp,
        &[&duplicate("username"), &duplicate("password")],
        "invalid_request",
    );
    let resp = post_token(
        server.addr,
        "grant_type=password&grant_type=password&username=johndoe&password=secret",
    )
    .await;
    assert_422(&resp, &[&duplicate("grant_type")], "invalid_request");
    let resp = post_token(
        server.addr,
        "username=johndoe&password=secret&scope=a&scope=b",
    )
    .await;
    assert_422(&resp, &[&duplicate("scope")], "invalid_request");
    // In the form's field order, whatever the order in the body.
    let resp = post_token(
        server.addr,
        "client_secret=x&username=johndoe&client_id=a&password=secret&client_secret=y&client_id=b",
    )
    .await;
    assert_422(
        &resp,
        &[&duplicate("client_id"), &duplicate("client_secret")],
        "invalid_request",
    );
    // A repeat and a missing field are both reported.
    let resp = post_token(server.addr, "username=a&username=b").await;
    assert_422(
        &resp,
        &[&duplicate("username"), MISSING_PASSWORD],
        "invalid_request",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_escapes_decode() {
    let server = start().await;
    // Straight from the seed transcript.
    let resp = post_token(server.addr, "username=john%64oe&password=secre%74").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let (_, claims) = decode_verified(resp.json()["access_token"].as_str().unwrap(), TEST_KEY);
    assert_eq!(claims["sub"], "johndoe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plus_is_a_space_and_utf8_escapes_decode() {
    let users = users_with(&[
        ("jane doe", "pass word", false),
        ("jöhn", "sécret+1", false),
    ]);
    let server = start_with(Config::new(users, test_key())).await;

    let resp = post_token(server.addr, "username=jane+doe&password=pass+word").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let (_, claims) = decode_verified(resp.json()["access_token"].as_str().unwrap(), TEST_KEY);
    assert_eq!(claims["sub"], "jane doe");

    // `%2B` is a literal plus; a raw `+` would be a space.
    let resp = post_token(server.addr, "username=j%C3%B6hn&password=s%C3%A9cret%2B1").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let (_, claims) = decode_verified(resp.json()["access_token"].as_str().unwrap(), TEST_KEY);
    assert_eq!(claims["sub"], "jöhn");
    let resp = post_token(server.addr, "username=j%C3%B6hn&password=s%C3%A9cret+1").await;
    assert_invalid_grant(&resp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_escapes_never_match() {
    let server = start().await;
    for body in [
        "username=johndoe&password=secre%FF",
        "username=john%FFdoe&password=secret",
        "username=%C3%28&password=%80",
        // A malformed escape stays literal, as in WHATWG form decoding.
        "username=johndoe&password=secret%",
        "username=johndoe&password=secret%G0",
    ] {
        let resp = post_token(server.addr, body).await;
        assert_invalid_grant(&resp);
    }
    // Raw non-UTF-8 bytes in the body too.
    let resp = request(
        server.addr,
        "POST",
        "/token",
        &[("Content-Type", FORM)],
        b"username=johndoe&password=secret\xff",
    )
    .await;
    assert_invalid_grant(&resp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charset_parameter_on_the_content_type_is_accepted() {
    let server = start().await;
    let resp = request(
        server.addr,
        "POST",
        "/token",
        &[(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )],
        b"username=johndoe&password=secret",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_token_endpoint_headers(&resp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_16_kib_is_413() {
    let server = start().await;
    let prefix = "username=johndoe&password=";
    let over = format!("{prefix}{}", "a".repeat(16 * 1024 + 1 - prefix.len()));
    assert_eq!(over.len(), 16 * 1024 + 1);
    let resp = post_token(server.addr, &over).await;
    assert_json_exact(&resp, 413, r#"{"detail":"Request body too large"}"#);
    assert_token_endpoint_headers(&resp);

    // Exactly at the limit is read, and is simply a wrong password.
    let at = format!("{prefix}{}", "a".repeat(16 * 1024 - prefix.len()));
    let resp = post_token(server.addr, &at).await;
    assert_invalid_grant(&resp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_is_413_too() {
    // Without a Content-Length the limit must hold while reading.
    let server = start().await;
    let chunk = "a".repeat(4096);
    let mut raw = format!(
        "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    raw.push_str(&format!("{:x}\r\nusername=johndoe&password=\r\n", 26));
    for _ in 0..4 {
        raw.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    raw.push_str("0\r\n\r\n");
    let resp = send_raw(server.addr, raw.as_bytes()).await;
    assert_json_exact(&resp, 413, r#"{"detail":"Request body too large"}"#);
    assert_token_endpoint_headers(&resp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_configured_body_limit_applies() {
    let mut config = Config::new(Users::demo(), test_key());
    config.body_limit = 40;
    let server = start_with(config).await;
    let resp = post_token(
        server.addr,
        "username=johndoe&password=secret&scope=abcdefghij",
    )
    .await;
    assert_json_exact(&resp, 413, r#"{"detail":"Request body too large"}"#);
    let resp = post_token(server.addr, "username=johndoe&password=secret").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sessions_off_a_login_answers_as_before_sessions() {
    let mut config = Config::new(Users::demo(), test_key());
    config.refresh_token_ttl = Duration::ZERO;
    let server = start_with(config).await;
    let resp = post_token(server.addr, "username=johndoe&password=secret").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access_token", "expires_in", "token_type"]);
    let (header, claims) = decode_verified(body["access_token"].as_str().unwrap(), TEST_KEY);
    assert_eq!(header, serde_json::json!({"alg": "HS256", "typ": "JWT"}));
    assert!(
        claims.get("jti").is_none() && claims.get("sid").is_none(),
        "{claims}"
    );
    // No refresh grant, no /revoke.
    let resp = post_token(server.addr, "grant_type=refresh_token&refresh_token=x").await;
    assert_422(
        &resp,
        &[
            &grant_type_mismatch("refresh_token"),
            MISSING_USERNAME,
            MISSING_PASSWORD,
        ],
        "unsupported_grant_type",
    );
    let resp = request(
        server.addr,
        "POST",
        "/revoke",
        &[("Content-Type", FORM)],
        b"token=x",
    )
    .await;
    assert_eq!(resp.status, 404);
}
