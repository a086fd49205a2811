//! `coachloop compliance sync`: the account's remote Reporting API connections synced
//! now, in this process, with progress. The run is claimed like a server's (a lease on
//! the connection), so a server of the installation does not run the same sync at once;
//! an interrupted run, here or on a server, resumes where it stopped.

use crate::config::Config;
use anyhow::Context;
use coachloop_server::remote::{self, Progress, Syncer};
use coachloop_store::sync::{Connection, Stage};
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Rows read so far, shown on a spinner with the stage and the rate.
struct Bar {
    bar: ProgressBar,
    rows: AtomicU64,
    started: Instant,
}

impl Progress for Bar {
    fn page(&self, stage: Stage, rows: usize) {
        let total = self.rows.fetch_add(rows as u64, Ordering::Relaxed) + rows as u64;
        self.bar.set_position(total);
        self.bar.set_message(stage.as_str().replace('_', " "));
    }

    fn waiting(&self, why: &str, wait: Duration) {
        self.bar.println(format!(
            "  {why}; asking again in {} s",
            wait.as_secs_f64().ceil()
        ));
    }
}

pub async fn run(config: &Config, account: &str, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let store = crate::open_store(config).await?;
    let account = crate::account_id(&store, account).await?;
    let server = config.server()?;
    let gate = coachloop_server::outbound::Gate::new(
        server.allow_private_destinations.clone(),
        server.static_hosts.clone(),
    );
    let syncer = Syncer {
        store: store.clone(),
        client: gate
            .client(remote::REQUEST_TIMEOUT)
            .context("cannot build an HTTP client")?,
        secret: server.secret_key.clone(),
        holder: format!("cli:{}", std::process::id()),
    };
    let connections: Vec<Connection> = store
        .sync_connections(account)
        .await?
        .into_iter()
        .filter(|c| only.is_none_or(|o| o == c.name || o == c.id.0.to_string()))
        .collect();
    if connections.is_empty() {
        anyhow::bail!(match only {
            Some(only) => format!("no sync connection `{only}` in this account"),
            None => "this account has no sync connections: add one with \
                     POST /api/compliance/connections"
                .to_owned(),
        });
    }
    let mut failed = false;
    for connection in connections {
        let name = connection.name.clone();
        let Some(claimed) = store
            .claim_sync(
                Some((account, connection.id)),
                &syncer.holder,
                remote::LEASE,
            )
            .await?
        else {
            eprintln!(
                "{name}: a sync is under way on {} already; see GET /api/compliance/connections/{}",
                connection.lease_holder.as_deref().unwrap_or("another node"),
                connection.id
            );
            failed = true;
            continue;
        };
        if let Some(at) = claimed
            .connection
            .position
            .filter(|p| p.page > 1 || p.stage != Stage::People)
        {
            eprintln!("{name}: resuming at {} page {}", at.stage.as_str(), at.page);
        }
        let bar = Arc::new(Bar {
            bar: ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix}: {msg} — {pos} rows ({per_sec}, {elapsed})",
                )
                .expect("a valid template"),
            ),
            rows: AtomicU64::new(0),
            started: Instant::now(),
        });
        bar.bar.set_prefix(name.clone());
        bar.bar.enable_steady_tick(Duration::from_millis(200));
        let outcome = syncer.run(claimed, bar.as_ref()).await;
        bar.bar.finish_and_clear();
        let rows = bar.rows.load(Ordering::Relaxed);
        let secs = bar.started.elapsed().as_secs_f64();
        match outcome {
            Ok(done) => println!(
                "{name}: synced {rows} rows in {secs:.1} s ({:.0} rows/s): {} people, {} \
                 campaigns, {} enrolments{}",
                rows as f64 / secs.max(0.001),
                done.people,
                done.campaigns,
                done.enrollments,
                if done.skipped > 0 {
                    format!(
                        "; {} enrolments skipped (their person is not known: see \
                         README, \"Remote sync\")",
                        done.skipped
                    )
                } else {
                    String::new()
                }
            ),
            Err(e) => {
                eprintln!("{name}: sync failed after {rows} rows: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
