//! The counters and histograms the metrics are read from: what an event
//! bumps where it happens (one relaxed `fetch_add`), and how a series is
//! written in the text exposition format. A leaf below `app`: the
//! password verifier, the limiter, the routes and the request timeout
//! count here without importing `metrics`, which renders them for an `App`
//! and sits above it.

use crate::error::ApiError;
use hyper::StatusCode;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The routes requests are counted by: a fixed set, so that no client can
/// grow the number of series (an unknown path is `other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Token,
    UsersMe,
    Revoke,
    Openapi,
    Docs,
    Healthz,
    Other,
    /// `POST /introspect`, with the `clients` feature.
    #[cfg(feature = "clients")]
    Introspect,
}

impl Endpoint {
    pub(crate) const ALL: &[Endpoint] = &[
        Endpoint::Token,
        Endpoint::UsersMe,
        Endpoint::Revoke,
        #[cfg(feature = "clients")]
        Endpoint::Introspect,
        Endpoint::Openapi,
        Endpoint::Docs,
        Endpoint::Healthz,
        Endpoint::Other,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::UsersMe => "users_me",
            Endpoint::Revoke => "revoke",
            #[cfg(feature = "clients")]
            Endpoint::Introspect => "introspect",
            Endpoint::Openapi => "openapi",
            Endpoint::Docs => "docs",
            Endpoint::Healthz => "healthz",
            Endpoint::Other => "other",
        }
    }
}

/// How a password login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Login {
    /// A token was issued.
    Ok,
    /// Wrong password, unknown or disabled user: 400 `invalid_grant`.
    Failed,
    /// Refused unhashed by the failed-login limits: 429.
    Throttled,
    /// No hash slot within the login queue's wait: 503.
    Busy,
}

pub(crate) const LOGINS: [(Login, &str); 4] = [
    (Login::Ok, "ok"),
    (Login::Failed, "failed"),
    (Login::Throttled, "throttled"),
    (Login::Busy, "busy"),
];

/// Refresh grants by outcome, in [`Counters::refreshes`]' order.
pub(crate) const REFRESHES: [&str; 4] = ["ok", "failed", "throttled", "unavailable"];

/// Status codes counted per route: 100 to 599, one cell each, so a count
/// is one index and one `fetch_add`, and every code our routes answer has
/// its own cell (16 KiB in all).
pub(crate) const CODES: usize = 500;

/// The app's counters, shared by every serving loop (and by
/// [`App::handle`]).
pub(crate) struct Counters {
    /// `[route][status - 100]`.
    pub(crate) requests: Box<[AtomicU64]>,
    pub(crate) logins: [AtomicU64; 4],
    /// Indexed as [`REFRESHES`].
    pub(crate) refreshes: [AtomicU64; 4],
    pub(crate) refresh_reuses: AtomicU64,
    /// Requests answered 408 by the request timeout, which no route
    /// answers (so `requests` cannot count them).
    pub(crate) request_timeouts: AtomicU64,
    /// Client authentications that failed (401 `invalid_client`).
    #[cfg(feature = "clients")]
    pub(crate) client_auth_failures: AtomicU64,
    /// Introspections refused to an authenticated client not allowed to
    /// introspect (403).
    #[cfg(feature = "clients")]
    pub(crate) introspection_refused: AtomicU64,
    /// Users changed by reloads, indexed as `users::Change::ALL`.
    pub(crate) admin_changes: [AtomicU64; 5],
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            requests: (0..Endpoint::ALL.len() * CODES)
                .map(|_| AtomicU64::new(0))
                .collect(),
            logins: Default::default(),
            refreshes: Default::default(),
            refresh_reuses: AtomicU64::new(0),
            request_timeouts: AtomicU64::new(0),
            #[cfg(feature = "clients")]
            client_auth_failures: AtomicU64::new(0),
            #[cfg(feature = "clients")]
            introspection_refused: AtomicU64::new(0),
            admin_changes: Default::default(),
        }
    }
}

impl Counters {
    /// Counts a request to `route` answered `status`.
    #[inline]
    pub(crate) fn request(&self, route: Endpoint, status: StatusCode) {
        let code = usize::from(status.as_u16());
        if let Some(cell) = code
            .checked_sub(100)
            .filter(|&code| code < CODES)
            .and_then(|code| self.requests.get(route as usize * CODES + code))
        {
            cell.fetch_add(1, Relaxed);
        }
    }

    /// Counts a password login's outcome.
    pub(crate) fn login(&self, outcome: Login) {
        self.logins[outcome as usize].fetch_add(1, Relaxed);
    }

    /// Counts a refresh grant by its answer.
    pub(crate) fn refresh<T>(&self, answer: &Result<T, ApiError>) {
        let outcome = match answer {
            Ok(_) => 0,
            Err(ApiError::TooManyAttempts(_)) => 2,
            Err(ApiError::Unavailable(_)) => 3,
            Err(_) => 1,
        };
        self.refreshes[outcome].fetch_add(1, Relaxed);
    }

    /// Counts a refresh token presented again (its session revoked).
    pub(crate) fn refresh_reused(&self) {
        self.refresh_reuses.fetch_add(1, Relaxed);
    }

    /// Counts a request answered 408 by the request timeout.
    pub(crate) fn request_timed_out(&self) {
        self.request_timeouts.fetch_add(1, Relaxed);
    }

    /// Requests answered 408 by the request timeout so far.
    pub(crate) fn request_timeouts(&self) -> u64 {
        self.request_timeouts.load(Relaxed)
    }
}

/// Upper bounds of the histograms' buckets, in microseconds and as
/// written in seconds (Prometheus' default buckets: a hash takes tens of
/// milliseconds, the queue's wait up to its limit, 2 s by default). Whole
/// numbers and fixed text: no float formatting, which would cost the
/// binary some 20 KB of code for these few numbers.
pub(crate) const BOUNDS: [(u64, &str); 11] = [
    (5_000, "0.005"),
    (10_000, "0.01"),
    (25_000, "0.025"),
    (50_000, "0.05"),
    (100_000, "0.1"),
    (250_000, "0.25"),
    (500_000, "0.5"),
    (1_000_000, "1"),
    (2_500_000, "2.5"),
    (5_000_000, "5"),
    (10_000_000, "10"),
];

/// A histogram of durations: a count per bucket (not cumulative: one
/// `fetch_add` per observation; summed when rendered) and the sum.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    /// One per bound, then `+Inf`.
    pub(crate) buckets: [AtomicU64; BOUNDS.len() + 1],
    pub(crate) sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BOUNDS
            .iter()
            .position(|&(bound, _)| micros <= bound)
            .unwrap_or(BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    pub(crate) fn render(&self, out: &mut String, name: &str, help: &str) {
        family(out, name, "histogram", help);
        let mut count = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            count += bucket.load(Relaxed);
            let bound = BOUNDS.get(i).map_or("+Inf", |&(_, text)| text);
            writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}")
                .expect("writing to a String cannot fail");
        }
        let sum = self.sum_micros.load(Relaxed);
        writeln!(
            out,
            "{name}_sum {}.{:06}\n{name}_count {count}",
            sum / 1_000_000,
            sum % 1_000_000
        )
        .expect("writing to a String cannot fail");
    }
}

/// Writes a family's `# HELP` and `# TYPE` lines.
pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}")
        .expect("writing to a String cannot fail");
}

/// Writes one sample: `name{labels} value` (no braces without labels).
pub(crate) fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    let braces = if labels.is_empty() { "" } else { "{" };
    let close = if labels.is_empty() { "" } else { "}" };
    writeln!(out, "{name}{braces}{labels}{close} {value}")
        .expect("writing to a String cannot fail");
}
