//! The dashboard: the success metrics against their targets, the account's risk score
//! over time, and the status of each enabled control.
//!
//! The success metrics are figures per day over 90 days; with millions of events they
//! take seconds to read. So each node keeps every account's latest report for
//! [`FRESH`], and a page that finds it older shows it (saying when it was read) while
//! one refresh runs in the background. Only the first view after a start waits.

use super::charts::{self, Rule, Series};
use super::layout::{self, PreEscaped, Section};
use super::session::Session;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use coachloop_core::ids::AccountId;
use coachloop_core::success::Report;
use coachloop_core::success::{Metric, Range};
use coachloop_core::time::date_of_ms;
use coachloop_store::StoreError;
use maud::{Markup, html};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a read report is shown without a refresh.
pub const FRESH: Duration = Duration::from_secs(300);

/// Each account's latest success report on this node (a cache: never the only copy).
#[derive(Default)]
pub struct Reports(Mutex<HashMap<AccountId, Kept>>);

struct Kept {
    report: Arc<Report>,
    /// When it was read: the store's clock (shown) and this process's (for freshness).
    read_ms: i64,
    read_at: Instant,
    refreshing: bool,
}

impl Reports {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, Kept>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The account's report and when it was read: the kept one (starting a refresh when
    /// it is stale), or one read now.
    async fn get(
        &self,
        state: &AppState,
        account: AccountId,
    ) -> Result<(Arc<Report>, i64), StoreError> {
        let stale = {
            let mut kept = self.lock();
            match kept.get_mut(&account) {
                Some(k) => {
                    let stale = k.read_at.elapsed() >= FRESH && !k.refreshing;
                    if stale {
                        k.refreshing = true;
                    }
                    Some((k.report.clone(), k.read_ms, stale))
                }
                None => None,
            }
        };
        match stale {
            Some((report, read_ms, refresh)) => {
                if refresh {
                    let state = state.clone();
                    tokio::spawn(async move {
                        if let Err(e) = state.console.reports.read(&state, account).await {
                            tracing::warn!(error = %e, "could not refresh the dashboard's metrics");
                            if let Some(k) = state.console.reports.lock().get_mut(&account) {
                                k.refreshing = false;
                            }
                        }
                    });
                }
                Ok((report, read_ms))
            }
            None => self.read(state, account).await,
        }
    }

    async fn read(
        &self,
        state: &AppState,
        account: AccountId,
    ) -> Result<(Arc<Report>, i64), StoreError> {
        let read_ms = state.store.clock().now_ms();
        let range =
            Range::parse(None, None, date_of_ms(read_ms)).expect("the default range is valid");
        let report = Arc::new(state.store.success_metrics(account, range).await?);
        self.lock().insert(
            account,
            Kept {
                report: report.clone(),
                read_ms,
                read_at: Instant::now(),
                refreshing: false,
            },
        );
        Ok((report, read_ms))
    }
}

pub async fn show(State(state): State<AppState>, session: Session) -> Response {
    match dashboard(&state, &session).await {
        Ok(markup) => layout::respond(StatusCode::OK, markup),
        Err(e) => layout::store_error(e),
    }
}

async fn dashboard(state: &AppState, session: &Session) -> Result<Markup, StoreError> {
    let store = &state.store;
    let (report, read_ms) = state.console.reports.get(state, session.account).await?;
    let risk = store.risk_history(session.account, None, 90).await?;
    let controls = store.compliance_controls(session.account).await?;
    let risk_points: Vec<(NaiveDate, f64)> = risk
        .iter()
        .rev()
        .filter_map(|d| Some((NaiveDate::parse_from_str(&d.day, "%Y-%m-%d").ok()?, d.score)))
        .collect();
    let body = html! {
        p.muted { "Success metrics as of " (layout::when(read_ms)) "; read again every five minutes." }
        div.cards {
            (metric_card("Compromised passwords a day", "fewer is better", &report.compromised_passwords, 1))
            (metric_card("Days to change a compromised password", "fewer is better", &report.time_to_remediate, 1))
            (metric_card("Dismissed phishing alerts a day", "fewer is better", &report.dismissed_phishing_alerts, 1))
            (metric_card("Password health", "more is better", &report.password_health, 0))
            section.card {
                h2 { "Risk score" }
                @if risk_points.is_empty() {
                    p { "No daily score recorded yet (one is recorded each day)." }
                } @else {
                    figure {
                        (PreEscaped(charts::lines("The account's risk score, day by day",
                            &[Series { name: "risk score", points: risk_points.clone() }], None)))
                        figcaption { "The account's risk score at the end of each day." }
                    }
                    (numbers("Day", "Score", &risk_points, 1))
                }
            }
        }
        h2 { "Controls" }
        (super::compliance::controls_table(&controls))
    };
    Ok(layout::page(session, Section::Dashboard, "Dashboard", body))
}

fn metric_card(title: &str, better: &str, metric: &Metric, decimals: usize) -> Markup {
    let points: Vec<(NaiveDate, f64)> = metric
        .series
        .iter()
        .filter_map(|p| Some((p.date, p.value?)))
        .collect();
    let figure = |value: Option<f64>| match value {
        Some(v) => format!("{v:.decimals$}"),
        None => "—".to_owned(),
    };
    html! {
        section.card {
            h2 { (title) }
            dl.facts {
                dt { "Baseline" } dd { (figure(metric.baseline)) }
                dt { "Target" } dd { (figure(metric.target)) " (" (better) ")" }
                dt { "Now" } dd {
                    (figure(metric.current))
                    @match metric.target_met {
                        Some(true) => { " " span.badge.good { "target met" } }
                        Some(false) => { " " span.badge.bad { "target not met" } }
                        None => {}
                    }
                }
            }
            @if points.is_empty() {
                p.muted { "Nothing measured yet in the last 90 days." }
            } @else {
                figure {
                    (PreEscaped(charts::lines(title,
                        &[Series { name: "per day", points: points.clone() }],
                        metric.target.map(|value| Rule { name: "target", value }))))
                }
                (numbers("Day", title, &points, decimals))
            }
        }
    }
}

/// A chart's numbers as a table (for screen readers, and for anyone who wants them).
fn numbers(x: &str, y: &str, points: &[(NaiveDate, f64)], decimals: usize) -> Markup {
    html! {
        details {
            summary { "The numbers" }
            table {
                thead { tr { th { (x) } th.num { (y) } } }
                tbody {
                    @for (day, value) in points.iter().rev() {
                        tr { td { (day.format("%Y-%m-%d")) } td.num { (format!("{value:.decimals$}")) } }
                    }
                }
            }
        }
    }
}
