//! The refresh grant and `POST /revoke` as a client sees them, on one
//! server keeping its sessions in memory: a login's refresh token, its
//! rotation, a reused token revoking the whole session (racing refreshes
//! too), scopes that only narrow, refused grants, `POST /revoke` for each
//! kind of token, the session caps under a flood of logins, and failed
//! refreshes throttled. What must hold in every store, across restarts
//! and instances (revocation floods, password changes, lost answers), is
//! `promises`' surface.

use crate::support::*;
use password_bearer::sessions::memory::MemorySessions;
use password_bearer::users::Users;
use password_bearer::Config;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinSet;

const INVALID_REFRESH: &str = r#"{"detail":"Invalid refresh token","error":"invalid_grant","error_description":"The refresh token is unknown, expired, revoked or used up, or its user can no longer log in"}"#;
const INVALID_SCOPE: &str = r#"{"detail":"Invalid scope","error":"invalid_scope","error_description":"The requested scope is beyond the scope granted at login"}"#;

/// A login's whole answer (tests/redis.rs and tests/promises/ use these
/// helpers too).
pub(crate) async fn login_json(
    addr: SocketAddr,
    username: &str,
    password: &str,
    scope: &str,
) -> Value {
    let body = credentials_with_scope(username, password, scope);
    let resp = post_token(addr, &body).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

pub(crate) fn field(json: &Value, name: &str) -> String {
    json[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {json}"))
        .to_owned()
}

/// `grant_type=refresh_token` with `refresh_token` and, when given, `scope`.
pub(crate) async fn refresh(
    addr: SocketAddr,
    refresh_token: &str,
    scope: Option<&str>,
) -> Response {
    let body = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token);
        if let Some(scope) = scope {
            form.append_pair("scope", scope);
        }
        form.finish()
    };
    let resp = post_token(addr, &body).await;
    assert_token_endpoint_headers(&resp);
    resp
}

/// A login's access and refresh tokens.
pub(crate) async fn log_in(addr: SocketAddr, username: &str, password: &str) -> (String, String) {
    let json = login_json(addr, username, password, "").await;
    (field(&json, "access_token"), field(&json, "refresh_token"))
}

/// A refresh that must succeed: its access and refresh tokens.
pub(crate) async fn refreshed(addr: SocketAddr, refresh_token: &str) -> (String, String) {
    let resp = refresh(addr, refresh_token, None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let json = resp.json();
    (field(&json, "access_token"), field(&json, "refresh_token"))
}

/// A refresh that must be refused as a bad refresh token.
pub(crate) async fn refused(addr: SocketAddr, refresh_token: &str) {
    assert_json_exact(
        &refresh(addr, refresh_token, None).await,
        400,
        INVALID_REFRESH,
    );
}

pub(crate) async fn revoke(addr: SocketAddr, token: &str) -> Response {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    request(
        addr,
        "POST",
        "/revoke",
        &[("Content-Type", FORM)],
        body.as_bytes(),
    )
    .await
}

#[track_caller]
fn assert_revoked_ok(resp: &Response) {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.body.is_empty(), "{}", resp.text());
    assert_eq!(
        resp.header_all("cache-control"),
        ["no-store"],
        "{:?}",
        resp.headers
    );
}

pub(crate) async fn me_status(addr: SocketAddr, access_token: &str) -> u16 {
    get_me(addr, &format!("Bearer {access_token}")).await.status
}

pub(crate) fn quiet() -> Config {
    let mut config = Config::new(Users::demo(), test_key());
    config.login_log = false;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_rotates_the_refresh_token_and_costs_no_password() {
    let server = start_with(quiet()).await;
    let login = login_json(server.addr, "johndoe", "secret", "me").await;
    let first = field(&login, "refresh_token");
    assert_eq!(first.len(), 48, "{first}");
    let (_, claims) = decode_verified(&field(&login, "access_token"), TEST_KEY);

    let resp = refresh(server.addr, &first, None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "refresh_token", "token_type"]
    );
    let second = field(&body, "refresh_token");
    assert_ne!(second, first);
    let access = field(&body, "access_token");
    let (header, new_claims) = decode_verified(&access, TEST_KEY);
    assert_eq!(header["kid"], test_key().kid());
    // The same session, a new token id, the session's scope.
    assert_eq!(new_claims["sid"], claims["sid"]);
    assert_ne!(new_claims["jti"], claims["jti"]);
    assert_eq!(new_claims["scope"], "me");
    assert_json_exact(
        &get_me(server.addr, &format!("Bearer {access}")).await,
        200,
        JOHNDOE_ME,
    );
    // The next one rotates again.
    let resp = refresh(server.addr, &second, None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_refresh_token_revokes_the_whole_session() {
    let server = start_with(quiet()).await;
    let login = login_json(server.addr, "johndoe", "secret", "").await;
    let (first_access, first_refresh) = (
        field(&login, "access_token"),
        field(&login, "refresh_token"),
    );
    let rotated = refresh(server.addr, &first_refresh, None).await.json();
    let rotated = refresh(server.addr, &field(&rotated, "refresh_token"), None)
        .await
        .json();
    let (third_access, third_refresh) = (
        field(&rotated, "access_token"),
        field(&rotated, "refresh_token"),
    );
    assert_eq!(me_status(server.addr, &first_access).await, 200);
    // A used-up token again, two rotations back: it was stolen. (The one
    // just before the current one is forgiven once, for a client whose
    // answer was lost: tests/promises/sessions.rs.)
    let resp = refresh(server.addr, &first_refresh, None).await;
    assert_json_exact(&resp, 400, INVALID_REFRESH);
    // Every token of the session is dead, the ones issued before included.
    assert_401(
        &get_me(server.addr, &format!("Bearer {first_access}")).await,
        INVALID_CREDENTIALS,
    );
    assert_eq!(me_status(server.addr, &third_access).await, 401);
    assert_json_exact(
        &refresh(server.addr, &third_refresh, None).await,
        400,
        INVALID_REFRESH,
    );
    // Another login is another session.
    let again = login_json(server.addr, "johndoe", "secret", "").await;
    assert_eq!(
        me_status(server.addr, &field(&again, "access_token")).await,
        200
    );
}

/// Three refreshes with one token at once: one rotates it, one is taken
/// for the retry of a client whose answer was lost (forgiven once, within
/// the retry window), and the third is a reuse, which ends the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_refreshes_racing_with_one_token_revoke_the_session() {
    let server = start_with(quiet()).await;
    let login = login_json(server.addr, "johndoe", "secret", "").await;
    let token = field(&login, "refresh_token");
    let mut racing = JoinSet::new();
    for _ in 0..3 {
        let (addr, token) = (server.addr, token.clone());
        racing.spawn(async move { refresh(addr, &token, None).await });
    }
    let mut answers = Vec::new();
    while let Some(resp) = racing.join_next().await {
        answers.push(resp.expect("the refresh task"));
    }
    answers.sort_by_key(|r| r.status);
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 400]);
    // The winners' tokens are dead too: one of the three was not the holder.
    for winner in &answers[..2] {
        let winner = winner.json();
        assert_eq!(
            me_status(server.addr, &field(&winner, "access_token")).await,
            401
        );
        let resp = refresh(server.addr, &field(&winner, "refresh_token"), None).await;
        assert_eq!(resp.status, 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_may_narrow_the_scope_never_widen_it() {
    let server = start_with(quiet()).await;
    let login = login_json(server.addr, "johndoe", "secret", "me items").await;
    let resp = refresh(server.addr, &field(&login, "refresh_token"), Some("me")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let narrowed = resp.json();
    assert!(
        narrowed.get("scope").is_none(),
        "granted as asked: {narrowed}"
    );
    assert_eq!(
        token_claims(&field(&narrowed, "access_token"))["scope"],
        "me"
    );
    // Narrowing one token does not narrow the session.
    let resp = refresh(server.addr, &field(&narrowed, "refresh_token"), None).await;
    let full = resp.json();
    assert_eq!(
        token_claims(&field(&full, "access_token"))["scope"],
        "me items"
    );
    // Beyond the grant: refused, and the token is not used up.
    let login = login_json(server.addr, "johndoe", "secret", "me").await;
    let token = field(&login, "refresh_token");
    let resp = refresh(server.addr, &token, Some("me items")).await;
    assert_json_exact(&resp, 400, INVALID_SCOPE);
    assert_eq!(refresh(server.addr, &token, Some("me")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_of_disabled_users_and_garbage_are_invalid_grant() {
    let server = start_with(quiet()).await;
    // Disabled users log in (the seed checks at use), but cannot refresh.
    let alice = login_json(server.addr, "alice", "secret2", "").await;
    let resp = refresh(server.addr, &field(&alice, "refresh_token"), None).await;
    assert_json_exact(&resp, 400, INVALID_REFRESH);
    let johndoe = login_json(server.addr, "johndoe", "secret", "").await;
    let real = field(&johndoe, "refresh_token");
    let mut tampered = real.clone().into_bytes();
    tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
    for garbage in [
        "x".to_owned(),
        String::from_utf8(tampered).unwrap(),
        field(&johndoe, "access_token"),
        "A".repeat(48),
    ] {
        let resp = refresh(server.addr, &garbage, None).await;
        assert_json_exact(&resp, 400, INVALID_REFRESH);
    }
    // The real one was never used up by all that.
    assert_eq!(refresh(server.addr, &real, None).await.status, 200);
    // No refresh token at all: FastAPI's missing entry.
    let resp = post_token(server.addr, "grant_type=refresh_token").await;
    assert_422(
        &resp,
        &[
            r#"{"type":"missing","loc":["body","refresh_token"],"msg":"Field required","input":null}"#,
        ],
        "invalid_request",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_refreshes_count_against_the_address() {
    let mut config = quiet();
    config.throttle.per_ip = 3;
    let server = start_with(config).await;
    let login = login_json(server.addr, "johndoe", "secret", "").await;
    let good = field(&login, "refresh_token");
    for _ in 0..3 {
        assert_eq!(refresh(server.addr, "not a token", None).await.status, 400);
    }
    // The address is throttled now, even for a good token, unhashed.
    let resp = refresh(server.addr, &good, None).await;
    assert_eq!(resp.status, 429, "{}", resp.text());
    assert!(resp.header("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_refresh_token_ends_its_session_at_once() {
    let server = start_with(quiet()).await;
    let login = login_json(server.addr, "johndoe", "secret", "").await;
    let access = field(&login, "access_token");
    let other = login_json(server.addr, "johndoe", "secret", "").await;
    assert_eq!(me_status(server.addr, &access).await, 200);
    assert_revoked_ok(&revoke(server.addr, &field(&login, "refresh_token")).await);
    assert_401(
        &get_me(server.addr, &format!("Bearer {access}")).await,
        INVALID_CREDENTIALS,
    );
    let resp = refresh(server.addr, &field(&login, "refresh_token"), None).await;
    assert_json_exact(&resp, 400, INVALID_REFRESH);
    // Another session of the same user lives on.
    assert_eq!(
        me_status(server.addr, &field(&other, "access_token")).await,
        200
    );
    // Revoking it again, or a used-up token of it: still 200.
    assert_revoked_ok(&revoke(server.addr, &field(&login, "refresh_token")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_access_token_ends_that_token_only() {
    let server = start_with(quiet()).await;
    let login = login_json(server.addr, "johndoe", "secret", "").await;
    let first = field(&login, "access_token");
    let rotated = refresh(server.addr, &field(&login, "refresh_token"), None)
        .await
        .json();
    let second = field(&rotated, "access_token");
    assert_revoked_ok(&revoke(server.addr, &first).await);
    assert_eq!(me_status(server.addr, &first).await, 401);
    // The session and its other tokens go on.
    assert_eq!(me_status(server.addr, &second).await, 200);
    assert_eq!(
        refresh(server.addr, &field(&rotated, "refresh_token"), None)
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_answers_200_to_anything_and_422_without_a_token() {
    let server = start_with(quiet()).await;
    let pyjwt = sign(&format!(r#"{{"sub":"johndoe","exp":{}}}"#, now() + 600));
    for token in ["unknown", "A".repeat(48).as_str(), pyjwt.as_str()] {
        assert_revoked_ok(&revoke(server.addr, token).await);
    }
    // A token minted elsewhere (no jti) names nothing to revoke.
    assert_eq!(me_status(server.addr, &pyjwt).await, 200);
    let resp = request(
        server.addr,
        "POST",
        "/revoke",
        &[("Content-Type", FORM)],
        b"",
    )
    .await;
    assert_422(
        &resp,
        &[r#"{"type":"missing","loc":["body","token"],"msg":"Field required","input":null}"#],
        "invalid_request",
    );
    let resp = request(
        server.addr,
        "POST",
        "/revoke",
        &[("Content-Type", FORM)],
        b"token=a&token=b",
    )
    .await;
    assert_422(&resp, &[&duplicate("token")], "invalid_request");
    let resp = get(server.addr, "/revoke", &[]).await;
    assert_eq!((resp.status, resp.header("allow")), (405, Some("POST")));
    let resp = get(server.addr, "/revoke/", &[]).await;
    assert_eq!(
        (resp.status, resp.header("location")),
        (307, Some("/revoke"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_caps_hold_under_a_flood_of_logins() {
    let mut config = Config::new(
        users_with(&[("johndoe", "secret", false), ("carol", "carol's", false)]),
        test_key(),
    );
    config.login_log = false;
    config.throttle.per_user = 0;
    config.sessions = Some(Arc::new(MemorySessions::new(4, 3)));
    let server = start_with(config).await;
    let carol = login_json(server.addr, "carol", "carol's", "").await;
    // Ten logins of one user, eight at once: only their three newest
    // sessions are kept, and nobody else's is evicted.
    let mut flood = JoinSet::new();
    for _ in 0..8 {
        let addr = server.addr;
        flood.spawn(async move { login_json(addr, "johndoe", "secret", "").await });
    }
    let mut logins = Vec::new();
    while let Some(login) = flood.join_next().await {
        logins.push(login.expect("the login task"));
    }
    for _ in 0..2 {
        logins.push(login_json(server.addr, "johndoe", "secret", "").await);
    }
    let mut alive = 0;
    for login in &logins {
        // Evicted sessions' access tokens live until they expire.
        assert_eq!(
            me_status(server.addr, &field(login, "access_token")).await,
            200
        );
        let resp = refresh(server.addr, &field(login, "refresh_token"), None).await;
        alive += usize::from(resp.status == 200);
    }
    assert_eq!(alive, 3);
    let resp = refresh(server.addr, &field(&carol, "refresh_token"), None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}
