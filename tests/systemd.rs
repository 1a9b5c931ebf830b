//! The binary under systemd, without systemd: the environment is set as
//! systemd sets it. Socket activation (`LISTEN_PID`, `LISTEN_FDS`, the
//! socket at fd 3) and the readiness protocol (`NOTIFY_SOCKET`, a Unix
//! datagram socket, by path or abstract address).
//!
//! A test hands a socket over without `unsafe`: the socket is the child's
//! stdin, and `sh` moves it to fd 3, sets `LISTEN_PID` to its own pid
//! (which `exec` gives to the binary) and execs the binary.

use crate::cli::{path_str, without_settings, Proc, TempDir, BIN};
use crate::support::*;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Generous for a loaded machine: the server's startup.
const NOTIFY_WAIT: Duration = Duration::from_secs(30);

/// The binary with `args`, started as systemd starts a socket-activated
/// service: its stdin as fd 3 (and 4, 5... as `listen_fds` says),
/// `LISTEN_FDS=listen_fds` and `LISTEN_PID=listen_pid` (`$$`: the binary's
/// own pid). Spawn it with the socket as stdin.
fn activated(listen_pid: &str, listen_fds: &str, args: &[&str]) -> Command {
    let fds = listen_fds.parse().unwrap_or(1);
    let dups: String = (0..fds).map(|i| format!("{}<&0 ", 3 + i)).collect();
    let script = format!(
        r#"exec {dups}0</dev/null; export LISTEN_PID={listen_pid} LISTEN_FDS={listen_fds}; exec "$0" "$@""#
    );
    let mut command = Command::new("sh");
    without_settings(&mut command);
    command.arg("-c").arg(script).arg(BIN).args(args);
    command
}

/// [`activated`], spawned with `socket` as its stdin.
fn spawn_activated(
    listen_pid: &str,
    listen_fds: &str,
    args: &[&str],
    socket: impl Into<Stdio>,
) -> Proc {
    Proc::spawn_command_with_stdin(activated(listen_pid, listen_fds, args), socket.into())
}

/// A listening socket on a free loopback port, as a `.socket` unit opens
/// one, and its address.
fn socket_unit() -> (OwnedFd, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound address");
    (listener.into(), addr)
}

/// The process exits with code 2 and one stderr line containing `expected`.
#[track_caller]
fn assert_refused(mut proc: Proc, expected: &str) {
    let (status, lines) = proc.wait_exit();
    assert_eq!(status.code(), Some(2), "{status:?}: {lines:?}");
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    assert!(lines[0].contains(expected), "{expected:?} in {lines:?}");
    assert!(!lines[0].contains("panicked"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_activated_start_serves_on_the_inherited_socket() {
    let (socket, addr) = socket_unit();
    // A host that is not this machine's and a port only root may bind:
    // were they used, the start would fail.
    let mut proc = spawn_activated("$$", "1", &["--host", "203.0.113.1", "--port", "1"], socket);
    assert_eq!(
        proc.wait_listening(),
        addr,
        "the startup line names the inherited socket"
    );
    let token = login(addr, "johndoe", "secret").await;
    assert_json_exact(
        &get_me(addr, &format!("Bearer {token}")).await,
        200,
        JOHNDOE_ME,
    );
    assert_401(&get(addr, "/users/me", &[]).await, NOT_AUTHENTICATED);
    proc.signal("TERM");
    let (status, lines) = proc.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_passed_to_another_process_are_not_taken() {
    // Variables leaked from a parent name the parent (here PID 1): bind
    // `--host`/`--port` as usual, as sd_listen_fds does.
    let (socket, inherited) = socket_unit();
    let mut proc = spawn_activated("1", "1", &["--port", "0"], socket);
    let addr = proc.wait_listening();
    assert_ne!(addr, inherited);
    assert_eq!(get(addr, "/healthz", &[]).await.status, 200);
}

#[test]
fn an_inherited_descriptor_that_is_not_a_listening_tcp_socket_is_refused() {
    const NOT_TCP: &str = "LISTEN_FDS: fd 3 is not a listening TCP socket";
    assert_refused(spawn_activated("$$", "1", &[], Stdio::piped()), NOT_TCP);
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    assert_refused(spawn_activated("$$", "1", &[], OwnedFd::from(udp)), NOT_TCP);
    // TCP, but connected rather than listening.
    let (listener, addr) = socket_unit();
    let stream = TcpStream::connect(addr).expect("connect");
    assert_refused(
        spawn_activated("$$", "1", &[], OwnedFd::from(stream)),
        NOT_TCP,
    );
    drop(listener);
    // Listening, but on a Unix socket.
    let dir = TempDir::new();
    let unix = UnixListener::bind(dir.0.join("web.sock")).expect("bind a Unix socket");
    assert_refused(
        spawn_activated("$$", "1", &[], OwnedFd::from(unix)),
        NOT_TCP,
    );
}

#[test]
fn several_sockets_or_bad_variables_are_refused() {
    let (socket, _) = socket_unit();
    assert_refused(
        spawn_activated("$$", "2", &[], socket),
        "LISTEN_FDS: 2 sockets passed; password-bearer serves one",
    );
    let (socket, _) = socket_unit();
    assert_refused(
        spawn_activated("$$", "one", &[], socket),
        r#"LISTEN_FDS: "one" is not a number of sockets"#,
    );
    let (socket, _) = socket_unit();
    assert_refused(
        spawn_activated("pid", "1", &[], socket),
        r#"LISTEN_PID: "pid" is not a process id"#,
    );
}

/// A datagram socket bound where systemd's notification socket would be;
/// `NOTIFY_SOCKET` names it.
struct NotifySocket {
    socket: UnixDatagram,
    name: String,
    _dir: Option<TempDir>,
}

impl NotifySocket {
    /// Bound to a path in a temporary directory.
    fn at_a_path() -> NotifySocket {
        let dir = TempDir::new();
        let path = dir.0.join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket::with(socket, path_str(&path), Some(dir))
    }

    /// Bound to an abstract address (`@name`), as systemd's own is.
    fn abstract_address() -> NotifySocket {
        let name = format!("password-bearer-test-notify-{}", std::process::id());
        let address =
            std::os::unix::net::SocketAddr::from_abstract_name(&name).expect("an abstract address");
        let socket = UnixDatagram::bind_addr(&address).expect("bind the notify socket");
        NotifySocket::with(socket, format!("@{name}"), None)
    }

    fn with(socket: UnixDatagram, name: String, dir: Option<TempDir>) -> NotifySocket {
        socket
            .set_read_timeout(Some(NOTIFY_WAIT))
            .expect("a read timeout");
        NotifySocket {
            socket,
            name,
            _dir: dir,
        }
    }

    /// The next message's lines.
    fn next(&self) -> Vec<String> {
        let mut buf = [0u8; 4096];
        let n = self
            .socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("a notification within {NOTIFY_WAIT:?}: {e}"));
        let text = std::str::from_utf8(&buf[..n]).expect("UTF-8");
        text.lines().map(str::to_owned).collect()
    }
}

/// READY=1 once the server accepts (a request right after it is served,
/// at `expected` when known), STOPPING=1 at SIGTERM, and nothing else.
async fn ready_then_stopping(notify: &NotifySocket, mut proc: Proc, expected: Option<SocketAddr>) {
    assert_eq!(notify.next(), ["READY=1"]);
    // The startup line came before READY=1.
    let addr = proc.wait_listening();
    assert_eq!(expected.unwrap_or(addr), addr);
    assert_eq!(get(addr, "/healthz", &[]).await.status, 200);
    proc.signal("TERM");
    assert_eq!(notify.next(), ["STOPPING=1"]);
    let (status, lines) = proc.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}: {lines:?}");
    notify.socket.set_nonblocking(true).expect("non-blocking");
    let mut buf = [0u8; 64];
    assert!(
        notify.socket.recv(&mut buf).is_err(),
        "no message after STOPPING=1: {:?}",
        String::from_utf8_lossy(&buf)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_sent_once_listening_and_stopping_at_sigterm() {
    let notify = NotifySocket::at_a_path();
    let proc = Proc::spawn_with_env(&["--port", "0"], &[("NOTIFY_SOCKET", &notify.name)]);
    ready_then_stopping(&notify, proc, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_socket_at_an_abstract_address_with_socket_activation() {
    let notify = NotifySocket::abstract_address();
    let (socket, addr) = socket_unit();
    let mut command = activated("$$", "1", &[]);
    command.env("NOTIFY_SOCKET", &notify.name);
    let proc = Proc::spawn_command_with_stdin(command, socket.into());
    ready_then_stopping(&notify, proc, Some(addr)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_socket_that_cannot_be_used_is_one_warning_not_a_failure() {
    let dir = TempDir::new();
    let nowhere = path_str(&dir.0.join("no-socket-here"));
    let mut proc = Proc::spawn_with_env(&["--port", "0"], &[("NOTIFY_SOCKET", &nowhere)]);
    let addr = proc.wait_listening();
    assert_eq!(get(addr, "/healthz", &[]).await.status, 200);
    proc.signal("TERM");
    let (status, lines) = proc.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}: {lines:?}");
    let warnings: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("cannot notify systemd"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "READY=1 and STOPPING=1 failed, one line: {lines:?}"
    );
    assert!(warnings[0].contains(&nowhere), "{warnings:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_is_reloading_then_ready_even_when_it_fails() {
    let notify = NotifySocket::at_a_path();
    let dir = TempDir::new();
    let users = dir.0.join("users.json");
    let valid = users_json(&[("alice", "alice's", false)]);
    std::fs::write(&users, &valid).expect("write the users file");
    let mut proc = Proc::spawn_with_env(
        &["--port", "0", "--users", &path_str(&users)],
        &[("NOTIFY_SOCKET", &notify.name)],
    );
    assert_eq!(notify.next(), ["READY=1"]);
    let addr = proc.wait_listening();
    for (contents, logged) in [(&*valid, "reloaded"), ("not json", "reload failed")] {
        std::fs::write(&users, contents).expect("write the users file");
        proc.signal("HUP");
        // RELOADING=1 with the monotonic time it started, for
        // Type=notify-reload; then READY=1, whatever the outcome.
        let reloading = notify.next();
        assert_eq!(reloading.len(), 2, "{reloading:?}");
        assert_eq!(reloading[0], "RELOADING=1");
        let usec = reloading[1]
            .strip_prefix("MONOTONIC_USEC=")
            .unwrap_or_else(|| panic!("MONOTONIC_USEC in {reloading:?}"));
        assert!(usec.parse::<u64>().is_ok_and(|n| n > 0), "{reloading:?}");
        assert_eq!(notify.next(), ["READY=1"]);
        proc.wait_line(logged);
    }
    assert_eq!(get(addr, "/healthz", &[]).await.status, 200);
}
