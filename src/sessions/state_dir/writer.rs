//! The store's write path: group commit. One thread, the writer, owns every
//! write transaction. A call ([`StateDirSessions::submit`]) queues its
//! operation with a channel for the answer and waits; the writer takes
//! whatever is queued (up to [`MAX_BATCH`]), applies it in order in one
//! transaction, commits and `fsync`s once, and only then answers each. So
//! operations that arrive together share one `fsync`, and each is still on
//! disk before its caller hears back: what answered 200 survives `kill -9`.
//! Alone, an operation is one transaction as before; at 32 clients a commit
//! holds up to 32, and the rate is no longer the disk's `fsync` rate.
//! A batch's expired entries are purged once, before its operations
//! ([`purge`]), not by each of them.
//!
//! Each operation's answer (advanced, reused, unknown) is computed inside
//! the transaction, after those queued before it, so the compare-and-advance
//! stays atomic: of two refreshes with one token, the second sees the first's
//! move. A refusal is an answer, not an error, and touches no other
//! operation. An engine error while applying one (a row that does not
//! read) aborts the transaction, and each operation of the batch is then
//! run alone, so only the one at fault fails; a failed commit fails the
//! whole batch, each as a [`StoreError`] (503), never as a wrong token.
//!
//! The queue is bounded ([`QUEUE`]): past it, callers wait for room
//! (backpressure), and memory stays bounded whatever the load.

use super::schema::{id_at_end, key, keys, user_prefix, write, Engine, Tables, SESSION, TOKEN};
use super::{Caps, Inner, StateDirSessions};
use crate::clock::unix_now;
use crate::sessions::{Advance, Session, SessionId, StoreFuture, TokenId};
use crate::users::StoreError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Operations waiting for the writer, at most: past it, a caller waits
/// for room. Each holds at most a session (a few hundred bytes).
pub(super) const QUEUE: usize = 1024;

/// Operations in one transaction, at most: a commit's size stays bounded
/// (its pages, its time), and those queued past it go in the next.
pub(super) const MAX_BATCH: usize = 256;

/// A write, as queued.
#[derive(Debug)]
pub(super) enum Op {
    Create(Session),
    Advance {
        id: SessionId,
        from: u32,
        now: i64,
        retry_until: i64,
        revoke_until: i64,
    },
    RevokeSession {
        id: SessionId,
        owner: String,
        until: i64,
    },
    EndSessionsOf {
        username: String,
        until: i64,
    },
    RevokeToken {
        id: TokenId,
        owner: String,
        until: i64,
    },
}

/// What a write answers.
#[derive(Debug)]
pub(super) enum Done {
    Nothing,
    Advance(Advance),
    Ended(Vec<SessionId>),
}

/// An operation and where its answer goes.
pub(super) struct Job {
    op: Op,
    answer: oneshot::Sender<Result<Done, StoreError>>,
}

/// The queue's end the store holds, and the writer thread.
pub(super) struct Writer {
    pub(super) queue: Option<mpsc::Sender<Job>>,
    pub(super) thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread over `inner`'s file.
    pub(super) fn start(inner: Arc<Inner>) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("state-dir-writer".into())
            .spawn(move || writer(&inner, jobs))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }
}

impl Drop for Writer {
    /// Closes the queue and waits for the writer to commit what was queued
    /// and let go of the file, so that the store can be opened again as
    /// soon as this one is dropped.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl StateDirSessions {
    /// Queues `op` for the writer and waits for its commit.
    pub(super) fn submit(&self, op: Op) -> StoreFuture<'_, Done> {
        Box::pin(async move {
            let stopped = || {
                StoreError::new(format!(
                    "session store {}: its writer has stopped",
                    self.inner.path.display()
                ))
            };
            let queue = self.queue()?;
            let queue = queue.queue.as_ref().ok_or_else(stopped)?;
            let (answer, answered) = oneshot::channel();
            let job = Job { op, answer };
            queue.send(job).await.map_err(|_| stopped())?;
            answered.await.map_err(|_| stopped())?
        })
    }

    /// The writer, started now if this is the first write: after
    /// [`StateDirSessions::revocations_per_user`], which changes the caps
    /// the writer reads.
    fn queue(&self) -> Result<&Writer, StoreError> {
        if let Some(writer) = self.writer.get() {
            return Ok(writer);
        }
        let started = Writer::start(Arc::clone(&self.inner)).map_err(|e| {
            StoreError::new(format!(
                "session store {}: cannot start its writer: {e}",
                self.inner.path.display()
            ))
        })?;
        // Of two first writes at once, one's writer is kept; the other's
        // stops at once, its queue empty.
        let _ = self.writer.set(started);
        self.writer
            .get()
            .ok_or_else(|| StoreError::new("session store: no writer"))
    }

    /// Operations submitted so far: queued for the writer, or taken by it.
    #[cfg(test)]
    pub(super) fn submitted(&self) -> usize {
        let queued = self
            .writer
            .get()
            .and_then(|w| w.queue.as_ref())
            .map_or(0, |q| q.max_capacity() - q.capacity());
        queued + self.inner.taken.load(Ordering::Relaxed) as usize
    }
}

/// The writer's loop: a batch of what is queued, one commit, the answers;
/// until the store is dropped.
fn writer(inner: &Inner, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        inner.taken.fetch_add(batch.len() as u64, Ordering::Relaxed);
        // A panic in the engine fails its batch (the answers' senders are
        // dropped: a store error each), not every write after it.
        let _ = catch_unwind(AssertUnwindSafe(|| commit(inner, &mut batch)));
        batch.clear();
    }
}

/// Applies `batch` in one transaction and answers each job.
fn commit(inner: &Inner, batch: &mut Vec<Job>) {
    let mut applied = false;
    let outcome = write(&inner.db, |t| {
        purge(t, batch.iter().map(|job| &job.op))?;
        let done = batch
            .iter()
            .map(|job| apply(t, &job.op, inner.caps))
            .collect::<Result<Vec<_>, _>>()?;
        applied = true;
        Ok(done)
    });
    match outcome {
        Ok(done) => {
            inner.commits.fetch_add(1, Ordering::Relaxed);
            for (job, done) in batch.drain(..).zip(done) {
                let _ = job.answer.send(Ok(done));
            }
        }
        // One operation's error: each alone, so that only it fails.
        Err(_) if !applied && batch.len() > 1 => {
            for job in batch.drain(..) {
                let alone = write(&inner.db, |t| {
                    purge(t, [&job.op])?;
                    apply(t, &job.op, inner.caps)
                });
                if alone.is_ok() {
                    inner.commits.fetch_add(1, Ordering::Relaxed);
                }
                let _ = job.answer.send(alone.map_err(|e| failed(inner, &e)));
            }
        }
        Err(e) => {
            for job in batch.drain(..) {
                let _ = job.answer.send(Err(failed(inner, &e)));
            }
        }
    }
}

/// An engine error as the callers see it: it names the file, not the
/// session.
pub(super) fn failed(inner: &Inner, e: &Engine) -> StoreError {
    StoreError::new(format!("session store {}: {e}", inner.path.display()))
}

/// The batch's purge, before its operations: each login and refresh
/// purges up to [`super::PURGE_BATCH`] expired sessions and as many
/// revocations, as if each did before itself, but in one pass (two range
/// reads a batch, not two an operation). Expired as of the earliest
/// `now` among them, so that none of them finds gone a session that was
/// still live at its own time.
fn purge<'a>(t: &mut Tables<'_>, ops: impl IntoIterator<Item = &'a Op>) -> Result<(), Engine> {
    let (mut earliest, mut writes) = (i64::MAX, 0);
    for op in ops {
        let now = match *op {
            Op::Create(ref session) => session.created,
            Op::Advance { now, .. } => now,
            _ => continue,
        };
        earliest = earliest.min(now);
        writes += 1;
    }
    if writes > 0 {
        t.purge(earliest, super::PURGE_BATCH * writes)?;
    }
    Ok(())
}

/// One operation, inside the batch's transaction (after [`purge`]).
fn apply(t: &mut Tables<'_>, op: &Op, caps: Caps) -> Result<Done, Engine> {
    match *op {
        Op::Create(ref session) => {
            t.insert(session, caps)?;
            Ok(Done::Nothing)
        }
        Op::Advance {
            id,
            from,
            now,
            retry_until,
            revoke_until,
        } => {
            // The check and the move in one transaction, after every write
            // queued before it: a second refresh with the same token sees
            // the counter already moved.
            let Some(mut session) = t.get(id)? else {
                return Ok(Done::Advance(Advance::Unknown));
            };
            let outcome = session.rotate(from, now, retry_until);
            match outcome {
                Advance::Advanced | Advance::Retried => t.put(&session)?,
                Advance::Reused => {
                    // Removed and recorded as revoked in one commit: a
                    // crash cannot leave the reuse half answered.
                    t.remove(session.id)?;
                    let owner = &session.username;
                    t.revoke(SESSION, id.0, owner, revoke_until, now, caps)?;
                }
                Advance::Unknown => {}
            }
            Ok(Done::Advance(outcome))
        }
        Op::RevokeSession {
            id,
            ref owner,
            until,
        } => {
            t.remove(id)?;
            t.revoke(SESSION, id.0, owner, until, unix_now(), caps)?;
            Ok(Done::Nothing)
        }
        Op::EndSessionsOf {
            ref username,
            until,
        } => {
            let user = user_prefix(username);
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
                    t.revoke(SESSION, id.0, username, until, unix_now(), caps)?;
                    ended.push(id);
                }
            }
            Ok(Done::Ended(ended))
        }
        Op::RevokeToken {
            id,
            ref owner,
            until,
        } => {
            t.revoke(TOKEN, id.0, owner, until, unix_now(), caps)?;
            Ok(Done::Nothing)
        }
    }
}
