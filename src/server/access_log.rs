//! The access log: one line per request a route answered (method, path,
//! status, microseconds, peer), when `Config::access_log` is on. Started
//! by the dispatcher before the request is consumed, written when the
//! answer is ready.

use crate::logging::{self, Peer, Quoted, ACCESS};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use std::net::SocketAddr;
use std::time::Instant;

/// An access-log line in the making: what it needs of the request, taken
/// before the request is consumed.
pub(crate) struct AccessEntry {
    start: Instant,
    method: Method,
    path: Box<str>,
    peer: Option<SocketAddr>,
}

impl AccessEntry {
    pub(crate) fn start(method: &Method, path: &str, peer: Option<SocketAddr>) -> AccessEntry {
        AccessEntry {
            start: Instant::now(),
            method: method.clone(),
            path: path.into(),
            peer,
        }
    }

    pub(crate) fn finish(self, status: StatusCode) {
        logging::emit(
            ACCESS,
            format_args!(
                "access method={} path={} status={} us={} peer={}",
                self.method,
                Quoted(&self.path),
                status.as_u16(),
                self.start.elapsed().as_micros(),
                Peer(self.peer),
            ),
        );
    }
}

/// Writes the access-log line, when the log is on.
pub(crate) fn finish(access: Option<Box<AccessEntry>>, response: &Response<Full<Bytes>>) {
    if let Some(access) = access {
        access.finish(response.status());
    }
}
