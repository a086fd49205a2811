//! The dashboard: the success metrics against their targets, the account's risk score
//! over time, and the status of each enabled control.
//!
//! The success metrics are figures per day over 90 days; with millions of events they
//! take seconds to read. So each node keeps every account's latest report for
//! [`FRESH`], and a page that finds it older shows it (saying when it was read) while
//! one refresh runs in the background. Only the view that starts a node's first read
//! waits for it (at most [`FIRST_WAIT`]).

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
use coachloop_store::activity::Activity;
use maud::{Markup, html};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long read figures are shown without a refresh.
pub const FRESH: Duration = Duration::from_secs(300);
/// How long a view with no figures yet waits for them before it shows the page without
/// them (it then reloads itself).
const FIRST_WAIT: Duration = Duration::from_secs(2);
/// The days the charts show.
const DAYS: u64 = 90;

/// What the dashboard reads in one go and keeps.
pub struct Figures {
    report: Report,
    activity: Activity,
}

/// Each account's latest figures on this node (a cache: never the only copy).
#[derive(Default)]
pub struct Reports(Mutex<HashMap<AccountId, Slot>>);

#[derive(Default)]
struct Slot {
    kept: Option<Kept>,
    reading: bool,
    /// Why the last read failed, until one succeeds (shown; the next view tries again).
    failed: Option<String>,
}

struct Kept {
    figures: Arc<Figures>,
    /// When they were read: the store's clock (shown) and this process's (freshness).
    read_ms: i64,
    read_at: Instant,
}

/// The figures a page shows, or why there are none yet.
enum Shown {
    Read(Arc<Figures>, i64),
    Reading,
    Failed(String),
}

impl Reports {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, Slot>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kept(&self, account: AccountId) -> Option<Shown> {
        let slots = self.lock();
        let slot = slots.get(&account)?;
        match (&slot.kept, &slot.failed) {
            (Some(k), _) => Some(Shown::Read(k.figures.clone(), k.read_ms)),
            (None, Some(why)) if !slot.reading => Some(Shown::Failed(why.clone())),
            _ => None,
        }
    }

    /// The account's figures: the kept ones (a read starts in the background when they
    /// are stale), or, when there are none, those the read this view starts brings
    /// within [`FIRST_WAIT`]. Views while another's read runs do not queue behind it:
    /// they say the figures are on their way and reload.
    async fn get(&self, state: &AppState, account: AccountId) -> Shown {
        let start = {
            let mut slots = self.lock();
            let slot = slots.entry(account).or_default();
            let stale = slot
                .kept
                .as_ref()
                .is_none_or(|k| k.read_at.elapsed() >= FRESH);
            let start = stale && !slot.reading;
            if start {
                slot.reading = true;
            }
            start
        };
        if start {
            let state = state.clone();
            tokio::spawn(async move { state.console.reports.read(&state, account).await });
        }
        let deadline = Instant::now() + if start { FIRST_WAIT } else { Duration::ZERO };
        loop {
            if let Some(shown) = self.kept(account) {
                return shown;
            }
            if Instant::now() >= deadline {
                return Shown::Reading;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn read(&self, state: &AppState, account: AccountId) {
        let store = &state.store;
        let read_ms = store.clock().now_ms();
        let today = date_of_ms(read_ms);
        let since = coachloop_core::time::date_start_ms(today - chrono::Days::new(DAYS - 1));
        let range = Range::parse(None, None, today).expect("the default range is valid");
        let read = tokio::try_join!(
            store.success_metrics(account, range),
            store.daily_activity(account, since)
        );
        let mut slots = self.lock();
        let slot = slots.entry(account).or_default();
        slot.reading = false;
        match read {
            Ok((report, activity)) => {
                slot.failed = None;
                slot.kept = Some(Kept {
                    figures: Arc::new(Figures { report, activity }),
                    read_ms,
                    read_at: Instant::now(),
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, account = account.0, "could not read the dashboard's figures");
                slot.failed = Some(e.to_string());
            }
        }
    }
}

pub async fn show(State(state): State<AppState>, session: Session) -> Response {
    match dashboard(&state, &session).await {
        Ok(markup) => layout::respond(StatusCode::OK, markup),
        Err(e) => layout::store_error(e),
    }
}

/// The most event types a chart draws on their own (the rest are summed as "other").
const TYPES_DRAWN: usize = 5;

/// Counts per day as a chart's points, every day of the period (a day without any is 0).
fn daily(counts: &[(i64, i64)], days: &[NaiveDate]) -> Vec<(NaiveDate, f64)> {
    let by_day: HashMap<i64, i64> = counts.iter().copied().collect();
    days.iter()
        .map(|d| {
            let n = by_day.get(&day_number(*d)).copied().unwrap_or(0);
            (*d, n as f64)
        })
        .collect()
}

fn day_number(day: NaiveDate) -> i64 {
    coachloop_core::time::date_start_ms(day).div_euclid(86_400_000)
}

/// Events per day by type: the busiest types, then the rest as "other".
fn event_series<'a>(activity: &'a Activity, days: &[NaiveDate]) -> Vec<Series<'a>> {
    let mut series: Vec<Series<'a>> = activity
        .events
        .iter()
        .take(TYPES_DRAWN)
        .map(|(name, counts)| Series {
            name,
            points: daily(counts, days),
        })
        .collect();
    let rest: Vec<(i64, i64)> = activity
        .events
        .iter()
        .skip(TYPES_DRAWN)
        .flat_map(|(_, counts)| counts.iter().copied())
        .collect();
    if !rest.is_empty() {
        let mut summed: HashMap<i64, i64> = HashMap::new();
        for (day, n) in rest {
            *summed.entry(day).or_default() += n;
        }
        let summed: Vec<(i64, i64)> = summed.into_iter().collect();
        series.push(Series {
            name: "other types",
            points: daily(&summed, days),
        });
    }
    series
}

fn figures(figures: &Figures, read_ms: i64) -> Markup {
    let report = &figures.report;
    let today = date_of_ms(read_ms);
    let days: Vec<NaiveDate> = (0..DAYS)
        .rev()
        .map(|back| today - chrono::Days::new(back))
        .collect();
    let events = event_series(&figures.activity, &days);
    let activity = &figures.activity;
    let training = [
        Series {
            name: "smart-group joins",
            points: daily(&activity.joins, &days),
        },
        Series {
            name: "enrolments",
            points: daily(&activity.enrolments, &days),
        },
        Series {
            name: "completions",
            points: daily(&activity.completions, &days),
        },
    ];
    html! {
        p.muted { "Figures as of " (layout::when(read_ms)) "; read again every five minutes." }
        div.cards {
            (metric_card("Compromised passwords a day", "fewer is better", &report.compromised_passwords, 1))
            (metric_card("Days to change a compromised password", "fewer is better", &report.time_to_remediate, 1))
            (metric_card("Dismissed phishing alerts a day", "fewer is better", &report.dismissed_phishing_alerts, 1))
            (metric_card("Password health", "more is better", &report.password_health, 0))
            section.card {
                h2 { "Events per day by type" }
                @if events.is_empty() {
                    p.muted { "No event in the last 90 days." }
                } @else {
                    figure {
                        (PreEscaped(charts::lines("Events per day by type", &events, None)))
                        figcaption { "Events received each day, by type (the busiest " (TYPES_DRAWN) " on their own)." }
                    }
                    (numbers("Day", &events, 0))
                }
            }
            section.card {
                h2 { "Joins, enrolments and completions" }
                figure {
                    (PreEscaped(charts::lines("Joins, enrolments and completions per day", &training, None)))
                    figcaption { "People joining smart groups, enrolled and finishing training, each day." }
                }
                (numbers("Day", &training, 0))
            }
        }
    }
}

async fn dashboard(state: &AppState, session: &Session) -> Result<Markup, StoreError> {
    let store = &state.store;
    let (shown, risk, controls) = tokio::join!(
        state.console.reports.get(state, session.account),
        store.risk_history(session.account, None, 90),
        store.compliance_controls(session.account)
    );
    let (risk, controls) = (risk?, controls?);
    let risk_points: Vec<(NaiveDate, f64)> = risk
        .iter()
        .rev()
        .filter_map(|d| Some((NaiveDate::parse_from_str(&d.day, "%Y-%m-%d").ok()?, d.score)))
        .collect();
    let risk = [Series {
        name: "risk score",
        points: risk_points,
    }];
    let body = html! {
        @match &shown {
            Shown::Read(kept, read_ms) => (figures(kept, *read_ms)),
            Shown::Reading => {
                // No script: the page asks the browser to load it again in a moment.
                meta http-equiv="refresh" content="3";
                p.notice role="status" {
                    "Reading the success metrics and the daily figures (with millions of events "
                    "this takes a few seconds); this page reloads itself."
                }
            }
            Shown::Failed(why) => p.problem role="alert" {
                "The success metrics could not be read (" (why) "); the next view tries again."
            },
        }
        section.card {
            h2 { "Risk score" }
            @if risk[0].points.is_empty() {
                p { "No daily score recorded yet (one is recorded each day)." }
            } @else {
                figure {
                    (PreEscaped(charts::lines("The account's risk score, day by day", &risk, None)))
                    figcaption { "The account's risk score at the end of each day." }
                }
                (numbers("Day", &risk, 1))
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
                (numbers("Day", &[Series { name: "per day", points }], decimals))
            }
        }
    }
}

/// A chart's numbers as a table, a column per series (for screen readers, and for
/// anyone who wants them); the newest day first.
fn numbers(x: &str, series: &[Series<'_>], decimals: usize) -> Markup {
    let days: Vec<NaiveDate> = series
        .first()
        .map(|s| s.points.iter().map(|(d, _)| *d).collect())
        .unwrap_or_default();
    html! {
        details {
            summary { "The numbers" }
            table {
                thead { tr { th { (x) } @for s in series { th.num { (s.name) } } } }
                tbody {
                    @for (i, day) in days.iter().enumerate().rev() {
                        tr {
                            td { (day.format("%Y-%m-%d")) }
                            @for s in series {
                                td.num { @if let Some((_, v)) = s.points.get(i) { (format!("{v:.decimals$}")) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
