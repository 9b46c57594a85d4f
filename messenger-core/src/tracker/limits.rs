//! Limits on what all connections together may hold: how many connections (in all and per IP
//! address), and how many bytes of incomplete frames. Each connection holds a [`Permit`] and a
//! [`PartialShare`]; both give back what they hold when dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Counts open connections, in all and per source IP address.
#[derive(Debug)]
pub(crate) struct ConnectionLimiter {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Permit {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl ConnectionLimiter {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnectionLimiter {
            max_total,
            max_per_ip,
            open: Mutex::new(Open::default()),
        }
    }

    /// Admits one more connection from `ip`, or says which limit it would pass.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, String> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            return Err(format!(
                "the tracker has its limit of {} connections (max_connections); try again later",
                self.max_total
            ));
        }
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return Err(format!(
                "{ip} already has {from_ip} connections, the limit per address (max_connections_per_ip)"
            ));
        }
        open.total += 1;
        *open.per_ip.entry(ip).or_insert(0) += 1;
        Ok(Permit {
            limiter: Arc::clone(self),
            ip,
        })
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self
            .limiter
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// The budget of bytes held in incomplete frames, shared by every connection.
#[derive(Debug)]
pub(crate) struct PartialBudget {
    limit: usize,
    held: AtomicUsize,
}

/// What one connection holds of the [`PartialBudget`].
#[derive(Debug)]
pub(crate) struct PartialShare {
    budget: Arc<PartialBudget>,
    held: usize,
}

impl PartialBudget {
    pub(crate) fn new(limit: usize) -> Self {
        PartialBudget {
            limit,
            held: AtomicUsize::new(0),
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn share(self: &Arc<Self>) -> PartialShare {
        PartialShare {
            budget: Arc::clone(self),
            held: 0,
        }
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

impl PartialShare {
    /// The connection now holds `bytes` of incomplete frames. `false` (and nothing more
    /// held) when the growth would pass the budget.
    pub(crate) fn hold(&mut self, bytes: usize) -> bool {
        if bytes <= self.held {
            self.budget
                .held
                .fetch_sub(self.held - bytes, Ordering::Relaxed);
            self.held = bytes;
            return true;
        }
        let more = bytes - self.held;
        let before = self.budget.held.fetch_add(more, Ordering::Relaxed);
        if before + more > self.budget.limit {
            self.budget.held.fetch_sub(more, Ordering::Relaxed);
            return false;
        }
        self.held = bytes;
        true
    }
}

impl Drop for PartialShare {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.held, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_limited_in_all_and_per_address() {
        let limiter = Arc::new(ConnectionLimiter::new(3, 2));
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let a1 = limiter.admit(a).expect("first");
        let _a2 = limiter.admit(a).expect("second");
        let err = limiter.admit(a).expect_err("third from a");
        assert!(err.contains("max_connections_per_ip"), "{err}");
        let _b1 = limiter.admit(b).expect("other address");
        let err = limiter.admit(b).expect_err("total");
        assert!(err.contains("max_connections"), "{err}");
        drop(a1);
        assert_eq!(limiter.open(), 2);
        let _a3 = limiter.admit(a).expect("a place was freed");
    }

    #[test]
    fn partial_bytes_share_one_budget() {
        let budget = Arc::new(PartialBudget::new(100));
        let mut x = budget.share();
        let mut y = budget.share();
        assert!(x.hold(60));
        assert!(!y.hold(41), "60 + 41 passes 100");
        assert_eq!(budget.held(), 60);
        assert!(y.hold(40));
        assert!(x.hold(10), "shrinking always works");
        assert!(y.hold(90));
        drop(y);
        assert_eq!(budget.held(), 10);
        drop(x);
        assert_eq!(budget.held(), 0);
    }
}
