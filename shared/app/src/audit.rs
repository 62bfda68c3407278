//! The audit trail's use cases: record a change (best effort: a store failure is logged, the
//! change stands), and read a period (one Query per day, newest first, bounded).

use omniline_domain::audit::{
    audit_id, audit_kind, audit_kinds, AuditRecord, AUDIT_MAX_DAYS, AUDIT_MAX_RECORDS,
};
use omniline_ports::{ConfigStore, Expect, PortError};

/// Records `record` (its own document: concurrent changes never contend).
pub async fn record(config: &dyn ConfigStore, record: &AuditRecord) {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let doc = match serde_json::to_string(record) {
        Ok(doc) => doc,
        Err(e) => {
            tracing::warn!(error = %e, "audit record not serialized");
            return;
        }
    };
    let kind = audit_kind(record.at);
    let written = config
        .put_doc(&kind, &audit_id(record.at, &unique), &doc, Expect::Absent)
        .await;
    if let Err(e) = written {
        // The change is made: the log line (`audit = true`) keeps it.
        tracing::warn!(error = %e, actor = %record.actor, path = %record.path, "audit record not stored");
    }
}

/// Why a period cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "from and to: to must not be before from, and the period is at most {AUDIT_MAX_DAYS} days"
    )]
    Period,
    #[error(transparent)]
    Store(#[from] PortError),
}

/// The records from `from` to `to` (epoch ms, inclusive), newest first, at most
/// [`AUDIT_MAX_RECORDS`]; `truncated` when there were more.
pub async fn read(
    config: &dyn ConfigStore,
    from: i64,
    to: i64,
) -> Result<(Vec<AuditRecord>, bool), AuditError> {
    let kinds = audit_kinds(from, to).ok_or(AuditError::Period)?;
    let mut records = Vec::new();
    for kind in kinds.iter().rev() {
        let mut day: Vec<AuditRecord> = config
            .list_docs(kind)
            .await?
            .iter()
            .filter_map(|d| serde_json::from_str::<AuditRecord>(&d.doc).ok())
            .filter(|r| (from..=to).contains(&r.at))
            .collect();
        day.sort_by_key(|r| std::cmp::Reverse(r.at));
        records.extend(day);
        if records.len() > AUDIT_MAX_RECORDS {
            break;
        }
    }
    let truncated = records.len() > AUDIT_MAX_RECORDS;
    records.truncate(AUDIT_MAX_RECORDS);
    Ok((records, truncated))
}
