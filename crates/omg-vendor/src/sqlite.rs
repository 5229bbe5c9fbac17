//! The SQLite backend: one database file in WAL mode.
//!
//! Every connection has a busy timeout, so concurrent writers queue instead of failing, and
//! `synchronous = FULL`: a committed activation survives a power cut. A write transaction is
//! `BEGIN IMMEDIATE`: it takes the database's single write lock at its start, so write
//! transactions run one at a time and each sees everything committed before it.
//!
//! # Group commit
//!
//! With `synchronous = FULL` every commit waits for an fsync, which costs more than the
//! activation's SQL. [`Sqlite::write_batched`] therefore hands its write to the database's
//! writer thread, which takes every write waiting at that moment (up to [`MAX_BATCH`]), runs
//! them in one `BEGIN IMMEDIATE` transaction, each in a savepoint of its own (a write that
//! fails, or asks to be undone, is rolled back to its savepoint alone), commits once, and only
//! then hands each caller its result. If the transaction cannot begin or commit, every write
//! of the batch gets an error and none is committed. While one batch commits, the next one
//! gathers, so the batch size adapts to the load without any waiting on purpose.

use prometheus_client::metrics::histogram::Histogram;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use crate::pool::Pool;
use crate::sql::{Arg, Mode, Row, Tx, Value};
use crate::store_error::{DatabaseError, StoreError};

/// How long a writer waits for the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections kept open for reuse. Opening one is cheap, so there is no upper bound on
/// connections in use.
const MAX_IDLE_CONNECTIONS: usize = 8;
/// Prepared statements kept per connection (more than the service's distinct statements).
const STATEMENT_CACHE_CAPACITY: usize = 64;
/// The most writes committed in one batch.
const MAX_BATCH: usize = 128;

/// Bucket bounds of the batch size histogram: 1, 2, 4, ... up to [`MAX_BATCH`].
const BATCH_SIZE_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// An open SQLite database.
pub(crate) struct Sqlite {
    path: PathBuf,
    pool: Pool<Connection>,
    /// Serializes this process's writers before `BEGIN IMMEDIATE`: they queue here instead of
    /// sleeping in SQLite's busy handler (which backs off up to 100 ms between tries). Writers
    /// in other processes still meet the busy handler.
    writer: Arc<Mutex<()>>,
    /// The writer thread of the group commit and its queue.
    batcher: Batcher,
    /// How many writes each group commit held (`omg_store_commit_batch_size`).
    batch_sizes: Histogram,
}

/// Creates the database file readable and writable by its owner alone if it does not exist
/// yet, whatever the umask: it holds the models' content keys. SQLite gives the journal and
/// WAL files the database file's permissions.
fn create_owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Invalid(format!(
            "cannot create the database file {}: {e}",
            path.display()
        ))),
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // An activation alone runs about 20 distinct statements; with rusqlite's default cache of
    // 16 they would be compiled again each time.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(conn)
}

/// Pause between attempts to switch a busy database to WAL mode.
const WAL_RETRY: Duration = Duration::from_millis(5);

/// Switches the database to WAL mode (a no-op once it is). The switch takes an exclusive
/// lock, and SQLite reports another connection's lock on it at once (`SQLITE_BUSY`) instead
/// of through the busy handler: when several processes open a new database together, the
/// switch is retried until [`BUSY_TIMEOUT`].
fn enable_wal(conn: &Connection) -> Result<(), StoreError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(_) => return Err(StoreError::Corrupt("journal mode (WAL not available)")),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(WAL_RETRY);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl Sqlite {
    /// Opens (creating if needed) the database file, switches it to WAL mode and starts its
    /// writer thread.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        create_owner_only(path)?;
        let conn = open_connection(path)?;
        enable_wal(&conn)?;
        let writer = Arc::new(Mutex::new(()));
        let batch_sizes = Histogram::new(BATCH_SIZE_BUCKETS);
        let batcher = Batcher::start(
            open_connection(path)?,
            Arc::clone(&writer),
            batch_sizes.clone(),
        )?;
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
            writer,
            batcher,
            batch_sizes,
        })
    }

    /// The sizes of the group commits so far (a handle on the live histogram).
    pub(crate) fn batch_sizes(&self) -> Histogram {
        self.batch_sizes.clone()
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
            Mode::Write => Some(self.writer.lock().unwrap_or_else(PoisonError::into_inner)),
            Mode::Read => None,
        };
        let mut conn = self.pool.get()?;
        let behavior = match mode {
            Mode::Write => TransactionBehavior::Immediate,
            Mode::Read => TransactionBehavior::Deferred,
        };
        let tx = conn
            .transaction_with_behavior(behavior)
            .map_err(StoreError::from)?;
        let out = f(&mut SqliteTx(&tx))?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` as one write of a group commit (see the module documentation) and returns
    /// its result once the batch holding it is committed.
    pub(crate) fn write_batched<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Box::new(Pending {
            work: Some(f),
            result: None,
            reply,
        });
        self.batcher.submit(job)?;
        answer.recv().unwrap_or_else(|_| {
            Err(StoreError::Batch("the database writer thread stopped".into()).into())
        })
    }
}

/// One write waiting for the writer thread.
trait Job: Send {
    /// Runs the write in the batch's transaction (inside its own savepoint); returns whether
    /// its changes are to be kept.
    fn run(&mut self, tx: &mut dyn Tx) -> bool;

    /// Hands the caller its outcome: its own result if the batch committed (`failure` is
    /// `None`), `failure` otherwise.
    fn finish(self: Box<Self>, failure: Option<&StoreError>);
}

/// A write and the channel its caller waits on.
struct Pending<F, T, E> {
    work: Option<F>,
    result: Option<Result<T, E>>,
    reply: SyncSender<Result<T, E>>,
}

impl<F, T, E> Job for Pending<F, T, E>
where
    F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send,
    T: Send,
    E: From<StoreError> + Send,
{
    fn run(&mut self, tx: &mut dyn Tx) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(tx);
        let keep = result.is_ok();
        self.result = Some(result);
        keep
    }

    fn finish(self: Box<Self>, failure: Option<&StoreError>) {
        let outcome = match (failure, self.result) {
            (Some(failure), _) => Err(failure.for_batch().into()),
            (None, Some(result)) => result,
            // The write panicked: it was rolled back to its savepoint.
            (None, None) => Err(StoreError::Batch("the write panicked".into()).into()),
        };
        // The caller may have gone away (it never does while it waits); nothing to tell then.
        let _ = self.reply.send(outcome);
    }
}

/// The writer thread and its queue. Dropping it lets the thread finish the writes already
/// queued and waits for it (so its connection is closed when the store is gone).
struct Batcher {
    queue: Option<Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Batcher {
    fn start(
        conn: Connection,
        writer: Arc<Mutex<()>>,
        sizes: Histogram,
    ) -> Result<Self, StoreError> {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("omg-vendor-sqlite-writer".into())
            .spawn(move || write_batches(conn, &writer, &jobs, &sizes))
            .map_err(|e| StoreError::Batch(format!("cannot start the writer thread: {e}")))?;
        Ok(Batcher {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    fn submit(&self, job: Box<dyn Job>) -> Result<(), StoreError> {
        self.queue
            .as_ref()
            .and_then(|queue| queue.send(job).ok())
            .ok_or_else(|| StoreError::Batch("the database writer thread stopped".into()))
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // The thread catches the writes' panics; if it died anyway there is nothing left
            // to clean up.
            let _ = thread.join();
        }
    }
}

/// The writer thread: commits the queued writes in batches until the queue is closed.
fn write_batches(
    mut conn: Connection,
    writer: &Mutex<()>,
    jobs: &Receiver<Box<dyn Job>>,
    sizes: &Histogram,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        sizes.observe(batch.len() as f64);
        let failure = commit_batch(&mut conn, writer, &mut batch).err();
        for job in batch {
            job.finish(failure.as_ref());
        }
    }
}

/// Runs `batch` in one write transaction, each write in a savepoint of its own, and commits.
fn commit_batch(
    conn: &mut Connection,
    writer: &Mutex<()>,
    batch: &mut [Box<dyn Job>],
) -> Result<(), StoreError> {
    let _writing = writer.lock().unwrap_or_else(PoisonError::into_inner);
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        let savepoint = tx.savepoint()?;
        // A panicking write is a bug, but it must not take the writer thread (and with it
        // every later write) down: it is rolled back and its caller gets an error.
        let keep = panic::catch_unwind(AssertUnwindSafe(|| job.run(&mut SqliteTx(&savepoint))))
            .unwrap_or(false);
        if keep {
            savepoint.commit()?;
        } else {
            // ROLLBACK TO and RELEASE (the savepoint's drop behaviour), errors reported.
            savepoint.finish()?;
        }
    }
    tx.commit()?;
    Ok(())
}

impl From<rusqlite::Error> for StoreError {
    /// Busy and locked databases are transient.
    fn from(e: rusqlite::Error) -> Self {
        let transient = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        StoreError::Database(DatabaseError::new("SQLite", e.to_string(), transient))
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

/// Statements on a connection inside an open transaction or savepoint.
struct SqliteTx<'a>(&'a Connection);

impl Tx for SqliteTx<'_> {
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let n = stmt.execute(rusqlite::params_from_iter(args))?;
        // A row count always fits.
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    fn query(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql)?;
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
        Ok(self.0.execute_batch(sql)?)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::sql::Mode;

    /// The database and its WAL file are their owner's alone (under the usual umask 022 or
    /// 002, SQLite alone would make them readable by others).
    #[test]
    fn the_database_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vendor.sqlite");
        let db = super::Sqlite::open(&path).unwrap();
        db.transaction(Mode::Write, |tx| tx.batch("CREATE TABLE t (x INTEGER)"))
            .unwrap();
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("vendor.sqlite"), 0o600);
        assert_eq!(mode("vendor.sqlite-wal"), 0o600);
    }
}
