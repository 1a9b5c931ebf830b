//! Graceful shutdown of the connections one serving loop accepted: on
//! shutdown every connection is told to finish its in-flight request and
//! close, and the loop waits until the last one has; past the grace period,
//! the rest are cut off, and the loop waits until their tasks have ended.
//!
//! Not hyper-util's `GracefulShutdown`: its watcher is a watch channel's
//! `changed()`, polled on every poll of every connection, which cost about
//! 240 instructions per `GET /users/me` (callgrind, `benches/instructions.sh`),
//! 2% of the request. Here a connection hands its waker over once, and
//! each poll after that compares the waker and loads one atomic.

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

/// Serving as usual.
const SERVING: u8 = 0;
/// Shutting down: finish the request in flight, then close.
const CLOSING: u8 = 1;
/// Past the grace period: end now.
const CUT: u8 = 2;

/// The connections of one serving loop, and how far shutdown has gone.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    /// [`SERVING`], [`CLOSING`] or [`CUT`]; one atomic, so that a poll
    /// reads one word whatever the phase.
    phase: AtomicU8,
    connections: Mutex<Connections>,
    /// Notified when the last connection ends after shutdown began.
    all_closed: Notify,
}

/// The wakers of the live connections, each at an index reused once its
/// connection has ended.
#[derive(Debug, Default)]
struct Connections {
    /// `None` until the connection's first poll.
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
    live: usize,
}

impl Drain {
    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        // Nothing panics while holding the lock; a poisoned lock still holds
        // consistent entries.
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `connection` in until it ends. `shutdown` asks it to close
    /// after the request in flight (hyper's `graceful_shutdown`).
    pub(crate) fn watch<C: Future>(
        self: &std::sync::Arc<Self>,
        connection: C,
        shutdown: fn(Pin<&mut C>),
    ) -> Draining<C> {
        let mut connections = self.lock();
        connections.live += 1;
        let index = match connections.free.pop() {
            Some(index) => index,
            None => {
                connections.wakers.push(None);
                connections.wakers.len() - 1
            }
        };
        drop(connections);
        Draining {
            connection,
            shutdown,
            drain: self.clone(),
            index,
            waker: None,
            told: false,
        }
    }

    /// Tells every connection to close after its request in flight, then
    /// waits until all have ended.
    pub(crate) fn close(&self) -> impl Future<Output = ()> + '_ {
        self.enter(CLOSING)
    }

    /// Ends every connection now (each task returns at its next poll,
    /// dropping its connection), then waits until all have ended.
    pub(crate) fn cut(&self) -> impl Future<Output = ()> + '_ {
        self.enter(CUT)
    }

    async fn enter(&self, phase: u8) {
        self.phase.fetch_max(phase, Ordering::AcqRel);
        let wakers: Vec<Waker> = self.lock().wakers.iter().flatten().cloned().collect();
        wakers.into_iter().for_each(Waker::wake);
        loop {
            let closed = self.all_closed.notified();
            tokio::pin!(closed);
            // Registered before the count is read, so the last connection's
            // notification cannot fall between the two.
            closed.as_mut().enable();
            if self.lock().live == 0 {
                return;
            }
            closed.await;
        }
    }

    /// Hands the connection's waker over; then the phase. The order
    /// matters: `enter` sets the phase before it takes the wakers, so a
    /// connection either is woken or sees the phase here.
    fn register(&self, index: usize, waker: &Waker) -> u8 {
        self.lock().wakers[index] = Some(waker.clone());
        self.phase.load(Ordering::Acquire)
    }

    fn leave(&self, index: usize) {
        let mut connections = self.lock();
        connections.wakers[index] = None;
        connections.free.push(index);
        connections.live -= 1;
        let last = connections.live == 0;
        drop(connections);
        if last && self.phase.load(Ordering::Acquire) != SERVING {
            self.all_closed.notify_waiters();
        }
    }
}

pin_project! {
    /// A connection counted by a [`Drain`]: it resolves as the connection
    /// does (`Some`), is told to close when the drain closes, and resolves
    /// `None` at once when the drain cuts it off.
    pub(crate) struct Draining<C> {
        #[pin]
        connection: C,
        shutdown: fn(Pin<&mut C>),
        drain: std::sync::Arc<Drain>,
        // Where the drain keeps this connection's waker.
        index: usize,
        // The waker the drain holds for this connection.
        waker: Option<Waker>,
        // Whether `shutdown` was called.
        told: bool,
    }

    impl<C> PinnedDrop for Draining<C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.drain.leave(*this.index);
        }
    }
}

impl<C: Future> Future for Draining<C> {
    type Output = Option<C::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<C::Output>> {
        let mut this = self.project();
        let phase = if !*this.told {
            let phase = match this.waker {
                // The usual case: the same task polls again.
                Some(waker) if waker.will_wake(cx.waker()) => {
                    this.drain.phase.load(Ordering::Acquire)
                }
                _ => {
                    *this.waker = Some(cx.waker().clone());
                    this.drain.register(*this.index, cx.waker())
                }
            };
            if phase != SERVING {
                *this.told = true;
                (this.shutdown)(this.connection.as_mut());
            }
            phase
        } else {
            // Shutting down already: only a cut is news.
            this.drain.phase.load(Ordering::Acquire)
        };
        if phase == CUT {
            return Poll::Ready(None);
        }
        this.connection.poll(cx).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::oneshot;

    /// A connection that ends when told to shut down, or when `end` fires.
    struct Conn {
        told: bool,
        end: oneshot::Receiver<()>,
    }

    impl Future for Conn {
        type Output = &'static str;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
            if self.told {
                return Poll::Ready("told");
            }
            match Pin::new(&mut self.end).poll(cx) {
                Poll::Ready(_) => Poll::Ready("ended"),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    fn tell(conn: Pin<&mut Conn>) {
        conn.get_mut().told = true;
    }

    fn conn() -> (Conn, oneshot::Sender<()>) {
        let (tx, end) = oneshot::channel();
        (Conn { told: false, end }, tx)
    }

    #[tokio::test]
    async fn close_tells_idle_connections_and_waits_for_them() {
        let drain = Arc::new(Drain::default());
        let (a, _keep_a) = conn();
        let (b, _keep_b) = conn();
        let a = tokio::spawn(drain.watch(a, tell));
        let b = tokio::spawn(drain.watch(b, tell));
        tokio::task::yield_now().await; // both polled once, both pending
        tokio::time::timeout(Duration::from_secs(5), drain.close())
            .await
            .expect("close returns once both connections ended");
        assert_eq!(a.await.unwrap(), Some("told"));
        assert_eq!(b.await.unwrap(), Some("told"));
    }

    #[tokio::test]
    async fn a_connection_not_yet_polled_is_told_at_its_first_poll() {
        let drain = Arc::new(Drain::default());
        let (a, _keep) = conn();
        let watched = drain.watch(a, tell);
        let closing = tokio::spawn({
            let drain = drain.clone();
            async move { drain.close().await }
        });
        tokio::task::yield_now().await;
        assert!(!closing.is_finished(), "waits for the unpolled connection");
        assert_eq!(watched.await, Some("told"));
        closing.await.unwrap();
    }

    #[tokio::test]
    async fn ended_connections_free_their_entries() {
        let drain = Arc::new(Drain::default());
        for _ in 0..3 {
            let (c, end) = conn();
            let task = tokio::spawn(drain.watch(c, tell));
            end.send(()).unwrap();
            assert_eq!(task.await.unwrap(), Some("ended"));
        }
        {
            let connections = drain.lock();
            assert_eq!(connections.live, 0);
            assert_eq!(connections.wakers.len(), 1, "one entry, reused");
        }
        drain.close().await; // nothing to wait for
    }

    /// A connection that ignores being told to close (a request that never
    /// finishes).
    struct Stuck;

    impl Future for Stuck {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_cut_ends_connections_that_ignore_close() {
        let drain = Arc::new(Drain::default());
        let stuck = tokio::spawn(drain.watch(Stuck, |_| {}));
        tokio::task::yield_now().await;
        assert!(
            tokio::time::timeout(Duration::from_millis(50), drain.close())
                .await
                .is_err(),
            "close waits for the stuck connection"
        );
        tokio::time::timeout(Duration::from_secs(5), drain.cut())
            .await
            .expect("cut returns once the task has ended");
        assert_eq!(stuck.await.unwrap(), None);
        assert_eq!(drain.lock().live, 0);
    }
}
