//! `--state-dir`: sessions and revocations that survive `kill -9` and a
//! restart of the binary (built with the `state-dir` feature: `cargo test
//! --features state-dir`), a refresh's lost answer retried across one, one
//! server per directory, and a bad directory is one line and exit 2.
//! Without the feature, the flag is refused. (This is the binary's store of
//! sessions; a store of users of one's own, in SQLite, is
//! `sqlite_store`'s surface.)

use crate::cli::*;

#[cfg(feature = "state-dir")]
mod with_the_feature {
    use super::*;
    use crate::support::*;
    use std::net::SocketAddr;

    /// The refresh grant's 400 for a token unknown, used up or revoked.
    const INVALID_REFRESH_TOKEN: &str = r#"{"detail":"Invalid refresh token","error":"invalid_grant","error_description":"The refresh token is unknown, expired, revoked or used up, or its user can no longer log in"}"#;

    /// A server on `dir` signing with the key in `key_file`.
    fn server(dir: &str, key_file: &str) -> (Proc, SocketAddr) {
        let mut proc = Proc::spawn(&[
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--state-dir",
            dir,
            "--secret-key-file",
            key_file,
        ]);
        let addr = proc.wait_listening();
        (proc, addr)
    }

    /// A password login: its access token and refresh token.
    async fn log_in(addr: SocketAddr) -> (String, String) {
        let resp = post_token(addr, &credentials("johndoe", "secret")).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        tokens(&resp)
    }

    fn tokens(resp: &Response) -> (String, String) {
        let body = resp.json();
        let text = |field: &str| {
            body[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} in {body}"))
                .to_owned()
        };
        (text("access_token"), text("refresh_token"))
    }

    async fn refresh(addr: SocketAddr, refresh_token: &str) -> Response {
        post_token(
            addr,
            &format!("grant_type=refresh_token&refresh_token={refresh_token}"),
        )
        .await
    }

    /// A refresh that must succeed: the new access and refresh tokens.
    async fn refreshed(addr: SocketAddr, refresh_token: &str) -> (String, String) {
        let resp = refresh(addr, refresh_token).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        tokens(&resp)
    }

    async fn revoke(addr: SocketAddr, token: &str) {
        let body = format!("token={token}");
        let resp = request(
            addr,
            "POST",
            "/revoke",
            &[("Content-Type", FORM)],
            body.as_bytes(),
        )
        .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(resp.body.is_empty());
    }

    async fn me(addr: SocketAddr, access_token: &str) -> Response {
        get_me(addr, &format!("Bearer {access_token}")).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_answered_200_survives_kill_9_and_a_restart() {
        let tmp = TempDir::new();
        let dir = path_str(&tmp.0.join("state"));
        let key = tmp.file("key", b"a-key-file-key-of-more-than-32-bytes-0123");
        let (mut proc, addr) = server(&dir, &key);

        // Session A: logged in, refreshed once, then revoked.
        let (a_access, a_first) = log_in(addr).await;
        let (a_access2, a_refresh) = refreshed(addr, &a_first).await;
        // Session B: refreshed once, to survive with its counter.
        let (b_access, b_first) = log_in(addr).await;
        let (_, b_refresh) = refreshed(addr, &b_first).await;
        // Session C: one of its access tokens revoked, the session kept.
        let (c_access, c_refresh) = log_in(addr).await;
        revoke(addr, &c_access).await;
        assert_401(&me(addr, &c_access).await, INVALID_CREDENTIALS);
        assert_eq!(me(addr, &a_access2).await.status, 200);
        revoke(addr, &a_refresh).await;
        // No shutdown: whatever answered 200 must already be on disk.
        proc.signal("KILL");
        let (status, _) = proc.wait_exit();
        assert_eq!(status.code(), None, "killed by the signal: {status:?}");

        let (_proc, addr) = server(&dir, &key);
        // Session A is gone: its refresh tokens are refused and its access
        // tokens denied at once, not when they expire.
        assert_json_exact(&refresh(addr, &a_refresh).await, 400, INVALID_REFRESH_TOKEN);
        assert_json_exact(&refresh(addr, &a_first).await, 400, INVALID_REFRESH_TOKEN);
        assert_401(&me(addr, &a_access).await, INVALID_CREDENTIALS);
        assert_401(&me(addr, &a_access2).await, INVALID_CREDENTIALS);
        // The single revoked access token stays revoked; its session lives.
        assert_401(&me(addr, &c_access).await, INVALID_CREDENTIALS);
        let (c_access2, _) = refreshed(addr, &c_refresh).await;
        assert_json_exact(&me(addr, &c_access2).await, 200, JOHNDOE_ME);
        // Session B survived with its counter: the current token refreshes,
        // the used-up one is a reuse, which ends the session.
        assert_json_exact(&me(addr, &b_access).await, 200, JOHNDOE_ME);
        let (b_access2, b_next) = refreshed(addr, &b_refresh).await;
        assert_json_exact(&refresh(addr, &b_first).await, 400, INVALID_REFRESH_TOKEN);
        assert_json_exact(&refresh(addr, &b_next).await, 400, INVALID_REFRESH_TOKEN);
        assert_401(&me(addr, &b_access2).await, INVALID_CREDENTIALS);
    }

    /// Refreshes at once share commits (group commit): each that answered
    /// 200 is on disk all the same, `kill -9` right after the last.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_refreshes_that_answered_200_survive_kill_9() {
        const N: usize = 16;
        let tmp = TempDir::new();
        let dir = path_str(&tmp.0.join("state"));
        let key = tmp.file("key", b"a-key-file-key-of-more-than-32-bytes-0123");
        let (mut proc, addr) = server(&dir, &key);
        let mut firsts = Vec::new();
        for _ in 0..N {
            firsts.push(log_in(addr).await.1);
        }
        let refreshes: Vec<_> = firsts
            .iter()
            .map(|first| {
                let first = first.clone();
                tokio::spawn(async move { refreshed(addr, &first).await.1 })
            })
            .collect();
        let mut nexts = Vec::new();
        for refresh in refreshes {
            nexts.push(refresh.await.unwrap());
        }
        proc.signal("KILL");
        let (status, _) = proc.wait_exit();
        assert_eq!(status.code(), None, "killed by the signal: {status:?}");

        let (_proc, addr) = server(&dir, &key);
        // Every rotation answered is there: the token each answer carried
        // refreshes, and the one before it is used up.
        for (first, next) in firsts.iter().zip(&nexts) {
            refreshed(addr, next).await;
            assert_json_exact(&refresh(addr, first).await, 400, INVALID_REFRESH_TOKEN);
        }
    }

    /// A refresh committed, its answer lost, then `kill -9` before the
    /// client retries: after the restart, the retry with the token it holds
    /// is answered (once), and the session goes on. (Every store's, on a
    /// restart: tests/promises/sessions.rs.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retry_after_kill_9_between_commit_and_answer_is_answered() {
        let tmp = TempDir::new();
        let dir = path_str(&tmp.0.join("state"));
        let key = tmp.file("key", TEST_KEY);
        let (mut proc, addr) = server(&dir, &key);
        let (_, first) = log_in(addr).await;
        let (_, held) = refreshed(addr, &first).await;
        // This rotation is on disk; its answer never reaches the client.
        let _lost = refreshed(addr, &held).await;
        proc.signal("KILL");
        proc.wait_exit();

        let (_proc, addr) = server(&dir, &key);
        let (access, current) = refreshed(addr, &held).await;
        assert_json_exact(&me(addr, &access).await, 200, JOHNDOE_ME);
        let (access, current) = refreshed(addr, &current).await;
        assert_eq!(me(addr, &access).await.status, 200);
        // The retried token again, from before the last rotation: a reuse,
        // which ends the session.
        assert_json_exact(&refresh(addr, &held).await, 400, INVALID_REFRESH_TOKEN);
        assert_401(&me(addr, &access).await, INVALID_CREDENTIALS);
        assert_json_exact(&refresh(addr, &current).await, 400, INVALID_REFRESH_TOKEN);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_server_per_directory_the_second_exits_2() {
        let tmp = TempDir::new();
        let dir = path_str(&tmp.0);
        let (mut first, addr) = server(&dir, &tmp.file("key", &[b'k'; 32]));
        assert_config_error(
            &["--port", "0", "--state-dir", &dir],
            &format!("--state-dir {dir}: {dir}/sessions.redb is in use by another process"),
        );
        // The first one is unharmed, and once it is gone the directory is
        // free again.
        let _ = log_in(addr).await;
        first.signal("KILL");
        first.wait_exit();
        let mut again = Proc::spawn(&["--port", "0", "--state-dir", &dir]);
        again.wait_listening();
    }

    #[test]
    fn a_directory_that_cannot_be_one_is_one_line_and_exit_2() {
        let tmp = TempDir::new();
        let file = tmp.file("a-file", b"x");
        assert_config_error(
            &["--port", "0", "--state-dir", &file],
            &format!("--state-dir {file}: {file} is not a directory"),
        );
        let below = format!("{file}/state");
        assert_config_error(
            &["--port", "0", "--state-dir", &below],
            &format!("--state-dir {below}: cannot create or open {below}"),
        );
        // Unwritable even for root.
        assert_config_error(
            &["--port", "0", "--state-dir", "/proc/password-bearer-state"],
            "--state-dir /proc/password-bearer-state: cannot create or open",
        );
        let other = tmp.file("sessions.redb", &[7; 8192]);
        let dir = path_str(&tmp.0);
        assert_config_error(
            &["--port", "0", "--state-dir", &dir],
            &format!("--state-dir {dir}: {other}: not a session store"),
        );
        // The flag's variable names itself.
        assert_config_error_with_env(
            &["--port", "0"],
            &[("PASSWORD_BEARER_STATE_DIR", &file)],
            &format!("PASSWORD_BEARER_STATE_DIR {file}: {file} is not a directory"),
        );
    }
}

#[cfg(not(feature = "state-dir"))]
#[test]
fn without_the_feature_the_flag_is_refused() {
    let tmp = TempDir::new();
    let dir = path_str(&tmp.0);
    assert_config_error(
        &["--port", "0", "--state-dir", &dir],
        &format!("--state-dir {dir}: this binary was built without the `state-dir` feature"),
    );
}
