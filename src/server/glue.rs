//! hyper's side of a request: a handler as a hyper service calls it,
//! panics answered 500 ([`catch_panic`]), 408 past the request timeout
//! ([`Answered`]), and the `Result` hyper wants, never an `Err`.

use crate::app::App;
use crate::counters::Counters;
use crate::handlers::route;
use crate::server::deadline::Answered;
use crate::server::panic_guard::{catch_panic, CatchPanic};
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// [`App::handle`] as [`crate::serve`]'s hyper service calls it: the
/// app owned, the peer known, the request timeout applied, and the
/// `Result` hyper wants, with no `async` block between hyper and
/// [`route`].
pub(crate) fn serve_request<S, B>(
    app: Arc<App<S>>,
    request: Request<B>,
    peer: SocketAddr,
) -> Infallibly<Answered<CatchPanic<impl Future<Output = Response<Full<Bytes>>>>>>
where
    S: UserStore,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (timeout, counters) = (app.request_timeout, app.counters.clone());
    guarded(timeout, counters, move || route(app, request, Some(peer)))
}

/// A handler as a hyper service calls it: panics answered 500
/// ([`catch_panic`]), 408 past the request timeout ([`Answered`]), and the
/// `Result` hyper wants, never an `Err`.
pub(crate) fn guarded<F>(
    timeout: Duration,
    counters: Arc<Counters>,
    start: impl FnOnce() -> F,
) -> Infallibly<Answered<CatchPanic<F>>> {
    Infallibly {
        inner: Answered::new(catch_panic(start), timeout, counters),
    }
}

pin_project_lite::pin_project! {
    /// A response future as hyper's service wants it: never an `Err`.
    pub(crate) struct Infallibly<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for Infallibly<F> {
    type Output = Result<F::Output, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::SecretKey;
    use crate::users::Users;
    use crate::Config;

    #[test]
    fn the_per_connection_future_stays_small() {
        // hyper allocates the service future once per connection and keeps
        // it for the connection's life: 10,000 idle keep-alive connections
        // hold 10,000 of them. A plain `async fn` route made it 2.9 KB;
        // routing before the future exists makes it 144 bytes.
        let app = App::new(Config::new(
            Users::demo(),
            SecretKey::new(&[7u8; 32]).unwrap(),
        ));
        let request = Request::get("/").body(Full::new(Bytes::new())).unwrap();
        let size = std::mem::size_of_val(&app.handle(request, None));
        assert!(size <= 256, "the handle future is {size} bytes");
        let request = Request::get("/").body(Full::new(Bytes::new())).unwrap();
        let served = serve_request(Arc::new(app), request, ([127, 0, 0, 1], 9).into());
        let size = std::mem::size_of_val(&served);
        assert!(size <= 256, "the service future is {size} bytes");
    }
}
