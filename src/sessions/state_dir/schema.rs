//! The file's layout: its tables, their keys and rows, the format number
//! and the upgrade from format 1, and the write transactions over them.
//! The store ([`super::StateDirSessions`]) opens the file and answers the
//! [`SessionStore`](crate::sessions::SessionStore) calls through these.

use super::Caps;
use crate::sessions::{Revocation, Session, SessionId, TokenId};
use redb::{
    Database, Durability, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    WriteTransaction,
};
use std::fmt;

/// The layout of the tables below. Stored in the file; a file of another
/// layout is refused at open rather than misread, except format 1 (see
/// [`FORMAT_1`]).
pub(super) const FORMAT: u64 = 2;

/// The format before sessions kept their password fingerprint and retry
/// window, and revocations their owners. Opened, its sessions are ended
/// (their refresh tokens get `invalid_grant`: log in again; their access
/// tokens live until they expire), since nothing says which password each
/// was started with; its revocations are kept, without an owner until they
/// expire (within one token lifetime), and the file becomes [`FORMAT`].
pub(super) const FORMAT_1: u64 = 1;

/// Every table maps bytes to bytes: redb's B-tree code is generic over the
/// key and value types, and each pair of types compiled in costs about 67 KB
/// of binary (measured), so one pair serves all the tables. Times are
/// big-endian with the sign bit flipped ([`time`]), so that keys sort by
/// them.
type Bytes = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// `format`: the layout's version ([`FORMAT`]), 8 bytes big-endian.
const META: Bytes = TableDefinition::new("meta");

/// A session by id (16 bytes): created, expires (8 bytes each), counter
/// (4), retry until (8), secret (32), fingerprint (16), the username's
/// length (4), the username, the scope.
pub(super) const SESSIONS: Bytes = TableDefinition::new("sessions");

/// Sessions by expiry (8 bytes) and id (16), valued nothing: whom to purge,
/// and whom to evict over the total cap.
const BY_EXPIRY: Bytes = TableDefinition::new("sessions_by_expiry");

/// Sessions by user (its length, 4 bytes, then itself), login time (8) and
/// id (16), valued nothing: whom to evict over a user's cap.
const BY_USER: Bytes = TableDefinition::new("sessions_by_user");

/// What was revoked, by `until` (8 bytes), kind ([`SESSION`] or [`TOKEN`],
/// 1 byte) and id (16), valued its owner's name (empty in a format 1 file).
/// Nothing is looked up by id (the app's deny-list is), so ordering by
/// expiry is all it needs, to purge and to load.
pub(super) const REVOKED: Bytes = TableDefinition::new("revoked");

/// What was revoked by owner (its length, 4 bytes, then itself) and then
/// the [`REVOKED`] key, valued nothing: to count and collapse a user's.
const REVOKED_BY_USER: Bytes = TableDefinition::new("revoked_by_user");

/// Each collapsed user's mark, by name: the latest `iat` covered and its
/// end (8 bytes each).
const MARKS: Bytes = TableDefinition::new("revoked_users");
pub(super) const SESSION: u8 = 0;
pub(super) const TOKEN: u8 = 1;

/// A time as a key part: big-endian, sign bit flipped, so that byte order
/// is numeric order.
pub(super) fn time(t: i64) -> [u8; 8] {
    (t as u64 ^ (1 << 63)).to_be_bytes()
}

pub(super) fn untime(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

pub(super) fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// What the file holds does not read: only a file written by something else
/// with a valid checksum gets here.
pub(super) fn damaged(what: &str) -> Engine {
    Engine(Box::new(redb::Error::Corrupted(format!(
        "{what} does not read"
    ))))
}

/// The last 16 bytes of an index key: the id.
pub(super) fn id_at_end(key: &[u8]) -> Result<[u8; 16], Engine> {
    key.last_chunk()
        .copied()
        .ok_or_else(|| damaged("an index key"))
}

/// A [`REVOKED`] key: `until`, kind and id.
pub(super) fn unrevoked(key: &[u8]) -> Result<(i64, u8, [u8; 16]), Engine> {
    let bad = || damaged("a revocation");
    let (until, rest) = key.split_first_chunk().ok_or_else(bad)?;
    let (kind, id) = rest.split_first().ok_or_else(bad)?;
    let id: [u8; 16] = id.try_into().map_err(|_| bad())?;
    Ok((untime(*until), *kind, id))
}

/// A [`SESSIONS`] row.
pub(super) fn row(session: &Session) -> Vec<u8> {
    let username = session.username.as_bytes();
    let length = u32::try_from(username.len()).unwrap_or(u32::MAX);
    key(&[
        &time(session.created),
        &time(session.expires),
        &session.counter.to_be_bytes(),
        &time(session.retry_until),
        &session.secret,
        &session.fingerprint,
        &length.to_be_bytes(),
        username,
        session.scope.as_bytes(),
    ])
}

/// The session of [`SESSIONS`] row `bytes`.
pub(super) fn unrow(id: SessionId, bytes: &[u8]) -> Result<Session, Engine> {
    let bad = || damaged("a session row");
    let (created, rest) = bytes.split_first_chunk().ok_or_else(bad)?;
    let (expires, rest) = rest.split_first_chunk().ok_or_else(bad)?;
    let (counter, rest) = rest.split_first_chunk().ok_or_else(bad)?;
    let (retry_until, rest) = rest.split_first_chunk().ok_or_else(bad)?;
    let (secret, rest) = rest.split_first_chunk().ok_or_else(bad)?;
    let (fingerprint, rest) = rest.split_first_chunk().ok_or_else(bad)?;
    let (length, rest) = rest.split_first_chunk().ok_or_else(bad)?;
    let length = usize::try_from(u32::from_be_bytes(*length)).map_err(|_| bad())?;
    let (username, scope) = rest.split_at_checked(length).ok_or_else(bad)?;
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| bad());
    Ok(Session {
        id,
        username: text(username)?,
        scope: text(scope)?,
        created: untime(*created),
        expires: untime(*expires),
        counter: u32::from_be_bytes(*counter),
        retry_until: untime(*retry_until),
        secret: *secret,
        fingerprint: *fingerprint,
    })
}

/// The start of a user's [`BY_USER`] keys.
pub(super) fn user_prefix(username: &str) -> Vec<u8> {
    let length = u32::try_from(username.len()).unwrap_or(u32::MAX);
    key(&[&length.to_be_bytes(), username.as_bytes()])
}

/// redb's error, boxed: its 160 bytes would ride along every `Result` here.
#[derive(Debug)]
pub(super) struct Engine(Box<redb::Error>);

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! engine_errors {
    ($($error:ty),*) => {$(
        impl From<$error> for Engine {
            fn from(e: $error) -> Engine {
                Engine(Box::new(e.into()))
            }
        }
    )*};
}

engine_errors!(
    redb::Error,
    redb::StorageError,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError,
    redb::CompactionError
);

/// What is revoked and in force at `now`, with the owners.
pub(super) fn load_revocations(
    db: &Database,
    now: i64,
) -> Result<Vec<(Revocation, Option<String>)>, Engine> {
    let txn = db.begin_read()?;
    let table = txn.open_table(REVOKED)?;
    let mut loaded = Vec::new();
    let from = time(now.saturating_add(1));
    for entry in table.range(from.as_slice()..)? {
        let (key, owner) = entry?;
        let (until, kind, id) = unrevoked(key.value())?;
        let revocation = match kind {
            SESSION => Revocation::Session(SessionId(id), until),
            _ => Revocation::Token(TokenId(id), until),
        };
        let owner = Some(name(owner.value())?).filter(|o| !o.is_empty());
        loaded.push((revocation, owner));
    }
    for entry in txn.open_table(MARKS)?.iter()? {
        let (owner, mark) = entry?;
        let (issued, until) = unmark(mark.value())?;
        if now < until {
            loaded.push((
                Revocation::User { issued, until },
                Some(name(owner.value())?),
            ));
        }
    }
    Ok(loaded)
}

/// A user's name as stored.
pub(super) fn name(bytes: &[u8]) -> Result<String, Engine> {
    String::from_utf8(bytes.to_vec()).map_err(|_| damaged("a revocation's owner"))
}

/// A [`MARKS`] value: the latest `iat` covered and the end.
fn unmark(bytes: &[u8]) -> Result<(i64, i64), Engine> {
    let bad = || damaged("a user's mark");
    let (issued, until) = bytes.split_first_chunk().ok_or_else(bad)?;
    let until: [u8; 8] = until.try_into().map_err(|_| bad())?;
    Ok((untime(*issued), untime(until)))
}

/// The tables of one write transaction, and whether anything changed.
pub(super) struct Tables<'txn> {
    pub(super) meta: Table<'txn, &'static [u8], &'static [u8]>,
    pub(super) sessions: Table<'txn, &'static [u8], &'static [u8]>,
    by_expiry: Table<'txn, &'static [u8], &'static [u8]>,
    pub(super) by_user: Table<'txn, &'static [u8], &'static [u8]>,
    pub(super) revoked: Table<'txn, &'static [u8], &'static [u8]>,
    revoked_by_user: Table<'txn, &'static [u8], &'static [u8]>,
    pub(super) marks: Table<'txn, &'static [u8], &'static [u8]>,
    pub(super) dirty: bool,
}

/// Runs `op` in one write transaction: committed and `fsync`'d when it
/// changed something, dropped (no disk write) when it did not.
pub(super) fn write<T>(
    db: &Database,
    op: impl FnOnce(&mut Tables<'_>) -> Result<T, Engine>,
) -> Result<T, Engine> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    let (value, dirty) = {
        let mut tables = Tables::open(&txn)?;
        let value = op(&mut tables)?;
        (value, tables.dirty)
    };
    if dirty {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok(value)
}

/// The keys from `from` to `to` (both included) in `table`, at most
/// `limit`.
pub(super) fn keys(
    table: &Table<'_, &'static [u8], &'static [u8]>,
    from: &[u8],
    to: &[u8],
    limit: usize,
) -> Result<Vec<Vec<u8>>, Engine> {
    let mut found = Vec::new();
    for entry in table.range::<&[u8]>(from..=to)?.take(limit) {
        found.push(entry?.0.value().to_vec());
    }
    Ok(found)
}

impl<'txn> Tables<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<Tables<'txn>, Engine> {
        Ok(Tables {
            meta: txn.open_table(META)?,
            sessions: txn.open_table(SESSIONS)?,
            by_expiry: txn.open_table(BY_EXPIRY)?,
            by_user: txn.open_table(BY_USER)?,
            revoked: txn.open_table(REVOKED)?,
            revoked_by_user: txn.open_table(REVOKED_BY_USER)?,
            marks: txn.open_table(MARKS)?,
            dirty: false,
        })
    }

    pub(super) fn get(&self, id: SessionId) -> Result<Option<Session>, Engine> {
        match self.sessions.get(id.0.as_slice())? {
            Some(bytes) => unrow(id, bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    pub(super) fn put(&mut self, session: &Session) -> Result<(), Engine> {
        self.sessions
            .insert(session.id.0.as_slice(), row(session).as_slice())?;
        self.dirty = true;
        Ok(())
    }

    /// Adds `session`, evicting over the caps as [`MemorySessions`] does,
    /// except that over the total cap the session expiring first goes (the
    /// oldest, while the TTL is not changed).
    ///
    /// [`MemorySessions`]: super::memory::MemorySessions
    pub(super) fn insert(&mut self, session: &Session, caps: Caps) -> Result<(), Engine> {
        let user = user_prefix(&session.username);
        let own = keys(
            &self.by_user,
            &key(&[&user, &[0; 24]]),
            &key(&[&user, &[0xff; 24]]),
            usize::MAX,
        )?;
        let over = (own.len() + 1).saturating_sub(caps.per_user);
        for oldest in own.iter().take(over) {
            self.remove(SessionId(id_at_end(oldest)?))?;
        }
        while self.sessions.len()? >= caps.sessions {
            let Some(first) = self.by_expiry.first()?.map(|(k, _)| k.value().to_vec()) else {
                break;
            };
            if !self.remove(SessionId(id_at_end(&first)?))? {
                // An entry without its session would stop this loop
                // forever.
                self.by_expiry.remove(first.as_slice())?;
            }
        }
        self.put(session)?;
        let id = session.id.0;
        self.by_expiry.insert(
            key(&[&time(session.expires), &id]).as_slice(),
            [].as_slice(),
        )?;
        self.by_user.insert(
            key(&[&user, &time(session.created), &id]).as_slice(),
            [].as_slice(),
        )?;
        Ok(())
    }

    pub(super) fn remove(&mut self, id: SessionId) -> Result<bool, Engine> {
        let Some(bytes) = self.sessions.remove(id.0.as_slice())? else {
            return Ok(false);
        };
        let session = unrow(id, bytes.value())?;
        drop(bytes);
        self.by_expiry
            .remove(key(&[&time(session.expires), &id.0]).as_slice())?;
        let user = user_prefix(&session.username);
        self.by_user
            .remove(key(&[&user, &time(session.created), &id.0]).as_slice())?;
        self.dirty = true;
        Ok(true)
    }

    /// Records `kind` `id` as revoked until `until` by `owner`; past the
    /// caps, collapses (see the module's header) rather than drops.
    pub(super) fn revoke(
        &mut self,
        kind: u8,
        id: [u8; 16],
        owner: &str,
        until: i64,
        now: i64,
        caps: Caps,
    ) -> Result<(), Engine> {
        let entry = key(&[&time(until), &[kind], &id]);
        self.revoked.insert(entry.as_slice(), owner.as_bytes())?;
        let user = user_prefix(owner);
        self.revoked_by_user
            .insert(key(&[&user, &entry]).as_slice(), [].as_slice())?;
        self.dirty = true;
        let own = keys(
            &self.revoked_by_user,
            &key(&[&user, &[0; 25]]),
            &key(&[&user, &[0xff; 25]]),
            caps.revocations_per_user + 1,
        )?;
        if own.len() > caps.revocations_per_user {
            self.collapse(owner, now)?;
        }
        while self.revoked.len()? > caps.revocations {
            match self.largest_revoker()? {
                Some(largest) => self.collapse(&largest, now)?,
                // Only entries of format 1, without owners: the one
                // expiring first goes, as that format did.
                None => {
                    if self.revoked.pop_first()?.is_none() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Replaces `owner`'s entries with their mark: every token issued to
    /// them up to `now`, until the latest entry's end.
    pub(super) fn collapse(&mut self, owner: &str, now: i64) -> Result<(), Engine> {
        let user = user_prefix(owner);
        let own = keys(
            &self.revoked_by_user,
            &key(&[&user, &[0; 25]]),
            &key(&[&user, &[0xff; 25]]),
            usize::MAX,
        )?;
        let mut latest = now;
        for by_user in &own {
            let entry = &by_user[user.len()..];
            let (until, _, _) = unrevoked(entry)?;
            latest = latest.max(until);
            self.revoked.remove(entry)?;
            self.revoked_by_user.remove(by_user.as_slice())?;
        }
        self.mark(owner, now, latest)
    }

    /// Sets or widens `owner`'s mark: the later of each bound.
    pub(super) fn mark(&mut self, owner: &str, issued: i64, until: i64) -> Result<(), Engine> {
        let before = match self.marks.get(owner.as_bytes())? {
            Some(mark) => Some(unmark(mark.value())?),
            None => None,
        };
        let (issued, until) =
            before.map_or((issued, until), |(i, u)| (i.max(issued), u.max(until)));
        self.marks.insert(
            owner.as_bytes(),
            key(&[&time(issued), &time(until)]).as_slice(),
        )?;
        self.dirty = true;
        Ok(())
    }

    /// Removes every session (see [`FORMAT_1`]); revocations stay.
    pub(super) fn end_every_session(&mut self) -> Result<u64, Engine> {
        let ended = self.sessions.len()?;
        while self.sessions.pop_first()?.is_some() {}
        while self.by_expiry.pop_first()?.is_some() {}
        while self.by_user.pop_first()?.is_some() {}
        self.dirty = true;
        Ok(ended)
    }

    /// The user holding the most entries, if any entry has an owner. A
    /// scan, made only when all entries pass their cap: each collapse then
    /// frees a user's entries for the next additions.
    fn largest_revoker(&self) -> Result<Option<String>, Engine> {
        let mut largest: Option<(usize, Vec<u8>)> = None;
        let mut run: Option<(usize, Vec<u8>)> = None;
        for entry in self.revoked_by_user.iter()? {
            let entry = entry?;
            let k = entry.0.value();
            let bad = || damaged("a revocation's owner");
            let (length, rest) = k.split_first_chunk::<4>().ok_or_else(bad)?;
            let length = usize::try_from(u32::from_be_bytes(*length)).map_err(|_| bad())?;
            let owner = rest.get(..length).ok_or_else(bad)?;
            match &mut run {
                Some((n, name)) if name.as_slice() == owner => *n += 1,
                _ => {
                    if let Some(done) = run.take() {
                        if largest.as_ref().is_none_or(|(n, _)| done.0 > *n) {
                            largest = Some(done);
                        }
                    }
                    run = Some((1, owner.to_vec()));
                }
            }
        }
        if let Some(done) = run {
            if largest.as_ref().is_none_or(|(n, _)| done.0 > *n) {
                largest = Some(done);
            }
        }
        largest.map(|(_, owner)| name(&owner)).transpose()
    }

    /// Removes the marks that have ended: a scan of one per user who ever
    /// passed a cap, made when the store is opened.
    pub(super) fn purge_marks(&mut self, now: i64) -> Result<(), Engine> {
        let mut ended = Vec::new();
        for entry in self.marks.iter()? {
            let (owner, mark) = entry?;
            if unmark(mark.value())?.1 <= now {
                ended.push(owner.value().to_vec());
            }
        }
        for owner in ended {
            self.marks.remove(owner.as_slice())?;
            self.dirty = true;
        }
        Ok(())
    }

    /// Removes at most `limit` expired sessions and as many expired
    /// revocations.
    pub(super) fn purge(&mut self, now: i64, limit: usize) -> Result<(), Engine> {
        // The empty key is the first of all.
        let to = key(&[&time(now), &[0xff; 16]]);
        for expired in keys(&self.by_expiry, &[], &to, limit)? {
            self.remove(SessionId(id_at_end(&expired)?))?;
        }
        let to = key(&[&time(now), &[0xff; 17]]);
        for expired in keys(&self.revoked, &[], &to, limit)? {
            let owner = self
                .revoked
                .remove(expired.as_slice())?
                .map(|o| o.value().to_vec());
            if let Some(owner) = owner.filter(|o| !o.is_empty()) {
                let user = user_prefix(&name(&owner)?);
                self.revoked_by_user
                    .remove(key(&[&user, &expired]).as_slice())?;
            }
            self.dirty = true;
        }
        Ok(())
    }
}
