//! The sessions' promises where they meet passwords and lost answers
//! (issue 18), over TCP, in every store built in: memory, `--state-dir`
//! (the `persist` feature) and Redis (the `redis` feature).
//!
//! - A session ends when its user's password changes or the user is
//!   removed: by a reload, or where no reload tells the server (a store
//!   changed in place, as SQL changes PostgreSQL's users; tests/postgres.rs
//!   does it with SQL), at its next refresh. A user re-created under the
//!   name inherits no session, and a user disabled then enabled again has
//!   none from before.
//! - A refresh retried with the token just used up, within the retry
//!   window, is answered once (the answer that carried the next token was
//!   lost); a second retry, or one after the window, is a reuse and ends
//!   the session. With `--state-dir`, also across `kill -9` of the binary.
//!
//! Each promise is one `async fn` taking a [`Backend`], so that a generic
//! store suite can take them over; the tests at the end run each promise
//! in every store.

use crate::cli::{Proc, TempDir};
use crate::sessions::{field, login_json, refresh};
use crate::support::*;
use password_bearer::sessions::memory::MemorySessions;
use password_bearer::sessions::SessionStore;
use password_bearer::users::{StoreError, User, UserStore, Users};
use password_bearer::{serve, App, Config};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Where a test's sessions live.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    Memory,
    #[cfg(feature = "persist")]
    StateDir,
    #[cfg(feature = "redis")]
    Redis,
}

/// Every store built in.
const BACKENDS: &[Backend] = &[
    Backend::Memory,
    #[cfg(feature = "persist")]
    Backend::StateDir,
    #[cfg(feature = "redis")]
    Backend::Redis,
];

/// A fresh store, and what it needs kept (its directory).
struct Store {
    sessions: Arc<dyn SessionStore>,
    _dir: Option<TempDir>,
}

impl Backend {
    async fn store(self) -> Store {
        match self {
            Backend::Memory => Store {
                sessions: Arc::new(MemorySessions::default()),
                _dir: None,
            },
            #[cfg(feature = "persist")]
            Backend::StateDir => {
                let dir = TempDir::new();
                let sessions =
                    password_bearer::sessions::persistent::PersistentSessions::open(&dir.0)
                        .expect("the state directory opens");
                Store {
                    sessions: Arc::new(sessions),
                    _dir: Some(dir),
                }
            }
            #[cfg(feature = "redis")]
            Backend::Redis => {
                use password_bearer::redis::{Redis, RedisSessions};
                use password_bearer::sessions::memory::DEFAULT_MAX_PER_USER;
                let redis = Redis::connect(&crate::redis::shared().url(), &crate::redis::prefix())
                    .await
                    .expect("Redis answers");
                let sessions = RedisSessions::open(redis, DEFAULT_MAX_PER_USER)
                    .await
                    .expect("Redis answers");
                Store {
                    sessions: Arc::new(sessions),
                    _dir: None,
                }
            }
        }
    }
}

/// A user store changed in place, as SQL changes a database's users: no
/// reload tells the server; each request looks the user up.
#[derive(Clone)]
struct Live(Arc<RwLock<Users>>);

impl Live {
    fn new(users: Users) -> Live {
        Live(Arc::new(RwLock::new(users)))
    }

    fn set(&self, users: Users) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = users;
    }
}

impl UserStore for Live {
    fn find(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<Arc<User>>, StoreError>> + Send {
        let users = self.0.read().unwrap_or_else(PoisonError::into_inner);
        std::future::ready(Ok(users.get(username).cloned()))
    }
}

/// A running server, its app (to reload), and its store's keepsakes.
struct Server<S: UserStore> {
    app: Arc<App<S>>,
    addr: SocketAddr,
    _server: TestServer,
    _store: Store,
}

/// A server of `users` whose sessions live in a fresh store of `backend`,
/// with the retry window `retry_window`.
async fn start_server<S: UserStore>(
    backend: Backend,
    users: S,
    retry_window: Duration,
) -> Server<S> {
    let store = backend.store().await;
    let mut config = Config::new(users, test_key());
    config.sessions = Some(store.sessions.clone());
    config.refresh_retry_window = retry_window;
    config.login_log = false;
    let app = Arc::new(App::new(config));
    let served = app.clone();
    let test_server = start_loop(|listener, shutdown| serve(listener, served, shutdown)).await;
    Server {
        app,
        addr: test_server.addr,
        _server: test_server,
        _store: store,
    }
}

/// The default window, as `Config::new` sets it.
const WINDOW: Duration = Duration::from_secs(60);

/// A users file of `(username, hash, disabled)`: the hash given, so that a
/// user can come back with the very same one.
fn users_of(entries: &[(&str, &str, bool)]) -> Users {
    let mut map = serde_json::Map::new();
    for (username, hash, disabled) in entries {
        map.insert(
            (*username).to_owned(),
            serde_json::json!({
                "username": username,
                "hashed_password": hash,
                "disabled": disabled,
            }),
        );
    }
    Users::from_json(&serde_json::Value::Object(map).to_string()).expect("valid users")
}

fn hash(password: &str) -> String {
    password_bearer::password::hash_password(password).expect("hashing succeeds")
}

/// A login's access and refresh tokens.
async fn log_in(addr: SocketAddr, username: &str, password: &str) -> (String, String) {
    let json = login_json(addr, username, password, "").await;
    (field(&json, "access_token"), field(&json, "refresh_token"))
}

/// A refresh that must succeed: its access and refresh tokens.
async fn refreshed(addr: SocketAddr, refresh_token: &str) -> (String, String) {
    let resp = refresh(addr, refresh_token, None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let json = resp.json();
    (field(&json, "access_token"), field(&json, "refresh_token"))
}

/// A refresh that must be refused as a bad refresh token.
async fn refused(addr: SocketAddr, refresh_token: &str) {
    let resp = refresh(addr, refresh_token, None).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["detail"], "Invalid refresh token");
    assert_eq!(resp.json()["error"], "invalid_grant");
}

async fn me_status(addr: SocketAddr, access_token: &str) -> u16 {
    get_me(addr, &format!("Bearer {access_token}")).await.status
}

/// Waits until `access_token` gets 401 (its session ended), within 5 s.
async fn access_ends(addr: SocketAddr, access_token: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = me_status(addr, access_token).await;
        if status == 401 {
            return;
        }
        assert!(Instant::now() < deadline, "still {status} after 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// The promises, one per function.

/// A reload that gives bob another password ends his sessions: their
/// access tokens at once, their refresh tokens for good. His new password
/// starts a new one.
pub(crate) async fn a_password_changed_by_a_reload_ends_the_session(backend: Backend) {
    let server = start_server(backend, users_of(&[("bob", &hash("old"), false)]), WINDOW).await;
    let (_, first) = log_in(server.addr, "bob", "old").await;
    let (access, current) = refreshed(server.addr, &first).await;
    let carol = hash("carol's");
    server
        .app
        .reload(
            users_of(&[("bob", &hash("new"), false), ("carol", &carol, false)]),
            test_key(),
            Vec::new(),
        )
        .await;
    assert_eq!(me_status(server.addr, &access).await, 401);
    refused(server.addr, &current).await;
    assert_invalid_grant(&post_token(server.addr, &credentials("bob", "old")).await);
    let (access, next) = log_in(server.addr, "bob", "new").await;
    assert_eq!(me_status(server.addr, &access).await, 200);
    refreshed(server.addr, &next).await;
}

/// Where nothing tells the server (the users changed in place, as by
/// SQL), the next refresh finds bob's hash is not the one his session
/// started with: refused, and the session ended with its access tokens.
/// So the store kept the session's fingerprint.
pub(crate) async fn a_password_changed_in_place_ends_the_session_at_its_refresh(backend: Backend) {
    let users = Live::new(users_of(&[("bob", &hash("old"), false)]));
    let server = start_server(backend, users.clone(), WINDOW).await;
    let (_, first) = log_in(server.addr, "bob", "old").await;
    let (access, current) = refreshed(server.addr, &first).await;
    users.set(users_of(&[("bob", &hash("new"), false)]));
    // The access token lives until the refresh looks at the user.
    assert_eq!(me_status(server.addr, &access).await, 200);
    refused(server.addr, &current).await;
    assert_eq!(me_status(server.addr, &access).await, 401);
    // Ended for good: the old password back changes nothing.
    users.set(users_of(&[("bob", &hash("old"), false)]));
    refused(server.addr, &current).await;
    let (_, next) = log_in(server.addr, "bob", "old").await;
    refreshed(server.addr, &next).await;
}

/// bob removed, and a bob added again (even with the same password: a
/// new hash), by reloads or in place: the new bob inherits none of the old
/// one's sessions.
pub(crate) async fn a_user_re_created_under_the_name_inherits_no_session(backend: Backend) {
    // By two reloads.
    let server = start_server(backend, users_of(&[("bob", &hash("pw"), false)]), WINDOW).await;
    let (access, current) = log_in(server.addr, "bob", "pw").await;
    let carol = users_of(&[("carol", &hash("carol's"), false)]);
    server.app.reload(carol, test_key(), Vec::new()).await;
    assert_eq!(me_status(server.addr, &access).await, 401);
    server
        .app
        .reload(
            users_of(&[("bob", &hash("pw"), false)]),
            test_key(),
            Vec::new(),
        )
        .await;
    refused(server.addr, &current).await;
    assert_eq!(me_status(server.addr, &access).await, 401);
    let (access, next) = log_in(server.addr, "bob", "pw").await;
    assert_eq!(me_status(server.addr, &access).await, 200);
    refreshed(server.addr, &next).await;

    // In place, in one step: the old bob's session meets the new bob.
    let users = Live::new(users_of(&[("bob", &hash("pw"), false)]));
    let server = start_server(backend, users.clone(), WINDOW).await;
    let (_, current) = log_in(server.addr, "bob", "pw").await;
    users.set(users_of(&[("bob", &hash("pw"), false)]));
    refused(server.addr, &current).await;
    // Removed in place: the same.
    let (_, current) = log_in(server.addr, "bob", "pw").await;
    users.set(users_of(&[("carol", &hash("carol's"), false)]));
    refused(server.addr, &current).await;
}

/// bob disabled: his refresh is refused and his sessions end (a reload
/// ends them at once). Enabled again with the very same hash, he has no
/// session from before: he logs in again.
pub(crate) async fn a_user_disabled_then_enabled_has_no_session_from_before(backend: Backend) {
    let bob = hash("pw");
    // By reloads, no refresh tried in between.
    let server = start_server(backend, users_of(&[("bob", &bob, false)]), WINDOW).await;
    let (access, current) = log_in(server.addr, "bob", "pw").await;
    server
        .app
        .reload(users_of(&[("bob", &bob, true)]), test_key(), Vec::new())
        .await;
    assert_eq!(me_status(server.addr, &access).await, 401);
    server
        .app
        .reload(users_of(&[("bob", &bob, false)]), test_key(), Vec::new())
        .await;
    refused(server.addr, &current).await;
    assert_eq!(me_status(server.addr, &access).await, 401);
    let (access, next) = log_in(server.addr, "bob", "pw").await;
    assert_eq!(me_status(server.addr, &access).await, 200);
    refreshed(server.addr, &next).await;

    // In place: the refresh tried while disabled ends the session.
    let users = Live::new(users_of(&[("bob", &bob, false)]));
    let server = start_server(backend, users.clone(), WINDOW).await;
    let (access, current) = log_in(server.addr, "bob", "pw").await;
    users.set(users_of(&[("bob", &bob, true)]));
    refused(server.addr, &current).await;
    users.set(users_of(&[("bob", &bob, false)]));
    refused(server.addr, &current).await;
    assert_eq!(me_status(server.addr, &access).await, 401);
}

/// A refresh whose answer was lost: the client retries with the token it
/// holds, the one just used up. Within the window it is answered once,
/// with a pair that works; the session goes on. Retried twice, it is a
/// reuse: the session ends, the retry's tokens with it.
pub(crate) async fn a_retry_after_a_lost_answer_is_answered_once(backend: Backend) {
    let server = start_server(backend, Users::demo(), WINDOW).await;
    let (_, first) = log_in(server.addr, "johndoe", "secret").await;
    // Committed, but the answer never reached the client.
    let (_lost_access, _lost_refresh) = refreshed(server.addr, &first).await;
    let (access, current) = refreshed(server.addr, &first).await;
    assert_eq!(me_status(server.addr, &access).await, 200);
    let (access, current) = refreshed(server.addr, &current).await;
    assert_eq!(me_status(server.addr, &access).await, 200);
    // A token from before the last rotation again: stolen.
    refused(server.addr, &first).await;
    assert_eq!(me_status(server.addr, &access).await, 401);
    refused(server.addr, &current).await;

    // Once only: a second retry with the same token is a reuse.
    let (_, first) = log_in(server.addr, "johndoe", "secret").await;
    refreshed(server.addr, &first).await;
    let (access, current) = refreshed(server.addr, &first).await;
    refused(server.addr, &first).await;
    assert_eq!(me_status(server.addr, &access).await, 401);
    refused(server.addr, &current).await;
}

/// Past the window, the token just used up is a reuse at once, as it is
/// with no window at all.
pub(crate) async fn a_retry_after_the_window_is_a_reuse(backend: Backend) {
    let server = start_server(backend, Users::demo(), Duration::from_secs(1)).await;
    let (_, first) = log_in(server.addr, "johndoe", "secret").await;
    let (access, current) = refreshed(server.addr, &first).await;
    // Unix seconds: two of them are past a one-second window.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    refused(server.addr, &first).await;
    assert_eq!(me_status(server.addr, &access).await, 401);
    refused(server.addr, &current).await;

    let server = start_server(backend, Users::demo(), Duration::ZERO).await;
    let (_, first) = log_in(server.addr, "johndoe", "secret").await;
    let (access, _) = refreshed(server.addr, &first).await;
    refused(server.addr, &first).await;
    assert_eq!(me_status(server.addr, &access).await, 401);
}

/// Runs `promise` in every store, one after the other.
async fn in_every_store<F, Fut>(promise: F)
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in BACKENDS {
        eprintln!("in {backend:?}");
        promise(*backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_changed_by_a_reload_ends_the_session_in_every_store() {
    in_every_store(a_password_changed_by_a_reload_ends_the_session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_changed_in_place_ends_the_session_in_every_store() {
    in_every_store(a_password_changed_in_place_ends_the_session_at_its_refresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_re_created_inherits_no_session_in_every_store() {
    in_every_store(a_user_re_created_under_the_name_inherits_no_session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_disabled_then_enabled_has_no_session_from_before_in_every_store() {
    in_every_store(a_user_disabled_then_enabled_has_no_session_from_before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_lost_answer_is_answered_once_in_every_store() {
    in_every_store(a_retry_after_a_lost_answer_is_answered_once).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_the_window_is_a_reuse_in_every_store() {
    in_every_store(a_retry_after_the_window_is_a_reuse).await;
}

/// The binary: bob's password changed in the users file, then SIGHUP; his
/// session from before ends, refresh and access tokens alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_new_password_ends_the_binarys_sessions() {
    let tmp = TempDir::new();
    let before = users_json(&[("bob", "old", false)]);
    let users = tmp.file("users.json", before.as_bytes());
    let key = tmp.file("key", TEST_KEY);
    let mut proc = Proc::spawn(&["--port", "0", "--users", &users, "--secret-key-file", &key]);
    let addr = proc.wait_listening();
    let (access, current) = log_in(addr, "bob", "old").await;
    tmp.file(
        "users.json",
        users_json(&[("bob", "new", false)]).as_bytes(),
    );
    proc.signal("HUP");
    proc.wait_line("reloaded: 1 users");
    access_ends(addr, &access).await;
    let ended = r#"sessions ended by the reload: 1 username="bob""#;
    if !proc.seen.iter().any(|line| line.contains(ended)) {
        proc.wait_line(ended);
    }
    refused(addr, &current).await;
    log_in(addr, "bob", "new").await;
}

/// `--state-dir`: a refresh committed, its answer lost, then `kill -9`
/// before the client retries: after the restart, the retry with the token
/// it holds is answered (once), and the session goes on.
#[cfg(feature = "persist")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_kill_9_between_commit_and_answer_is_answered() {
    let tmp = TempDir::new();
    let dir = crate::cli::path_str(&tmp.0.join("state"));
    let key = tmp.file("key", TEST_KEY);
    let start = || {
        let mut proc = Proc::spawn(&[
            "--port",
            "0",
            "--state-dir",
            &dir,
            "--secret-key-file",
            &key,
        ]);
        let addr = proc.wait_listening();
        (proc, addr)
    };
    let (mut proc, addr) = start();
    let (_, first) = log_in(addr, "johndoe", "secret").await;
    let (_, held) = refreshed(addr, &first).await;
    // This rotation is on disk; its answer never reaches the client.
    let _lost = refreshed(addr, &held).await;
    proc.signal("KILL");
    proc.wait_exit();

    let (_proc, addr) = start();
    let (access, current) = refreshed(addr, &held).await;
    assert_json_exact(
        &get_me(addr, &format!("Bearer {access}")).await,
        200,
        JOHNDOE_ME,
    );
    let (access, current) = refreshed(addr, &current).await;
    assert_eq!(me_status(addr, &access).await, 200);
    // The retried token again, from before the last rotation: a reuse,
    // which ends the session.
    refused(addr, &held).await;
    assert_eq!(me_status(addr, &access).await, 401);
    refused(addr, &current).await;
}

/// The store's own rules, asked directly (a race between two instances
/// reaches them without the refresh grant's first look): a rotation, the
/// retry within the window once, a reuse that ends the session, the
/// fingerprint kept, and a user's sessions ended together.
pub(crate) async fn the_store_rotates_retries_and_ends_by_the_rules(backend: Backend) {
    use password_bearer::sessions::{Advance, Session};
    let store = backend.store().await;
    let store = &store.sessions;
    let t = now();
    let hashed = hash("pw");
    let start = |user: &str| Session::start(user, &hashed, "", t, t + 1000).expect("random");
    let s = start("bob");
    store.create(s.clone()).await.unwrap();
    let advance = |from, at: i64| store.advance(s.id, from, at, at + 60, at + 1800);
    assert_eq!(
        advance(1, t).await.unwrap(),
        Advance::Unknown,
        "never issued"
    );
    assert_eq!(advance(0, t).await.unwrap(), Advance::Advanced);
    assert_eq!(advance(0, t + 59).await.unwrap(), Advance::Retried);
    let held = store.get(s.id, t).await.unwrap().expect("kept");
    assert_eq!((held.counter, held.retry_until), (2, 0));
    assert!(held.started_with(&hashed), "the fingerprint kept");
    assert!(!held.started_with(&hash("pw")));
    assert_eq!(advance(1, t + 59).await.unwrap(), Advance::Reused, "once");
    assert_eq!(store.get(s.id, t).await.unwrap(), None);

    // At the window's end, a reuse.
    let s = start("bob");
    store.create(s.clone()).await.unwrap();
    let advance = |from, at: i64| store.advance(s.id, from, at, at + 60, at + 1800);
    assert_eq!(advance(0, t).await.unwrap(), Advance::Advanced);
    assert_eq!(advance(0, t + 60).await.unwrap(), Advance::Reused);
    assert_eq!(store.get(s.id, t).await.unwrap(), None);

    // A user's sessions end together, and no one else's.
    let (one, two, other) = (start("bob"), start("bob"), start("bobby"));
    for s in [&one, &two, &other] {
        store.create(s.clone()).await.unwrap();
    }
    let mut ended = store.end_sessions_of("bob".into(), t + 1800).await.unwrap();
    ended.sort();
    let mut expected = vec![one.id, two.id];
    expected.sort();
    assert_eq!(ended, expected);
    for s in [&one, &two] {
        assert_eq!(store.get(s.id, t).await.unwrap(), None);
    }
    assert!(store.get(other.id, t).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_rotates_retries_and_ends_by_the_rules_in_every_store() {
    in_every_store(the_store_rotates_retries_and_ends_by_the_rules).await;
}
