//! The sessions' promises where they meet passwords and lost answers
//! (issue 18).
//!
//! - A session ends when its user's password changes or the user is
//!   removed: by a reload, or where no reload tells the server (a store
//!   changed in place, as SQL changes PostgreSQL's users; tests/postgres.rs
//!   does it with SQL), at its next refresh. A user re-created under the
//!   name inherits no session, and a user disabled then enabled again has
//!   none from before.
//! - A refresh retried with the token just used up, within the retry
//!   window, is answered once (the answer that carried the next token was
//!   lost), on another instance and after a restart too; a second retry,
//!   or one after the window, is a reuse and ends the session. The
//!   binary's SIGHUP and `kill -9` cases are in tests/reload.rs and
//!   tests/state_dir.rs.

use super::{Backend, Deployment, Live, Settings};
use crate::sessions::{log_in, me_status, refreshed, refused};
use crate::support::*;
use password_bearer::users::Users;
use std::time::Duration;

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

/// One instance of `backend` serving `users`, at the default settings.
async fn single<S: password_bearer::users::UserStore + Clone>(
    backend: Backend,
    users: S,
) -> Deployment<S> {
    Deployment::start(backend, users, Settings::default(), 1).await
}

/// A reload that gives bob another password ends his sessions: their
/// access tokens at once, their refresh tokens for good. His new password
/// starts a new one.
pub(super) async fn a_password_changed_by_a_reload_ends_the_session(backend: Backend) {
    let mut deployment = single(backend, users_of(&[("bob", &hash("old"), false)])).await;
    let addr = deployment.addr();
    let (_, first) = log_in(addr, "bob", "old").await;
    let (access, current) = refreshed(addr, &first).await;
    let carol = hash("carol's");
    deployment
        .reload(users_of(&[
            ("bob", &hash("new"), false),
            ("carol", &carol, false),
        ]))
        .await;
    assert_eq!(me_status(addr, &access).await, 401);
    refused(addr, &current).await;
    assert_invalid_grant(&post_token(addr, &credentials("bob", "old")).await);
    let (access, next) = log_in(addr, "bob", "new").await;
    assert_eq!(me_status(addr, &access).await, 200);
    refreshed(addr, &next).await;
}

/// Where nothing tells the server (the users changed in place, as by
/// SQL), the next refresh finds bob's hash is not the one his session
/// started with: refused, and the session ended with its access tokens.
/// So the store kept the session's fingerprint.
pub(super) async fn a_password_changed_in_place_ends_the_session_at_its_refresh(backend: Backend) {
    let users = Live::new(users_of(&[("bob", &hash("old"), false)]));
    let deployment = single(backend, users.clone()).await;
    let addr = deployment.addr();
    let (_, first) = log_in(addr, "bob", "old").await;
    let (access, current) = refreshed(addr, &first).await;
    users.set(users_of(&[("bob", &hash("new"), false)]));
    // The access token lives until the refresh looks at the user.
    assert_eq!(me_status(addr, &access).await, 200);
    refused(addr, &current).await;
    assert_eq!(me_status(addr, &access).await, 401);
    // Ended for good: the old password back changes nothing.
    users.set(users_of(&[("bob", &hash("old"), false)]));
    refused(addr, &current).await;
    let (_, next) = log_in(addr, "bob", "old").await;
    refreshed(addr, &next).await;
}

/// bob removed, and a bob added again (even with the same password: a
/// new hash), by reloads or in place: the new bob inherits none of the old
/// one's sessions.
pub(super) async fn a_user_re_created_under_the_name_inherits_no_session(backend: Backend) {
    // By two reloads.
    let mut deployment = single(backend, users_of(&[("bob", &hash("pw"), false)])).await;
    let addr = deployment.addr();
    let (access, current) = log_in(addr, "bob", "pw").await;
    let carol = users_of(&[("carol", &hash("carol's"), false)]);
    deployment.reload(carol).await;
    assert_eq!(me_status(addr, &access).await, 401);
    deployment
        .reload(users_of(&[("bob", &hash("pw"), false)]))
        .await;
    refused(addr, &current).await;
    assert_eq!(me_status(addr, &access).await, 401);
    let (access, next) = log_in(addr, "bob", "pw").await;
    assert_eq!(me_status(addr, &access).await, 200);
    refreshed(addr, &next).await;

    // In place, in one step: the old bob's session meets the new bob.
    let users = Live::new(users_of(&[("bob", &hash("pw"), false)]));
    let deployment = single(backend, users.clone()).await;
    let addr = deployment.addr();
    let (_, current) = log_in(addr, "bob", "pw").await;
    users.set(users_of(&[("bob", &hash("pw"), false)]));
    refused(addr, &current).await;
    // Removed in place: the same.
    let (_, current) = log_in(addr, "bob", "pw").await;
    users.set(users_of(&[("carol", &hash("carol's"), false)]));
    refused(addr, &current).await;
}

/// bob disabled: his refresh is refused and his sessions end (a reload
/// ends them at once). Enabled again with the very same hash, he has no
/// session from before: he logs in again.
pub(super) async fn a_user_disabled_then_enabled_has_no_session_from_before(backend: Backend) {
    let bob = hash("pw");
    // By reloads, no refresh tried in between.
    let mut deployment = single(backend, users_of(&[("bob", &bob, false)])).await;
    let addr = deployment.addr();
    let (access, current) = log_in(addr, "bob", "pw").await;
    deployment.reload(users_of(&[("bob", &bob, true)])).await;
    assert_eq!(me_status(addr, &access).await, 401);
    deployment.reload(users_of(&[("bob", &bob, false)])).await;
    refused(addr, &current).await;
    assert_eq!(me_status(addr, &access).await, 401);
    let (access, next) = log_in(addr, "bob", "pw").await;
    assert_eq!(me_status(addr, &access).await, 200);
    refreshed(addr, &next).await;

    // In place: the refresh tried while disabled ends the session.
    let users = Live::new(users_of(&[("bob", &bob, false)]));
    let deployment = single(backend, users.clone()).await;
    let addr = deployment.addr();
    let (access, current) = log_in(addr, "bob", "pw").await;
    users.set(users_of(&[("bob", &bob, true)]));
    refused(addr, &current).await;
    users.set(users_of(&[("bob", &bob, false)]));
    refused(addr, &current).await;
    assert_eq!(me_status(addr, &access).await, 401);
}

/// A refresh whose answer was lost: the client retries with the token it
/// holds, the one just used up. Within the window it is answered once,
/// with a pair that works; the session goes on. Retried twice, it is a
/// reuse: the session ends, the retry's tokens with it. The retry may
/// reach another instance sharing the store, or one restarted on it.
pub(super) async fn a_retry_after_a_lost_answer_is_answered_once(backend: Backend) {
    let mut deployment = Deployment::start(backend, Users::demo(), Settings::default(), 2).await;
    let (_, first) = log_in(deployment.addr(), "johndoe", "secret").await;
    // Committed, but the answer never reached the client.
    let (_lost_access, _lost_refresh) = refreshed(deployment.addr(), &first).await;
    if backend.durable() {
        deployment.restart().await;
    }
    // The last instance: the other one where the store is shared.
    let addr = *deployment.addrs().last().expect("an instance");
    let (access, current) = refreshed(addr, &first).await;
    assert_eq!(me_status(addr, &access).await, 200);
    let (access, current) = refreshed(addr, &current).await;
    assert_eq!(me_status(addr, &access).await, 200);
    // A token from before the last rotation again: stolen.
    refused(addr, &first).await;
    assert_eq!(me_status(addr, &access).await, 401);
    refused(addr, &current).await;

    // Once only: a second retry with the same token is a reuse.
    let addr = deployment.addr();
    let (_, first) = log_in(addr, "johndoe", "secret").await;
    refreshed(addr, &first).await;
    let (access, current) = refreshed(addr, &first).await;
    refused(addr, &first).await;
    assert_eq!(me_status(addr, &access).await, 401);
    refused(addr, &current).await;
}

/// Past the window, the token just used up is a reuse at once, as it is
/// with no window at all.
pub(super) async fn a_retry_after_the_window_is_a_reuse(backend: Backend) {
    let window = |refresh_retry_window| Settings {
        refresh_retry_window,
        ..Settings::default()
    };
    let deployment =
        Deployment::start(backend, Users::demo(), window(Duration::from_secs(1)), 1).await;
    let addr = deployment.addr();
    let (_, first) = log_in(addr, "johndoe", "secret").await;
    let (access, current) = refreshed(addr, &first).await;
    // Unix seconds: two of them are past a one-second window.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    refused(addr, &first).await;
    assert_eq!(me_status(addr, &access).await, 401);
    refused(addr, &current).await;

    let deployment = Deployment::start(backend, Users::demo(), window(Duration::ZERO), 1).await;
    let addr = deployment.addr();
    let (_, first) = log_in(addr, "johndoe", "secret").await;
    let (access, _) = refreshed(addr, &first).await;
    refused(addr, &first).await;
    assert_eq!(me_status(addr, &access).await, 401);
}

/// The store's own rules, asked directly (a race between two instances
/// reaches them without the refresh grant's first look): a rotation, the
/// retry within the window once, a reuse that ends the session, the
/// fingerprint kept, and a user's sessions ended together.
pub(super) async fn the_store_rotates_retries_and_ends_by_the_rules(backend: Backend) {
    use password_bearer::sessions::{Advance, Session};
    let deployment = single(backend, Users::demo()).await;
    let store = deployment.sessions();
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
