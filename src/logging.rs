//! What the server logs, through the [`log`] facade: an application routes
//! these records where it routes its own (the binary writes them to stderr
//! from a thread of its own; with no logger installed they cost a
//! comparison each).
//!
//! Targets, so that a logger can filter them:
//!
//! - `password_bearer::login`: one record per login (info), the
//!   tallied refusals of throttled usernames and addresses and of the full
//!   login queue (warn);
//! - `password_bearer::access`: one record per request, when the access
//!   log is on (info);
//! - `password_bearer::server`: `accept` failures (error), connections
//!   refused over their address's cap (warn, tallied), the grace period
//!   running out (warn);
//! - `password_bearer::store`: a user store that cannot answer (error,
//!   tallied);
//! - `password_bearer::audit`: each failed client authentication and
//!   each refused introspection (warn; the `clients` feature); throttled
//!   clients (warn, tallied); each user a reload added, removed,
//!   disabled, enabled or gave another password (info).
//!
//! Records carry the line as the binary prints it; never a password, hash,
//! token or key.
//!
//! Events that an attacker can repeat at will are tallied instead of logged
//! each time: [`tally`] logs an event's first occurrence at once, then at
//! most one record per event and [`TALLY_PERIOD`] saying how many more there
//! were (`... repeated=N seconds=60`). So a flood of refused attempts costs
//! a record a minute, not a record an attempt. Summaries are logged when
//! due by the serving loop's ticker ([`emit_due`]), or by the next tallied
//! event, and whatever is still counting when a serving loop ends
//! ([`emit_all`]).

use log::Level;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How often a tallied event is summarised while it keeps happening.
pub(crate) const TALLY_PERIOD: Duration = Duration::from_secs(60);

/// Most distinct events tallied at once; more are counted together, so
/// that the tally's memory is bounded too.
const MAX_TALLIES: usize = 10_000;

/// Where a record goes: its level and target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kind(pub(crate) Level, pub(crate) &'static str);

/// A login, successful or not.
pub(crate) const LOGIN: Kind = Kind(Level::Info, "password_bearer::login");
/// A login refused without a hash (throttled, or the queue full).
pub(crate) const LOGIN_REFUSED: Kind = Kind(Level::Warn, "password_bearer::login");
/// A request, in the access log.
pub(crate) const ACCESS: Kind = Kind(Level::Info, "password_bearer::access");
/// The serving loop failing to do its job (`accept` failing).
pub(crate) const SERVER_ERROR: Kind = Kind(Level::Error, "password_bearer::server");
/// The serving loop refusing or cutting something off (a connection over
/// its address's cap, the grace period over).
pub(crate) const SERVER_WARN: Kind = Kind(Level::Warn, "password_bearer::server");
/// A user store that cannot answer.
pub(crate) const STORE_DOWN: Kind = Kind(Level::Error, "password_bearer::store");
/// A client refused: its authentication failed, or it may not do what it
/// asked (introspect, revoke another's token).
#[cfg(feature = "clients")]
pub(crate) const AUDIT: Kind = Kind(Level::Warn, "password_bearer::audit");
/// A user changed by a reload (added, removed, disabled, enabled, given
/// another password): the audit trail of the admin commands' changes.
pub(crate) const ADMIN_CHANGE: Kind = Kind(Level::Info, "password_bearer::audit");

/// Logs `args` as `kind`.
pub(crate) fn emit(kind: Kind, args: fmt::Arguments<'_>) {
    log::log!(target: kind.1, kind.0, "{args}");
}

/// Counts one occurrence of the event `args` describes (see the module's
/// header). The text is the event's identity, so it must not carry what
/// varies between occurrences (a client's port, a time).
pub(crate) fn tally(kind: Kind, args: fmt::Arguments<'_>) {
    // Nobody listens: not even a string is made.
    if !log::log_enabled!(target: kind.1, kind.0) {
        return;
    }
    let now = Instant::now();
    let mut tallies = tallies();
    let first = tallies.count(args.to_string(), kind, now);
    let due = tallies.due(now);
    drop(tallies);
    if let Some(first) = first {
        emit(kind, format_args!("{first}"));
    }
    for (kind, line) in due {
        emit(kind, format_args!("{line}"));
    }
}

/// Logs the summaries whose period is over; when the next one is due.
pub(crate) fn emit_due() -> Option<Instant> {
    let mut tallies = tallies();
    let due = tallies.due(Instant::now());
    let next = tallies.next_due();
    drop(tallies);
    for (kind, line) in due {
        emit(kind, format_args!("{line}"));
    }
    next
}

/// Logs every summary still counting (a serving loop ending).
pub(crate) fn emit_all() {
    let lines = tallies().drain(Instant::now());
    for (kind, line) in lines {
        emit(kind, format_args!("{line}"));
    }
}

fn tallies() -> MutexGuard<'static, Tallies<Kind>> {
    static TALLIES: LazyLock<Mutex<Tallies<Kind>>> = LazyLock::new(|| {
        Mutex::new(Tallies::new(
            TALLY_PERIOD,
            MAX_TALLIES,
            Kind(Level::Warn, "password_bearer"),
        ))
    });
    // Nothing panics under the lock; a poisoned tally still counts.
    TALLIES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The tallied events, each with what to log it as (`M`); time is passed
/// in, so the tests drive it by hand.
struct Tallies<M> {
    period: Duration,
    cap: usize,
    /// Each event and what has happened since its period began.
    events: HashMap<String, Tally<M>>,
    /// When each period ends, in order (periods all have the same length,
    /// so they end in the order they began).
    ends: VecDeque<(Instant, String)>,
    /// Occurrences of events not tallied because `cap` were, in the
    /// current period; `overflow_since` is when that period began.
    overflow: u64,
    overflow_since: Option<Instant>,
    /// What the overflow's summary is logged as.
    overflow_kind: M,
}

struct Tally<M> {
    since: Instant,
    /// Occurrences after the one that began the period.
    more: u64,
    kind: M,
}

impl<M: Copy> Tallies<M> {
    fn new(period: Duration, cap: usize, overflow_kind: M) -> Tallies<M> {
        Tallies {
            period,
            cap,
            events: HashMap::new(),
            ends: VecDeque::new(),
            overflow: 0,
            overflow_since: None,
            overflow_kind,
        }
    }

    /// Counts one occurrence of `event`; returns the line to log now when
    /// it is the event's first in a while.
    fn count(&mut self, event: String, kind: M, now: Instant) -> Option<String> {
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
                kind,
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
    /// that did not is forgotten, so its next occurrence is logged at once.
    fn due(&mut self, now: Instant) -> Vec<(M, String)> {
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
            lines.push((tally.kind, summary_line(&event, tally.more, over)));
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

    /// Every summary still counting, and the tally emptied.
    fn drain(&mut self, now: Instant) -> Vec<(M, String)> {
        let mut lines: Vec<(M, String)> = self
            .ends
            .drain(..)
            .filter_map(|(_, event)| {
                let tally = self.events.remove(&event)?;
                (tally.more > 0).then(|| {
                    let over = now.saturating_duration_since(tally.since);
                    (tally.kind, summary_line(&event, tally.more, over))
                })
            })
            .collect();
        if self.overflow > 0 {
            lines.push(self.overflow_line(now));
        }
        self.events.clear();
        lines
    }

    fn overflow_line(&mut self, now: Instant) -> (M, String) {
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
        (self.overflow_kind, line)
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

/// A client-supplied string in a log line: quoted and escaped (no forged
/// lines through newlines), and cut at 64 characters.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 64;
        match self.0.char_indices().nth(MAX) {
            Some((cut, _)) => write!(f, "{:?}...", &self.0[..cut]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// The peer address, or `-` when unknown.
pub(crate) struct Peer(pub(crate) Option<SocketAddr>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn tallies() -> (Tallies<()>, Instant) {
        (Tallies::new(60 * SECOND, 3, ()), Instant::now())
    }

    fn lines(summaries: Vec<((), String)>) -> Vec<String> {
        summaries.into_iter().map(|(_, line)| line).collect()
    }

    #[test]
    fn the_first_occurrence_is_logged_at_once_then_one_summary_a_period() {
        let (mut t, start) = tallies();
        let throttled = || "throttled a".to_owned();
        assert_eq!(
            t.count(throttled(), (), start).as_deref(),
            Some("throttled a")
        );
        for i in 1..=511 {
            let at = start + i * 100 * Duration::from_micros(1);
            assert_eq!(t.count(throttled(), (), at), None);
        }
        assert!(t.due(start + 59 * SECOND).is_empty());
        assert_eq!(t.next_due(), Some(start + 60 * SECOND));
        assert_eq!(
            lines(t.due(start + 60 * SECOND)),
            ["throttled a repeated=511 seconds=60"]
        );
        // Still happening: counted into the next period.
        t.count(throttled(), (), start + 61 * SECOND);
        assert!(t.due(start + 119 * SECOND).is_empty());
        assert_eq!(
            lines(t.due(start + 120 * SECOND)),
            ["throttled a repeated=1 seconds=60"]
        );
        // A quiet period forgets the event: its next occurrence is news.
        assert!(t.due(start + 180 * SECOND).is_empty());
        assert_eq!(t.next_due(), None);
        assert_eq!(
            t.count(throttled(), (), start + 181 * SECOND).as_deref(),
            Some("throttled a")
        );
    }

    #[test]
    fn an_event_seen_once_gives_one_line() {
        let (mut t, start) = tallies();
        assert!(t.count("once".into(), (), start).is_some());
        assert!(t.due(start + 61 * SECOND).is_empty());
        assert!(t.drain(start + 62 * SECOND).is_empty());
    }

    #[test]
    fn events_are_tallied_apart_and_keep_their_kind() {
        let mut t = Tallies::new(60 * SECOND, 3, 0u8);
        let start = Instant::now();
        assert!(t.count("a".into(), 1, start).is_some());
        assert!(t.count("b".into(), 2, start + SECOND).is_some());
        t.count("a".into(), 1, start + SECOND);
        t.count("b".into(), 2, start + SECOND);
        t.count("b".into(), 2, start + SECOND);
        assert_eq!(
            t.due(start + 60 * SECOND),
            [(1, "a repeated=1 seconds=60".to_owned())]
        );
        assert_eq!(
            t.due(start + 61 * SECOND),
            [(2, "b repeated=2 seconds=60".to_owned())]
        );
    }

    #[test]
    fn past_the_cap_events_are_counted_together() {
        let (mut t, start) = tallies();
        for event in ["a", "b", "c"] {
            assert!(t.count(event.into(), (), start).is_some());
        }
        for i in 0..1000 {
            assert_eq!(t.count(format!("spray {i}"), (), start), None);
        }
        assert_eq!(t.events.len(), 3);
        assert_eq!(
            lines(t.due(start + 60 * SECOND)),
            ["password-bearer: events beyond the tally's capacity repeated=1000 seconds=60"]
        );
    }

    #[test]
    fn drain_logs_what_is_still_counting() {
        let (mut t, start) = tallies();
        t.count("a".into(), (), start);
        t.count("a".into(), (), start);
        t.count("b".into(), (), start);
        assert_eq!(
            lines(t.drain(start + 2 * SECOND)),
            ["a repeated=1 seconds=2"]
        );
        assert_eq!(t.next_due(), None);
    }

    /// A logger keeping what it is given.
    struct Kept(Mutex<Vec<(Level, String, String)>>);

    impl log::Log for Kept {
        fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
            metadata.target().starts_with("password_bearer")
        }
        fn log(&self, record: &log::Record<'_>) {
            if self.enabled(record.metadata()) {
                let entry = (
                    record.level(),
                    record.target().to_owned(),
                    record.args().to_string(),
                );
                self.0.lock().unwrap().push(entry);
            }
        }
        fn flush(&self) {}
    }

    #[test]
    fn records_go_through_the_facade_with_their_level_and_target() {
        static KEPT: Kept = Kept(Mutex::new(Vec::new()));
        // The one test in this binary that installs a logger.
        log::set_logger(&KEPT).unwrap();
        log::set_max_level(log::LevelFilter::Info);
        emit(LOGIN, format_args!("login ok username=\"x\""));
        for _ in 0..5 {
            tally(
                LOGIN_REFUSED,
                format_args!("login throttled username=\"facade test\""),
            );
        }
        emit_all();
        let kept: Vec<_> = KEPT
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, line)| line.contains("\"x\"") || line.contains("facade test"))
            .cloned()
            .collect();
        let login = "password_bearer::login".to_owned();
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert_eq!(
            kept[0],
            (Level::Info, login.clone(), "login ok username=\"x\"".into())
        );
        assert_eq!(
            kept[1],
            (
                Level::Warn,
                login.clone(),
                "login throttled username=\"facade test\"".into()
            )
        );
        assert_eq!((kept[2].0, &kept[2].1), (Level::Warn, &login));
        assert!(
            kept[2]
                .2
                .starts_with("login throttled username=\"facade test\" repeated=4 seconds="),
            "{kept:?}"
        );
    }
}
