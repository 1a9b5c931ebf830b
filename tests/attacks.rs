//! Logins under attack, tried as an attacker would try them over TCP:
//! brute-force throttling (429 + Retry-After, per username and per
//! address, lifted by a success or by 0), passwords over the 1 KiB cap,
//! concurrent guesses, a thousand concurrent right logins of one user, a
//! fresh server's first burst, a client leaving while its login waits for
//! its turn, a login flood past the hash queue, and a user store that
//! fails. Each must leave honest clients served and every advertised limit
//! holding. (Attacks on connections are `connections`' surface; their log
//! lines, `logs`'.)
//!
//! Tests that wait on a timer run on a paused clock (`start_paused`): the
//! runtime jumps to the next timer whenever everything waits, so the real
//! 10-second defaults are tested without waiting 10 seconds.

use crate::support::*;
use password_bearer::users::{StoreError, User, UserStore, Users};
use password_bearer::Config;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// `n` logins with `body` at once, each from `source(i)`; the statuses.
async fn logins_at_once(
    addr: SocketAddr,
    n: u8,
    body: &str,
    source: fn(u8) -> std::net::IpAddr,
) -> Vec<u16> {
    let mut logins = JoinSet::new();
    for i in 0..n {
        let body = body.to_owned();
        logins.spawn(async move { post_token_from(addr, source(i), &body).await });
    }
    let mut statuses = Vec::new();
    while let Some(resp) = logins.join_next().await {
        let resp = resp.expect("the login task");
        assert_token_endpoint_headers(&resp);
        statuses.push(resp.status);
    }
    statuses
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

pub(crate) fn throttled(per_user: u32, per_ip: u32) -> Config {
    let mut config = Config::new(Users::demo(), test_key());
    config.throttle.per_user = per_user;
    config.throttle.per_ip = per_ip;
    quiet(&mut config);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_cost_at_most_the_limit_in_hashes() {
    // Forty guesses at once for one username: ten are let in (the budget
    // in flight), hashed and answered 400; the thirty past the budget wait
    // for their turn, then see the ten failures settled: 429, no hash.
    let guess = credentials("johndoe", "guess");
    let server = start_with(throttled(10, 0)).await;
    let statuses = logins_at_once(server.addr, 40, &guess, |_| loopback(2)).await;
    assert_eq!(
        (count(&statuses, 400), count(&statuses, 429)),
        (10, 30),
        "{statuses:?}"
    );

    // The same from forty addresses.
    let server = start_with(throttled(10, 100)).await;
    let statuses = logins_at_once(server.addr, 40, &guess, |i| loopback(10 + i)).await;
    assert_eq!(
        (count(&statuses, 400), count(&statuses, 429)),
        (10, 30),
        "{statuses:?}"
    );

    // And forty usernames from one address against its limit of 10.
    let server = start_with(throttled(0, 10)).await;
    let mut logins = JoinSet::new();
    for i in 0..40 {
        let addr = server.addr;
        logins.spawn(async move { post_token(addr, &credentials(&format!("user{i}"), "x")).await });
    }
    let mut statuses = Vec::new();
    while let Some(resp) = logins.join_next().await {
        statuses.push(resp.expect("the login task").status);
    }
    assert_eq!(
        (count(&statuses, 400), count(&statuses, 429)),
        (10, 30),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_right_logins_of_one_user_are_never_refused_as_failures() {
    // Issue 18: one user logging in from 100 addresses, 1000 logins at
    // once, at the default limits. Ten at a time are in flight (the
    // username's budget); the others wait for their turn within the login
    // queue's 2 s, and what the two hash slots cannot start by then is 503
    // with Retry-After: no failure was made, so no 429.
    let mut config = Config::new(Users::demo(), test_key());
    quiet(&mut config);
    let server = start_with(config).await;
    let addr = server.addr;
    let body = credentials("johndoe", "secret");
    // All connected first, then all sent at once: 1000 logins in flight
    // together, each timed from its request to its answer.
    let all_connected = Arc::new(tokio::sync::Barrier::new(1000));
    let mut logins = JoinSet::new();
    for i in 0..1000u32 {
        let (body, all_connected) = (body.clone(), all_connected.clone());
        logins.spawn(async move {
            let source = loopback(u8::try_from(10 + i % 100).expect("a small number"));
            let mut conn = Conn::open_from(addr, source).await;
            all_connected.wait().await;
            let sent = Instant::now();
            conn.send(&token_request(&body)).await;
            let resp = conn.response().await;
            (resp, sent.elapsed())
        });
    }
    let (mut answers, mut slowest) = (RightLogins::default(), Duration::ZERO);
    while let Some(outcome) = logins.join_next().await {
        let (resp, took) = outcome.expect("the login task");
        slowest = slowest.max(took);
        answers.count(&resp);
    }
    let RightLogins { ok, busy } = answers;
    eprintln!("1000 concurrent logins of johndoe: 200 x {ok}, 503 x {busy}, slowest {slowest:?}");
    assert_eq!(ok + busy, 1000);
    assert!(ok >= 10, "at least the first ten were served: {ok}");
    assert!(
        slowest < Duration::from_secs(5),
        "the slowest took {slowest:?}"
    );
    // The queue counted nothing: the account still logs in at once.
    assert_eq!(post_token(addr, &body).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_server_answers_ten_concurrent_guesses_without_a_503() {
    // Issue 18: ten guesses on a server that has hashed nothing yet. Two
    // slots hash them in a few rounds, well within the queue's 2 s: none
    // may be refused on the first hash's time alone.
    let mut config = Config::new(Users::demo(), test_key());
    config.hash_slots = 2;
    quiet(&mut config);
    let server = start_with(config).await;
    let guess = credentials("johndoe", "guess");
    let statuses = logins_at_once(server.addr, 10, &guess, |_| loopback(2)).await;
    assert_eq!(count(&statuses, 400), 10, "{statuses:?}");
}

/// The demo users, whose lookups wait while the gate is shut: a login
/// held in flight for as long as the test likes.
struct Gated {
    users: Users,
    open: tokio::sync::watch::Sender<bool>,
}

impl UserStore for Gated {
    async fn find(&self, username: &str) -> Result<Option<Arc<User>>, StoreError> {
        let mut open = self.open.subscribe();
        open.wait_for(|&open| open)
            .await
            .map_err(|_| StoreError::new("the gate was dropped"))?;
        Ok(self.users.get(username).cloned())
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_whose_client_leaves_while_it_waits_for_its_turn_counts_nothing() {
    // One login of johndoe in flight at a time (the username's budget of
    // 1), held at its user lookup: a wrong guess sent meanwhile waits for
    // its turn. Its client leaves. Had it stayed in line, or left a
    // reservation, it would be let in once the first settles and count a
    // failure, and the right password after it would be a 429.
    let store = Arc::new(Gated {
        users: Users::demo(),
        open: tokio::sync::watch::Sender::new(false),
    });
    let mut config = Config::new(store.clone(), test_key());
    config.throttle.per_user = 1;
    config.throttle.per_ip = 0;
    quiet(&mut config);
    let server = start_store(config).await;
    let mut first = Conn::open(server.addr).await;
    first
        .send(&token_request(&credentials("johndoe", "secret")))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut leaving = Conn::open(server.addr).await;
    leaving
        .send(&token_request(&credentials("johndoe", "a wrong guess")))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(leaving);
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.open.send_replace(true);
    assert_eq!(first.response().await.status, 200);
    let resp = post_token(server.addr, &credentials("johndoe", "secret")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    // The same guess, its client staying, is counted: the limit holds.
    assert_invalid_grant(&post_token(server.addr, &credentials("johndoe", "a wrong guess")).await);
    let resp = post_token(server.addr, &credentials("johndoe", "secret")).await;
    assert_eq!(resp.status, 429, "{}", resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_right_login_whose_client_leaves_before_its_hash_is_nobodys_failure() {
    // Issue 20: a login flood of right passwords ends, its clients leave,
    // and the logins they left in flight before their hashes counted as
    // failures: the user was locked out (429) for a minute. Here two
    // logins from one address (its limit 2) are held at their user
    // lookup, admitted; one's client leaves. Counted as a failure, it and
    // one real failure would reach the address's limit (a success resets
    // a username's failures, not an address's), and the right password
    // after them would be a 429.
    let store = Arc::new(Gated {
        users: Users::demo(),
        open: tokio::sync::watch::Sender::new(false),
    });
    let mut config = Config::new(store.clone(), test_key());
    config.throttle.per_user = 0;
    config.throttle.per_ip = 2;
    quiet(&mut config);
    let server = start_store(config).await;
    let right = credentials("johndoe", "secret");
    let mut staying = Conn::open_from(server.addr, loopback(2)).await;
    staying.send(&token_request(&right)).await;
    let mut leaving = Conn::open_from(server.addr, loopback(2)).await;
    leaving.send(&token_request(&right)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(leaving);
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.open.send_replace(true);
    assert_eq!(staying.response().await.status, 200);
    let guess = credentials("johndoe", "a wrong guess");
    assert_invalid_grant(&post_token_from(server.addr, loopback(2), &guess).await);
    let resp = post_token_from(server.addr, loopback(2), &right).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    // A failure that stays is counted: the limit holds.
    assert_invalid_grant(&post_token_from(server.addr, loopback(2), &guess).await);
    assert_429(&post_token_from(server.addr, loopback(2), &right).await);
}

/// A users file with one user whose hash is deliberately slow (t = 8), so
/// that a few dozen logins take seconds to hash one at a time.
pub(crate) fn slow_user() -> Users {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(19456, 8, 1, None).expect("valid parameters");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"a test salt 16 b").expect("a salt");
    let hash = argon
        .hash_password(b"slow secret", &salt)
        .expect("hashing succeeds")
        .to_string();
    let user = User::builder("slow", hash).build().expect("an argon2 hash");
    Users::from_users([user]).expect("one user")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_past_the_hash_queue_get_503_at_once_and_count_nothing() {
    let mut config = Config::new(slow_user(), test_key());
    config.hash_slots = 1;
    config.login_queue_wait = Duration::from_millis(300);
    // One attempt per address at a time, so a 503 that counted would show.
    config.throttle.per_user = 0;
    config.throttle.per_ip = 1;
    quiet(&mut config);
    let server = start_with(config).await;
    let addr = server.addr;

    // Sixty logins at once, each from its own address: hashed one at a
    // time they would take seconds; the queue answers most of them 503
    // after its 300 ms.
    let body = credentials("slow", "slow secret");
    let mut logins = JoinSet::new();
    for i in 0..60u8 {
        let body = body.clone();
        logins.spawn(async move {
            let source = std::net::IpAddr::from([127, 0, 1, i + 1]);
            let sent = Instant::now();
            let resp = post_token_from(addr, source, &body).await;
            (source, resp, sent.elapsed())
        });
    }
    let mut refused = Vec::new();
    let mut served = 0;
    while let Some(outcome) = logins.join_next().await {
        let (source, resp, took) = outcome.expect("the login task");
        assert_token_endpoint_headers(&resp);
        match resp.status {
            200 => served += 1,
            503 => {
                assert_busy(&resp);
                assert!(took < Duration::from_secs(5), "a 503 after {took:?}");
                refused.push(source);
            }
            other => panic!("{other}: {}", resp.text()),
        }
    }
    assert!(served >= 1, "the queue served someone");
    assert!(!refused.is_empty(), "the queue refused someone");
    // A 503 counted no failure: each refused address still has its one
    // attempt, then is throttled.
    for source in refused.into_iter().take(3) {
        assert_invalid_grant(&post_token_from(addr, source, &credentials("slow", "wrong")).await);
        let resp = post_token_from(addr, source, &body).await;
        assert_eq!(resp.status, 429, "{}", resp.text());
    }
}

/// A user store whose database can go down.
struct Flaky {
    users: Users,
    down: AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(StoreError::new(
                "connection refused (the test's database is down)",
            )),
            false => Ok(()),
        }
    }
}

impl UserStore for Flaky {
    async fn find(&self, username: &str) -> Result<Option<Arc<User>>, StoreError> {
        self.check()?;
        Ok(self.users.get(username).cloned())
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.check()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_fails_is_503_and_nobodys_failure() {
    let store = Arc::new(Flaky {
        users: Users::demo(),
        down: AtomicBool::new(false),
    });
    let mut config = Config::new(store.clone(), test_key());
    config.throttle.per_user = 3;
    config.throttle.per_ip = 3;
    quiet(&mut config);
    let server = start_store(config).await;
    let addr = server.addr;
    let bearer = format!("Bearer {}", login(addr, "johndoe", "secret").await);
    assert_json_exact(&get(addr, "/healthz", &[]).await, 200, r#"{"status":"ok"}"#);

    store.down.store(true, Ordering::SeqCst);
    for password in ["secret", "wrong"].repeat(5) {
        let resp = post_token(addr, &credentials("johndoe", password)).await;
        assert_busy(&resp);
        assert_token_endpoint_headers(&resp);
    }
    let resp = get_me(addr, &bearer).await;
    assert_busy(&resp);
    assert!(
        resp.header("www-authenticate").is_none(),
        "{:?}",
        resp.headers
    );
    assert_json_exact(
        &get(addr, "/healthz", &[]).await,
        503,
        r#"{"status":"unavailable"}"#,
    );

    // Back up: ten attempts against limits of 3 counted nothing.
    store.down.store(false, Ordering::SeqCst);
    assert_json_exact(&get(addr, "/healthz", &[]).await, 200, r#"{"status":"ok"}"#);
    assert_invalid_grant(&post_token(addr, &credentials("johndoe", "wrong")).await);
    assert!(!login(addr, "johndoe", "secret").await.is_empty());
    assert_json_exact(&get_me(addr, &bearer).await, 200, JOHNDOE_ME);
}

const TOO_MANY: &str = r#"{"detail":"Too many failed login attempts, try again later","error":"temporarily_unavailable","error_description":"Too many failed login attempts for this username or from this address; retry after the number of seconds in Retry-After"}"#;

/// `n` logins of `username` with a wrong password, each a plain 400.
async fn fail_logins(addr: std::net::SocketAddr, username: &str, n: usize) {
    for _ in 0..n {
        assert_invalid_grant(&post_token(addr, &credentials(username, "guess")).await);
    }
}

#[track_caller]
pub(crate) fn assert_429(resp: &crate::support::Response) {
    assert_json_exact(resp, 429, TOO_MANY);
    assert_token_endpoint_headers(resp);
    let retry: u64 = resp
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_lock_that_username_even_against_the_right_password() {
    let server = start_with(throttled(3, 0)).await;
    fail_logins(server.addr, "johndoe", 3).await;
    assert_429(&post_token(server.addr, &credentials("johndoe", "secret")).await);
    // Another account is unaffected by this one's lockout.
    assert_eq!(
        post_token(server.addr, &credentials("alice", "secret2"))
            .await
            .status,
        200
    );
    // Unknown usernames count the same, so a 429 tells nothing about which
    // users exist.
    fail_logins(server.addr, "nobody", 3).await;
    assert_429(&post_token(server.addr, &credentials("nobody", "guess")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_resets_the_usernames_count() {
    let server = start_with(throttled(3, 0)).await;
    fail_logins(server.addr, "johndoe", 2).await;
    assert_eq!(
        post_token(server.addr, &credentials("johndoe", "secret"))
            .await
            .status,
        200
    );
    fail_logins(server.addr, "johndoe", 3).await;
    assert_429(&post_token(server.addr, &credentials("johndoe", "guess")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_one_address_lock_that_address() {
    let server = start_with(throttled(0, 3)).await;
    for name in ["a", "b", "c"] {
        assert_invalid_grant(&post_token(server.addr, &credentials(name, "guess")).await);
    }
    assert_429(&post_token(server.addr, &credentials("johndoe", "secret")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_disables_throttling() {
    let server = start_with(throttled(0, 0)).await;
    fail_logins(server.addr, "johndoe", 12).await;
    assert_eq!(
        post_token(server.addr, &credentials("johndoe", "secret"))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_over_1_kib_never_log_in() {
    // The right password, but over the cap: refused like a wrong one and
    // never hashed (the argon2 input is ours to bound).
    let long = "a".repeat(1025);
    let limit = "b".repeat(1024);
    let mut config = Config::new(
        users_with(&[("long", &long, false), ("limit", &limit, false)]),
        test_key(),
    );
    config.login_log = false;
    let server = start_with(config).await;
    assert_invalid_grant(&post_token(server.addr, &credentials("long", &long)).await);
    assert_eq!(
        post_token(server.addr, &credentials("limit", &limit))
            .await
            .status,
        200
    );
}
