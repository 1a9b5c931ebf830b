//! The performance baseline: a bare hyper server with the settings a safe
//! server needs (timer, 10 s header-read timeout, keep-alive, TCP_NODELAY,
//! the same listen backlog as `password-bearer`) that answers every request
//! with the exact bytes of johndoe's `GET /users/me`, and checks nothing.
//! Whatever `password-bearer` costs beyond this is the price of auth.
//!
//! ```sh
//! cargo run --release --example baseline -- 8002
//! ```

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};

/// johndoe's `/users/me` body, byte for byte.
pub(crate) const BODY: &[u8] =
    br#"{"username":"johndoe","email":"johndoe@example.com","full_name":"John Doe","disabled":false}"#;

/// The same backlog as the `password-bearer` binary.
pub(crate) const LISTEN_BACKLOG: u32 = 4096;

/// Serves the fixed answer on `listener` until the task is dropped.
pub(crate) async fn serve_baseline(listener: TcpListener) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .keep_alive(true);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            service_fn(|_request: Request<hyper::body::Incoming>| async {
                let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok::<_, Infallible>(response)
            }),
        );
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

#[allow(dead_code)] // benches include this file for `serve_baseline` only
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the port must be a number",
            )
        })?,
        None => 8002,
    };
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(([127, 0, 0, 1], port).into())?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    tokio::select! {
        () = serve_baseline(listener) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
