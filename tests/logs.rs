//! The binary's log lines on stderr: one per login success or failure
//! (username, peer, outcome), the opt-in access log, never a password,
//! hash or token in any of them, a throttled flood in two lines rather than
//! one per attempt, and a stderr nobody reads never stalling the server.

use crate::cli::{command, Proc};
use crate::support::{
    assert_invalid_grant, credentials, get_me, login, post_token, token_request, Conn,
};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use tokio::task::JoinSet;

/// Every line that names a login, as `(outcome, line)`.
fn login_lines(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.starts_with("login ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_logged_without_secrets() {
    let mut server = Proc::spawn(&["--port", "0"]);
    let addr = server.wait_listening();
    let token = login(addr, "johndoe", "secret").await;
    assert_eq!(
        post_token(addr, "username=johndoe&password=wrong-pass")
            .await
            .status,
        400
    );
    assert_eq!(
        post_token(addr, "username=evil%0Aline&password=wrong-pass")
            .await
            .status,
        400
    );
    assert_eq!(get_me(addr, &format!("Bearer {token}")).await.status, 200);
    server.signal("TERM");
    let (status, lines) = server.wait_exit();
    assert!(status.success(), "{lines:?}");

    let logins = login_lines(&lines);
    assert_eq!(logins.len(), 3, "{lines:?}");
    let peer = format!("peer={}", "127.0.0.1:");
    assert!(
        logins[0].starts_with("login ok username=\"johndoe\" "),
        "{}",
        logins[0]
    );
    assert!(
        logins[1].starts_with("login failed username=\"johndoe\" "),
        "{}",
        logins[1]
    );
    // A newline in a username cannot forge a log line.
    assert!(
        logins[2].starts_with("login failed username=\"evil\\nline\" "),
        "{}",
        logins[2]
    );
    assert!(logins.iter().all(|l| l.contains(&peer)), "{logins:?}");

    // The startup warning names the `--secret-key-file` flag; every other
    // line must be free of the password "secret".
    let all = lines
        .iter()
        .filter(|l| !l.contains("--secret-key-file"))
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    for secret in ["secret", "wrong-pass", "$argon2", token.as_str()] {
        assert!(!all.contains(secret), "{secret:?} reached the log: {all}");
    }
    // Without --access-log, requests are not logged.
    assert!(!all.contains("access "), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_is_opt_in_and_names_method_path_status_time_peer() {
    let mut server = Proc::spawn(&["--port", "0", "--access-log", "--no-login-log"]);
    let addr = server.wait_listening();
    assert_eq!(get_me(addr, "Bearer nope").await.status, 401);
    server.signal("TERM");
    let (status, lines) = server.wait_exit();
    assert!(status.success(), "{lines:?}");
    let access: Vec<&String> = lines.iter().filter(|l| l.starts_with("access ")).collect();
    assert_eq!(access.len(), 1, "{lines:?}");
    let line = access[0];
    assert!(
        line.starts_with("access method=GET path=\"/users/me\" status=401 us="),
        "{line}"
    );
    assert!(line.contains(" peer=127.0.0.1:"), "{line}");
    assert!(!line.contains("nope"), "the token reached the log: {line}");
    assert!(login_lines(&lines).is_empty(), "{lines:?}");
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
