//! `jubectl validate DIR`: the durable tree of a database directory checked
//! page by page, offline and without changing anything (it takes the
//! directory's lock, so a running server makes it refuse): every page's
//! CRC, id and the checksum its parent recorded, key order, links and
//! heights, reachability, the free list and the page count; and every
//! value-log pointer in the leaves, followed to its record (segment file
//! present, record inside it, checksums, key and type), reading the
//! segments without the value log's repair. A progress bar shows on a
//! terminal. Exit 1 on any finding.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use jubilant_core::store::validate_dir;
use jubilant_io_real::RealEnv;
use serde_json::json;

use crate::exit;

pub(crate) async fn run(dir: &Path, as_json: bool) -> u8 {
    let env = RealEnv::current();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} pages {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = validate_dir(&env, dir, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            eprintln!("jubectl validate: {error}");
            // Damage that keeps the database from being read at all is a
            // finding; anything else (no such directory, locked) is not.
            return if error.is_corruption() {
                exit::FINDING
            } else {
                exit::OPERATING_ERROR
            };
        }
    };
    if as_json {
        let findings: Vec<_> = report
            .findings
            .iter()
            .map(|f| json!({"page": f.page, "kind": format!("{:?}", f.kind), "detail": f.detail}))
            .collect();
        println!(
            "{}",
            json!({
                "ok": report.findings_count == 0,
                "generation": report.generation,
                "checkpoint_lsn": report.checkpoint_lsn,
                "pages": report.page_count,
                "tree_pages": report.tree_pages,
                "tree_height": report.tree_height,
                "keys": report.keys,
                "free_pages": report.free_pages,
                "vlog_pointers": report.vlog_pointers,
                "findings_count": report.findings_count,
                "findings": findings,
                "data_loss": {
                    "cuts": report.data_loss.cuts,
                    "durable_lsns_lost": report.data_loss.durable_lsns_lost,
                    "records_max": report.data_loss.records_max,
                    "last_cut_unix_ms": report.data_loss.last_cut_unix_ms,
                    "unreadable_records": report.data_loss.unreadable_records,
                },
            })
        );
    } else {
        println!(
            "generation {} (checkpoint LSN {}): {} pages, {} in the tree (height {}), {} keys, {} free, {} value-log pointers followed",
            report.generation,
            report.checkpoint_lsn,
            report.page_count,
            report.tree_pages,
            report.tree_height,
            report.keys,
            report.free_pages,
            report.vlog_pointers
        );
        let loss = &report.data_loss;
        if loss.cuts > 0 || loss.unreadable_records > 0 {
            println!(
                "accepted data loss: {} cut(s) at WAL damage gave up {} acknowledged LSN(s) (at most {} records), the last at {} (Unix ms){}",
                loss.cuts,
                loss.durable_lsns_lost,
                loss.records_max,
                loss.last_cut_unix_ms,
                if loss.unreadable_records > 0 {
                    format!(
                        "; {} record(s) of DATA_LOSS unreadable",
                        loss.unreadable_records
                    )
                } else {
                    String::new()
                }
            );
        }
        for finding in &report.findings {
            let page = finding
                .page
                .map(|p| format!("page {p:?}: "))
                .unwrap_or_default();
            println!("finding: {page}{:?}: {}", finding.kind, finding.detail);
        }
        println!(
            "{}",
            match report.findings_count {
                0 => "ok".to_owned(),
                1 => "1 finding".to_owned(),
                n => format!("{n} findings"),
            }
        );
    }
    if report.findings_count == 0 {
        exit::OK
    } else {
        exit::FINDING
    }
}
