//! Time limits on a request after its head (hyper's header-read timeout
//! covers the head): the request timeout, `--request-timeout-seconds`.
//!
//! - [`Answered`]: a handler, its body read included, must answer within
//!   the timeout, else the client gets 408 and the connection is closed. A
//!   body that stops arriving is what makes a handler wait that long.
//! - [`WriteStall`]: answers the client does not read must drain within
//!   the timeout, else the connection is closed. Without it, a client that
//!   pipelines requests and never reads holds its connection forever:
//!   hyper waits for the socket to take the answers and reads nothing more.
//!
//! Both arm a timer only once something has to wait, so a request answered
//! and written at once (`GET /users/me`, the hot path) costs neither a
//! clock read nor a timer.

use crate::counters::Counters;
use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use pin_project_lite::pin_project;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pin_project! {
    /// A handler's future, answered 408 if it takes longer than the
    /// timeout from its first wait (and counted: no route answered it).
    pub(crate) struct Answered<F> {
        #[pin]
        handler: F,
        timeout: Duration,
        counters: Arc<Counters>,
        // Boxed, and only once the handler waits: most requests never do,
        // and a `Sleep` would more than double the per-connection future.
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<F> Answered<F> {
    pub(crate) fn new(handler: F, timeout: Duration, counters: Arc<Counters>) -> Answered<F> {
        Answered {
            handler,
            timeout,
            counters,
            timer: None,
        }
    }
}

impl<F> Future for Answered<F>
where
    F: Future<Output = Response<Full<Bytes>>>,
{
    type Output = Response<Full<Bytes>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(response) = this.handler.poll(cx) {
            return Poll::Ready(response);
        }
        // The first wait comes with the first poll, right after hyper has
        // read the head: the timer runs from there.
        let timeout = *this.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            // The handler (and the body it was reading) is dropped with
            // this future; the 408 says `Connection: close`.
            Poll::Ready(()) => {
                this.counters.request_timed_out();
                Poll::Ready(ApiError::RequestTimeout.into_response())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

pin_project! {
    /// A connection's socket whose writes may not stay blocked longer than
    /// the timeout: from the first write the socket cannot take until all
    /// that was written has drained (hyper then flushes, and the flush
    /// succeeds). A client reading slowly but steadily drains it; one that
    /// stopped reading gets an error, which ends the connection.
    pub(crate) struct WriteStall<IO> {
        #[pin]
        io: IO,
        timeout: Duration,
        stalled: Option<Pin<Box<Sleep>>>,
    }
}

impl<IO> WriteStall<IO> {
    pub(crate) fn new(io: IO, timeout: Duration) -> WriteStall<IO> {
        WriteStall {
            io,
            timeout,
            stalled: None,
        }
    }
}

/// A write that could not proceed: the stall's timer starts (if it has not)
/// and, once it has run out, the write fails.
fn stall<T>(
    stalled: &mut Option<Pin<Box<Sleep>>>,
    timeout: Duration,
    cx: &mut Context<'_>,
) -> Poll<io::Result<T>> {
    let timer = stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
    match timer.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not read its answers within the request timeout",
        ))),
        Poll::Pending => Poll::Pending,
    }
}

impl<IO: AsyncRead> AsyncRead for WriteStall<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite> AsyncWrite for WriteStall<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        match this.io.poll_write(cx, buf) {
            Poll::Pending => stall(this.stalled, *this.timeout, cx),
            done => done,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        match this.io.poll_write_vectored(cx, bufs) {
            Poll::Pending => stall(this.stalled, *this.timeout, cx),
            done => done,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        match this.io.poll_flush(cx) {
            Poll::Pending => stall(this.stalled, *this.timeout, cx),
            // hyper flushes once its buffer is written: the stall is over.
            // (Checked first: dropping the `None` is a call on every flush.)
            done => {
                if this.stalled.is_some() {
                    *this.stalled = None;
                }
                done
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_handler_that_never_answers_gets_408_at_the_timeout() {
        let start = tokio::time::Instant::now();
        let counters = Arc::<Counters>::default();
        let never = std::future::pending::<Response<Full<Bytes>>>();
        let answer = Answered::new(never, TIMEOUT, counters.clone()).await;
        assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(answer.headers()["connection"], "close");
        assert_eq!(start.elapsed(), TIMEOUT);
        assert_eq!(counters.request_timeouts(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_that_answers_in_time_is_untouched() {
        let slow = async {
            tokio::time::sleep(TIMEOUT - Duration::from_millis(1)).await;
            ApiError::NotFound.into_response()
        };
        let counters = Arc::<Counters>::default();
        let answer = Answered::new(slow, TIMEOUT, counters.clone()).await;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        let at_once = Answered::new(
            std::future::ready(ApiError::NotFound.into_response()),
            TIMEOUT,
            counters.clone(),
        );
        tokio::pin!(at_once);
        let polled = futures_poll(at_once.as_mut());
        assert!(polled.is_ready());
        assert!(at_once.timer.is_none(), "no timer for an immediate answer");
        assert_eq!(counters.request_timeouts(), 0);
    }

    /// Polls once with a no-op waker.
    fn futures_poll<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        f.poll(&mut cx)
    }

    #[tokio::test(start_paused = true)]
    async fn writes_nobody_reads_fail_at_the_timeout() {
        let (ours, mut client) = tokio::io::duplex(64);
        let mut ours = WriteStall::new(ours, TIMEOUT);
        let start = tokio::time::Instant::now();
        let mut written = 0;
        let error = loop {
            match ours.write(&[0u8; 32]).await {
                Ok(n) => written += n,
                Err(e) => break e,
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(written, 64, "the pipe's capacity, then the stall");
        assert_eq!(start.elapsed(), TIMEOUT);
        // Nothing was lost before the stall.
        let mut got = [1u8; 64];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [0u8; 64]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_keeps_up_is_never_cut() {
        let (ours, mut client) = tokio::io::duplex(64);
        let mut ours = WriteStall::new(ours, TIMEOUT);
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut chunk = [0u8; 64];
            // Reads a chunk every 9 s: each stall drains within the timeout.
            loop {
                tokio::time::sleep(Duration::from_secs(9)).await;
                match client.read(&mut chunk).await {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n,
                }
            }
        });
        for _ in 0..8 {
            ours.write_all(&[7u8; 64]).await.unwrap();
            ours.flush().await.unwrap();
        }
        ours.shutdown().await.unwrap();
        drop(ours);
        assert_eq!(reader.await.unwrap(), 8 * 64);
    }
}
