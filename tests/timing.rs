//! Login timing over TCP: a failed login takes as long whatever the hash of
//! the user it names, so its time tells neither that user's argon2
//! parameters nor whether the user exists or is disabled.
//!
//! Wall-clock medians of interleaved rounds: each round tries every case
//! once, in a rotating order, so that the load of the machine (other tests
//! hash too) weighs on every case alike.

use crate::support::*;
use argon2::password_hash::{PasswordHasher, SaltString};
use password_bearer::users::{User, Users};
use password_bearer::Config;
use std::time::{Duration, Instant};

/// A hash of `password` at m=64 MiB, t=3: three times the passes over three
/// times the memory of the default (m=19 MiB, t=2), about five times its
/// time (more, per block, as its memory is further from the cache).
fn costly_hash(password: &str) -> String {
    let params = argon2::Params::new(64 * 1024, 3, 1, None).expect("valid parameters");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"a test salt 16 b").expect("a salt");
    argon
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing succeeds")
        .to_string()
}

/// Users at the default parameters, one of them disabled, and `costly` at
/// m=64 MiB, t=3.
fn mixed_users() -> Users {
    let mut users: Vec<User> = ["alice", "bob", "carol"]
        .into_iter()
        .map(|name| {
            let hash = password_bearer::password::hash_password("secret").expect("a hash");
            User::builder(name, hash)
                .disabled(name == "carol")
                .build()
                .expect("an argon2 hash")
        })
        .collect();
    users.push(
        User::builder("costly", costly_hash("secret"))
            .build()
            .expect("an argon2 hash"),
    );
    Users::from_users(users).expect("four users")
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_take_as_long_whatever_the_users_hash_parameters() {
    let mut config = Config::new(mixed_users(), test_key());
    // Every attempt must be hashed: none throttled.
    config.throttle.per_user = 0;
    config.throttle.per_ip = 0;
    config.login_log = false;
    let server = start_with(config).await;
    let cases = [
        ("unknown user", credentials("nobody", "guess")),
        (
            "wrong password, default parameters",
            credentials("bob", "guess"),
        ),
        ("wrong password, 64 MiB t=3", credentials("costly", "guess")),
        ("disabled user", credentials("carol", "guess")),
    ];
    // The costly user really is slower to hash: what the padding hides.
    let start = Instant::now();
    login(server.addr, "costly", "secret").await;
    let costly_success = start.elapsed();
    let start = Instant::now();
    login(server.addr, "bob", "secret").await;
    let default_success = start.elapsed();

    const ROUNDS: usize = 13;
    let mut times = vec![Vec::new(); cases.len()];
    for round in 0..=ROUNDS {
        for k in 0..cases.len() {
            let case = (round + k) % cases.len();
            let start = Instant::now();
            let resp = post_token(server.addr, &cases[case].1).await;
            let took = start.elapsed();
            assert_invalid_grant(&resp);
            // Round 0 warms up (the first hashes allocate their memory).
            if round > 0 {
                times[case].push(took);
            }
        }
    }
    let medians: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
    let report: Vec<String> = cases
        .iter()
        .zip(&medians)
        .map(|((name, _), m)| format!("{name}: {:.1} ms", m.as_secs_f64() * 1e3))
        .collect();
    eprintln!(
        "failed-login medians over {ROUNDS} rounds: {}; successful logins: default {:.1} ms, 64 MiB {:.1} ms",
        report.join(", "),
        default_success.as_secs_f64() * 1e3,
        costly_success.as_secs_f64() * 1e3,
    );
    let (fastest, slowest) = (
        medians.iter().min().expect("four cases"),
        medians.iter().max().expect("four cases"),
    );
    assert!(
        slowest.as_secs_f64() <= fastest.as_secs_f64() * 1.10,
        "medians more than 10% apart: {report:?}"
    );
}
