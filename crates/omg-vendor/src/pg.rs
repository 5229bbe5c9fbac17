//! The PostgreSQL backend (the synchronous `postgres` client).
//!
//! # Serialization of writers
//!
//! Every write transaction starts with `SELECT pg_advisory_xact_lock(WRITE_LOCK_KEY)`: one
//! transaction-level advisory lock, per database, that all omg-vendor processes on that
//! database take before their first statement and PostgreSQL releases at commit or rollback.
//! Write transactions therefore run one at a time, exactly like SQLite's `BEGIN IMMEDIATE`,
//! and as the lock is only granted once the previous holder's commit is visible, each one
//! (at PostgreSQL's default READ COMMITTED isolation) sees every earlier write. This is what
//! keeps a model's device limit from being exceeded by concurrent activations and the
//! service-assigned sequence numbers (`MAX + 1`) from colliding, across any number of service
//! processes. Readers are not blocked (they read a snapshot). A writer waits for the lock at
//! most `lock_timeout` (set to 30 s on each connection), then fails with an error.
//!
//! SERIALIZABLE isolation with a retry loop was the alternative; it was not chosen because a
//! retried activation would have to redo its signing and sealing, and under contention (many
//! devices activating one model at once) most attempts would abort.
//!
//! # Connections
//!
//! At most [`MAX_CONNECTIONS`] connections are open at once, so a burst of requests cannot
//! exhaust the server's `max_connections`; further callers wait for one to come back. Each
//! connection caches its prepared statements. Connections are made without TLS: use a
//! PostgreSQL server on the same host (TCP on loopback or a Unix socket) or a secured tunnel.

use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::BytesMut;
use postgres::config::Host;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Config, NoTls, Statement};

use crate::pool::Pool;
use crate::sql::{Arg, Mode, Row, Tx, Value};
use crate::store_error::{DatabaseError, StoreError};

/// The advisory lock key that serializes writers ("omg-vndr" in ASCII).
const WRITE_LOCK_KEY: i64 = 0x6f6d_672d_766e_6472;
/// Connections open at once, at most.
const MAX_CONNECTIONS: usize = 16;
/// Connections kept open for reuse.
const MAX_IDLE_CONNECTIONS: usize = 8;
/// How long a writer waits for the write lock, and a caller for a free connection.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// The connect timeout when the URL sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `spec` is a PostgreSQL URL (`postgres://` or `postgresql://`, any case).
pub(crate) fn is_url(spec: &str) -> bool {
    spec.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")
    })
}

/// A connection and its prepared statements (keyed by the statement's `?N` text).
pub(crate) struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// An open PostgreSQL database.
pub(crate) struct Postgres {
    location: String,
    pool: Pool<PgConn>,
}

/// `postgresql://user@host:port/dbname` from a parsed configuration: the URL without its
/// password or other parameters, for messages and logs.
fn location(config: &Config) -> String {
    let mut s = String::from("postgresql://");
    if let Some(user) = config.get_user() {
        let _ = write!(s, "{user}@");
    }
    let ports = config.get_ports();
    for (i, host) in config.get_hosts().iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        match host {
            Host::Tcp(name) if name.contains(':') => {
                let _ = write!(s, "[{name}]");
            }
            Host::Tcp(name) => s.push_str(name),
            Host::Unix(path) => s.push_str(&path.display().to_string()),
        }
        if let Some(port) = ports.get(i).or_else(|| ports.first()) {
            let _ = write!(s, ":{port}");
        }
    }
    s.push('/');
    s.push_str(config.get_dbname().unwrap_or_default());
    s
}

/// `e` followed by the messages of its sources (the postgres client's own message is only
/// its category, such as "db error"; the server's message is in the source).
fn error_chain(e: &dyn Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let _ = write!(s, ": {cause}");
        source = cause.source();
    }
    s
}

fn open_connection(config: &Config, location: &str) -> Result<PgConn, StoreError> {
    let connect_error = |e: postgres::Error| StoreError::Connect {
        database: location.to_owned(),
        reason: error_chain(&e),
    };
    let mut client = config.connect(NoTls).map_err(connect_error)?;
    client
        .batch_execute(&format!("SET lock_timeout = '{}s'", LOCK_TIMEOUT.as_secs()))
        .map_err(connect_error)?;
    Ok(PgConn {
        client,
        statements: HashMap::new(),
    })
}

impl Postgres {
    /// Connects to the database named by `url`. Nothing of the URL but user, hosts, ports
    /// and database name ever appears in an error or in [`Postgres::location`].
    pub(crate) fn connect(url: &str) -> Result<Self, StoreError> {
        // The client only knows the lowercase schemes.
        let url = match url.split_once("://") {
            Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
            None => url.to_owned(),
        };
        let mut config: Config = url.parse().map_err(|e: postgres::Error| {
            StoreError::Invalid(format!(
                "invalid PostgreSQL URL (not shown, as it may hold a password): {}",
                error_chain(&e)
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("omg-vendor");
        }
        let location = location(&config);
        let first = open_connection(&config, &location)?;
        let reopen = location.clone();
        Ok(Postgres {
            location,
            pool: Pool::new(
                first,
                Box::new(move || open_connection(&config, &reopen)),
                |conn| !conn.client.is_closed(),
                MAX_CONNECTIONS,
                MAX_IDLE_CONNECTIONS,
                LOCK_TIMEOUT,
            ),
        })
    }

    /// The database, as `postgresql://user@host:port/dbname` (no password).
    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    /// Runs `f` in a transaction: for [`Mode::Write`], one holding the write lock (see the
    /// module documentation); for [`Mode::Read`], a read-only one. Commits if `f` returns
    /// `Ok`, rolls back otherwise.
    pub(crate) fn transaction<T, E: From<StoreError>>(
        &self,
        mode: Mode,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.pool.get()?;
        let PgConn { client, statements } = &mut *conn;
        let mut tx = match mode {
            Mode::Write => client.transaction(),
            Mode::Read => client.build_transaction().read_only(true).start(),
        }
        .map_err(StoreError::from)?;
        if mode == Mode::Write {
            tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})"))
                .map_err(StoreError::from)?;
        }
        let mut tx = PgTx { tx, statements };
        let out = f(&mut tx)?;
        tx.tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }
}

/// Rewrites the `?N` placeholders of `sql` to PostgreSQL's `$N` (outside quoted strings and
/// identifiers).
fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '?') if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// A transaction and its connection's statement cache.
struct PgTx<'a> {
    tx: postgres::Transaction<'a>,
    statements: &'a mut HashMap<String, Statement>,
}

impl PgTx<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(stmt) = self.statements.get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self.tx.prepare(&dollar_placeholders(sql))?;
        self.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }
}

fn params<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

impl Tx for PgTx<'_> {
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let stmt = self.statement(sql)?;
        Ok(self.tx.execute(&stmt, &params(args))?)
    }

    fn query(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        let stmt = self.statement(sql)?;
        self.tx
            .query(&stmt, &params(args))?
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.try_get::<_, Value>(i).map_err(StoreError::from))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.tx.batch_execute(sql)?)
    }
}

type BoxError = Box<dyn Error + Sync + Send>;

impl From<postgres::Error> for StoreError {
    /// A closed connection, a lock timeout, too many connections and a server shutting down or
    /// starting are transient.
    fn from(e: postgres::Error) -> Self {
        let transient = e.is_closed()
            || e.code().is_some_and(|c| {
                *c == postgres::error::SqlState::LOCK_NOT_AVAILABLE
                    || *c == postgres::error::SqlState::TOO_MANY_CONNECTIONS
                    || *c == postgres::error::SqlState::ADMIN_SHUTDOWN
                    || *c == postgres::error::SqlState::CANNOT_CONNECT_NOW
            });
        StoreError::Database(DatabaseError::new("PostgreSQL", error_chain(&e), transient))
    }
}

impl ToSql for Arg<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match *self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound to a {ty} parameter").into()),
            },
            Arg::Text(s) if <&str as ToSql>::accepts(ty) => s.to_sql(ty, out),
            Arg::Text(_) => Err(format!("a text cannot be bound to a {ty} parameter").into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8) || <&str as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(match *ty {
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8) || <String as FromSql>::accepts(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_quotes() {
        assert_eq!(
            dollar_placeholders(
                "SELECT a FROM t WHERE b = ?1 AND c = ?12 AND d = '?3' AND \"e?4\" = ?2"
            ),
            "SELECT a FROM t WHERE b = $1 AND c = $12 AND d = '?3' AND \"e?4\" = $2"
        );
        assert_eq!(
            dollar_placeholders("SELECT 'it''s ?1', ?1"),
            "SELECT 'it''s ?1', $1"
        );
        assert_eq!(dollar_placeholders("SELECT ?"), "SELECT ?");
    }

    #[test]
    fn urls_are_recognized() {
        assert!(is_url("postgres://localhost/omg"));
        assert!(is_url("postgresql://u@localhost/omg"));
        assert!(is_url("PostgreSQL://localhost/omg"));
        assert!(!is_url("vendor.sqlite"));
        assert!(!is_url("/var/lib/omg/postgres.sqlite"));
        assert!(!is_url("mysql://localhost/omg"));
    }

    #[test]
    fn location_never_shows_the_password() {
        let config: Config = "postgresql://omg:s3cret@db.example:6432/vendor?sslmode=disable"
            .parse()
            .unwrap();
        assert_eq!(location(&config), "postgresql://omg@db.example:6432/vendor");
        let config: Config = "postgres://omg:s3cret@%2Frun%2Fpostgresql/vendor"
            .parse()
            .unwrap();
        assert_eq!(
            location(&config),
            "postgresql://omg@/run/postgresql:5432/vendor"
        );
        let config: Config = "postgres://h1,h2:5433/vendor?password=s3cret"
            .parse()
            .unwrap();
        assert_eq!(location(&config), "postgresql://h1:5432,h2:5433/vendor");
        let config: Config = "postgres://[::1]/vendor".parse().unwrap();
        assert_eq!(location(&config), "postgresql://[::1]:5432/vendor");
    }
}
