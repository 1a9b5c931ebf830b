//! Under abuse it keeps answering honest clients: brute-force throttling
//! (429 + Retry-After, per username and per address), the password cap,
//! the connection cap at accept, a panic answered 500 while the server goes
//! on, and SIGTERM during a burst of logins.

use crate::cli::{Proc, BIN};
use crate::support::{
    assert_invalid_grant, assert_json_exact, assert_token_endpoint_headers, credentials, get,
    post_token, start_store, start_with, test_key, users_with, Conn, IO_TIMEOUT,
};
use password_bearer::users::{StoreError, User, UserStore, Users};
use password_bearer::Config;
use std::sync::Arc;
use std::time::Duration;

const TOO_MANY: &str = r#"{"detail":"Too many failed login attempts, try again later","error":"temporarily_unavailable","error_description":"Too many failed login attempts for this username or from this address; retry after the number of seconds in Retry-After"}"#;

pub(crate) fn throttled(per_user: u32, per_ip: u32) -> Config {
    let mut config = Config::new(Users::demo(), test_key());
    config.throttle.per_user = per_user;
    config.throttle.per_ip = per_ip;
    config.login_log = false;
    config
}

/// `n` logins of `username` with a wrong password, each a plain 400.
async fn fail_logins(addr: std::net::SocketAddr, username: &str, n: usize) {
    for _ in 0..n {
        assert_invalid_grant(&post_token(addr, &credentials(username, "guess")).await);
    }
}

#[track_caller]
pub(crate) fn assert_429(resp: &crate::support::Response) {
    assert_json_exact(resp, 429, TOO_MANY);
    assert_token_endpoint_headers(resp);
    let retry: u64 = resp
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_lock_that_username_even_against_the_right_password() {
    let server = start_with(throttled(3, 0)).await;
    fail_logins(server.addr, "johndoe", 3).await;
    assert_429(&post_token(server.addr, &credentials("johndoe", "secret")).await);
    // Another account is unaffected by this one's lockout.
    assert_eq!(
        post_token(server.addr, &credentials("alice", "secret2"))
            .await
            .status,
        200
    );
    // Unknown usernames count the same, so a 429 tells nothing about which
    // users exist.
    fail_logins(server.addr, "nobody", 3).await;
    assert_429(&post_token(server.addr, &credentials("nobody", "guess")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_resets_the_usernames_count() {
    let server = start_with(throttled(3, 0)).await;
    fail_logins(server.addr, "johndoe", 2).await;
    assert_eq!(
        post_token(server.addr, &credentials("johndoe", "secret"))
            .await
            .status,
        200
    );
    fail_logins(server.addr, "johndoe", 3).await;
    assert_429(&post_token(server.addr, &credentials("johndoe", "guess")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_one_address_lock_that_address() {
    let server = start_with(throttled(0, 3)).await;
    for name in ["a", "b", "c"] {
        assert_invalid_grant(&post_token(server.addr, &credentials(name, "guess")).await);
    }
    assert_429(&post_token(server.addr, &credentials("johndoe", "secret")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_disables_throttling() {
    let server = start_with(throttled(0, 0)).await;
    fail_logins(server.addr, "johndoe", 12).await;
    assert_eq!(
        post_token(server.addr, &credentials("johndoe", "secret"))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_over_1_kib_never_log_in() {
    // The right password, but over the cap: refused like a wrong one and
    // never hashed (the argon2 input is ours to bound).
    let long = "a".repeat(1025);
    let limit = "b".repeat(1024);
    let mut config = Config::new(
        users_with(&[("long", &long, false), ("limit", &limit, false)]),
        test_key(),
    );
    config.login_log = false;
    let server = start_with(config).await;
    assert_invalid_grant(&post_token(server.addr, &credentials("long", &long)).await);
    assert_eq!(
        post_token(server.addr, &credentials("limit", &limit))
            .await
            .status,
        200
    );
}

/// A user store with an injected fault: looking up "boom" panics.
struct Faulty(Users);

impl UserStore for Faulty {
    async fn find(&self, username: &str) -> Result<Option<Arc<User>>, StoreError> {
        assert_ne!(username, "boom", "injected fault");
        Ok(self.0.get(username).cloned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_500_and_the_server_goes_on() {
    let mut config = Config::new(Faulty(Users::demo()), test_key());
    config.login_log = false;
    let server = start_store(config).await;
    let mut conn = Conn::open(server.addr).await;
    let body = credentials("boom", "x");
    conn.send(
        format!(
            "POST /token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    let resp = conn.response().await;
    assert_json_exact(&resp, 500, r#"{"detail":"Internal Server Error"}"#);
    // The same connection, and the server, keep serving.
    conn.send(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(conn.response().await.status, 404);
    assert_eq!(
        post_token(server.addr, &credentials("johndoe", "secret"))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_new_clients_wait_instead_of_failing() {
    let mut config = Config::new(Users::demo(), test_key());
    config.max_connections = 1;
    let server = start_with(config).await;
    let mut first = Conn::open(server.addr).await;
    first.send(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(first.response().await.status, 404);
    // The second client connects (the kernel's backlog) but is not served
    // while the first holds the only slot...
    let mut second = Conn::open(server.addr).await;
    second.send(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), second.try_response())
            .await
            .is_err(),
        "served beyond the cap"
    );
    // ...and is served as soon as the slot frees.
    drop(first);
    let resp = tokio::time::timeout(IO_TIMEOUT, second.try_response())
        .await
        .expect("served once the slot is free")
        .expect("a response");
    assert_eq!(resp.status, 404);
    drop(second);
    assert_eq!(get(server.addr, "/nope", &[]).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_login_burst_answers_every_login_then_exits_0() {
    let mut server = Proc::spawn(&["--port", "0", "--no-login-log"]);
    let addr = server.wait_listening();
    let body = credentials("johndoe", "secret");
    let request = format!(
        "POST /token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Ten logins in flight (one username's limit of attempts in flight at
    // once): each is an argon2 hash, two at a time.
    let mut conns = Vec::new();
    for _ in 0..10 {
        let mut conn = Conn::open(addr).await;
        conn.send(request.as_bytes()).await;
        conns.push(conn);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.signal("TERM");
    for conn in &mut conns {
        assert_eq!(conn.response().await.status, 200);
    }
    let (status, lines) = server.wait_exit();
    assert!(status.success(), "exit {status:?}: {lines:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "new connections are refused after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_is_logged_and_survived() {
    // 32 descriptors: a few for the process, the rest for connections, so
    // that holding 40 makes `accept` fail with EMFILE.
    let mut command = std::process::Command::new("sh");
    command.args([
        "-c",
        r#"ulimit -n 32 && exec "$0" --port 0 --no-login-log"#,
        BIN,
    ]);
    let mut server = Proc::spawn_command(command);
    let addr = server.wait_listening();
    let mut held = Vec::new();
    for _ in 0..40 {
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
            held.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(held);
    // Once descriptors are free again, the server serves as before.
    let mut served = false;
    for _ in 0..50 {
        if let Ok(Ok(resp)) = tokio::time::timeout(
            Duration::from_millis(500),
            crate::support::try_get(addr, "/nope"),
        )
        .await
        {
            served = resp.status == 404;
            if served {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the server recovered");
    server.signal("TERM");
    let (status, lines) = server.wait_exit();
    assert!(status.success(), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("accept failed")),
        "the EMFILE was logged: {lines:?}"
    );
}
