//! Log lines on stderr, written by a thread of their own.
//!
//! A request never waits for stderr: [`line()`] formats the line and hands it
//! to the writer thread through a bounded queue. A slow or blocked stderr
//! (a full pipe nobody reads, a stalled terminal) then stalls only that
//! thread; when the queue is full, lines are dropped and counted, and the
//! count is logged once the writer catches up. Writing never panics: a
//! closed stderr (a supervisor that went away) must not take a request or
//! the shutdown down with it, as `eprintln!` would.
//!
//! Events that an attacker can repeat at will (a refused login for a
//! throttled username, a connection over its address's cap) are tallied
//! instead of written each time: [`tally()`] writes an event's first
//! occurrence at once, then at most one line per event and [`TALLY_PERIOD`]
//! saying how many more there were. So a flood of refused attempts costs a
//! line a minute, not a line an attempt.
//!
//! A program exiting calls [`flush()`] so that the last lines, and every
//! tally still counting, reach stderr.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Lines the writer may be behind by before new ones are dropped: a burst
/// of a few thousand lines is absorbed, and memory stays bounded (a few
/// hundred KiB) whatever stderr does.
const QUEUE_LINES: usize = 4096;

/// How often a tallied event is summarised while it keeps happening.
pub const TALLY_PERIOD: Duration = Duration::from_secs(60);

/// Most distinct events tallied at once; more are counted together, so
/// that the tally's memory is bounded too.
const MAX_TALLIES: usize = 10_000;

/// Writes one line to stderr without waiting for it.
pub fn line(args: fmt::Arguments<'_>) {
    send(Message::Line(args.to_string()));
}

/// Writes one line to stderr at once, on this thread: for a program's own
/// lines before it serves (its startup line, a configuration error), where
/// waiting on stderr stalls no request. The writer thread is started by the
/// first line that needs it, not by these: while a process has one thread,
/// glibc skips the cancellation bookkeeping around every system call, about
/// 90 instructions of each request's `recvfrom`, `writev` and `epoll_wait`
/// on a single-worker server (`benches/instructions.sh`).
pub fn line_now(args: fmt::Arguments<'_>) {
    // Behind anything already queued, to keep lines in order.
    if WRITER.get() == Some(&true) {
        line(args);
    } else {
        write_line(&args.to_string());
    }
}

/// Counts one occurrence of the event `args` describes: its first
/// occurrence is written at once, later ones as one line per
/// [`TALLY_PERIOD`] with their count, `... repeated=N seconds=60`. The
/// text is the event's identity, so it must not carry what varies between
/// occurrences (a client's port, a time).
pub fn tally(args: fmt::Arguments<'_>) {
    send(Message::Tally(args.to_string()));
}

/// Waits, at most `limit`, until every line sent so far is written, and
/// writes every tally still counting. For a program about to exit; a
/// stderr that does not drain in time is given up on.
pub fn flush(limit: Duration) {
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

enum Message {
    Line(String),
    Tally(String),
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
        if let Message::Line(text) | Message::Tally(text) = message {
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

/// The writer thread: lines in order, tallies summarised when due.
fn write_messages() {
    let queue = &QUEUE;
    let mut tallies = Tallies::new(TALLY_PERIOD, MAX_TALLIES);
    let mut batch = VecDeque::new();
    loop {
        let mut state = queue.lock();
        while state.messages.is_empty() {
            state.waiting = true;
            let wait = tallies
                .next_due()
                .map(|due| due.saturating_duration_since(Instant::now()));
            state = match wait {
                Some(wait) if wait.is_zero() => break,
                Some(wait) => {
                    let waited = queue.queued.wait_timeout(state, wait);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
                None => queue
                    .queued
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
        state.waiting = false;
        // The whole queue at once: writing happens with the lock released.
        std::mem::swap(&mut batch, &mut state.messages);
        let dropped = std::mem::take(&mut state.dropped);
        drop(state);
        for message in batch.drain(..) {
            match message {
                Message::Line(text) => write_line(&text),
                Message::Tally(event) => {
                    if let Some(first) = tallies.count(event, Instant::now()) {
                        write_line(&first);
                    }
                }
                Message::Flush => {
                    tallies.drain().iter().for_each(|l| write_line(l));
                    queue.lock().flushes_done += 1;
                    queue.flushed.notify_all();
                }
            }
        }
        tallies
            .due(Instant::now())
            .iter()
            .for_each(|l| write_line(l));
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

/// The tallied events, as the writer thread keeps them; time is passed in,
/// so the tests drive it by hand.
struct Tallies {
    period: Duration,
    cap: usize,
    /// Each event and what has happened since its period began.
    events: HashMap<String, Tally>,
    /// When each period ends, in order (periods all have the same length,
    /// so they end in the order they began).
    ends: VecDeque<(Instant, String)>,
    /// Occurrences of events not tallied because `cap` were, in the
    /// current period; `overflow_since` is when that period began.
    overflow: u64,
    overflow_since: Option<Instant>,
}

struct Tally {
    since: Instant,
    /// Occurrences after the one that began the period.
    more: u64,
}

impl Tallies {
    fn new(period: Duration, cap: usize) -> Tallies {
        Tallies {
            period,
            cap,
            events: HashMap::new(),
            ends: VecDeque::new(),
            overflow: 0,
            overflow_since: None,
        }
    }

    /// Counts one occurrence of `event`; returns the line to write now
    /// when it is the event's first in a while.
    fn count(&mut self, event: String, now: Instant) -> Option<String> {
        if let Some(tally) = self.events.get_mut(&event) {
            tally.more += 1;
            return None;
        }
        if self.events.len() >= self.cap {
            self.overflow += 1;
            self.overflow_since.get_or_insert(now);
            return None;
        }
        self.ends.push_back((now + self.period, event.clone()));
        self.events.insert(
            event.clone(),
            Tally {
                since: now,
                more: 0,
            },
        );
        Some(event)
    }

    /// When the next period ends, if any is running.
    fn next_due(&self) -> Option<Instant> {
        let overflow_end = self.overflow_since.map(|since| since + self.period);
        match (self.ends.front().map(|(end, _)| *end), overflow_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The summaries of the periods over at `now`. An event that happened
    /// again during its period is summarised and starts a new period; one
    /// that did not is forgotten, so its next occurrence is written at once.
    fn due(&mut self, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some((end, _)) = self.ends.front() {
            if *end > now {
                break;
            }
            let Some((_, event)) = self.ends.pop_front() else {
                break;
            };
            let Some(tally) = self.events.get_mut(&event) else {
                continue;
            };
            if tally.more == 0 {
                self.events.remove(&event);
                continue;
            }
            let over = now.saturating_duration_since(tally.since);
            lines.push(summary_line(&event, tally.more, over));
            tally.since = now;
            tally.more = 0;
            self.ends.push_back((now + self.period, event));
        }
        if self
            .overflow_since
            .is_some_and(|since| since + self.period <= now)
        {
            lines.push(self.overflow_line(now));
        }
        lines
    }

    /// Every summary still counting, for a program about to exit.
    fn drain(&mut self) -> Vec<String> {
        let now = Instant::now();
        let mut lines: Vec<String> = self
            .ends
            .drain(..)
            .filter_map(|(_, event)| {
                let tally = self.events.remove(&event)?;
                (tally.more > 0).then(|| {
                    let over = now.saturating_duration_since(tally.since);
                    summary_line(&event, tally.more, over)
                })
            })
            .collect();
        if self.overflow > 0 {
            lines.push(self.overflow_line(now));
        }
        self.events.clear();
        lines
    }

    fn overflow_line(&mut self, now: Instant) -> String {
        let over = self
            .overflow_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        let line = summary_line(
            "password-bearer: events beyond the tally's capacity",
            self.overflow,
            over,
        );
        self.overflow = 0;
        self.overflow_since = None;
        line
    }
}

/// `EVENT repeated=N seconds=S`: N more occurrences over S seconds.
fn summary_line(event: &str, more: u64, over: Duration) -> String {
    let mut line = String::with_capacity(event.len() + 32);
    line.push_str(event);
    // Seconds rounded up: a period that has just ended reads 60, not 59.
    let seconds = over.as_millis().div_ceil(1000);
    let _ = write!(line, " repeated={more} seconds={seconds}");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn tallies() -> (Tallies, Instant) {
        (Tallies::new(60 * SECOND, 3), Instant::now())
    }

    #[test]
    fn the_first_occurrence_is_written_at_once_then_one_summary_a_period() {
        let (mut t, start) = tallies();
        assert_eq!(
            t.count("throttled a".into(), start).as_deref(),
            Some("throttled a")
        );
        for i in 1..=511 {
            assert_eq!(
                t.count(
                    "throttled a".into(),
                    start + i * 100 * Duration::from_micros(1)
                ),
                None
            );
        }
        assert!(t.due(start + 59 * SECOND).is_empty());
        assert_eq!(t.next_due(), Some(start + 60 * SECOND));
        assert_eq!(
            t.due(start + 60 * SECOND),
            ["throttled a repeated=511 seconds=60"]
        );
        // Still happening: counted into the next period.
        t.count("throttled a".into(), start + 61 * SECOND);
        assert!(t.due(start + 119 * SECOND).is_empty());
        assert_eq!(
            t.due(start + 120 * SECOND),
            ["throttled a repeated=1 seconds=60"]
        );
        // A quiet period forgets the event: its next occurrence is news.
        assert!(t.due(start + 180 * SECOND).is_empty());
        assert_eq!(t.next_due(), None);
        assert_eq!(
            t.count("throttled a".into(), start + 181 * SECOND)
                .as_deref(),
            Some("throttled a")
        );
    }

    #[test]
    fn an_event_seen_once_gives_one_line() {
        let (mut t, start) = tallies();
        assert!(t.count("once".into(), start).is_some());
        assert!(t.due(start + 61 * SECOND).is_empty());
        assert!(t.drain().is_empty());
    }

    #[test]
    fn events_are_tallied_apart() {
        let (mut t, start) = tallies();
        assert!(t.count("a".into(), start).is_some());
        assert!(t.count("b".into(), start + SECOND).is_some());
        t.count("a".into(), start + SECOND);
        t.count("b".into(), start + SECOND);
        t.count("b".into(), start + SECOND);
        assert_eq!(t.due(start + 60 * SECOND), ["a repeated=1 seconds=60"]);
        assert_eq!(t.due(start + 61 * SECOND), ["b repeated=2 seconds=60"]);
    }

    #[test]
    fn past_the_cap_events_are_counted_together() {
        let (mut t, start) = tallies();
        for event in ["a", "b", "c"] {
            assert!(t.count(event.into(), start).is_some());
        }
        for i in 0..1000 {
            assert_eq!(t.count(format!("spray {i}"), start), None);
        }
        assert_eq!(t.events.len(), 3);
        let lines = t.due(start + 60 * SECOND);
        assert_eq!(
            lines,
            ["password-bearer: events beyond the tally's capacity repeated=1000 seconds=60"]
        );
    }

    #[test]
    fn drain_writes_what_is_still_counting() {
        let (mut t, start) = tallies();
        t.count("a".into(), start);
        t.count("a".into(), start);
        t.count("b".into(), start);
        let lines = t.drain();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("a repeated=1 seconds="), "{lines:?}");
        assert_eq!(t.next_due(), None);
    }
}
