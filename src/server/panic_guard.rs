//! The panic guard: a handler that panics, while routing or while
//! polled, is answered 500, and its connection and the server live on.

use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs a handler, answering 500 if it panics, in its synchronous part
/// (`start`, which routes) or while polled: one request's bug (or a
/// panicking user store) must not cost its connection, and never the
/// server. The panic message itself goes to stderr through the panic hook.
pub(crate) fn catch_panic<F>(start: impl FnOnce() -> F) -> CatchPanic<F> {
    CatchPanic {
        handler: std::panic::catch_unwind(AssertUnwindSafe(start)).ok(),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`catch_panic`]: the handler, pinned in place (a
    /// wrapping `async` block would store it twice in the per-connection
    /// future); `None` when routing itself panicked.
    pub(crate) struct CatchPanic<F> {
        #[pin]
        handler: Option<F>,
    }
}

impl<F> Future for CatchPanic<F>
where
    F: Future<Output = Response<Full<Bytes>>>,
{
    type Output = Response<Full<Bytes>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(handler) = self.project().handler.as_pin_mut() else {
            return Poll::Ready(ApiError::Internal.into_response());
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| handler.poll(cx))) {
            Ok(poll) => poll,
            // The handler is not polled again after this.
            Err(_) => Poll::Ready(ApiError::Internal.into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    #[tokio::test]
    async fn a_panic_while_routing_or_polled_is_a_500() {
        let routing = catch_panic(|| -> std::future::Ready<Response<Full<Bytes>>> {
            panic!("injected fault while routing")
        });
        assert_eq!(routing.await.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let polled = catch_panic(|| async {
            panic!("injected fault while polled");
            #[allow(unreachable_code)]
            ApiError::NotFound.into_response()
        });
        assert_eq!(polled.await.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let fine = catch_panic(|| std::future::ready(ApiError::NotFound.into_response()));
        assert_eq!(fine.await.status(), StatusCode::NOT_FOUND);
    }
}
