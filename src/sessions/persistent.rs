//! Sessions on disk (`--state-dir`, the `persist` feature): the
//! [`SessionStore`] whose sessions and revocations survive a restart, a
//! crash and `kill -9`. Its semantics are [`MemorySessions`]'s, plus
//! durability.
//!
//! The file (`DIR/sessions.redb`) is kept by redb, an embedded storage
//! engine in pure Rust: copy-on-write B-trees, two commit slots, checksums
//! on every page. Each write is one transaction, committed and `fsync`'d
//! before its future resolves ([`Durability::Immediate`]): a session or a
//! revocation that answered 200 is on disk, and a crash at any point leaves
//! the last committed state (the next open checks the checksums and repairs
//! the allocator). The counter's compare-and-advance is one write
//! transaction, and redb runs one write transaction at a time, so two
//! refreshes with one token cannot both advance. The engine's work is
//! blocking I/O: it runs on tokio's blocking threads, never on the runtime.
//!
//! The file is opened with an exclusive lock (`flock`), so a second server on
//! the same directory fails to start instead of sharing the file; the lock
//! goes with the process, `kill -9` included.
//!
//! # What bounds the file
//!
//! The same caps as in memory: at most `max_sessions` sessions (default
//! 100,000), `max_per_user` of one user (default 32), and `max_revocations`
//! revocations (default 100,000, the deny-list's own cap). A new session over
//! a user's cap removes that user's oldest; over the total cap, the one
//! expiring first. Revocations are never dropped (see `Revocations` in the
//! parent module): each is kept with its owner, and a user past
//! [`MAX_REVOCATIONS_PER_USER`] entries (or holding the most when all
//! entries pass `max_revocations`) has them replaced, in the same commit,
//! by one mark, every token issued to that user until then, which is what
//! the deny-list does too; so the file holds at most `max_revocations`
//! entries plus a mark per user, and a restart loads each with its owner.
//! Expired entries are purged when the store is opened, and a few at a time
//! by every login and refresh; expired marks when the store is opened.
//! redb reuses freed pages, and at open a file more than half free (and over
//! 2 MiB) is compacted, so it stays near the size of its live entries at
//! their peak. Measured (9-byte usernames): an empty store is under 1 MB,
//! 100,000 sessions take 34 MB (a longer username adds twice its length to
//! its session: the row and the per-user index), 100,000 revocations 9 MB
//! in format 1 (format 2 keeps each one's owner twice too, in its row and
//! the per-user index).
//! Opening a file at the caps takes about 30 ms (release build), 70 ms
//! after a `kill -9` (redb then checks every page's checksum and rebuilds
//! its allocator).
//!
//! [`MemorySessions`]: super::memory::MemorySessions

use super::memory::{DEFAULT_MAX_PER_USER, DEFAULT_MAX_SESSIONS};
use super::{
    Advance, Revocation, Session, SessionId, SessionStore, StoreFuture, TokenId,
    MAX_REVOCATIONS_PER_USER,
};
use crate::clock::unix_now;
use crate::users::StoreError;
use redb::{
    Database, Durability, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    WriteTransaction,
};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The file the store keeps in its directory.
pub const FILE_NAME: &str = "sessions.redb";

/// The default cap on revocations kept, as `Config::max_revocations`'s.
pub const DEFAULT_MAX_REVOCATIONS: usize = 100_000;

/// The layout of the tables below. Stored in the file; a file of another
/// layout is refused at open rather than misread, except format 1 (see
/// [`FORMAT_1`]).
const FORMAT: u64 = 2;

/// The format before sessions kept their password fingerprint and retry
/// window, and revocations their owners. Opened, its sessions are ended
/// (their refresh tokens get `invalid_grant`: log in again; their access
/// tokens live until they expire), since nothing says which password each
/// was started with; its revocations are kept, without an owner until they
/// expire (within one token lifetime), and the file becomes [`FORMAT`].
const FORMAT_1: u64 = 1;

/// Expired entries purged by one login or refresh, at most: each write adds
/// at most one entry, so expired ones cannot pile up, and no request pays
/// for a large purge.
const PURGE_BATCH: usize = 16;

/// The size below which the file is not compacted at open: a new store's
/// file is about 1 MB, and a small file is not worth the time.
const COMPACT_ABOVE: u64 = 2 << 20;

/// redb's page cache. The file is read through the OS's cache anyway; this
/// keeps the B-trees' upper pages at hand without raising the server's RSS
/// (redb's default allows 1 GiB).
const CACHE_BYTES: usize = 4 << 20;

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
const SESSIONS: Bytes = TableDefinition::new("sessions");

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
const REVOKED: Bytes = TableDefinition::new("revoked");

/// What was revoked by owner (its length, 4 bytes, then itself) and then
/// the [`REVOKED`] key, valued nothing: to count and collapse a user's.
const REVOKED_BY_USER: Bytes = TableDefinition::new("revoked_by_user");

/// Each collapsed user's mark, by name: the latest `iat` covered and its
/// end (8 bytes each).
const MARKS: Bytes = TableDefinition::new("revoked_users");
const SESSION: u8 = 0;
const TOKEN: u8 = 1;

/// A time as a key part: big-endian, sign bit flipped, so that byte order
/// is numeric order.
fn time(t: i64) -> [u8; 8] {
    (t as u64 ^ (1 << 63)).to_be_bytes()
}

fn untime(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// What the file holds does not read: only a file written by something else
/// with a valid checksum gets here.
fn damaged(what: &str) -> Engine {
    Engine(Box::new(redb::Error::Corrupted(format!(
        "{what} does not read"
    ))))
}

/// The last 16 bytes of an index key: the id.
fn id_at_end(key: &[u8]) -> Result<[u8; 16], Engine> {
    key.last_chunk()
        .copied()
        .ok_or_else(|| damaged("an index key"))
}

/// A [`REVOKED`] key: `until`, kind and id.
fn unrevoked(key: &[u8]) -> Result<(i64, u8, [u8; 16]), Engine> {
    let bad = || damaged("a revocation");
    let (until, rest) = key.split_first_chunk().ok_or_else(bad)?;
    let (kind, id) = rest.split_first().ok_or_else(bad)?;
    let id: [u8; 16] = id.try_into().map_err(|_| bad())?;
    Ok((untime(*until), *kind, id))
}

/// A [`SESSIONS`] row.
fn row(session: &Session) -> Vec<u8> {
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
fn unrow(id: SessionId, bytes: &[u8]) -> Result<Session, Engine> {
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
fn user_prefix(username: &str) -> Vec<u8> {
    let length = u32::try_from(username.len()).unwrap_or(u32::MAX);
    key(&[&length.to_be_bytes(), username.as_bytes()])
}

/// redb's error, boxed: its 160 bytes would ride along every `Result` here.
#[derive(Debug)]
struct Engine(Box<redb::Error>);

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

/// Sessions and revocations in a file (see the module's header).
pub struct PersistentSessions {
    /// Shared with the blocking tasks each operation runs in.
    inner: Arc<Inner>,
    /// What was revoked and in force when the store was opened, with the
    /// owners, for [`SessionStore::revocations`]. A std mutex: touched
    /// once, at start.
    loaded: Mutex<Vec<(Revocation, Option<String>)>>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    caps: Caps,
}

#[derive(Debug, Clone, Copy)]
struct Caps {
    sessions: u64,
    per_user: usize,
    revocations: u64,
    revocations_per_user: usize,
}

impl fmt::Debug for PersistentSessions {
    // The path and the caps; nothing the file holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistentSessions")
            .field("path", &self.inner.path)
            .field("caps", &self.inner.caps)
            .finish_non_exhaustive()
    }
}

/// Why [`PersistentSessions::open`] failed; its text names the path.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process (or this one) has the store open: one server per
    /// state directory.
    InUse(PathBuf),
    /// The path is there but is not a directory.
    NotADirectory(PathBuf),
    /// The directory or the file could not be created or opened.
    Io(PathBuf, io::Error),
    /// The file is not a store of this format, or is damaged beyond what
    /// redb repairs.
    Invalid(PathBuf, String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::InUse(path) => write!(
                f,
                "{} is in use by another process (one server per state directory)",
                path.display()
            ),
            OpenError::NotADirectory(path) => write!(f, "{} is not a directory", path.display()),
            OpenError::Io(path, e) => write!(f, "cannot create or open {}: {e}", path.display()),
            OpenError::Invalid(path, why) => write!(f, "{}: {why}", path.display()),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

impl PersistentSessions {
    /// Opens the store in `dir` with the default caps, creating the
    /// directory (mode 0700) and the file (0600: it holds the sessions'
    /// secrets) if needed.
    pub fn open(dir: &Path) -> Result<PersistentSessions, OpenError> {
        PersistentSessions::open_bounded(
            dir,
            DEFAULT_MAX_SESSIONS,
            DEFAULT_MAX_PER_USER,
            DEFAULT_MAX_REVOCATIONS,
        )
    }

    /// [`PersistentSessions::open`] with at most `max_sessions` sessions,
    /// `max_per_user` per user and `max_revocations` revocations (each at
    /// least 1). Lowered caps apply as new entries arrive.
    pub fn open_bounded(
        dir: &Path,
        max_sessions: usize,
        max_per_user: usize,
        max_revocations: usize,
    ) -> Result<PersistentSessions, OpenError> {
        let caps = Caps {
            sessions: max_sessions.max(1) as u64,
            per_user: max_per_user.max(1),
            revocations: max_revocations.max(1) as u64,
            revocations_per_user: MAX_REVOCATIONS_PER_USER,
        };
        let path = dir.join(FILE_NAME);
        let io_error = |at: &Path| {
            let at = at.to_owned();
            move |e| OpenError::Io(at, e)
        };
        if dir.exists() && !dir.is_dir() {
            return Err(OpenError::NotADirectory(dir.to_owned()));
        }
        create_dir(dir).map_err(io_error(dir))?;
        let existed = path.exists();
        let file = create_file(&path).map_err(io_error(&path))?;
        let invalid = |e: &dyn fmt::Display| OpenError::Invalid(path.clone(), e.to_string());
        let mut db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            // The format redb 3 reads, so that a later upgrade of the
            // engine keeps the file.
            .create_with_file_format_v3(true)
            .create_file(file)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse(path.clone()),
                // What redb says of a file that is not one of its own.
                redb::DatabaseError::Storage(redb::StorageError::Io(e))
                    if e.kind() == io::ErrorKind::InvalidData =>
                {
                    OpenError::Invalid(path.clone(), "not a session store, or damaged".into())
                }
                redb::DatabaseError::Storage(redb::StorageError::Io(e)) => {
                    OpenError::Io(path.clone(), e)
                }
                e => invalid(&e),
            })?;
        if !existed {
            // The new file's name is durable only once its directory is.
            sync_dir(dir).map_err(io_error(dir))?;
        }
        let now = unix_now();
        let mut ended = None;
        let found = write(&db, |t| {
            // Not 8 bytes: not a format this build knows (0).
            let found = t
                .meta
                .get(b"format".as_slice())?
                .map(|v| v.value().try_into().map_or(0, u64::from_be_bytes));
            if found == Some(FORMAT_1) {
                ended = Some(t.end_every_session()?);
            }
            if found.is_none_or(|f| f == FORMAT_1) {
                // A new file (its tables are created by this commit), or
                // one of format 1, now of this format.
                t.meta
                    .insert(b"format".as_slice(), FORMAT.to_be_bytes().as_slice())?;
                t.dirty = true;
            }
            let found = found.map(|f| if f == FORMAT_1 { FORMAT } else { f });
            if found.is_none_or(|f| f == FORMAT) {
                t.purge(now, usize::MAX)?;
                t.purge_marks(now)?;
            }
            Ok(found)
        })
        .map_err(|e| invalid(&e))?;
        if let Some(ended) = ended {
            crate::logging::emit(
                crate::logging::SERVER_WARN,
                format_args!(
                    "password-bearer: {}: a store of format 1, now of format {FORMAT}: its \
                     {ended} sessions were ended (their users log in again), its revocations kept",
                    path.display()
                ),
            );
        }
        if let Some(other) = found.filter(|&f| f != FORMAT) {
            return Err(OpenError::Invalid(
                path,
                format!("a store of format {other}; this build reads format {FORMAT}"),
            ));
        }
        // Gives the file's free pages back when they are most of it: redb
        // reuses them anyway, so this only shrinks a file after a peak.
        // (Compacting needs no reader open, as none is yet.)
        let len = fs::metadata(&path).map_err(io_error(&path))?.len();
        let free = len.saturating_sub(used_bytes(&db).map_err(|e| invalid(&e))?);
        if len > COMPACT_ABOVE && free > len / 2 {
            // One pass may leave pages that a second can move: until none.
            while db.compact().map_err(|e| invalid(&e))? {}
        }
        let loaded = load_revocations(&db, now).map_err(|e| invalid(&e))?;
        Ok(PersistentSessions {
            inner: Arc::new(Inner { db, path, caps }),
            loaded: Mutex::new(loaded),
        })
    }

    /// This store with at most `n` revocations of one user (at least 1;
    /// default [`MAX_REVOCATIONS_PER_USER`]) before they collapse into one
    /// mark, as `Config::max_revocations_per_user` for the deny-list. For a
    /// store just opened (it is shared afterwards, and then unchanged).
    pub fn revocations_per_user(mut self, n: usize) -> PersistentSessions {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.caps.revocations_per_user = n.max(1);
        }
        self
    }

    /// The file the store is kept in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `op` on a blocking thread; its engine errors become
    /// [`StoreError`]s naming the file.
    fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Inner) -> Result<T, Engine> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                op(&inner).map_err(|e| {
                    StoreError::new(format!("session store {}: {e}", inner.path.display()))
                })
            })
            .await
            .map_err(|e| StoreError::new(format!("session store: {e}")))?
        })
    }

    /// Sessions and revocations held now, expired ones included until they
    /// are purged.
    #[cfg(test)]
    fn counts(&self) -> (u64, u64) {
        let txn = self.inner.db.begin_read().unwrap();
        let sessions = txn.open_table(SESSIONS).unwrap().len().unwrap();
        let revoked = txn.open_table(REVOKED).unwrap().len().unwrap();
        (sessions, revoked)
    }
}

/// The directory, owner-only when this creates it.
fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The file, owner-only when this creates it; never truncated.
fn create_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// The bytes of the file's pages in use.
fn used_bytes(db: &Database) -> Result<u64, Engine> {
    let txn = db.begin_write()?;
    let stats = txn.stats()?;
    txn.abort()?;
    Ok(stats.allocated_pages() * stats.page_size() as u64)
}

/// What is revoked and in force at `now`, with the owners.
fn load_revocations(db: &Database, now: i64) -> Result<Vec<(Revocation, Option<String>)>, Engine> {
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
fn name(bytes: &[u8]) -> Result<String, Engine> {
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
struct Tables<'txn> {
    meta: Table<'txn, &'static [u8], &'static [u8]>,
    sessions: Table<'txn, &'static [u8], &'static [u8]>,
    by_expiry: Table<'txn, &'static [u8], &'static [u8]>,
    by_user: Table<'txn, &'static [u8], &'static [u8]>,
    revoked: Table<'txn, &'static [u8], &'static [u8]>,
    revoked_by_user: Table<'txn, &'static [u8], &'static [u8]>,
    marks: Table<'txn, &'static [u8], &'static [u8]>,
    dirty: bool,
}

/// Runs `op` in one write transaction: committed and `fsync`'d when it
/// changed something, dropped (no disk write) when it did not.
fn write<T>(
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
fn keys(
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
    fn open(txn: &'txn WriteTransaction) -> Result<Tables<'txn>, Engine> {
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

    fn get(&self, id: SessionId) -> Result<Option<Session>, Engine> {
        match self.sessions.get(id.0.as_slice())? {
            Some(bytes) => unrow(id, bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    fn put(&mut self, session: &Session) -> Result<(), Engine> {
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
    fn insert(&mut self, session: &Session, caps: Caps) -> Result<(), Engine> {
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

    fn remove(&mut self, id: SessionId) -> Result<bool, Engine> {
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
    fn revoke(
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
    fn collapse(&mut self, owner: &str, now: i64) -> Result<(), Engine> {
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
    fn mark(&mut self, owner: &str, issued: i64, until: i64) -> Result<(), Engine> {
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
    fn end_every_session(&mut self) -> Result<u64, Engine> {
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
    fn purge_marks(&mut self, now: i64) -> Result<(), Engine> {
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
    fn purge(&mut self, now: i64, limit: usize) -> Result<(), Engine> {
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

impl SessionStore for PersistentSessions {
    fn create(&self, session: Session) -> StoreFuture<'_, ()> {
        self.run(move |inner| {
            write(&inner.db, |t| {
                t.purge(session.created, PURGE_BATCH)?;
                t.insert(&session, inner.caps)
            })
        })
    }

    fn get(&self, id: SessionId, now: i64) -> StoreFuture<'_, Option<Session>> {
        self.run(move |inner| {
            let txn = inner.db.begin_read()?;
            let table = txn.open_table(SESSIONS)?;
            let found = match table.get(id.0.as_slice())? {
                Some(bytes) => Some(unrow(id, bytes.value())?),
                None => None,
            };
            Ok(found.filter(|s| now < s.expires))
        })
    }

    fn advance(
        &self,
        id: SessionId,
        from: u32,
        now: i64,
        retry_until: i64,
        revoke_until: i64,
    ) -> StoreFuture<'_, Advance> {
        self.run(move |inner| {
            write(&inner.db, |t| {
                t.purge(now, PURGE_BATCH)?;
                // The check and the move in one transaction: redb runs one
                // writer at a time, so a second refresh with the same token
                // sees the counter already moved.
                let Some(mut session) = t.get(id)? else {
                    return Ok(Advance::Unknown);
                };
                let outcome = session.rotate(from, now, retry_until);
                match outcome {
                    Advance::Advanced | Advance::Retried => t.put(&session)?,
                    Advance::Reused => {
                        // Removed and recorded as revoked in one commit: a
                        // crash cannot leave the reuse half answered.
                        t.remove(session.id)?;
                        let owner = &session.username;
                        t.revoke(SESSION, id.0, owner, revoke_until, now, inner.caps)?;
                    }
                    Advance::Unknown => {}
                }
                Ok(outcome)
            })
        })
    }

    fn revoke_session(&self, id: SessionId, owner: &str, until: i64) -> StoreFuture<'_, ()> {
        let owner = owner.to_owned();
        self.run(move |inner| {
            write(&inner.db, |t| {
                t.remove(id)?;
                t.revoke(SESSION, id.0, &owner, until, unix_now(), inner.caps)
            })
        })
    }

    fn end_sessions_of(&self, username: String, until: i64) -> StoreFuture<'_, Vec<SessionId>> {
        self.run(move |inner| {
            write(&inner.db, |t| {
                let user = user_prefix(&username);
                let own = keys(
                    &t.by_user,
                    &key(&[&user, &[0; 24]]),
                    &key(&[&user, &[0xff; 24]]),
                    usize::MAX,
                )?;
                let mut ended = Vec::with_capacity(own.len());
                for entry in own {
                    let id = SessionId(id_at_end(&entry)?);
                    // Removed and recorded as revoked in one commit.
                    if t.remove(id)? {
                        t.revoke(SESSION, id.0, &username, until, unix_now(), inner.caps)?;
                        ended.push(id);
                    }
                }
                Ok(ended)
            })
        })
    }

    fn revoke_token(&self, id: TokenId, owner: &str, until: i64) -> StoreFuture<'_, ()> {
        let owner = owner.to_owned();
        self.run(move |inner| {
            write(&inner.db, |t| {
                t.revoke(TOKEN, id.0, &owner, until, unix_now(), inner.caps)
            })
        })
    }

    fn revocations(&self, now: i64) -> Vec<(Revocation, Option<String>)> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        loaded.retain(|(r, _)| now < r.until());
        loaded.clone()
    }

    fn session_count(&self) -> Option<u64> {
        // A read transaction and the table's stored length (redb keeps it
        // in the tree's header): no scan, and no wait for a writer.
        let txn = self.inner.db.begin_read().ok()?;
        txn.open_table(SESSIONS).ok()?.len().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory of its own, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "password-bearer-persist-{}-{}",
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

    async fn get(store: &PersistentSessions, id: SessionId, now: i64) -> Option<Session> {
        store.get(id, now).await.unwrap()
    }

    #[tokio::test]
    async fn create_get_advance_and_a_reuse_removes_the_session() {
        let dir = TempDir::new();
        let store = PersistentSessions::open(&dir.0.join("nested")).unwrap();
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
        let store = Arc::new(PersistentSessions::open(&dir.0).unwrap());
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
        let store = PersistentSessions::open(&dir.0).unwrap();
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
            let store = PersistentSessions::open(&dir.0).unwrap();
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
        let store = PersistentSessions::open(&dir.0).unwrap();
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
        let store = PersistentSessions::open(&dir.0).unwrap();
        let size = |store: &PersistentSessions| fs::metadata(store.path()).unwrap().len();
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
        let store = PersistentSessions::open(&dir.0).unwrap();
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
        let store = PersistentSessions::open_bounded(&dir.0, 4, 2, 3).unwrap();
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
        let store = PersistentSessions::open_bounded(&dir.0, 4, 2, 3).unwrap();
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
        let store = PersistentSessions::open(&dir.0)
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
        let store = PersistentSessions::open(&dir.0).unwrap();
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
        let store = PersistentSessions::open(&dir.0).unwrap();
        assert_eq!(store.revocations(t + 1000), []);
    }

    #[tokio::test]
    async fn a_store_of_format_1_is_upgraded_its_revocations_without_owners() {
        let dir = TempDir::new();
        let store = PersistentSessions::open(&dir.0).unwrap();
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
        let store = PersistentSessions::open(&dir.0).unwrap();
        assert_eq!(
            store.revocations(t),
            [(Revocation::Token(id, t + 60), None)]
        );
        store.revoke_token(id, "bob", t + 90).await.unwrap();
        drop(store);
        // Format 2 now, and still readable.
        let store = PersistentSessions::open(&dir.0).unwrap();
        assert_eq!(store.revocations(t).len(), 2);
    }

    #[test]
    fn a_second_open_fails_and_bad_directories_are_named() {
        let dir = TempDir::new();
        let store = PersistentSessions::open(&dir.0).unwrap();
        let err = PersistentSessions::open(&dir.0).unwrap_err();
        assert!(matches!(err, OpenError::InUse(_)), "{err:?}");
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
        assert!(err.to_string().contains(FILE_NAME), "{err}");
        drop(store);
        PersistentSessions::open(&dir.0).expect("the lock went with the store");

        let file = dir.0.join("a-file");
        fs::write(&file, b"x").unwrap();
        let err = PersistentSessions::open(&file).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} is not a directory", file.display())
        );
        let err = PersistentSessions::open(&file.join("below")).unwrap_err();
        assert!(matches!(err, OpenError::Io(..)), "{err:?}");

        let garbage = dir.0.join("garbage");
        fs::create_dir(&garbage).unwrap();
        fs::write(garbage.join(FILE_NAME), [7u8; 8192]).unwrap();
        let err = PersistentSessions::open(&garbage).unwrap_err();
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
        let store = PersistentSessions::open(&dir.0).unwrap();
        write(&store.inner.db, |t| {
            t.meta
                .insert(b"format".as_slice(), (FORMAT + 1).to_be_bytes().as_slice())?;
            t.dirty = true;
            Ok(())
        })
        .unwrap();
        drop(store);
        let err = PersistentSessions::open(&dir.0).unwrap_err();
        assert!(err.to_string().contains("format 3"), "{err}");
    }

    #[tokio::test]
    async fn engine_errors_are_store_errors_naming_the_file_not_the_session() {
        let dir = TempDir::new();
        let store = PersistentSessions::open(&dir.0).unwrap();
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
            let store = PersistentSessions::open(&dir.0).unwrap();
            store.create(s.clone()).await.unwrap();
            assert_eq!(
                store.advance(s.id, 0, t, t + 60, t + 1800).await.unwrap(),
                Advance::Advanced
            );
        }
        // Reopened (a restart): the token whose answer was lost is
        // answered once, then it, or the one before, is a reuse.
        let store = PersistentSessions::open(&dir.0).unwrap();
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
            let store = PersistentSessions::open(&dir.0).unwrap();
            for s in own.iter().chain([&other]) {
                store.create(s.clone()).await.unwrap();
            }
            let ended = store.end_sessions_of("bob".into(), t + 600).await.unwrap();
            assert_eq!(ended.len(), 3);
            assert_eq!(store.counts(), (1, 3));
        }
        let store = PersistentSessions::open(&dir.0).unwrap();
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
            let store = PersistentSessions::open(&dir.0).unwrap();
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
        let store = PersistentSessions::open(&dir.0).unwrap();
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
        let store = PersistentSessions::open(&dir.0).unwrap();
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
}
