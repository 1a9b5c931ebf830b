//! The performance baseline: a bare hyper server with the settings a safe
//! server needs (timer, 10 s header-read timeout, keep-alive, TCP_NODELAY,
//! the same listen backlog as `password-bearer`) that answers every request
//! with the exact bytes of johndoe's `GET /users/me`, and checks nothing.
//! Whatever `password-bearer` costs beyond this is the price of auth.
//!
//! Built with the `tls` feature and given a certificate and key, it serves
//! the same answer over TLS with the rustls configuration `password-bearer
//! --tls-cert` serves (`Tls::server_config`: the provider, versions, ALPN
//! and certificate), the handshake in each connection's task: the baseline
//! `benches/load.sh tls` compares TLS against.
//!
//! It runs on the runtime `password-bearer` picks for the same cores
//! (current-thread on one core, else a worker per core), so that both
//! sides run their best configuration.
//!
//! ```sh
//! cargo run --release --example baseline -- 8002
//! cargo run --release --features tls --example baseline -- 8443 cert.pem key.pem
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
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// johndoe's `/users/me` body, byte for byte.
pub(crate) const BODY: &[u8] =
    br#"{"username":"johndoe","email":"johndoe@example.com","full_name":"John Doe","disabled":false}"#;

/// The same backlog as the `password-bearer` binary.
pub(crate) const LISTEN_BACKLOG: u32 = 4096;

/// The hyper settings of `password-bearer`'s loop.
fn http() -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .keep_alive(true);
    http
}

/// The fixed answer, whatever the request. The request is dropped here,
/// before the answer's future runs, as a handler that reads nothing of it
/// would (an `async fn` would hold it, its body included, until answered,
/// which costs hyper some 600 instructions a request:
/// `benches/instructions.sh`).
fn answer(
    _request: Request<hyper::body::Incoming>,
) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    std::future::ready(Ok(response))
}

/// The next connection, with Nagle off.
async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Serves the fixed answer on `listener` until the task is dropped.
pub(crate) async fn serve_baseline(listener: TcpListener) {
    let http = http();
    loop {
        let stream = accept(&listener).await;
        let connection = http.serve_connection(TokioIo::new(stream), service_fn(answer));
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

/// [`serve_baseline`] over TLS with `config`.
#[cfg(feature = "tls")]
async fn serve_baseline_tls(listener: TcpListener, config: std::sync::Arc<rustls::ServerConfig>) {
    let http = http();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let stream = accept(&listener).await;
        let (acceptor, http) = (acceptor.clone(), http.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let _ = http
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

/// The runtime `password-bearer` would pick for the same cores
/// (src/bin/password-bearer/main.rs): current-thread when this process may
/// run on one core (`taskset -c 0`), else multi-threaded with a worker per
/// core. Each side then runs its best configuration for the cores it has,
/// and the comparison is fair: on one core the multi-threaded runtime's
/// work-stealing bookkeeping (about 900 instructions a request) would
/// be counted against the baseline.
#[allow(dead_code)]
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    builder.enable_all().build()
}

#[allow(dead_code)] // benches include this file for `serve_baseline` only
fn main() -> std::io::Result<()> {
    runtime()?.block_on(serve_main())
}

/// Binds the port of the command line and serves until Ctrl-C.
#[allow(dead_code)]
async fn serve_main() -> std::io::Result<()> {
    let invalid = |message: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, message);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = match args.first() {
        Some(arg) => arg
            .parse()
            .map_err(|_| invalid("the port must be a number"))?,
        None => 8002,
    };
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(([127, 0, 0, 1], port).into())?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    let local = listener.local_addr()?;
    match &args[1.min(args.len())..] {
        // The plain baseline's future as it always was (no box): the
        // instruction counts of `benches/instructions.sh` compare with it.
        [] => {
            eprintln!("listening on http://{local}");
            tokio::select! {
                () = serve_baseline(listener) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(feature = "tls")]
        [cert, key] => {
            let tls =
                password_bearer::tls::Tls::load(cert, key).map_err(|e| invalid(&e.to_string()))?;
            eprintln!("listening on https://{local}");
            tokio::select! {
                () = serve_baseline_tls(listener, tls.server_config()) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        _ => {
            return Err(invalid(if cfg!(feature = "tls") {
                "usage: baseline [PORT [CERT KEY]]"
            } else {
                "usage: baseline [PORT] (CERT KEY need --features tls)"
            }))
        }
    }
    Ok(())
}
