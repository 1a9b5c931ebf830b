//! Graceful shutdown of the connections one serving loop accepted: on
//! shutdown every connection is told to finish its in-flight request and
//! close, and the loop waits until the last one has.
//!
//! Not hyper-util's `GracefulShutdown`: its watcher is a watch channel's
//! `changed()`, polled on every poll of every connection, which cost about
//! 240 instructions per `GET /users/me` (callgrind, `benches/instructions.sh`),
//! 2% of the request. Here a connection hands its waker over once, and
//! each poll after that compares the waker and loads one atomic.

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

/// The connections of one serving loop, and whether it is shutting down.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    closing: AtomicBool,
    connections: Mutex<Connections>,
    /// Notified when the last connection ends after shutdown began.
    all_closed: Notify,
}

/// The wakers of the live connections, in reusable slots.
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
        // consistent slots.
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
        let slot = match connections.free.pop() {
            Some(slot) => slot,
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
            slot,
            waker: None,
            told: false,
        }
    }

    /// Tells every connection to close after its request in flight, then
    /// waits until all have ended.
    pub(crate) async fn close(&self) {
        self.closing.store(true, Ordering::Release);
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

    /// Hands the connection's waker over; then whether shutdown has begun.
    /// The order matters: `close` sets the flag before it takes the wakers,
    /// so a connection either is woken or sees the flag here.
    fn register(&self, slot: usize, waker: &Waker) -> bool {
        self.lock().wakers[slot] = Some(waker.clone());
        self.closing.load(Ordering::Acquire)
    }

    fn leave(&self, slot: usize) {
        let mut connections = self.lock();
        connections.wakers[slot] = None;
        connections.free.push(slot);
        connections.live -= 1;
        let last = connections.live == 0;
        drop(connections);
        if last && self.closing.load(Ordering::Acquire) {
            self.all_closed.notify_waiters();
        }
    }
}

pin_project! {
    /// A connection counted by a [`Drain`]: it resolves as the connection
    /// does, and is told to close when the drain closes.
    pub(crate) struct Draining<C> {
        #[pin]
        connection: C,
        shutdown: fn(Pin<&mut C>),
        drain: std::sync::Arc<Drain>,
        slot: usize,
        // The waker the drain holds for this connection.
        waker: Option<Waker>,
        // Whether `shutdown` was called.
        told: bool,
    }

    impl<C> PinnedDrop for Draining<C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.drain.leave(*this.slot);
        }
    }
}

impl<C: Future> Future for Draining<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !*this.told {
            let closing = match this.waker {
                // The usual case: the same task polls again.
                Some(waker) if waker.will_wake(cx.waker()) => {
                    this.drain.closing.load(Ordering::Acquire)
                }
                _ => {
                    *this.waker = Some(cx.waker().clone());
                    this.drain.register(*this.slot, cx.waker())
                }
            };
            if closing {
                *this.told = true;
                (this.shutdown)(this.connection.as_mut());
            }
        }
        this.connection.poll(cx)
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
        assert_eq!(a.await.unwrap(), "told");
        assert_eq!(b.await.unwrap(), "told");
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
        assert_eq!(watched.await, "told");
        closing.await.unwrap();
    }

    #[tokio::test]
    async fn ended_connections_free_their_slots() {
        let drain = Arc::new(Drain::default());
        for _ in 0..3 {
            let (c, end) = conn();
            let task = tokio::spawn(drain.watch(c, tell));
            end.send(()).unwrap();
            assert_eq!(task.await.unwrap(), "ended");
        }
        {
            let connections = drain.lock();
            assert_eq!(connections.live, 0);
            assert_eq!(connections.wakers.len(), 1, "one slot, reused");
        }
        drain.close().await; // nothing to wait for
    }
}
