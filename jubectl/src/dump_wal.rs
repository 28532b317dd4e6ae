//! `jubectl dump-wal DIR`: what the log-file layer's scan sees, printed.

use std::fmt::Write as _;
use std::path::Path;

use jubilant_core::log::{ScanOutcome, Stop, scan_from, segment_name};
use jubilant_core::store::read_meta_dir;
use jubilant_io_real::RealEnv;

use crate::exit;

/// Bytes of each payload shown in the text output.
const PREVIEW_BYTES: usize = 32;

struct Record {
    lsn: u64,
    segment: u64,
    offset: u64,
    payload: Vec<u8>,
}

pub(crate) async fn run(dir: &Path, json: bool, summary_only: bool) -> u8 {
    let env = RealEnv::current();
    // In a database, segments older than the one its replay starts at are
    // kept only for the values they hold (and may have gaps between them):
    // the scan starts where a recovery's would. Without a valid superblock,
    // every segment is read.
    let replay_from = match read_meta_dir(&env, dir).await {
        Ok(meta) => meta
            .active()
            .and_then(|dump| dump.superblock.as_ref().ok())
            .map_or(0, |superblock| superblock.checkpoint_lsn + 1),
        Err(_) => 0,
    };
    let mut records = Vec::new();
    let outcome = match scan_from(&env, dir, replay_from, |pos, payload| {
        if !summary_only {
            records.push(Record {
                lsn: pos.lsn,
                segment: pos.segment,
                offset: pos.offset,
                payload: payload.to_vec(),
            });
        }
    })
    .await
    {
        Ok(outcome) => outcome,
        Err(err) => {
            eprintln!("jubectl dump-wal: {err}");
            return exit::OPERATING_ERROR;
        }
    };
    if json {
        println!("{}", to_json(dir, &outcome, &records));
    } else {
        print!("{}", to_text(dir, &outcome, &records, summary_only));
    }
    if outcome.corruption.is_some() {
        exit::FINDING
    } else {
        exit::OK
    }
}

fn stop_text(stop: &Stop) -> String {
    match stop {
        Stop::Clean => "clean end".to_owned(),
        Stop::Invalid { reason } => format!("torn or invalid record: {reason}"),
    }
}

/// Printable preview of a payload: text if it is text, hex otherwise.
fn preview(payload: &[u8]) -> String {
    let shown = &payload[..payload.len().min(PREVIEW_BYTES)];
    let more = if payload.len() > PREVIEW_BYTES {
        "…"
    } else {
        ""
    };
    match std::str::from_utf8(shown) {
        Ok(text) if text.chars().all(|c| !c.is_control()) => format!("{text:?}{more}"),
        _ => {
            let mut hex = String::from("0x");
            for byte in shown {
                let _ = write!(hex, "{byte:02x}");
            }
            format!("{hex}{more}")
        }
    }
}

fn to_text(dir: &Path, outcome: &ScanOutcome, records: &[Record], summary_only: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "WAL {}", dir.display());
    let _ = writeln!(
        out,
        "{} segments, {} records, next LSN {}",
        outcome.segments.len(),
        outcome.records(),
        outcome.next_lsn()
    );
    if !outcome.retained.is_empty() {
        let names: Vec<String> = outcome
            .retained
            .iter()
            .map(|&id| segment_name(id))
            .collect();
        let _ = writeln!(
            out,
            "kept for their values, not read (before the replay): {}",
            names.join(", ")
        );
    }
    for segment in &outcome.segments {
        let lsns = match segment.records {
            0 => format!("no records (next LSN {})", segment.first_lsn),
            n => format!(
                "{n} records, LSN {}..={}",
                segment.first_lsn,
                segment.next_lsn() - 1
            ),
        };
        let _ = writeln!(
            out,
            "segment {} ({} bytes, {}): {lsns}, ends at offset {}: {}",
            segment_name(segment.id),
            segment.file_len,
            match segment.block_bytes {
                0 => "batches not block-aligned".to_owned(),
                block => format!(
                    "{} batch{} in {block}-byte blocks",
                    segment.batches,
                    if segment.batches == 1 { "" } else { "es" }
                ),
            },
            segment.end_offset,
            stop_text(&segment.stop)
        );
        if !summary_only {
            for record in records.iter().filter(|r| r.segment == segment.id) {
                let _ = writeln!(
                    out,
                    "  LSN {:>8} @{:<8} {:>6} bytes  {}",
                    record.lsn,
                    record.offset,
                    record.payload.len(),
                    preview(&record.payload)
                );
            }
        }
    }
    for name in &outcome.temp_files {
        let _ = writeln!(out, "unfinished segment file {name} (recovery removes it)");
    }
    if outcome.read_retries > 0 {
        let _ = writeln!(
            out,
            "{} reads verified only when retried",
            outcome.read_retries
        );
    }
    match &outcome.corruption {
        Some(corruption) => {
            let _ = writeln!(out, "CORRUPTION: {corruption}");
        }
        None => {
            let _ = writeln!(out, "no corruption found");
        }
    }
    out
}

fn to_json(dir: &Path, outcome: &ScanOutcome, records: &[Record]) -> serde_json::Value {
    serde_json::json!({
        "dir": dir.display().to_string(),
        "segments": outcome.segments.iter().map(|s| serde_json::json!({
            "id": s.id,
            "name": segment_name(s.id),
            "file_len": s.file_len,
            "first_lsn": s.first_lsn,
            "block_bytes": s.block_bytes,
            "batches": s.batches,
            "records": s.records,
            "end_offset": s.end_offset,
            "stop": match &s.stop { Stop::Clean => "clean".to_owned(), Stop::Invalid { reason } => reason.clone() },
        })).collect::<Vec<_>>(),
        "records": records.iter().map(|r| serde_json::json!({
            "lsn": r.lsn,
            "segment": r.segment,
            "offset": r.offset,
            "len": r.payload.len(),
        })).collect::<Vec<_>>(),
        "record_count": outcome.records(),
        "next_lsn": outcome.next_lsn(),
        "retained": outcome.retained.iter().map(|&id| segment_name(id)).collect::<Vec<_>>(),
        "temp_files": outcome.temp_files,
        "read_retries": outcome.read_retries,
        "corruption": outcome.corruption.as_ref().map(|c| serde_json::json!({
            "path": c.path.display().to_string(),
            "offset": c.offset,
            "detail": c.detail,
        })),
    })
}
