//! Running under systemd: the listening socket a `.socket` unit hands over
//! (socket activation, [`activation`]) and the readiness protocol of
//! `Type=notify` units ([`notify`]). See `contrib/` for the units and
//! docs/deployment.md, "Running under systemd".
//!
//! The binary's alone, not the library's: both are about this process (its
//! environment, its file descriptors, its service manager), and a library
//! that an embedder links must not take descriptors or edit the
//! environment of a program it does not own. An embedder keeps calling
//! `serve` with a listener of its own making, inherited or not.
//!
//! Elsewhere than Linux there is no systemd: nothing is inherited and
//! nothing is sent.

#[cfg(target_os = "linux")]
mod activation;
#[cfg(target_os = "linux")]
pub(crate) mod notify;

use crate::error::ConfigError;

/// Takes what systemd passed in the environment: the listening socket of a
/// socket-activated start (`None` when there is none: bind as usual) and
/// the notification socket. Their variables are removed, so that nothing
/// this process starts inherits them (as `sd_listen_fds(1)` does).
///
/// Call it once, before the runtime starts its threads: it edits the
/// environment, which is safe only while no other thread reads it.
#[cfg(target_os = "linux")]
pub(crate) fn take() -> Result<Option<std::net::TcpListener>, ConfigError> {
    // The sockets first: a warning about NOTIFY_SOCKET starts the log
    // writer's thread.
    let listener = activation::take();
    notify::take_socket();
    Ok(listener?)
}

/// The inherited socket, for tokio: the caller must be inside the runtime.
pub(crate) fn into_tokio(
    listener: std::net::TcpListener,
) -> Result<tokio::net::TcpListener, ConfigError> {
    listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
        .map_err(|e| ConfigError {
            what: "LISTEN_FDS".into(),
            problem: format!("cannot serve on the socket from systemd: {e}"),
        })
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn take() -> Result<Option<std::net::TcpListener>, ConfigError> {
    Ok(None)
}

/// No service manager to tell.
#[cfg(not(target_os = "linux"))]
pub(crate) mod notify {
    pub(crate) fn ready() {}
    pub(crate) fn reloading() {}
    pub(crate) fn stopping() {}
}
