use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory of its own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "password-bearer-state-dir-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn now() -> i64 {
    unix_now()
}

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";

fn session(user: &str, at: i64, ttl: i64) -> Session {
    Session::start(user, HASH, "me items", at, at + ttl).unwrap()
}

async fn get(store: &StateDirSessions, id: SessionId, now: i64) -> Option<Session> {
    store.get(id, now).await.unwrap()
}

#[tokio::test]
async fn create_get_advance_and_a_reuse_removes_the_session() {
    let dir = TempDir::new();
    let store = StateDirSessions::open(&dir.0.join("nested")).unwrap();
    let (t, s) = (now(), session("johndoe", now(), 1000));
    store.create(s.clone()).await.unwrap();
    assert_eq!(get(&store, s.id, t).await.as_ref(), Some(&s));
    assert_eq!(
        store.advance(s.id, 0, t, t, t + 60).await.unwrap(),
        Advance::Advanced
    );
    assert_eq!(get(&store, s.id, t).await.unwrap().counter, 1);
    // A token ahead of the counter was never issued: nothing happens.
    assert_eq!(
        store.advance(s.id, 5, t, t, t + 60).await.unwrap(),
        Advance::Unknown
    );
    assert_eq!(get(&store, s.id, t).await.unwrap().counter, 1);
    // The used token again: the session goes.
    assert_eq!(
        store.advance(s.id, 0, t, t, t + 60).await.unwrap(),
        Advance::Reused
    );
    assert_eq!(get(&store, s.id, t).await, None);
    assert_eq!(
        store.advance(s.id, 1, t, t, t + 60).await.unwrap(),
        Advance::Unknown
    );
    // The reuse was recorded as the session's revocation, in its commit.
    assert_eq!(store.counts(), (0, 1));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.path()), 0o600, "the file holds secrets");
        assert_eq!(mode(&dir.0.join("nested")), 0o700);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_refreshes_with_one_token_exactly_one_advances() {
    let dir = TempDir::new();
    let store = Arc::new(StateDirSessions::open(&dir.0).unwrap());
    let (t, s) = (now(), session("johndoe", now(), 1000));
    store.create(s.clone()).await.unwrap();
    let tries: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.advance(s.id, 0, t, t, t + 60).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tries {
        outcomes.push(task.await.unwrap());
    }
    outcomes.sort_by_key(|o| *o != Advance::Advanced);
    assert_eq!(outcomes[0], Advance::Advanced, "{outcomes:?}");
    // The first loser finds the token used and removes the session;
    // later ones find no session.
    assert!(outcomes.contains(&Advance::Reused), "{outcomes:?}");
    assert!(
        outcomes[1..].iter().all(|o| *o != Advance::Advanced),
        "{outcomes:?}"
    );
    assert_eq!(get(&store, s.id, t).await, None);
}

#[tokio::test]
async fn expired_sessions_are_unknown_and_purged() {
    let dir = TempDir::new();
    let store = StateDirSessions::open(&dir.0).unwrap();
    let t = now();
    let s = session("johndoe", t, 10);
    store.create(s.clone()).await.unwrap();
    assert!(get(&store, s.id, t + 9).await.is_some());
    assert_eq!(get(&store, s.id, t + 10).await, None);
    assert_eq!(
        store
            .advance(s.id, 0, t + 10, t + 10, t + 10 + 60)
            .await
            .unwrap(),
        Advance::Unknown
    );
    assert_eq!(store.counts().0, 0, "the refresh purged it");
    let s = session("johndoe", t, 10);
    store.create(s.clone()).await.unwrap();
    store.create(session("alice", t + 20, 10)).await.unwrap();
    assert_eq!(store.counts().0, 1, "the login purged it");
}

#[tokio::test]
async fn everything_survives_a_reopen_and_the_revocations_are_loaded() {
    let dir = TempDir::new();
    let t = now();
    let kept = session("johndoe", t, 1000);
    let revoked = session("johndoe", t, 1000);
    let token = TokenId::random().unwrap();
    let old_token = TokenId::random().unwrap();
    {
        let store = StateDirSessions::open(&dir.0).unwrap();
        assert_eq!(store.revocations(t), []);
        store.create(kept.clone()).await.unwrap();
        store.create(revoked.clone()).await.unwrap();
        store.advance(kept.id, 0, t, t, t + 60).await.unwrap();
        store.advance(kept.id, 1, t, t, t + 60).await.unwrap();
        store
            .revoke_session(revoked.id, "johndoe", t + 600)
            .await
            .unwrap();
        store.revoke_token(token, "bob", t + 300).await.unwrap();
        // Already expired when the store is opened again.
        store.revoke_token(old_token, "bob", t - 1).await.unwrap();
        assert_eq!(store.counts(), (1, 3));
    }
    let store = StateDirSessions::open(&dir.0).unwrap();
    let mut expected = kept.clone();
    expected.counter = 2;
    expected.retry_until = t;
    assert_eq!(get(&store, kept.id, t).await, Some(expected));
    assert_eq!(get(&store, revoked.id, t).await, None);
    let (bob, johndoe) = (Some("bob".to_owned()), Some("johndoe".to_owned()));
    assert_eq!(
        store.revocations(t),
        [
            (Revocation::Token(token, t + 300), bob),
            (Revocation::Session(revoked.id, t + 600), johndoe.clone()),
        ]
    );
    assert_eq!(store.counts(), (1, 2), "the expired one was purged");
    assert_eq!(
        store.revocations(t + 300),
        [(Revocation::Session(revoked.id, t + 600), johndoe)]
    );
    // The reused counter is still detected after the reopen.
    assert_eq!(
        store.advance(kept.id, 1, t, t, t + 60).await.unwrap(),
        Advance::Reused
    );
}

#[test]
fn expired_entries_are_purged_at_open_and_the_file_shrinks() {
    let dir = TempDir::new();
    let t = now();
    let store = StateDirSessions::open(&dir.0).unwrap();
    let size = |store: &StateDirSessions| fs::metadata(store.path()).unwrap().len();
    let new = size(&store);
    let live = session("johndoe", t, 1000);
    write(&store.inner.db, |tables| {
        for i in 0..1000 {
            // Long usernames, for a file worth compacting.
            let expired = session(&format!("{i:0>200}"), t - 100, 50);
            tables.insert(&expired, store.inner.caps)?;
            let id = TokenId::random().unwrap().0;
            tables.revoke(TOKEN, id, &format!("{i}"), t - 1, t, store.inner.caps)?;
        }
        tables.insert(&live, store.inner.caps)
    })
    .unwrap();
    let full = size(&store);
    drop(store);
    let store = StateDirSessions::open(&dir.0).unwrap();
    assert_eq!(store.counts(), (1, 0));
    // The purge alone would have grown it (copy-on-write); compacted,
    // it is back to about a new store's size (the trees emptied by the
    // purge may keep a root page or two: measured, at most 6 pages).
    assert!(
        size(&store) <= new + (64 << 10),
        "{} bytes; {full} before, {new} new",
        size(&store)
    );
}

#[tokio::test]
async fn the_caps_bound_sessions_per_user_in_all_and_revocations() {
    let dir = TempDir::new();
    let store = StateDirSessions::open_bounded(&dir.0, 4, 2, 3).unwrap();
    let t = now();
    let victim = session("alice", t, 1000);
    store.create(victim.clone()).await.unwrap();
    let mallory: Vec<Session> = (0..5).map(|i| session("mallory", t + i, 1000)).collect();
    for s in &mallory {
        store.create(s.clone()).await.unwrap();
    }
    assert_eq!(store.counts().0, 3, "alice's one and mallory's two newest");
    assert!(get(&store, victim.id, t).await.is_some());
    assert!(get(&store, mallory[2].id, t).await.is_none());
    assert!(get(&store, mallory[4].id, t).await.is_some());
    // Over the total cap: the one expiring first.
    store.create(session("bob", t, 2000)).await.unwrap();
    store.create(session("carol", t, 2000)).await.unwrap();
    assert_eq!(store.counts().0, 4);
    assert!(get(&store, victim.id, t).await.is_none());
    assert!(get(&store, mallory[3].id, t).await.is_some());

    // Over the revocations' cap, nothing is dropped: the user holding
    // the most has theirs collapsed into a mark, alice's stays.
    let first = TokenId::random().unwrap();
    store.revoke_token(first, "alice", t + 50).await.unwrap();
    for i in 0..3 {
        let id = TokenId::random().unwrap();
        store
            .revoke_token(id, "mallory", t + 100 - i)
            .await
            .unwrap();
    }
    assert_eq!(store.counts().1, 1);
    drop(store);
    let store = StateDirSessions::open_bounded(&dir.0, 4, 2, 3).unwrap();
    let loaded = store.revocations(t);
    assert_eq!(loaded.len(), 2, "{loaded:?}");
    assert!(loaded.contains(&(Revocation::Token(first, t + 50), Some("alice".into()))));
    assert!(
        loaded
            .iter()
            .any(|(r, owner)| matches!(r, Revocation::User { issued, until }
            if *issued >= t && *until == t + 100)
                && owner.as_deref() == Some("mallory")),
        "{loaded:?}"
    );
}

#[tokio::test]
async fn a_user_past_their_cap_collapses_into_one_mark_that_widens() {
    let dir = TempDir::new();
    let store = StateDirSessions::open(&dir.0)
        .unwrap()
        .revocations_per_user(2);
    let t = now();
    let kept = TokenId::random().unwrap();
    store.revoke_token(kept, "alice", t + 900).await.unwrap();
    for i in 0..5 {
        let id = TokenId::random().unwrap();
        store
            .revoke_token(id, "mallory", t + 100 + i)
            .await
            .unwrap();
    }
    // Collapsed at its third entry, then two more: one mark and two.
    assert_eq!(store.counts().1, 3);
    drop(store);
    let store = StateDirSessions::open(&dir.0).unwrap();
    let mut loaded = store.revocations(t);
    loaded.sort_by_key(|(r, _)| r.until());
    assert_eq!(loaded.len(), 4, "{loaded:?}");
    assert!(
        matches!(loaded[0], (Revocation::User { until, .. }, ref owner)
            if until == t + 102 && owner.as_deref() == Some("mallory")),
        "{loaded:?}"
    );
    assert_eq!(
        loaded[3],
        (Revocation::Token(kept, t + 900), Some("alice".into()))
    );
    // Ended marks are purged at open.
    drop(store);
    let store = StateDirSessions::open(&dir.0).unwrap();
    assert_eq!(store.revocations(t + 1000), []);
}

#[tokio::test]
async fn a_store_of_format_1_is_upgraded_its_revocations_without_owners() {
    let dir = TempDir::new();
    let store = StateDirSessions::open(&dir.0).unwrap();
    let t = now();
    let id = TokenId::random().unwrap();
    write(&store.inner.db, |tables| {
        tables
            .meta
            .insert(b"format".as_slice(), 1u64.to_be_bytes().as_slice())?;
        let entry = key(&[&time(t + 60), &[TOKEN], &id.0]);
        tables.revoked.insert(entry.as_slice(), [].as_slice())?;
        tables.dirty = true;
        Ok(())
    })
    .unwrap();
    drop(store);
    let store = StateDirSessions::open(&dir.0).unwrap();
    assert_eq!(
        store.revocations(t),
        [(Revocation::Token(id, t + 60), None)]
    );
    store.revoke_token(id, "bob", t + 90).await.unwrap();
    drop(store);
    // Format 2 now, and still readable.
    let store = StateDirSessions::open(&dir.0).unwrap();
    assert_eq!(store.revocations(t).len(), 2);
}

#[test]
fn a_second_open_fails_and_bad_directories_are_named() {
    let dir = TempDir::new();
    let store = StateDirSessions::open(&dir.0).unwrap();
    let err = StateDirSessions::open(&dir.0).unwrap_err();
    assert!(matches!(err, OpenError::InUse(_)), "{err:?}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    assert!(err.to_string().contains(FILE_NAME), "{err}");
    drop(store);
    StateDirSessions::open(&dir.0).expect("the lock went with the store");

    let file = dir.0.join("a-file");
    fs::write(&file, b"x").unwrap();
    let err = StateDirSessions::open(&file).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} is not a directory", file.display())
    );
    let err = StateDirSessions::open(&file.join("below")).unwrap_err();
    assert!(matches!(err, OpenError::Io(..)), "{err:?}");

    let garbage = dir.0.join("garbage");
    fs::create_dir(&garbage).unwrap();
    fs::write(garbage.join(FILE_NAME), [7u8; 8192]).unwrap();
    let err = StateDirSessions::open(&garbage).unwrap_err();
    assert!(matches!(err, OpenError::Invalid(..)), "{err:?}");
    assert!(err.to_string().contains("not a session store"), "{err}");
    assert_eq!(
        fs::read(garbage.join(FILE_NAME)).unwrap(),
        [7u8; 8192],
        "left as it was"
    );
}

#[tokio::test]
async fn a_store_of_another_format_is_refused_not_misread() {
    let dir = TempDir::new();
    let store = StateDirSessions::open(&dir.0).unwrap();
    write(&store.inner.db, |t| {
        t.meta
            .insert(b"format".as_slice(), (FORMAT + 1).to_be_bytes().as_slice())?;
        t.dirty = true;
        Ok(())
    })
    .unwrap();
    drop(store);
    let err = StateDirSessions::open(&dir.0).unwrap_err();
    assert!(err.to_string().contains("format 3"), "{err}");
}

#[tokio::test]
async fn engine_errors_are_store_errors_naming_the_file_not_the_session() {
    let dir = TempDir::new();
    let store = StateDirSessions::open(&dir.0).unwrap();
    let s = session("johndoe", now(), 1000);
    store.create(s.clone()).await.unwrap();
    // A row cut short, as no build of ours writes it.
    write(&store.inner.db, |t| {
        let mut short = row(&s);
        short.truncate(40);
        t.sessions.insert(s.id.0.as_slice(), short.as_slice())?;
        t.dirty = true;
        Ok(())
    })
    .unwrap();
    let err = store.get(s.id, now()).await.unwrap_err().to_string();
    assert!(err.contains("session store"), "{err}");
    assert!(err.contains(FILE_NAME), "{err}");
    assert!(err.contains("a session row does not read"), "{err}");
    assert!(!err.contains("johndoe"), "{err}");
    assert!(store
        .advance(s.id, 0, now(), now(), now() + 60)
        .await
        .is_err());
    let debug = format!("{store:?}");
    assert!(!debug.contains("johndoe"), "{debug}");
}

#[tokio::test]
async fn the_retry_window_and_the_fingerprint_survive_a_reopen() {
    let dir = TempDir::new();
    let t = now();
    let s = session("johndoe", t, 1000);
    {
        let store = StateDirSessions::open(&dir.0).unwrap();
        store.create(s.clone()).await.unwrap();
        assert_eq!(
            store.advance(s.id, 0, t, t + 60, t + 1800).await.unwrap(),
            Advance::Advanced
        );
    }
    // Reopened (a restart): the token whose answer was lost is
    // answered once, then it, or the one before, is a reuse.
    let store = StateDirSessions::open(&dir.0).unwrap();
    let held = get(&store, s.id, t).await.unwrap();
    assert!(held.started_with(HASH));
    assert!(!held.started_with("$argon2id$v=19$m=19456,t=2,p=1$b3RoZXI$aGFzaGhhc2g"));
    assert_eq!(held.retry_until, t + 60);
    assert_eq!(
        store
            .advance(s.id, 0, t + 1, t + 61, t + 1800)
            .await
            .unwrap(),
        Advance::Retried
    );
    assert_eq!(get(&store, s.id, t).await.unwrap().counter, 2);
    assert_eq!(
        store
            .advance(s.id, 1, t + 1, t + 61, t + 1800)
            .await
            .unwrap(),
        Advance::Reused
    );
    assert_eq!(store.counts(), (0, 1));
}

#[tokio::test]
async fn a_users_sessions_end_together_revoked_across_a_reopen() {
    let dir = TempDir::new();
    let t = now();
    let own: Vec<Session> = (0..3).map(|i| session("bob", t + i, 1000)).collect();
    let other = session("bobby", t, 1000);
    {
        let store = StateDirSessions::open(&dir.0).unwrap();
        for s in own.iter().chain([&other]) {
            store.create(s.clone()).await.unwrap();
        }
        let ended = store.end_sessions_of("bob".into(), t + 600).await.unwrap();
        assert_eq!(ended.len(), 3);
        assert_eq!(store.counts(), (1, 3));
    }
    let store = StateDirSessions::open(&dir.0).unwrap();
    for s in &own {
        assert_eq!(get(&store, s.id, t).await, None);
        assert!(store
            .revocations(t)
            .contains(&(Revocation::Session(s.id, t + 600), Some("bob".to_owned()))));
    }
    assert!(get(&store, other.id, t).await.is_some());
}

#[tokio::test]
async fn a_format_1_file_opens_with_its_sessions_ended_and_its_revocations_kept() {
    let dir = TempDir::new();
    let t = now();
    let token = TokenId::random().unwrap();
    let old = session("johndoe", t, 1000);
    {
        let store = StateDirSessions::open(&dir.0).unwrap();
        store.revoke_token(token, "bob", t + 300).await.unwrap();
        store.create(old.clone()).await.unwrap();
        // What format 1 held: no retry window, no fingerprint.
        write(&store.inner.db, |tables| {
            let mut row = row(&old);
            row.drain(20..28);
            row.drain(52..68);
            tables
                .sessions
                .insert(old.id.0.as_slice(), row.as_slice())?;
            tables
                .meta
                .insert(b"format".as_slice(), FORMAT_1.to_be_bytes().as_slice())?;
            tables.dirty = true;
            Ok(())
        })
        .unwrap();
    }
    let store = StateDirSessions::open(&dir.0).unwrap();
    assert_eq!(
        store.revocations(t),
        [(Revocation::Token(token, t + 300), Some("bob".to_owned()))]
    );
    assert_eq!(store.counts(), (0, 1));
    assert_eq!(get(&store, old.id, t).await, None);
    let s = session("johndoe", t, 1000);
    store.create(s.clone()).await.unwrap();
    drop(store);
    // Now of this format: opened again, nothing more is ended.
    let store = StateDirSessions::open(&dir.0).unwrap();
    assert_eq!(get(&store, s.id, t).await, Some(s));
}

#[test]
fn keys_sort_by_time_and_rows_read_back() {
    let times = [i64::MIN, -5, -1, 0, 1, 1_700_000_000, i64::MAX];
    for pair in times.windows(2) {
        assert!(time(pair[0]) < time(pair[1]), "{pair:?}");
    }
    for t in times {
        assert_eq!(untime(time(t)), t);
    }
    let mut s = Session::start("名前 with\0 \u{0}", HASH, "", -3, i64::MAX).unwrap();
    s.counter = u32::MAX;
    s.retry_until = -9;
    assert_eq!(unrow(s.id, &row(&s)).unwrap(), s);
    s.scope = "me items".into();
    assert_eq!(unrow(s.id, &row(&s)).unwrap(), s);
    let whole = row(&s);
    for cut in [0, 79, 80, whole.len() - s.scope.len() - 1] {
        assert!(unrow(s.id, &whole[..cut]).is_err(), "{cut}");
    }
    // A user's keys are contiguous: no username is a prefix of another's.
    assert!(!user_prefix("ab").starts_with(&user_prefix("a")));
    assert!(unrevoked(&[0; 24]).is_err());
    assert_eq!(
        unrevoked(&key(&[&time(-7), &[TOKEN], &[9; 16]])).unwrap(),
        (-7, TOKEN, [9; 16])
    );
}

/// Group commit: refreshes that arrive together share one commit, and each
/// is on disk when it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_share_commits_and_each_is_durable() {
    const N: usize = 64;
    let dir = TempDir::new();
    let store = Arc::new(StateDirSessions::open(&dir.0).unwrap());
    let t = now();
    let sessions: Vec<Session> = (0..N)
        .map(|i| session(&format!("user{i}"), t, 1000))
        .collect();
    for s in &sessions {
        store.create(s.clone()).await.unwrap();
    }
    // Held so that the writer cannot begin its transaction: the refreshes
    // queue up meanwhile, as they do behind a commit's fsync.
    let blocker = store.inner.db.begin_write().unwrap();
    let before = store.inner.commits.load(Ordering::Relaxed);
    let submitted = store.submitted();
    let refreshes: Vec<_> = sessions
        .iter()
        .map(|s| {
            let (store, id) = (Arc::clone(&store), s.id);
            tokio::spawn(async move { store.advance(id, 0, t, t + 60, t + 60).await })
        })
        .collect();
    // All submitted: the writer holds at most one batch, taken before the
    // rest arrived, and the rest wait in its queue.
    while store.submitted() < submitted + N {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    drop(blocker);
    for refresh in refreshes {
        assert_eq!(refresh.await.unwrap().unwrap(), Advance::Advanced);
    }
    let commits = store.inner.commits.load(Ordering::Relaxed) - before;
    assert!(commits <= 2, "{N} refreshes took {commits} commits");
    // Each rotation answered is in the file.
    drop(Arc::into_inner(store).unwrap());
    let store = StateDirSessions::open(&dir.0).unwrap();
    for s in &sessions {
        assert_eq!(get(&store, s.id, t).await.unwrap().counter, 1, "{s:?}");
    }
}

/// In one batch, a refusal and an engine error stay with their operation:
/// the others' answers are their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_batch_one_operations_failure_is_its_own() {
    let dir = TempDir::new();
    let store = Arc::new(StateDirSessions::open(&dir.0).unwrap());
    let t = now();
    let (good, reused, damaged) = (
        session("alice", t, 1000),
        session("bob", t, 1000),
        session("carol", t, 1000),
    );
    for s in [&good, &reused, &damaged] {
        store.create(s.clone()).await.unwrap();
    }
    assert_eq!(
        store.advance(reused.id, 0, t, t, t + 60).await.unwrap(),
        Advance::Advanced
    );
    // Carol's row cut short, as no build of ours writes it.
    write(&store.inner.db, |tables| {
        let mut short = row(&damaged);
        short.truncate(40);
        tables
            .sessions
            .insert(damaged.id.0.as_slice(), short.as_slice())?;
        tables.dirty = true;
        Ok(())
    })
    .unwrap();
    let blocker = store.inner.db.begin_write().unwrap();
    let submitted = store.submitted();
    let advance = |id: SessionId, from: u32| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.advance(id, from, t, t, t + 60).await })
    };
    let tries = [
        advance(good.id, 0),
        advance(reused.id, 0),
        advance(damaged.id, 0),
        advance(SessionId([7; 16]), 0),
    ];
    while store.submitted() < submitted + tries.len() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    drop(blocker);
    let [good_try, reused_try, damaged_try, unknown_try] = tries;
    assert_eq!(good_try.await.unwrap().unwrap(), Advance::Advanced);
    assert_eq!(reused_try.await.unwrap().unwrap(), Advance::Reused);
    let err = damaged_try.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("a session row does not read"), "{err}");
    assert_eq!(unknown_try.await.unwrap().unwrap(), Advance::Unknown);
    assert_eq!(get(&store, good.id, t).await.unwrap().counter, 1);
    assert_eq!(get(&store, reused.id, t).await, None);
}

/// A batch purges once, as of its earliest refresh: a session live at that
/// refresh's time is not purged by a later one of the same batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batchs_purge_spares_a_session_its_earlier_refresh_holds() {
    let dir = TempDir::new();
    let store = Arc::new(StateDirSessions::open(&dir.0).unwrap());
    let t = now();
    let (short, long) = (session("alice", t, 10), session("bob", t, 1000));
    for s in [&short, &long] {
        store.create(s.clone()).await.unwrap();
    }
    let blocker = store.inner.db.begin_write().unwrap();
    let submitted = store.submitted();
    let advance = |id: SessionId, at: i64| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.advance(id, 0, at, at, at + 60).await })
    };
    // A write the writer takes alone and holds (it waits for the
    // blocker), so that the next two queue behind it and form one batch.
    let taken = store.inner.taken.load(Ordering::Relaxed);
    let held = advance(SessionId([7; 16]), t);
    while store.inner.taken.load(Ordering::Relaxed) < taken + 1 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // Queued in this order: alice's at t + 5, while hers is live, then
    // bob's at t + 20, when hers has expired.
    let first = advance(short.id, t + 5);
    while store.submitted() < submitted + 2 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let second = advance(long.id, t + 20);
    while store.submitted() < submitted + 3 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    drop(blocker);
    assert_eq!(held.await.unwrap().unwrap(), Advance::Unknown);
    assert_eq!(first.await.unwrap().unwrap(), Advance::Advanced);
    assert_eq!(second.await.unwrap().unwrap(), Advance::Advanced);
    // Purged by the next write, whose time it has passed.
    assert_eq!(store.counts().0, 2);
    store.create(session("carol", t + 20, 10)).await.unwrap();
    assert_eq!(store.counts().0, 2, "alice's purged, carol's added");
}
