//! A JSON file the server reads (users, clients), changed safely:
//!
//! - under an exclusive lock on a lock file beside it (`users.json.lock`),
//!   so that two admin commands at once each see the other's change
//!   rather than overwrite it; the lock file stays (removing it would let
//!   a third command lock a file the second one still waits on);
//! - read as a `serde_json::Value`, so that what the command does not
//!   touch (other entries, fields it does not set) is kept as it was;
//! - checked the way the server loads it before anything is written, so
//!   that the command can never leave a file the server refuses;
//! - replaced atomically: written to a temporary file in the same
//!   directory, flushed to disk, renamed over the old one, and the
//!   directory flushed, so that a crash leaves the old file or the new
//!   one, never half of one; mode 0600, with the old file's owner and
//!   group (root editing the service's file must not leave it unreadable
//!   to the service).

use crate::error::ConfigError;
use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// What [`edit`] does when the file does not exist.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Missing {
    /// Starts from an empty object: `add` creates the file.
    Create,
    /// Fails: there is nothing to change.
    Fail,
}

/// Reads `path`'s object under its lock, lets `change` change it, checks
/// the result with `check` (the server's loader, given the new text), and
/// replaces the file. `change` returning an error changes nothing.
pub(super) fn edit<T>(
    path: &Path,
    missing: Missing,
    change: impl FnOnce(&mut Map<String, Value>) -> Result<T, ConfigError>,
    check: impl FnOnce(&str) -> Result<(), String>,
) -> Result<T, ConfigError> {
    let fail = |problem: String| ConfigError::new(path.display().to_string(), problem);
    let _lock = lock(path).map_err(fail)?;
    let (mut object, owner) = match std::fs::read_to_string(path) {
        Ok(text) => (parse(&text).map_err(fail)?, Owner::of(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && missing == Missing::Create => {
            (Map::new(), None)
        }
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    };
    let outcome = change(&mut object)?;
    let mut text = serde_json::to_string_pretty(&Value::Object(object))
        .map_err(|e| fail(format!("cannot write JSON: {e}")))?;
    text.push('\n');
    check(&text).map_err(|e| {
        fail(format!(
            "not changed: the server would refuse the result: {e}"
        ))
    })?;
    replace(path, text.as_bytes(), owner).map_err(fail)?;
    Ok(outcome)
}

/// Reads `path`'s object, for a list; no lock: a rename replaces the
/// file whole, so a reader sees the old one or the new one.
pub(super) fn read(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    let fail = |problem: String| ConfigError::new(path.display().to_string(), problem);
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    parse(&text).map_err(fail)
}

fn parse(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// `path` with `suffix` appended to its file name, in the same directory.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Takes the exclusive lock on `path`'s lock file, waiting for another
/// command holding it; released when the file is dropped (or the process
/// ends, however it ends).
///
/// `File::lock` is Rust 1.89's, above the crate's `rust-version` (1.85):
/// the `admin` feature alone needs 1.89 (docs/admin.md, "Decisions"), and
/// this is the one place, which clippy's MSRV check is told of.
#[clippy::msrv = "1.89"]
fn lock(path: &Path) -> Result<File, String> {
    let lock_path = beside(path, ".lock");
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&lock_path)
        .map_err(|e| format!("cannot open the lock file {}: {e}", lock_path.display()))?;
    file.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    Ok(file)
}

/// The owner and group of the file replaced, given to the new one.
#[derive(Clone, Copy)]
struct Owner {
    #[cfg(unix)]
    uid: u32,
    #[cfg(unix)]
    gid: u32,
}

impl Owner {
    fn of(path: &Path) -> Option<Owner> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(path).ok()?;
            Some(Owner {
                uid: meta.uid(),
                gid: meta.gid(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            None
        }
    }
}

/// Writes `bytes` to a temporary file beside `path` (mode 0600, `owner`'s),
/// flushes it, renames it over `path` and flushes the directory.
fn replace(path: &Path, bytes: &[u8], owner: Option<Owner>) -> Result<(), String> {
    let temporary = beside(path, &format!(".tmp{}", std::process::id()));
    let written = write_new(&temporary, bytes, owner).and_then(|()| {
        std::fs::rename(&temporary, path).map_err(|e| format!("cannot replace the file: {e}"))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written?;
    sync_directory(path)
}

fn write_new(temporary: &Path, bytes: &[u8], owner: Option<Owner>) -> Result<(), String> {
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", temporary.display());
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(temporary).map_err(cannot)?;
    #[cfg(unix)]
    if let Some(owner) = owner {
        std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid)).map_err(|e| {
            format!(
                "cannot give the new file the old one's owner {}:{} ({e}); run this as that \
                 user, or as root",
                owner.uid, owner.gid
            )
        })?;
    }
    #[cfg(not(unix))]
    let _ = owner;
    // The umask may have narrowed the mode at creation, never widened it;
    // set it whole, so the file is 0600 whatever the umask.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(cannot)?;
    file.write_all(bytes).map_err(cannot)?;
    file.sync_all().map_err(cannot)
}

/// Flushes the rename to disk: the directory entry is the directory's.
fn sync_directory(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| format!("replaced, but cannot flush {}: {e}", dir.display()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}
