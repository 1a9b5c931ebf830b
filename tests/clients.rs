//! Clients over TCP: the client credentials grant with HTTP Basic and with
//! the form, its failures (401 `invalid_client`, the Basic challenge only
//! for Basic, `invalid_scope`), no refresh token, a client's token refused
//! at `/users/me`; `POST /introspect` (live, revoked, expired, garbage and
//! refresh tokens, a disabled user's; a client not allowed, a bad secret);
//! `/revoke` with client authentication (its own token, not another's);
//! `--clients` and `hash-client-secret` in the binary, SIGHUP's reload,
//! the audit lines; and the time of an unknown client against a wrong
//! secret.
#![cfg(feature = "clients")]

use crate::cli::{run, Proc, TempDir};
use crate::support::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use password_bearer::clients::{generate_secret, hash_secret, Clients};
use password_bearer::users::Users;
use password_bearer::{App, Config};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One client of a clients file: id, secret, scopes, introspect.
type Entry<'a> = (&'a str, &'a str, &'a [&'a str], bool);

/// A clients file holding `entries`, the secrets hashed.
fn clients_json(entries: &[Entry<'_>]) -> String {
    let map: serde_json::Map<String, Value> = entries
        .iter()
        .map(|(id, secret, scopes, introspect)| {
            let entry = serde_json::json!({
                "client_id": id,
                "secret_hash": hash_secret(secret).unwrap(),
                "scopes": scopes,
                "introspect": introspect,
            });
            ((*id).to_owned(), entry)
        })
        .collect();
    Value::Object(map).to_string()
}

/// The secrets of the test clients, made once per test.
struct Secrets {
    billing: String,
    reports: String,
    /// A client named like the demo user.
    johndoe: String,
}

impl Secrets {
    fn new() -> Secrets {
        Secrets {
            billing: generate_secret().unwrap(),
            reports: generate_secret().unwrap(),
            johndoe: generate_secret().unwrap(),
        }
    }

    /// billing: items and me, may introspect; reports: items only, may
    /// not; johndoe: no scope.
    fn file(&self) -> String {
        clients_json(&[
            ("billing", &self.billing, &["items", "me"], true),
            ("reports", &self.reports, &["items"], false),
            ("johndoe", &self.johndoe, &[], false),
        ])
    }
}

/// The demo users, sessions on, and the test clients.
async fn server_with(secrets: &Secrets, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = Config::new(Users::demo(), test_key());
    config.clients = Some(Clients::from_json(&secrets.file()).unwrap());
    config.login_log = false;
    tweak(&mut config);
    start_with(config).await
}

/// `Basic base64(id:secret)`, as RFC 7617 has it.
pub(crate) fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// `POST path` with a form `body` and, when given, `Authorization`.
pub(crate) async fn post_form(
    addr: SocketAddr,
    path: &str,
    body: &str,
    authorization: Option<&str>,
) -> Response {
    let mut headers = vec![("Content-Type", FORM)];
    if let Some(value) = authorization {
        headers.push(("Authorization", value));
    }
    request(addr, "POST", path, &headers, body.as_bytes()).await
}

/// The client credentials grant for `id` by HTTP Basic, asking for `scope`.
pub(crate) async fn grant_basic(addr: SocketAddr, id: &str, secret: &str, scope: &str) -> Response {
    let mut body = "grant_type=client_credentials".to_owned();
    if !scope.is_empty() {
        body.push_str(&format!("&scope={}", scope.replace(' ', "+")));
    }
    post_form(addr, "/token", &body, Some(&basic(id, secret))).await
}

/// The client credentials grant for `id` with the secret in the form.
pub(crate) async fn grant_post(addr: SocketAddr, id: &str, secret: &str) -> Response {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", id)
        .append_pair("client_secret", secret)
        .finish();
    post_form(addr, "/token", &body, None).await
}

/// `POST /introspect` of `token`, as `id` by HTTP Basic.
pub(crate) async fn introspect(
    addr: SocketAddr,
    token: &str,
    (id, secret): (&str, &str),
) -> Response {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    post_form(addr, "/introspect", &body, Some(&basic(id, secret))).await
}

/// The introspection's answer, which must be a 200 with `no-store`.
#[track_caller]
pub(crate) fn answer(resp: &Response) -> Value {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_json_headers(resp);
    resp.json()
}

#[track_caller]
fn assert_inactive(resp: &Response) {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), r#"{"active":false}"#);
}

#[track_caller]
pub(crate) fn assert_invalid_client(resp: &Response, basic: bool) {
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.json()["error"], "invalid_client", "{}", resp.text());
    match basic {
        true => assert_eq!(
            resp.header_all("www-authenticate"),
            [r#"Basic realm="password-bearer", charset="UTF-8""#]
        ),
        false => assert!(
            resp.header("www-authenticate").is_none(),
            "{:?}",
            resp.headers
        ),
    }
}

#[tokio::test]
async fn the_grant_by_basic_and_by_the_form_gives_a_clients_token_without_refresh() {
    let secrets = Secrets::new();
    let server = server_with(&secrets, |_| {}).await;
    for resp in [
        grant_basic(server.addr, "billing", &secrets.billing, "").await,
        grant_post(server.addr, "billing", &secrets.billing).await,
    ] {
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_token_endpoint_headers(&resp);
        let body = resp.json();
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert_eq!(body["token_type"], "bearer");
        // None asked for: all of the client's, and said so.
        assert_eq!(body["scope"], "items me");
        let claims = token_claims(&access_token(&resp));
        assert_eq!(claims["sub"], "billing");
        assert_eq!(claims["client_id"], "billing");
        assert_eq!(claims["gty"], "client-credentials");
        assert_eq!(claims["scope"], "items me");
        // Sessions are on: revocable by its jti.
        assert!(claims["jti"].is_string(), "{claims}");
        assert!(claims.get("sid").is_none(), "{claims}");
    }
    // Exactly what was asked: no `scope` in the answer.
    let resp = grant_basic(server.addr, "billing", &secrets.billing, "items").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.json().get("scope").is_none(), "{}", resp.text());
    assert_eq!(token_claims(&access_token(&resp))["scope"], "items");
}

#[tokio::test]
async fn failed_client_authentication_is_401_invalid_client() {
    let secrets = Secrets::new();
    let server = server_with(&secrets, |_| {}).await;
    let addr = server.addr;
    // A wrong secret and an unknown client, by Basic: challenged.
    assert_invalid_client(
        &grant_basic(addr, "billing", &secrets.reports, "").await,
        true,
    );
    assert_invalid_client(
        &grant_basic(addr, "nobody", &secrets.billing, "").await,
        true,
    );
    // Malformed Basic.
    let resp = post_form(
        addr,
        "/token",
        "grant_type=client_credentials",
        Some("Basic !!"),
    )
    .await;
    assert_invalid_client(&resp, true);
    // By the form: not challenged.
    assert_invalid_client(&grant_post(addr, "billing", &secrets.reports).await, false);
    assert_invalid_client(&grant_post(addr, "nobody", &secrets.billing).await, false);
    // No credentials at all.
    let resp = post_form(addr, "/token", "grant_type=client_credentials", None).await;
    assert_invalid_client(&resp, false);
    // Both ways at once: invalid_request.
    let body = format!(
        "grant_type=client_credentials&client_id=billing&client_secret={}",
        secrets.billing
    );
    let resp = post_form(
        addr,
        "/token",
        &body,
        Some(&basic("billing", &secrets.billing)),
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["error"], "invalid_request");
    // A password grant is as before: a Basic header does not change it.
    let resp = post_form(
        addr,
        "/token",
        &credentials("johndoe", "secret"),
        Some(&basic("billing", "wrong")),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test]
async fn a_scope_beyond_the_clients_is_invalid_scope() {
    let secrets = Secrets::new();
    let server = server_with(&secrets, |_| {}).await;
    let resp = grant_basic(server.addr, "reports", &secrets.reports, "items me").await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["error"], "invalid_scope");
    assert_token_endpoint_headers(&resp);
}

#[tokio::test]
async fn without_clients_the_grant_is_unsupported_as_before() {
    let server = start().await;
    let resp = post_form(
        server.addr,
        "/token",
        "grant_type=client_credentials&client_id=a&client_secret=b",
        None,
    )
    .await;
    assert_422(
        &resp,
        &[
            &grant_type_mismatch("client_credentials"),
            MISSING_USERNAME,
            MISSING_PASSWORD,
        ],
        "unsupported_grant_type",
    );
    let resp = post_form(server.addr, "/introspect", "token=x", None).await;
    assert_eq!(resp.status, 404, "{}", resp.text());
}

#[tokio::test]
async fn a_clients_token_is_never_a_user_at_users_me() {
    let secrets = Secrets::new();
    let server = server_with(&secrets, |_| {}).await;
    // The client "johndoe" is not the user johndoe.
    let resp = grant_basic(server.addr, "johndoe", &secrets.johndoe, "").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let token = access_token(&resp);
    assert_eq!(token_claims(&token)["sub"], "johndoe");
    for _ in 0..2 {
        let resp = get_me(server.addr, &format!("Bearer {token}")).await;
        assert_401(&resp, "Invalid authentication credentials");
    }
    // The user's own token still works.
    let user = login(server.addr, "johndoe", "secret").await;
    assert_eq!(
        get_me(server.addr, &format!("Bearer {user}")).await.status,
        200
    );
}

#[tokio::test]
async fn introspection_answers_for_good_tokens_and_nothing_more_for_the_rest() {
    let secrets = Secrets::new();
    let server = server_with(&secrets, |_| {}).await;
    let addr = server.addr;
    let me = ("billing", secrets.billing.as_str());

    // A client's token.
    let client_token = access_token(&grant_basic(addr, "reports", &secrets.reports, "").await);
    let body = answer(&introspect(addr, &client_token, me).await);
    let claims = token_claims(&client_token);
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], "reports");
    assert_eq!(body["client_id"], "reports");
    assert_eq!(body["scope"], "items");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["exp"], claims["exp"]);
    assert_eq!(body["iat"], claims["iat"]);
    assert!(body.get("username").is_none(), "{body}");

    // A user's token, with a refresh token.
    let login = post_token(
        addr,
        &format!("{}&scope=items", credentials("johndoe", "secret")),
    )
    .await;
    let user_token = access_token(&login);
    let refresh_token = login.json()["refresh_token"].as_str().unwrap().to_owned();
    let body = answer(&introspect(addr, &user_token, me).await);
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], "johndoe");
    assert_eq!(body["username"], "johndoe");
    assert_eq!(body["client_id"], "password-bearer");
    assert_eq!(body["scope"], "items");

    // A refresh token, garbage, a forged token, a disabled user's token.
    assert_inactive(&introspect(addr, &refresh_token, me).await);
    assert_inactive(&introspect(addr, "garbage", me).await);
    let forged = sign_with(
        Hs::S256,
        b"not-the-servers-key-0123456789abcdef",
        HS256_HEADER,
        r#"{"sub":"johndoe","exp":9999999999}"#,
    );
    assert_inactive(&introspect(addr, &forged, me).await);
    let alice = login_token(addr, "alice", "secret2").await;
    assert_inactive(&introspect(addr, &alice, me).await);

    // Revoked: the user's by the public flow, the client's by itself.
    let resp = post_form(addr, "/revoke", &format!("token={user_token}"), None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_inactive(&introspect(addr, &user_token, me).await);
    let resp = post_form(
        addr,
        "/revoke",
        &format!("token={client_token}"),
        Some(&basic("reports", &secrets.reports)),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_inactive(&introspect(addr, &client_token, me).await);

    // The answers of the form client_secret_post too.
    let body = format!(
        "token=garbage&client_id=billing&client_secret={}",
        secrets.billing
    );
    assert_inactive(&post_form(addr, "/introspect", &body, None).await);
}

/// A login's access token (any status but 200 fails).
async fn login_token(addr: SocketAddr, username: &str, password: &str) -> String {
    login(addr, username, password).await
}

#[tokio::test]
async fn introspection_refuses_clients_not_allowed_and_bad_secrets() {
    let secrets = Secrets::new();
    let server = server_with(&secrets, |_| {}).await;
    let addr = server.addr;
    let token = access_token(&grant_basic(addr, "billing", &secrets.billing, "").await);
    let resp = introspect(addr, &token, ("reports", &secrets.reports)).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.json()["error"], "unauthorized_client");
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_invalid_client(
        &introspect(addr, &token, ("billing", &secrets.reports)).await,
        true,
    );
    assert_invalid_client(
        &post_form(addr, "/introspect", &format!("token={token}"), None).await,
        false,
    );
}

#[tokio::test]
async fn an_expired_token_introspects_inactive() {
    let secrets = Secrets::new();
    let server = server_with(&secrets, |config| {
        config.token_ttl = Duration::from_secs(1);
    })
    .await;
    let token = access_token(&grant_basic(server.addr, "reports", &secrets.reports, "").await);
    let me = ("billing", secrets.billing.as_str());
    assert_eq!(
        answer(&introspect(server.addr, &token, me).await)["active"],
        true
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_inactive(&introspect(server.addr, &token, me).await);
}

#[tokio::test]
async fn a_client_revokes_its_own_tokens_and_no_one_elses() {
    let secrets = Secrets::new();
    let server = server_with(&secrets, |_| {}).await;
    let addr = server.addr;
    let me = ("billing", secrets.billing.as_str());
    let theirs = access_token(&grant_basic(addr, "reports", &secrets.reports, "").await);
    let user = login(addr, "johndoe", "secret").await;
    for token in [&theirs, &user] {
        let resp = post_form(
            addr,
            "/revoke",
            &format!("token={token}"),
            Some(&basic("billing", &secrets.billing)),
        )
        .await;
        assert_eq!(resp.status, 400, "{}", resp.text());
        assert_eq!(resp.json()["error"], "unauthorized_client");
        assert_eq!(answer(&introspect(addr, token, me).await)["active"], true);
    }
    // A bad secret on /revoke is 401, and nothing is revoked.
    let resp = post_form(
        addr,
        "/revoke",
        &format!("token={theirs}"),
        Some(&basic("reports", &secrets.billing)),
    )
    .await;
    assert_invalid_client(&resp, true);
    assert_eq!(answer(&introspect(addr, &theirs, me).await)["active"], true);
    // Its own, by the form's credentials.
    let body = format!(
        "token={theirs}&client_id=reports&client_secret={}",
        secrets.reports
    );
    let resp = post_form(addr, "/revoke", &body, None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_inactive(&introspect(addr, &theirs, me).await);
}

#[tokio::test]
async fn failures_and_refusals_are_counted() {
    let secrets = Secrets::new();
    let mut config = Config::new(Users::demo(), test_key());
    config.clients = Some(Clients::from_json(&secrets.file()).unwrap());
    config.login_log = false;
    let app = App::new(config);
    let post = |path: &str, body: String, authorization: String| {
        hyper::Request::post(path)
            .header("content-type", FORM)
            .header("authorization", authorization)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap()
    };
    let wrong = post(
        "/token",
        "grant_type=client_credentials".into(),
        basic("billing", &secrets.reports),
    );
    assert_eq!(app.handle(wrong, None).await.status(), 401);
    let refused = post(
        "/introspect",
        "token=x".into(),
        basic("reports", &secrets.reports),
    );
    assert_eq!(app.handle(refused, None).await.status(), 403);
    let text = app.metrics().encode();
    assert!(
        text.contains("password_bearer_client_auth_failures_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("password_bearer_introspection_refused_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains(r#"password_bearer_requests_total{route="introspect",status="403"} 1"#),
        "{text}"
    );
}

#[test]
fn hash_client_secret_prints_the_stored_form_and_refuses_weak_secrets() {
    let secret = generate_secret().unwrap();
    let out = run(&["hash-client-secret"], format!("{secret}\n").as_bytes());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n", hash_secret(&secret).unwrap())
    );

    let out = run(&["hash-client-secret", "--generate"], b"");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0].len(), 43);
    assert_eq!(lines[1], hash_secret(lines[0]).unwrap());

    let out = run(&["hash-client-secret"], b"hunter2\n");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--generate") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

#[test]
fn a_bad_clients_file_stops_the_start_naming_the_client_not_the_hash() {
    let tmp = TempDir::new();
    let argon2 = password_bearer::password::hash_password("a password").unwrap();
    let file = format!(r#"{{"billing": {{"client_id": "billing", "secret_hash": "{argon2}"}}}}"#);
    let path = tmp.file("clients.json", file.as_bytes());
    let out = run(&["--port", "0", "--clients", &path], b"");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--clients") && stderr.contains("\"billing\""),
        "{stderr}"
    );
    assert!(!stderr.contains(&argon2[10..]), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_clients_and_a_bad_file_changes_nothing() {
    let secrets = Secrets::new();
    let tmp = TempDir::new();
    let before = clients_json(&[("billing", &secrets.billing, &["items"], true)]);
    let path = tmp.file("clients.json", before.as_bytes());
    let mut proc = Proc::spawn(&["--port", "0", "--clients", &path]);
    let addr = proc.wait_listening();
    assert_eq!(
        grant_basic(addr, "billing", &secrets.billing, "")
            .await
            .status,
        200
    );
    let resp = grant_basic(addr, "reports", &secrets.reports, "").await;
    assert_invalid_client(&resp, true);
    // The audit line: no secret, and an unknown id not named.
    let line = proc.wait_line("client authentication failed");
    assert!(line.contains("unknown client"), "{line}");
    assert!(
        !line.contains(&secrets.reports) && !line.contains("reports"),
        "{line}"
    );
    assert_invalid_client(
        &grant_basic(addr, "billing", &secrets.reports, "").await,
        true,
    );
    let line = proc.wait_line("client authentication failed");
    assert!(line.contains(r#"client_id="billing""#), "{line}");
    assert!(!line.contains(&secrets.reports), "{line}");

    // billing removed, reports added.
    let after = clients_json(&[("reports", &secrets.reports, &["items"], true)]);
    tmp.file("clients.json", after.as_bytes());
    proc.signal("HUP");
    let line = proc.wait_line("reloaded");
    assert!(line.contains("1 clients"), "{line}");
    assert_invalid_client(
        &grant_basic(addr, "billing", &secrets.billing, "").await,
        true,
    );
    assert_eq!(
        grant_basic(addr, "reports", &secrets.reports, "")
            .await
            .status,
        200
    );

    // A broken file: the running clients stay.
    tmp.file(
        "clients.json",
        b"{\"reports\": {\"client_id\": \"reports\"}}",
    );
    proc.signal("HUP");
    let line = proc.wait_line("reload failed");
    assert!(line.contains("clients"), "{line}");
    assert_eq!(
        grant_basic(addr, "reports", &secrets.reports, "")
            .await
            .status,
        200
    );
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Loose by design: the bound catches a path that does real work for a
/// known client only (a slow hash, a store lookup), not nanoseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_client_takes_as_long_as_a_wrong_secret() {
    let secrets = Secrets::new();
    let server = server_with(&secrets, |config| {
        config.throttle.per_user = 0;
        config.throttle.per_ip = 0;
    })
    .await;
    let addr = server.addr;
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for round in 0..200 {
        let cases = [("nobody", &mut unknown), ("billing", &mut wrong)];
        let mut cases = cases.into_iter().collect::<Vec<_>>();
        if round % 2 == 1 {
            cases.reverse();
        }
        for (id, times) in cases {
            let start = Instant::now();
            let resp = grant_basic(addr, id, &secrets.reports, "").await;
            times.push(start.elapsed());
            assert_eq!(resp.status, 401);
        }
    }
    let (unknown, wrong) = (median(&mut unknown), median(&mut wrong));
    let (low, high) = (unknown.min(wrong), unknown.max(wrong));
    assert!(
        high < low * 2 + Duration::from_micros(500),
        "unknown {unknown:?} vs wrong secret {wrong:?}"
    );
}

#[cfg(feature = "signing")]
#[tokio::test]
async fn the_metadata_lists_introspection_and_the_client_auth_methods() {
    let secrets = Secrets::new();
    let server = server_with(&secrets, |config| {
        config.issuer = Some("https://auth.example".into());
    })
    .await;
    let resp = get(server.addr, "/.well-known/oauth-authorization-server", &[]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    assert_eq!(
        body["introspection_endpoint"],
        "https://auth.example/introspect"
    );
    assert_eq!(
        body["introspection_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        body["token_endpoint_auth_methods_supported"],
        serde_json::json!(["none", "client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        body["grant_types_supported"],
        serde_json::json!(["password", "refresh_token", "client_credentials"])
    );
    // RFC 9068 for a client's token too; introspection shows iss and aud.
    let resp = grant_basic(server.addr, "reports", &secrets.reports, "").await;
    let token = access_token(&resp);
    let me = ("billing", secrets.billing.as_str());
    let body = answer(&introspect(server.addr, &token, me).await);
    assert_eq!(body["iss"], "https://auth.example");
    assert_eq!(body["aud"], "https://auth.example");
    assert_eq!(body["client_id"], "reports");
    assert!(body["jti"].is_string(), "{body}");
}
