//! The one way Jubilant DB takes a `std::sync::Mutex` (engine, simulated
//! environment, client, simulator).
//!
//! Policy: **a poisoned mutex is taken anyway.** Poison means a thread
//! panicked while holding the guard, and a panic is a bug that already
//! fails loudly where it happened: the simulator reports the seed, and the
//! engine turns what it cannot finish into a typed failure (a store that
//! stops, a WAL that refuses writes). What runs after the panic,
//! destructors that release locks, pins and slots among them, must not
//! panic a second time (that would abort the simulator instead of reporting
//! the seed). Critical sections are short and never span an `.await`
//! (ARCHITECTURE.md), so no lock is held across a suspension either.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, poisoned or not.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_poisoned_mutex_is_taken_with_what_it_held() {
        let shared = Arc::new(Mutex::new(1));
        let poisoner = Arc::clone(&shared);
        let panicked = std::panic::catch_unwind(move || {
            let mut guard = poisoner.lock().expect("first");
            *guard = 2;
            panic!("poison it");
        });
        assert!(panicked.is_err());
        assert!(shared.is_poisoned());
        assert_eq!(*super::lock(&shared), 2);
    }
}
