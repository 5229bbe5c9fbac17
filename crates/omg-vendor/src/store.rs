//! The SQLite store: one database file in WAL mode, versioned migrations applied at open.
//!
//! Schema (see `migrations/*.sql`): `models` (policy as JSON, revocation epoch),
//! `model_versions` (content key, revoked flag), `devices` (UEID, public key, first seen,
//! revoked flag), `nonces` (value, expiry, used flag), `activations` (device, model, version,
//! time, licence) and the append-only `audit` table (every activation attempt with its outcome
//! and refusal reason). Binary values are lowercase hex TEXT, times BIGINT seconds, flags
//! INTEGER 0/1, so the same SQL runs on PostgreSQL.
//!
//! Connections come from a small pool; each has a busy timeout so concurrent
//! `BEGIN IMMEDIATE` writers queue instead of failing. `synchronous = FULL`: a committed
//! activation survives a power cut.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use omg_protocol::ContentKey;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;

use crate::hex;
use crate::policy::{Policy, PolicyError};

/// The migrations, in order: (version, description, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial schema",
        include_str!("../migrations/0001_init.sql"),
    ),
    (
        2,
        "audit append-only (SQLite triggers)",
        include_str!("../migrations/0002_audit_append_only.sqlite.sql"),
    ),
];

/// The schema version this crate writes.
pub const SCHEMA_VERSION: i64 = 2;

const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_IDLE_CONNECTIONS: usize = 8;

/// A store failure (never a policy refusal).
#[derive(Debug)]
pub enum StoreError {
    /// SQLite failed.
    Sqlite(rusqlite::Error),
    /// The database holds a value this crate cannot read (or a newer schema).
    Corrupt(&'static str),
    /// The model or model version named does not exist.
    NotFound(&'static str),
    /// A value handed in is invalid (policy, model id...).
    Invalid(String),
    /// A protocol operation failed while building a response (e.g. signing).
    Protocol(omg_protocol::ProtocolError),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Sqlite(e) => write!(f, "database error: {e}"),
            StoreError::Corrupt(what) => write!(f, "database holds an unreadable {what}"),
            StoreError::NotFound(what) => write!(f, "{what} not found"),
            StoreError::Invalid(e) => write!(f, "invalid input: {e}"),
            StoreError::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
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

/// Seconds as a SQL BIGINT (saturating: times past year 292 billion are clamped).
pub(crate) fn sql_time(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn from_sql_u64(v: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(what))
}

/// A device as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceRecord {
    /// UEID, lowercase hex (33 bytes).
    pub ueid: String,
    /// SEC1 public key, lowercase hex; `None` for a device revoked before it was ever seen.
    pub public_key: Option<String>,
    /// Time of the first successful activation.
    pub first_seen: Option<u64>,
    /// Whether the device is revoked.
    pub revoked: bool,
}

/// One successful activation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActivationRecord {
    /// Sequence number.
    pub id: u64,
    /// Device UEID, lowercase hex.
    pub ueid: String,
    /// Model id.
    pub model_id: String,
    /// Model version.
    pub version: u32,
    /// Time of the activation.
    pub activated_at: u64,
    /// The signed licence that was issued.
    #[serde(skip)]
    pub licence: Vec<u8>,
}

/// One audit row: an activation attempt and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Sequence number.
    pub seq: u64,
    /// Time of the attempt.
    pub at: u64,
    /// Device UEID as claimed by the request, lowercase hex.
    pub ueid: Option<String>,
    /// Model id asked for.
    pub model_id: Option<String>,
    /// Model version asked for.
    pub version: Option<u32>,
    /// `"activated"` or `"refused"`.
    pub outcome: String,
    /// Refusal code ([`crate::Refusal::code`]); `None` when activated.
    pub reason: Option<String>,
}

/// A model as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRecord {
    /// Model id.
    pub model_id: String,
    /// Its policy.
    pub policy: Policy,
    /// Current revocation epoch (written into new licences).
    pub revocation_epoch: u32,
}

/// The SQLite store.
pub struct Store {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// A pooled connection, returned to the pool on drop.
pub(crate) struct Pooled<'a> {
    store: &'a Store,
    conn: Option<Connection>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Only taken in Drop.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && conn.is_autocommit()
            && let Ok(mut pool) = self.store.pool.lock()
            && pool.len() < MAX_IDLE_CONNECTIONS
        {
            pool.push(conn);
        }
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the database at `path`, switches it to WAL mode and applies
    /// the pending migrations in one transaction. Fails on a schema newer than this crate's.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = Connection::open(&path)?;
        configure(&conn)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt("journal mode (WAL not available)"));
        }
        migrate(&mut conn)?;
        Ok(Store {
            path,
            pool: Mutex::new(vec![conn]),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> Result<Pooled<'_>, StoreError> {
        let pooled = self.pool.lock().ok().and_then(|mut p| p.pop());
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open(&self.path)?;
                configure(&c)?;
                c
            }
        };
        Ok(Pooled {
            store: self,
            conn: Some(conn),
        })
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`); commits if it returns `Ok`.
    pub(crate) fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let conn = self.conn()?;
        Ok(conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?)
    }

    /// Adds a model with its policy, or replaces the policy of an existing model. The
    /// revocation epoch becomes the larger of the stored one and the policy's.
    pub fn put_model(&self, model_id: &str, policy: &Policy, now: u64) -> Result<(), StoreError> {
        check_model_id(model_id)?;
        policy.validate()?;
        let json = policy.to_json();
        let epoch = i64::from(policy.revocation_epoch);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO models (model_id, policy, revocation_epoch, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (model_id) DO UPDATE SET
                     policy = excluded.policy,
                     revocation_epoch = CASE WHEN models.revocation_epoch > excluded.revocation_epoch
                         THEN models.revocation_epoch ELSE excluded.revocation_epoch END,
                     updated_at = excluded.updated_at",
                params![model_id, json, epoch, sql_time(now)],
            )?;
            Ok::<_, StoreError>(())
        })
    }

    /// Adds version `version` of an existing model with its content key. Re-adding an existing
    /// version fails (a content key never changes).
    pub fn add_model_version(
        &self,
        model_id: &str,
        version: u32,
        content_key: &ContentKey,
        now: u64,
    ) -> Result<(), StoreError> {
        let key_hex = zeroize_on_drop(hex::encode(content_key.as_bytes()));
        self.write(|tx| {
            if load_model(tx, model_id)?.is_none() {
                return Err(StoreError::NotFound("model"));
            }
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM model_versions WHERE model_id = ?1 AND version = ?2",
                    params![model_id, i64::from(version)],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Err(StoreError::Invalid("model version already exists".into()));
            }
            tx.execute(
                "INSERT INTO model_versions (model_id, version, content_key, revoked, created_at)
                 VALUES (?1, ?2, ?3, 0, ?4)",
                params![
                    model_id,
                    i64::from(version),
                    key_hex.as_str(),
                    sql_time(now)
                ],
            )?;
            Ok(())
        })
    }

    /// The model `model_id`, if known.
    pub fn model(&self, model_id: &str) -> Result<Option<ModelRecord>, StoreError> {
        let conn = self.conn()?;
        load_model(&conn, model_id)
    }

    /// Marks the device revoked (creating its row if it was never seen).
    pub fn revoke_device(&self, ueid: &[u8], now: u64) -> Result<(), StoreError> {
        if ueid.len() != omg_protocol::keys::UEID_LEN || ueid[0] != 0x01 {
            return Err(StoreError::Invalid(
                "UEID must be 33 bytes starting with 0x01".into(),
            ));
        }
        let ueid = hex::encode(ueid);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO devices (ueid, revoked, revoked_at) VALUES (?1, 1, ?2)
                 ON CONFLICT (ueid) DO UPDATE SET
                     revoked = 1,
                     revoked_at = COALESCE(devices.revoked_at, excluded.revoked_at)",
                params![ueid, sql_time(now)],
            )?;
            Ok(())
        })
    }

    /// Marks a model version revoked and raises the model's revocation epoch by one (so
    /// licences issued from now on supersede the older ones in enclaves that see them).
    /// Returns the new epoch. Revoking an already revoked version changes nothing.
    pub fn revoke_model_version(
        &self,
        model_id: &str,
        version: u32,
        now: u64,
    ) -> Result<u32, StoreError> {
        self.write(|tx| {
            let model = load_model(tx, model_id)?.ok_or(StoreError::NotFound("model"))?;
            let revoked: Option<i64> = tx
                .query_row(
                    "SELECT revoked FROM model_versions WHERE model_id = ?1 AND version = ?2",
                    params![model_id, i64::from(version)],
                    |r| r.get(0),
                )
                .optional()?;
            match revoked {
                None => Err(StoreError::NotFound("model version")),
                Some(1) => Ok(model.revocation_epoch),
                Some(_) => {
                    let epoch = model
                        .revocation_epoch
                        .checked_add(1)
                        .ok_or(StoreError::Invalid("revocation epoch overflow".into()))?;
                    tx.execute(
                        "UPDATE model_versions SET revoked = 1, revoked_at = ?3
                         WHERE model_id = ?1 AND version = ?2",
                        params![model_id, i64::from(version), sql_time(now)],
                    )?;
                    tx.execute(
                        "UPDATE models SET revocation_epoch = ?2, updated_at = ?3
                         WHERE model_id = ?1",
                        params![model_id, i64::from(epoch), sql_time(now)],
                    )?;
                    Ok(epoch)
                }
            }
        })
    }

    /// Every device, by UEID.
    pub fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare("SELECT ueid, public_key, first_seen, revoked FROM devices ORDER BY ueid")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        rows.map(|row| {
            let (ueid, public_key, first_seen, revoked) = row?;
            Ok(DeviceRecord {
                ueid,
                public_key,
                first_seen: first_seen
                    .map(|t| from_sql_u64(t, "device first seen"))
                    .transpose()?,
                revoked: revoked != 0,
            })
        })
        .collect()
    }

    /// Every successful activation, oldest first.
    pub fn list_activations(&self) -> Result<Vec<ActivationRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, ueid, model_id, version, activated_at, licence
             FROM activations ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        rows.map(|row| {
            let (id, ueid, model_id, version, at, licence) = row?;
            Ok(ActivationRecord {
                id: from_sql_u64(id, "activation id")?,
                ueid,
                model_id,
                version: u32::try_from(version)
                    .map_err(|_| StoreError::Corrupt("activation version"))?,
                activated_at: from_sql_u64(at, "activation time")?,
                licence: hex::decode(&licence).ok_or(StoreError::Corrupt("licence"))?,
            })
        })
        .collect()
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT seq, at, ueid, model_id, version, outcome, reason FROM audit ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?;
        rows.map(|row| {
            let (seq, at, ueid, model_id, version, outcome, reason) = row?;
            Ok(AuditRecord {
                seq: from_sql_u64(seq, "audit seq")?,
                at: from_sql_u64(at, "audit time")?,
                ueid,
                model_id,
                version: version.and_then(|v| u32::try_from(v).ok()),
                outcome,
                reason,
            })
        })
        .collect()
    }

    /// Deletes nonces that expired before `before` (used or not). Returns how many.
    pub fn purge_nonces(&self, before: u64) -> Result<usize, StoreError> {
        self.write(|tx| {
            Ok::<_, StoreError>(tx.execute(
                "DELETE FROM nonces WHERE expires_at < ?1",
                params![sql_time(before)],
            )?)
        })
    }
}

fn zeroize_on_drop(s: String) -> omg_protocol::zeroize::Zeroizing<String> {
    omg_protocol::zeroize::Zeroizing::new(s)
}

pub(crate) fn check_model_id(model_id: &str) -> Result<(), StoreError> {
    if model_id.is_empty() || model_id.len() > omg_protocol::licence::MAX_MODEL_ID_LEN {
        return Err(StoreError::Invalid("model id must be 1..=128 bytes".into()));
    }
    Ok(())
}

pub(crate) fn load_model(
    conn: &Connection,
    model_id: &str,
) -> Result<Option<ModelRecord>, StoreError> {
    let row: Option<(String, i64)> = conn
        .query_row(
            "SELECT policy, revocation_epoch FROM models WHERE model_id = ?1",
            params![model_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((policy, epoch)) = row else {
        return Ok(None);
    };
    Ok(Some(ModelRecord {
        model_id: model_id.to_owned(),
        policy: Policy::from_json(&policy).map_err(|_| StoreError::Corrupt("policy"))?,
        revocation_epoch: u32::try_from(epoch)
            .map_err(|_| StoreError::Corrupt("revocation epoch"))?,
    }))
}

/// A model version's content key and revoked flag.
pub(crate) fn load_version(
    conn: &Connection,
    model_id: &str,
    version: u32,
) -> Result<Option<(ContentKey, bool)>, StoreError> {
    let row: Option<(String, i64)> = conn
        .query_row(
            "SELECT content_key, revoked FROM model_versions WHERE model_id = ?1 AND version = ?2",
            params![model_id, i64::from(version)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((key, revoked)) = row else {
        return Ok(None);
    };
    let key = zeroize_on_drop(key);
    let bytes = omg_protocol::zeroize::Zeroizing::new(
        hex::decode_n::<32>(&key).ok_or(StoreError::Corrupt("content key"))?,
    );
    Ok(Some((ContentKey::from_bytes(*bytes), revoked != 0)))
}

/// The next value of a service-assigned sequence column (inside a write transaction).
pub(crate) fn next_seq(conn: &Connection, table_and_column: &str) -> Result<i64, StoreError> {
    let sql = match table_and_column {
        "audit" => "SELECT COALESCE(MAX(seq), 0) + 1 FROM audit",
        "activations" => "SELECT COALESCE(MAX(id), 0) + 1 FROM activations",
        _ => return Err(StoreError::Corrupt("sequence name")),
    };
    Ok(conn.query_row(sql, [], |r| r.get(0))?)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     BIGINT NOT NULL PRIMARY KEY,
             description TEXT   NOT NULL,
             applied_at  BIGINT NOT NULL
         )",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(
            "schema version (database is newer than this program)",
        ));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for &(version, description, sql) in MIGRATIONS {
        if version <= current {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)",
            params![version, description, sql_time(now)],
        )?;
    }
    tx.commit()?;
    Ok(())
}
