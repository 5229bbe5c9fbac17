//! The audit rows of activation attempts, and the cap on those anyone can cause.

use crate::records::sql_time;
use crate::sql::{Tx, args};
use crate::store::{self, Sequence};
use crate::store_error::StoreError;

use super::refusal::UNAUTHENTICATED_CODES;
use super::{MAX_UNSIGNED_AUDIT_PER_MINUTE, Refusal};

/// What the audit row records about the request.
pub(super) struct AuditSubject {
    pub(super) ueid: Option<String>,
    pub(super) model_id: String,
    pub(super) version: u32,
}

pub(super) fn write_audit(
    tx: &mut dyn Tx,
    now: u64,
    subject: &AuditSubject,
    refusal: Option<&Refusal>,
) -> Result<(), StoreError> {
    let seq = store::next_seq(tx, Sequence::Audit)?;
    let model_id = truncate(&subject.model_id, omg_protocol::licence::MAX_MODEL_ID_LEN);
    tx.execute(
        "INSERT INTO audit (seq, at, ueid, model_id, version, outcome, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![
            seq,
            sql_time(now),
            subject.ueid.as_deref(),
            model_id,
            i64::from(subject.version),
            if refusal.is_some() {
                "refused"
            } else {
                "activated"
            },
            refusal.map(Refusal::code),
        ],
    )?;
    Ok(())
}

/// The audit row of a refusal: capped for the refusals anyone can cause, one each otherwise.
pub(super) fn write_refusal_audit(
    tx: &mut dyn Tx,
    now: u64,
    subject: &AuditSubject,
    refusal: &Refusal,
) -> Result<(), StoreError> {
    if refusal.is_unauthenticated() {
        write_unsigned_audit(tx, now, subject, refusal)
    } else {
        write_audit(tx, now, subject, Some(refusal))
    }
}

/// The audit row of a refusal anyone can cause ([`Refusal::is_unauthenticated`]), unless
/// [`MAX_UNSIGNED_AUDIT_PER_MINUTE`] such rows were already written in `now`'s minute.
fn write_unsigned_audit(
    tx: &mut dyn Tx,
    now: u64,
    subject: &AuditSubject,
    refusal: &Refusal,
) -> Result<(), StoreError> {
    let minute = now - now % 60;
    // The codes are this module's constants, not input.
    let codes = UNAUTHENTICATED_CODES.map(|c| format!("'{c}'")).join(", ");
    let written = tx
        .query_opt(
            &format!(
                "SELECT COUNT(*) FROM audit WHERE at >= ?1 AND at < ?2 AND outcome = 'refused'
                 AND reason IN ({codes})"
            ),
            args![sql_time(minute), sql_time(minute + 60)],
        )?
        .map(|mut row| row.int(0, "audit count"))
        .transpose()?
        .unwrap_or(0);
    if written >= MAX_UNSIGNED_AUDIT_PER_MINUTE {
        return Ok(());
    }
    write_audit(tx, now, subject, Some(refusal))
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
