//! The wall clock, in the one unit the tokens, sessions and deny-list
//! store: whole seconds since the Unix epoch. A leaf: imports nothing of
//! the crate, so every layer can read the time without importing `auth`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch. A clock set before 1970 is broken; it
/// reads as 0 rather than panicking a request.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
