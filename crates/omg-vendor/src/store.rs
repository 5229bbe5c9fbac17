//! The store: SQLite by default, PostgreSQL when given a `postgres://` URL; the same schema,
//! migrations and queries on both.
//!
//! Schema (see `migrations/*.sql`): `models` (policy as JSON, revocation epoch),
//! `model_versions` (content key, revoked flag), `devices` (UEID, public key, time of
//! enrolment, endorsing maker, first activation, revoked flag: only devices enrolled or
//! endorsed by a trusted maker are activated), `makers` (the device makers' keys the operator
//! trusts), `nonces` (the consumed challenge nonces: value, expiry, used flag; issuing a
//! challenge writes nothing, see [`crate::nonce`]), `activations` (device, model, version,
//! time, licence), `model_device_counts` (distinct devices activated per model, for the device
//! limit) and the append-only `audit` table (every activation attempt with its outcome and
//! refusal reason). Binary values are lowercase hex TEXT, times BIGINT seconds, flags
//! INTEGER 0/1, sequence numbers assigned as `MAX + 1` inside the write transaction: portable
//! SQL, so one set of statements ([`crate::sql`]) serves both backends. Only the migration that
//! makes `audit` append-only has a dialect of its own per backend (triggers); the
//! `schema_migrations` bookkeeping is the same.
//!
//! Write transactions are serialized on both backends (SQLite: `BEGIN IMMEDIATE`; PostgreSQL:
//! a transaction-level advisory lock, see [`crate::pg`]), so a check made inside one (a device
//! limit, the next sequence number) still holds when it commits.
//!
//! The service's frequent writes (activations, their consumed nonces and audit rows) go through
//! `Store::write_batched`: on SQLite one writer thread per store commits the writes waiting at
//! a time together, each in a savepoint of its own (group commit, see [`crate::sqlite`]), so a
//! burst of activations costs one fsync instead of one each. Each write still sees all those
//! before it (the batch is one write transaction, its writes run in order), and none is
//! answered before the batch's commit returns.

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;

use omg_protocol::ContentKey;

use crate::pg::{self, Postgres};
use crate::policy::Policy;
use crate::records::{
    ActivationRecord, AuditRecord, DeviceRecord, ModelRecord, from_sql_u32, from_sql_u64, sql_time,
};
use crate::sql::{Arg, Mode, Tx, args};
use crate::sqlite::Sqlite;
use crate::store_error::StoreError;
use omg_protocol::hex;

/// One schema migration: the same version and description on both backends, and its SQL for
/// each (the same text where the SQL is portable).
struct Migration {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// The migrations, in order.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "initial schema",
        sqlite: include_str!("../migrations/0001_init.sql"),
        postgres: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        description: "audit append-only",
        sqlite: include_str!("../migrations/0002_audit_append_only.sqlite.sql"),
        postgres: include_str!("../migrations/0002_audit_append_only.postgres.sql"),
    },
    Migration {
        version: 3,
        description: "per-model device counts",
        sqlite: include_str!("../migrations/0003_model_device_counts.sql"),
        postgres: include_str!("../migrations/0003_model_device_counts.sql"),
    },
    Migration {
        version: 4,
        description: "device trust chain",
        sqlite: include_str!("../migrations/0004_device_trust.sql"),
        postgres: include_str!("../migrations/0004_device_trust.sql"),
    },
    Migration {
        version: 5,
        description: "operator actions audit",
        sqlite: include_str!("../migrations/0005_admin_audit.sqlite.sql"),
        postgres: include_str!("../migrations/0005_admin_audit.postgres.sql"),
    },
];

/// The schema version this crate writes.
pub const SCHEMA_VERSION: i64 = 5;

enum Backend {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

/// The service's database: a SQLite file or a PostgreSQL database. Safe to share between
/// threads.
///
/// Its methods block: from async code, call them through `tokio::task::spawn_blocking` (as
/// [`crate::http`] does). On PostgreSQL this is a must, not only good manners: the client runs
/// a small runtime of its own, and calling it on an async runtime's thread panics ("Cannot
/// start a runtime from within a runtime"). So open the store before entering the runtime,
/// or inside `spawn_blocking`.
pub struct Store {
    backend: Backend,
    location: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .finish()
    }
}

/// Whether `spec` looks like `scheme://...` with a scheme (letters, digits, `+`, `-`, `.`,
/// starting with a letter); returns the scheme.
fn url_scheme(spec: &str) -> Option<&str> {
    let (scheme, _) = spec.split_once("://")?;
    let mut chars = scheme.chars();
    (chars.next()?.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

impl Store {
    /// Opens (creating if needed) the SQLite database file at `path`, switches it to WAL mode
    /// and applies the pending migrations in one transaction. Fails on a schema newer than
    /// this crate's.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let db = Sqlite::open(path)?;
        Self::migrated(Backend::Sqlite(db), path.display().to_string())
    }

    /// Opens the database `spec` names: a `postgres://` or `postgresql://` URL (as libpq
    /// takes it, e.g. `postgres://omg:PASSWORD@localhost:5432/omg`, or a Unix socket with
    /// `postgres://omg@%2Frun%2Fpostgresql/omg`) connects to PostgreSQL; anything else is a
    /// SQLite file path ([`Store::open`]). Pending migrations are applied either way.
    ///
    /// A URL may carry a password (as `user:PASSWORD@` or `?password=`): it is used to
    /// connect and never shown (errors and [`Store::location`] name only user, host, port and
    /// database). A command line is visible to other local users, so hand such a URL to the
    /// service through the environment or a file readable only by it, or connect over the
    /// Unix socket with peer authentication, which needs no password. (libpq's `PG*`
    /// environment variables and password file are not read.) The connection is not
    /// encrypted (no TLS): use a server on the same host or a secured tunnel.
    ///
    /// Needs PostgreSQL 11 or later. The database must exist; the role needs the right to
    /// create tables, functions and triggers in it (for the migrations).
    pub fn connect(spec: impl AsRef<OsStr>) -> Result<Self, StoreError> {
        let spec = spec.as_ref();
        if let Some(text) = spec.to_str() {
            if pg::is_url(text) {
                let db = Postgres::connect(text)?;
                let location = db.location().to_owned();
                return Self::migrated(Backend::Postgres(db), location);
            }
            if let Some(scheme) = url_scheme(text) {
                return Err(StoreError::Invalid(format!(
                    "unsupported database URL scheme `{scheme}`: give a SQLite file path or a \
                     postgres:// URL"
                )));
            }
        }
        Self::open(Path::new(spec))
    }

    fn migrated(backend: Backend, location: String) -> Result<Self, StoreError> {
        let store = Store { backend, location };
        store.write(|tx| migrate(tx, &store.backend))?;
        Ok(store)
    }

    /// The SQLite database file; `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(db) => Some(db.path()),
            Backend::Postgres(_) => None,
        }
    }

    /// Where the data is, for messages and logs: the SQLite file path, or
    /// `postgresql://user@host:port/dbname` (never the password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs `f` in a write transaction, serialized with every other writer; commits if it
    /// returns `Ok`, rolls back otherwise.
    pub(crate) fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.backend {
            Backend::Sqlite(db) => db.transaction(Mode::Write, f),
            Backend::Postgres(db) => db.transaction(Mode::Write, f),
        }
    }

    /// The sizes of the SQLite store's group commits (how many writes each commit held), for
    /// the service's metrics; `None` for PostgreSQL, where every write is its own transaction.
    pub fn commit_batch_sizes(&self) -> Option<prometheus_client::metrics::histogram::Histogram> {
        match &self.backend {
            Backend::Sqlite(db) => Some(db.batch_sizes()),
            Backend::Postgres(_) => None,
        }
    }

    /// Runs `f` as one write of a group commit: on SQLite the store's writer thread runs it
    /// in a savepoint of its own inside a transaction shared with the other writes waiting at
    /// that moment, and commits them together (one fsync for the batch); `f`'s writes are kept
    /// if it returns `Ok` and rolled back to its savepoint otherwise. This returns only once
    /// the batch's commit is durable, with `f`'s result, or with an error if the batch as a
    /// whole failed (then nothing of `f` was committed either). On PostgreSQL it is
    /// [`Store::write`].
    pub(crate) fn write_batched<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.write_batched(f),
            Backend::Postgres(db) => db.transaction(Mode::Write, f),
        }
    }

    /// Runs `f` in a read-only transaction (one consistent snapshot).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.transaction(Mode::Read, f),
            Backend::Postgres(db) => db.transaction(Mode::Read, f),
        }
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|tx| {
            tx.query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )?
            .int(0, "schema version")
        })
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
                args![model_id, &json, epoch, sql_time(now)],
            )?;
            Ok(())
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
            let exists = tx.query_opt(
                "SELECT 1 FROM model_versions WHERE model_id = ?1 AND version = ?2",
                args![model_id, i64::from(version)],
            )?;
            if exists.is_some() {
                return Err(StoreError::Invalid("model version already exists".into()));
            }
            tx.execute(
                "INSERT INTO model_versions (model_id, version, content_key, revoked, created_at)
                 VALUES (?1, ?2, ?3, 0, ?4)",
                args![
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
        self.read(|tx| load_model(tx, model_id))
    }

    /// Enrols the devices whose attestation public keys are `public_keys` (a Linux-backend
    /// device's SEC1 uncompressed P-256 key, as `attestation.pub`, or an OP-TEE device's
    /// attestation PTA key as a DER SubjectPublicKeyInfo; see [`crate::DeviceKey`]), all in one
    /// transaction: from now on the service activates them
    /// (unless revoked). Returns their UEIDs, in order. Every key is checked before any is
    /// enrolled. Enrolling an enrolled device changes nothing; a revoked device stays revoked.
    pub fn enroll_devices<K: AsRef<[u8]>>(
        &self,
        public_keys: &[K],
        now: u64,
    ) -> Result<Vec<[u8; omg_protocol::keys::UEID_LEN]>, StoreError> {
        let keys = public_keys
            .iter()
            .map(|key| {
                crate::DeviceKey::parse(key.as_ref())
                    .ok_or_else(|| StoreError::Invalid(crate::device::DEVICE_KEY_FORMS.into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ueids: Vec<_> = keys.iter().map(crate::DeviceKey::ueid).collect();
        self.write(|tx| {
            for (ueid, key) in ueids.iter().zip(public_keys) {
                tx.execute(
                    "INSERT INTO devices (ueid, public_key, revoked, enrolled_at)
                     VALUES (?1, ?2, 0, ?3)
                     ON CONFLICT (ueid) DO UPDATE SET
                         public_key = COALESCE(devices.public_key, excluded.public_key),
                         enrolled_at = COALESCE(devices.enrolled_at, excluded.enrolled_at)",
                    args![
                        &hex::encode(ueid),
                        &hex::encode(key.as_ref()),
                        sql_time(now)
                    ],
                )?;
            }
            Ok::<_, StoreError>(())
        })?;
        Ok(ueids)
    }

    /// Trusts the device maker whose public key is `public_key` (SEC1 uncompressed, as
    /// `maker.pub`): devices it endorses are activated without enrolment. Returns its key id.
    /// Trusting a trusted maker again changes nothing.
    pub fn trust_maker(
        &self,
        public_key: &[u8],
        now: u64,
    ) -> Result<[u8; omg_protocol::keys::KEY_ID_LEN], StoreError> {
        let key = omg_protocol::verifying_key_from_sec1(public_key).map_err(|_| {
            StoreError::Invalid("the maker key is not a SEC1 uncompressed P-256 key".into())
        })?;
        let key_id = omg_protocol::key_id(&key);
        let (key_id_hex, key_hex) = (hex::encode(&key_id), hex::encode(public_key));
        self.write(|tx| {
            tx.execute(
                "INSERT INTO makers (key_id, public_key, trusted_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key_id) DO NOTHING",
                args![&key_id_hex, &key_hex, sql_time(now)],
            )?;
            Ok::<_, StoreError>(())
        })?;
        Ok(key_id)
    }

    /// Marks the device revoked (creating its row if it was never seen), and records the
    /// revocation in `admin_audit` in the same transaction.
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
                args![&ueid, sql_time(now)],
            )?;
            record_admin_action(tx, now, "revoke_device", Some(&ueid), None)
        })
    }

    /// Marks a model version revoked and raises the model's revocation epoch by one (so
    /// licences issued from now on supersede the older ones in enclaves that see them).
    /// Returns the new epoch. Revoking an already revoked version changes nothing but its
    /// record: each revocation of a known version is recorded in `admin_audit`, in the same
    /// transaction.
    pub fn revoke_model_version(
        &self,
        model_id: &str,
        version: u32,
        now: u64,
    ) -> Result<u32, StoreError> {
        self.write(|tx| {
            let model = load_model(tx, model_id)?.ok_or(StoreError::NotFound("model"))?;
            let revoked = tx
                .query_opt(
                    "SELECT revoked FROM model_versions WHERE model_id = ?1 AND version = ?2",
                    args![model_id, i64::from(version)],
                )?
                .map(|mut row| row.int(0, "model version revoked flag"))
                .transpose()?;
            if revoked.is_some() {
                record_admin_action(
                    tx,
                    now,
                    "revoke_model_version",
                    None,
                    Some((model_id, version)),
                )?;
            }
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
                        args![model_id, i64::from(version), sql_time(now)],
                    )?;
                    tx.execute(
                        "UPDATE models SET revocation_epoch = ?2, updated_at = ?3
                         WHERE model_id = ?1",
                        args![model_id, i64::from(epoch), sql_time(now)],
                    )?;
                    Ok(epoch)
                }
            }
        })
    }

    /// Every device, by UEID.
    pub fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        let rows = self.read(|tx| {
            tx.query(
                "SELECT ueid, public_key, first_seen, enrolled_at, endorsed_by, revoked
                 FROM devices ORDER BY ueid",
                &[],
            )
        })?;
        rows.into_iter()
            .map(|mut row| {
                Ok(DeviceRecord {
                    ueid: row.text(0, "device UEID")?,
                    public_key: row.opt_text(1, "device public key")?,
                    first_seen: row
                        .opt_int(2, "device first seen")?
                        .map(|t| from_sql_u64(t, "device first seen"))
                        .transpose()?,
                    enrolled_at: row
                        .opt_int(3, "device enrolment time")?
                        .map(|t| from_sql_u64(t, "device enrolment time"))
                        .transpose()?,
                    endorsed_by: row.opt_text(4, "device endorser")?,
                    revoked: row.int(5, "device revoked flag")? != 0,
                })
            })
            .collect()
    }

    /// Every successful activation, oldest first.
    pub fn list_activations(&self) -> Result<Vec<ActivationRecord>, StoreError> {
        let rows = self.read(|tx| {
            tx.query(
                "SELECT id, ueid, model_id, version, activated_at, licence
                 FROM activations ORDER BY id",
                &[],
            )
        })?;
        rows.into_iter()
            .map(|mut row| {
                Ok(ActivationRecord {
                    id: from_sql_u64(row.int(0, "activation id")?, "activation id")?,
                    ueid: row.text(1, "activation UEID")?,
                    model_id: row.text(2, "activation model id")?,
                    version: from_sql_u32(row.int(3, "activation version")?, "activation version")?,
                    activated_at: from_sql_u64(row.int(4, "activation time")?, "activation time")?,
                    licence: hex::decode(&row.text(5, "licence")?)
                        .ok_or(StoreError::Corrupt("licence"))?,
                })
            })
            .collect()
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = self.read(|tx| {
            tx.query(
                "SELECT seq, at, ueid, model_id, version, outcome, reason FROM audit ORDER BY seq",
                &[],
            )
        })?;
        rows.into_iter()
            .map(|mut row| {
                Ok(AuditRecord {
                    seq: from_sql_u64(row.int(0, "audit seq")?, "audit seq")?,
                    at: from_sql_u64(row.int(1, "audit time")?, "audit time")?,
                    ueid: row.opt_text(2, "audit UEID")?,
                    model_id: row.opt_text(3, "audit model id")?,
                    version: row
                        .opt_int(4, "audit version")?
                        .and_then(|v| u32::try_from(v).ok()),
                    outcome: row.text(5, "audit outcome")?,
                    reason: row.opt_text(6, "audit reason")?,
                })
            })
            .collect()
    }

    /// Deletes nonces that expired before `before` (used or not). Returns how many.
    pub fn purge_nonces(&self, before: u64) -> Result<usize, StoreError> {
        let n = self.write(|tx| {
            tx.execute(
                "DELETE FROM nonces WHERE expires_at < ?1",
                args![sql_time(before)],
            )
        })?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
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
    tx: &mut dyn Tx,
    model_id: &str,
) -> Result<Option<ModelRecord>, StoreError> {
    let Some(mut row) = tx.query_opt(
        "SELECT policy, revocation_epoch FROM models WHERE model_id = ?1",
        args![model_id],
    )?
    else {
        return Ok(None);
    };
    let policy = row.text(0, "policy")?;
    let epoch = row.int(1, "revocation epoch")?;
    Ok(Some(ModelRecord {
        model_id: model_id.to_owned(),
        policy: Policy::from_json(&policy).map_err(|_| StoreError::Corrupt("policy"))?,
        revocation_epoch: from_sql_u32(epoch, "revocation epoch")?,
    }))
}

/// A model version's content key and revoked flag.
pub(crate) fn load_version(
    tx: &mut dyn Tx,
    model_id: &str,
    version: u32,
) -> Result<Option<(ContentKey, bool)>, StoreError> {
    let Some(mut row) = tx.query_opt(
        "SELECT content_key, revoked FROM model_versions WHERE model_id = ?1 AND version = ?2",
        args![model_id, i64::from(version)],
    )?
    else {
        return Ok(None);
    };
    let key = zeroize_on_drop(row.text(0, "content key")?);
    let revoked = row.int(1, "model version revoked flag")?;
    let bytes = omg_protocol::zeroize::Zeroizing::new(
        hex::decode_n::<32>(&key).ok_or(StoreError::Corrupt("content key"))?,
    );
    Ok(Some((ContentKey::from_bytes(*bytes), revoked != 0)))
}

/// The public key of the trusted device maker whose key id is `key_id` (hex), if trusted.
pub(crate) fn load_maker(
    tx: &mut dyn Tx,
    key_id: &str,
) -> Result<Option<omg_protocol::VerifyingKey>, StoreError> {
    let Some(mut row) = tx.query_opt(
        "SELECT public_key FROM makers WHERE key_id = ?1",
        args![key_id],
    )?
    else {
        return Ok(None);
    };
    let key = hex::decode(&row.text(0, "maker public key")?)
        .and_then(|k| omg_protocol::verifying_key_from_sec1(&k).ok())
        .ok_or(StoreError::Corrupt("maker public key"))?;
    Ok(Some(key))
}

/// Appends an operator's action to `admin_audit` (inside the action's write transaction).
fn record_admin_action(
    tx: &mut dyn Tx,
    now: u64,
    action: &str,
    ueid: Option<&str>,
    model_version: Option<(&str, u32)>,
) -> Result<(), StoreError> {
    let seq = next_seq(tx, Sequence::AdminAudit)?;
    let version = model_version.map_or(Arg::Null, |(_, v)| Arg::Int(i64::from(v)));
    tx.execute(
        "INSERT INTO admin_audit (seq, at, action, ueid, model_id, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &[
            Arg::Int(seq),
            Arg::Int(sql_time(now)),
            Arg::Text(action),
            Arg::from(ueid),
            Arg::from(model_version.map(|(m, _)| m)),
            version,
        ],
    )?;
    Ok(())
}

/// A sequence number the service assigns itself (`MAX + 1` inside a write transaction, which
/// is safe because write transactions are serialized).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sequence {
    /// `audit.seq`.
    Audit,
    /// `activations.id`.
    Activations,
    /// `admin_audit.seq`.
    AdminAudit,
}

/// The next value of `seq` (inside a write transaction).
pub(crate) fn next_seq(tx: &mut dyn Tx, seq: Sequence) -> Result<i64, StoreError> {
    let sql = match seq {
        Sequence::Audit => "SELECT COALESCE(MAX(seq), 0) + 1 FROM audit",
        Sequence::Activations => "SELECT COALESCE(MAX(id), 0) + 1 FROM activations",
        Sequence::AdminAudit => "SELECT COALESCE(MAX(seq), 0) + 1 FROM admin_audit",
    };
    tx.query_one(sql, &[])?.int(0, "sequence number")
}

/// Applies the pending migrations (inside the write transaction `tx`, so concurrent openers
/// of one database wait for each other and see the migrations applied once).
fn migrate(tx: &mut dyn Tx, backend: &Backend) -> Result<(), StoreError> {
    tx.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     BIGINT NOT NULL PRIMARY KEY,
             description TEXT   NOT NULL,
             applied_at  BIGINT NOT NULL
         )",
    )?;
    let current = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )?
        .int(0, "schema version")?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(
            "schema version (database is newer than this program)",
        ));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch(match backend {
            Backend::Sqlite(_) => m.sqlite,
            Backend::Postgres(_) => m.postgres,
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)",
            args![m.version, m.description, sql_time(now)],
        )?;
    }
    Ok(())
}
