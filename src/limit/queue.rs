//! The bounded, timed wait for a concurrency slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The bounded wait for a concurrency slot.
#[derive(Debug)]
pub(super) struct Queue {
    pub(super) wait: bool,
    pub(super) timeout: Duration,
    pub(super) max: usize,
    pub(super) waiting: AtomicUsize,
}

/// A place in the queue, given back when dropped.
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Queue {
    /// A permit of `slots`: at once, or after waiting in the queue when it is on and not full.
    pub(super) async fn slot(&self, slots: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
            return Some(permit);
        }
        if !self.wait {
            return None;
        }
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _place = QueuePlace(&self.waiting);
        if ahead >= self.max {
            return None;
        }
        let acquired = tokio::time::timeout(self.timeout, Arc::clone(slots).acquire_owned());
        acquired.await.ok()?.ok()
    }
}
