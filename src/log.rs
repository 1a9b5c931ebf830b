//! Log lines on stderr. Writing never panics: a closed or full stderr (a
//! supervisor that went away) must not take a request or the shutdown down
//! with it, as `eprintln!` would.

use std::fmt;
use std::io::Write;

/// Writes one line to stderr, ignoring failures.
pub fn line(args: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}
