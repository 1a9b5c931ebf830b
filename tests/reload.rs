//! Changing the configuration while serving: SIGHUP reads the users and
//! key files again, on connections that stay open (a user added, one
//! removed and one disabled take effect at their next request, the
//! disabled one's sessions ended; keys
//! rotate, and a key dropped stops working at once, cached or not); a file
//! that fails to load changes nothing and is one log line naming it; and
//! `App::reload` swaps users and keys as one set, never a mix, under
//! concurrent requests.

use crate::cli::*;
use crate::sessions::{log_in, me_status, refused};
use crate::support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use password_bearer::token::{issue, SecretKey};
use password_bearer::users::Users;
use password_bearer::{App, Config};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const KEY_A: &[u8] = b"reload-tests-key-a-0123456789abcdefghijkl";
const KEY_B: &[u8] = b"reload-tests-key-b-0123456789abcdefghijkl";
const KEY_C: &[u8] = b"reload-tests-key-c-0123456789abcdefghijkl";

/// `GET /users/me` on an open keep-alive connection.
async fn me_on(conn: &mut Conn, token: &str) -> Response {
    conn.send(
        format!("GET /users/me HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    conn.response().await
}

/// The binary serving `users` and signing with the first of `keys`.
fn server(users: &str, keys: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["--port", "0", "--users", users];
    for key in keys {
        args.extend(["--secret-key-file", key]);
    }
    let mut proc = Proc::spawn(&args);
    let addr = proc.wait_listening();
    (proc, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_removes_and_disables_users_while_a_connection_stays_open() {
    let tmp = TempDir::new();
    let before = users_json(&[("johndoe", "secret", false), ("carol", "carol's", false)]);
    let users = tmp.file("users.json", before.as_bytes());
    let key = tmp.file("key", KEY_A);
    let (mut proc, addr) = server(&users, &[&key]);

    let john = login(addr, "johndoe", "secret").await;
    let carol = login(addr, "carol", "carol's").await;
    assert_invalid_grant(&post_token(addr, &credentials("dave", "dave's")).await);
    let mut conn = Conn::open(addr).await;
    assert_eq!(me_on(&mut conn, &carol).await.status, 200);

    // carol removed, johndoe disabled, dave added.
    let after = users_json(&[("johndoe", "secret", true), ("dave", "dave's", false)]);
    tmp.file("users.json", after.as_bytes());
    proc.signal("HUP");
    proc.wait_line("reloaded: 2 users, 1 keys");
    // A file edited by hand is an admin change too: one audit line per
    // user changed, in every build (the `admin` feature's commands only
    // write the file), logged before the reload's own line. johndoe's
    // hash was made again (another salt): a password change to the store.
    let mut audit: Vec<&str> = proc
        .seen
        .iter()
        .filter_map(|line| line.split_once("audit: reload: ").map(|(_, rest)| rest))
        .collect();
    audit.sort_unstable();
    assert_eq!(
        audit,
        [
            r#"user added username="dave""#,
            r#"user password,disabled username="johndoe""#,
            r#"user removed username="carol""#,
        ],
        "{:?}",
        proc.seen
    );

    // The same connection, answered from the new users. johndoe's
    // sessions ended with his disabling (tests/promises/sessions.rs), so his
    // token of one is revoked; one of no session says he is inactive.
    assert_401(&me_on(&mut conn, &carol).await, INVALID_CREDENTIALS);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while me_on(&mut conn, &john).await.status != 401 {
        assert!(std::time::Instant::now() < deadline, "john's session ended");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let sessionless = issue(&SecretKey::new(KEY_A).unwrap(), "johndoe", now(), 600);
    assert_json_exact(
        &me_on(&mut conn, &sessionless).await,
        400,
        r#"{"detail":"Inactive user"}"#,
    );
    let dave = login(addr, "dave", "dave's").await;
    assert_eq!(me_on(&mut conn, &dave).await.status, 200);
    assert_invalid_grant(&post_token(addr, &credentials("carol", "carol's")).await);
}

/// bob's password changed in the users file, then SIGHUP: his session
/// from before ends, refresh and access tokens alike; the new password
/// logs in. (Every store's: tests/promises/sessions.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_new_password_ends_the_binarys_sessions() {
    let tmp = TempDir::new();
    let before = users_json(&[("bob", "old", false)]);
    let users = tmp.file("users.json", before.as_bytes());
    let key = tmp.file("key", TEST_KEY);
    let (mut proc, addr) = server(&users, &[&key]);
    let (access, current) = log_in(addr, "bob", "old").await;
    tmp.file(
        "users.json",
        users_json(&[("bob", "new", false)]).as_bytes(),
    );
    proc.signal("HUP");
    proc.wait_line("reloaded: 1 users");
    // Ended within 5 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = me_status(addr, &access).await;
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {status} after 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let ended = r#"sessions ended by the reload: 1 username="bob""#;
    if !proc.seen.iter().any(|line| line.contains(ended)) {
        proc.wait_line(ended);
    }
    refused(addr, &current).await;
    log_in(addr, "bob", "new").await;
}

/// A users file in `tmp` holding johndoe (password "secret") alone.
fn johndoe_only(tmp: &TempDir) -> String {
    tmp.file(
        "users.json",
        users_json(&[("johndoe", "secret", false)]).as_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_file_that_fails_to_load_changes_nothing_and_is_one_line() {
    let tmp = TempDir::new();
    let users = johndoe_only(&tmp);
    let key = tmp.file("key", KEY_A);
    let (mut proc, addr) = server(&users, &[&key]);
    let john = login(addr, "johndoe", "secret").await;
    let mut conn = Conn::open(addr).await;

    let broken = r#"{"johndoe": {"username": "johndoe", "hashed_password": "secret"#;
    tmp.file("users.json", broken.as_bytes());
    proc.signal("HUP");
    let line = proc.wait_line("reload failed");
    assert!(line.contains(&users), "names the file: {line}");
    assert!(!line.contains("secret"), "no part of the file: {line}");
    assert_eq!(me_on(&mut conn, &john).await.status, 200);
    login(addr, "johndoe", "secret").await;

    // Fixed, the next SIGHUP loads it.
    let fixed = users_json(&[("erin", "erin's", false)]);
    tmp.file("users.json", fixed.as_bytes());
    proc.signal("HUP");
    proc.wait_line("reloaded: 1 users");
    assert_401(&me_on(&mut conn, &john).await, INVALID_CREDENTIALS);
    login(addr, "erin", "erin's").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rotates_keys_and_a_dropped_key_stops_at_once() {
    let tmp = TempDir::new();
    let users = johndoe_only(&tmp);
    let (signing, verifying) = (tmp.file("signing", KEY_A), tmp.file("verifying", KEY_B));
    let (mut proc, addr) = server(&users, &[&signing, &verifying]);
    let mut conn = Conn::open(addr).await;
    let old = login(addr, "johndoe", "secret").await;
    assert_eq!(me_on(&mut conn, &old).await.status, 200, "and now cached");

    // The rotation: B signs, A still verifies.
    tmp.file("signing", KEY_B);
    tmp.file("verifying", KEY_A);
    proc.signal("HUP");
    proc.wait_line("reloaded: 1 users, 2 keys");
    let new = login(addr, "johndoe", "secret").await;
    decode_verified(&new, KEY_B);
    assert_eq!(me_on(&mut conn, &old).await.status, 200);
    assert_eq!(me_on(&mut conn, &new).await.status, 200);

    // A dropped: its token is refused at once, though it is cached.
    tmp.file("verifying", KEY_C);
    proc.signal("HUP");
    proc.wait_line("reloaded: 1 users, 2 keys");
    assert_401(&me_on(&mut conn, &old).await, INVALID_CREDENTIALS);
    assert_eq!(me_on(&mut conn, &new).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_file_on_reload_keeps_the_running_keys() {
    let tmp = TempDir::new();
    let users = johndoe_only(&tmp);
    let key = tmp.file("key", KEY_A);
    let (mut proc, addr) = server(&users, &[&key]);
    let token = login(addr, "johndoe", "secret").await;

    tmp.file("key", b"too short");
    proc.signal("HUP");
    let line = proc.wait_line("reload failed");
    assert!(line.contains(&key), "names the file: {line}");
    assert!(!line.contains("too short"), "not the key: {line}");
    assert_eq!(get_me(addr, &format!("Bearer {token}")).await.status, 200);
    decode_verified(&login(addr, "johndoe", "secret").await, KEY_A);
}

/// Two sets that must never mix: set A is user "a" with key A, set B user
/// "b" with key B. A token for "b" signed with key A (or for "a" with key
/// B) is refused by both sets; only a request that verified under one set
/// and looked its user up in the other would accept it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_users_and_keys_as_one_set() {
    let (key_a, key_b) = (
        SecretKey::new(KEY_A).unwrap(),
        SecretKey::new(KEY_B).unwrap(),
    );
    let users_a = || users_with(&[("a", "a's", false)]);
    let users_b = || users_with(&[("b", "b's", false)]);
    let (set_a, set_b) = (users_a(), users_b());
    let app = Arc::new(App::new(Config::new(users_a(), key_a.clone())));
    let far = now() + 600;
    let crossed = [issue(&key_a, "b", far, 60), issue(&key_b, "a", far, 60)];
    let honest = [issue(&key_a, "a", far, 60), issue(&key_b, "b", far, 60)];

    let done = Arc::new(AtomicBool::new(false));
    let reloader = {
        let (app, done) = (app.clone(), done.clone());
        let sets = [(set_a, key_a), (set_b, key_b)];
        std::thread::spawn(move || {
            let mut reloads = 0;
            while !done.load(Ordering::Relaxed) {
                let (users, key) = &sets[reloads % 2];
                // No session in this test: nothing to end.
                drop(app.reload(users.clone(), key.clone(), Vec::new()));
                reloads += 1;
                std::thread::yield_now();
            }
            reloads
        })
    };
    let mut accepted_honest = 0;
    for round in 0..4000 {
        let token = if round % 2 == 0 {
            &crossed[round / 2 % 2]
        } else {
            &honest[round / 2 % 2]
        };
        let request = Request::get("/users/me")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let response = app.handle(request, None).await;
        let status = response.status().as_u16();
        let _ = response.into_body().collect().await;
        if round % 2 == 0 {
            assert_eq!(status, 401, "a crossed token was accepted in round {round}");
        } else {
            assert!(status == 200 || status == 401, "{status}");
            accepted_honest += usize::from(status == 200);
        }
    }
    done.store(true, Ordering::Relaxed);
    let reloads = reloader.join().unwrap();
    assert!(reloads > 10, "the reloads raced the requests: {reloads}");
    assert!(accepted_honest > 0, "honest tokens were accepted");
}

/// `/openapi.json` lists the scopes of the users a reload brought.
#[tokio::test]
async fn a_reload_lists_the_new_users_scopes_in_the_docs() {
    async fn scopes(app: &App) -> Vec<String> {
        let request = Request::get("/openapi.json")
            .body(Full::<Bytes>::default())
            .unwrap();
        let body = app.handle(request, None).await.into_body();
        let body = body.collect().await.unwrap().to_bytes();
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let flow = &doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"];
        let mut names: Vec<String> = flow["password"]["scopes"]
            .as_object()
            .expect("a scopes object")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }
    let app = App::new(Config::new(Users::demo(), test_key()));
    assert_eq!(scopes(&app).await, ["items", "me"]);
    let hash = password_bearer::password::hash_password("x").unwrap();
    let users = Users::from_json(&format!(
        r#"{{"ops": {{"username": "ops", "hashed_password": "{hash}", "scopes": ["admin"]}}}}"#
    ))
    .unwrap();
    app.reload(users, test_key(), Vec::new()).await;
    assert_eq!(scopes(&app).await, ["admin"]);
}
