//! The results table: one row per workload and engine, with the figure and
//! its ratio to Jubilant DB's.

use super::engine::Kind;

/// One measured figure.
#[derive(Clone, Copy, Debug)]
pub enum Figure {
    /// Operations per second, and what an operation is.
    Rate(f64, &'static str),
    /// Milliseconds.
    Ms(f64),
    /// MiB.
    Mib(f64),
    /// The workload means nothing for this engine.
    NotApplicable,
}

impl Figure {
    fn value(self) -> Option<f64> {
        match self {
            Figure::Rate(value, _) | Figure::Ms(value) | Figure::Mib(value) => Some(value),
            Figure::NotApplicable => None,
        }
    }

    fn text(self) -> String {
        match self {
            Figure::Rate(per_s, unit) => format!("{} {unit}/s", grouped(per_s)),
            Figure::Ms(ms) if ms < 1.0 => format!("{ms:.3} ms"),
            Figure::Ms(ms) if ms < 100.0 => format!("{ms:.1} ms"),
            Figure::Ms(ms) => format!("{} ms", grouped(ms)),
            Figure::Mib(mib) => format!("{mib:.1} MiB"),
            Figure::NotApplicable => "n/a".to_owned(),
        }
    }
}

/// `value` rounded, with thin spaces between groups of three digits.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (at, digit) in digits.chars().enumerate() {
        if at > 0 && (digits.len() - at) % 3 == 0 {
            out.push('\u{2009}');
        }
        out.push(digit);
    }
    out
}

struct Row {
    workload: String,
    kind: Kind,
    figure: Figure,
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
}

impl Report {
    pub fn add(&mut self, workload: &str, kind: Kind, figure: Figure) {
        eprintln!("  {workload} | {} | {}", kind.name(), figure.text());
        self.rows.push(Row {
            workload: workload.to_owned(),
            kind,
            figure,
        });
    }

    /// The table, rows grouped by workload in the order they first ran.
    pub fn print(&self) {
        let mut workloads: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !workloads.contains(&row.workload.as_str()) {
                workloads.push(&row.workload);
            }
        }
        println!("| workload | engine | figure | ratio to Jubilant DB |");
        println!("|---|---|---:|---:|");
        for workload in workloads {
            let rows: Vec<&Row> = self
                .rows
                .iter()
                .filter(|row| row.workload == workload)
                .collect();
            let base = rows
                .iter()
                .find(|row| row.kind == Kind::Jubilant)
                .and_then(|row| row.figure.value());
            for row in rows {
                let ratio = match (row.figure.value(), base) {
                    (Some(value), Some(base)) if base > 0.0 => format!("{:.2}×", value / base),
                    _ => String::new(),
                };
                println!(
                    "| {workload} | {} | {} | {ratio} |",
                    row.kind.name(),
                    row.figure.text()
                );
            }
        }
    }
}
