//! Sessions in memory: the default [`SessionStore`]. Nothing survives a
//! restart (revocations included: the deny-list is the app's, rebuilt empty),
//! and memory is bounded: at most `max_sessions` sessions, and at most
//! `max_per_user` for one user.
//!
//! Eviction rule: a new session over a cap removes the oldest session
//! (earliest login) of that user, or, over the total cap, the oldest of all.
//! An evicted session's refresh token is refused (`invalid_grant`: log in
//! again); its access tokens work until they expire, as every access token
//! of a session the server does not know. The per-user cap keeps one
//! account (whose password an attacker may know) from evicting everyone
//! else's sessions by logging in again and again.

use super::{Advance, Revocation, Session, SessionId, SessionStore, StoreFuture, TokenId};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The default cap on sessions in all.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;
/// The default cap on one user's sessions.
pub const DEFAULT_MAX_PER_USER: usize = 32;

/// Sessions in memory, bounded (see the module's header).
pub struct MemorySessions {
    max_sessions: usize,
    max_per_user: usize,
    /// A std mutex: each operation is a few map operations, never held
    /// across an await.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    sessions: HashMap<SessionId, Session>,
    /// Every session by login time, oldest first: whom to evict.
    by_age: BTreeSet<(i64, SessionId)>,
    /// Each user's sessions by login time.
    by_user: HashMap<String, BTreeSet<(i64, SessionId)>>,
}

/// The caps and how many sessions are held, not the sessions: a store of
/// 100,000 is no log line (and a derived `Debug` of the maps cost every
/// binary its code, `SessionStore` being `Debug`).
impl std::fmt::Debug for MemorySessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("MemorySessions");
        out.field("max_sessions", &self.max_sessions)
            .field("max_per_user", &self.max_per_user);
        // As a `Mutex`'s own `Debug`: never waits for the lock.
        if let Ok(state) = self.state.try_lock() {
            out.field("sessions", &state.sessions.len());
        }
        out.finish_non_exhaustive()
    }
}

impl Default for MemorySessions {
    fn default() -> MemorySessions {
        MemorySessions::new(DEFAULT_MAX_SESSIONS, DEFAULT_MAX_PER_USER)
    }
}

impl MemorySessions {
    /// A store of at most `max_sessions` sessions, `max_per_user` per user
    /// (each at least 1).
    pub fn new(max_sessions: usize, max_per_user: usize) -> MemorySessions {
        MemorySessions {
            max_sessions: max_sessions.max(1),
            max_per_user: max_per_user.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Sessions held now (expired ones included until they are purged).
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics under the lock; a poisoned state is consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn remove(&mut self, id: SessionId) -> Option<Session> {
        let session = self.sessions.remove(&id)?;
        self.by_age.remove(&(session.created, id));
        if let Some(own) = self.by_user.get_mut(&session.username) {
            own.remove(&(session.created, id));
            if own.is_empty() {
                self.by_user.remove(&session.username);
            }
        }
        Some(session)
    }

    fn insert(&mut self, session: Session, max_sessions: usize, max_per_user: usize) {
        let key = (session.created, session.id);
        let own = self.by_user.entry(session.username.clone()).or_default();
        let oldest_own = (own.len() >= max_per_user)
            .then(|| own.first().copied())
            .flatten();
        if let Some((_, oldest)) = oldest_own {
            self.remove(oldest);
        }
        while self.sessions.len() >= max_sessions {
            let Some(&(_, oldest)) = self.by_age.first() else {
                break;
            };
            self.remove(oldest);
        }
        self.by_age.insert(key);
        self.by_user
            .entry(session.username.clone())
            .or_default()
            .insert(key);
        self.sessions.insert(session.id, session);
    }

    /// Drops expired sessions from the oldest end, a few at a time.
    fn purge(&mut self, now: i64) {
        for _ in 0..16 {
            let Some(&(_, oldest)) = self.by_age.first() else {
                return;
            };
            if self.sessions.get(&oldest).is_some_and(|s| now < s.expires) {
                return;
            }
            self.remove(oldest);
        }
    }
}

fn ready<T: Send + 'static>(value: T) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl SessionStore for MemorySessions {
    fn create(&self, session: Session) -> StoreFuture<'_, ()> {
        let mut state = self.lock();
        state.purge(session.created);
        state.insert(session, self.max_sessions, self.max_per_user);
        ready(())
    }

    fn get(&self, id: SessionId, now: i64) -> StoreFuture<'_, Option<Session>> {
        let state = self.lock();
        let session = state.sessions.get(&id).filter(|s| now < s.expires).cloned();
        ready(session)
    }

    fn advance(
        &self,
        id: SessionId,
        from: u32,
        now: i64,
        retry_until: i64,
        _revoke_until: i64,
    ) -> StoreFuture<'_, Advance> {
        let mut state = self.lock();
        let outcome = match state.sessions.get_mut(&id) {
            Some(session) => session.rotate(from, now, retry_until),
            None => Advance::Unknown,
        };
        if outcome == Advance::Reused {
            state.remove(id);
        }
        ready(outcome)
    }

    fn revoke_session(&self, id: SessionId, _owner: &str, _until: i64) -> StoreFuture<'_, ()> {
        // The deny-list (the app's) remembers it; the session goes.
        self.lock().remove(id);
        ready(())
    }

    fn end_sessions_of(&self, username: String, _until: i64) -> StoreFuture<'_, Vec<SessionId>> {
        let mut state = self.lock();
        let ended: Vec<SessionId> = state
            .by_user
            .get(&username)
            .map(|own| own.iter().map(|&(_, id)| id).collect())
            .unwrap_or_default();
        for id in &ended {
            state.remove(*id);
        }
        ready(ended)
    }

    fn revoke_token(&self, _id: TokenId, _owner: &str, _until: i64) -> StoreFuture<'_, ()> {
        // Only the app's deny-list needs it, and it is kept there.
        ready(())
    }

    fn revocations(&self, _now: i64) -> Vec<(Revocation, Option<String>)> {
        Vec::new()
    }

    fn session_count(&self) -> Option<u64> {
        Some(self.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";

    fn session(user: &str, at: i64) -> Session {
        Session::start(user, HASH, "", at, at + 1000).unwrap()
    }

    async fn get(store: &MemorySessions, id: SessionId, now: i64) -> Option<Session> {
        store.get(id, now).await.unwrap()
    }

    #[tokio::test]
    async fn a_counter_advances_once_and_a_reuse_removes_the_session() {
        let store = MemorySessions::default();
        let s = session("johndoe", NOW);
        store.create(s.clone()).await.unwrap();
        assert_eq!(
            store.advance(s.id, 0, NOW, NOW, NOW + 60).await.unwrap(),
            Advance::Advanced
        );
        assert_eq!(get(&store, s.id, NOW).await.unwrap().counter, 1);
        // The same token again: it was used, the session goes.
        assert_eq!(
            store.advance(s.id, 0, NOW, NOW, NOW + 60).await.unwrap(),
            Advance::Reused
        );
        assert_eq!(get(&store, s.id, NOW).await, None);
        assert_eq!(
            store.advance(s.id, 1, NOW, NOW, NOW + 60).await.unwrap(),
            Advance::Unknown
        );
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn the_token_before_the_current_one_is_answered_once_within_its_window() {
        let store = MemorySessions::default();
        let s = session("johndoe", NOW);
        store.create(s.clone()).await.unwrap();
        let advance = |from, now| store.advance(s.id, from, now, now + 60, now + 1800);
        assert_eq!(advance(0, NOW).await.unwrap(), Advance::Advanced);
        // Its answer was lost: the client retries with token 0.
        assert_eq!(advance(0, NOW + 59).await.unwrap(), Advance::Retried);
        let held = get(&store, s.id, NOW).await.unwrap();
        assert_eq!((held.counter, held.retry_until), (2, 0), "the window spent");
        // Once only: token 1, the lost answer's, is now a reuse.
        assert_eq!(advance(1, NOW + 59).await.unwrap(), Advance::Reused);
        assert_eq!(get(&store, s.id, NOW).await, None);

        // Past the window, the previous token is a reuse at once.
        let s = session("johndoe", NOW);
        store.create(s.clone()).await.unwrap();
        let advance = |from, now| store.advance(s.id, from, now, now + 60, now + 1800);
        assert_eq!(advance(0, NOW).await.unwrap(), Advance::Advanced);
        assert_eq!(advance(1, NOW + 1).await.unwrap(), Advance::Advanced);
        assert_eq!(advance(1, NOW + 61).await.unwrap(), Advance::Reused);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn expired_sessions_are_unknown_and_purged() {
        let store = MemorySessions::default();
        let s = session("johndoe", NOW);
        store.create(s.clone()).await.unwrap();
        assert_eq!(get(&store, s.id, NOW + 1000).await, None);
        assert_eq!(
            store
                .advance(s.id, 0, NOW + 1000, NOW + 1060, NOW + 60)
                .await
                .unwrap(),
            Advance::Unknown
        );
        store.create(session("alice", NOW + 2000)).await.unwrap();
        assert_eq!(store.len(), 1, "the expired one was purged");
    }

    #[tokio::test]
    async fn one_user_evicts_only_their_own_oldest_session() {
        let store = MemorySessions::new(100, 3);
        let victim = session("alice", NOW);
        store.create(victim.clone()).await.unwrap();
        let first = session("mallory", NOW);
        store.create(first.clone()).await.unwrap();
        for i in 1..50 {
            store.create(session("mallory", NOW + i)).await.unwrap();
        }
        assert_eq!(store.len(), 4, "alice's one and mallory's three newest");
        assert!(get(&store, victim.id, NOW).await.is_some());
        assert!(get(&store, first.id, NOW).await.is_none());
    }

    #[tokio::test]
    async fn over_the_total_cap_the_oldest_of_all_goes() {
        let store = MemorySessions::new(3, 10);
        let sessions: Vec<Session> = (0..5).map(|i| session(&format!("u{i}"), NOW + i)).collect();
        for s in &sessions {
            store.create(s.clone()).await.unwrap();
        }
        assert_eq!(store.len(), 3);
        assert!(get(&store, sessions[0].id, NOW).await.is_none());
        assert!(get(&store, sessions[1].id, NOW).await.is_none());
        assert!(get(&store, sessions[4].id, NOW).await.is_some());
        store
            .revoke_session(sessions[4].id, "u4", NOW + 60)
            .await
            .unwrap();
        assert!(get(&store, sessions[4].id, NOW).await.is_none());
        assert_eq!(store.len(), 2);
    }

    #[tokio::test]
    async fn a_users_sessions_end_together_and_no_one_elses() {
        let store = MemorySessions::default();
        let own: Vec<Session> = (0..3).map(|i| session("bob", NOW + i)).collect();
        let other = session("bobby", NOW);
        for s in own.iter().chain([&other]) {
            store.create(s.clone()).await.unwrap();
        }
        let mut ended = store.end_sessions_of("bob".into(), NOW + 60).await.unwrap();
        ended.sort();
        let mut expected: Vec<SessionId> = own.iter().map(|s| s.id).collect();
        expected.sort();
        assert_eq!(ended, expected);
        assert_eq!(store.len(), 1);
        assert!(get(&store, other.id, NOW).await.is_some());
        assert_eq!(store.end_sessions_of("bob".into(), NOW).await.unwrap(), []);
    }
}
