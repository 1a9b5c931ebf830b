//! The serving loop: accept, one task per connection running hyper's HTTP/1
//! with a header-read timeout, and graceful shutdown.

use crate::app::App;
use crate::log;
use crate::users::UserStore;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// After a failed `accept` (out of file descriptors, say), wait this long
/// before the next: retrying at once would spin a core and fail again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` resolves; then stops
/// accepting, lets in-flight requests finish for up to the grace period, and
/// returns. The caller binds (port 0 in tests) and picks the signal.
pub async fn serve<S: UserStore>(
    listener: TcpListener,
    app: Arc<App<S>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    // The timer is what makes the header-read timeout fire (hyper panics on
    // a timeout without one); the timeout also closes idle keep-alives.
    http.timer(TokioTimer::new())
        .header_read_timeout(app.header_read_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    // A permit is taken before `accept` and moved into the connection's
    // task: at the cap the loop stops accepting, and new clients wait in the
    // kernel's backlog instead of costing memory here.
    let permits = Arc::new(Semaphore::new(app.max_connections));
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    log::line(format_args!("password-bearer: accept failed: {e}; retrying"));
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small responses must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |request| app.clone().serve_request(request, peer));
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A connection error (reset, timeout, malformed request) concerns
            // that client only; hyper has already answered or closed.
            let _ = connection.await;
            drop(permit);
        });
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(app.grace_period) => {
            log::line(format_args!(
                "password-bearer: grace period over; closing remaining connections"
            ));
        }
    }
    Ok(())
}
