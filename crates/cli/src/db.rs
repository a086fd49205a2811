//! `coachloop db copy`: moves an installation to another database (see
//! `coachloop_store::copy`), with a progress bar on stderr and a table of what was
//! checked on stdout.

use anyhow::Context;
use coachloop_store::DatabaseUrl;
use coachloop_store::copy::{self, Pass, Progress, Report};
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;

/// Copies `from` into the empty database `to`; exit 1 when the check finds a difference
/// (then nothing was committed).
pub async fn copy(from: &str, to: &str) -> anyhow::Result<ExitCode> {
    let (from, to) = (DatabaseUrl::new(from), DatabaseUrl::new(to));
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>5} {msg:<18} [{bar:32}] {human_pos}/{human_len} rows ({per_sec}, {eta} left)",
        )
        .context("the progress bar's template")?
        .progress_chars("=> "),
    );
    let shown = |step: Progress| match step {
        Progress::Pass(pass, rows) => {
            bar.set_prefix(match pass {
                Pass::Copy => "copy",
                Pass::Check => "check",
            });
            bar.set_position(0);
            bar.set_length(rows);
            bar.reset_eta();
        }
        Progress::Table(name) => bar.set_message(name),
        Progress::Rows(rows) => bar.inc(rows),
    };
    let copied = copy::copy(&from, &to, &shown).await;
    bar.finish_and_clear();
    let report = copied.with_context(|| format!("cannot copy {from:?} to {to:?}"))?;
    print!("{}", table(&report));
    // The rate is of everything the copy did; the phases follow.
    let rest = report
        .total_time
        .saturating_sub(report.copy_time + report.index_time + report.check_time);
    println!(
        "copied {} rows in {:.1} s: {} rows/s (rows {:.1} s at {} rows/s; indexes {:.1} s; \
         check {:.1} s; migrations, commit, ANALYZE and the rest {:.1} s)",
        thousands(report.rows()),
        report.total_time.as_secs_f64(),
        thousands(report.rows_per_second().round() as u64),
        report.copy_time.as_secs_f64(),
        thousands(report.rows_per_second_copying().round() as u64),
        report.index_time.as_secs_f64(),
        report.check_time.as_secs_f64(),
        rest.as_secs_f64()
    );
    if report.committed {
        println!("{to:?} now holds a copy of {from:?}");
        Ok(ExitCode::SUCCESS)
    } else {
        let differing: Vec<&str> = report
            .tables
            .iter()
            .filter(|t| !t.matches())
            .map(|t| t.table)
            .collect();
        eprintln!(
            "error: the copy differs from the source in {}; it was rolled back and {to:?} holds no rows",
            differing.join(", ")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// One line per table: rows on each side, the checksum, OK or MISMATCH, the copy rate.
fn table(report: &Report) -> String {
    let mut out = format!(
        "{:<18} {:>12} {:>12}  {:<32}  {:<8} {:>10}\n",
        "table", "source rows", "target rows", "checksum", "result", "rows/s"
    );
    for t in &report.tables {
        let rate = t.source.rows as f64 / t.elapsed.as_secs_f64().max(1e-9);
        out.push_str(&format!(
            "{:<18} {:>12} {:>12}  {:<32}  {:<8} {:>10}\n",
            t.table,
            thousands(t.source.rows),
            thousands(t.target.rows),
            t.target,
            if t.matches() { "OK" } else { "MISMATCH" },
            if t.source.rows == 0 {
                "-".to_owned()
            } else {
                thousands(rate.round() as u64)
            }
        ));
    }
    out
}

/// 1234567 → "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(10_234_567), "10,234,567");
    }
}
