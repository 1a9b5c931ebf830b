//! The binary's log lines on stderr: one per login success or failure
//! (username, peer, outcome), the opt-in access log, and never a password,
//! hash or token in any of them.

use crate::cli::Proc;
use crate::support::{get_me, login, post_token};

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
