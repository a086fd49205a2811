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
        write!(
            f,
            "imported {} people ({} created, {} updated)",
            self.created + self.updated,
            self.created,
            self.updated
        )?;
        if !self.failures.is_empty() {
            write!(f, "; {} rows not imported:", self.failures.len())?;
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
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(file);
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
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                summary
                    .failures
                    .push((line, format!("unreadable row: {e}")));
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
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
