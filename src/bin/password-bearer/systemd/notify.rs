//! sd_notify(3): telling systemd, for a `Type=notify` unit, when the
//! server is ready (`READY=1`, once it listens and will accept), when it
//! reloads (`RELOADING=1`, then `READY=1` again) and when it stops
//! (`STOPPING=1`). Each is one datagram to the Unix socket `NOTIFY_SOCKET`
//! names: a path, or an abstract address written `@name`.
//!
//! On std's `UnixDatagram` rather than a crate: the protocol is one
//! `sendto`. The socket is opened once, when the variable is read at start.
//! Not being under systemd (no `NOTIFY_SOCKET`) sends nothing; a socket that
//! cannot be used is never fatal: the first failure is logged, later ones
//! are not (a unit that waits for `READY=1` then says so itself, by timing
//! out).

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a message may wait for room in systemd's queue: systemd empties
/// it at once unless it is stuck, and a stuck manager must not hold a
/// worker thread for long.
const SEND_WAIT: Duration = Duration::from_secs(1);

/// Where messages go.
struct Target {
    socket: UnixDatagram,
    address: SocketAddr,
    /// `NOTIFY_SOCKET`'s value, for the warning.
    shown: String,
}

/// Set once by [`take_socket`]; `None` when there is nowhere to send.
static TARGET: OnceLock<Option<Target>> = OnceLock::new();

/// Whether a failure was logged already.
static WARNED: AtomicBool = AtomicBool::new(false);

/// Reads `NOTIFY_SOCKET` and removes it from the environment (nothing this
/// process starts is the service's main process). Edits the environment:
/// call it before other threads start.
pub(crate) fn take_socket() {
    let value = std::env::var_os("NOTIFY_SOCKET");
    std::env::remove_var("NOTIFY_SOCKET");
    let target = value.filter(|v| !v.is_empty()).and_then(|value| {
        let shown = value.to_string_lossy().into_owned();
        match open(&value) {
            Ok((socket, address)) => Some(Target {
                socket,
                address,
                shown,
            }),
            Err(e) => {
                warn(&shown, &e);
                None
            }
        }
    });
    let _ = TARGET.set(target);
}

/// The socket to send from and the address `value` names.
fn open(value: &OsStr) -> io::Result<(UnixDatagram, SocketAddr)> {
    let bytes = value.as_bytes();
    let address = match bytes.split_first() {
        Some((b'/', _)) => SocketAddr::from_pathname(value)?,
        Some((b'@', name)) => SocketAddr::from_abstract_name(name)?,
        // `vsock:` (systemd 254 on, for virtual machines) is not for us.
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither a path (/...) nor an abstract address (@...)",
            ))
        }
    };
    let socket = UnixDatagram::unbound()?;
    socket.set_write_timeout(Some(SEND_WAIT))?;
    Ok((socket, address))
}

/// Startup (or a reload) is complete: the server listens and will accept.
pub(crate) fn ready() {
    send("READY=1");
}

/// A reload starts; [`ready`] ends it. With the time it started, which
/// systemd's `Type=notify-reload` (systemd 253 on) needs to tell this
/// reload from an earlier one.
pub(crate) fn reloading() {
    match monotonic_usec() {
        Some(usec) => send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}")),
        None => send("RELOADING=1"),
    }
}

/// A shutdown starts: systemd shows the unit as stopping, not failed.
pub(crate) fn stopping() {
    send("STOPPING=1");
}

fn send(message: &str) {
    let Some(Some(target)) = TARGET.get() else {
        return;
    };
    if let Err(e) = target
        .socket
        .send_to_addr(message.as_bytes(), &target.address)
    {
        warn(&target.shown, &e);
    }
}

fn warn(shown: &str, e: &io::Error) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        log::warn!(
            target: "password_bearer::systemd",
            "password-bearer: warning: cannot notify systemd at NOTIFY_SOCKET={shown}: {e} \
             (further failures are not logged)"
        );
    }
}

/// `CLOCK_MONOTONIC` now, in microseconds. std reads that clock for
/// `Instant` but does not give its value, and asking the kernel ourselves
/// takes a libc call (`unsafe`) or a crate for one number. On Linux an
/// `Instant`'s `Debug` form is the clock's timespec
/// (`Instant { tv_sec: 11351, tv_nsec: 541243430 }`); should that form
/// change, `RELOADING=1` goes without the time (`Type=notify` does not need
/// it) and this module's test fails.
fn monotonic_usec() -> Option<u64> {
    timespec_usec(&format!("{:?}", Instant::now()))
}

/// The microseconds of a timespec's `Debug` form.
fn timespec_usec(debug: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        // Splits rather than slices: no index to check, so no panic path.
        let (_, rest) = debug.split_once(name)?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let (sec, nsec) = (field("tv_sec: ")?, field("tv_nsec: ")?);
    (nsec < 1_000_000_000).then_some(sec.checked_mul(1_000_000)?.checked_add(nsec / 1000)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespecs_are_read() {
        assert_eq!(
            timespec_usec("Instant { tv_sec: 11351, tv_nsec: 541243430 }"),
            Some(11_351_541_243)
        );
        assert_eq!(
            timespec_usec("Instant { tv_sec: 0, tv_nsec: 999 }"),
            Some(0)
        );
        for bad in [
            "Instant { tv_sec: -1, tv_nsec: 5 }",
            "Instant { tv_nsec: 5 }",
            "Instant { tv_sec: 1, tv_nsec: 1000000000 }",
            "Instant { secs: 1, nanos: 5 }",
            "",
        ] {
            assert_eq!(timespec_usec(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_monotonic_clock_is_read_from_an_instant() {
        // CLOCK_BOOTTIME (/proc/uptime, in hundredths) is CLOCK_MONOTONIC
        // plus the time spent suspended: never less.
        let uptime_usec = || -> u64 {
            let text = std::fs::read_to_string("/proc/uptime").expect("/proc/uptime");
            let seconds: f64 = text.split(' ').next().unwrap().parse().unwrap();
            (seconds * 1e6) as u64
        };
        let before = monotonic_usec().expect("an Instant's Debug form is its timespec");
        let boot = uptime_usec();
        let after = monotonic_usec().unwrap();
        assert!(0 < before && before <= after, "{before} then {after}");
        assert!(before <= boot + 10_000, "{before} > boottime {boot}");
    }
}
