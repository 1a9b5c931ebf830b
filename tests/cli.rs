//! The `password-bearer` binary as an operator uses it: the demo walkthrough
//! on a free port, users and key files, every bad configuration (one line on
//! stderr naming the culprit, exit 2, no panic), `hash-password`, `--help`,
//! and SIGTERM/SIGINT. Every child is killed on drop, even when a test fails.
//!
//! Children never inherit a `PASSWORD_BEARER_*` variable from the test's own
//! environment, so a developer's shell settings cannot change a result; the
//! helpers here are shared with `env_config`, which sets them on purpose.

use crate::support::*;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_password-bearer");

/// Generous for a loaded machine.
const STARTUP: Duration = Duration::from_secs(30);
const EXIT: Duration = Duration::from_secs(20);

/// The binary with `args` and, of the `PASSWORD_BEARER_*` variables, only
/// those in `env`.
pub(crate) fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    without_settings(&mut command);
    command.args(args).envs(env.iter().copied());
    command
}

/// Keeps the test's own `PASSWORD_BEARER_*` variables, and systemd's (were
/// the tests run by a service), from `command`'s environment.
pub(crate) fn without_settings(command: &mut Command) {
    const SYSTEMD: [&str; 5] = [
        "LISTEN_PID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
        "LISTEN_FDS_FIRST_FD",
        "NOTIFY_SOCKET",
    ];
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("PASSWORD_BEARER_") || SYSTEMD.contains(&&*text) {
            command.env_remove(name);
        }
    }
}

/// A child process that is killed and reaped when dropped.
pub(crate) struct Proc {
    child: Child,
    stderr: Receiver<String>,
    /// The stderr lines read so far.
    pub(crate) seen: Vec<String>,
}

impl Proc {
    pub(crate) fn spawn(args: &[&str]) -> Proc {
        Proc::spawn_with_env(args, &[])
    }

    /// [`Proc::spawn`] with these `PASSWORD_BEARER_*` variables set.
    pub(crate) fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Proc {
        Proc::spawn_command(command(args, env))
    }

    /// Runs `command` (the binary, perhaps behind a wrapper such as `sh`).
    pub(crate) fn spawn_command(command: Command) -> Proc {
        Proc::spawn_command_with_stdin(command, Stdio::null())
    }

    /// [`Proc::spawn_command`] with `stdin` as the child's standard input
    /// (a socket for a wrapper to move to fd 3, say).
    pub(crate) fn spawn_command_with_stdin(mut command: Command, stdin: Stdio) -> Proc {
        let mut child = command
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            stderr: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for `listening on http://HOST:PORT` (or `https://`) and returns
    /// the address.
    pub(crate) fn wait_listening(&mut self) -> SocketAddr {
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line
                        .split("listening on ")
                        .nth(1)
                        .and_then(|url| url.split("://").nth(1))
                        .map(|rest| rest.trim().to_owned());
                    self.seen.push(line);
                    if let Some(addr) = found {
                        return addr
                            .parse()
                            .unwrap_or_else(|e| panic!("{addr:?} is HOST:PORT: {e}"));
                    }
                }
                Err(e) => panic!(
                    "no `listening on` line ({e}); stderr so far: {:?}; exit: {:?}",
                    self.seen,
                    self.child.try_wait()
                ),
            }
        }
    }

    /// Waits for a stderr line containing `needle` and returns it.
    pub(crate) fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no line with {needle:?} ({e}); stderr so far: {:?}",
                    self.seen
                ),
            }
        }
    }

    /// The process id (of the binary, when a wrapper `exec`s it).
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name}");
    }

    /// The exit status, if the process exits within `limit`.
    pub(crate) fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the exit; returns the status and every stderr line.
    pub(crate) fn wait_exit(&mut self) -> (ExitStatus, Vec<String>) {
        let status = wait_with_deadline(&mut self.child);
        // The reader thread ends at EOF, once the process is gone.
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (status, self.seen.clone())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_with_deadline(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + EXIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process did not exit within {EXIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary to completion with `stdin`, killing it if it hangs.
pub(crate) fn run(args: &[&str], stdin: &[u8]) -> Output {
    run_with_env(args, &[], stdin)
}

/// [`run`] with these `PASSWORD_BEARER_*` variables set.
pub(crate) fn run_with_env(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = command(args, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the binary");
    // Kill on a panic below, too.
    struct Kill(Option<Child>);
    impl Drop for Kill {
        fn drop(&mut self) {
            if let Some(child) = self.0.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let mut guard = Kill(Some(child));
    wait_with_deadline(guard.0.as_mut().expect("the child"));
    let _ = writer.join();
    guard
        .0
        .take()
        .expect("the child")
        .wait_with_output()
        .expect("collect output")
}

/// A directory removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "password-bearer-cli-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    pub(crate) fn file(&self, name: &str, content: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write a temp file");
        path_str(&path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn path_str(path: &Path) -> String {
    path.to_str().expect("temp paths are UTF-8").to_owned()
}

/// Bad configuration: exit code 2, exactly one line on stderr naming
/// `culprit`, and no panic.
#[track_caller]
pub(crate) fn assert_config_error(args: &[&str], culprit: &str) {
    assert_config_error_with_env(args, &[], culprit);
}

/// [`assert_config_error`] with these `PASSWORD_BEARER_*` variables set.
#[track_caller]
pub(crate) fn assert_config_error_with_env(args: &[&str], env: &[(&str, &str)], culprit: &str) {
    let out = run_with_env(args, env, b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} {env:?}: stderr {stderr:?}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?} {env:?}: one line, got {stderr:?}"
    );
    assert!(
        stderr.contains(culprit),
        "{args:?} {env:?}: the line names {culprit:?}: {stderr:?}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.to_lowercase().contains("backtrace"),
        "{args:?} {env:?}: {stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_walkthrough_on_a_free_port() {
    let mut proc = Proc::spawn(&["--host", "127.0.0.1", "--port", "0"]);
    let addr = proc.wait_listening();
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_ne!(addr.port(), 0, "the real port, not 0");
    // No users file: the demo users, and the operator is told, by name
    // only (their passwords are in the README, not in logs).
    let demo = proc
        .seen
        .iter()
        .find(|l| l.contains("demo users"))
        .unwrap_or_else(|| panic!("a line about the demo users: {:?}", proc.seen));
    assert!(
        demo.contains("johndoe, alice")
            && demo.contains("not for production")
            && demo.contains("--users FILE"),
        "{demo}"
    );
    assert!(!demo.contains("secret"), "{demo}");
    // No key file: a random key, and the operator is told.
    assert!(
        proc.seen
            .iter()
            .any(|l| !l.contains("listening on") && l.to_lowercase().contains("key")),
        "a warning about the random key: {:?}",
        proc.seen
    );

    assert_401(&get(addr, "/users/me", &[]).await, NOT_AUTHENTICATED);
    let resp = post_token(addr, "username=johndoe&password=secret").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_token_endpoint_headers(&resp);
    assert_eq!(resp.json()["expires_in"], 1800);
    let token = resp.json()["access_token"].as_str().unwrap().to_owned();
    assert_json_exact(
        &get_me(addr, &format!("Bearer {token}")).await,
        200,
        JOHNDOE_ME,
    );
    assert_invalid_grant(&post_token(addr, "username=johndoe&password=bad").await);
    let alice = login(addr, "alice", "secret2").await;
    assert_json_exact(
        &get_me(addr, &format!("Bearer {alice}")).await,
        400,
        r#"{"detail":"Inactive user"}"#,
    );
    // The random key is not the test key.
    let forged = sign(&format!(r#"{{"sub":"johndoe","exp":{}}}"#, now() + 600));
    assert_401(
        &get_me(addr, &format!("Bearer {forged}")).await,
        INVALID_CREDENTIALS,
    );

    proc.signal("TERM");
    let (status, stderr) = proc.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM is a clean exit: {status:?}, stderr {stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_is_a_clean_exit_too() {
    let mut proc = Proc::spawn(&["--port", "0"]);
    let addr = proc.wait_listening();
    assert_eq!(get(addr, "/nope", &[]).await.status, 404);
    proc.signal("INT");
    let (status, stderr) = proc.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}, stderr {stderr:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_file_is_the_trimmed_key_and_the_ttl_flag_applies() {
    let dir = TempDir::new();
    let key = b"a-key-file-key-of-more-than-32-bytes-0123";
    let key_file = dir.file("key", &[b"  ".as_slice(), key, b"\n"].concat());
    let mut proc = Proc::spawn(&[
        "--port",
        "0",
        "--secret-key-file",
        &key_file,
        "--token-ttl-minutes",
        "5",
    ]);
    let addr = proc.wait_listening();
    let resp = post_token(addr, "username=johndoe&password=secret").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["expires_in"], 300);
    let (_, claims) = decode_verified(resp.json()["access_token"].as_str().unwrap(), key);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );

    // And a token minted elsewhere with that key (as PyJWT would) works.
    let minted = sign_with(
        Hs::S256,
        key,
        HS256_HEADER,
        &format!(r#"{{"sub":"johndoe","exp":{}}}"#, now() + 600),
    );
    assert_json_exact(
        &get_me(addr, &format!("Bearer {minted}")).await,
        200,
        JOHNDOE_ME,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_password_output_works_in_a_users_file() {
    let out = run(&["hash-password"], b"correct horse battery\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let phc = stdout.trim_end();
    assert!(
        phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "argon2id with the contract's parameters: {phc}"
    );
    let fields: Vec<&str> = phc.split('$').collect();
    assert_eq!(fields.len(), 6, "$id$v$params$salt$hash: {phc}");
    assert!(!fields[4].is_empty() && !fields[5].is_empty(), "{phc}");

    let dir = TempDir::new();
    let users = serde_json::json!({
        "mallory": {
            "username": "mallory",
            "full_name": "Mallory",
            "email": "mallory@example.com",
            "hashed_password": phc,
            "disabled": false,
        }
    });
    let users_file = dir.file("users.json", users.to_string().as_bytes());
    let mut proc = Proc::spawn(&["--port", "0", "--users", &users_file]);
    let addr = proc.wait_listening();
    assert!(
        !proc.seen.iter().any(|l| l.contains("demo users")),
        "no demo users with a users file: {:?}",
        proc.seen
    );
    // The newline was not part of the password.
    let token = login(addr, "mallory", "correct horse battery").await;
    let resp = get_me(addr, &format!("Bearer {token}")).await;
    assert_json_exact(
        &resp,
        200,
        r#"{"username":"mallory","email":"mallory@example.com","full_name":"Mallory","disabled":false}"#,
    );
    assert_invalid_grant(
        &post_token(addr, &credentials("mallory", "correct horse battery\n")).await,
    );
    // The demo users are not there when a users file is given.
    assert_invalid_grant(&post_token(addr, "username=johndoe&password=secret").await);
}

#[test]
fn hash_password_salts_every_hash() {
    let first = run(&["hash-password"], b"same\n");
    let second = run(&["hash-password"], b"same\n");
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(second.status.code(), Some(0));
    assert_ne!(first.stdout, second.stdout);
}

#[test]
fn help_prints_usage_and_exits_0() {
    let out = run(&["--help"], b"");
    assert_eq!(out.status.code(), Some(0));
    let usage = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--host",
        "--port",
        "--users",
        "--secret-key-file",
        "--token-ttl-minutes",
        "--no-docs",
        "--docs-assets-url",
        "--access-log",
        "--no-login-log",
        "PASSWORD_BEARER_PORT",
        "PASSWORD_BEARER_SECRET_KEY_FILE",
        "hash-password",
    ] {
        assert!(usage.contains(flag), "usage mentions {flag}: {usage}");
    }
}

/// `--workers 1` (a single-threaded runtime) and `--workers 3`: every
/// connection is served, keep-alive included; a second copy of the server
/// on the port is refused; SIGTERM closes idle connections and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_or_several_serve_and_shut_down() {
    for workers in ["1", "3"] {
        serve_and_shut_down_with_workers(workers).await;
    }
}

async fn serve_and_shut_down_with_workers(workers: &str) {
    let mut proc = Proc::spawn(&["--port", "0", "--workers", workers]);
    let addr = proc.wait_listening();
    let token = login(addr, "johndoe", "secret").await;
    let me = format!("GET /users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    let mut conns = Vec::new();
    for _ in 0..24 {
        conns.push(Conn::open(addr).await);
    }
    for conn in &mut conns {
        conn.send(me.as_bytes()).await;
        assert_json_exact(&conn.response().await, 200, JOHNDOE_ME);
    }

    let port = addr.port().to_string();
    let second = run(&["--port", &port], b"");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr:?}");
    assert!(stderr.contains(&port), "{stderr:?}");

    for conn in &mut conns {
        conn.send(me.as_bytes()).await;
        assert_json_exact(&conn.response().await, 200, JOHNDOE_ME);
    }
    proc.signal("TERM");
    for conn in &mut conns {
        assert!(
            conn.closed_within(Duration::from_secs(10)).await.is_some(),
            "an idle keep-alive connection is closed on shutdown"
        );
    }
    let (status, stderr) = proc.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}, stderr {stderr:?}");
}

#[test]
fn bad_flags_are_one_line_and_exit_2() {
    assert_config_error(&["--frobnicate"], "--frobnicate");
    assert_config_error(&["--port", "abc"], "--port");
    assert_config_error(&["--port", "70000"], "--port");
    assert_config_error(&["--port", "-1"], "--port");
    assert_config_error(
        &["--port", "0", "--token-ttl-minutes", "abc"],
        "--token-ttl-minutes",
    );
    assert_config_error(&["--port", "0", "--users"], "--users");
    assert_config_error(&["--port", "0", "--no-docs=yes"], "--no-docs");
    for workers in ["0", "257", "two"] {
        assert_config_error(&["--port", "0", "--workers", workers], "--workers");
    }
    assert_config_error(
        &["--port", "0", "--docs-assets-url", "cdn.example.com"],
        "--docs-assets-url",
    );
}

#[test]
fn version_prints_the_name_and_the_crate_version() {
    for flag in ["--version", "-V"] {
        let out = run(&[flag], b"");
        assert_eq!(out.status.code(), Some(0), "{flag}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("password-bearer {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
        assert!(out.stderr.is_empty(), "{flag}: {:?}", out.stderr);
    }
}

#[test]
fn a_mistyped_flag_is_told_the_flag_it_meant() {
    let dir = TempDir::new();
    let users = dir.file("users.json", b"{}");
    for (typed, meant) in [
        ("--user", "did you mean `--users`?"),
        ("--prot", "did you mean `--port`?"),
        ("--verison", "did you mean `--version`?"),
    ] {
        assert_config_error(&["--port", "0", typed, &users], &format!("{typed}: "));
        assert_config_error(&["--port", "0", typed, &users], meant);
    }
    // No guess when nothing is close.
    let out = run(&["--frobnicate"], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("did you mean"), "{stderr:?}");
}

#[test]
fn a_users_file_from_another_framework_is_told_to_rehash() {
    let dir = TempDir::new();
    for (name, hash, scheme) in [
        (
            "passlib-bcrypt.json",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "bcrypt",
        ),
        (
            "php-bcrypt.json",
            "$2y$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            "bcrypt",
        ),
        (
            "passlib-pbkdf2.json",
            "$pbkdf2-sha256$29000$N2YuJcL5HyPzrmuWiaAbUg$PGpz5iNPMJmcz3BC8eWvmoT5DTQQqAPyGQvvobOA/H0",
            "PBKDF2",
        ),
    ] {
        let users = serde_json::json!({"bob": {"username": "bob", "hashed_password": hash}});
        let file = dir.file(name, users.to_string().as_bytes());
        let args = ["--port", "0", "--users", &file];
        assert_config_error(&args, &file);
        let stderr = String::from_utf8_lossy(&run(&args, b"").stderr).into_owned();
        assert!(
            stderr.contains(&format!("{scheme} is not supported"))
                && stderr.contains("rehash with `password-bearer hash-password`"),
            "{stderr:?}"
        );
        assert!(!stderr.contains("salt"), "{stderr:?}");
        let secret_part = &hash[hash.len() - 20..];
        assert!(!stderr.contains(secret_part), "the hash is not shown: {stderr:?}");
    }
}

#[test]
fn a_port_in_use_is_one_line_and_exit_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let out = run(&["--port", &port], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.contains(&port) || stderr.contains("--port"),
        "{stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr:?}");
}

#[test]
fn bad_users_files_are_one_line_naming_the_file_and_exit_2() {
    let dir = TempDir::new();
    let hash = password_bearer::password::hash_password("pw").expect("hashing succeeds");
    let missing = path_str(&dir.0.join("no-such-users.json"));
    assert_config_error(&["--port", "0", "--users", &missing], &missing);
    // A directory cannot be read as a file (unlike permissions, this holds
    // when tests run as root).
    let unreadable = dir.0.join("a-directory.json");
    std::fs::create_dir(&unreadable).expect("create a directory");
    let unreadable = path_str(&unreadable);
    assert_config_error(&["--port", "0", "--users", &unreadable], &unreadable);

    for (name, content) in [
        ("invalid.json", "{\"johndoe\": {".to_owned()),
        ("empty.json", String::new()),
        ("array.json", "[]".to_owned()),
        (
            "no-username.json",
            serde_json::json!({"bob": {"full_name": "Bob", "hashed_password": hash}}).to_string(),
        ),
        (
            "no-hash.json",
            serde_json::json!({"bob": {"username": "bob", "full_name": "Bob"}}).to_string(),
        ),
        (
            "seed-fake-hash.json",
            serde_json::json!({"johndoe": {
                "username": "johndoe",
                "full_name": "John Doe",
                "email": "johndoe@example.com",
                "hashed_password": "fakehashedsecret",
                "disabled": false,
            }})
            .to_string(),
        ),
        (
            "bcrypt.json",
            serde_json::json!({"bob": {
                "username": "bob",
                "hashed_password": "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            }})
            .to_string(),
        ),
        (
            "truncated-argon2.json",
            serde_json::json!({"bob": {
                "username": "bob",
                "hashed_password": "$argon2id$v=19$m=19456,t=2,p=1$",
            }})
            .to_string(),
        ),
    ] {
        let file = dir.file(name, content.as_bytes());
        assert_config_error(&["--port", "0", "--users", &file], &file);
    }
}

#[test]
fn bad_key_files_are_one_line_naming_the_file_and_exit_2() {
    let dir = TempDir::new();
    let short = dir.file("short.key", &[b'k'; 31]);
    assert_config_error(&["--port", "0", "--secret-key-file", &short], &short);
    // 36 bytes on disk, 31 once trimmed: the trimmed length counts.
    let padded = dir.file(
        "padded.key",
        &[b"  ".as_slice(), &[b'k'; 31], b"\n\n\n"].concat(),
    );
    assert_config_error(&["--port", "0", "--secret-key-file", &padded], &padded);
    let empty = dir.file("empty.key", b"");
    assert_config_error(&["--port", "0", "--secret-key-file", &empty], &empty);
    let missing = path_str(&dir.0.join("no-such.key"));
    assert_config_error(&["--port", "0", "--secret-key-file", &missing], &missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_assets_dir_serves_swagger_ui_from_disk() {
    let dir = TempDir::new();
    dir.file("swagger-ui-bundle.js", b"window.SwaggerUIBundle = 1;");
    dir.file("swagger-ui.css", b"body { margin: 0 }");
    dir.file("index.html", b"not served");
    let path = path_str(&dir.0);
    let mut server = Proc::spawn(&["--port", "0", "--docs-assets-dir", &path]);
    let addr = server.wait_listening();
    let page = get(addr, "/docs", &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains(r#"src="/docs/swagger-ui-bundle.js""#));
    assert!(page.text().contains(r#"href="/docs/swagger-ui.css""#));
    assert!(!page.text().contains("cdn.jsdelivr.net"), "{}", page.text());
    let js = get(addr, "/docs/swagger-ui-bundle.js", &[]).await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(js.text(), "window.SwaggerUIBundle = 1;");
    let css = get(addr, "/docs/swagger-ui.css", &[]).await;
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(css.text(), "body { margin: 0 }");
    // Only those two files: nothing else in the folder, nothing outside it.
    for other in [
        "/docs/index.html",
        "/docs/../Cargo.toml",
        "/docs/swagger-ui.css/x",
    ] {
        assert_eq!(get(addr, other, &[]).await.status, 404, "{other}");
    }
    // Read once at start: deleting the folder changes nothing.
    drop(dir);
    assert_eq!(
        get(addr, "/docs/swagger-ui.css", &[]).await.text(),
        "body { margin: 0 }"
    );
    server.signal("TERM");
    assert!(server.wait_exit().0.success());
}

#[test]
fn a_docs_assets_dir_without_the_files_is_one_line_and_exit_2() {
    let dir = TempDir::new();
    let path = path_str(&dir.0);
    assert_config_error(&["--docs-assets-dir", &path], "swagger-ui-bundle.js");
    dir.file("swagger-ui-bundle.js", b"x");
    assert_config_error(&["--docs-assets-dir", &path], "swagger-ui.css");
    assert_config_error(
        &["--docs-assets-dir", "/nonexistent/swagger"],
        "--docs-assets-dir",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let mut server = Proc::spawn(&["--port", "0", "--grace-period-seconds", "30"]);
    let addr = server.wait_listening();
    // A request whose body never comes holds the 30 s grace period.
    let mut conn = Conn::open(addr).await;
    conn.send(b"POST /token HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nu")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.signal("TERM");
    assert!(
        server.exit_within(Duration::from_millis(500)).is_none(),
        "the first signal waits for the request in flight"
    );
    server.signal("INT");
    let status = server
        .exit_within(Duration::from_secs(5))
        .expect("the second signal exits at once");
    assert_eq!(status.code(), Some(130), "128 + SIGINT");
    let (_, lines) = server.wait_exit();
    assert!(
        lines.iter().any(|l| l.contains("second signal")),
        "{lines:?}"
    );
}

/// Without the `postgres` feature, a PostgreSQL URL is one line and exit
/// 2 saying how to build with it, and never echoes the URL's password.
#[cfg(not(feature = "postgres"))]
#[test]
fn a_postgres_url_needs_the_postgres_feature() {
    for url in [
        "postgres://bob:hunter2-never-shown@db/app",
        "postgresql://bob:hunter2-never-shown@db/app",
    ] {
        assert_config_error(&["--users", url], "--features postgres");
        let out = run(&["--users", url], b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(stderr.starts_with("password-bearer: --users: "), "{stderr}");
    }
    assert_config_error(&["--users-table", "accounts"], "--features postgres");
}

/// Without the `clients` feature, `--clients` (flag or variable) and
/// `hash-client-secret` are one line and exit 2 saying how to build with
/// it; the file is not read (it need not exist), nor is stdin echoed.
#[cfg(not(feature = "clients"))]
#[test]
fn clients_need_the_clients_feature() {
    let missing = "/nonexistent/clients.json";
    assert_config_error(&["--clients", missing], "--features clients");
    assert_config_error(&[&format!("--clients={missing}")], "--features clients");
    assert_config_error_with_env(
        &[],
        &[("PASSWORD_BEARER_CLIENTS", missing)],
        "--features clients",
    );
    let out = run(&["--clients", missing], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("password-bearer: --clients: "),
        "{stderr}"
    );
    let out = run_with_env(&[], &[("PASSWORD_BEARER_CLIENTS", missing)], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("password-bearer: PASSWORD_BEARER_CLIENTS: "),
        "{stderr}"
    );
    for args in [
        &["hash-client-secret"][..],
        &["hash-client-secret", "--generate"],
    ] {
        assert_config_error(args, "--features clients");
        let out = run(args, b"a-client-secret-never-shown\n");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("never-shown"), "{stderr}");
        assert!(
            stderr.starts_with("password-bearer: hash-client-secret: "),
            "{stderr}"
        );
    }
}

/// Without the `admin` feature, `users …` and `clients …` (any verb,
/// `--help` too) are one line and exit 2 saying how to build with it, and
/// change nothing: the users file stays as it was.
#[cfg(not(feature = "admin"))]
#[test]
fn the_admin_commands_need_the_admin_feature() {
    let tmp = TempDir::new();
    let users = tmp.file("users.json", users_json(&[("ann", "pw", false)]).as_bytes());
    let before = std::fs::read(&users).unwrap();
    for (args, build) in [
        (
            &["users", "list", "--users", &users][..],
            "--features admin)",
        ),
        (
            &["users", "remove", "ann", "--users", &users],
            "--features admin)",
        ),
        (&["users", "--help"], "--features admin)"),
        (&["users"], "--features admin)"),
        (
            &["clients", "list", "--clients", "c.json"],
            "--features admin,clients)",
        ),
        (&["clients", "add", "x"], "--features admin,clients)"),
    ] {
        assert_config_error(
            args,
            &format!(
                "password-bearer: {}: an admin command, but this binary was built without the \
                 `admin` feature (cargo build --release {build}",
                args[0]
            ),
        );
        assert!(run(args, b"").stdout.is_empty(), "{args:?}");
    }
    assert_eq!(std::fs::read(&users).unwrap(), before);
}
