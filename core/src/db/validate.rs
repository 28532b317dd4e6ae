//! `validate` of an open database: the durable tree page by page (the
//! store's), then every value-log pointer in the tree followed to its
//! record.

use crate::env::Env;
use crate::error::DbError;
use crate::record::{Escaped, StoredValue};
use crate::store::{FindingKind, TreeScan, ValidateReport};

use super::Db;

/// Keys read per step when `validate` follows value-log pointers.
const VALIDATE_SCAN_KEYS: usize = 1024;

impl<E: Env> Db<E> {
    /// Checks the durable tree page by page (see [`ValidateReport`]), then
    /// follows every value-log pointer in the tree to its record.
    pub async fn validate(&self) -> Result<ValidateReport, DbError> {
        let mut report = self.store.validate(|_, _| {}).await?;
        report.data_loss = self.recovery.loss_history;
        let mut scan = TreeScan::all(VALIDATE_SCAN_KEYS);
        while let Some(entries) = scan.next(&self.store).await? {
            for (key, record) in &entries {
                let StoredValue::Vlog(pointer) = &record.value else {
                    continue;
                };
                report.vlog_pointers += 1;
                match self.resolve(key, record.clone()).await {
                    Ok(_) => {}
                    // Unless GC moved the value meanwhile.
                    Err(DbError::Vlog(error))
                        if error.is_missing_or_corrupt()
                            && self.store.get(key).await?.as_ref() == Some(record) =>
                    {
                        report.find(
                            None,
                            FindingKind::VlogPointer,
                            format!("key {} -> {pointer:?}: {error}", Escaped(key)),
                        );
                    }
                    Err(DbError::Vlog(error)) if error.is_missing_or_corrupt() => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(report)
    }
}
