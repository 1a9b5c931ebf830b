//! `--users postgres://…` (the `postgres` feature: `cargo test --features
//! postgres`) against a real PostgreSQL: two server processes on one
//! database see users inserted, disabled and deleted with plain SQL within
//! 1 s (and a session ends within 1 s of its user's password changed,
//! the user deleted, re-created or disabled, enabled again or not), a
//! missing table is created, an engine stopped is 503 (never 400 or
//! 401, nothing counted) and `/healthz` 503 until it is back, then both
//! recover with no restart; a database not there at startup, and bad URLs.
//!
//! The engine is a throwaway cluster, started once for this test binary:
//! `initdb` in a temporary directory, a free port on 127.0.0.1 with trust
//! authentication, its unix socket in that directory. Each test has a
//! database of its own; the outage test stops and restarts the cluster, so
//! it takes [`GATE`] for writing while the others hold it for reading. A
//! watchdog process stops the cluster and removes the directory when this
//! binary exits, however it exits (it reads until the pipe from this
//! process closes). `initdb` and `postgres` refuse to run as root: as root,
//! they run as the `postgres` user.

use crate::cli::{assert_config_error, Proc, TempDir};
use crate::support::*;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;
use tokio_postgres::NoTls;

#[cfg(all(feature = "clients", feature = "admin"))]
mod clients; // --clients postgres://…: the clients table read every 0.5 s, a bad row and an outage keep the running set

/// The outage test holds it for writing; every other test for reading.
static GATE: RwLock<()> = RwLock::const_new(());

/// The throwaway cluster.
struct Cluster {
    dir: PathBuf,
    port: u16,
    /// `["runuser", "-u", "postgres", "--"]` as root, else nothing.
    as_owner: Vec<String>,
    /// Held open until the process exits: the watchdog's stdin.
    _watchdog: Mutex<ChildStdin>,
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

fn run(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Cluster {
    fn start() -> Cluster {
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let as_owner: Vec<String> = if root {
            ["runuser", "-u", "postgres", "--"]
                .map(String::from)
                .to_vec()
        } else {
            Vec::new()
        };
        let dir = std::env::temp_dir().join(format!("password-bearer-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        if root {
            run(
                Command::new("chown").args(["postgres:"]).arg(&dir),
                "chown the cluster's directory to postgres",
            );
        }
        // The watchdog first, so that the directory goes even if initdb
        // fails half-way.
        let script = format!(
            "read _; {} {} -D \"$1/data\" -m immediate -w stop >/dev/null 2>&1; rm -rf \"$1\"",
            as_owner.join(" "),
            path_str(&pg_bin("pg_ctl"))
        );
        let mut watchdog = Command::new("sh")
            .args(["-c", &script, "sh"])
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the watchdog");
        let stdin = watchdog.stdin.take().expect("piped stdin");
        // Reaped by nobody: it outlives this process by design.
        std::mem::forget(watchdog);
        let cluster = Cluster {
            dir,
            port: free_port(),
            as_owner,
            _watchdog: Mutex::new(stdin),
        };
        run(
            &mut cluster.command(
                "initdb",
                &[
                    "-D",
                    &cluster.data(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            ),
            "initdb (apt-get install postgresql)",
        );
        cluster.pg_ctl_start();
        cluster
    }

    fn data(&self) -> String {
        path_str(&self.dir.join("data"))
    }

    /// `program` as the cluster's owner.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = pg_bin(program);
        let mut command = match self.as_owner.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(program);
                command
            }
            None => Command::new(program),
        };
        command.args(args);
        command
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            path_str(&self.dir)
        );
        let log = path_str(&self.dir.join("log"));
        run(
            &mut self.command(
                "pg_ctl",
                &[
                    "-D",
                    &self.data(),
                    "-o",
                    &options,
                    "-l",
                    &log,
                    "-w",
                    "start",
                ],
            ),
            "pg_ctl start",
        );
    }

    fn pg_ctl_stop(&self) {
        run(
            &mut self.command("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]),
            "pg_ctl stop",
        );
    }

    /// The URL of `database`, with a password that trust authentication
    /// ignores and no log line or error may show.
    fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }
}

/// The cluster stopped until dropped, so that a failing outage test
/// leaves it running for the others.
struct Stopped;

impl Stopped {
    fn new() -> Stopped {
        cluster().pg_ctl_stop();
        Stopped
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        cluster().pg_ctl_start();
    }
}

/// PostgreSQL's `program`: on the PATH, else in Debian's versioned
/// directory (its package does not put initdb or pg_ctl on the PATH).
fn pg_bin(program: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file());
    let debian = || {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse().ok()?;
                Some((version, entry.path().join("bin").join(program)))
            })
            .filter(|(_, path)| path.is_file())
            .collect();
        versions.sort();
        versions.pop().map(|(_, path)| path)
    };
    on_path
        .or_else(debian)
        .unwrap_or_else(|| panic!("no {program}: apt-get install postgresql"))
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

/// In every URL given to the servers; never in their output.
const PASSWORD: &str = "hunter2-never-logged";

/// A connection for the test's own SQL.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// A new, empty database: its URL.
async fn new_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let admin = sql(&cluster().url("postgres")).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a database");
    cluster().url(&name)
}

/// A server on `url`, signing with the key in `key_file`, with `extra`
/// flags.
fn server_with(url: &str, key_file: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["--port", "0", "--users", url, "--secret-key-file", key_file];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn(&args);
    let addr = proc.wait_listening();
    (proc, addr)
}

fn server(url: &str, key_file: &str) -> (Proc, SocketAddr) {
    server_with(url, key_file, &[])
}

fn key_file(dir: &TempDir) -> String {
    dir.file("key", TEST_KEY)
}

async fn insert_user(db: &tokio_postgres::Client, username: &str, password: &str) {
    let hash = password_bearer::password::hash_password(password).expect("hashing succeeds");
    db.execute(
        "INSERT INTO users (username, hashed_password, email, full_name, scopes) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &username,
            &hash,
            &format!("{username}@example.com"),
            &format!("Full {username}"),
            &vec!["me".to_owned()],
        ],
    )
    .await
    .expect("insert a user");
}

fn me_body(username: &str, disabled: &str) -> String {
    format!(
        r#"{{"username":"{username}","email":"{username}@example.com","full_name":"Full {username}","disabled":{disabled}}}"#
    )
}

const INACTIVE: &str = r#"{"detail":"Inactive user"}"#;

/// Sends `request` until its answer has `status`: the answer, and how
/// long that took. Fails past `limit`.
async fn poll<F, Fut>(limit: Duration, status: u16, mut request: F) -> (Response, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let start = Instant::now();
    loop {
        let resp = request().await;
        if resp.status == status {
            return (resp, start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "still {} {} after {limit:?}",
            resp.status,
            resp.text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `GET /users/me` on `addr` until it answers `status`: how long
/// that took. Fails past `limit`.
async fn until_me(addr: SocketAddr, token: &str, status: u16, limit: Duration) -> Duration {
    let authorization = format!("Bearer {token}");
    poll(limit, status, || get_me(addr, &authorization)).await.1
}

/// The most a change made with SQL may take to count on every instance.
const PROPAGATION: Duration = Duration::from_secs(1);

/// Runs `statement`, then polls `GET /users/me` with each of `tokens` (on
/// its server) until it answers `status`, within [`PROPAGATION`] of the
/// commit: how long after the commit the last one did.
async fn change(
    db: &tokio_postgres::Client,
    statement: &str,
    tokens: &[(SocketAddr, String)],
    status: u16,
) -> Duration {
    db.execute(statement, &[])
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    let changed = Instant::now();
    for (addr, token) in tokens {
        let left = PROPAGATION.saturating_sub(changed.elapsed());
        until_me(*addr, token, status, left).await;
    }
    changed.elapsed()
}

/// The line `proc` wrote before listening that holds `needle`.
fn seen_line(proc: &Proc, needle: &str) -> String {
    proc.seen
        .iter()
        .find(|l| l.contains(needle))
        .cloned()
        .unwrap_or_else(|| panic!("no {needle:?} in {:?}", proc.seen))
}

/// Everything both servers wrote to stderr: never the URL's password.
fn assert_no_password(procs: &[&Proc]) {
    for proc in procs {
        for line in &proc.seen {
            assert!(!line.contains(PASSWORD), "the password leaked: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_see_sql_changes_within_a_second() {
    let _shared = GATE.read().await;
    let url = new_database().await;
    let db = sql(&url).await;
    let tmp = TempDir::new();
    let key = key_file(&tmp);
    // Logins are polled until the insert counts, each a failure until
    // then: not a guesser to stop.
    let polled = ["--login-failures-per-user", "0"];
    let (a, a_addr) = server_with(&url, &key, &polled);
    let (b, b_addr) = server_with(&url, &key, &polled);
    // The table was missing: the first server created it, in the shape
    // of the shipped schema.
    let columns = db
        .query(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_name = 'users' ORDER BY ordinal_position",
            &[],
        )
        .await
        .expect("read the columns");
    let columns: Vec<(String, String, String)> = columns
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected = [
        ("username", "text", "NO"),
        ("hashed_password", "text", "NO"),
        ("email", "text", "YES"),
        ("full_name", "text", "YES"),
        ("disabled", "boolean", "YES"),
        ("scopes", "ARRAY", "YES"),
    ];
    assert_eq!(
        columns,
        expected.map(|(n, t, z)| (n.to_owned(), t.to_owned(), z.to_owned())),
    );
    seen_line(&a, r#"created the table "users""#);

    // Unknown on both, then inserted with SQL: logs in on both.
    for addr in [a_addr, b_addr] {
        let resp = post_token(addr, &credentials("carol", "s3cret")).await;
        assert_invalid_grant(&resp);
    }
    insert_user(&db, "carol", "s3cret").await;
    let mut tokens = Vec::new();
    for addr in [a_addr, b_addr] {
        let body = credentials("carol", "s3cret");
        let (resp, _) = poll(Duration::from_secs(1), 200, || post_token(addr, &body)).await;
        let token = access_token(&resp);
        let resp = get_me(addr, &format!("Bearer {token}")).await;
        assert_json_exact(&resp, 200, &me_body("carol", "null"));
        tokens.push((addr, token));
    }

    // Disabled with SQL: refused on both within 1 s, polled. A's token on
    // B too: tokens travel, users are looked up where they are used.
    let after = change(
        &db,
        "UPDATE users SET disabled = true WHERE username = 'carol'",
        &tokens,
        400,
    )
    .await;
    let resp = get_me(b_addr, &format!("Bearer {}", tokens[0].1)).await;
    assert_json_exact(&resp, 400, INACTIVE);
    eprintln!("disabled: refused on both after {after:?}");

    // Enabled again, then changed: the new e-mail shows within 1 s.
    change(
        &db,
        "UPDATE users SET disabled = false, email = 'new@example.com' WHERE username = 'carol'",
        &tokens,
        200,
    )
    .await;
    for (addr, token) in &tokens {
        let resp = get_me(*addr, &format!("Bearer {token}")).await;
        assert_eq!(resp.json()["email"], "new@example.com");
    }

    // Deleted: 401 on both within 1 s, and the login fails.
    let after = change(
        &db,
        "DELETE FROM users WHERE username = 'carol'",
        &tokens,
        401,
    )
    .await;
    for (addr, token) in &tokens {
        let resp = get_me(*addr, &format!("Bearer {token}")).await;
        assert_401(&resp, INVALID_CREDENTIALS);
    }
    eprintln!("deleted: refused on both after {after:?}");
    let resp = post_token(a_addr, &credentials("carol", "s3cret")).await;
    assert_invalid_grant(&resp);
    assert_no_password(&[&a, &b]);
}

/// Refreshes the session whose refresh token is `token` until the answer
/// is 400 (the session ended), each 200 on the way rotating it: how long
/// after `since` that took. Fails past [`PROPAGATION`].
async fn until_refresh_refused(addr: SocketAddr, mut token: String, since: Instant) -> Duration {
    loop {
        let resp = post_token(addr, &body_of(&token)).await;
        match resp.status {
            200 => token = resp.json()["refresh_token"].as_str().unwrap().to_owned(),
            400 => {
                assert_eq!(resp.json()["error"], "invalid_grant", "{}", resp.text());
                return since.elapsed();
            }
            other => panic!("{other} {}", resp.text()),
        }
        assert!(
            since.elapsed() < PROPAGATION,
            "the session still refreshes after {PROPAGATION:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A login on `addr` that must succeed (polled: an insert may not count
/// yet): its access and refresh tokens.
async fn session_of(addr: SocketAddr, username: &str, password: &str) -> (String, String) {
    let body = credentials(username, password);
    let (resp, _) = poll(PROPAGATION, 200, || post_token(addr, &body)).await;
    let json = resp.json();
    let text = |field: &str| json[field].as_str().unwrap().to_owned();
    (text("access_token"), text("refresh_token"))
}

/// The sessions' promises where SQL changes the users (no reload tells
/// the server; each refresh looks its user up, through a 0.5 s cache):
/// within a second, a new password, a deletion, a re-creation under the
/// name or a disabling ends the session, refresh and access tokens; an
/// ended session stays ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_changes_to_a_user_end_their_sessions_within_a_second() {
    let _shared = GATE.read().await;
    let url = new_database().await;
    let tmp = TempDir::new();
    // Logins are polled until a change counts: not a guesser to stop.
    let polled = ["--login-failures-per-user", "0"];
    let (_proc, addr) = server_with(&url, &key_file(&tmp), &polled);
    let db = sql(&url).await;
    insert_user(&db, "carol", "old").await;
    let rehash = |password: &str| {
        password_bearer::password::hash_password(password).expect("hashing succeeds")
    };

    // A new password.
    let (access, refresh) = session_of(addr, "carol", "old").await;
    db.execute(
        "UPDATE users SET hashed_password = $1 WHERE username = 'carol'",
        &[&rehash("new")],
    )
    .await
    .expect("update");
    let after = until_refresh_refused(addr, refresh, Instant::now()).await;
    eprintln!("a new password: the session ended after {after:?}");
    assert_eq!(get_me(addr, &format!("Bearer {access}")).await.status, 401);

    // Deleted, then re-created under the name with the same password (a
    // new hash): the new carol has none of the old one's sessions.
    let (access, refresh) = session_of(addr, "carol", "new").await;
    db.batch_execute("DELETE FROM users WHERE username = 'carol'")
        .await
        .expect("delete");
    until_refresh_refused(addr, refresh.clone(), Instant::now()).await;
    insert_user(&db, "carol", "new").await;
    assert_eq!(
        post_token(addr, &body_of(&refresh)).await.status,
        400,
        "ended for good"
    );
    assert_eq!(get_me(addr, &format!("Bearer {access}")).await.status, 401);
    let (_, refresh) = session_of(addr, "carol", "new").await;
    db.execute(
        "UPDATE users SET hashed_password = $1 WHERE username = 'carol'",
        &[&rehash("new")],
    )
    .await
    .expect("re-created in one step");
    until_refresh_refused(addr, refresh, Instant::now()).await;

    // Disabled: the refresh tried meanwhile ends the session; enabled
    // again, it stays ended.
    let (access, refresh) = session_of(addr, "carol", "new").await;
    db.batch_execute("UPDATE users SET disabled = true WHERE username = 'carol'")
        .await
        .expect("disable");
    until_refresh_refused(addr, refresh.clone(), Instant::now()).await;
    db.batch_execute("UPDATE users SET disabled = false WHERE username = 'carol'")
        .await
        .expect("enable");
    until_me(
        addr,
        &session_of(addr, "carol", "new").await.0,
        200,
        PROPAGATION,
    )
    .await;
    assert_eq!(post_token(addr, &body_of(&refresh)).await.status, 400);
    assert_eq!(get_me(addr, &format!("Bearer {access}")).await.status, 401);
}

fn body_of(refresh: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={refresh}")
}

/// Tries `POST /token` on `addr` until it answers `status`.
async fn until_login(addr: SocketAddr, body: &str, status: u16) -> Response {
    poll(Duration::from_secs(10), status, || post_token(addr, body))
        .await
        .0
}

/// Asks `/healthz` on `addr` until it answers `status`.
async fn until_health(addr: SocketAddr, status: u16) -> Response {
    poll(Duration::from_secs(10), status, || {
        get(addr, "/healthz", &[])
    })
    .await
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_stopped_is_503_and_both_recover_when_it_is_back() {
    let _alone = GATE.write().await;
    let url = new_database().await;
    let tmp = TempDir::new();
    let key = key_file(&tmp);
    let (a, a_addr) = server(&url, &key);
    let (b, b_addr) = server(&url, &key);
    insert_user(&sql(&url).await, "dave", "pa55word").await;
    let token = until_login(a_addr, &credentials("dave", "pa55word"), 200).await;
    let token = access_token(&token);
    for addr in [a_addr, b_addr] {
        until_health(addr, 200).await;
    }

    let stopped = Stopped::new();
    for addr in [a_addr, b_addr] {
        // Within a cached row's half second, /users/me still answers from
        // it; after, 503 like everything that needs the database.
        until_me(addr, &token, 503, Duration::from_secs(5)).await;
        let resp = get_me(addr, &format!("Bearer {token}")).await;
        assert_busy(&resp);
        until_health(addr, 503).await;
        // More wrong passwords than the per-user limit (10 a minute):
        // each is 503, none is counted, so none is 429 and the right
        // password works once the database is back.
        for _ in 0..12 {
            let resp = post_token(addr, &credentials("dave", "wrong")).await;
            assert_busy(&resp);
        }
        let resp = post_token(addr, &credentials("nobody", "x")).await;
        assert_busy(&resp);
    }

    drop(stopped);
    for addr in [a_addr, b_addr] {
        until_health(addr, 200).await;
        let resp = until_login(addr, &credentials("dave", "pa55word"), 200).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        let resp = get_me(addr, &format!("Bearer {token}")).await;
        assert_json_exact(&resp, 200, &me_body("dave", "null"));
    }
    assert_no_password(&[&a, &b]);
}

/// Every process of the cluster, frozen until dropped ([`Frozen`]).
fn freeze_cluster() -> Frozen {
    let pid_file = cluster().dir.join("data").join("postmaster.pid");
    let postmaster = std::fs::read_to_string(&pid_file)
        .expect("postmaster.pid")
        .lines()
        .next()
        .expect("the postmaster's pid")
        .to_owned();
    let children = Command::new("pgrep")
        .args(["-P", &postmaster])
        .output()
        .expect("pgrep runs");
    let mut pids = vec![postmaster];
    pids.extend(
        String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .map(String::from),
    );
    Frozen::new(pids)
}

/// The database frozen ([`freeze_cluster`]): everything that needs it answers
/// 503 within its deadline (2 s) rather than hanging, counts no failure,
/// and the server recovers by itself once it moves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_is_503_within_the_deadline_and_counts_nothing() {
    let _alone = GATE.write().await;
    let url = new_database().await;
    let tmp = TempDir::new();
    let (proc, addr) = server_with(&url, &key_file(&tmp), &["--login-failures-per-user", "2"]);
    insert_user(&sql(&url).await, "gina", "pa55word").await;
    let token = access_token(&until_login(addr, &credentials("gina", "pa55word"), 200).await);

    let frozen = freeze_cluster();
    // Past the cached row's half second, /users/me needs the database too.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let start = Instant::now();
    let mut waiting = tokio::task::JoinSet::new();
    // As many wrong passwords at once as the limit lets in flight.
    for _ in 0..2 {
        waiting.spawn(async move { post_token(addr, &credentials("gina", "wrong")).await });
    }
    waiting.spawn(async move { get_me(addr, &format!("Bearer {token}")).await });
    waiting.spawn(async move { post_token(addr, &credentials("nobody", "x")).await });
    while let Some(resp) = waiting.join_next().await {
        assert_busy(&resp.expect("a request"));
    }
    let resp = get(addr, "/healthz", &[]).await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    // Each waited at most the 2 s deadline, and the later ones less.
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );

    drop(frozen);
    until_health(addr, 200).await;
    // The wrong passwords answered 503 counted nothing.
    for _ in 0..2 {
        let resp = post_token(addr, &credentials("gina", "wrong")).await;
        assert_eq!(resp.status, 400, "{}", resp.text());
    }
    let resp = post_token(addr, &credentials("gina", "wrong")).await;
    assert_eq!(resp.status, 429, "{}", resp.text());
    assert_no_password(&[&proc]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_missing_at_startup_is_503_until_it_is_created() {
    let _shared = GATE.read().await;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!("later{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let url = cluster().url(&name);
    let tmp = TempDir::new();
    let (proc, addr) = server(&url, &key_file(&tmp));
    let warning = seen_line(&proc, "warning: store unavailable");
    assert!(
        warning.contains(&format!(
            "postgres://postgres:***@127.0.0.1:{}/{name}",
            cluster().port
        )) && warning.contains("503"),
        "{warning}"
    );
    let resp = get(addr, "/healthz", &[]).await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_busy(&post_token(addr, &credentials("erin", "pw")).await);

    // Created later: the server creates the table and serves it, with no
    // restart.
    let admin = sql(&cluster().url("postgres")).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the database");
    until_health(addr, 200).await;
    insert_user(&sql(&url).await, "erin", "pw").await;
    until_login(addr, &credentials("erin", "pw"), 200).await;
    assert_no_password(&[&proc]);
}

#[test]
fn an_unreachable_database_starts_and_bad_urls_exit_2() {
    // Nothing listens there: the server starts, says why in one line
    // without the password, and answers /healthz 503.
    let tmp = TempDir::new();
    let url = format!("postgresql://bob:{PASSWORD}@127.0.0.1:{}/app", free_port());
    let mut proc = Proc::spawn(&[
        "--port",
        "0",
        "--users",
        &url,
        "--secret-key-file",
        &key_file(&tmp),
    ]);
    proc.wait_listening();
    let warning = seen_line(&proc, "warning: store unavailable");
    assert!(
        warning.contains("postgresql://bob:***@127.0.0.1"),
        "{warning}"
    );
    assert_no_password(&[&proc]);
    drop(proc);

    for (url, problem) in [
        (
            format!("postgres://bob:{PASSWORD}@db:notaport/app"),
            "invalid PostgreSQL URL",
        ),
        (
            format!("postgres://bob:{PASSWORD}@db/app?bogus=1"),
            "unknown option `bogus`",
        ),
    ] {
        let out = crate::cli::run(&["--port", "0", "--users", &url], b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("password-bearer: --users postgres://bob:***@db")
                && stderr.contains(problem),
            "{stderr}"
        );
        assert!(!stderr.contains(PASSWORD), "{stderr}");
    }
}

/// `--users-table auth.user`: the table is created in the schema under
/// that name (a reserved word, quoted), its rows are the users, and no
/// `users` table is made; a name that is not one, or a table for users
/// read from a file, is one line and exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_table_names_the_table_read_and_created() {
    let _shared = GATE.read().await;
    let url = new_database().await;
    let db = sql(&url).await;
    db.batch_execute("CREATE SCHEMA auth")
        .await
        .expect("a schema");
    let tmp = TempDir::new();
    let (proc, addr) = server_with(&url, &key_file(&tmp), &["--users-table", "auth.user"]);
    let created = seen_line(&proc, "created the table");
    assert!(created.contains(r#""auth"."user""#), "{created}");
    let hash = password_bearer::password::hash_password("pw").expect("hashing succeeds");
    db.execute(
        r#"INSERT INTO auth."user" (username, hashed_password) VALUES ('frank', $1)"#,
        &[&hash],
    )
    .await
    .expect("insert a user");
    let resp = until_login(addr, &credentials("frank", "pw"), 200).await;
    let token = resp.json()["access_token"].as_str().unwrap().to_owned();
    let me = get_me(addr, &format!("Bearer {token}")).await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["username"], "frank");
    let missing = db
        .query_one("SELECT to_regclass('users') IS NULL", &[])
        .await
        .expect("a query");
    assert!(missing.get::<_, bool>(0), "a users table was created");
    drop(proc);

    for bad in ["Users", "auth.user;drop", "a.b.c"] {
        assert_config_error(
            &["--users", &url, "--users-table", bad],
            "--users-table: not a table name",
        );
    }
    assert_config_error(
        &["--users-table", "accounts"],
        "--users-table: names a PostgreSQL table, but the users come from a file",
    );
}

/// The library's store, embedded: `connect` reads the scopes (for
/// `/openapi.json`) and the argon2 parameters rows already hold, and the
/// app grants those scopes; a row the table cannot make a user of is 503,
/// never a failed login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_embedded_lists_the_tables_scopes() {
    use password_bearer::users::postgres::PostgresUsers;
    use password_bearer::users::UserStore;
    let _shared = GATE.read().await;
    let url = new_database().await;
    let db = sql(&url).await;
    db.batch_execute(password_bearer::users::postgres::SCHEMA)
        .await
        .expect("create the table");
    insert_user(&db, "frank", "pw").await;
    db.execute(
        "UPDATE users SET scopes = '{me,reports,NULL}' WHERE username = 'frank'",
        &[],
    )
    .await
    .expect("grant reports");
    db.execute(
        "INSERT INTO users (username, hashed_password) VALUES ('broken', 'not-a-hash')",
        &[],
    )
    .await
    .expect("insert a broken row");
    let store = PostgresUsers::new(&url).expect("a valid URL");
    store.connect().await.expect("the database answers");
    assert_eq!(store.scopes(), ["me", "reports"]);
    assert!(store.hash_params().is_some());
    let server = start_store(password_bearer::Config::new(store, test_key())).await;

    let doc = get(server.addr, "/openapi.json", &[]).await.json();
    let flow = &doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"];
    let mut names: Vec<&str> = flow["scopes"]
        .as_object()
        .expect("scopes is an object")
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["me", "reports"], "{flow}");
    let resp = login_with_scope(server.addr, "frank", "pw", "reports").await;
    assert_eq!(token_claims(&access_token(&resp))["scope"], "reports");
    assert_busy(&post_token(server.addr, &credentials("broken", "x")).await);
}

/// `password-bearer users …` on the table (`--users postgres://…`),
/// against a running server: no reload; each change counts within
/// [`PROPAGATION`]. `add` on an empty database creates the table and the
/// user logs in; `passwd` ends the session at its next refresh and the
/// new password logs in; `disable` makes `/users/me` 400 Inactive,
/// `enable` 200 again; `remove` refuses the login. The URL's password
/// is in no line the command writes. The `admin` feature's.
#[cfg(feature = "admin")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_commands_change_the_table_a_server_reads() {
    let _shared = GATE.read().await;
    let url = new_database().await;
    let tmp = TempDir::new();
    let admin = |args: &[&str], stdin: &str| {
        let mut all = vec!["users"];
        all.extend_from_slice(args);
        all.extend(["--users", &url]);
        let out = crate::cli::run(&all, stdin.as_bytes());
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{all:?}: {stderr}");
        assert!(
            !stderr.contains(PASSWORD),
            "the URL's password leaked: {stderr}"
        );
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    };
    let (_, stderr) = admin(
        &["add", "pat", "--scope", "me", "--email", "pat@example.com"],
        "first\n",
    );
    assert!(
        stderr.contains(r#"audit: users add username="pat""#) && stderr.contains("within 0.5 s"),
        "{stderr}"
    );
    let (proc, addr) = server(&url, &key_file(&tmp));
    let (_, refresh) = session_of(addr, "pat", "first").await;
    let (list, _) = admin(&["list"], "");
    assert_eq!(list, "\"pat\" active scopes=\"me\"\n");

    admin(&["passwd", "pat"], "second\n");
    until_refresh_refused(addr, refresh, Instant::now()).await;
    let (access, _) = session_of(addr, "pat", "second").await;

    admin(&["disable", "pat"], "");
    let authorization = format!("Bearer {access}");
    let (resp, _) = poll(PROPAGATION, 400, || get_me(addr, &authorization)).await;
    assert_json_exact(&resp, 400, INACTIVE);
    admin(&["enable", "pat"], "");
    until_me(addr, &access, 200, PROPAGATION).await;

    // A taken name: one line, exit 2.
    let out = crate::cli::run(&["users", "add", "pat", "--users", &url], b"x\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(r#"a user "pat" exists already"#),
        "{stderr}"
    );

    admin(&["remove", "pat"], "");
    let body = credentials("pat", "second");
    poll(PROPAGATION, 400, || post_token(addr, &body)).await;
    until_me(addr, &access, 401, PROPAGATION).await;
    let out = crate::cli::run(&["users", "remove", "pat", "--users", &url], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(r#"no user "pat""#));
    assert_no_password(&[&proc]);
}
