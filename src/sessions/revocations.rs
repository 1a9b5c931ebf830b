//! The deny-list: what was revoked, until when, bounded by collapsing a
//! user's entries into one mark rather than dropping any.

use super::{Revocation, SessionId, TokenId};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The app's deny-list as a store may feed it ([`SessionStore::follow`]):
/// revocations made by other instances, so that `GET /users/me` refuses
/// their tokens without asking the store.
///
/// [`SessionStore::follow`]: super::SessionStore::follow
#[derive(Debug, Clone)]
pub struct DenyList(pub(crate) Arc<Revocations>);

impl DenyList {
    /// Adds `revocation`, made by (or on behalf of) `owner` when known:
    /// tokens it covers are refused from now on. Adding what is already
    /// there keeps the later end.
    pub fn add(&self, revocation: Revocation, owner: Option<&str>, now: i64) {
        self.0.add(revocation, owner, now);
    }
}

/// The deny-list `GET /users/me` checks: the sessions and access tokens
/// revoked, each until its `until`, and the users whose entries were
/// collapsed. A generation counter moves on every addition, so that a
/// verified token cached with the generation it was checked at needs no
/// lookup while nothing new was revoked.
///
/// # Bounded, and nothing revoked is ever dropped
///
/// A revocation that answered 200 must hold until the tokens it names
/// expire, whatever anyone else does; and memory must stay bounded though
/// one account, refreshing and revoking in a loop, can add an entry per
/// request. Dropping entries (the soonest to expire, or the user's own)
/// bounds memory but undoes revocations someone relies on. So past its
/// caps the list does not drop an entry, it widens one: a user's entries
/// are replaced by one mark, "every token of this user issued up to now is
/// revoked", kept until the latest of them ends. Every token the entries
/// named is covered by the mark (each was issued before it was revoked,
/// hence before the mark), so no revocation is lost; what is given up is
/// that user's other tokens of before the mark (they log in or refresh
/// again), never another user's revocation. The mark compares the token's
/// `iat` with this host's clock: instances sharing a store must keep their
/// clocks in step, as `exp` already requires.
///
/// The caps:
/// - one user's entries pass `per_user` (default
///   [`MAX_REVOCATIONS_PER_USER`]): that user's entries collapse, in
///   `O(log n)` per entry;
/// - all entries pass `cap` (`Config::max_revocations`): the user holding
///   the most collapses (found by a scan of the users, which frees their
///   entries for the next additions), then the next, until the list is
///   within its cap.
///
/// So the list holds at most `cap` entries plus one mark per user who
/// passed a cap (users are the operator's, each mark a name and two
/// times). Entries without an owner (written by an older version, so
/// within one token lifetime of an upgrade) cannot collapse: over the cap
/// with nothing else left, the one expiring first is dropped. Collapses and
/// drops are logged (one line per user and period) and counted
/// (`password_bearer_revocations_collapsed_total`). The stores keep the
/// same marks with the same owners, so a restart loads what was in force.
#[derive(Debug)]
pub(crate) struct Revocations {
    pub(super) generation: AtomicU64,
    pub(super) denied: Mutex<Denied>,
    pub(super) cap: usize,
    pub(super) per_user: usize,
    /// Entries collapsed into marks or dropped, for the metrics.
    pub(super) collapsed: AtomicU64,
}

/// Most deny-list entries one user's revocations may hold before they
/// collapse into a mark: a thousand logouts within an access token's
/// lifetime is more than any person makes.
pub const MAX_REVOCATIONS_PER_USER: usize = 1024;

/// What an entry names.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(super) enum Denial {
    Session(SessionId),
    Token(TokenId),
}

#[derive(Debug, Default)]
pub(super) struct Denied {
    /// Each entry's end, and whose it is (unknown only for entries an older
    /// version stored without an owner).
    pub(super) until: HashMap<Denial, (i64, Option<Arc<str>>)>,
    /// Every entry by its end, soonest first.
    by_end: BTreeSet<(i64, Denial)>,
    /// Each user's entries by their end.
    by_owner: HashMap<Arc<str>, BTreeSet<(i64, Denial)>>,
    /// Each collapsed user's mark: tokens issued up to `.0` are revoked
    /// until `.1`. Ended ones go when a mark is set: marks are few (one
    /// per user who passed a cap), so no index of their ends is kept.
    pub(super) marks: HashMap<Arc<str>, (i64, i64)>,
}

impl Revocations {
    /// A list of at most `cap` entries, `per_user` for one user (each at
    /// least 1), plus the marks.
    pub(crate) fn new(cap: usize, per_user: usize) -> Revocations {
        Revocations {
            generation: AtomicU64::new(0),
            denied: Mutex::new(Denied::default()),
            cap: cap.max(1),
            per_user: per_user.max(1),
            collapsed: AtomicU64::new(0),
        }
    }

    /// The generation now: it moves whenever something is revoked.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a token of `sub` issued at `iat`, naming session `sid` and
    /// token id `jti` (their claims, as text), is revoked at `now`.
    pub(crate) fn denies(
        &self,
        sub: &str,
        iat: Option<i64>,
        sid: Option<&str>,
        jti: Option<&str>,
        now: i64,
    ) -> bool {
        let denied = self.lock();
        let in_force = |denial: Denial| {
            denied
                .until
                .get(&denial)
                .is_some_and(|(until, _)| now < *until)
        };
        sid.and_then(SessionId::decode)
            .is_some_and(|sid| in_force(Denial::Session(sid)))
            || jti
                .and_then(TokenId::decode)
                .is_some_and(|jti| in_force(Denial::Token(jti)))
            // A token without `iat` could be of any time: the mark covers it.
            || denied.marks.get(sub).is_some_and(|&(issued, until)| {
                now < until && iat.is_none_or(|iat| iat <= issued)
            })
    }

    /// Adds `revocation`, made by (or on behalf of) the user `owner`; the
    /// generation moves after, so that a reader who sees the new generation
    /// sees the entry too.
    pub(crate) fn add(&self, revocation: Revocation, owner: Option<&str>, now: i64) {
        let mut denied = self.lock();
        denied.purge(now);
        let owner: Option<Arc<str>> = owner.map(Arc::from);
        match (revocation, owner) {
            (Revocation::User { issued, until }, Some(owner)) => {
                if now < until {
                    denied.mark(owner, issued, until, now);
                }
            }
            // A mark of nobody covers nothing.
            (Revocation::User { .. }, None) => {}
            (Revocation::Session(id, until), owner) => {
                self.insert(&mut denied, Denial::Session(id), until, owner, now);
            }
            (Revocation::Token(id, until), owner) => {
                self.insert(&mut denied, Denial::Token(id), until, owner, now);
            }
        }
        drop(denied);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn insert(
        &self,
        denied: &mut Denied,
        denial: Denial,
        until: i64,
        owner: Option<Arc<str>>,
        now: i64,
    ) {
        // Revoked again: kept until the later of the two ends.
        let until = match denied.remove(denial) {
            Some(before) => before.max(until),
            None => until,
        };
        denied.insert(denial, until, owner.clone());
        if let Some(owner) = owner {
            if denied.by_owner.get(&owner).map_or(0, BTreeSet::len) > self.per_user {
                self.collapse(denied, &owner, now, "passed its cap of entries");
            }
        }
        while denied.until.len() > self.cap {
            let largest = denied
                .by_owner
                .iter()
                .max_by_key(|(_, own)| own.len())
                .map(|(owner, _)| owner.clone());
            match largest {
                Some(largest) => self.collapse(
                    denied,
                    &largest,
                    now,
                    "held the most entries of a full list",
                ),
                None => {
                    let Some(&(_, soonest)) = denied.by_end.first() else {
                        break;
                    };
                    denied.remove(soonest);
                    self.collapsed.fetch_add(1, Ordering::Relaxed);
                    crate::logging::tally(
                        crate::logging::SERVER_WARN,
                        format_args!(
                            "password-bearer: revocation list full ({} entries, none with an \
                             owner): the one expiring first was dropped",
                            self.cap
                        ),
                    );
                }
            }
        }
    }

    /// Replaces `owner`'s entries with their mark: every token issued to
    /// them up to `now`, revoked until the latest entry's end.
    pub(super) fn collapse(&self, denied: &mut Denied, owner: &Arc<str>, now: i64, why: &str) {
        let Some(own) = denied.by_owner.get(owner).cloned() else {
            return;
        };
        let latest = own.last().map_or(now, |&(until, _)| until);
        for &(_, denial) in &own {
            denied.remove(denial);
        }
        denied.mark(owner.clone(), now, latest, now);
        self.collapsed
            .fetch_add(own.len() as u64, Ordering::Relaxed);
        crate::logging::tally(
            crate::logging::SERVER_WARN,
            format_args!(
                "password-bearer: the revocations of username={} {why}: they were collapsed \
                 into one, of every token issued to that user until then",
                crate::logging::Quoted(owner)
            ),
        );
    }

    /// Entries and marks held now (ended marks until the next is set).
    pub(crate) fn len(&self) -> usize {
        let denied = self.lock();
        denied.until.len() + denied.marks.len()
    }

    /// Entries collapsed into marks (or, without an owner, dropped) so far.
    pub(crate) fn collapsed(&self) -> u64 {
        self.collapsed.load(Ordering::Relaxed)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Denied> {
        // Nothing panics under the lock; a poisoned list still denies.
        self.denied.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Denied {
    pub(super) fn insert(&mut self, denial: Denial, until: i64, owner: Option<Arc<str>>) {
        self.by_end.insert((until, denial));
        if let Some(owner) = &owner {
            let own = self.by_owner.entry(owner.clone()).or_default();
            own.insert((until, denial));
        }
        self.until.insert(denial, (until, owner));
    }

    /// Removes an entry; its end, if it was held.
    pub(super) fn remove(&mut self, denial: Denial) -> Option<i64> {
        let (until, owner) = self.until.remove(&denial)?;
        self.by_end.remove(&(until, denial));
        if let Some(owner) = owner {
            if let Some(own) = self.by_owner.get_mut(&owner) {
                own.remove(&(until, denial));
                if own.is_empty() {
                    self.by_owner.remove(&owner);
                }
            }
        }
        Some(until)
    }

    /// Sets or widens `owner`'s mark: the later of each bound. Called at
    /// `now`, it drops the marks that have ended.
    pub(super) fn mark(&mut self, owner: Arc<str>, issued: i64, until: i64, now: i64) {
        self.marks.retain(|_, &mut (_, until)| now < until);
        let (issued, until) = match self.marks.get(&owner) {
            Some(&(before_issued, before_until)) => {
                (before_issued.max(issued), before_until.max(until))
            }
            None => (issued, until),
        };
        self.marks.insert(owner, (issued, until));
    }

    /// Drops what no longer covers any unexpired token: from the soonest
    /// end, so each entry is looked at once.
    pub(super) fn purge(&mut self, now: i64) {
        while let Some(&(until, denial)) = self.by_end.first() {
            if now < until {
                break;
            }
            self.remove(denial);
        }
    }
}
