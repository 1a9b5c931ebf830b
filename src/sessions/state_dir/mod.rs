//! Sessions on disk (`--state-dir`, the `state-dir` feature): the
//! [`SessionStore`] whose sessions and revocations survive a restart, a
//! crash and `kill -9`. Its semantics are [`MemorySessions`]'s, plus
//! durability.
//!
//! The file (`DIR/sessions.redb`) is kept by redb, an embedded storage
//! engine in pure Rust: copy-on-write B-trees, two commit slots, checksums
//! on every page. Writes are committed by one thread, the writer, in
//! groups (see `writer`): the writes queued while the previous commit was
//! on its way share one transaction and one `fsync`
//! ([`Durability::Immediate`]), and each write's future resolves only after
//! the commit that holds it. So a session or a revocation that answered 200
//! is on disk, and a crash at any point leaves the last committed state
//! (the next open checks the checksums and repairs the allocator). Each
//! counter's compare-and-advance is applied inside that transaction after
//! the writes queued before it, one at a time, so two refreshes with one
//! token cannot both advance. Writes, the engine's blocking I/O, run on the
//! writer thread; a read ([`SessionStore::get`]) runs where it is called,
//! as it reads pages at hand (see there).
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
//! by every login and refresh (once a commit, for all those it holds: see
//! `writer`); expired marks when the store is opened.
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
//! [`MemorySessions`]: crate::sessions::memory::MemorySessions
//! [`Durability::Immediate`]: redb::Durability::Immediate

use crate::sessions::memory::{DEFAULT_MAX_PER_USER, DEFAULT_MAX_SESSIONS};
use crate::sessions::{
    Advance, Revocation, Session, SessionId, SessionStore, StoreFuture, TokenId,
    MAX_REVOCATIONS_PER_USER,
};
mod schema;
mod writer;

use crate::clock::unix_now;
use crate::users::StoreError;
use redb::{Database, ReadableTable, ReadableTableMetadata};
use schema::*;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use writer::{Done, Op, Writer};

/// The file the store keeps in its directory.
pub const FILE_NAME: &str = "sessions.redb";

/// The default cap on revocations kept, as `Config::max_revocations`'s.
pub const DEFAULT_MAX_REVOCATIONS: usize = 100_000;

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

/// Sessions and revocations in a file (see the module's header).
pub struct StateDirSessions {
    /// Shared with the writer thread and the blocking tasks of reads.
    inner: Arc<Inner>,
    /// The write path: the queue to the writer thread (see [`writer`]),
    /// started by the first write. Dropped with the store, which waits for
    /// the writer to finish.
    writer: OnceLock<Writer>,
    /// What was revoked and in force when the store was opened, with the
    /// owners, for [`SessionStore::revocations`]. A std mutex: touched
    /// once, at start.
    loaded: Mutex<Vec<(Revocation, Option<String>)>>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    caps: Caps,
    /// Write transactions the writer committed: fewer than the writes
    /// when they shared commits.
    commits: AtomicU64,
    /// Writes the writer has taken from its queue.
    taken: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Caps {
    sessions: u64,
    per_user: usize,
    revocations: u64,
    revocations_per_user: usize,
}

impl fmt::Debug for StateDirSessions {
    // The path and the caps; nothing the file holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateDirSessions")
            .field("path", &self.inner.path)
            .field("caps", &self.inner.caps)
            .finish_non_exhaustive()
    }
}

/// Why [`StateDirSessions::open`] failed; its text names the path.
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

impl StateDirSessions {
    /// Opens the store in `dir` with the default caps, creating the
    /// directory (mode 0700) and the file (0600: it holds the sessions'
    /// secrets) if needed.
    pub fn open(dir: &Path) -> Result<StateDirSessions, OpenError> {
        StateDirSessions::open_bounded(
            dir,
            DEFAULT_MAX_SESSIONS,
            DEFAULT_MAX_PER_USER,
            DEFAULT_MAX_REVOCATIONS,
        )
    }

    /// [`StateDirSessions::open`] with at most `max_sessions` sessions,
    /// `max_per_user` per user and `max_revocations` revocations (each at
    /// least 1). Lowered caps apply as new entries arrive.
    pub fn open_bounded(
        dir: &Path,
        max_sessions: usize,
        max_per_user: usize,
        max_revocations: usize,
    ) -> Result<StateDirSessions, OpenError> {
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
        Ok(StateDirSessions {
            inner: Arc::new(Inner {
                db,
                path,
                caps,
                commits: AtomicU64::new(0),
                taken: AtomicU64::new(0),
            }),
            writer: OnceLock::new(),
            loaded: Mutex::new(loaded),
        })
    }

    /// This store with at most `n` revocations of one user (at least 1;
    /// default [`MAX_REVOCATIONS_PER_USER`]) before they collapse into one
    /// mark, as `Config::max_revocations_per_user` for the deny-list. For a
    /// store just opened (it is shared afterwards, and then unchanged).
    pub fn revocations_per_user(mut self, n: usize) -> StateDirSessions {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.caps.revocations_per_user = n.max(1);
        }
        self
    }

    /// The file the store is kept in.
    pub fn path(&self) -> &Path {
        &self.inner.path
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

impl SessionStore for StateDirSessions {
    fn create(&self, session: Session) -> StoreFuture<'_, ()> {
        let done = self.submit(Op::Create(session));
        Box::pin(async move { done.await.map(drop) })
    }

    fn get(&self, id: SessionId, now: i64) -> StoreFuture<'_, Option<Session>> {
        // On the caller's thread: a read transaction waits for no writer,
        // and reads pages that redb's cache (or the OS's) holds, in a few
        // microseconds (a page in neither is one read of the file). A hop to a blocking thread and back cost more than
        // the read: two context switches, and the server's CPU per refresh
        // went from 70 to 43 us (`benches/load.sh refresh`, 32 clients).
        let inner = &self.inner;
        let found = (|| -> Result<Option<Session>, Engine> {
            let txn = inner.db.begin_read()?;
            let table = txn.open_table(SESSIONS)?;
            let found = match table.get(id.0.as_slice())? {
                Some(bytes) => Some(unrow(id, bytes.value())?),
                None => None,
            };
            Ok(found.filter(|s| now < s.expires))
        })();
        Box::pin(std::future::ready(
            found.map_err(|e| writer::failed(inner, &e)),
        ))
    }

    fn advance(
        &self,
        id: SessionId,
        from: u32,
        now: i64,
        retry_until: i64,
        revoke_until: i64,
    ) -> StoreFuture<'_, Advance> {
        let done = self.submit(Op::Advance {
            id,
            from,
            now,
            retry_until,
            revoke_until,
        });
        Box::pin(async move {
            match done.await? {
                Done::Advance(outcome) => Ok(outcome),
                _ => Err(StoreError::new("session store: a mismatched answer")),
            }
        })
    }

    fn revoke_session(&self, id: SessionId, owner: &str, until: i64) -> StoreFuture<'_, ()> {
        let owner = owner.to_owned();
        let done = self.submit(Op::RevokeSession { id, owner, until });
        Box::pin(async move { done.await.map(drop) })
    }

    fn end_sessions_of(&self, username: String, until: i64) -> StoreFuture<'_, Vec<SessionId>> {
        let done = self.submit(Op::EndSessionsOf { username, until });
        Box::pin(async move {
            match done.await? {
                Done::Ended(ended) => Ok(ended),
                _ => Err(StoreError::new("session store: a mismatched answer")),
            }
        })
    }

    fn revoke_token(&self, id: TokenId, owner: &str, until: i64) -> StoreFuture<'_, ()> {
        let owner = owner.to_owned();
        let done = self.submit(Op::RevokeToken { id, owner, until });
        Box::pin(async move { done.await.map(drop) })
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
mod tests;
