//! The connection caps: the total (`--max-connections`) and the cap per
//! client address (`--max-connections-per-ip`), shared by every listener an
//! app is served on. ("Slots" are the password hashes' alone:
//! `Config::hash_slots`.)
//!
//! The total is a semaphore whose permit the serving loop takes before
//! `accept` (mini-redis's pattern): at the cap it stops accepting, and new
//! clients wait in the kernel's listen backlog instead of costing memory.
//! The per-address count is checked right after `accept`, the first moment
//! the address is known. A connection over its address's cap is refused at
//! once rather than queued, so one address holding its share never delays
//! another's clients.

use crate::addr::address_key;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The connection caps of an app, and the connections they hold.
#[derive(Debug)]
pub(crate) struct ConnectionCaps {
    total: Arc<Semaphore>,
    /// Most connections per address key; 0 counts nothing.
    per_address: usize,
    /// Connections held per address key; a key leaves at 0, so this holds
    /// at most one entry per connection. A std mutex: one map operation per
    /// connection opened or closed, never held across an await.
    held: Mutex<HashMap<IpAddr, usize>>,
    /// Connections open now, for the metrics (the semaphore's permits also
    /// count the ones each serving loop holds while it waits in `accept`).
    open: AtomicUsize,
    /// Connections refused over their address's cap, for the metrics.
    refused: AtomicU64,
}

/// One open connection's place under the caps, given back when dropped
/// (when its task ends).
#[derive(Debug)]
pub(crate) struct OpenConnection {
    _permit: OwnedSemaphorePermit,
    caps: Arc<ConnectionCaps>,
    /// The address key counted, when the per-address cap is on.
    address: Option<IpAddr>,
}

impl ConnectionCaps {
    /// `total` connections at once (at least 1), and at most `per_address`
    /// from one address key (0: no per-address cap).
    pub(crate) fn new(total: usize, per_address: usize) -> ConnectionCaps {
        ConnectionCaps {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_address,
            held: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// The per-address cap (0: none).
    pub(crate) fn per_address(&self) -> usize {
        self.per_address
    }

    /// Waits until a connection may be accepted under the total cap.
    pub(crate) async fn room(&self) -> OwnedSemaphorePermit {
        match self.total.clone().acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed.
            Err(_) => unreachable!("the connection semaphore is never closed"),
        }
    }

    /// The place of a connection accepted from `ip` with `permit`; `Err`
    /// with the address key when that address is at its cap (the permit
    /// then goes back at once).
    pub(crate) fn admit(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        ip: IpAddr,
    ) -> Result<OpenConnection, IpAddr> {
        let address = (self.per_address > 0).then(|| address_key(ip));
        if let Some(key) = address {
            let mut held = self.lock();
            let count = held.entry(key).or_insert(0);
            if *count >= self.per_address {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(key);
            }
            *count += 1;
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(OpenConnection {
            _permit: permit,
            caps: self.clone(),
            address,
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections refused so far, their address at its cap.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections held from `ip`'s address key now.
    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> usize {
        self.lock().get(&address_key(ip)).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Nothing panics under the lock; a poisoned map is still consistent.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.caps.open.fetch_sub(1, Ordering::Relaxed);
        let Some(key) = self.address else {
            return;
        };
        let mut held = self.caps.lock();
        if let Some(count) = held.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[tokio::test]
    async fn an_address_at_its_cap_is_refused_and_others_are_not() {
        let caps = Arc::new(ConnectionCaps::new(10, 2));
        let a = ip("127.0.0.2");
        let first = caps.admit(caps.room().await, a).unwrap();
        let _second = caps.admit(caps.room().await, a).unwrap();
        assert_eq!(caps.admit(caps.room().await, a).unwrap_err(), a);
        // The refused connection's permit went back: 8 left, not 7.
        assert_eq!(caps.total.available_permits(), 8);
        let _other = caps.admit(caps.room().await, ip("127.0.0.3")).unwrap();
        drop(first);
        assert_eq!(caps.held(a), 1);
        assert!(caps.admit(caps.room().await, a).is_ok());
    }

    #[tokio::test]
    async fn ipv6_counts_per_64() {
        let caps = Arc::new(ConnectionCaps::new(10, 1));
        let _held = caps.admit(caps.room().await, ip("2001:db8::1")).unwrap();
        assert!(caps
            .admit(caps.room().await, ip("2001:db8::ffff:2"))
            .is_err());
        assert!(caps.admit(caps.room().await, ip("2001:db8:0:1::1")).is_ok());
    }

    #[tokio::test]
    async fn zero_counts_nothing_and_released_addresses_leave_the_map() {
        let caps = Arc::new(ConnectionCaps::new(100, 0));
        let held: Vec<_> = (0..50)
            .map(|_| caps.total.clone().try_acquire_owned().unwrap())
            .map(|permit| caps.admit(permit, ip("127.0.0.2")).unwrap())
            .collect();
        assert!(caps.lock().is_empty());
        drop(held);
        let caps = Arc::new(ConnectionCaps::new(100, 5));
        let held: Vec<_> = (1..=20u8)
            .map(|i| {
                let permit = caps.total.clone().try_acquire_owned().unwrap();
                caps.admit(permit, IpAddr::from([127, 0, 0, i])).unwrap()
            })
            .collect();
        assert_eq!(caps.lock().len(), 20);
        drop(held);
        assert!(caps.lock().is_empty());
        assert_eq!(caps.total.available_permits(), 100);
    }
}
