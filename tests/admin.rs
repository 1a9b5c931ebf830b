//! The admin commands driven as an operator drives them: `password-bearer
//! users …` on the users file a running server reads, then SIGHUP, then
//! the change seen over TCP (a login with the new password, the old
//! refresh token refused, `/users/me` inactive or 401, a removed user
//! refused); the file's mode and what the command did not touch; a file
//! the server would refuse never written; two commands at once; the
//! password asked twice on a real terminal (a pty) without echo; bad
//! command lines one line and exit 2. The same cycle on PostgreSQL is in
//! `postgres.rs`, beside its throwaway cluster. The commands are the
//! `admin` feature's (`clients …` also `clients`'s); the default build's
//! refusal is in `cli.rs`.
#![cfg(feature = "admin")]

use crate::cli::*;
use crate::sessions::{log_in, me_status, refused};
use crate::support::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// `password-bearer ARGS…` with `stdin`, its exit code and output.
fn admin(args: &[&str], stdin: &str) -> Output {
    run(args, stdin.as_bytes())
}

/// An admin command that must succeed; its stderr.
#[track_caller]
fn admin_ok(args: &[&str], stdin: &str) -> String {
    let out = admin(args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    stderr
}

/// The users file as JSON.
fn read_json(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read the users file")).expect("JSON")
}

/// The binary serving `users`, with `extra` flags.
fn server(users: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["--port", "0", "--users", users];
    args.extend(extra);
    let mut proc = Proc::spawn(&args);
    let addr = proc.wait_listening();
    (proc, addr)
}

/// SIGHUP, and the reload's line.
fn reload(proc: &mut Proc) {
    proc.signal("HUP");
    proc.wait_line("reloaded:");
}

/// Polls `GET /users/me` until it answers `status` (a reload's sessions
/// end just after its line), for at most 5 s.
async fn until_me(addr: SocketAddr, token: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = me_status(addr, token).await;
        if now == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {now}, not {status}, after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(unix)]
fn mode(path: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_add_then_the_password_logs_in_and_the_rest_of_the_file_is_kept() {
    let tmp = TempDir::new();
    // johndoe's entry carries fields the command never sets (full_name,
    // a hash of its own) and the file is 0644: both as they were, but the
    // mode, which becomes 0600.
    let users = tmp.file(
        "users.json",
        users_json(&[("johndoe", "secret", false)]).as_bytes(),
    );
    let john_before = read_json(&users)["johndoe"].clone();
    let stderr = admin_ok(
        &[
            "users",
            "add",
            "carol",
            "--users",
            &users,
            "--email",
            "carol@example.com",
            "--full-name",
            "Carol C",
            "--scope",
            "me",
        ],
        "carol's password\n",
    );
    // One audit line naming the command and the user; never the password
    // or the hash.
    let file = read_json(&users);
    let hash = file["carol"]["hashed_password"].as_str().expect("a hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let audit: Vec<&str> = stderr.lines().filter(|l| l.contains("audit:")).collect();
    assert_eq!(audit.len(), 1, "{stderr}");
    assert!(
        audit[0].contains(r#"users add username="carol""#),
        "{stderr}"
    );
    assert!(
        stderr.contains("SIGHUP") && !stderr.contains("carol's password") && !stderr.contains(hash),
        "{stderr}"
    );
    assert_eq!(file["johndoe"], john_before, "another entry kept as it was");
    #[cfg(unix)]
    assert_eq!(mode(&users), 0o600);

    let (_proc, addr) = server(&users, &["--refresh-token-ttl-days", "0"]);
    let token = login(addr, "carol", "carol's password").await;
    assert_json_exact(
        &get_me(addr, &format!("Bearer {token}")).await,
        200,
        r#"{"username":"carol","email":"carol@example.com","full_name":"Carol C","disabled":false}"#,
    );
    login(addr, "johndoe", "secret").await;

    // A name taken: refused, one line, the file as it was, and no
    // password asked for.
    let before = std::fs::read(&users).unwrap();
    let out = admin(&["users", "add", "carol", "--users", &users], "other\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(r#"a user "carol" exists already"#),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&users).unwrap(), before);

    // The list: a line per user, never a hash.
    let out = admin(&["users", "list", "--users", &users], "");
    let list = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        list,
        "\"carol\" active scopes=\"me\"\n\"johndoe\" active scopes=\"\"\n"
    );
    assert!(!list.contains("argon2"), "{list}");
}

/// bob's password changed by `users passwd`, then SIGHUP: his refresh
/// token of before is refused (the server's sessions are on, as by
/// default), his new password logs in and the old one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_passwd_and_sighup_end_the_old_session_and_the_new_password_logs_in() {
    let tmp = TempDir::new();
    let users = tmp.file(
        "users.json",
        users_json(&[("bob", "old", false)]).as_bytes(),
    );
    let (mut proc, addr) = server(&users, &["--metrics-addr", "127.0.0.1:0"]);
    let metrics: SocketAddr = proc
        .seen
        .iter()
        .find_map(|line| line.strip_prefix("metrics on http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("the metrics line: {:?}", proc.seen));
    let (_, refresh) = log_in(addr, "bob", "old").await;

    let stderr = admin_ok(&["users", "passwd", "bob", "--users", &users], "new\n");
    assert!(
        stderr.contains(r#"audit: users passwd username="bob""#),
        "{stderr}"
    );
    reload(&mut proc);
    // The server's own audit line for the change, and its count.
    // Logged before the reload's own line, which `reload` waited for.
    let line = proc
        .seen
        .iter()
        .find(|line| line.contains("audit: reload:"))
        .cloned()
        .unwrap_or_else(|| proc.wait_line("audit: reload:"));
    assert!(
        line.ends_with(r#"audit: reload: user password username="bob""#),
        "{line}"
    );
    let text = get(metrics, "/metrics", &[]).await;
    let text = text.text();
    assert!(
        text.contains("password_bearer_admin_changes_total{change=\"password\"} 1\n")
            && text.contains("password_bearer_admin_changes_total{change=\"added\"} 0\n"),
        "{text}"
    );
    refused(addr, &refresh).await;
    log_in(addr, "bob", "new").await;
    assert_invalid_grant(&post_token(addr, &credentials("bob", "old")).await);
    // A user not there: one line, exit 2, and no password asked for.
    let out = admin(&["users", "passwd", "nobody", "--users", &users], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(r#"no user "nobody""#), "{stderr}");
}

/// `users disable` and SIGHUP, seen by two servers reading one file:
/// without sessions a token of before gets the seed's 400 `Inactive
/// user`; with sessions, the reload ended the session, so the token is
/// 401. `users enable` and SIGHUP let the user in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_disable_and_enable_reach_the_server_at_sighup() {
    let tmp = TempDir::new();
    let users = tmp.file(
        "users.json",
        users_json(&[("dana", "pw", false), ("johndoe", "secret", false)]).as_bytes(),
    );
    let (mut plain, plain_addr) = server(&users, &["--refresh-token-ttl-days", "0"]);
    let (mut sessions, sessions_addr) = server(&users, &[]);
    let plain_token = login(plain_addr, "dana", "pw").await;
    let (session_token, _) = log_in(sessions_addr, "dana", "pw").await;

    admin_ok(&["users", "disable", "dana", "--users", &users], "");
    assert_eq!(read_json(&users)["dana"]["disabled"], true);
    reload(&mut plain);
    reload(&mut sessions);
    assert_json_exact(
        &get_me(plain_addr, &format!("Bearer {plain_token}")).await,
        400,
        r#"{"detail":"Inactive user"}"#,
    );
    until_me(sessions_addr, &session_token, 401).await;

    admin_ok(&["users", "enable", "dana", "--users", &users], "");
    assert_eq!(read_json(&users)["dana"]["disabled"], false);
    reload(&mut plain);
    reload(&mut sessions);
    assert_eq!(me_status(plain_addr, &plain_token).await, 200);
    log_in(sessions_addr, "dana", "pw").await;
}

/// `users remove` and SIGHUP: the user's token is refused, and so is the
/// login. The last user cannot be removed: the server refuses a file with
/// none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_remove_refuses_the_user_after_sighup_but_never_the_last_one() {
    let tmp = TempDir::new();
    let users = tmp.file(
        "users.json",
        users_json(&[("erin", "pw", false), ("johndoe", "secret", false)]).as_bytes(),
    );
    let (mut proc, addr) = server(&users, &["--refresh-token-ttl-days", "0"]);
    let token = login(addr, "erin", "pw").await;
    admin_ok(&["users", "remove", "erin", "--users", &users], "");
    reload(&mut proc);
    assert_401(
        &get_me(addr, &format!("Bearer {token}")).await,
        INVALID_CREDENTIALS,
    );
    assert_invalid_grant(&post_token(addr, &credentials("erin", "pw")).await);
    login(addr, "johndoe", "secret").await;

    let before = std::fs::read(&users).unwrap();
    let out = admin(&["users", "remove", "johndoe", "--users", &users], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the server would refuse the result: no users"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&users).unwrap(), before);
}

/// A file the server would refuse (here a typo in a field of another
/// entry, which the server refuses so that it cannot lock a user out) is
/// never written: the command says why, and the file is as it was.
#[test]
fn a_file_the_server_would_refuse_is_never_written() {
    let tmp = TempDir::new();
    let mut users: Value = serde_json::from_str(&users_json(&[("ann", "pw", false)])).unwrap();
    users["ann"]["hashed_pasword"] = users["ann"]["hashed_password"].clone();
    let path = tmp.file("users.json", users.to_string().as_bytes());
    let before = std::fs::read(&path).unwrap();
    let out = admin(&["users", "disable", "ann", "--users", &path], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("the server would refuse the result") && stderr.contains("hashed_pasword"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// Eight `users add` at once on one file: every user is in it after.
#[test]
fn commands_run_at_once_lose_no_update() {
    let tmp = TempDir::new();
    let users = tmp.file(
        "users.json",
        users_json(&[("first", "pw", false)]).as_bytes(),
    );
    let names: Vec<String> = (0..8).map(|i| format!("user{i}")).collect();
    std::thread::scope(|scope| {
        for name in &names {
            let users = &users;
            scope.spawn(move || admin_ok(&["users", "add", name, "--users", users], "pw\n"));
        }
    });
    let file = read_json(&users);
    let loaded = password_bearer::users::Users::from_json(&file.to_string()).expect("loads");
    assert_eq!(loaded.len(), 9);
    for name in &names {
        assert!(loaded.get(name).is_some(), "{name} kept");
    }
    // No temporary file left behind.
    let mut left: Vec<String> = std::fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["users.json", "users.json.lock"]);
}

/// A password from stdin: one line; an empty one, or two lines (a script
/// answering as the terminal asks), is refused and changes nothing.
#[test]
fn a_password_from_stdin_is_one_line() {
    let tmp = TempDir::new();
    let users = tmp.file("users.json", users_json(&[("ann", "pw", false)]).as_bytes());
    let before = std::fs::read(&users).unwrap();
    for (stdin, problem) in [
        ("", "empty"),
        ("\n", "empty"),
        ("pw\npw\n", "more than one line"),
    ] {
        let out = admin(&["users", "passwd", "ann", "--users", &users], stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stdin:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(problem), "{stdin:?}: {stderr}");
    }
    let long = "x".repeat(1025);
    let out = admin(&["users", "passwd", "ann", "--users", &users], &long);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read(&users).unwrap(), before);
}

/// Drives a command on a pty: answers each prompt with the next of
/// `ANSWERS` (`|`-separated) once the terminal's echo is off, then prints
/// `echo_during=[…] echo_after=… exit=N` and the terminal's transcript.
const PTY_DRIVER: &str = r#"
import os, pty, select, sys, termios, time
answers = [a.encode() for a in os.environ["ANSWERS"].split("|")]
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
def read_until(needle):
    global out
    while needle not in out:
        ready, _, _ = select.select([fd], [], [], 30)
        if not ready:
            raise SystemExit("timeout waiting for %r in %r" % (needle, out))
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            return False
        if not chunk:
            return False
        out += chunk
    return True
echo_during = []
for prompt, answer in zip([b"New password", b"Again"], answers):
    if not read_until(prompt):
        break
    for _ in range(500):
        if not termios.tcgetattr(fd)[3] & termios.ECHO:
            break
        time.sleep(0.01)
    echo_during.append(bool(termios.tcgetattr(fd)[3] & termios.ECHO))
    os.write(fd, answer + b"\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
echo_after = bool(termios.tcgetattr(fd)[3] & termios.ECHO)
_, status = os.waitpid(pid, 0)
print("echo_during=%s echo_after=%s exit=%d" % (echo_during, echo_after, os.waitstatus_to_exitcode(status)))
sys.stdout.write(out.decode(errors="replace"))
"#;

/// `users add NAME` on a pty answering `answers`: the driver's report.
fn on_a_terminal(users: &Path, name: &str, answers: &str) -> String {
    let mut command = std::process::Command::new("python3");
    without_settings(&mut command);
    let out = command
        .args(["-c", PTY_DRIVER, BIN, "users", "add", name, "--users"])
        .arg(users)
        .env("ANSWERS", answers)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "the pty driver: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_is_asked_twice_without_echo() {
    let tmp = TempDir::new();
    let users = tmp.file("users.json", users_json(&[("ann", "pw", false)]).as_bytes());
    let path = Path::new(&users);

    let report = on_a_terminal(path, "tess", "typed-secret|typed-secret");
    let first = report.lines().next().unwrap_or_default();
    assert_eq!(
        first, "echo_during=[False, False] echo_after=True exit=0",
        "{report}"
    );
    assert!(
        report.contains("New password for tess") && report.contains("Again"),
        "{report}"
    );
    assert!(!report.contains("typed-secret"), "never echoed: {report}");
    let (_proc, addr) = server(&users, &["--refresh-token-ttl-days", "0"]);
    login(addr, "tess", "typed-secret").await;

    // Two passwords that differ: nothing changed, echo back on.
    let before = std::fs::read(&users).unwrap();
    let report = on_a_terminal(path, "tim", "one-password|another");
    assert!(
        report.starts_with("echo_during=[False, False] echo_after=True exit=2"),
        "{report}"
    );
    assert!(report.contains("the two passwords differ"), "{report}");
    assert!(!report.contains("one-password"), "{report}");
    assert_eq!(std::fs::read(&users).unwrap(), before);
}

#[test]
fn bad_command_lines_are_one_line_and_exit_2() {
    let tmp = TempDir::new();
    let users = tmp.file("users.json", users_json(&[("ann", "pw", false)]).as_bytes());
    assert_config_error(&["users"], "users: needs a command");
    assert_config_error(&["users", "add"], "users add: needs a NAME");
    assert_config_error(
        &["users", "add", "--users", &users],
        "users add: needs a NAME",
    );
    assert_config_error(
        &["users", "add", "x", "--users", &users, "--admin"],
        "--admin: not an option of `users add`",
    );
    assert_config_error(
        &["users", "frobnicate", "x"],
        "users frobnicate: unknown command",
    );
    assert_config_error(&["users", "list"], "users: no --users FILE given");
    assert_config_error(
        &["users", "disable", "nobody", "--users", &users],
        "no user \"nobody\"",
    );
    assert_config_error(
        &["users", "list", "--users", "/nonexistent/users.json"],
        "cannot read",
    );
    // The server's variable names the store, as it does for the server.
    let out = run_with_env(
        &["users", "list"],
        &[("PASSWORD_BEARER_USERS", &users)],
        b"",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "\"ann\" active scopes=\"\"\n"
    );
}

#[cfg(not(feature = "postgres"))]
#[test]
fn a_postgres_url_without_the_feature_is_refused_as_the_server_refuses_it() {
    assert_config_error(
        &[
            "users",
            "list",
            "--users",
            "postgres://admin:hunter2@db/auth",
        ],
        "--users: a PostgreSQL URL, but this binary was built without the `postgres` feature",
    );
}

/// Built without `clients`: `clients …` is one line naming the feature,
/// and no file is made.
#[cfg(not(feature = "clients"))]
#[test]
fn the_clients_commands_need_the_clients_feature() {
    let tmp = TempDir::new();
    let clients = path_str(&tmp.0.join("clients.json"));
    for args in [
        &["clients", "add", "billing", "--clients", &clients][..],
        &["clients", "list", "--clients", &clients],
    ] {
        assert_config_error(
            args,
            "password-bearer: clients: this binary was built without the `clients` feature \
             (cargo build --release --features admin,clients)",
        );
    }
    assert!(!tmp.0.join("clients.json").exists());
}

/// `POST /token` with `grant_type=client_credentials`, the client
/// authenticated by HTTP Basic.
#[cfg(feature = "clients")]
async fn client_grant(addr: SocketAddr, id: &str, secret: &str) -> Response {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    request(
        addr,
        "POST",
        "/token",
        &[
            ("Content-Type", FORM),
            ("Authorization", &format!("Basic {basic}")),
        ],
        b"grant_type=client_credentials",
    )
    .await
}

/// `clients add` prints the secret once, on stdout, and the file keeps
/// only its SHA-256; the secret gets a token over `/token`; a client
/// added or removed while the server runs counts at SIGHUP.
#[cfg(feature = "clients")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_add_prints_a_secret_that_gets_a_token() {
    let tmp = TempDir::new();
    let users = tmp.file("users.json", users_json(&[("ann", "pw", false)]).as_bytes());
    let clients = path_str(&tmp.0.join("clients.json"));
    let add = |name: &str, extra: &[&str]| {
        let mut args = vec!["clients", "add", name, "--clients", &clients];
        args.extend(extra);
        let out = admin(&args, "");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let secret = String::from_utf8(out.stdout).unwrap().trim_end().to_owned();
        assert_eq!(secret.len(), 43, "{secret:?}");
        assert!(
            stderr.contains("will not be shown again")
                && stderr.contains(&format!(r#"audit: clients add client_id="{name}""#))
                && !stderr.contains(&secret),
            "{stderr}"
        );
        secret
    };
    let billing = add("billing", &["--scope", "items:read", "--introspect"]);
    let file = read_json(&clients);
    assert_eq!(file["billing"]["scopes"], serde_json::json!(["items:read"]));
    assert_eq!(file["billing"]["introspect"], true);
    let stored = file["billing"]["secret_hash"].as_str().unwrap().to_owned();
    assert!(
        stored.starts_with("sha256$") && !stored.contains(&billing),
        "{stored}"
    );
    #[cfg(unix)]
    assert_eq!(mode(&clients), 0o600);

    let (mut proc, addr) = server(&users, &["--clients", &clients]);
    let resp = client_grant(addr, "billing", &billing).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let token = access_token(&resp);
    let claims: Value =
        serde_json::from_slice(&unb64(token.split('.').nth(1).unwrap_or_default())).unwrap();
    assert_eq!(claims["sub"], "billing");
    assert_eq!(claims["client_id"], "billing");
    let wrong = billing.replace(&billing[..1], if &billing[..1] == "A" { "B" } else { "A" });
    assert_eq!(client_grant(addr, "billing", &wrong).await.status, 401);

    // Added while serving: known at SIGHUP. Removed: refused at SIGHUP.
    let reports = add("reports", &[]);
    assert_eq!(client_grant(addr, "reports", &reports).await.status, 401);
    reload(&mut proc);
    assert_eq!(client_grant(addr, "reports", &reports).await.status, 200);
    admin_ok(&["clients", "remove", "billing", "--clients", &clients], "");
    reload(&mut proc);
    assert_eq!(client_grant(addr, "billing", &billing).await.status, 401);

    // The list: a line per client, never the stored secret.
    let out = admin(&["clients", "list", "--clients", &clients], "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "\"reports\" no-introspect scopes=\"\"\n"
    );
    // A taken id, or one Basic cannot carry: one line, exit 2, no secret.
    for (id, problem) in [("reports", "exists already"), ("a:b", "is not a client id")] {
        let out = admin(&["clients", "add", id, "--clients", &clients], "");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(problem), "{stderr}");
        assert!(out.stdout.is_empty(), "no secret printed for nothing");
    }
}
