//! The connection level, whatever the route: the header-read timeout (with
//! a short configured value, so no test waits long) and the request
//! timeout (a stalled or trickled body, answers never read), oversized
//! request heads, keep-alive and pipelining, the connection caps (in total
//! at accept, per address), a panic answered 500 with the connection going
//! on, running out of file descriptors, graceful shutdown (SIGTERM during
//! a burst of logins too), and the memory bound at the connection cap.

use crate::cli::{Proc, BIN};
use crate::support::*;
use password_bearer::server::MAX_HEAD_BYTES;
use password_bearer::users::{StoreError, User, UserStore, Users};
use password_bearer::Config;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

/// The bound in docs/security.md ("Memory, the worst case clients can
/// cause") on what one
/// connection can make the server hold: its head and its body (16 KiB
/// each), hyper's read buffer (16 KiB), and 16 KiB for the connection's
/// state and the allocator's slack. Measured after these tests' first
/// phase: 52 KiB on the release binary, 55 KiB on the debug one they run.
const CONNECTION_BOUND_KIB: u64 = 64;
/// docs/security.md's bound on the whole server's memory at its defaults on two
/// cores, every connection and table at its cap.
const MEMORY_BOUND_KIB: u64 = 515 * 1024;

/// The configured header-read timeout of these tests.
const HEADER_TIMEOUT: Duration = Duration::from_millis(300);

/// How long after the timeout a close may take: generous for a loaded CI
/// machine, far below the 10 s default (which would mean the setting is
/// ignored).
const CLOSE_BOUND: Duration = Duration::from_secs(3);

async fn start_with_short_timeout() -> TestServer {
    let mut config = Config::new(Users::demo(), test_key());
    config.header_read_timeout = HEADER_TIMEOUT;
    start_with(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let server = start_with_short_timeout().await;
    let mut conn = Conn::open(server.addr).await;
    let t = Instant::now();
    let sent = conn.closed_within(CLOSE_BOUND).await;
    assert!(sent.is_some(), "still open after {CLOSE_BOUND:?}");
    // Not closed at once either: the client had its 300 ms.
    assert!(
        t.elapsed() >= HEADER_TIMEOUT / 2,
        "closed after {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_head_is_closed_after_the_header_timeout() {
    let server = start_with_short_timeout().await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(b"GET /users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthoriz")
        .await;
    let sent = conn.closed_within(CLOSE_BOUND).await;
    let sent = sent.expect("closed within the bound");
    // Closing may come with a 408; it must not be an answer to the request.
    let text = String::from_utf8_lossy(&sent);
    assert!(
        sent.is_empty() || text.starts_with("HTTP/1.1 408"),
        "sent before closing: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_trickled_slowly_is_still_cut_at_the_timeout() {
    // The timeout is for the whole head, not per read: a byte every 100 ms
    // keeps a per-read timer happy forever (slowloris).
    let server = start_with_short_timeout().await;
    let mut conn = Conn::open(server.addr).await;
    let t = Instant::now();
    let mut closed = false;
    for byte in
        b"GET /users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    {
        if conn.stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        if conn
            .closed_within(Duration::from_millis(100))
            .await
            .is_some()
        {
            closed = true;
            break;
        }
        if t.elapsed() > CLOSE_BOUND {
            break;
        }
    }
    assert!(
        closed,
        "a trickling client kept the connection for {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let server = start_with_short_timeout().await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    assert_json_exact(&conn.response().await, 404, r#"{"detail":"Not Found"}"#);
    assert!(
        conn.closed_within(CLOSE_BOUND).await.is_some(),
        "an idle keep-alive connection stayed open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_request_within_the_timeout_is_served() {
    let server = start_with_short_timeout().await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(b"GET /users/me HTTP/1.1\r\n").await;
    tokio::time::sleep(HEADER_TIMEOUT / 4).await;
    conn.send(b"Host: 127.0.0.1\r\n\r\n").await;
    assert_401(&conn.response().await, NOT_AUTHENTICATED);
}

/// A `GET /users/me` whose head is `len` bytes long, complete.
fn head_of(len: usize) -> Vec<u8> {
    let mut raw = b"GET /users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".to_vec();
    raw.resize(len - 4, b'a');
    raw.extend_from_slice(b"\r\n\r\n");
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_16_kib_gets_431() {
    let server = start().await;
    assert_eq!(MAX_HEAD_BYTES, 16 * 1024);
    // A head of exactly the cap is served.
    let resp = send_raw(server.addr, &head_of(MAX_HEAD_BYTES)).await;
    assert_401(&resp, NOT_AUTHENTICATED);
    // A byte more is not. Sent without its end, so that the server has
    // read every byte when it answers: its close is then no reset, and
    // the 431 always arrives.
    let mut conn = Conn::open(server.addr).await;
    conn.send(&head_of(MAX_HEAD_BYTES + 1)[..MAX_HEAD_BYTES])
        .await;
    let resp = tokio::time::timeout(IO_TIMEOUT, conn.try_response())
        .await
        .expect("an answer in time")
        .expect("a 431, not a reset");
    assert_eq!(resp.status, 431, "{:?}", resp.headers);
    assert!(
        conn.closed_within(IO_TIMEOUT).await.is_some(),
        "then a close"
    );

    // 1 MiB of header, as an attacker sends it: the server may close
    // before reading it all, which resets the connection.
    let mut raw = b"GET /users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".to_vec();
    raw.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    raw.extend_from_slice(b"\r\n\r\n");
    assert_431_or_close(&server, &raw).await;
    assert_431_or_close(&server, &head_of(MAX_HEAD_BYTES + 1)).await;

    // Many small headers rather than one large one.
    let mut raw = b"GET /users/me HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    for i in 0..500 {
        raw.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    assert_431_or_close(&server, &raw).await;

    // The server is still fine afterwards.
    assert_401(&get(server.addr, "/users/me", &[]).await, NOT_AUTHENTICATED);
}

async fn assert_431_or_close(server: &TestServer, raw: &[u8]) {
    let mut conn = Conn::open(server.addr).await;
    // The server may close while we are still writing: that is a pass.
    let _ = tokio::time::timeout(IO_TIMEOUT, conn.stream.write_all(raw))
        .await
        .expect("the write finishes or fails in time");
    match tokio::time::timeout(IO_TIMEOUT, conn.try_response()).await {
        Err(_) => panic!("neither an answer nor a close"),
        Ok(Err(_)) => {}
        Ok(Ok(resp)) => assert_eq!(resp.status, 431, "{:?}", resp.headers),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_serves_requests_one_after_the_other() {
    let server = start().await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(b"GET /users/me HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    assert_401(&conn.response().await, NOT_AUTHENTICATED);

    let body = "username=johndoe&password=secret";
    conn.send(
        format!(
            "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    let resp = conn.response().await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let token = resp.json()["access_token"].as_str().unwrap().to_owned();

    conn.send(
        format!(
            "GET /users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_json_exact(&conn.response().await, 200, JOHNDOE_ME);

    // An error response does not end the connection either.
    conn.send(b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_422(
        &conn.response().await,
        &[MISSING_USERNAME, MISSING_PASSWORD],
        "invalid_request",
    );
    conn.send(b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    assert_json_exact(&conn.response().await, 404, r#"{"detail":"Not Found"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let server = start().await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(
        b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n\
          GET /users/me HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n\
          POST /users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(conn.response().await.status, 404);
    assert_eq!(conn.response().await.status, 401);
    assert_eq!(conn.response().await.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_is_honoured() {
    let server = start().await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(&request_bytes("GET", "/nope", &[], b"")).await;
    assert_eq!(conn.response().await.status, 404);
    assert!(conn.closed_within(CLOSE_BOUND).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_at_shutdown_still_gets_its_response() {
    let mut server = start().await;
    let mut conn = Conn::open(server.addr).await;
    // A first exchange proves the connection is accepted and served.
    conn.send(b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    assert_eq!(conn.response().await.status, 404);

    // The head and half the body of a login: the request is in flight, its
    // handler waiting for the rest of the body.
    let body = "username=johndoe&password=secret";
    let (first, rest) = body.split_at(10);
    conn.send(
        format!(
            "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\n\r\n{first}",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    // Small bounded waits: for the server to read the head, then for the
    // shutdown to have begun.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.trigger_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !server.is_finished(),
        "serve returned with a request in flight"
    );

    conn.send(rest.as_bytes()).await;
    let resp = conn.response().await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    decode_verified(resp.json()["access_token"].as_str().unwrap(), TEST_KEY);

    let addr = server.addr;
    server.shutdown_within(Duration::from_secs(5)).await;
    // No longer listening.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_no_longer_than_the_grace_period() {
    let mut config = Config::new(Users::demo(), test_key());
    config.grace_period = Duration::from_millis(300);
    let server = start_with(config).await;
    // A request that never finishes its body.
    let mut conn = Conn::open(server.addr).await;
    conn.send(b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    assert_eq!(conn.response().await.status, 404);
    conn.send(
        format!(
            "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {FORM}\r\nContent-Length: 100\r\n\r\nusername="
        )
        .as_bytes(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    server.shutdown_within(Duration::from_secs(5)).await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        t.elapsed()
    );
    // `serve` returned after ending what was left: the stalled connection
    // is closed, not left running without its server.
    assert!(conn.closed_within(Duration::ZERO).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_shuts_down_at_once() {
    let server = start().await;
    let conn = Conn::open(server.addr).await;
    // An idle keep-alive connection must not hold shutdown for the 10 s
    // grace period.
    let t = Instant::now();
    server.shutdown_within(Duration::from_secs(5)).await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    drop(conn);
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// The server side of the established connections to 127.0.0.1:`port`:
/// how many, and the bytes they have received that the server has not read.
fn server_sockets(port: u16) -> (usize, u64) {
    // As the kernel prints it: the address's bytes in host order (x86's
    // little-endian), then the port. A client's own port, on 127.0.0.2
    // and up, may have the same number.
    let local = format!("0100007F:{port:04X}");
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let mut count = 0;
    let mut unread = 0;
    for line in table.lines().skip(1) {
        // sl local_address rem_address st tx_queue:rx_queue ..., the
        // address as HEXIP:HEXPORT, state 01 ESTABLISHED, queues in hex.
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields[1] != local || fields[3] != "01" {
            continue;
        }
        count += 1;
        let rx = fields[4].rsplit(':').next().expect("tx:rx");
        unread += u64::from_str_radix(rx, 16).expect("a hex count");
    }
    (count, unread)
}

/// Raises this process's soft limit on open files to its hard one, if it
/// is under `n` (with util-linux's `prlimit`: a `setrlimit` call would
/// need the `unsafe` this crate forbids).
fn allow_open_files(n: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("an open-files line");
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    let limit = |text: &str| text.parse::<u64>().unwrap_or(u64::MAX);
    if limit(numbers[0]) >= n {
        return;
    }
    assert!(
        limit(numbers[1]) >= n,
        "the hard limit on open files, {}, is under {n}",
        numbers[1]
    );
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={0}:{0}", numbers[1]),
        ])
        .status()
        .expect("run prlimit (util-linux)");
    assert!(status.success(), "prlimit --nofile");
}

/// Opens `n` connections to `addr` from ten loopback addresses (fewer
/// than 512 each, the per-address cap), sends `bytes` on each, and waits
/// until the server has read every byte: then it holds them all.
async fn hold(addr: std::net::SocketAddr, n: usize, bytes: &[u8]) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let source = loopback(2 + (i % 10) as u8);
        let mut stream = connect_from(addr, source).await.expect("connect");
        stream.write_all(bytes).await.expect("send");
        held.push(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (count, unread) = server_sockets(addr.port());
        if count >= n && unread == 0 {
            return held;
        }
        assert!(
            Instant::now() < deadline,
            "{count} connections, {unread} bytes not read yet"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_thousand_maximal_heads_stay_under_the_memory_bound() {
    // The binary at its defaults, except timeouts long enough to measure
    // before they close the connections.
    const CONNECTIONS: usize = 4000;
    allow_open_files(CONNECTIONS as u64 + 512);
    let mut command = std::process::Command::new("sh");
    command.args([
        "-c",
        r#"ulimit -n 8192 2>/dev/null; exec "$0" --port 0 --no-login-log --header-read-timeout-seconds 120 --request-timeout-seconds 120"#,
        crate::cli::BIN,
    ]);
    let mut server = crate::cli::Proc::spawn_command(command);
    let addr = server.wait_listening();
    let pid = server.id();
    assert_eq!(get(addr, "/healthz", &[]).await.status, 200);
    let idle = rss_kib(pid);
    let check = |what: &str| {
        let rss = rss_kib(pid);
        let per_connection = (rss - idle) / CONNECTIONS as u64;
        eprintln!(
            "RSS {rss} KiB with {CONNECTIONS} connections holding {what} \
             ({per_connection} KiB each over the idle {idle} KiB)"
        );
        assert!(rss < MEMORY_BOUND_KIB, "over docs/security.md's bound");
        assert!(
            per_connection < CONNECTION_BOUND_KIB,
            "over docs/security.md's bound for a connection"
        );
    };

    // Each the longest head the server reads, unfinished: one byte short
    // of the cap, so it waits for the rest.
    let mut head = b"GET /users/me HTTP/1.1\r\nHost: t\r\nX-Pad: ".to_vec();
    head.resize(MAX_HEAD_BYTES - 1, b'a');
    let mut held = hold(addr, CONNECTIONS, &head).await;
    check("an unfinished maximal head");
    // Still waiting, all of them: one byte more is one too many.
    let mut last = held.pop().expect("a connection");
    last.write_all(b"a").await.expect("send one more byte");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(IO_TIMEOUT, last.read_to_end(&mut answer)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 431 "),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(held);
    while server_sockets(addr.port()).0 > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Each a complete maximal head, then a body of the largest size
    // accepted (16 KiB), one byte short.
    let body = 16 * 1024;
    let start = format!(
        "POST /token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {body}\r\nX-Pad: "
    );
    let mut request = start.into_bytes();
    request.resize(MAX_HEAD_BYTES - 4, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    request.resize(MAX_HEAD_BYTES + body - 1, b'u');
    let held = hold(addr, CONNECTIONS, &request).await;
    check("a maximal head and an unfinished maximal body");
    drop(held);

    // An honest client is served after them.
    assert_eq!(get(addr, "/healthz", &[]).await.status, 200);
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

/// A `POST /token` promising 100 bytes of body and sending one.
pub(crate) const STALLED_BODY: &[u8] = b"POST /token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nu";

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
