//! Compliance evidence: collecting a framework's (or a control's) evidence for a period,
//! and keeping every export as an append-only, hash-chained snapshot.
//!
//! Evidence is evaluated when it is collected, with the same loading and evaluation as
//! the stored standings ([`Inputs`]) and nothing written, so a framework the account has
//! not enabled is exported just as well: with the requirements enabling it would use (the
//! account's of a kind where it has one, else the catalog's default).
//!
//! Snapshots chain per account: `chain_sha256` is the SHA-256 of the previous snapshot's
//! `chain_sha256`, this snapshot's record (framework, control, format, period, collected
//! instant) and the SHA-256 of its body. [`Store::verify_evidence`] recomputes it all and
//! names the first link that does not hold. Appends take the account's lock, so the chain
//! stays one line whichever node exports.

use crate::compliance::{Inputs, requirements_of};
use crate::locks::Locks;
use crate::{Page, Result, Store, StoreError};
use coachloop_core::compliance::evidence::{
    Evidence, Format, Period, PersonEvidence, RequirementEvidence, Source, sha256_hex,
};
use coachloop_core::compliance::{Control, Framework, Requirement, catalog};
use coachloop_core::ids::{AccountId, SnapshotId};
use coachloop_core::time::format_date;

/// What to export.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceQuery {
    pub framework: &'static Framework,
    pub control: Option<&'static Control>,
    pub period: Period,
    pub format: Format,
}

/// A kept export, without its body.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Snapshot {
    pub id: i64,
    pub framework: String,
    pub control: Option<String>,
    pub format: String,
    pub period_from: String,
    pub period_to: String,
    pub collected_at: i64,
    pub sha256: String,
    pub previous_sha256: Option<String>,
    pub chain_sha256: String,
    /// Characters of the body.
    pub size: i64,
}

/// What checking an account's chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Snapshots checked, up to and including the first broken one.
    pub checked: i64,
    pub broken: Option<BrokenLink>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub id: SnapshotId,
    /// What differs, in words.
    pub what: String,
}

const SNAPSHOT_COLUMNS: &str = "id, framework, control, format, period_from, period_to, \
    collected_at, sha256, previous_sha256, chain_sha256, CAST(LENGTH(body) AS BIGINT) AS size";

#[derive(sqlx::FromRow)]
struct FullRow {
    #[sqlx(flatten)]
    meta: Snapshot,
    body: String,
}

/// The chain's hash of a snapshot (see the module's comment).
fn chain_hash(account: i64, s: &Snapshot) -> String {
    let record = format!(
        "{}\n{account}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
        s.previous_sha256.as_deref().unwrap_or(""),
        s.framework,
        s.control.as_deref().unwrap_or(""),
        s.format,
        s.period_from,
        s.period_to,
        s.collected_at,
        s.sha256,
    );
    sha256_hex(record.as_bytes())
}

impl Store {
    /// Evaluates the account's people against the requirements of `framework` (`control`
    /// only, when given) as of now, with their records of `period`. Writes nothing.
    pub async fn collect_evidence(
        &self,
        account: AccountId,
        framework: &'static Framework,
        control: Option<&'static Control>,
        period: Period,
    ) -> Result<Evidence> {
        let started = std::time::Instant::now();
        let mut tx = self.read.begin_with(self.backend.begin_snapshot()).await?;
        let now = self.now_ms();
        let name: Option<String> = sqlx::query_scalar("SELECT name FROM accounts WHERE id = $1")
            .bind(account.0)
            .fetch_optional(&mut *tx)
            .await?;
        let name = name.ok_or(StoreError::NotFound("account"))?;
        let enabled: Option<i64> = sqlx::query_scalar(
            "SELECT enabled_at FROM compliance_frameworks WHERE account_id = $1 AND framework = $2",
        )
        .bind(account.0)
        .bind(framework.id)
        .fetch_optional(&mut *tx)
        .await?;
        let stored = requirements_of(&mut tx, account.0).await?;

        // The requirements behind the controls, in the catalog's order of their first.
        let controls: Vec<&'static Control> = match control {
            Some(c) => vec![c],
            None => catalog::controls_of(framework.id).collect(),
        };
        let mut kinds = Vec::new();
        for c in &controls {
            if !kinds.contains(&c.requirement) {
                kinds.push(c.requirement);
            }
        }
        let defaults: Vec<Requirement> = kinds
            .iter()
            .map(|kind| Requirement::default_for(*kind))
            .collect();
        let settings: Vec<(Option<i64>, &Requirement)> = kinds
            .iter()
            .zip(&defaults)
            .map(
                |(kind, default)| match stored.iter().find(|r| r.settings.kind == *kind) {
                    Some(r) => (Some(r.id.0), &r.settings),
                    None => (None, default),
                },
            )
            .collect();
        let inputs =
            Inputs::load(&mut tx, None, account.0, None, settings.clone(), true, now).await?;
        tx.commit().await?;
        let read = started.elapsed();

        let mut requirements: Vec<RequirementEvidence> = settings
            .iter()
            .map(|(id, r)| RequirementEvidence {
                source: id.map_or(Source::Default, Source::Account),
                settings: (*r).clone(),
                controls: controls
                    .iter()
                    .copied()
                    .filter(|c| c.requirement == r.kind)
                    .collect(),
                people: Vec::new(),
            })
            .collect();
        for person in &inputs.people {
            for (index, requirement) in requirements.iter_mut().enumerate() {
                let Some(evaluation) = inputs.evaluate(index, person, now) else {
                    continue;
                };
                let name = [person.first_name.as_deref(), person.last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                requirement.people.push(PersonEvidence {
                    user_id: person.id,
                    email: person.email.clone(),
                    name: (!name.is_empty()).then_some(name),
                    status: evaluation.status,
                    reason: evaluation.describe(now),
                    deadline: evaluation.deadline,
                    last_completed: evaluation.last_completed,
                    records: inputs.records(index, person, |enrolled, completed| {
                        period.covers(enrolled, completed)
                    }),
                });
            }
        }
        tracing::debug!(
            account = account.0,
            people = inputs.people.len(),
            read_ms = read.as_millis() as u64,
            evaluate_ms = (started.elapsed() - read).as_millis() as u64,
            "evidence collected"
        );
        Ok(Evidence {
            account_id: account.0,
            account: name,
            framework,
            control,
            enabled: enabled.is_some(),
            period,
            collected_at: now,
            requirements,
        })
    }

    /// Collects evidence, writes it in the asked format and keeps it as the account's
    /// next snapshot. Returns the snapshot and the body.
    pub async fn export_evidence(
        &self,
        account: AccountId,
        query: &EvidenceQuery,
    ) -> Result<(Snapshot, String)> {
        let evidence = self
            .collect_evidence(account, query.framework, query.control, query.period)
            .await?;
        let started = std::time::Instant::now();
        let body = evidence.render(query.format);
        let rendered = started.elapsed();
        let mut snapshot = Snapshot {
            id: 0,
            framework: query.framework.id.to_owned(),
            control: query.control.map(|c| c.id.to_owned()),
            format: query.format.as_str().to_owned(),
            period_from: format_date(query.period.from),
            period_to: format_date(query.period.to),
            collected_at: evidence.collected_at,
            sha256: sha256_hex(body.as_bytes()),
            previous_sha256: None,
            chain_sha256: String::new(),
            size: body.chars().count() as i64,
        };
        let hashed = started.elapsed();
        let mut tx = self.begin_write(&Locks::account(account.0)).await?;
        snapshot.previous_sha256 = sqlx::query_scalar(
            "SELECT chain_sha256 FROM evidence_snapshots WHERE account_id = $1 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(account.0)
        .fetch_optional(&mut *tx)
        .await?;
        snapshot.chain_sha256 = chain_hash(account.0, &snapshot);
        snapshot.id = sqlx::query_scalar(
            "INSERT INTO evidence_snapshots (account_id, framework, control, format, \
             period_from, period_to, collected_at, body, sha256, previous_sha256, chain_sha256) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(account.0)
        .bind(&snapshot.framework)
        .bind(&snapshot.control)
        .bind(&snapshot.format)
        .bind(&snapshot.period_from)
        .bind(&snapshot.period_to)
        .bind(snapshot.collected_at)
        .bind(&body)
        .bind(&snapshot.sha256)
        .bind(&snapshot.previous_sha256)
        .bind(&snapshot.chain_sha256)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::debug!(
            account = account.0,
            format = query.format.as_str(),
            bytes = body.len(),
            render_ms = rendered.as_millis() as u64,
            hash_ms = (hashed - rendered).as_millis() as u64,
            store_ms = (started.elapsed() - hashed).as_millis() as u64,
            "evidence kept"
        );
        Ok((snapshot, body))
    }

    /// The account's snapshots, newest first, without their bodies; with the total.
    pub async fn evidence_snapshots(
        &self,
        account: AccountId,
        page: Page,
    ) -> Result<(Vec<Snapshot>, i64)> {
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM evidence_snapshots WHERE account_id = $1")
                .bind(account.0)
                .fetch_one(&self.read)
                .await?;
        let rows = sqlx::query_as(&format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM evidence_snapshots WHERE account_id = $1 \
             ORDER BY id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(account.0)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.read)
        .await?;
        Ok((rows, total))
    }

    /// One snapshot with its body.
    pub async fn evidence_snapshot(
        &self,
        account: AccountId,
        id: SnapshotId,
    ) -> Result<(Snapshot, String)> {
        let row: FullRow = sqlx::query_as(&format!(
            "SELECT {SNAPSHOT_COLUMNS}, body FROM evidence_snapshots \
             WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound("snapshot"))?;
        Ok((row.meta, row.body))
    }

    /// Recomputes the account's chain, oldest first, and names the first snapshot whose
    /// body, link to the previous one or record does not match what was kept.
    pub async fn verify_evidence(&self, account: AccountId) -> Result<Verification> {
        const PAGE: i64 = 50;
        let mut previous: Option<String> = None;
        let mut after = 0_i64;
        let mut checked = 0;
        loop {
            let rows: Vec<FullRow> = sqlx::query_as(&format!(
                "SELECT {SNAPSHOT_COLUMNS}, body FROM evidence_snapshots \
                 WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(account.0)
            .bind(after)
            .bind(PAGE)
            .fetch_all(&self.read)
            .await?;
            let Some(last) = rows.last() else {
                return Ok(Verification {
                    checked,
                    broken: None,
                });
            };
            after = last.meta.id;
            for row in rows {
                checked += 1;
                let s = &row.meta;
                let broken = |what: String| {
                    Ok(Verification {
                        checked,
                        broken: Some(BrokenLink {
                            id: SnapshotId(s.id),
                            what,
                        }),
                    })
                };
                let body = sha256_hex(row.body.as_bytes());
                if body != s.sha256 {
                    return broken(format!(
                        "its body differs from what was kept: its SHA-256 is {body}, the \
                         snapshot records {}",
                        s.sha256
                    ));
                }
                if s.previous_sha256 != previous {
                    return broken(format!(
                        "its link to the previous snapshot differs: it records {}, the \
                         previous snapshot's chain hash is {} (a snapshot before it was \
                         changed, removed or reordered)",
                        s.previous_sha256.as_deref().unwrap_or("none"),
                        previous
                            .as_deref()
                            .unwrap_or("none (it would be the first)")
                    ));
                }
                let chain = chain_hash(account.0, s);
                if chain != s.chain_sha256 {
                    return broken(format!(
                        "its record (framework, control, format, period or collected time) \
                         differs from what was kept: its chain hash is {chain}, the snapshot \
                         records {}",
                        s.chain_sha256
                    ));
                }
                previous = Some(s.chain_sha256.clone());
            }
        }
    }
}
