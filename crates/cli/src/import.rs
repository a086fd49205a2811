//! `coachloop users import FILE.csv`: upsert people by email, report bad rows by line.

use anyhow::Context;
use coachloop_core::FieldError;
use coachloop_core::ids::AccountId;
use coachloop_core::user::UserChanges;
use coachloop_store::users::Upserted;
use coachloop_store::{Store, StoreError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt;
use std::io::IsTerminal;
use std::path::Path;

/// Rows written per transaction.
const CHUNK: usize = 500;

#[derive(Debug, Default)]
pub struct ImportSummary {
    pub created: usize,
    pub updated: usize,
    /// (line number, what is wrong).
    pub failures: Vec<(u64, String)>,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let imported = self.created + self.updated;
        let noun = if imported == 1 { "person" } else { "people" };
        write!(
            f,
            "imported {imported} {noun} ({} created, {} updated)",
            self.created, self.updated
        )?;
        if !self.failures.is_empty() {
            let rows = if self.failures.len() == 1 {
                "row"
            } else {
                "rows"
            };
            write!(f, "; {} {rows} not imported:", self.failures.len())?;
            for (line, why) in &self.failures {
                write!(f, "\n  line {line}: {why}")?;
            }
        }
        Ok(())
    }
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

pub async fn import_users(
    store: &Store,
    account: AccountId,
    path: &Path,
) -> anyhow::Result<ImportSummary> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = bytes.len() as u64;
    let mut lines = LineCounter::new(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(bytes.as_slice());
    let headers = reader
        .headers()
        .with_context(|| format!("cannot read the header row of {}", path.display()))?
        .clone();
    anyhow::ensure!(
        headers.iter().any(|h| h.trim() == "email"),
        "the header row of {} has no `email` column (it names: {})",
        path.display(),
        headers.iter().collect::<Vec<_>>().join(", ")
    );

    let progress = if std::io::stderr().is_terminal() {
        ProgressBar::new(size)
    } else {
        ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::hidden())
    };
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let mut summary = ImportSummary::default();
    let mut pending: Vec<(u64, UserChanges)> = Vec::with_capacity(CHUNK);
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map(|p| lines.line_at(p.byte())).unwrap_or(0);
                summary.failures.push((line, unreadable(&e)));
                continue;
            }
        };
        let line = record
            .position()
            .map(|p| lines.line_at(p.byte()))
            .unwrap_or(0);
        progress.set_position(record.position().map(|p| p.byte()).unwrap_or(0));
        match UserChanges::from_record(headers.iter().zip(record.iter())) {
            Ok(changes) if changes.email.is_some() => pending.push((line, changes)),
            Ok(_) => summary
                .failures
                .push((line, "email: is required".to_owned())),
            Err(errors) => summary.failures.push((line, describe(&errors))),
        }
        if pending.len() == CHUNK {
            write_chunk(store, account, &mut pending, &mut summary).await?;
            progress.set_message(format!("{} people", summary.created + summary.updated));
        }
    }
    write_chunk(store, account, &mut pending, &mut summary).await?;
    progress.finish_and_clear();
    summary.failures.sort_by_key(|(line, _)| *line);
    Ok(summary)
}

/// Why a row could not be read, without the CSV reader's own line number (see
/// [`LineCounter`]).
fn unreadable(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("unreadable row: it has {len} fields, the header row has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!(
            "unreadable row: field {} is not UTF-8 text (save the file as UTF-8)",
            err.field() + 1
        ),
        _ => format!("unreadable row: {e}"),
    }
}

/// Line numbers of records by their byte offset. The CSV reader's own line numbers are
/// one short after every `\r\n` (rust-csv issue #395), and files exported from
/// spreadsheets end their lines with `\r\n`.
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    /// The line on which the record the reader placed at `byte` starts. The reader may
    /// place it before the `\n` of the previous line's `\r\n` or before blank lines:
    /// the record starts after them. Offsets come in increasing order.
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut start = usize::try_from(byte).map_or(self.bytes.len(), |b| b.min(self.bytes.len()));
        while self
            .bytes
            .get(start)
            .is_some_and(|b| matches!(b, b'\r' | b'\n'))
        {
            start += 1;
        }
        if start < self.offset {
            (self.offset, self.line) = (0, 1);
        }
        let newlines = self.bytes[self.offset..start]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.line += newlines as u64;
        self.offset = start;
        self.line
    }
}

async fn write_chunk(
    store: &Store,
    account: AccountId,
    pending: &mut Vec<(u64, UserChanges)>,
    summary: &mut ImportSummary,
) -> anyhow::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let rows: Vec<UserChanges> = pending.iter().map(|(_, c)| c.clone()).collect();
    let outcomes = store.upsert_users(account, &rows).await?;
    for ((line, _), outcome) in pending.drain(..).zip(outcomes) {
        match outcome {
            Ok(Upserted::Created(_)) => summary.created += 1,
            Ok(Upserted::Updated(_)) => summary.updated += 1,
            Err(StoreError::Conflict(e)) => summary.failures.push((line, e.to_string())),
            Err(StoreError::Invalid(errors)) => summary.failures.push((line, describe(&errors))),
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::LineCounter;

    /// The line each record of `text` starts on, by the reader's offsets.
    fn lines(text: &str) -> Vec<(String, u64)> {
        let mut counter = LineCounter::new(text.as_bytes());
        csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(|r| {
                let r = r.expect("a record");
                let line = counter.line_at(r.position().expect("a position").byte());
                (r[0].to_owned(), line)
            })
            .collect()
    }

    #[test]
    fn counts_lines_whatever_ends_them() {
        let expected = [("a", 2), ("b\nc", 4), ("d", 6)].map(|(f, l)| (f.to_owned(), l));
        assert_eq!(lines("email\na\n\n\"b\nc\"\nd\n"), expected);
        let crlf = lines("email\r\na\r\n\r\n\"b\nc\"\r\nd");
        assert_eq!(crlf, expected);
    }
}
