//! The connection level: the header-read timeout (with a short configured
//! value, so no test waits long), oversized request heads, keep-alive and
//! pipelining, and graceful shutdown.

use crate::support::*;
use password_bearer::users::Users;
use password_bearer::Config;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_header_block_gets_431_or_a_close() {
    let server = start().await;
    // 1 MiB of header: beyond any sane head buffer (hyper's default is
    // about 400 KiB).
    let mut raw = b"GET /users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".to_vec();
    raw.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    raw.extend_from_slice(b"\r\n\r\n");
    assert_431_or_close(&server, &raw).await;

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
