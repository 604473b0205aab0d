//! Locking helpers shared across the crate.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, poisoned or not.
///
/// A panic while holding the crate's mutexes leaves consistent data (every
/// critical section is a handful of field updates), so a poisoned lock is
/// still usable, and one panicking thread does not take the others down.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
