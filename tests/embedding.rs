//! The crate as an embedder uses it: `App::handle` called without sockets,
//! a user store of our own with async lookups, the auth chain called from a
//! handler of our own (each error's response is the contract's; revoked
//! tokens refused), the client address that `handle` throttles by, a store
//! that fails, and `examples/embed.rs` itself served over TCP. (The
//! building blocks used alone, keys, tokens, hashes and users files, are
//! `library`'s surface.)

use crate::support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{HeaderMap, Request};
use password_bearer::auth::{current_active_user, current_user, require_scopes, CurrentUser};
use password_bearer::bearer::bearer_token;
use password_bearer::error::ApiError;
use password_bearer::password::hash_password;
use password_bearer::users::{StoreError, User, UserStore, Users};
use password_bearer::{App, Config};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::RwLock;

/// The example, compiled into the tests so that its routing is tested too.
#[path = "../examples/embed.rs"]
mod example;

/// A response read in-process: status, headers, body text.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    async fn of(response: hyper::Response<Full<Bytes>>) -> Answer {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("a full body").to_bytes();
        Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).expect("a UTF-8 body"),
        }
    }

    fn header_all(&self, name: hyper::header::HeaderName) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("an ASCII header"))
            .collect()
    }

    /// Status, `application/json` and the exact body.
    #[track_caller]
    fn assert_json(&self, status: u16, body: &str) {
        assert_eq!(self.status, status, "status; body {}", self.body);
        assert_eq!(self.header_all(CONTENT_TYPE), ["application/json"]);
        assert_eq!(self.body, body);
    }

    /// A 401 with `detail` and the plain Bearer challenge.
    #[track_caller]
    fn assert_401(&self, detail: &str) {
        self.assert_json(401, &format!(r#"{{"detail":"{detail}"}}"#));
        assert_eq!(self.header_all(WWW_AUTHENTICATE), ["Bearer"]);
    }
}

fn demo_app() -> App<Users> {
    App::new(Config::new(Users::demo(), test_key()))
}

fn form_request(body: String) -> Request<Full<Bytes>> {
    Request::post("/token")
        .header(CONTENT_TYPE, FORM)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid request")
}

fn get_request(path: &str, authorization: Option<&str>) -> Request<Full<Bytes>> {
    let mut request = Request::get(path);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.body(Full::default()).expect("a valid request")
}

/// Logs in through `App::handle` and returns the access token.
async fn token_of<S: UserStore>(app: &App<S>, form: String) -> String {
    let answer = Answer::of(app.handle(form_request(form), None).await).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON");
    body["access_token"]
        .as_str()
        .expect("a string token")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_answers_without_a_socket() {
    let app = demo_app();
    let login = Answer::of(
        app.handle(form_request(credentials("johndoe", "secret")), None)
            .await,
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.header_all(CONTENT_TYPE), ["application/json"]);
    assert_eq!(login.header_all(CACHE_CONTROL), ["no-store"]);
    let body: serde_json::Value = serde_json::from_str(&login.body).expect("JSON");
    assert_eq!(body["token_type"], "bearer");
    let token = body["access_token"].as_str().expect("a string token");
    assert_eq!(token_claims(token)["sub"], "johndoe");

    let bearer = format!("Bearer {token}");
    let me = Answer::of(
        app.handle(get_request("/users/me", Some(&bearer)), None)
            .await,
    )
    .await;
    me.assert_json(200, JOHNDOE_ME);
    let nope = Answer::of(app.handle(get_request("/nope", Some(&bearer)), None).await).await;
    nope.assert_json(404, r#"{"detail":"Not Found"}"#);
    let anonymous = Answer::of(app.handle(get_request("/users/me", None), None).await).await;
    anonymous.assert_401(NOT_AUTHENTICATED);
    let wrong = Answer::of(
        app.handle(form_request(credentials("johndoe", "nope")), None)
            .await,
    )
    .await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert!(
        wrong.body.contains(r#""error":"invalid_grant""#),
        "{}",
        wrong.body
    );

    // Any body type will do: hyper's `Incoming` in a server, `Empty` or a
    // `String` in a test.
    let empty = Request::get("/users/me")
        .header("authorization", &bearer)
        .body(Empty::<Bytes>::new())
        .expect("a valid request");
    Answer::of(app.handle(empty, None).await)
        .await
        .assert_json(200, JOHNDOE_ME);
    let text = Request::post("/token")
        .header(CONTENT_TYPE, FORM)
        .body(credentials("johndoe", "secret"))
        .expect("a valid request");
    assert_eq!(Answer::of(app.handle(text, None).await).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_throttles_failed_logins_by_the_client_address_it_is_given() {
    let mut config = Config::new(Users::demo(), test_key());
    config.throttle.per_user = 0;
    config.throttle.per_ip = 3;
    config.login_log = false;
    let app = App::new(config);
    let guesser = Some("192.0.2.7:40000".parse().expect("an address"));
    let neighbour = Some("192.0.2.8:40000".parse().expect("an address"));
    for name in ["a", "b", "c"] {
        let answer = Answer::of(
            app.handle(form_request(credentials(name, "x")), guesser)
                .await,
        );
        assert_eq!(answer.await.status, 400);
    }
    // The guessing address is refused even the right password; another
    // address is not.
    let refused = app.handle(form_request(credentials("johndoe", "secret")), guesser);
    assert_eq!(Answer::of(refused.await).await.status, 429);
    let served = app.handle(form_request(credentials("johndoe", "secret")), neighbour);
    assert_eq!(Answer::of(served.await).await.status, 200);
}

/// The contract's response for each error of the chain, as an embedder's
/// handler returns it with `into_response`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_called_from_a_handler_of_our_own() {
    let app = demo_app();
    async fn respond(error: ApiError) -> Answer {
        Answer::of(error.into_response()).await
    }

    // bearer_token: no credentials at all, then credentials that fail.
    for header in [
        None,
        Some(&b""[..]),
        Some(b"Basic Zm9vOmJhcg=="),
        Some(b"abc"),
    ] {
        let error = bearer_token(header).expect_err("no bearer token");
        assert_eq!(error, ApiError::NotAuthenticated, "{header:?}");
        respond(error).await.assert_401(NOT_AUTHENTICATED);
    }
    let error = bearer_token(Some(b"Bearer ")).expect_err("an empty token");
    respond(error).await.assert_401(INVALID_CREDENTIALS);
    assert_eq!(bearer_token(Some(b"bearer  abc ")), Ok("abc"));

    // current_user: a bad token, and a good one naming nobody we have.
    let error = current_user(&app, "not-a-token")
        .await
        .expect_err("refused");
    respond(error).await.assert_401(INVALID_CREDENTIALS);
    let ghost = sign(&format!(r#"{{"sub":"ghost","exp":{}}}"#, now() + 60));
    let error = current_user(&app, &ghost).await.expect_err("no such user");
    respond(error).await.assert_401(INVALID_CREDENTIALS);

    // current_active_user: alice is current but not active.
    let alice = token_of(&app, credentials_with_scope("alice", "secret2", "me")).await;
    let current = current_user(&app, &alice).await.expect("a current user");
    assert_eq!(current.user.username(), "alice");
    let error = current_active_user(current).expect_err("disabled");
    let answer = respond(error).await;
    answer.assert_json(400, r#"{"detail":"Inactive user"}"#);
    assert!(answer.headers.get(WWW_AUTHENTICATE).is_none());

    // require_scopes: the challenge names every required scope.
    let token = token_of(&app, credentials_with_scope("johndoe", "secret", "me")).await;
    let header = format!("Bearer {token}");
    let token = bearer_token(Some(header.as_bytes())).expect("a bearer token");
    let current: CurrentUser = current_active_user(current_user(&app, token).await.expect("ok"))
        .expect("johndoe is active");
    assert_eq!(current.user.username(), "johndoe");
    assert_eq!(current.claims.sub, "johndoe");
    assert_eq!(current.claims.scopes().collect::<Vec<_>>(), ["me"]);
    assert_eq!(require_scopes(&current, &["me"]), Ok(()));
    assert_eq!(require_scopes(&current, &[]), Ok(()));
    for (required, challenge) in [
        (&["items"][..], r#"Bearer scope="items""#),
        (&["me", "items"][..], r#"Bearer scope="me items""#),
    ] {
        let error = require_scopes(&current, required).expect_err("not granted");
        let answer = respond(error).await;
        answer.assert_json(401, NOT_ENOUGH_PERMISSIONS);
        assert_eq!(answer.header_all(WWW_AUTHENTICATE), [challenge]);
    }
}

/// The chain refuses revoked tokens at once for an embedder's routes too:
/// `current_user` checks the same deny-list as `/users/me`.
#[tokio::test]
async fn the_chain_refuses_revoked_tokens_for_routes_of_our_own() {
    let app = demo_app();
    async fn login(app: &App<Users>) -> (String, String) {
        let form = credentials_with_scope("johndoe", "secret", "me");
        let answer = Answer::of(app.handle(form_request(form), None).await).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let body: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON");
        let field = |name: &str| body[name].as_str().expect("a string").to_owned();
        (field("access_token"), field("refresh_token"))
    }
    async fn revoke(app: &App<Users>, token: &str) {
        let request = Request::post("/revoke")
            .header(CONTENT_TYPE, FORM)
            .body(Full::new(Bytes::from(format!("token={token}"))))
            .expect("a valid request");
        let answer = Answer::of(app.handle(request, None).await).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    async fn guarded_route(app: &App<Users>, token: &str) -> Result<(), ApiError> {
        let current = current_active_user(current_user(app, token).await?)?;
        require_scopes(&current, &["me"])
    }

    // One access token revoked: it is refused, another of the user's is not.
    let (first, _) = login(&app).await;
    let (second, second_refresh) = login(&app).await;
    assert_eq!(guarded_route(&app, &first).await, Ok(()));
    revoke(&app, &first).await;
    assert_eq!(
        guarded_route(&app, &first).await,
        Err(ApiError::InvalidCredentials)
    );
    assert_eq!(guarded_route(&app, &second).await, Ok(()));

    // A refresh token revoked: every access token of its session is refused.
    revoke(&app, &second_refresh).await;
    assert_eq!(
        guarded_route(&app, &second).await,
        Err(ApiError::InvalidCredentials)
    );
}

/// A store of our own, standing in for a database: async lookups (counted)
/// and users that change while the server runs.
#[derive(Clone, Default)]
struct Directory {
    users: Arc<RwLock<HashMap<String, Arc<User>>>>,
    lookups: Arc<AtomicUsize>,
}

impl Directory {
    async fn put(&self, user: User) {
        let mut users = self.users.write().await;
        users.insert(user.username().to_owned(), Arc::new(user));
    }
}

impl UserStore for Directory {
    async fn find(&self, username: &str) -> Result<Option<Arc<User>>, StoreError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        // Give the runtime a turn, as a query would.
        tokio::task::yield_now().await;
        Ok(self.users.read().await.get(username).cloned())
    }

    fn scopes(&self) -> Vec<String> {
        vec!["reports".to_owned()]
    }
}

fn carol(hash: &str, disabled: Option<bool>) -> User {
    let mut carol = User::builder("carol", hash).scopes(["reports"]);
    if let Some(disabled) = disabled {
        carol = carol.disabled(disabled);
    }
    carol.build().expect("an argon2 hash and a scope token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_our_own_backs_a_server() {
    let hash = hash_password("carol's password").expect("hashing succeeds");
    let directory = Directory::default();
    directory.put(carol(&hash, None)).await;
    let server = start_store(Config::new(directory.clone(), test_key())).await;

    let resp = login_with_scope(server.addr, "carol", "carol's password", "reports").await;
    let token = access_token(&resp);
    assert_eq!(token_claims(&token)["scope"], "reports");
    let bearer = format!("Bearer {token}");
    let resp = get_me(server.addr, &bearer).await;
    assert_json_exact(
        &resp,
        200,
        r#"{"username":"carol","email":null,"full_name":null,"disabled":null}"#,
    );
    assert_invalid_grant(&post_token(server.addr, &credentials("carol", "wrong")).await);
    assert_invalid_grant(&post_token(server.addr, &credentials("dave", "anything")).await);
    assert!(directory.lookups.load(Ordering::Relaxed) >= 4);

    // The store is asked at every request: changes apply at once.
    directory.put(carol(&hash, Some(true))).await;
    let resp = get_me(server.addr, &bearer).await;
    assert_json_exact(&resp, 400, r#"{"detail":"Inactive user"}"#);
    directory.users.write().await.remove("carol");
    assert_401(&get_me(server.addr, &bearer).await, INVALID_CREDENTIALS);

    let doc = get(server.addr, "/openapi.json", &[]).await.json();
    assert_eq!(
        doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]["scopes"],
        serde_json::json!({"reports": ""})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_of_our_own_next_to_handle() {
    let server = start_with_items(Config::new(Users::demo(), test_key())).await;
    let token = access_token(&login_with_scope(server.addr, "johndoe", "secret", "items").await);
    assert_json_exact(
        &get_items(server.addr, &token).await,
        200,
        &items_body("johndoe"),
    );
    let resp = get_me(server.addr, &format!("Bearer {token}")).await;
    assert_json_exact(&resp, 200, JOHNDOE_ME);
    let resp = get(server.addr, "/nope", &[]).await;
    assert_json_exact(&resp, 404, r#"{"detail":"Not Found"}"#);
    let resp = request(server.addr, "GET", "/users/me/", &[], b"").await;
    assert_eq!(resp.header("location"), Some("/users/me"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_serves_its_route_and_ours() {
    let config = Config::new(
        example::Database::with_johndoe().expect("the example's user"),
        test_key(),
    );
    let app = Arc::new(App::new(config));
    let server = start_loop(|listener, shutdown| async move {
        example::serve_embedded(listener, app, shutdown).await
    })
    .await;

    let both = login_with_scope(server.addr, "johndoe", "secret", "me items").await;
    let both = access_token(&both);
    assert_json_exact(
        &get_items(server.addr, &both).await,
        200,
        &items_body("johndoe"),
    );
    let me_only = access_token(&login_with_scope(server.addr, "johndoe", "secret", "me").await);
    let resp = get_items(server.addr, &me_only).await;
    assert_json_exact(&resp, 401, NOT_ENOUGH_PERMISSIONS);
    assert_eq!(
        resp.header_all("www-authenticate"),
        [r#"Bearer scope="items""#]
    );
    assert_401(&get(server.addr, ITEMS_PATH, &[]).await, NOT_AUTHENTICATED);
    let resp = request(server.addr, "POST", ITEMS_PATH, &[], b"").await;
    assert_json_exact(&resp, 405, r#"{"detail":"Method Not Allowed"}"#);
    assert_eq!(resp.header_all("allow"), ["GET"]);

    // The crate's routes, unchanged.
    let resp = get_me(server.addr, &format!("Bearer {me_only}")).await;
    assert_json_exact(&resp, 200, JOHNDOE_ME);
    assert_invalid_grant(&post_token(server.addr, &credentials("johndoe", "nope")).await);
    let resp = get(server.addr, "/nope", &[]).await;
    assert_json_exact(&resp, 404, r#"{"detail":"Not Found"}"#);
    let doc = get(server.addr, "/openapi.json", &[]).await.json();
    assert_eq!(
        doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]["scopes"],
        serde_json::json!({"items": "", "me": ""})
    );

    server
        .shutdown_within(std::time::Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_hands_the_client_address_on() {
    // The example mounts `App::handle` with the address `serve_with` gives
    // it: an embedded server throttles per address like ours.
    let mut config = Config::new(
        example::Database::with_johndoe().expect("the example's user"),
        test_key(),
    );
    config.throttle.per_user = 0;
    config.throttle.per_ip = 2;
    config.login_log = false;
    let app = Arc::new(App::new(config));
    let server = start_loop(|listener, shutdown| async move {
        example::serve_embedded(listener, app, shutdown).await
    })
    .await;
    let (guesser, neighbour) = (loopback(2), loopback(3));
    for _ in 0..2 {
        let resp = post_token_from(server.addr, guesser, &credentials("johndoe", "x")).await;
        assert_invalid_grant(&resp);
    }
    let right = credentials("johndoe", "secret");
    assert_eq!(
        post_token_from(server.addr, guesser, &right).await.status,
        429
    );
    assert_eq!(
        post_token_from(server.addr, neighbour, &right).await.status,
        200
    );
}
