//! Prometheus metrics: what an operator watches (requests by route and
//! status, logins and refreshes by outcome, the password-hash queue, open
//! connections, sessions and revocations), in the text exposition format
//! 0.0.4, and [`serve_metrics`], the `GET /metrics` listener of
//! `--metrics-addr`.
//!
//! Counters are plain atomics, bumped with one relaxed `fetch_add` where
//! the event happens; gauges are read, when scraped, from where the state
//! already lives (the hash queue, the connection caps, the session store).
//! Written by hand: a dozen series do not pay for a metrics crate's build
//! time and binary size. Requests are counted where the access log line is
//! written, when a route has its answer: the route is known there without
//! matching the path again, and `GET /users/me` pays one call and one
//! `fetch_add` (24 instructions in all, `benches/instructions.sh`). So,
//! like the access log, the count leaves out what no route answered: a
//! request cut by the request timeout (the client gets 408), one whose
//! handler panicked (500), and those hyper answers itself (a malformed or
//! oversized head). A layer around the request's future that saw those
//! too cost 170 instructions per request.
//!
//! The listener is its own, never the API's, so the numbers are never
//! public by accident, and it is bounded on its own: four connections at
//! once (more wait in the kernel's backlog), five seconds for a whole
//! exchange, an 8 KiB request head, one request per connection. A client
//! hammering it holds none of the API's connections or memory. It
//! reads the request line itself rather than through hyper (see
//! [`serve_metrics`] for why).
//!
//! The series themselves are the app's ([`App::metrics`], rendered in
//! `src/app/metrics.rs`); this file is the listener. Public as
//! `password_bearer::metrics`.

pub use crate::app::metrics::{Metrics, CONTENT_TYPE};
use crate::app::App;
use crate::error::ApiError;
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONNECTION, CONTENT_LENGTH};
use hyper::{Response, StatusCode};
use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Scrapes served at once; more wait in the listen backlog. A scraper
/// needs one; a few leave room for a person with curl.
const CONNECTIONS: usize = 4;

/// Time a connection has for its whole exchange: its request head sent,
/// the answer written. A scraper needs milliseconds.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest request head read; a larger one gets 431.
const MAX_HEAD: usize = 8192;

/// After a failed `accept`, wait this long before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `GET /metrics` for `app` on `listener` until `shutdown`
/// resolves: the series as [`CONTENT_TYPE`]; 404 for other paths, 405 for
/// other methods. Bounded on its own, apart from the API's limits: at most
/// four connections at once (more wait in the kernel's backlog), each with
/// five seconds for its whole exchange and a request head of at most
/// 8 KiB; one request per connection (`Connection: close`). Bind it to an
/// address only your monitoring reaches. Scrapes in flight at `shutdown`
/// finish within their five seconds.
///
/// Not hyper, on purpose: a second hyper server in the binary shares
/// hyper's connection code with the API's, and LLVM then stops inlining it
/// into the API's connections, which made every `GET /users/me` 190 to
/// 730 instructions dearer (`benches/instructions.sh`). A request line is
/// all a scrape needs read.
///
/// ```
/// use password_bearer::{serve, serve_metrics, token::SecretKey, users::Users, App, Config};
/// use std::sync::Arc;
/// use tokio::net::TcpListener;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let app = Arc::new(App::new(Config::new(Users::demo(), SecretKey::random()?)));
/// let api = TcpListener::bind("127.0.0.1:0").await?;
/// let metrics = TcpListener::bind("127.0.0.1:0").await?;
/// // Your shutdown signal for each; here, both stop at once.
/// let stop = async {};
/// tokio::join!(
///     serve(api, app.clone(), stop),
///     serve_metrics(metrics, app, async {}),
/// );
/// # Ok(())
/// # }
/// ```
pub async fn serve_metrics<S: UserStore>(
    listener: TcpListener,
    app: Arc<App<S>>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => unreachable!("the metrics semaphore is never closed"),
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of descriptors, say: the API's loop logs it.
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        tokio::spawn(async move {
            // A client too slow, or gone: nothing to tell anyone.
            let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(stream, &app)).await;
            drop(permit);
        });
    }
}

/// Reads one request head from `stream`, answers it and closes.
async fn exchange<S: UserStore>(mut stream: TcpStream, app: &App<S>) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0; 1024];
    let answer = loop {
        match find(&head, b"\r\n\r\n") {
            Some(end) if end + 4 <= MAX_HEAD => break scrape(app, &head[..end]),
            _ if head.len() >= MAX_HEAD => break bare(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
            _ => {}
        }
        let read = read_some(&stream, &mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..read]);
    };
    stream.write_all(&http1_bytes(answer).await).await?;
    stream.shutdown().await?;
    // Until the client closes: a close with its bytes unread would be a
    // reset, which may cost the client the answer.
    while read_some(&stream, &mut chunk).await? > 0 {}
    Ok(())
}

/// Reads what `stream` has, waiting until it has something (0: closed).
/// Not `AsyncRead`, on purpose: a second caller of `TcpStream`'s
/// `poll_read` (the API's connections being the first) makes LLVM stop
/// inlining it there, 160 instructions more per `GET /users/me`.
async fn read_some(stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            read => return read,
        }
    }
}

/// The answer to the request whose head (up to its blank line) is `head`.
fn scrape<S: UserStore>(app: &App<S>, head: &[u8]) -> Response<Full<Bytes>> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bare(StatusCode::BAD_REQUEST);
    };
    if !version.starts_with(b"HTTP/1.") || !target.starts_with(b"/") {
        return bare(StatusCode::BAD_REQUEST);
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => app.metrics().response(),
        (_, b"/metrics") => ApiError::MethodNotAllowed("GET").into_response(),
        _ => ApiError::NotFound.into_response(),
    }
}

/// An answer with no body.
fn bare(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}

/// `response` as HTTP/1.1 bytes, with its length and `Connection: close`.
async fn http1_bytes(response: Response<Full<Bytes>>) -> Vec<u8> {
    let (parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let mut out = Vec::with_capacity(256 + body.len());
    let reason = parts.status.canonical_reason().unwrap_or("");
    let _ = write!(out, "HTTP/1.1 {} {reason}\r\n", parts.status.as_u16());
    for (name, value) in &parts.headers {
        if name != CONTENT_LENGTH && name != CONNECTION {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    let _ = write!(
        out,
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(&body);
    out
}

/// Where `needle` starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
