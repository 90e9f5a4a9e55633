//! The store-wide memory budget for body bytes held by uploads and downloads: chunker buffers,
//! chunks and shards in flight, chunks read ahead. An operation reserves what it may hold
//! before it reads more; when the budget is spent it waits (so its client's socket is not read,
//! which is backpressure) and, past `budget_wait`, fails with [`Error::Unavailable`] (503, which
//! S3 clients retry) instead of allocating.
//!
//! Deadlock freedom: an upload takes, in one acquisition, enough for its chunker buffer and one
//! chunk in flight before it reads its body, and takes more only without waiting; a download
//! takes its read-ahead in order, so the chunk it must yield next always holds its share.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Error, Result};

/// Budget accounting unit: bytes are rounded up to KiB (a permit per KiB).
const UNIT: u64 = 1024;

/// A shared budget of bytes. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct MemoryBudget {
    sem: Arc<Semaphore>,
    units: u64,
    wait: Duration,
}

/// Bytes held against the budget; given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            metrics::gauge!("cairn_memory_budget_reserved_bytes").decrement(self.bytes as f64);
        }
    }
}

impl MemoryBudget {
    /// A budget of `bytes` (at least 1 MiB); waits for room at most `wait`.
    pub(crate) fn new(bytes: u64, wait: Duration) -> Self {
        let units = bytes
            .max(1 << 20)
            .div_ceil(UNIT)
            .min(Semaphore::MAX_PERMITS as u64)
            .min(u64::from(u32::MAX));
        metrics::gauge!("cairn_memory_budget_bytes").set((units * UNIT) as f64);
        Self {
            sem: Arc::new(Semaphore::new(units as usize)),
            units,
            wait,
        }
    }

    fn units_for(&self, bytes: u64) -> u32 {
        // An operation never needs more than the whole budget; asking for more would wait for ever.
        bytes.div_ceil(UNIT).clamp(1, self.units) as u32
    }

    fn reservation(&self, permit: OwnedSemaphorePermit, units: u32) -> Reservation {
        let bytes = u64::from(units) * UNIT;
        metrics::gauge!("cairn_memory_budget_reserved_bytes").increment(bytes as f64);
        Reservation {
            _permit: Some(permit),
            bytes,
        }
    }

    /// Reserves `bytes`, waiting for room at most the configured time.
    pub(crate) async fn reserve(&self, bytes: u64) -> Result<Reservation> {
        let units = self.units_for(bytes);
        match tokio::time::timeout(self.wait, self.sem.clone().acquire_many_owned(units)).await {
            Ok(Ok(permit)) => Ok(self.reservation(permit, units)),
            Ok(Err(_)) => Err(Error::Unavailable("the memory budget is closed".into())),
            Err(_) => {
                metrics::counter!("cairn_memory_budget_timeouts_total").increment(1);
                Err(Error::Unavailable(format!(
                    "no room in the memory budget for {} s; slow down",
                    self.wait.as_secs()
                )))
            }
        }
    }

    /// Reserves `bytes` if there is room now.
    pub(crate) fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        let units = self.units_for(bytes);
        let permit = self.sem.clone().try_acquire_many_owned(units).ok()?;
        Some(self.reservation(permit, units))
    }

    /// Bytes reserved now.
    pub(crate) fn reserved(&self) -> u64 {
        (self.units - self.sem.available_permits() as u64) * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_room_and_give_it_back() {
        let b = MemoryBudget::new(2 << 20, Duration::from_millis(50));
        let first = b.reserve(1 << 20).await.unwrap();
        let second = b.try_reserve(1 << 20).unwrap();
        assert_eq!(b.reserved(), 2 << 20);
        assert!(b.try_reserve(1).is_none());
        assert!(matches!(b.reserve(1).await, Err(Error::Unavailable(_))));
        drop(first);
        assert_eq!(b.reserved(), 1 << 20);
        // More than the whole budget is clamped to it, not refused for ever.
        drop(second);
        let all = b.reserve(10 << 20).await.unwrap();
        assert_eq!(b.reserved(), 2 << 20);
        drop(all);
        assert_eq!(b.reserved(), 0);
    }
}
