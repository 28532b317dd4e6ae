//! Oracle `audit_log` (design 13.4): in worlds with users the server keeps
//! an audit log, rotated small so rotation happens; at every start the
//! files the lives before left are read and judged.
//!
//! - **Bounded**: no files but the log and its `keep` rotations, and each
//!   holds under `max_bytes` before its last batch.
//! - **Whole lines**: every line is a JSON object naming a known event and
//!   listener. Judged only in worlds where nothing could have cut or
//!   garbled one: no crash or kill (a life's last batch was not synced,
//!   and a torn write may garble it), no failed sync or full disk (what of
//!   that batch landed is unknown), no damage, no corrupted read.

use std::path::{Path, PathBuf};

use jubilant_core::env::{File, Fs, OpenMode};
use jubilant_core::mutex::lock;
use jubilant_io_sim::{Fault, SimEnv};
use jubilant_server::audit::BATCH_EVENTS_MAX;

use super::Model;
use crate::workload::lives::excused;

/// Where the audit log is.
pub(super) const AUDIT_DIR: &str = "/audit";
/// Its name in [`AUDIT_DIR`].
const AUDIT_FILE: &str = "audit.log";
/// Rotated at this size: a life writes several files' worth.
pub(super) const AUDIT_MAX_BYTES: u64 = 4096;
/// Rotations kept.
pub(super) const AUDIT_KEEP: u32 = 2;

/// The audit configuration of a world with users.
pub(super) fn config() -> jubilant_server::config::AuditConfig {
    jubilant_server::config::AuditConfig {
        file: Some(Path::new(AUDIT_DIR).join(AUDIT_FILE)),
        max_bytes: AUDIT_MAX_BYTES,
        keep: AUDIT_KEEP,
    }
}

/// Judges the audit files on `env`'s disk.
pub(super) async fn check(env: &SimEnv, model: &Model) {
    let dir = PathBuf::from(AUDIT_DIR);
    let Ok(names) = env.list(&dir).await else {
        return;
    };
    let allowed: Vec<String> = std::iter::once(AUDIT_FILE.to_owned())
        .chain((1..=AUDIT_KEEP).map(|n| format!("{AUDIT_FILE}.{n}")))
        .collect();
    for name in names {
        let mut judged = 0;
        let problem = if allowed.contains(&name) {
            match read(env, &dir.join(&name)).await {
                Some(bytes) => match judge(&bytes, excused(env) || crashed(env)) {
                    Ok(lines) => {
                        judged = lines;
                        None
                    }
                    Err(problem) => Some(problem),
                },
                None => None,
            }
        } else {
            Some("is not the log or one of its rotations: rotation keeps too many".to_owned())
        };
        let mut m = lock(model);
        m.verdict.check("audit_log", 1);
        m.verdict.stat("audit_lines_judged", judged);
        if let Some(problem) = problem {
            m.verdict
                .fail("audit_log", format!("{AUDIT_DIR}/{name} {problem}"));
            return;
        }
    }
}

/// Whether a batch may have been left cut or garbled: a node lost its
/// page cache or its process (a batch not yet synced), or a sync failed
/// (what of its batch is on disk is unknown), or a read may show bytes the
/// file does not hold.
fn crashed(env: &SimEnv) -> bool {
    let counts = env.fault_counts();
    [
        Fault::Crash,
        Fault::Kill,
        Fault::ReadCorrupt,
        Fault::FsyncError,
        Fault::DiskFull,
        Fault::DiskFilled,
    ]
    .into_iter()
    .any(|fault| counts.get(fault) > 0)
}

async fn read(env: &SimEnv, path: &Path) -> Option<Vec<u8>> {
    let file = env.open(path, OpenMode::Existing).await.ok()?;
    let len = file.len().await.ok()?;
    file.read_at(0, usize::try_from(len).ok()?).await.ok()
}

/// Whether one file's bytes are as the writer leaves them; `cut_allowed`:
/// a line may have been cut or garbled (only the bound is judged). The
/// lines judged.
fn judge(bytes: &[u8], cut_allowed: bool) -> Result<u64, String> {
    // Whole lines, then what a crash left after the last newline.
    let whole = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(&bytes[..0], |end| &bytes[..=end]);
    let lines: Vec<&[u8]> = whole.split_inclusive(|&b| b == b'\n').collect();
    let before_last_batch: usize = lines
        .iter()
        .take(lines.len().saturating_sub(BATCH_EVENTS_MAX))
        .map(|line| line.len())
        .sum();
    if before_last_batch as u64 >= AUDIT_MAX_BYTES {
        return Err(format!(
            "holds {before_last_batch} bytes before its last batch: it was not rotated at {AUDIT_MAX_BYTES}"
        ));
    }
    if cut_allowed {
        return Ok(0);
    }
    let judged = lines.len() as u64;
    for line in lines {
        let line = &line[..line.len() - 1];
        let parsed: serde_json::Value = serde_json::from_slice(line).map_err(|error| {
            format!(
                "has a line that is not JSON ({error}), with no crash to cut it: {}",
                String::from_utf8_lossy(line)
            )
        })?;
        let known = matches!(
            parsed["event"].as_str(),
            Some("auth_ok" | "auth_failed" | "denied" | "admin")
        ) && matches!(
            parsed["listener"].as_str(),
            Some("native" | "resp" | "admin")
        ) && parsed["ts_ms"].is_u64()
            && parsed["command"].is_string()
            && parsed["outcome"].is_string();
        if !known {
            return Err(format!("has a line that is not an audit event: {parsed}"));
        }
    }
    Ok(judged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_lines_pass_and_foreign_ones_fail() {
        let good = br#"{"ts_ms":1,"event":"denied","user":"u","client":"1.2.3.4:5","listener":"resp","command":"set","outcome":"NOPERM"}"#;
        let mut bytes = good.to_vec();
        bytes.push(b'\n');
        bytes.extend_from_slice(&good[..40]);
        bytes.push(b'\n');
        bytes.extend_from_slice(&good[..20]);
        assert_eq!(judge(&bytes, true), Ok(0), "a crash may have cut a line");
        assert!(judge(&bytes, false).is_err(), "no crash to cut it");
        let foreign = b"{\"event\":\"party\"}\n";
        assert!(judge(foreign, false).is_err());
        let long = [good.as_slice(), b"\n"].concat().repeat(300);
        assert!(
            judge(&long, false).is_err(),
            "300 lines of 120 bytes, never rotated"
        );
    }
}
