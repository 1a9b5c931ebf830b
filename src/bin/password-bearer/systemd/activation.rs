//! Socket activation: serving on the listening socket systemd opened for a
//! `.socket` unit, so that the unit can listen on port 443 while this
//! binary never runs as root, and so that a restart refuses nobody (the
//! socket stays open in systemd; clients wait in its backlog).
//!
//! The protocol is sd_listen_fds(3)'s: `LISTEN_PID` is our process id,
//! `LISTEN_FDS` the number of sockets, which start at descriptor 3 (and
//! `LISTEN_FDNAMES` their names, which we do not need). What we do with it:
//!
//! - `LISTEN_PID` unset or naming another process (the variables leaked
//!   from a parent): nothing was passed to us; bind `--host`/`--port` as
//!   usual, as sd_listen_fds does. `LISTEN_FDS=0` likewise.
//! - `LISTEN_FDS=1`: serve on descriptor 3, which must be a listening TCP
//!   socket (IPv4 or IPv6); anything else is one line and exit code 2.
//!   `--host` and `--port` are then ignored.
//! - `LISTEN_FDS=2` or more: one line and exit code 2. The server has one
//!   listener; quietly serving the first of several would leave the others
//!   open and unserved, which is worse than saying so at start.
//! - A value that is not a number: one line and exit code 2, as
//!   sd_listen_fds returns `-EINVAL`.
//!
//! Whatever they said, the variables are then removed (sd_listen_fds with
//! `unset_environment` set), so that nothing started later inherits them.
//!
//! Turning descriptor 3 into a listener takes `from_raw_fd`, which is
//! `unsafe`, and this crate forbids `unsafe`: the `listenfd` crate does that
//! one step (after checking with `fstat`, `SO_TYPE` and `getsockname` that
//! the descriptor is a TCP socket, and setting `FD_CLOEXEC`). Its own
//! reading of the variables is laxer than systemd's (it takes the sockets
//! when `LISTEN_PID` is unset, and starts at `LISTEN_FDS_FIRST_FD`), so the
//! variables are judged here first, and it is called only once they name
//! this process. That the socket listens (`SO_ACCEPTCONN`) is checked with
//! `socket2`, already built for tokio.

use crate::error::ConfigError;
use std::ffi::OsStr;
use std::fmt;
use std::net::TcpListener;

/// Every variable of the protocol, removed once read. `LISTEN_FDS_FIRST_FD`
/// is not systemd's but `listenfd`'s (systemfd sets it); systemd's
/// descriptors always start at 3.
const VARIABLES: [&str; 4] = [
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "LISTEN_FDS_FIRST_FD",
];

/// Why the environment's sockets cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ActivationError {
    /// `LISTEN_PID` is not a process id.
    BadPid(String),
    /// `LISTEN_FDS` is not a number.
    BadCount(String),
    /// More than one socket was passed.
    Several(u32),
    /// Descriptor 3 is not a listening TCP socket: why.
    NotTcpListener(String),
}

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActivationError::BadPid(value) => write!(f, "{value:?} is not a process id"),
            ActivationError::BadCount(value) => write!(f, "{value:?} is not a number of sockets"),
            ActivationError::Several(n) => write!(
                f,
                "{n} sockets passed; password-bearer serves one (give the .socket unit \
                 a single ListenStream=)"
            ),
            ActivationError::NotTcpListener(why) => {
                write!(f, "fd 3 is not a listening TCP socket ({why})")
            }
        }
    }
}

impl From<ActivationError> for ConfigError {
    fn from(e: ActivationError) -> ConfigError {
        let what = match e {
            ActivationError::BadPid(_) => "LISTEN_PID",
            _ => "LISTEN_FDS",
        };
        ConfigError {
            what: what.into(),
            problem: e.to_string(),
        }
    }
}

/// Takes the listening socket systemd passed, if it passed one to this
/// process, and removes the protocol's variables (see the module's header).
/// Edits the environment: call it before other threads start.
pub(crate) fn take() -> Result<Option<TcpListener>, ActivationError> {
    let passed = passed(
        std::env::var_os("LISTEN_PID").as_deref(),
        std::env::var_os("LISTEN_FDS").as_deref(),
        std::process::id(),
    );
    // `listenfd` would start at this one instead of 3.
    std::env::remove_var("LISTEN_FDS_FIRST_FD");
    let taken = match passed {
        Ok(0) => Ok(None),
        Ok(1) => take_first().map(Some),
        Ok(n) => Err(ActivationError::Several(n)),
        Err(e) => Err(e),
    };
    for name in VARIABLES {
        std::env::remove_var(name);
    }
    taken
}

/// How many sockets the variables pass to the process `pid`, read as
/// sd_listen_fds(3) reads them: none unless `LISTEN_PID` names `pid`.
fn passed(
    listen_pid: Option<&OsStr>,
    listen_fds: Option<&OsStr>,
    pid: u32,
) -> Result<u32, ActivationError> {
    let Some(listen_pid) = listen_pid else {
        return Ok(0);
    };
    let listen_pid = listen_pid.to_string_lossy();
    match listen_pid.parse::<u32>() {
        Ok(named) if named > 0 => {
            if named != pid {
                return Ok(0);
            }
        }
        _ => return Err(ActivationError::BadPid(listen_pid.into_owned())),
    }
    let Some(listen_fds) = listen_fds else {
        return Ok(0);
    };
    let listen_fds = listen_fds.to_string_lossy();
    listen_fds
        .parse()
        .map_err(|_| ActivationError::BadCount(listen_fds.into_owned()))
}

/// Descriptor 3 as a listener, once the variables named this process with
/// one socket.
fn take_first() -> Result<TcpListener, ActivationError> {
    let not_tcp = |why: String| ActivationError::NotTcpListener(why);
    let listener = listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .map_err(|e| not_tcp(e.to_string()))?
        .ok_or_else(|| not_tcp("listenfd found no descriptor".into()))?;
    // A TCP socket that was bound or connected but is not listening would
    // pass listenfd's checks, and then fail every `accept`.
    match socket2::SockRef::from(&listener).is_listener() {
        Ok(true) => Ok(listener),
        Ok(false) => Err(not_tcp("a TCP socket, but not listening".into())),
        Err(e) => Err(not_tcp(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed_str(pid: Option<&str>, fds: Option<&str>) -> Result<u32, ActivationError> {
        passed(pid.map(OsStr::new), fds.map(OsStr::new), 4242)
    }

    #[test]
    fn sockets_are_ours_only_when_listen_pid_names_us() {
        assert_eq!(passed_str(Some("4242"), Some("1")), Ok(1));
        assert_eq!(passed_str(Some("4242"), Some("3")), Ok(3));
        assert_eq!(passed_str(Some("4242"), Some("0")), Ok(0));
        assert_eq!(passed_str(Some("4242"), None), Ok(0));
        // Another process's: leaked from a parent, not ours to take.
        assert_eq!(passed_str(Some("4241"), Some("1")), Ok(0));
        assert_eq!(passed_str(Some("1"), Some("not even read")), Ok(0));
        // No LISTEN_PID: nothing (listenfd alone would take them).
        assert_eq!(passed_str(None, Some("1")), Ok(0));
    }

    #[test]
    fn values_that_are_not_numbers_are_refused() {
        for pid in ["", "0", "-1", "abc", "4242 "] {
            assert_eq!(
                passed_str(Some(pid), Some("1")),
                Err(ActivationError::BadPid(pid.into())),
                "{pid:?}"
            );
        }
        for fds in ["", "-1", "one", "1.0"] {
            assert_eq!(
                passed_str(Some("4242"), Some(fds)),
                Err(ActivationError::BadCount(fds.into())),
                "{fds:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_variable_in_one_line() {
        let line = |e: ActivationError| ConfigError::from(e).to_string();
        assert_eq!(
            line(ActivationError::BadPid("x".into())),
            "LISTEN_PID: \"x\" is not a process id"
        );
        assert_eq!(
            line(ActivationError::Several(2)),
            "LISTEN_FDS: 2 sockets passed; password-bearer serves one (give the .socket \
             unit a single ListenStream=)"
        );
        assert_eq!(
            line(ActivationError::NotTcpListener(
                "fd 3 is not a socket".into()
            )),
            "LISTEN_FDS: fd 3 is not a listening TCP socket (fd 3 is not a socket)"
        );
    }

    #[test]
    fn the_variables_are_removed_whatever_they_said() {
        // The only test of this binary that touches these variables. Neither
        // case takes a descriptor: fd 3 of a test process is not ours to take.
        let set = |pid: &str, fds: &str| {
            std::env::set_var("LISTEN_PID", pid);
            std::env::set_var("LISTEN_FDS", fds);
            std::env::set_var("LISTEN_FDNAMES", "web");
            std::env::set_var("LISTEN_FDS_FIRST_FD", "3");
        };
        let left = || VARIABLES.map(std::env::var_os).map(|v| v.is_some());
        // PID 1 is never a test process: another process's sockets.
        set("1", "1");
        assert!(matches!(take(), Ok(None)));
        assert_eq!(left(), [false; 4]);
        set(&std::process::id().to_string(), "2");
        assert!(matches!(take(), Err(ActivationError::Several(2))));
        assert_eq!(left(), [false; 4]);
    }
}
