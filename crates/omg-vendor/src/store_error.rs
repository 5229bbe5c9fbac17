//! The store's error type. A leaf module: the database backends, the SQL layer and the store
//! build on it, and each backend turns its driver's errors into a [`DatabaseError`], so no
//! driver type appears in this crate's API.

use std::fmt;

use crate::policy::PolicyError;

/// A store failure (never a policy refusal).
#[derive(Debug)]
pub enum StoreError {
    /// The database (SQLite or PostgreSQL) reported an error.
    Database(DatabaseError),
    /// The PostgreSQL server could not be reached or refused the connection. `database` is
    /// `postgresql://user@host:port/dbname`, never with the password.
    Connect {
        /// The database, without password.
        database: String,
        /// Why the connection failed.
        reason: String,
    },
    /// Every database connection stayed in use for too long, or the database stayed locked by
    /// another writer for too long (the service is overloaded; trying again later may work).
    Busy(String),
    /// A batch of writes committed together (see [`Store`](crate::Store)) failed as a whole:
    /// this write was not committed. The reason names the batch's failure.
    Batch(String),
    /// The database holds a value this crate cannot read (or a newer schema).
    Corrupt(&'static str),
    /// The model or model version named does not exist.
    NotFound(&'static str),
    /// A value handed in is invalid (policy, model id, database URL...).
    Invalid(String),
    /// A protocol operation failed while building a response (e.g. signing).
    Protocol(omg_protocol::ProtocolError),
}

/// An error the database driver reported: which database, the driver's message (for
/// PostgreSQL with the server's message from its source chain) and whether it is transient
/// (busy, locked, unreachable: see [`StoreError::is_transient`]). The driver's error type
/// stays inside its backend.
#[derive(Debug)]
pub struct DatabaseError {
    database: &'static str,
    message: String,
    transient: bool,
}

impl DatabaseError {
    /// An error of `database` (`"SQLite"`, `"PostgreSQL"`) with the driver's `message`.
    pub(crate) fn new(database: &'static str, message: String, transient: bool) -> Self {
        DatabaseError {
            database,
            message,
            transient,
        }
    }

    /// Whether the failure is temporary (the database is busy, locked or unreachable).
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

impl fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.database, self.message)
    }
}

impl std::error::Error for DatabaseError {}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Database(e) => e.fmt(f),
            StoreError::Connect { database, reason } => {
                write!(
                    f,
                    "cannot connect to the PostgreSQL database {database}: {reason}"
                )
            }
            StoreError::Busy(e) => write!(f, "database busy: {e}"),
            StoreError::Batch(e) => write!(f, "the write batch was not committed: {e}"),
            StoreError::Corrupt(what) => write!(f, "database holds an unreadable {what}"),
            StoreError::NotFound(what) => write!(f, "{what} not found"),
            StoreError::Invalid(e) => write!(f, "invalid input: {e}"),
            StoreError::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// Whether the failure is temporary and says nothing about the request: the database is
    /// busy or locked, or cannot be reached. Trying again later may succeed (the HTTP API
    /// answers 503 with `Retry-After`).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Busy(_) | StoreError::Connect { .. } => true,
            StoreError::Database(e) => e.is_transient(),
            StoreError::Batch(_)
            | StoreError::Corrupt(_)
            | StoreError::NotFound(_)
            | StoreError::Invalid(_)
            | StoreError::Protocol(_) => false,
        }
    }

    /// The error to hand every write of a batch that failed with `self` as a whole: a
    /// transient failure stays [`StoreError::Busy`] (so it is still answered as such), any
    /// other becomes [`StoreError::Batch`] with this error's message.
    pub(crate) fn for_batch(&self) -> StoreError {
        if self.is_transient() {
            StoreError::Busy(self.to_string())
        } else {
            StoreError::Batch(self.to_string())
        }
    }
}

impl From<PolicyError> for StoreError {
    fn from(e: PolicyError) -> Self {
        StoreError::Invalid(e.to_string())
    }
}

impl From<omg_protocol::ProtocolError> for StoreError {
    fn from(e: omg_protocol::ProtocolError) -> Self {
        StoreError::Protocol(e)
    }
}
