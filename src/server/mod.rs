//! The serving loop: accept under the connection caps, one task per
//! connection running hyper's HTTP/1 with a header-read timeout and the
//! request deadlines, and graceful shutdown. The transports, plain TCP and
//! (the `tls` feature) TLS, differ in one `match` in the loop.
//!
//! The serving layer, a file per job:
//!
//! - `mod.rs`: the accept loop ([`serve`], [`serve_with`], `serve_tls*`);
//! - `caps.rs`: the connection caps, in total and per address;
//! - `deadline.rs`: the request timeout and the write-stall check;
//! - `drain.rs`: graceful shutdown of the connections;
//! - `glue.rs`: a handler as hyper's service calls it (panics answered
//!   500, 408 past the request timeout, never an `Err`);
//! - `panic_guard.rs`: the 500 of a handler that panicked;
//! - `access_log.rs`: the access log's line;
//! - `tls.rs` (the `tls` feature, public as `password_bearer::tls`): the
//!   certificate and key, reloadable, and the handshake;
//! - `metrics.rs` (public as `password_bearer::metrics`): the `/metrics`
//!   listener, [`serve_metrics`].
//!
//! `caps`, `deadline`, `drain`, `panic_guard`, `access_log` and `tls` sit
//! below `App` (`tests/architecture.rs` places them): the app holds the
//! caps, and the handlers write the access log.

pub(crate) mod access_log;
pub(crate) mod caps;
mod deadline;
mod drain;
mod glue;
pub mod metrics;
pub(crate) mod panic_guard;
#[cfg(feature = "tls")]
pub mod tls;

pub use metrics::serve_metrics;

use crate::app::App;
use crate::error::TOO_MANY_CONNECTIONS;
use crate::logging::{self, SERVER_ERROR, SERVER_WARN};
use crate::server::caps::OpenConnection;
use crate::server::deadline::WriteStall;
use crate::server::drain::{Drain, Draining};
use crate::server::glue::{guarded, serve_request};
#[cfg(feature = "tls")]
use crate::server::tls::{Tls, TlsConnection};
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The largest request head (request line and headers) read: a longer one
/// is answered 431 and its connection closed. hyper buffers a head whole
/// before parsing it, up to its read buffer's cap (~400 KiB by default), so
/// the cap is what one connection can make the server hold; 16 KiB, as
/// uvicorn (h11) and Node allow, fits any client of this API (a bearer
/// token is at most 4 KiB, [`MAX_TOKEN_LEN`](crate::token::MAX_TOKEN_LEN))
/// with room for the cookies a browser sends to `/docs`. It is also the
/// read buffer's cap once the head is read, so a body arrives in chunks of
/// at most this much.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// After a failed `accept` (out of file descriptors, say), wait this long
/// before the next: retrying at once would spin a core and fail again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` resolves; then stops
/// accepting, lets in-flight requests finish for up to the grace period,
/// ends what is left, and returns once every connection's task has ended.
/// The caller binds (port 0 in tests) and picks the signal. Failures of
/// single connections, and of `accept`, are that connection's or logged
/// and retried: nothing ends the loop but `shutdown`.
pub async fn serve<S: UserStore>(
    listener: TcpListener,
    app: Arc<App<S>>,
    shutdown: impl Future<Output = ()>,
) {
    serve_app(listener, app, Transport::Plain, shutdown).await
}

/// [`serve`] over TLS (the `tls` feature): each connection's handshake,
/// within the header-read timeout, in the connection's own task under the
/// same caps; then the same HTTP/1. `tls` stays the caller's, to
/// [`Tls::reload`] when the files are renewed.
#[cfg(feature = "tls")]
pub async fn serve_tls<S: UserStore>(
    listener: TcpListener,
    app: Arc<App<S>>,
    tls: Arc<Tls>,
    shutdown: impl Future<Output = ()>,
) {
    serve_app(listener, app, Transport::Tls(tls), shutdown).await
}

/// The app's own routes, on `transport`.
async fn serve_app<S: UserStore>(
    listener: TcpListener,
    app: Arc<App<S>>,
    transport: Transport,
    shutdown: impl Future<Output = ()>,
) {
    let service_app = app.clone();
    let service = move |peer: SocketAddr| {
        let app = service_app.clone();
        service_fn(move |request| serve_request(app.clone(), request, peer))
    };
    serve_loop(listener, &app, service, transport, shutdown).await
}

/// [`serve`] for an embedder's own routes: the same loop and limits (the
/// app's header-read timeout, request timeout, connection caps, grace
/// period, a panic answered 500), with `handler` answering every request.
/// It gets the app, the request and the client's address; hand what is not
/// yours to [`App::handle`] with that address (see `examples/embed.rs`).
pub async fn serve_with<S, H, F>(
    listener: TcpListener,
    app: Arc<App<S>>,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    S: UserStore,
    H: Fn(Arc<App<S>>, Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    serve_handler(listener, app, handler, Transport::Plain, shutdown).await
}

/// [`serve_with`] over TLS, as [`serve_tls`] is [`serve`] over TLS.
#[cfg(feature = "tls")]
pub async fn serve_tls_with<S, H, F>(
    listener: TcpListener,
    app: Arc<App<S>>,
    tls: Arc<Tls>,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    S: UserStore,
    H: Fn(Arc<App<S>>, Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    serve_handler(listener, app, handler, Transport::Tls(tls), shutdown).await
}

/// An embedder's `handler`, on `transport`.
async fn serve_handler<S, H, F>(
    listener: TcpListener,
    app: Arc<App<S>>,
    handler: H,
    transport: Transport,
    shutdown: impl Future<Output = ()>,
) where
    S: UserStore,
    H: Fn(Arc<App<S>>, Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let service_app = app.clone();
    let timeout = app.request_timeout;
    let service = move |peer: SocketAddr| {
        let (app, handler) = (service_app.clone(), handler.clone());
        service_fn(move |request| {
            let counters = app.counters.clone();
            guarded(timeout, counters, || handler(app.clone(), request, peer))
        })
    };
    serve_loop(listener, &app, service, transport, shutdown).await
}

/// How an accepted connection reaches hyper: the TCP stream as it is, or
/// through TLS. The one difference between the transports in the loop.
enum Transport {
    Plain,
    #[cfg(feature = "tls")]
    Tls(Arc<Tls>),
}

/// The loop they all serve: `service` makes each connection's hyper
/// service from the client's address, `transport` carries its bytes.
async fn serve_loop<S, M, Svc>(
    listener: TcpListener,
    app: &App<S>,
    mut service: M,
    transport: Transport,
    shutdown: impl Future<Output = ()>,
) where
    S: UserStore,
    M: FnMut(SocketAddr) -> Svc,
    Svc: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>
        + Send
        + 'static,
    Svc::Future: Send + 'static,
{
    let mut http = http1::Builder::new();
    // The timer is what makes the header-read timeout fire (hyper panics on
    // a timeout without one); the timeout also closes idle keep-alives.
    http.timer(TokioTimer::new())
        .header_read_timeout(app.header_read_timeout)
        .keep_alive(true)
        // Over it, hyper answers 431 (its `Parse::TooLarge`) and closes.
        .max_buf_size(MAX_HEAD_BYTES);
    let drain = Arc::new(Drain::default());
    // The tallied log events' summaries, logged as they fall due (a tally
    // otherwise speaks only when its event recurs). Polled by this loop
    // rather than a task of its own: a spawned future type costs binary.
    let tally_due = tokio::time::sleep(TALLY_TICK);
    tokio::pin!(shutdown, tally_due);

    loop {
        // A place under the total cap is taken before `accept` and moved
        // into the connection's task: at the cap the loop stops accepting,
        // and new clients wait in the kernel's backlog instead of costing
        // memory here.
        let permit = tokio::select! {
            permit = app.connections.room() => permit,
            () = &mut shutdown => break,
            () = &mut tally_due => {
                log_tallies(tally_due.as_mut());
                continue;
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    logging::emit(
                        SERVER_ERROR,
                        format_args!("password-bearer: accept failed: {e}; retrying"),
                    );
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
            () = &mut tally_due => {
                log_tallies(tally_due.as_mut());
                continue;
            }
        };
        let open = match app.connections.admit(permit, peer.ip()) {
            Ok(open) => open,
            Err(address) => {
                // Refused at once, so that this address's excess never
                // waits in front of anyone else's clients. The socket is
                // new, its send buffer empty: the write cannot block.
                let _ = stream.try_write(TOO_MANY_CONNECTIONS);
                logging::tally(
                    SERVER_WARN,
                    format_args!(
                        "connection refused address={address} (at its cap of {})",
                        app.connections.per_address()
                    ),
                );
                continue;
            }
        };
        // Small responses must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        // Under TLS too: a client that stops reading stalls the encrypted
        // writes as it would the plain ones.
        let io = WriteStall::new(stream, app.request_timeout);
        match &transport {
            Transport::Plain => {
                let connection = http.serve_connection(TokioIo::new(io), service(peer));
                spawn(drain.watch(connection, |c| c.graceful_shutdown()), open);
            }
            // The handshake is the connection's task's first step, never
            // the loop's: a client slow to shake hands holds its own place
            // and nobody else's time.
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => {
                let connection = TlsConnection::new(
                    tls,
                    io,
                    http.clone(),
                    service(peer),
                    app.header_read_timeout,
                );
                spawn(
                    drain.watch(connection, TlsConnection::graceful_shutdown),
                    open,
                );
            }
        }
    }

    drop(listener);
    let closed = tokio::time::timeout(app.grace_period, drain.close()).await;
    if closed.is_err() {
        logging::emit(
            SERVER_WARN,
            format_args!("password-bearer: grace period over; closing remaining connections"),
        );
        drain.cut().await;
    }
    logging::emit_all();
}

/// Runs one connection in a task of its own, which holds the connection's
/// place under the caps until it ends.
fn spawn<C>(connection: Draining<C>, open: OpenConnection)
where
    C: Future + Send + 'static,
    C::Output: Send,
{
    tokio::spawn(async move {
        // A connection error (reset, timeout, malformed request, failed
        // handshake) concerns that client only; hyper has already answered
        // or closed.
        let _ = connection.await;
        drop(open);
    });
}

/// How often, at most, the serving loop looks for tallies due: a summary
/// may come this much after its minute.
const TALLY_TICK: Duration = Duration::from_secs(10);

/// Logs the tallies due, and sets `timer` for the next (within
/// [`TALLY_TICK`]).
fn log_tallies(timer: std::pin::Pin<&mut tokio::time::Sleep>) {
    let wait = logging::emit_due()
        .map_or(TALLY_TICK, |due| {
            due.saturating_duration_since(std::time::Instant::now())
        })
        .clamp(Duration::from_millis(100), TALLY_TICK);
    timer.reset(tokio::time::Instant::now() + wait);
}
