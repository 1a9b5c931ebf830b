//! Two instances sharing one real Redis (the `redis` feature): guesses
//! spread over both limited together, a refresh token of one refreshing on
//! the other and its reuse ending the session on both, a revocation on one
//! honoured by the other within a second (a lost subscription included),
//! Redis stopped (503 with `Retry-After`, `/healthz` 503, no failure
//! counted) and started again (recovery, no restart), the sessions gauge
//! of each counting every instance's sessions, and `--redis-url`.
//!
//! Each test binary starts its own throwaway `redis-server` on a free port
//! in a temporary directory, with nothing saved; a watchdog stops it when
//! the binary exits. Tests share it under distinct key prefixes; the outage
//! test starts one of its own, since it stops it.

use crate::cli::{assert_config_error, command, Proc, TempDir};
use crate::metrics::{scrape, start_both};
use crate::sessions::{self, field, revoke};
use crate::support::*;
use password_bearer::redis::sessions::POLL;
use password_bearer::redis::{Redis, RedisSessions};
use password_bearer::sessions::memory::DEFAULT_MAX_PER_USER;
use password_bearer::sessions::{Advance, RefreshToken, Session, SessionStore};
use password_bearer::throttle::Limits;
use password_bearer::users::Users;
use password_bearer::Config;
use serde_json::Value;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// A `redis-server` of this test binary's, killed when dropped and, by its
/// watchdog, when the binary exits (statics are never dropped).
pub(crate) struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// A new server on a free port.
    fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = RedisServer {
            port,
            dir: TempDir::new(),
            child: None,
        };
        server.resume();
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server (again) on its port, and waits until it answers.
    fn resume(&mut self) {
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
               --dir '{dir}' --logfile '' >/dev/null & \
             r=$!; while kill -0 {parent} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.2; done; \
             kill $r 2>/dev/null; wait $r",
            port = self.port,
            dir = self.dir.0.display(),
            parent = std::process::id(),
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("sh runs redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers_ping(self.port) {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (`SHUTDOWN NOSAVE`); its watchdog exits with it.
    fn stop(&mut self) {
        use std::io::Write;
        if let Some(mut child) = self.child.take() {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.write_all(b"SHUTDOWN NOSAVE\r\n");
            }
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "redis-server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl RedisServer {
    /// The server's process id, as it reports it.
    async fn pid(&self) -> u32 {
        let info: String = self.query(::redis::cmd("INFO").arg("server")).await;
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
            .unwrap_or_else(|| panic!("no process_id in {info}"))
    }

    /// One command on a connection of the test's own.
    async fn query<T: ::redis::FromRedisValue>(&self, command: &::redis::Cmd) -> T {
        let client = ::redis::Client::open(self.url()).expect("a Redis URL");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis answers");
        command
            .query_async(&mut connection)
            .await
            .expect("the command succeeds")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a Redis on `port` answers `PING`.
fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}

/// The binary's shared server.
pub(crate) fn shared() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// A key prefix no other test uses.
pub(crate) fn prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "test-{}-{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The demo users and the test key, sessions (at most `max_per_user` a
/// user) and failed-login counts in the Redis at `url` under `prefix`.
async fn config(url: &str, prefix: &str, max_per_user: usize) -> Config {
    let redis = Redis::connect(url, prefix).await.expect("Redis answers");
    let sessions = RedisSessions::open(redis.clone(), max_per_user)
        .await
        .expect("Redis answers");
    let mut config = Config::new(Users::demo(), test_key());
    config.sessions = Some(Arc::new(sessions));
    config.shared_throttle = Some(redis);
    config
}

/// An instance of [`config`], with `limits`.
async fn instance(url: &str, prefix: &str, limits: Limits) -> TestServer {
    let mut config = config(url, prefix, DEFAULT_MAX_PER_USER).await;
    config.throttle = limits;
    start_with(config).await
}

/// Two instances on the shared Redis, under a prefix of their own.
async fn two_instances() -> (TestServer, TestServer) {
    two_instances_with(Limits::default()).await
}

/// [`two_instances`], both with `limits`.
async fn two_instances_with(limits: Limits) -> (TestServer, TestServer) {
    let (url, prefix) = (shared().url(), prefix());
    let a = instance(&url, &prefix, limits.clone()).await;
    let b = instance(&url, &prefix, limits).await;
    (a, b)
}

/// johndoe's login on `addr`, its whole answer.
async fn login_json(addr: SocketAddr) -> Value {
    sessions::login_json(addr, "johndoe", "secret", "").await
}

/// A refresh with `refresh_token`, scope unchanged.
async fn refresh(addr: SocketAddr, refresh_token: &str) -> Response {
    sessions::refresh(addr, refresh_token, None).await
}

/// `GET /users/me` with `token`'s status.
async fn me_status(addr: SocketAddr, token: &str) -> u16 {
    get_me(addr, &format!("Bearer {token}")).await.status
}

/// Polls `/users/me` on `addr` until `token` is refused, failing past
/// `limit`; how long that took.
async fn refused_within(addr: SocketAddr, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let status = me_status(addr, token).await;
        if status == 401 {
            return start.elapsed();
        }
        assert_eq!(status, 200);
        assert!(
            start.elapsed() < limit,
            "still accepted after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_spread_over_two_instances_are_limited_together() {
    let (a, b) = two_instances().await;
    let limit = Limits::default().per_user as usize;
    // 20 wrong guesses at once, alternating instances: each reservation is
    // one atomic step in Redis, so exactly the limit's worth are hashed.
    let mut guesses = JoinSet::new();
    for i in 0..20 {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        guesses.spawn(async move { post_token(addr, &credentials("johndoe", "wrong")).await });
    }
    let mut statuses = Vec::new();
    while let Some(resp) = guesses.join_next().await {
        let resp = resp.expect("the guess task did not panic");
        if resp.status == 429 {
            assert!(resp.header("retry-after").is_some());
        } else {
            assert_invalid_grant(&resp);
        }
        statuses.push(resp.status);
    }
    let hashed = statuses.iter().filter(|&&s| s == 400).count();
    assert_eq!(hashed, limit, "{statuses:?}");
    assert_eq!(statuses.len() - hashed, 20 - limit, "{statuses:?}");
    // The right password is refused too, on both.
    for addr in [a.addr, b.addr] {
        let resp = post_token(addr, &credentials("johndoe", "secret")).await;
        assert_eq!(resp.status, 429, "{}", resp.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_right_logins_over_two_instances_are_never_429() {
    // Issue 18: 100 logins of johndoe with the right password at once,
    // alternating instances, from 20 addresses. Ten are in flight at a
    // time (the username's budget, held in Redis for both); the others
    // wait for their turn. No failure was made, so none is a 429: 200, or
    // 503 with Retry-After where no turn came within the queue's wait.
    let (a, b) = two_instances().await;
    let mut logins = JoinSet::new();
    for i in 0..100u8 {
        let server = if i % 2 == 0 { a.addr } else { b.addr };
        let source = std::net::IpAddr::from([127, 0, 2, 2 + i % 20]);
        logins.spawn(async move {
            post_token_from(server, source, &credentials("johndoe", "secret")).await
        });
    }
    let mut answers = RightLogins::default();
    while let Some(resp) = logins.join_next().await {
        answers.count(&resp.expect("the login task did not panic"));
    }
    let RightLogins { ok, busy } = answers;
    eprintln!("100 concurrent logins over two instances: 200 x {ok}, 503 x {busy}");
    assert!(ok >= 10, "{ok} served, {busy} busy");
    // Nothing is left in flight or counted: both still log johndoe in.
    for addr in [a.addr, b.addr] {
        let resp = post_token(addr, &credentials("johndoe", "secret")).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
}

/// From many addresses at once, over both instances: one username's
/// guesses are limited together whatever address they come from, and one
/// address's guesses whatever username they name, while another address
/// is not held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_from_many_addresses_over_two_instances_are_limited_together() {
    let mut limits = Limits::default();
    limits.per_ip = 4;
    let (a, b) = two_instances_with(limits).await;
    // Counts each status of `guesses`' answers: (400, 429).
    async fn statuses(mut guesses: JoinSet<Response>) -> (usize, usize) {
        let (mut hashed, mut throttled) = (0, 0);
        while let Some(resp) = guesses.join_next().await {
            let resp = resp.expect("the guess task did not panic");
            match resp.status {
                400 => hashed += 1,
                429 => throttled += 1,
                _ => panic!("{} {}", resp.status, resp.text()),
            }
        }
        (hashed, throttled)
    }
    let per_user = Limits::default().per_user as usize;

    // johndoe guessed from 20 addresses, one guess each, alternating
    // instances: the username's limit, not the addresses', holds them.
    let mut guesses = JoinSet::new();
    for i in 0..20u8 {
        let server = if i % 2 == 0 { a.addr } else { b.addr };
        let source = std::net::IpAddr::from([127, 0, 1, i + 2]);
        guesses.spawn(async move {
            post_token_from(server, source, &credentials("johndoe", "wrong")).await
        });
    }
    assert_eq!(statuses(guesses).await, (per_user, 20 - per_user));

    // 127.0.0.2 guessing 12 usernames at once over both instances: its
    // limit of 4 holds it.
    let spray = std::net::IpAddr::from([127, 0, 0, 2]);
    let mut guesses = JoinSet::new();
    for i in 0..12 {
        let server = if i % 2 == 0 { a.addr } else { b.addr };
        guesses.spawn(async move {
            post_token_from(server, spray, &credentials(&format!("user{i}"), "wrong")).await
        });
    }
    assert_eq!(statuses(guesses).await, (4, 8));
    // Another address is counted apart.
    let other = std::net::IpAddr::from([127, 0, 0, 3]);
    for server in [a.addr, b.addr] {
        let resp = post_token_from(server, other, &credentials("alice", "wrong")).await;
        assert_invalid_grant(&resp);
        let resp = post_token_from(server, spray, &credentials("alice", "wrong")).await;
        assert_eq!(resp.status, 429, "{}", resp.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_on_one_instance_clears_the_usernames_failures_on_both() {
    let mut limits = Limits::default();
    limits.per_user = 3;
    let (a, b) = two_instances_with(limits).await;
    for addr in [a.addr, b.addr] {
        assert_invalid_grant(&post_token(addr, &credentials("johndoe", "wrong")).await);
    }
    login_json(b.addr).await;
    // Cleared: three more failures before the 429.
    for addr in [a.addr, b.addr, a.addr] {
        assert_invalid_grant(&post_token(addr, &credentials("johndoe", "wrong")).await);
    }
    let resp = post_token(b.addr, &credentials("johndoe", "wrong")).await;
    assert_eq!(resp.status, 429, "{}", resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_from_a_refreshes_on_b_and_its_reuse_on_a_ends_the_session_on_both() {
    let (a, b) = two_instances().await;
    let first = login_json(a.addr).await;
    let resp = refresh(b.addr, &field(&first, "refresh_token")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let second = resp.json();
    let access = field(&second, "access_token");
    for addr in [a.addr, b.addr] {
        assert_eq!(me_status(addr, &access).await, 200);
    }
    // The first token again, on A, within the retry window: taken for a
    // client whose answer was lost, answered once.
    let resp = refresh(a.addr, &field(&first, "refresh_token")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let retried = resp.json();
    // Once more: used up, so stolen; the session ends.
    let resp = refresh(a.addr, &field(&first, "refresh_token")).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["error"], "invalid_grant");
    // B's refresh token, and the retry's, are dead on both, and so are the
    // session's access tokens, B's included: A revoked it, B hears of it.
    for addr in [b.addr, a.addr] {
        for answer in [&second, &retried] {
            let resp = refresh(addr, &field(answer, "refresh_token")).await;
            assert_eq!(resp.status, 400, "{}", resp.text());
        }
    }
    refused_within(a.addr, &access, Duration::from_secs(1)).await;
    refused_within(b.addr, &access, Duration::from_secs(1)).await;
    refused_within(
        b.addr,
        &field(&first, "access_token"),
        Duration::from_secs(1),
    )
    .await;
}

/// Three refreshes with one token at once, on two instances: one rotates
/// it, one is forgiven as a lost answer's retry, the third is a reuse and
/// ends the session for both winners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_three_refreshes_with_one_token_on_two_instances_the_third_ends_the_session() {
    let (a, b) = two_instances().await;
    let first = login_json(a.addr).await;
    let token = field(&first, "refresh_token");
    let (on_a, on_b, again_on_a) = tokio::join!(
        refresh(a.addr, &token),
        refresh(b.addr, &token),
        refresh(a.addr, &token)
    );
    let mut answers = [on_a, on_b, again_on_a];
    answers.sort_by_key(|r| r.status);
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 400]);
    // The loser found the token used: the session is gone for the winners.
    for winner in &answers[..2] {
        let resp = refresh(b.addr, &field(&winner.json(), "refresh_token")).await;
        assert_eq!(resp.status, 400, "{}", resp.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_a_is_honoured_on_b_within_a_second() {
    let (a, b) = two_instances().await;
    // An access token revoked on A: B, which has it verified and cached,
    // refuses it once A's message arrives.
    let json = login_json(a.addr).await;
    let access = field(&json, "access_token");
    assert_eq!(me_status(b.addr, &access).await, 200);
    assert_eq!(revoke(a.addr, &access).await.status, 200);
    let took = refused_within(b.addr, &access, Duration::from_secs(1)).await;
    eprintln!("access token revoked on A, refused on B after {took:?}");
    // A session revoked on A by its refresh token.
    let json = login_json(b.addr).await;
    let access = field(&json, "access_token");
    assert_eq!(me_status(b.addr, &access).await, 200);
    assert_eq!(
        revoke(a.addr, &field(&json, "refresh_token")).await.status,
        200
    );
    let took = refused_within(b.addr, &access, Duration::from_secs(1)).await;
    eprintln!("session revoked on A, refused on B after {took:?}");
    let resp = refresh(b.addr, &field(&json, "refresh_token")).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_an_instance_whose_subscription_was_lost() {
    let (a, b) = two_instances().await;
    let json = login_json(a.addr).await;
    let access = field(&json, "access_token");
    assert_eq!(me_status(b.addr, &access).await, 200);
    // Every subscription on the server is cut (both instances', and any
    // other test's): messages published now reach nobody, so B catches up
    // from the sequence number it polls, or when it subscribes again.
    let client = ::redis::Client::open(shared().url()).expect("a Redis URL");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let _: i64 = ::redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"])
        .query_async(&mut admin)
        .await
        .expect("CLIENT KILL");
    assert_eq!(revoke(a.addr, &access).await.status, 200);
    let took = refused_within(b.addr, &access, Duration::from_secs(1)).await;
    eprintln!("subscription lost: refused on B after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_is_503_without_counting_and_its_return_needs_no_restart() {
    let mut server = RedisServer::start();
    let prefix = prefix();
    let mut limits = Limits::default();
    limits.per_user = 2;
    // A's metrics too: its sessions gauge.
    let mut a_config = config(&server.url(), &prefix, DEFAULT_MAX_PER_USER).await;
    a_config.throttle = limits.clone();
    let a = start_both(a_config).await;
    let b = instance(&server.url(), &prefix, limits).await;
    let json = login_json(a.api).await;
    let access = field(&json, "access_token");
    assert_eq!(get(b.addr, "/healthz", &[]).await.status, 200);
    let gauge = || async {
        let scrape = scrape(a.metrics).await;
        crate::metrics::value(&scrape, "password_bearer_sessions", &[])
    };
    // Until the follower polls, then what it counts.
    let gauge_becomes = |wanted: Option<f64>| async move {
        let start = Instant::now();
        while gauge().await != wanted {
            assert!(start.elapsed() < Duration::from_secs(3), "{wanted:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    gauge_becomes(Some(1.0)).await;

    server.stop();
    for addr in [a.api, b.addr] {
        // Wrong passwords, more than the limit: never 400, never 429.
        for _ in 0..3 {
            let resp = post_token(addr, &credentials("johndoe", "wrong")).await;
            assert_busy(&resp);
        }
        assert_busy(&post_token(addr, &credentials("johndoe", "secret")).await);
        assert_busy(&refresh(addr, &field(&json, "refresh_token")).await);
        assert_busy(&revoke(addr, &access).await);
        let health = get(addr, "/healthz", &[]).await;
        assert_eq!(health.status, 503, "{}", health.text());
        // A valid access token is still served from the deny-list in memory.
        assert_eq!(me_status(addr, &access).await, 200);
    }
    // A count Redis cannot give is left out, not a stale one shown.
    gauge_becomes(None).await;

    server.resume();
    for addr in [a.api, b.addr] {
        let start = Instant::now();
        while get(addr, "/healthz", &[]).await.status != 200 {
            assert!(start.elapsed() < Duration::from_secs(10), "no recovery");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Back, with nothing saved: no session survived the restart.
    gauge_becomes(Some(0.0)).await;
    // The outage counted nothing: the limit's worth of failures, then 429.
    for addr in [a.api, b.addr] {
        assert_invalid_grant(&post_token(addr, &credentials("johndoe", "wrong")).await);
    }
    let resp = post_token(a.api, &credentials("johndoe", "wrong")).await;
    assert_eq!(resp.status, 429, "{}", resp.text());
    // Sessions work again, across instances, and so do revocations.
    let c = instance(&server.url(), &prefix, Limits::default()).await;
    let fresh = login_json(c.addr).await;
    let resp = refresh(a.api, &field(&fresh, "refresh_token")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let access = field(&fresh, "access_token");
    assert_eq!(me_status(b.addr, &access).await, 200);
    assert_eq!(revoke(a.api, &access).await.status, 200);
    refused_within(b.addr, &access, Duration::from_secs(1)).await;
}

/// Redis frozen (SIGSTOP): logins answer 503 within the calls' deadline,
/// `/healthz` 503, `/users/me` still 200. The admissions it had received
/// run when it moves again (SIGCONT), and reserve failures nobody made;
/// each instance returns them by itself, so the outage counted nothing:
/// the limit's worth of wrong passwords, then 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_is_503_and_once_thawed_has_counted_nothing() {
    let server = RedisServer::start();
    let prefix = prefix();
    let mut limits = Limits::default();
    limits.per_user = 2;
    let a = instance(&server.url(), &prefix, limits).await;
    let access = field(&login_json(a.addr).await, "access_token");
    let pid = server.pid().await;

    let frozen = Frozen::new(vec![pid.to_string()]);
    let start = Instant::now();
    let mut guesses = JoinSet::new();
    for _ in 0..5 {
        let addr = a.addr;
        guesses.spawn(async move { post_token(addr, &credentials("johndoe", "wrong")).await });
    }
    while let Some(resp) = guesses.join_next().await {
        assert_busy(&resp.expect("a guess"));
    }
    assert_eq!(get(a.addr, "/healthz", &[]).await.status, 503);
    assert_eq!(me_status(a.addr, &access).await, 200);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    drop(frozen);

    // What the five reserved is returned: no failure count is left.
    let failures = ::redis::cmd("KEYS").arg(format!("{prefix}t:*")).clone();
    let start = Instant::now();
    loop {
        let keys: Vec<String> = server.query(&failures).await;
        if keys.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still counted: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..2 {
        assert_invalid_grant(&post_token(a.addr, &credentials("johndoe", "wrong")).await);
    }
    let resp = post_token(a.addr, &credentials("johndoe", "wrong")).await;
    assert_eq!(resp.status, 429, "{}", resp.text());
}

/// A rotation and a login's session that Redis did not answer in time run
/// once it moves again (`CLIENT PAUSE … WRITE`: reads answered, writes held
/// for 3 s); each instance undoes them by itself: the rotation is moved
/// back, so the client, told 503, retries with the token it holds and is
/// not taken for a thief; the session, whose refresh token nobody holds, is
/// removed. (Failed-login counts in the process here, so that both
/// requests reach their write.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_and_a_session_redis_wrote_late_are_undone() {
    // Its own: the pause would hold every other test's writes too.
    let server = RedisServer::start();
    let (url, prefix) = (server.url(), prefix());
    let mut config = config(&url, &prefix, DEFAULT_MAX_PER_USER).await;
    config.shared_throttle = None;
    let a = start_with(config).await;
    // One login and one refresh first, so that Redis holds both scripts:
    // a script it does not hold yet is sent again (whole) only after
    // Redis answers that it lacks it, which a request past its deadline
    // never does.
    let first = field(&login_json(a.addr).await, "refresh_token");
    let resp = refresh(a.addr, &first).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let refresh_token = field(&resp.json(), "refresh_token");
    let session = RefreshToken::parse(&refresh_token).expect("a refresh token");
    let session_key = format!("{prefix}s:{}", session.session.encode());
    let counter = ::redis::cmd("HGET").arg(&session_key).arg("n").clone();
    let sessions = ::redis::cmd("KEYS").arg(format!("{prefix}s:*")).clone();
    assert_eq!(server.query::<String>(&counter).await, "1");

    let pause = ::redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("WRITE")
        .clone();
    let () = server.query(&pause).await;
    let login = credentials("johndoe", "secret");
    let (refreshed, logged_in) =
        tokio::join!(refresh(a.addr, &refresh_token), post_token(a.addr, &login));
    assert_busy(&refreshed);
    assert_busy(&logged_in);

    let start = Instant::now();
    loop {
        let keys: Vec<String> = server.query(&sessions).await;
        let n: String = server.query(&counter).await;
        if n == "1" && keys == [session_key.clone()] && start.elapsed() > Duration::from_secs(3) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(12),
            "counter {n}, sessions {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = refresh(a.addr, &refresh_token).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

/// `password_bearer_sessions` on each instance counts every instance's
/// sessions, the one `all` set in Redis, re-read every [`POLL`]: a login on
/// either adds one; a session evicted by the per-user cap, ended by a
/// reused refresh token or revoked leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_gauges_every_instances_sessions() {
    let (url, prefix) = (shared().url(), prefix());
    let a = start_both(config(&url, &prefix, 2).await).await;
    let b = start_both(config(&url, &prefix, 2).await).await;
    // Both gauges, once each instance has polled since the last change.
    let gauges = || async {
        tokio::time::sleep(POLL * 2 + Duration::from_millis(200)).await;
        let gauge = |scrape| crate::metrics::value(&scrape, "password_bearer_sessions", &[]);
        (
            gauge(scrape(a.metrics).await),
            gauge(scrape(b.metrics).await),
        )
    };
    assert_eq!(gauges().await, (Some(0.0), Some(0.0)));

    // Three logins, the first evicted by the cap of two: it is the oldest,
    // the others logging in at least a poll later (within one second the
    // order is the random ids', as in memory).
    let _evicted = login_json(a.api).await;
    assert_eq!(gauges().await, (Some(1.0), Some(1.0)));
    let second = login_json(b.api).await;
    let third = login_json(a.api).await;
    assert_eq!(gauges().await, (Some(2.0), Some(2.0)));

    // The second's refresh token used on B, retried on A (forgiven once),
    // then again on A: reused.
    let first_use = refresh(b.api, &field(&second, "refresh_token")).await;
    assert_eq!(first_use.status, 200, "{}", first_use.text());
    let retry = refresh(a.api, &field(&second, "refresh_token")).await;
    assert_eq!(retry.status, 200, "{}", retry.text());
    let reuse = refresh(a.api, &field(&second, "refresh_token")).await;
    assert_eq!(reuse.status, 400, "{}", reuse.text());
    assert_eq!(gauges().await, (Some(1.0), Some(1.0)));

    let revoked = revoke(b.api, &field(&third, "refresh_token")).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    assert_eq!(gauges().await, (Some(0.0), Some(0.0)));
}

/// The store's own count (what the gauge shows) when two refreshes race:
/// the one that loses inside Redis's script ends the session, which leaves
/// the count; a session past its end is not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_by_a_raced_refresh_or_its_end_leaves_the_count() {
    let redis = Redis::connect(&shared().url(), &prefix())
        .await
        .expect("Redis answers");
    let store = RedisSessions::open(redis, DEFAULT_MAX_PER_USER)
        .await
        .expect("Redis answers");
    let counted = || async {
        tokio::time::sleep(POLL * 2 + Duration::from_millis(200)).await;
        store.session_count()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let raced = Session::start("johndoe", "", "", now, now + 3600).unwrap();
    let ending = Session::start("alice", "", "", now, now + 3).unwrap();
    store.create(raced.clone()).await.unwrap();
    store.create(ending).await.unwrap();
    assert_eq!(counted().await, Some(2));
    // Both refreshes read counter 0; the first advances it, the second
    // finds it moved (no retry window: a reuse).
    let advance = || store.advance(raced.id, 0, now, now, now + 60);
    assert_eq!(advance().await.unwrap(), Advance::Advanced);
    assert_eq!(advance().await.unwrap(), Advance::Reused);
    // By now `ending` has ended too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counted().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_url_flag_shares_sessions_with_other_instances() {
    let url = shared().url();
    let dir = TempDir::new();
    let key = dir.file("key", TEST_KEY);
    let mut proc = Proc::spawn_command(command(
        &[
            "--port",
            "0",
            "--secret-key-file",
            &key,
            "--redis-url",
            &url,
        ],
        &[],
    ));
    let addr = proc.wait_listening();
    // The binary's default prefix, so this instance is another of its kind.
    let other = instance(
        &url,
        password_bearer::redis::DEFAULT_PREFIX,
        Limits::default(),
    )
    .await;
    let json = login_json(addr).await;
    let resp = refresh(other.addr, &field(&json, "refresh_token")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let access = field(&resp.json(), "access_token");
    assert_eq!(me_status(addr, &access).await, 200);
    assert_eq!(revoke(other.addr, &access).await.status, 200);
    refused_within(addr, &access, Duration::from_secs(1)).await;
}

#[test]
fn bad_redis_urls_and_unreachable_redis_are_one_line_and_exit_2() {
    // Not a Redis URL: the password in it is never repeated.
    assert_config_error(&["--redis-url", "http://:hunter2@example"], "--redis-url");
    let output = command(&["--redis-url", "http://:hunter2@example"], &[])
        .output()
        .expect("run the binary");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2"));
    // Nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}/");
    let output = command(&["--port", "0", "--redis-url", &url], &[])
        .output()
        .expect("run the binary");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--redis-url: "), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
