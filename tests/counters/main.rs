//! Tests that read process-wide counters (`runtime::sessions_created`,
//! `runtime::inference_time`).
//!
//! They live apart from `tests/integration`, in a binary of their own, because any session
//! another test created or ran in the same process would be counted; and each takes
//! [`alone`] so they do not count each other's.

#[path = "../common/mod.rs"]
mod common;

mod inference_time;
mod lazy_models;

/// Holds every other test of this binary off while a test reads the counters.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A failed test poisons the lock; the next one may still run alone.
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
