//! Prometheus metrics: what an operator watches (requests by route and
//! status, logins and refreshes by outcome, the password-hash queue, open
//! connections, sessions and revocations), in the text exposition format
//! 0.0.4, and [`serve_metrics`], the `GET /metrics` listener of
//! `--metrics-addr`.
//!
//! Counters are plain atomics, bumped with one relaxed `fetch_add` where
//! the event happens; gauges are read, when scraped, from where the state
//! already lives (the hash queue, the connection slots, the session store).
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
//! hammering it holds none of the API's connection slots or memory. It
//! reads the request line itself rather than through hyper (see
//! [`serve_metrics`] for why).

use crate::app::App;
use crate::counters::{family, sample, Counters, Endpoint, CODES, LOGINS, REFRESHES};
use crate::error::ApiError;
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE as CONTENT_TYPE_HEADER};
use hyper::{Response, StatusCode};
use std::future::Future;
use std::io::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The media type of the text exposition format, as `GET /metrics`
/// answers with it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A gauge family of one sample.
fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, "gauge", help);
    sample(out, name, "", value);
}

/// An app's metrics, read when rendered: get it with [`App::metrics`] and
/// answer your own `/metrics` with [`Metrics::response`] (or
/// [`Metrics::render`] into a buffer of yours).
///
/// An embedder with a router of its own mounts them there, behind whatever
/// keeps them from the public:
///
/// ```
/// use password_bearer::{metrics::CONTENT_TYPE, token::SecretKey, users::Users, App, Config};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let app = App::new(Config::new(Users::demo(), SecretKey::random()?));
/// // In your handler of GET /metrics:
/// let response = app.metrics().response();
/// assert_eq!(response.headers()["content-type"], CONTENT_TYPE);
/// // Or the text alone, into a buffer of yours:
/// let mut text = String::new();
/// app.metrics().render(&mut text);
/// assert!(text.contains("password_bearer_logins_total{outcome=\"ok\"} 0\n"));
/// # Ok(())
/// # }
/// ```
///
/// Or it serves them on a listener of their own, as the binary does, with
/// [`serve_metrics`].
#[derive(Debug)]
pub struct Metrics<'a> {
    counters: &'a Counters,
    verifier: &'a crate::password::Verifier,
    slots: &'a crate::slots::Slots,
    sessions: Option<&'a crate::app::SessionState>,
}

impl<S: UserStore> App<S> {
    /// This app's metrics, for a `/metrics` route of your own (the binary
    /// serves them with [`serve_metrics`]).
    pub fn metrics(&self) -> Metrics<'_> {
        Metrics {
            counters: &self.counters,
            verifier: &self.verifier,
            slots: &self.slots,
            sessions: self.sessions.as_ref(),
        }
    }
}

impl Metrics<'_> {
    /// Appends every series to `out`, in the text exposition format 0.0.4.
    pub fn render(&self, out: &mut String) {
        let c = self.counters;
        let name = "password_bearer_requests_total";
        family(
            out,
            name,
            "counter",
            "Requests answered by the API's routes, by route and status code.",
        );
        for route in Endpoint::ALL {
            for code in 0..CODES {
                let count = c.requests[route as usize * CODES + code].load(Relaxed);
                if count > 0 {
                    let labels = format!("route=\"{}\",status=\"{}\"", route.label(), code + 100);
                    sample(out, name, &labels, count);
                }
            }
        }
        let name = "password_bearer_request_timeouts_total";
        family(
            out,
            name,
            "counter",
            "Requests answered 408: no answer, or no whole body, within the request timeout.",
        );
        sample(out, name, "", c.request_timeouts());
        let name = "password_bearer_logins_total";
        family(
            out,
            name,
            "counter",
            "Password logins by outcome: ok, failed (wrong password or user), throttled (429), \
             busy (503, no hash slot in time).",
        );
        for (outcome, label) in LOGINS {
            let count = c.logins[outcome as usize].load(Relaxed);
            sample(out, name, &format!("outcome=\"{label}\""), count);
        }
        if self.sessions.is_some() {
            let name = "password_bearer_refreshes_total";
            family(
                out,
                name,
                "counter",
                "Refresh grants by outcome: ok, failed (400), throttled (429), unavailable \
                 (503, session store down).",
            );
            for (i, label) in REFRESHES.iter().enumerate() {
                let count = c.refreshes[i].load(Relaxed);
                sample(out, name, &format!("outcome=\"{label}\""), count);
            }
            let name = "password_bearer_refresh_reuses_total";
            family(
                out,
                name,
                "counter",
                "Used-up refresh tokens presented again (a sign of theft); each revoked its session.",
            );
            sample(out, name, "", c.refresh_reuses.load(Relaxed));
        }
        let verifier = self.verifier;
        gauge(
            out,
            "password_bearer_hash_queue_depth",
            "Logins waiting for a password hash slot.",
            verifier.queue_depth(),
        );
        gauge(
            out,
            "password_bearer_hashes_in_progress",
            "Password hashes running now.",
            verifier.in_progress(),
        );
        let timings = verifier.timings();
        timings.wait.render(
            out,
            "password_bearer_hash_queue_wait_seconds",
            "Time logins waited for a hash slot (those refused busy excluded).",
        );
        timings.hash.render(
            out,
            "password_bearer_hash_duration_seconds",
            "Time one password hash took.",
        );
        gauge(
            out,
            "password_bearer_open_connections",
            "API connections open, over every listener.",
            self.slots.open(),
        );
        let name = "password_bearer_connections_refused_total";
        family(
            out,
            name,
            "counter",
            "API connections refused at once, their address at its cap.",
        );
        sample(out, name, "", self.slots.refused());
        if let Some(sessions) = self.sessions {
            if let Some(held) = sessions.store.session_count() {
                gauge(
                    out,
                    "password_bearer_sessions",
                    "Sessions held by the session store (expired ones until purged).",
                    held,
                );
            }
            gauge(
                out,
                "password_bearer_revocations",
                "Revocations held in the deny-list.",
                sessions.revocations.len(),
            );
            let name = "password_bearer_revocations_collapsed_total";
            family(
                out,
                name,
                "counter",
                "Deny-list entries collapsed into their user's mark (every token issued to \
                 that user until then), or without an owner dropped, to keep within the caps.",
            );
            sample(out, name, "", sessions.revocations.collapsed());
        }
    }

    /// Every series as a string; see [`Metrics::render`].
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.render(&mut out);
        out
    }

    /// The `200` answer to a scrape: the series, as [`CONTENT_TYPE`].
    pub fn response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.encode())));
        response
            .headers_mut()
            .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

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
    let slots = Arc::new(Semaphore::new(CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Histogram;

    #[test]
    fn every_route_and_code_has_its_own_cell() {
        let counters = Counters::default();
        counters.request(Endpoint::UsersMe, StatusCode::OK);
        counters.request(Endpoint::UsersMe, StatusCode::OK);
        counters.request(Endpoint::Other, StatusCode::NOT_FOUND);
        // Outside 100..=599: not counted, and no other cell touched.
        counters.request(Endpoint::Token, StatusCode::from_u16(999).unwrap());
        let cell = |route: Endpoint, code: usize| {
            counters.requests[route as usize * CODES + code - 100].load(Relaxed)
        };
        assert_eq!(cell(Endpoint::UsersMe, 200), 2);
        assert_eq!(cell(Endpoint::Other, 404), 1);
        let total: u64 = counters.requests.iter().map(|c| c.load(Relaxed)).sum();
        assert_eq!(total, 3);
    }

    #[test]
    fn paths_map_to_a_fixed_set_of_routes() {
        assert_eq!(Endpoint::of("/users/me"), Endpoint::UsersMe);
        assert_eq!(Endpoint::of("/docs/swagger-ui.css"), Endpoint::Docs);
        assert_eq!(Endpoint::of("/users/me/"), Endpoint::Other);
        assert_eq!(Endpoint::of("/anything/else"), Endpoint::Other);
    }

    #[test]
    fn a_histogram_renders_cumulative_buckets_in_seconds() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_millis(40));
        histogram.observe(Duration::from_secs(11));
        let mut out = String::new();
        histogram.render(&mut out, "x_seconds", "help");
        assert!(out.contains("x_seconds_bucket{le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_seconds_sum 11.043000\n"), "{out}");
        assert!(out.contains("x_seconds_count 3\n"), "{out}");
    }
}
