//! Lock helpers shared by the store, the worker and the admin layer.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: the data behind our mutexes stays
/// consistent across a panic (each critical section leaves it whole).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
