//! The small SQL layer both database backends implement, so that the service's logic and its
//! SQL exist once.
//!
//! * Statements are written once, in the portable subset of SQL that SQLite and PostgreSQL
//!   share, with numbered placeholders `?1`, `?2`... (SQLite's syntax; the PostgreSQL backend
//!   rewrites them to `$1`, `$2`...). A bare `?` is not allowed.
//! * Values bound ([`Arg`]) and read ([`Value`]) are only what the schema uses: NULL, a
//!   64-bit integer (INTEGER / BIGINT columns, also read from PostgreSQL's `int2` / `int4`) and
//!   text (hex for binary data). Each backend converts them to and from its own types.
//! * [`Tx`] is one open transaction: [`crate::Store`] opens it (a write transaction is
//!   serialized with every other writer, see the store's documentation), hands it to the
//!   caller's closure and commits when the closure succeeds.

use crate::store_error::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A write transaction, serialized with every other one.
    Write,
    /// A read-only transaction.
    Read,
}

/// A value bound to a statement parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arg<'a> {
    /// SQL NULL.
    Null,
    /// An INTEGER or BIGINT.
    Int(i64),
    /// A TEXT.
    Text(&'a str),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Arg::Null, Arg::Text)
    }
}

/// The parameters of a statement: `args![a, b]` is `&[Arg::from(a), Arg::from(b)]`.
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        &[$($crate::sql::Arg::from($arg)),*]
    };
}
pub(crate) use args;

/// A column value read from a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// SQL NULL.
    Null,
    /// An integer column.
    Int(i64),
    /// A text column.
    Text(String),
}

/// One result row: its columns in `SELECT` order. Each accessor names what it reads, so a
/// value of the wrong type becomes a [`StoreError::Corrupt`] that says which.
#[derive(Debug)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    fn take(&mut self, i: usize) -> Value {
        self.0
            .get_mut(i)
            .map_or(Value::Null, |v| std::mem::replace(v, Value::Null))
    }

    /// Column `i` as an integer that may be NULL.
    pub(crate) fn opt_int(
        &mut self,
        i: usize,
        what: &'static str,
    ) -> Result<Option<i64>, StoreError> {
        match self.take(i) {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(v)),
            Value::Text(_) => Err(StoreError::Corrupt(what)),
        }
    }

    /// Column `i` as an integer.
    pub(crate) fn int(&mut self, i: usize, what: &'static str) -> Result<i64, StoreError> {
        self.opt_int(i, what)?.ok_or(StoreError::Corrupt(what))
    }

    /// Column `i` as a text that may be NULL (moved out of the row, not copied).
    pub(crate) fn opt_text(
        &mut self,
        i: usize,
        what: &'static str,
    ) -> Result<Option<String>, StoreError> {
        match self.take(i) {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v)),
            Value::Int(_) => Err(StoreError::Corrupt(what)),
        }
    }

    /// Column `i` as a text (moved out of the row, not copied).
    pub(crate) fn text(&mut self, i: usize, what: &'static str) -> Result<String, StoreError> {
        self.opt_text(i, what)?.ok_or(StoreError::Corrupt(what))
    }
}

/// An open transaction on either backend. Statements use `?N` placeholders (see the module
/// documentation).
pub(crate) trait Tx {
    /// Runs a statement that returns no rows; returns the number of rows it changed.
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError>;

    /// Runs a query and returns all its rows.
    fn query(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError>;

    /// Runs several parameterless statements separated by `;` (migrations).
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;

    /// Runs a query and returns its first row, if any.
    fn query_opt(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// Runs a query that always returns a row (an aggregate) and returns that row.
    fn query_one(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Row, StoreError> {
        self.query_opt(sql, args)?
            .ok_or(StoreError::Corrupt("aggregate query result (no row)"))
    }
}
