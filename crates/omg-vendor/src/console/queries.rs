//! The console's read-only queries (portable SQL, one read transaction each). Writes go
//! through the [`crate::Service`] functions the admin API uses.

use crate::policy::Policy;
use crate::sql::{Arg, Row, Tx};
use crate::store::Store;
use crate::store_error::StoreError;

/// One model with its versions.
pub(crate) struct ModelSummary {
    pub(crate) model_id: String,
    pub(crate) policy: Option<Policy>,
    pub(crate) revocation_epoch: i64,
    /// Distinct devices with an activation of the model (the count the device limit checks).
    pub(crate) devices: i64,
    pub(crate) versions: Vec<VersionSummary>,
}

/// One version of a model.
pub(crate) struct VersionSummary {
    pub(crate) version: i64,
    pub(crate) revoked: bool,
    pub(crate) revoked_at: Option<u64>,
    pub(crate) created_at: u64,
    pub(crate) activations: i64,
    /// Distinct devices with an activation of this version.
    pub(crate) devices: i64,
}

fn time(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn opt_time(row: &mut Row, i: usize, what: &'static str) -> Result<Option<u64>, StoreError> {
    Ok(row.opt_int(i, what)?.map(time))
}

/// Every model with its versions, by id.
pub(crate) fn models(store: &Store) -> Result<Vec<ModelSummary>, StoreError> {
    store.read(|tx| {
        let mut models = Vec::new();
        for mut row in tx.query(
            "SELECT m.model_id, m.policy, m.revocation_epoch, COALESCE(c.devices, 0)
             FROM models m LEFT JOIN model_device_counts c ON c.model_id = m.model_id
             ORDER BY m.model_id",
            &[],
        )? {
            models.push(ModelSummary {
                model_id: row.text(0, "model id")?,
                policy: Policy::from_json(&row.text(1, "policy")?).ok(),
                revocation_epoch: row.int(2, "revocation epoch")?,
                devices: row.int(3, "model device count")?,
                versions: Vec::new(),
            });
        }
        for model in &mut models {
            for mut row in tx.query(
                "SELECT v.version, v.revoked, v.revoked_at, v.created_at,
                        (SELECT COUNT(*) FROM activations a
                         WHERE a.model_id = v.model_id AND a.version = v.version),
                        (SELECT COUNT(DISTINCT a.ueid) FROM activations a
                         WHERE a.model_id = v.model_id AND a.version = v.version)
                 FROM model_versions v WHERE v.model_id = ?1 ORDER BY v.version",
                &[Arg::Text(&model.model_id)],
            )? {
                model.versions.push(VersionSummary {
                    version: row.int(0, "model version")?,
                    revoked: row.int(1, "model version revoked flag")? != 0,
                    revoked_at: opt_time(&mut row, 2, "model version revocation time")?,
                    created_at: time(row.int(3, "model version creation time")?),
                    activations: row.int(4, "activation count")?,
                    devices: row.int(5, "device count")?,
                });
            }
        }
        Ok(models)
    })
}

/// One device with its activation count.
pub(crate) struct DeviceSummary {
    pub(crate) ueid: String,
    pub(crate) enrolled_at: Option<u64>,
    pub(crate) endorsed_by: Option<String>,
    pub(crate) first_seen: Option<u64>,
    pub(crate) revoked: bool,
    pub(crate) revoked_at: Option<u64>,
    pub(crate) activations: i64,
    pub(crate) last_activation: Option<u64>,
}

const DEVICE_COLUMNS: &str = "d.ueid, d.enrolled_at, d.endorsed_by, d.first_seen, d.revoked,
    d.revoked_at,
    (SELECT COUNT(*) FROM activations a WHERE a.ueid = d.ueid),
    (SELECT MAX(a.activated_at) FROM activations a WHERE a.ueid = d.ueid)";

fn device_row(mut row: Row) -> Result<DeviceSummary, StoreError> {
    Ok(DeviceSummary {
        ueid: row.text(0, "device UEID")?,
        enrolled_at: opt_time(&mut row, 1, "device enrolment time")?,
        endorsed_by: row.opt_text(2, "device endorser")?,
        first_seen: opt_time(&mut row, 3, "device first seen")?,
        revoked: row.int(4, "device revoked flag")? != 0,
        revoked_at: opt_time(&mut row, 5, "device revocation time")?,
        activations: row.int(6, "activation count")?,
        last_activation: opt_time(&mut row, 7, "last activation time")?,
    })
}

/// Every device, by UEID.
pub(crate) fn devices(store: &Store) -> Result<Vec<DeviceSummary>, StoreError> {
    store.read(|tx| {
        tx.query(
            &format!("SELECT {DEVICE_COLUMNS} FROM devices d ORDER BY d.ueid"),
            &[],
        )?
        .into_iter()
        .map(device_row)
        .collect()
    })
}

/// One activation of a device.
pub(crate) struct DeviceActivation {
    pub(crate) model_id: String,
    pub(crate) version: i64,
    pub(crate) at: u64,
}

/// The device `ueid` and its activations (newest first), if known.
pub(crate) fn device(
    store: &Store,
    ueid: &str,
) -> Result<Option<(DeviceSummary, Vec<DeviceActivation>)>, StoreError> {
    store.read(|tx| {
        let Some(row) = tx.query_opt(
            &format!("SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.ueid = ?1"),
            &[Arg::Text(ueid)],
        )?
        else {
            return Ok(None);
        };
        let device = device_row(row)?;
        let activations = tx
            .query(
                "SELECT model_id, version, activated_at FROM activations WHERE ueid = ?1
                 ORDER BY id DESC",
                &[Arg::Text(ueid)],
            )?
            .into_iter()
            .map(|mut row| {
                Ok(DeviceActivation {
                    model_id: row.text(0, "activation model id")?,
                    version: row.int(1, "activation version")?,
                    at: time(row.int(2, "activation time")?),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Some((device, activations)))
    })
}

/// The audit log's filters; `None` matches anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AuditFilter {
    /// The refusal code, `activated` (the successful attempts), or an operator action
    /// (`revoke_device`, `revoke_model_version`).
    pub(crate) reason: Option<String>,
    /// The device's UEID (hex).
    pub(crate) device: Option<String>,
    /// The model id.
    pub(crate) model: Option<String>,
    /// From this time (inclusive).
    pub(crate) from: Option<u64>,
    /// Until this time (inclusive).
    pub(crate) until: Option<u64>,
}

/// One entry of the audit log: an activation attempt or an operator's action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditEntry {
    pub(crate) at: u64,
    /// `activated`, `refused` or `operator`.
    pub(crate) outcome: String,
    /// The refusal code or the operator's action.
    pub(crate) reason: Option<String>,
    pub(crate) ueid: Option<String>,
    pub(crate) model_id: Option<String>,
    pub(crate) version: Option<i64>,
}

/// One page of the audit log, newest first: at most `limit` entries from `offset`, and the
/// number of entries matching the filter.
pub(crate) fn audit(
    store: &Store,
    filter: &AuditFilter,
    limit: u64,
    offset: u64,
) -> Result<(Vec<AuditEntry>, i64), StoreError> {
    // The same conditions on both tables; the parameters are numbered once and reused.
    let mut conditions: Vec<(&str, &str)> = Vec::new();
    let mut args: Vec<Arg<'_>> = Vec::new();
    let reason = filter.reason.as_deref();
    let activated = reason == Some("activated");
    if let Some(r) = reason.filter(|_| !activated) {
        args.push(Arg::Text(r));
        conditions.push(("reason = ?", "action = ?"));
    }
    if let Some(d) = filter.device.as_deref() {
        args.push(Arg::Text(d));
        conditions.push(("ueid = ?", "ueid = ?"));
    }
    if let Some(m) = filter.model.as_deref() {
        args.push(Arg::Text(m));
        conditions.push(("model_id = ?", "model_id = ?"));
    }
    if let Some(t) = filter.from {
        args.push(Arg::Int(crate::records::sql_time(t)));
        conditions.push(("at >= ?", "at >= ?"));
    }
    if let Some(t) = filter.until {
        args.push(Arg::Int(crate::records::sql_time(t)));
        conditions.push(("at <= ?", "at <= ?"));
    }
    let mut audit_where = String::from("1 = 1");
    let mut admin_where = String::from("1 = 1");
    for (i, (audit, admin)) in conditions.iter().enumerate() {
        audit_where.push_str(&format!(" AND {}{}", audit, i + 1));
        admin_where.push_str(&format!(" AND {}{}", admin, i + 1));
    }
    if activated {
        audit_where.push_str(" AND outcome = 'activated'");
        admin_where.push_str(" AND 1 = 0");
    }
    let union = format!(
        "SELECT at, 0 AS kind, seq, outcome, reason, ueid, model_id, version FROM audit
         WHERE {audit_where}
         UNION ALL
         SELECT at, 1 AS kind, seq, 'operator', action, ueid, model_id, version FROM admin_audit
         WHERE {admin_where}"
    );
    let n = args.len();
    let count_sql = format!("SELECT COUNT(*) FROM ({union}) AS entries");
    let page_sql = format!(
        "SELECT at, outcome, reason, ueid, model_id, version FROM ({union}) AS entries
         ORDER BY at DESC, kind DESC, seq DESC LIMIT ?{} OFFSET ?{}",
        n + 1,
        n + 2
    );
    let mut page_args = args.clone();
    page_args.push(Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    page_args.push(Arg::Int(i64::try_from(offset).unwrap_or(i64::MAX)));
    store.read(|tx: &mut dyn Tx| {
        let total = tx.query_one(&count_sql, &args)?.int(0, "audit count")?;
        let entries = tx
            .query(&page_sql, &page_args)?
            .into_iter()
            .map(|mut row| {
                Ok(AuditEntry {
                    at: time(row.int(0, "audit time")?),
                    outcome: row.text(1, "audit outcome")?,
                    reason: row.opt_text(2, "audit reason")?,
                    ueid: row.opt_text(3, "audit UEID")?,
                    model_id: row.opt_text(4, "audit model id")?,
                    version: row.opt_int(5, "audit version")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((entries, total))
    })
}
