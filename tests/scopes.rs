//! Scopes (FastAPI's scopes chapter) over TCP with the demo users (johndoe
//! may have `me` and `items`, alice only `me`): what `/token` grants and
//! says it granted, the `scope` claim, the 401 of a route that requires a
//! scope the token lacks. (Their listing in `/openapi.json` is `routing`'s
//! surface.)

use crate::support::*;
use serde_json::json;

/// The keys of a token response, sorted.
fn keys(resp: &Response) -> Vec<String> {
    let body = resp.json();
    let mut keys: Vec<String> = body
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort_unstable();
    keys
}

// Sessions are on by default, so every login answer has a refresh token.
const WITHOUT_SCOPE: [&str; 4] = ["access_token", "expires_in", "refresh_token", "token_type"];
const WITH_SCOPE: [&str; 5] = [
    "access_token",
    "expires_in",
    "refresh_token",
    "scope",
    "token_type",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_requested_scopes_granted_are_not_repeated_in_the_response() {
    let server = start().await;
    let resp = login_with_scope(server.addr, "johndoe", "secret", "me items").await;
    assert_eq!(keys(&resp), WITHOUT_SCOPE, "{}", resp.text());
    assert_eq!(resp.json()["token_type"], "bearer");
    let claims = token_claims(&access_token(&resp));
    assert_eq!(claims["scope"], "me items", "{claims}");
    assert_eq!(claims["sub"], "johndoe");

    // Granted in the order asked; same set, so still no `scope` field.
    let resp = login_with_scope(server.addr, "johndoe", "secret", "items me").await;
    assert_eq!(keys(&resp), WITHOUT_SCOPE, "{}", resp.text());
    assert_eq!(token_claims(&access_token(&resp))["scope"], "items me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_the_user_may_not_have_is_dropped_and_the_response_says_so() {
    let server = start().await;
    let resp = login_with_scope(server.addr, "johndoe", "secret", "me admin").await;
    assert_eq!(keys(&resp), WITH_SCOPE, "{}", resp.text());
    assert_eq!(resp.json()["scope"], "me");
    assert_eq!(token_claims(&access_token(&resp))["scope"], "me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_granted_is_an_empty_scope_field_and_no_claim() {
    let server = start().await;
    // alice may have `me` only; disabled users still log in.
    let resp = login_with_scope(server.addr, "alice", "secret2", "items").await;
    assert_eq!(keys(&resp), WITH_SCOPE, "{}", resp.text());
    assert_eq!(resp.json()["scope"], "");
    assert!(
        resp.text().contains(r#""scope":"""#),
        "an empty string, not null: {}",
        resp.text()
    );
    let claims = token_claims(&access_token(&resp));
    assert!(claims.get("scope").is_none(), "no scope claim: {claims}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_scope_requested_is_no_scope_field_and_no_claim() {
    let server = start().await;
    for body in [
        credentials("johndoe", "secret"),
        credentials_with_scope("johndoe", "secret", ""),
        credentials_with_scope("johndoe", "secret", "   "),
    ] {
        let resp = post_token(server.addr, &body).await;
        assert_eq!(resp.status, 200, "{body}: {}", resp.text());
        assert_eq!(keys(&resp), WITHOUT_SCOPE, "{body}: {}", resp.text());
        let claims = token_claims(&access_token(&resp));
        assert!(claims.get("scope").is_none(), "{body}: {claims}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_scope_is_granted_once() {
    let server = start().await;
    let resp = login_with_scope(server.addr, "johndoe", "secret", "me me  items me").await;
    // The requested set is {me, items}, all granted: no `scope` field.
    assert_eq!(keys(&resp), WITHOUT_SCOPE, "{}", resp.text());
    assert_eq!(token_claims(&access_token(&resp))["scope"], "me items");

    let resp = login_with_scope(server.addr, "johndoe", "secret", "admin me admin").await;
    assert_eq!(resp.json()["scope"], "me", "{}", resp.text());
    assert_eq!(token_claims(&access_token(&resp))["scope"], "me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_requiring_a_scope_refuses_tokens_without_it() {
    let server = start_with_items(password_bearer::Config::new(
        password_bearer::users::Users::demo(),
        test_key(),
    ))
    .await;
    let both = access_token(&login_with_scope(server.addr, "johndoe", "secret", "me items").await);
    let me_only = access_token(&login_with_scope(server.addr, "johndoe", "secret", "me").await);
    let unscoped = login(server.addr, "johndoe", "secret").await;

    let resp = get_items(server.addr, &both).await;
    assert_json_exact(&resp, 200, &items_body("johndoe"));

    for token in [&me_only, &unscoped] {
        let resp = get_items(server.addr, token).await;
        assert_json_exact(&resp, 401, NOT_ENOUGH_PERMISSIONS);
        assert_eq!(
            resp.header_all("www-authenticate"),
            [r#"Bearer scope="items""#],
            "{:?}",
            resp.headers
        );
    }

    // The built-in /users/me requires no scope: the seed's clients, which
    // never ask for one, keep working.
    for token in [&both, &me_only, &unscoped] {
        let resp = get_me(server.addr, &format!("Bearer {token}")).await;
        assert_json_exact(&resp, 200, JOHNDOE_ME);
    }

    // The chain's earlier steps answer first: no token, a bad one, and a
    // disabled user (whose scopes are never looked at).
    let resp = get(server.addr, ITEMS_PATH, &[]).await;
    assert_401(&resp, NOT_AUTHENTICATED);
    let resp = get_items(server.addr, "not-a-token").await;
    assert_401(&resp, INVALID_CREDENTIALS);
    let alice = access_token(&login_with_scope(server.addr, "alice", "secret2", "me").await);
    let resp = get_items(server.addr, &alice).await;
    assert_json_exact(&resp, 400, r#"{"detail":"Inactive user"}"#);
    assert!(resp.header("www-authenticate").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_claim_is_only_as_good_as_its_signature() {
    let server = start_with_items(password_bearer::Config::new(
        password_bearer::users::Users::demo(),
        test_key(),
    ))
    .await;
    // A token minted with the key carries whatever scope it says (the key
    // is the authority, as in FastAPI's chapter)...
    let exp = now() + 60;
    let minted = sign(&format!(
        r#"{{"sub":"johndoe","exp":{exp},"scope":"items"}}"#
    ));
    let resp = get_items(server.addr, &minted).await;
    assert_json_exact(&resp, 200, &items_body("johndoe"));
    // ...and one that adds a scope to a real token is refused outright.
    let real = access_token(&login_with_scope(server.addr, "johndoe", "secret", "me").await);
    let mut parts: Vec<String> = real.split('.').map(str::to_owned).collect();
    let mut payload = token_claims(&real);
    payload["scope"] = json!("me items");
    parts[1] = b64(payload.to_string().as_bytes());
    let resp = get_items(server.addr, &parts.join(".")).await;
    assert_401(&resp, INVALID_CREDENTIALS);
}
