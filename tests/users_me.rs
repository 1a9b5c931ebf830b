//! `GET /users/me`: reading the `Authorization` header, then the seed's two
//! steps in order, current user (401) and current active user (400), and
//! the profile that comes back (without the password hash).

use crate::support::*;
use password_bearer::users::Users;
use password_bearer::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn johndoe_sees_exactly_his_profile() {
    let server = start().await;
    let token = login(server.addr, "johndoe", "secret").await;
    let resp = get_me(server.addr, &format!("Bearer {token}")).await;
    assert_json_exact(&resp, 200, JOHNDOE_ME);
    assert!(
        resp.header("www-authenticate").is_none(),
        "{:?}",
        resp.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheme_is_case_insensitive() {
    let server = start().await;
    let token = login(server.addr, "johndoe", "secret").await;
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let resp = get_me(server.addr, &format!("{scheme} {token}")).await;
        assert_json_exact(&resp, 200, JOHNDOE_ME);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_usable_header_is_not_authenticated() {
    let server = start().await;
    let resp = get(server.addr, "/users/me", &[]).await;
    assert_401(&resp, NOT_AUTHENTICATED);
    // Byte for byte the seed's answer, down to the length.
    assert_eq!(resp.header("content-length"), Some("30"));

    let token = login(server.addr, "johndoe", "secret").await;
    for value in [
        "".to_owned(),
        "Basic Zm9vOmJhcg==".to_owned(),
        // A valid token with no scheme, or a scheme that is not Bearer.
        token.clone(),
        format!("Token {token}"),
        format!("Basic {token}"),
        // The scheme is the text up to the first space.
        format!("Bearer{token}"),
    ] {
        let resp = get_me(server.addr, &value).await;
        assert_401(&resp, NOT_AUTHENTICATED);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_without_a_valid_token_is_invalid_credentials() {
    let server = start().await;
    for value in [
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Bearer zzz",
        "Bearer johndoe",
    ] {
        let resp = get_me(server.addr, value).await;
        assert_401(&resp, INVALID_CREDENTIALS);
        assert_eq!(resp.header("content-length"), Some("47"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_is_inactive() {
    let server = start().await;
    let token = login(server.addr, "alice", "secret2").await;
    let resp = get_me(server.addr, &format!("Bearer {token}")).await;
    assert_json_exact(&resp, 400, r#"{"detail":"Inactive user"}"#);
    // 400 is about the user, not the credentials: no challenge.
    assert!(
        resp.header("www-authenticate").is_none(),
        "{:?}",
        resp.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_checked_before_the_user_is() {
    // current_user runs first: a bad token for a disabled user is a 401,
    // never the 400 that would confirm the user exists and is disabled.
    let server = start().await;
    let expired = sign(&format!(r#"{{"sub":"alice","exp":{}}}"#, now() - 10));
    assert_401(
        &get_me(server.addr, &format!("Bearer {expired}")).await,
        INVALID_CREDENTIALS,
    );
    let valid = sign(&format!(r#"{{"sub":"alice","exp":{}}}"#, now() + 600));
    let resp = get_me(server.addr, &format!("Bearer {valid}")).await;
    assert_json_exact(&resp, 400, r#"{"detail":"Inactive user"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_with_the_same_token_keeps_working() {
    let server = start().await;
    let token = login(server.addr, "johndoe", "secret").await;
    for _ in 0..3 {
        assert_json_exact(
            &get_me(server.addr, &format!("Bearer {token}")).await,
            200,
            JOHNDOE_ME,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_from_a_file_get_their_own_profile_and_never_their_hash() {
    let hash = password_bearer::password::hash_password("pw-of-carol").expect("hashing succeeds");
    let json = serde_json::json!({
        "carol": {
            "username": "carol",
            "full_name": "Carol \"C\" Ünïcode",
            "email": "carol@example.org",
            "hashed_password": hash,
            "disabled": false,
        },
    })
    .to_string();
    let users = Users::from_json(&json).expect("a valid users file");
    let server = start_with(Config::new(users, test_key())).await;

    let token = login(server.addr, "carol", "pw-of-carol").await;
    let resp = get_me(server.addr, &format!("Bearer {token}")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json(),
        serde_json::json!({
            "username": "carol",
            "email": "carol@example.org",
            "full_name": "Carol \"C\" Ünïcode",
            "disabled": false,
        })
    );
    assert!(
        resp.text().starts_with(r#"{"username":"carol","email":"#),
        "FastAPI's field order: {}",
        resp.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_profile_fields_absent_from_the_users_file_are_null() {
    // The seed's User model: `email`, `full_name` and `disabled` are
    // `Optional[...] = None`, so FastAPI (the contract's tie-breaker) answers
    // null for each, and None is not disabled.
    let hash = password_bearer::password::hash_password("pw").expect("hashing succeeds");
    let json = serde_json::json!({"bob": {"username": "bob", "hashed_password": hash}});
    let users = Users::from_json(&json.to_string()).expect("a valid users file");
    let server = start_with(Config::new(users, test_key())).await;
    let token = sign(&format!(r#"{{"sub":"bob","exp":{}}}"#, now() + 600));
    let resp = get_me(server.addr, &format!("Bearer {token}")).await;
    assert_json_exact(
        &resp,
        200,
        r#"{"username":"bob","email":null,"full_name":null,"disabled":null}"#,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_header_bytes_and_huge_tokens_are_401_not_a_crash() {
    let server = start().await;
    // obs-text (bytes >= 0x80) is legal in an HTTP/1.1 field value, but not
    // a token; the header is unusable, never a reason to drop the connection.
    let resp = send_raw(
        server.addr,
        b"GET /users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.header_all("www-authenticate"), ["Bearer"]);
    let huge = "a".repeat(8 * 1024);
    assert_401(
        &get_me(server.addr, &format!("Bearer {huge}")).await,
        INVALID_CREDENTIALS,
    );
    // Three times over the token limit, within the 16 KiB head cap (past
    // it, 431: tests/connections.rs).
    let part = "a".repeat(4 * 1024);
    let dots = format!("{part}.{part}.{part}");
    assert_401(
        &get_me(server.addr, &format!("Bearer {dots}")).await,
        INVALID_CREDENTIALS,
    );
}
