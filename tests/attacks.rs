//! Attacks tried as an attacker would try them, over TCP: a stalled body,
//! answers never read, one address holding its connection cap, concurrent
//! guesses, a thousand concurrent right logins of one user, a fresh
//! server's first burst, a client leaving while its login waits for its
//! turn, a login flood past the hash queue, a user store that fails, a
//! throttled flood's log lines, and a stderr nobody reads. Each must leave
//! honest clients served and every advertised limit holding.
//!
//! Tests that wait on a timer run on a paused clock (`start_paused`): the
//! runtime jumps to the next timer whenever everything waits, so the real
//! 10-second defaults are tested without waiting 10 seconds.

use crate::cli::{command, Proc};
use crate::support::*;
use password_bearer::users::{StoreError, User, UserStore, Users};
use password_bearer::Config;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

/// A `POST /token` promising 100 bytes of body and sending one.
pub(crate) const STALLED_BODY: &[u8] = b"POST /token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nu";

fn quiet(config: &mut Config<impl UserStore>) {
    config.login_log = false;
}

/// A `GET /users/me` with a token the test key signed for johndoe.
fn users_me_request() -> Vec<u8> {
    let token = sign(&format!(r#"{{"sub":"johndoe","exp":{}}}"#, now() + 600));
    format!("GET /users/me HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n")
        .into_bytes()
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_gets_408_at_the_request_timeout_then_a_close() {
    // The defaults: 10 s for the head, 10 s for the rest of the request.
    let server = start().await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(STALLED_BODY).await;
    let start = tokio::time::Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(30), conn.try_response())
        .await
        .expect("answered before the test's own limit")
        .expect("a response, not a bare close");
    let waited = start.elapsed();
    assert_json_exact(&resp, 408, r#"{"detail":"Request timeout"}"#);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(
        (Duration::from_secs(10)..Duration::from_secs(11)).contains(&waited),
        "answered after {waited:?}"
    );
    assert!(conn.closed_within(Duration::from_secs(1)).await.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_body_trickled_byte_by_byte_is_cut_at_the_deadline_too() {
    // A byte every 900 ms keeps a per-read timer happy forever; the
    // deadline is for the whole request.
    let server = start().await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(&STALLED_BODY[..STALLED_BODY.len() - 1]).await;
    let start = tokio::time::Instant::now();
    let mut cut = None;
    for _ in 0..100 {
        if conn.stream.write_all(b"u").await.is_err() {
            break;
        }
        if let Some(sent) = conn.closed_within(Duration::from_millis(900)).await {
            cut = Some(sent);
            break;
        }
    }
    let sent = cut.expect("closed before the 100 bytes were all sent");
    assert!(
        String::from_utf8_lossy(&sent).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&sent)
    );
    assert!(
        start.elapsed() < Duration::from_secs(11),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_its_answers_is_closed() {
    let mut config = Config::new(Users::demo(), test_key());
    // The head timeout out of the way: only the write deadline (the
    // default 10 s request timeout) can close this connection.
    config.header_read_timeout = Duration::from_secs(600);
    let server = start_with(config).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("a small receive buffer");
    let mut stream = socket.connect(server.addr).await.expect("connect");
    // Pipelined requests, never an answer read: soon the server cannot
    // write, stops reading, and our writes block too.
    let batch = b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n".repeat(1000);
    let mut sent = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_secs(1), stream.write_all(&batch)).await {
            Ok(Ok(())) => sent += 1000,
            Ok(Err(_)) | Err(_) => break,
        }
        assert!(sent < 2_000_000, "the server never stopped taking requests");
    }
    // Past the write deadline, without reading a byte.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut received = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        let mut chunk = vec![0u8; 65536];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after the deadline");
    let answers = received
        .windows(12)
        .filter(|w| w == b"HTTP/1.1 404")
        .count();
    assert!(answers < sent, "{answers} answers for {sent} requests");
    // The server goes on for everyone else.
    assert_eq!(get(server.addr, "/nope", &[]).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_at_its_cap_delays_no_other_address() {
    let mut config = Config::new(Users::demo(), test_key());
    // 64 in all; the default per-address cap is an eighth: 8.
    config.max_connections = 64;
    quiet(&mut config);
    let server = start_with(config).await;
    let attacker = loopback(2);
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut conn = Conn::open_from(server.addr, attacker).await;
        conn.send(STALLED_BODY).await;
        held.push(conn);
    }
    // Many more from the same address at once: each refused at once (a
    // 503, or a reset when the request was already on its way).
    let mut extra = JoinSet::new();
    for _ in 0..100 {
        let addr = server.addr;
        extra.spawn(async move {
            let mut conn = Conn::open_from(addr, attacker).await;
            let _ = conn.stream.write_all(&users_me_request()).await;
            conn.closed_within(Duration::from_secs(5)).await
        });
    }
    while let Some(outcome) = extra.join_next().await {
        let sent = outcome
            .expect("the attacker task")
            .expect("closed at once, not queued");
        let text = String::from_utf8_lossy(&sent);
        assert!(
            sent.is_empty() || text.starts_with("HTTP/1.1 503"),
            "{text}"
        );
    }
    // Honest clients at four other addresses, while the attack holds:
    // answered at once, not after the stalled requests' 10 s deadline.
    let mut honest = JoinSet::new();
    for n in 3..=6 {
        let addr = server.addr;
        honest.spawn(async move {
            let mut conn = Conn::open_from(addr, loopback(n)).await;
            conn.send(&users_me_request()).await;
            tokio::time::timeout(Duration::from_secs(5), conn.try_response()).await
        });
    }
    while let Some(outcome) = honest.join_next().await {
        let resp = outcome
            .expect("the honest task")
            .expect("answered while one address holds its cap")
            .expect("a response");
        assert_json_exact(&resp, 200, JOHNDOE_ME);
    }
    // The attack still held all along.
    for conn in &mut held {
        assert!(conn.closed_within(Duration::ZERO).await.is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_lifts_the_per_address_cap() {
    let mut config = Config::new(Users::demo(), test_key());
    config.max_connections = 16;
    config.max_connections_per_ip = Some(0);
    let server = start_with(config).await;
    let mut conns = Vec::new();
    for _ in 0..12 {
        let mut conn = Conn::open_from(server.addr, loopback(2)).await;
        conn.send(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n").await;
        assert_eq!(conn.response().await.status, 404);
        conns.push(conn);
    }
}

/// `n` logins with `body` at once, each from `source(i)`; the statuses.
async fn logins_at_once(
    addr: SocketAddr,
    n: u8,
    body: &str,
    source: fn(u8) -> std::net::IpAddr,
) -> Vec<u16> {
    let mut logins = JoinSet::new();
    for i in 0..n {
        let body = body.to_owned();
        logins.spawn(async move { post_token_from(addr, source(i), &body).await });
    }
    let mut statuses = Vec::new();
    while let Some(resp) = logins.join_next().await {
        let resp = resp.expect("the login task");
        assert_token_endpoint_headers(&resp);
        statuses.push(resp.status);
    }
    statuses
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

fn throttled(per_user: u32, per_ip: u32) -> Config {
    let mut config = Config::new(Users::demo(), test_key());
    config.throttle.per_user = per_user;
    config.throttle.per_ip = per_ip;
    quiet(&mut config);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_cost_at_most_the_limit_in_hashes() {
    // Forty guesses at once for one username: ten are let in (the budget
    // in flight), hashed and answered 400; the thirty past the budget wait
    // for their turn, then see the ten failures settled: 429, no hash.
    let guess = credentials("johndoe", "guess");
    let server = start_with(throttled(10, 0)).await;
    let statuses = logins_at_once(server.addr, 40, &guess, |_| loopback(2)).await;
    assert_eq!(
        (count(&statuses, 400), count(&statuses, 429)),
        (10, 30),
        "{statuses:?}"
    );

    // The same from forty addresses.
    let server = start_with(throttled(10, 100)).await;
    let statuses = logins_at_once(server.addr, 40, &guess, |i| loopback(10 + i)).await;
    assert_eq!(
        (count(&statuses, 400), count(&statuses, 429)),
        (10, 30),
        "{statuses:?}"
    );

    // And forty usernames from one address against its limit of 10.
    let server = start_with(throttled(0, 10)).await;
    let mut logins = JoinSet::new();
    for i in 0..40 {
        let addr = server.addr;
        logins.spawn(async move { post_token(addr, &credentials(&format!("user{i}"), "x")).await });
    }
    let mut statuses = Vec::new();
    while let Some(resp) = logins.join_next().await {
        statuses.push(resp.expect("the login task").status);
    }
    assert_eq!(
        (count(&statuses, 400), count(&statuses, 429)),
        (10, 30),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_right_logins_of_one_user_are_never_refused_as_failures() {
    // Issue 18: one user logging in from 100 addresses, 1000 logins at
    // once, at the default limits. Ten at a time are in flight (the
    // username's budget); the others wait for their turn within the login
    // queue's 2 s, and what the two hash slots cannot start by then is 503
    // with Retry-After: no failure was made, so no 429.
    let mut config = Config::new(Users::demo(), test_key());
    quiet(&mut config);
    let server = start_with(config).await;
    let addr = server.addr;
    let body = credentials("johndoe", "secret");
    // All connected first, then all sent at once: 1000 logins in flight
    // together, each timed from its request to its answer.
    let all_connected = Arc::new(tokio::sync::Barrier::new(1000));
    let mut logins = JoinSet::new();
    for i in 0..1000u32 {
        let (body, all_connected) = (body.clone(), all_connected.clone());
        logins.spawn(async move {
            let source = loopback(u8::try_from(10 + i % 100).expect("a small number"));
            let mut conn = Conn::open_from(addr, source).await;
            all_connected.wait().await;
            let sent = Instant::now();
            conn.send(&token_request(&body)).await;
            let resp = conn.response().await;
            (resp, sent.elapsed())
        });
    }
    let (mut answers, mut slowest) = (RightLogins::default(), Duration::ZERO);
    while let Some(outcome) = logins.join_next().await {
        let (resp, took) = outcome.expect("the login task");
        slowest = slowest.max(took);
        answers.count(&resp);
    }
    let RightLogins { ok, busy } = answers;
    eprintln!("1000 concurrent logins of johndoe: 200 x {ok}, 503 x {busy}, slowest {slowest:?}");
    assert_eq!(ok + busy, 1000);
    assert!(ok >= 10, "at least the first ten were served: {ok}");
    assert!(
        slowest < Duration::from_secs(5),
        "the slowest took {slowest:?}"
    );
    // The queue counted nothing: the account still logs in at once.
    assert_eq!(post_token(addr, &body).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_server_answers_ten_concurrent_guesses_without_a_503() {
    // Issue 18: ten guesses on a server that has hashed nothing yet. Two
    // slots hash them in a few rounds, well within the queue's 2 s: none
    // may be refused on the first hash's time alone.
    let mut config = Config::new(Users::demo(), test_key());
    config.hash_slots = 2;
    quiet(&mut config);
    let server = start_with(config).await;
    let guess = credentials("johndoe", "guess");
    let statuses = logins_at_once(server.addr, 10, &guess, |_| loopback(2)).await;
    assert_eq!(count(&statuses, 400), 10, "{statuses:?}");
}

/// The demo users, whose lookups wait while the gate is shut: a login
/// held in flight for as long as the test likes.
struct Gated {
    users: Users,
    open: tokio::sync::watch::Sender<bool>,
}

impl UserStore for Gated {
    async fn find(&self, username: &str) -> Result<Option<Arc<User>>, StoreError> {
        let mut open = self.open.subscribe();
        open.wait_for(|&open| open)
            .await
            .map_err(|_| StoreError::new("the gate was dropped"))?;
        Ok(self.users.get(username).cloned())
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_whose_client_leaves_while_it_waits_for_its_turn_counts_nothing() {
    // One login of johndoe in flight at a time (the username's budget of
    // 1), held at its user lookup: a wrong guess sent meanwhile waits for
    // its turn. Its client leaves. Had it stayed in line, or left a
    // reservation, it would be let in once the first settles and count a
    // failure, and the right password after it would be a 429.
    let store = Arc::new(Gated {
        users: Users::demo(),
        open: tokio::sync::watch::Sender::new(false),
    });
    let mut config = Config::new(store.clone(), test_key());
    config.throttle.per_user = 1;
    config.throttle.per_ip = 0;
    quiet(&mut config);
    let server = start_store(config).await;
    let mut first = Conn::open(server.addr).await;
    first
        .send(&token_request(&credentials("johndoe", "secret")))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut leaving = Conn::open(server.addr).await;
    leaving
        .send(&token_request(&credentials("johndoe", "a wrong guess")))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(leaving);
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.open.send_replace(true);
    assert_eq!(first.response().await.status, 200);
    let resp = post_token(server.addr, &credentials("johndoe", "secret")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    // The same guess, its client staying, is counted: the limit holds.
    assert_invalid_grant(&post_token(server.addr, &credentials("johndoe", "a wrong guess")).await);
    let resp = post_token(server.addr, &credentials("johndoe", "secret")).await;
    assert_eq!(resp.status, 429, "{}", resp.text());
}

/// A users file with one user whose hash is deliberately slow (t = 8), so
/// that a few dozen logins take seconds to hash one at a time.
pub(crate) fn slow_user() -> Users {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(19456, 8, 1, None).expect("valid parameters");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"a test salt 16 b").expect("a salt");
    let hash = argon
        .hash_password(b"slow secret", &salt)
        .expect("hashing succeeds")
        .to_string();
    let user = User::builder("slow", hash).build().expect("an argon2 hash");
    Users::from_users([user]).expect("one user")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_past_the_hash_queue_get_503_at_once_and_count_nothing() {
    let mut config = Config::new(slow_user(), test_key());
    config.hash_slots = 1;
    config.login_queue_wait = Duration::from_millis(300);
    // One attempt per address at a time, so a 503 that counted would show.
    config.throttle.per_user = 0;
    config.throttle.per_ip = 1;
    quiet(&mut config);
    let server = start_with(config).await;
    let addr = server.addr;

    // Sixty logins at once, each from its own address: hashed one at a
    // time they would take seconds; the queue answers most of them 503
    // after its 300 ms.
    let body = credentials("slow", "slow secret");
    let mut logins = JoinSet::new();
    for i in 0..60u8 {
        let body = body.clone();
        logins.spawn(async move {
            let source = std::net::IpAddr::from([127, 0, 1, i + 1]);
            let sent = Instant::now();
            let resp = post_token_from(addr, source, &body).await;
            (source, resp, sent.elapsed())
        });
    }
    let mut refused = Vec::new();
    let mut served = 0;
    while let Some(outcome) = logins.join_next().await {
        let (source, resp, took) = outcome.expect("the login task");
        assert_token_endpoint_headers(&resp);
        match resp.status {
            200 => served += 1,
            503 => {
                assert_busy(&resp);
                assert!(took < Duration::from_secs(5), "a 503 after {took:?}");
                refused.push(source);
            }
            other => panic!("{other}: {}", resp.text()),
        }
    }
    assert!(served >= 1, "the queue served someone");
    assert!(!refused.is_empty(), "the queue refused someone");
    // A 503 counted no failure: each refused address still has its one
    // attempt, then is throttled.
    for source in refused.into_iter().take(3) {
        assert_invalid_grant(&post_token_from(addr, source, &credentials("slow", "wrong")).await);
        let resp = post_token_from(addr, source, &body).await;
        assert_eq!(resp.status, 429, "{}", resp.text());
    }
}

/// A user store whose database can go down.
struct Flaky {
    users: Users,
    down: AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(StoreError::new(
                "connection refused (the test's database is down)",
            )),
            false => Ok(()),
        }
    }
}

impl UserStore for Flaky {
    async fn find(&self, username: &str) -> Result<Option<Arc<User>>, StoreError> {
        self.check()?;
        Ok(self.users.get(username).cloned())
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.check()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_fails_is_503_and_nobodys_failure() {
    let store = Arc::new(Flaky {
        users: Users::demo(),
        down: AtomicBool::new(false),
    });
    let mut config = Config::new(store.clone(), test_key());
    config.throttle.per_user = 3;
    config.throttle.per_ip = 3;
    quiet(&mut config);
    let server = start_store(config).await;
    let addr = server.addr;
    let bearer = format!("Bearer {}", login(addr, "johndoe", "secret").await);
    assert_json_exact(&get(addr, "/healthz", &[]).await, 200, r#"{"status":"ok"}"#);

    store.down.store(true, Ordering::SeqCst);
    for password in ["secret", "wrong"].repeat(5) {
        let resp = post_token(addr, &credentials("johndoe", password)).await;
        assert_busy(&resp);
        assert_token_endpoint_headers(&resp);
    }
    let resp = get_me(addr, &bearer).await;
    assert_busy(&resp);
    assert!(
        resp.header("www-authenticate").is_none(),
        "{:?}",
        resp.headers
    );
    assert_json_exact(
        &get(addr, "/healthz", &[]).await,
        503,
        r#"{"status":"unavailable"}"#,
    );

    // Back up: ten attempts against limits of 3 counted nothing.
    store.down.store(false, Ordering::SeqCst);
    assert_json_exact(&get(addr, "/healthz", &[]).await, 200, r#"{"status":"ok"}"#);
    assert_invalid_grant(&post_token(addr, &credentials("johndoe", "wrong")).await);
    assert!(!login(addr, "johndoe", "secret").await.is_empty());
    assert_json_exact(&get_me(addr, &bearer).await, 200, JOHNDOE_ME);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_flood_writes_two_log_lines_not_one_per_attempt() {
    let mut server = Proc::spawn(&[
        "--port",
        "0",
        "--login-failures-per-user",
        "3",
        "--login-failures-per-ip",
        "0",
    ]);
    let addr = server.wait_listening();
    let guess = credentials("johndoe", "guess");
    for _ in 0..3 {
        assert_invalid_grant(&post_token(addr, &guess).await);
    }
    // 512 attempts on 32 keep-alive connections at once, all refused.
    let mut flood = JoinSet::new();
    for _ in 0..32 {
        let guess = guess.clone();
        flood.spawn(async move {
            let mut conn = Conn::open(addr).await;
            for _ in 0..16 {
                conn.send(&token_request(&guess)).await;
                assert_eq!(conn.response().await.status, 429);
            }
        });
    }
    while let Some(done) = flood.join_next().await {
        done.expect("the flood task");
    }
    server.signal("TERM");
    let (status, lines) = server.wait_exit();
    assert!(status.success(), "{lines:?}");
    let failed = lines
        .iter()
        .filter(|l| l.starts_with("login failed"))
        .count();
    assert_eq!(failed, 3, "{lines:?}");
    // The first refusal at once, the other 511 in one line at exit.
    let throttled: Vec<&String> = lines.iter().filter(|l| l.contains("throttled")).collect();
    assert_eq!(throttled.len(), 2, "{throttled:?}");
    assert_eq!(throttled[0], r#"login throttled username="johndoe""#);
    assert!(
        throttled[1].starts_with(r#"login throttled username="johndoe" repeated=511 seconds="#),
        "{throttled:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_nobody_reads_never_stalls_the_server() {
    // One worker thread, and a line per request: were lines written on the
    // worker, the first full pipe (64 KiB, some 800 lines) would stop it.
    let mut child = command(&["--port", "0", "--workers", "1", "--access-log"], &[])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the binary");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    let child = Kill(child);
    let mut line = String::new();
    let addr: SocketAddr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).expect("read stderr") > 0,
            "exited: {line}"
        );
        if let Some(addr) = line.trim().strip_prefix("listening on http://") {
            break addr.parse().expect("HOST:PORT");
        }
    };
    // From here on, stderr is never read again.
    let mut conn = Conn::open(addr).await;
    let batch = b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n".repeat(500);
    for _ in 0..10 {
        conn.send(&batch).await;
        for _ in 0..500 {
            assert_eq!(conn.response().await.status, 404);
        }
    }
    drop(child);
    drop(stderr);
}
