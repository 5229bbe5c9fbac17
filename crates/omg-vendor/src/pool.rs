//! A small blocking connection pool, shared by both database backends.
//!
//! Connections are opened on demand, up to `max_open` at once (callers beyond that wait up to
//! `wait` for one to come back), and at most `max_idle` are kept for reuse. A connection that
//! is returned in an unusable state (a transaction left open, a closed socket) is dropped
//! instead of being reused.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::store_error::StoreError;

/// Opens a new connection.
type Open<C> = Box<dyn Fn() -> Result<C, StoreError> + Send + Sync>;

struct State<C> {
    idle: Vec<C>,
    /// Connections in existence: idle ones plus those checked out.
    open: usize,
}

/// The pool.
pub(crate) struct Pool<C> {
    state: Mutex<State<C>>,
    returned: Condvar,
    open_conn: Open<C>,
    reusable: fn(&C) -> bool,
    max_open: usize,
    max_idle: usize,
    wait: Duration,
}

impl<C> Pool<C> {
    /// A pool that opens connections with `open_conn` and reuses those for which `reusable`
    /// holds when they come back. `first` (an already open connection) starts the idle list.
    pub(crate) fn new(
        first: C,
        open_conn: Open<C>,
        reusable: fn(&C) -> bool,
        max_open: usize,
        max_idle: usize,
        wait: Duration,
    ) -> Self {
        Pool {
            state: Mutex::new(State {
                idle: vec![first],
                open: 1,
            }),
            returned: Condvar::new(),
            open_conn,
            reusable,
            max_open: max_open.max(1),
            max_idle,
            wait,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // A panic while holding this lock cannot leave the state inconsistent (every
        // critical section is a push, a pop or a counter update), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection: an idle one, a new one, or (when `max_open` are out) the next one
    /// returned within the wait limit.
    pub(crate) fn get(&self) -> Result<Pooled<'_, C>, StoreError> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if state.open < self.max_open {
                state.open += 1;
                drop(state);
                return match (self.open_conn)() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Busy(format!(
                    "all {} database connections stayed in use for {} s",
                    self.max_open,
                    self.wait.as_secs()
                )));
            }
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// A checked-out connection, returned to the pool on drop.
pub(crate) struct Pooled<'a, C> {
    pool: &'a Pool<C>,
    conn: Option<C>,
}

impl<C> std::ops::Deref for Pooled<'_, C> {
    type Target = C;
    fn deref(&self) -> &C {
        // Only taken in Drop.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl<C> std::ops::DerefMut for Pooled<'_, C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl<C> Drop for Pooled<'_, C> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let keep = (self.pool.reusable)(&conn);
        let mut state = self.pool.lock();
        if keep && state.idle.len() < self.pool.max_idle {
            state.idle.push(conn);
        } else {
            state.open -= 1;
            drop(state);
            // Closed outside the lock (closing a network connection may block briefly).
            drop(conn);
        }
        self.pool.returned.notify_one();
    }
}
