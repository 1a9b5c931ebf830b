//! The binary's logger: the library's records (see its `logging` module),
//! one line each on stderr, written by a thread of their own.
//!
//! A request never waits for stderr: a record is formatted on the thread
//! that logs it and handed to the writer thread through a bounded queue. A
//! slow or blocked stderr (a full pipe nobody reads, a stalled terminal)
//! then stalls only that thread; when the queue is full, lines are dropped
//! and counted, and the count is written once the writer catches up.
//! Writing never panics: a closed stderr (a supervisor that went away) must
//! not take a request or the shutdown down with it, as `eprintln!` would.
//!
//! The writer thread starts with the first record, not before: while a
//! process has one thread, glibc skips the cancellation bookkeeping around
//! every system call, about 90 instructions of each request's `recvfrom`,
//! `writev` and `epoll_wait` on a single-worker server
//! (`benches/instructions.sh`). So the binary's own lines before it serves
//! (the startup line, a configuration error) are written at once with
//! [`write_now`], where waiting on stderr stalls no request.

use log::{LevelFilter, Log, Metadata, Record};
use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Lines the writer may be behind by before new ones are dropped: a burst
/// of a few thousand lines is absorbed, and memory stays bounded (a few
/// hundred KiB) whatever stderr does.
const QUEUE_LINES: usize = 4096;

/// Installs the logger for the library's records at `Info` and above.
pub(crate) fn install() {
    static LOGGER: StderrLog = StderrLog;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

/// Writes one line to stderr at once, on this thread, behind anything
/// already queued (see the module's header for when).
pub(crate) fn write_now(args: std::fmt::Arguments<'_>) {
    if WRITER.get() == Some(&true) {
        send(Message::Line(args.to_string()));
    } else {
        write_line(&args.to_string());
    }
}

/// Waits, at most `limit`, until every line queued so far is written. For
/// a program about to exit; a stderr that does not drain in time is given
/// up on.
pub(crate) fn flush(limit: Duration) {
    // Never started: nothing is queued, and nothing needs starting it now.
    if WRITER.get() != Some(&true) {
        return;
    }
    let queue = &QUEUE;
    let deadline = Instant::now() + limit;
    let mut state = queue.lock();
    // Past the queue's bound if need be: one message, once, at exit.
    state.messages.push_back(Message::Flush);
    state.flushes_asked += 1;
    let ticket = state.flushes_asked;
    queue.queued.notify_one();
    while state.flushes_done < ticket {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        state = queue
            .flushed
            .wait_timeout(state, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

struct StderrLog;

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            send(Message::Line(record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

enum Message {
    Line(String),
    Flush,
}

/// The queue between the threads that log and the writer thread. A mutex
/// and condition variables rather than a channel: each use is a push or a
/// swap of the whole queue, and std's channels cost 34 KB more binary.
struct Queue {
    state: Mutex<State>,
    /// Signalled when a message is queued.
    queued: Condvar,
    /// Signalled when a flush is done.
    flushed: Condvar,
}

struct State {
    messages: VecDeque<Message>,
    /// Lines dropped because the queue was full, since the writer last said
    /// so.
    dropped: u64,
    flushes_asked: u64,
    flushes_done: u64,
    /// Whether the writer waits for a message: only then is it woken, so
    /// that a burst of lines costs one wake-up, not a system call each.
    waiting: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics under the lock; a poisoned queue is still a queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

static QUEUE: Queue = Queue {
    state: Mutex::new(State {
        messages: VecDeque::new(),
        dropped: 0,
        flushes_asked: 0,
        flushes_done: 0,
        waiting: false,
    }),
    queued: Condvar::new(),
    flushed: Condvar::new(),
};

/// Whether the writer thread runs: started on first use; if it could not
/// be, lines are written directly.
static WRITER: OnceLock<bool> = OnceLock::new();

fn writer_running() -> bool {
    *WRITER.get_or_init(|| {
        std::thread::Builder::new()
            .name("password-bearer-log".into())
            .spawn(write_messages)
            .is_ok()
    })
}

fn send(message: Message) {
    if !writer_running() {
        if let Message::Line(text) = message {
            write_line(&text);
        }
        return;
    }
    let queue = &QUEUE;
    let mut state = queue.lock();
    if state.messages.len() >= QUEUE_LINES {
        state.dropped += 1;
        return;
    }
    state.messages.push_back(message);
    let wake = std::mem::take(&mut state.waiting);
    drop(state);
    if wake {
        queue.queued.notify_one();
    }
}

/// The writer thread: lines in order.
fn write_messages() {
    let queue = &QUEUE;
    let mut batch = VecDeque::new();
    loop {
        let mut state = queue.lock();
        while state.messages.is_empty() {
            state.waiting = true;
            state = queue
                .queued
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.waiting = false;
        // The whole queue at once: writing happens with the lock released.
        std::mem::swap(&mut batch, &mut state.messages);
        let dropped = std::mem::take(&mut state.dropped);
        drop(state);
        for message in batch.drain(..) {
            match message {
                Message::Line(text) => write_line(&text),
                Message::Flush => {
                    queue.lock().flushes_done += 1;
                    queue.flushed.notify_all();
                }
            }
        }
        if dropped > 0 {
            write_line(&format!(
                "password-bearer: {dropped} log lines dropped: stderr is not keeping up"
            ));
        }
    }
}

/// One line, in one `write` so that lines of processes sharing the pipe
/// do not interleave mid-line.
fn write_line(text: &str) {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
