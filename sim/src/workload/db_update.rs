//! The db workload's shared counter (oracle `updates`, design 14.4):
//! committers now and then increment one key with `Db::update`, so
//! read-modify-writes collide, conflict and retry under faults.

use jubilant_core::db::{Db, DbError, UpdateError, Value};
use jubilant_core::mutex::lock;
use jubilant_core::txn::TxnError;
use jubilant_io_sim::{SimEnv, SimRng};

use super::db::{Model, db_error};

/// The counter's key: no committer's (theirs end in `-c<index>`).
pub(super) const COUNTER_KEY: &str = "u-counter";
/// Percent of commits after which a committer increments the counter.
const UPDATE_PCT: u64 = 12;

/// The counter's value as stored (a missing key is 0).
pub(super) fn counter_value(value: Option<&Value>) -> i64 {
    value.and_then(Value::as_int).unwrap_or(0)
}

/// Maybe increments the counter; `false` when the database failed it.
pub(super) async fn step(
    env: &SimEnv,
    db: &Db<SimEnv>,
    model: &Model,
    index: usize,
    rng: &mut SimRng,
) -> bool {
    if rng.below(100) >= UPDATE_PCT {
        return true;
    }
    lock(model).update_submitted();
    let bump = |old: Option<&Value>| Some(Value::Int(counter_value(old) + 1));
    match db.update(COUNTER_KEY, bump).await {
        Ok(updated) => {
            let value = counter_value(updated.value.as_ref());
            env.trace(format_args!(
                "committer {index} counted {value} at LSN {} in {} attempts",
                updated.revision, updated.attempts
            ));
            let mut m = lock(model);
            m.update_answered(Some((value, updated.revision)));
            m.verdict.stat("updates", 1);
            m.verdict
                .stat("update_retries", u64::from(updated.attempts - 1));
            true
        }
        Err(UpdateError::Conflict { attempts, found }) => {
            env.trace(format_args!(
                "committer {index} gave up counting after {attempts} attempts (revision {found})"
            ));
            let mut m = lock(model);
            m.update_answered(None);
            m.verdict.stat("update_conflicts", 1);
            true
        }
        Err(UpdateError::Txn(TxnError::Db(
            error @ (DbError::DiskFull(_) | DbError::Unavailable(_)),
        ))) => {
            env.trace(format_args!("committer {index} count refused: {error}"));
            lock(model).update_answered(None);
            true
        }
        Err(UpdateError::Txn(TxnError::Db(error))) => {
            db_error(env, model, "update", &error);
            false
        }
        Err(UpdateError::Txn(error)) => {
            lock(model).verdict.fail(
                "updates",
                format!("an increment of the counter failed: {error}"),
            );
            false
        }
    }
}
