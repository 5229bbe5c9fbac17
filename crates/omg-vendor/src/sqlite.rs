//! The SQLite backend: one database file in WAL mode.
//!
//! Every connection has a busy timeout, so concurrent writers queue instead of failing, and
//! `synchronous = FULL`: a committed activation survives a power cut. A write transaction is
//! `BEGIN IMMEDIATE`: it takes the database's single write lock at its start, so write
//! transactions run one at a time and each sees everything committed before it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, TransactionBehavior};

use crate::pool::Pool;
use crate::sql::{Arg, Row, Tx, Value};
use crate::store::{Mode, StoreError};

/// How long a writer waits for the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections kept open for reuse. Opening one is cheap, so there is no upper bound on
/// connections in use.
const MAX_IDLE_CONNECTIONS: usize = 8;

/// An open SQLite database.
pub(crate) struct Sqlite {
    path: PathBuf,
    pool: Pool<Connection>,
    /// Serializes this process's writers before `BEGIN IMMEDIATE`: they queue here instead of
    /// sleeping in SQLite's busy handler (which backs off up to 100 ms between tries). Writers
    /// in other processes still meet the busy handler.
    writer: Mutex<()>,
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl Sqlite {
    /// Opens (creating if needed) the database file and switches it to WAL mode.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_connection(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt("journal mode (WAL not available)"));
        }
        let reopen = path.to_path_buf();
        Ok(Sqlite {
            path: path.to_path_buf(),
            pool: Pool::new(
                conn,
                Box::new(move || open_connection(&reopen)),
                Connection::is_autocommit,
                usize::MAX,
                MAX_IDLE_CONNECTIONS,
                BUSY_TIMEOUT,
            ),
            writer: Mutex::new(()),
        })
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a transaction (`BEGIN IMMEDIATE` for [`Mode::Write`], `BEGIN DEFERRED` for
    /// [`Mode::Read`]); commits if it returns `Ok`, rolls back otherwise.
    pub(crate) fn transaction<T, E: From<StoreError>>(
        &self,
        mode: Mode,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        // A panic while holding the lock leaves nothing half-done (the transaction rolls
        // back), so a poisoned lock is still usable.
        let _writing = match mode {
            Mode::Write => Some(self.writer.lock().unwrap_or_else(|e| e.into_inner())),
            Mode::Read => None,
        };
        let mut conn = self.pool.get()?;
        let behavior = match mode {
            Mode::Write => TransactionBehavior::Immediate,
            Mode::Read => TransactionBehavior::Deferred,
        };
        let mut tx = conn
            .transaction_with_behavior(behavior)
            .map_err(StoreError::from)?;
        let out = f(&mut tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Arg::Null => ValueRef::Null,
            Arg::Int(v) => ValueRef::Integer(v),
            Arg::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

fn value(v: ValueRef<'_>) -> Result<Value, StoreError> {
    match v {
        ValueRef::Null => Ok(Value::Null),
        ValueRef::Integer(i) => Ok(Value::Int(i)),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(|s| Value::Text(s.to_owned()))
            .map_err(|_| StoreError::Corrupt("text column (not UTF-8)")),
        ValueRef::Real(_) | ValueRef::Blob(_) => {
            Err(StoreError::Corrupt("column (a REAL or BLOB value)"))
        }
    }
}

impl Tx for rusqlite::Transaction<'_> {
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        let n = stmt.execute(rusqlite::params_from_iter(args))?;
        // A row count always fits.
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    fn query(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let values = (0..columns)
                .map(|i| value(row.get_ref(i)?))
                .collect::<Result<Vec<_>, StoreError>>()?;
            out.push(Row(values));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.execute_batch(sql)?)
    }
}
