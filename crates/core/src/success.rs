//! Success metrics of the credential-risk integration (shared/reference/dashlane-events.md):
//! compromised passwords, time to remediate, dismissed phishing alerts and password
//! health, each a daily series of UTC days with a baseline, its 3-month target and the
//! change since the integration went live. The README's *Success metrics* section states
//! the definitions; the store reads the events ([`Facts`]) and [`compute`] does the rest.
//!
//! - **Went live**: the instant of the account's first event of any `dashlane_` type.
//! - **Baseline**: the first [`BASELINE_DAYS`] days, starting with the go-live day.
//! - **Current**: the last [`CURRENT_DAYS`] days of the series asked for.
//! - **Change**: `100 × (current − baseline) / baseline`; **target**: the baseline 20 %
//!   lower (20 % higher for password health, at most 100), due 3 months after going live.

use crate::FieldError;
use crate::ids::UserId;
use crate::time::{date_of_ms, date_start_ms, format_date, parse_date};
use chrono::{Days, Months, NaiveDate};
use std::collections::HashMap;

/// Milliseconds in a (UTC) day.
pub const DAY_MS: i64 = 86_400_000;

/// Every type of the integration starts so; the first event of one marks going live.
pub const PREFIX: &str = "dashlane_";
pub const COMPROMISED: &str = "dashlane_user_typed_compromised_password";
pub const WEAK: &str = "dashlane_user_typed_weak_password";
pub const CHANGED: &str = "dashlane_user_changed_at_risk_password";
pub const DISMISSED: [&str; 2] = [
    "dashlane_user_dismissed_ai_phishing_alert",
    "dashlane_user_dismissed_vault_phishing_alert",
];
/// A figure a sender pushes: the description is the score, a number from 0 to 100.
pub const HEALTH_SCORE: &str = "dashlane_password_health_score";

/// Days of the baseline: a whole week, so weekday and weekend behaviour both count, and
/// short enough to end before training has changed much.
pub const BASELINE_DAYS: u64 = 7;
/// Days `current` is measured over, as many as the baseline so the two compare.
pub const CURRENT_DAYS: u64 = 7;
/// A weak or compromised password unchanged for this long stops counting against health
/// (the source's "3 months" horizon, and the starter plays' window).
pub const HEALTH_WINDOW_DAYS: i64 = 90;
/// A pushed health figure stands for the day it was pushed and the 6 after.
pub const PUSHED_FOR_DAYS: i64 = 7;
/// The source's targets are due this long after going live.
pub const TARGET_MONTHS: u32 = 3;
/// The source's targets: 20 % fewer (or, for password health, 20 % more).
pub const TARGET_CHANGE_PERCENT: f64 = 20.0;
/// The range when `from` is not given: this many days ending with `to`.
pub const DEFAULT_DAYS: u64 = 90;
/// The longest range one request may ask for.
pub const MAX_DAYS: i64 = 366;

/// The days a request asks for, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Range {
    /// `from` and `to` as a request gives them (`YYYY-MM-DD`, 1970-01-01 or later): `to`
    /// defaults to `today`, `from` to [`DEFAULT_DAYS`] days ending with `to`; `from` must
    /// not be after `to` and the range spans at most [`MAX_DAYS`] days. The error names
    /// the parameter to fix.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        today: NaiveDate,
    ) -> Result<Self, FieldError> {
        let to_given = to.is_some();
        let to = match to {
            Some(text) => date("to", text)?,
            None => today,
        };
        let from = match from {
            Some(text) => date("from", text)?,
            None => minus(to, DEFAULT_DAYS - 1),
        };
        let to_is = if to_given {
            format!("`to` ({})", format_date(to))
        } else {
            format!("`to` ({}: today, as `to` was not given)", format_date(to))
        };
        if from > to {
            return Err(FieldError::new(
                "from",
                format!("must not be after {to_is}"),
            ));
        }
        let days = (to - from).num_days() + 1;
        if days > MAX_DAYS {
            return Err(FieldError::new(
                "from",
                format!(
                    "must be at most {MAX_DAYS} days before {to_is}, both days counted; \
                     the range asked for spans {days} days"
                ),
            ));
        }
        Ok(Self { from, to })
    }
}

fn date(field: &str, text: &str) -> Result<NaiveDate, FieldError> {
    parse_date(text.trim())
        .filter(|day| *day >= NaiveDate::default())
        .ok_or_else(|| {
            FieldError::new(
                field,
                format!("must be a date written YYYY-MM-DD, 1970-01-01 or later; got `{text}`"),
            )
        })
}

fn plus(day: NaiveDate, days: u64) -> NaiveDate {
    day.checked_add_days(Days::new(days))
        .unwrap_or(NaiveDate::MAX)
}

fn minus(day: NaiveDate, days: u64) -> NaiveDate {
    day.checked_sub_days(Days::new(days))
        .unwrap_or(NaiveDate::MIN)
}

/// The day number (days since 1970-01-01) of the UTC day holding `ms`.
fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// Consecutive days, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl Window {
    fn between(first: NaiveDate, last: NaiveDate) -> Option<Self> {
        (first <= last).then_some(Self { first, last })
    }

    /// How many days it holds.
    pub fn days(&self) -> usize {
        usize::try_from((self.last - self.first).num_days() + 1).unwrap_or(0)
    }

    /// The first instant of its first day, in epoch milliseconds.
    pub fn start_ms(&self) -> i64 {
        date_start_ms(self.first)
    }

    /// The first instant after its last day, in epoch milliseconds.
    pub fn end_ms(&self) -> i64 {
        date_start_ms(self.last) + DAY_MS
    }

    fn first_day(&self) -> i64 {
        day_of(self.start_ms())
    }

    /// Its days by day number, with their dates.
    fn each(&self) -> impl Iterator<Item = (i64, NaiveDate)> + use<> {
        let first = self.first_day();
        (first..).zip(self.first.iter_days()).take(self.days())
    }

    fn holds(&self, ms: i64) -> bool {
        (self.start_ms()..self.end_ms()).contains(&ms)
    }
}

/// The windows of one request, from when the integration went live, the range and today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub range: Range,
    pub today: NaiveDate,
    /// The instant of the account's first `dashlane_` event; `None` before any.
    pub live_since: Option<i64>,
    /// The first [`BASELINE_DAYS`] days from the go-live day (the days so far while they
    /// last); `None` before going live or while it is in the future.
    pub baseline: Option<Window>,
    /// The range's days from going live to today; `None` when it holds none.
    pub series: Option<Window>,
    /// The last [`CURRENT_DAYS`] days of the series.
    pub current: Option<Window>,
}

impl Plan {
    pub fn new(range: Range, today: NaiveDate, live_since: Option<i64>) -> Self {
        let live_day = live_since.map(date_of_ms);
        let baseline = live_day
            .and_then(|live| Window::between(live, plus(live, BASELINE_DAYS - 1).min(today)));
        let series =
            live_day.and_then(|live| Window::between(range.from.max(live), range.to.min(today)));
        let current = series.map(|series| Window {
            first: series.first.max(minus(series.last, CURRENT_DAYS - 1)),
            last: series.last,
        });
        Self {
            range,
            today,
            live_since,
            baseline,
            series,
            current,
        }
    }

    /// The UTC day the integration went live.
    pub fn live_day(&self) -> Option<NaiveDate> {
        self.live_since.map(date_of_ms)
    }

    /// Whether every day of the baseline is over.
    pub fn baseline_complete(&self) -> bool {
        self.baseline
            .is_some_and(|b| b.days() as u64 == BASELINE_DAYS && b.last < self.today)
    }

    /// Whether every day of `current` is over.
    pub fn current_complete(&self) -> bool {
        self.current.is_some_and(|c| c.last < self.today)
    }

    /// The day the targets are due: [`TARGET_MONTHS`] calendar months after going live.
    pub fn target_date(&self) -> Option<NaiveDate> {
        self.live_day()
            .and_then(|live| live.checked_add_months(Months::new(TARGET_MONTHS)))
    }

    /// The days whose event counts are needed: the baseline's and the series', as one
    /// window when they meet.
    pub fn count_windows(&self) -> Vec<Window> {
        match (self.baseline, self.series) {
            (Some(b), Some(s)) if s.first <= plus(b.last, 1) => vec![Window {
                first: b.first,
                last: b.last.max(s.last),
            }],
            (b, s) => b.into_iter().chain(s).collect(),
        }
    }
}

/// Events counted per day (matched to a person or not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    /// `dashlane_user_typed_compromised_password`.
    pub compromised: i64,
    /// `dashlane_user_dismissed_ai_phishing_alert` and `…_vault_phishing_alert`.
    pub dismissed: i64,
}

/// What a person's event says about their passwords. At one instant, a risk sorts before
/// a change, so a change at the very instant of a risk remediates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PasswordEvent {
    Compromised,
    Weak,
    Changed,
}

/// A person's compromised, weak or changed password, at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PersonEvent {
    pub user: UserId,
    pub at: i64,
    pub kind: PasswordEvent,
}

/// Who counts in the password-health proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct People {
    /// People active now: they count on every day.
    pub active: i64,
    /// People archived now, with when (a person counts on the days that end at or before
    /// it; `None`: on none).
    pub archived: HashMap<UserId, Option<i64>>,
}

impl People {
    /// The last instant at which `user` counts.
    fn counted_until(&self, user: UserId) -> Option<i64> {
        match self.archived.get(&user) {
            Some(at) => *at,
            None => Some(i64::MAX),
        }
    }
}

/// A health figure a sender pushed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pushed {
    pub at: i64,
    pub value: f64,
}

/// The value of a pushed health figure: its event's description, a number from 0 to 100
/// (surrounding spaces and a trailing `%` allowed). Anything else is not a figure.
pub fn pushed_value(description: &str) -> Option<f64> {
    let text = description.trim();
    let text = text.strip_suffix('%').unwrap_or(text).trim_end();
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && (0.0..=100.0).contains(v))
}

/// What the store reads for a [`Plan`].
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Events per day over [`Plan::count_windows`] (days without any may be missing).
    pub counts: HashMap<NaiveDate, DayCounts>,
    /// Compromised, weak and changed passwords of people, since going live.
    pub person_events: Vec<PersonEvent>,
    pub people: People,
    /// Health figures pushed since going live, in the order they occurred (ties in the
    /// order they were stored).
    pub pushed: Vec<Pushed>,
}

/// Where a day's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Counted or measured from events.
    Events,
    /// Password health: the proxy computed from events.
    Proxy,
    /// Password health: a figure a sender pushed.
    Pushed,
}

/// One day of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub date: NaiveDate,
    /// `None`: nothing to measure that day.
    pub value: Option<f64>,
    /// What the value is computed from: the events counted, the remediations averaged,
    /// the people assessed (proxy) or the figures pushed that day.
    pub samples: i64,
    pub source: Source,
}

/// One metric: its series and how it compares with the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub baseline: Option<f64>,
    pub target: Option<f64>,
    /// −20 (fewer is better) or +20 (more is better).
    pub target_change_percent: f64,
    pub current: Option<f64>,
    pub change_percent: Option<f64>,
    pub target_met: Option<bool>,
    pub series: Vec<Point>,
}

/// Every metric of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub plan: Plan,
    /// Compromised-password events a day.
    pub compromised_passwords: Metric,
    /// Days from a compromised password to its change.
    pub time_to_remediate: Metric,
    /// Dismissed phishing alerts (AI and vault) a day.
    pub dismissed_phishing_alerts: Metric,
    /// 0–100.
    pub password_health: Metric,
}

pub fn compute(plan: &Plan, facts: &Facts) -> Report {
    let mut events = facts.person_events.clone();
    events.sort_unstable();
    Report {
        plan: *plan,
        compromised_passwords: count_metric(plan, facts, |c| c.compromised),
        time_to_remediate: remediation_metric(plan, &exposures(&events)),
        dismissed_phishing_alerts: count_metric(plan, facts, |c| c.dismissed),
        password_health: health_metric(plan, facts, &stretches(&events)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Fewer,
    More,
}

/// A metric from its series and its baseline and current values (unrounded): the
/// target and change are computed from the rounded figures the caller sees.
fn metric(
    better: Better,
    baseline: Option<f64>,
    current: Option<f64>,
    series: Vec<Point>,
) -> Metric {
    let baseline = baseline.map(round3);
    let current = current.map(round3);
    let target = baseline.map(|b| match better {
        Better::Fewer => round3(b * 0.8),
        Better::More => round3((b * 1.2).min(100.0)),
    });
    let change_percent = match (baseline, current) {
        (Some(b), Some(c)) if b != 0.0 => Some(round3(100.0 * (c - b) / b)),
        _ => None,
    };
    let target_met = match (current, target) {
        (Some(c), Some(t)) => Some(match better {
            Better::Fewer => c <= t,
            Better::More => c >= t,
        }),
        _ => None,
    };
    Metric {
        baseline,
        target,
        target_change_percent: match better {
            Better::Fewer => -TARGET_CHANGE_PERCENT,
            Better::More => TARGET_CHANGE_PERCENT,
        },
        current,
        change_percent,
        target_met,
        series,
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The mean of the days that have a value.
fn mean(points: &[Point]) -> Option<f64> {
    let values: Vec<f64> = points.iter().filter_map(|p| p.value).collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The last `current.days()` points of the series.
fn current_points<'a>(plan: &Plan, series: &'a [Point]) -> &'a [Point] {
    let days = plan.current.map_or(0, |c| c.days());
    &series[series.len().saturating_sub(days)..]
}

/// A daily count: each day's events; baseline and current are the mean a day.
fn count_metric(plan: &Plan, facts: &Facts, count: fn(&DayCounts) -> i64) -> Metric {
    let points = |window: Option<Window>| -> Vec<Point> {
        window
            .iter()
            .flat_map(Window::each)
            .map(|(_, date)| {
                let n = facts.counts.get(&date).map_or(0, count);
                Point {
                    date,
                    value: Some(n as f64),
                    samples: n,
                    source: Source::Events,
                }
            })
            .collect()
    };
    let series = points(plan.series);
    let baseline = mean(&points(plan.baseline));
    let current = mean(current_points(plan, &series));
    metric(Better::Fewer, baseline, current, series)
}

/// A person's exposure: from the first compromised password after their last change (or
/// ever) to their next change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exposure {
    began: i64,
    ended: i64,
}

/// The closed exposures of `events` (sorted by person, instant, kind).
fn exposures(events: &[PersonEvent]) -> Vec<Exposure> {
    let mut out = Vec::new();
    let mut open: Option<(UserId, i64)> = None;
    for event in events {
        if open.is_some_and(|(user, _)| user != event.user) {
            open = None;
        }
        match event.kind {
            PasswordEvent::Compromised => {
                open.get_or_insert((event.user, event.at));
            }
            PasswordEvent::Weak => {}
            PasswordEvent::Changed => {
                if let Some((_, began)) = open.take() {
                    out.push(Exposure {
                        began,
                        ended: event.at,
                    });
                }
            }
        }
    }
    out
}

fn mean_days<'a>(exposures: impl Iterator<Item = &'a Exposure>) -> Option<f64> {
    let (sum, n) = exposures.fold((0i128, 0i64), |(sum, n), e| {
        (sum + i128::from(e.ended - e.began), n + 1)
    });
    (n > 0).then(|| sum as f64 / n as f64 / DAY_MS as f64)
}

/// Time to remediate: each day, the mean length in days of the exposures closed that
/// day; current likewise over its days. The baseline follows the exposures that began in
/// the baseline days to their change, whenever it came: remediations closed within the
/// first week could only be shorter than a week.
fn remediation_metric(plan: &Plan, exposures: &[Exposure]) -> Metric {
    let mut by_day: HashMap<i64, (i128, i64)> = HashMap::new();
    for e in exposures {
        let day = by_day.entry(day_of(e.ended)).or_default();
        day.0 += i128::from(e.ended - e.began);
        day.1 += 1;
    }
    let series: Vec<Point> = plan
        .series
        .iter()
        .flat_map(Window::each)
        .map(|(n, date)| {
            let (sum, count) = by_day.get(&n).copied().unwrap_or_default();
            Point {
                date,
                value: (count > 0).then(|| round3(sum as f64 / count as f64 / DAY_MS as f64)),
                samples: count,
                source: Source::Events,
            }
        })
        .collect();
    let baseline = plan
        .baseline
        .and_then(|w| mean_days(exposures.iter().filter(|e| w.holds(e.began))));
    let current = plan
        .current
        .and_then(|w| mean_days(exposures.iter().filter(|e| w.holds(e.ended))));
    metric(Better::Fewer, baseline, current, series)
}

/// A stretch of time a person is at risk: at risk at instant `e` when `from < e ≤ until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stretch {
    user: UserId,
    from: i64,
    until: i64,
}

/// The stretches of `events` (sorted by person, instant, kind): a person is at risk at an
/// instant when their latest weak or compromised password before it is at most
/// [`HEALTH_WINDOW_DAYS`] old and they have not changed a password since (at or after it).
fn stretches(events: &[PersonEvent]) -> Vec<Stretch> {
    let window = HEALTH_WINDOW_DAYS * DAY_MS;
    let mut out = Vec::new();
    // The person, the start of their stretch and their latest risk.
    let mut open: Option<(UserId, i64, i64)> = None;
    for event in events {
        if let Some((user, from, last)) = open
            && user != event.user
        {
            out.push(Stretch {
                user,
                from,
                until: last + window,
            });
            open = None;
        }
        match event.kind {
            PasswordEvent::Compromised | PasswordEvent::Weak => {
                open = match open {
                    Some((user, from, last)) if event.at <= last + window => {
                        Some((user, from, event.at))
                    }
                    Some((user, from, last)) => {
                        out.push(Stretch {
                            user,
                            from,
                            until: last + window,
                        });
                        Some((user, event.at, event.at))
                    }
                    None => Some((event.user, event.at, event.at)),
                };
            }
            PasswordEvent::Changed => {
                if let Some((user, from, last)) = open.take() {
                    out.push(Stretch {
                        user,
                        from,
                        until: event.at.min(last + window),
                    });
                }
            }
        }
    }
    if let Some((user, from, last)) = open {
        out.push(Stretch {
            user,
            from,
            until: last + window,
        });
    }
    out
}

/// Password health: each day the latest figure pushed in its last [`PUSHED_FOR_DAYS`]
/// days, or else the proxy at the end of the day: `100 × (1 − at risk / people)` of the
/// people who count then. Baseline and current are the mean of their days' values.
fn health_metric(plan: &Plan, facts: &Facts, stretches: &[Stretch]) -> Metric {
    let mut archived: Vec<i64> = facts.people.archived.values().flatten().copied().collect();
    archived.sort_unstable();
    // The people who count at instant `e`: the active, and the archived at or after it.
    let people_at = |e: i64| {
        facts.people.active + (archived.len() - archived.partition_point(|at| *at < e)) as i64
    };
    let mut pushed = facts.pushed.clone();
    pushed.sort_by_key(|p| p.at);
    let points = |window: Option<Window>| -> Vec<Point> {
        let Some(window) = window else {
            return Vec::new();
        };
        let at_risk = at_risk_counts(window, stretches, &facts.people);
        window
            .each()
            .zip(at_risk)
            .map(|((n, date), at_risk)| {
                let (start, end) = (n * DAY_MS, (n + 1) * DAY_MS);
                let before_end = pushed.partition_point(|p| p.at < end);
                let today = before_end - pushed.partition_point(|p| p.at < start);
                match before_end.checked_sub(1).map(|i| pushed[i]) {
                    Some(p) if p.at >= end - PUSHED_FOR_DAYS * DAY_MS => Point {
                        date,
                        value: Some(round3(p.value)),
                        samples: today as i64,
                        source: Source::Pushed,
                    },
                    _ => {
                        let people = people_at(end);
                        Point {
                            date,
                            value: (people > 0)
                                .then(|| round3(100.0 * (1.0 - at_risk as f64 / people as f64))),
                            samples: people,
                            source: Source::Proxy,
                        }
                    }
                }
            })
            .collect()
    };
    let series = points(plan.series);
    let baseline = mean(&points(plan.baseline));
    let current = mean(current_points(plan, &series));
    metric(Better::More, baseline, current, series)
}

/// How many people are at risk at the end of each day of `window`.
fn at_risk_counts(window: Window, stretches: &[Stretch], people: &People) -> Vec<i64> {
    let days = window.days();
    let first = window.first_day();
    let last = first + days as i64 - 1;
    let mut diff = vec![0i64; days + 1];
    for s in stretches {
        let Some(counted_until) = people.counted_until(s.user) else {
            continue;
        };
        let until = s.until.min(counted_until);
        // The first day whose end is after `from`; the last whose end is at or before
        // `until` (a day's end is the next day's first instant).
        let (d0, d1) = (day_of(s.from).max(first), (day_of(until) - 1).min(last));
        if d0 <= d1 {
            diff[(d0 - first) as usize] += 1;
            diff[(d1 - first) as usize + 1] -= 1;
        }
    }
    let mut running = 0;
    diff[..days]
        .iter()
        .map(|d| {
            running += d;
            running
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(text: &str) -> NaiveDate {
        parse_date(text).unwrap()
    }

    fn ms(text: &str) -> i64 {
        crate::time::parse_date_or_timestamp(text)
            .unwrap()
            .timestamp_millis()
    }

    const TODAY: &str = "2026-11-01";

    #[test]
    fn range_defaults_and_limits() {
        let today = d(TODAY);
        let range = Range::parse(None, None, today).unwrap();
        assert_eq!((range.from, range.to), (d("2026-08-04"), today));
        let range = Range::parse(None, Some("2026-01-31"), today).unwrap();
        assert_eq!((range.from, range.to), (d("2025-11-03"), d("2026-01-31")));
        let range = Range::parse(Some("2026-10-01"), None, today).unwrap();
        assert_eq!((range.from, range.to), (d("2026-10-01"), today));
        // 366 days, both counted, is the most.
        assert!(Range::parse(Some("2025-11-01"), Some("2026-11-01"), today).is_ok());
        let long = Range::parse(Some("2025-10-31"), Some("2026-11-01"), today).unwrap_err();
        assert_eq!(long.field, "from");
        assert!(long.message.contains("367 days"), "{long}");
        let reversed = Range::parse(Some("2026-11-02"), Some("2026-11-01"), today).unwrap_err();
        assert_eq!(reversed.field, "from");
        let after_today = Range::parse(Some("2026-11-02"), None, today).unwrap_err();
        assert!(after_today.message.contains("today"), "{after_today}");
        for bad in ["2026-02-30", "2026-1-1", "yesterday", "", "1969-12-31"] {
            assert_eq!(
                Range::parse(None, Some(bad), today).unwrap_err().field,
                "to"
            );
            assert_eq!(
                Range::parse(Some(bad), None, today).unwrap_err().field,
                "from"
            );
        }
    }

    #[test]
    fn plan_windows() {
        let today = d(TODAY);
        let range = Range::parse(None, None, today).unwrap();
        let plan = Plan::new(range, today, None);
        assert_eq!(
            (plan.baseline, plan.series, plan.current),
            (None, None, None)
        );
        assert_eq!(plan.target_date(), None);
        assert!(plan.count_windows().is_empty());

        // Live on 2026-10-30: a baseline of three days so far, the series from then.
        let plan = Plan::new(range, today, Some(ms("2026-10-30T18:00:00Z")));
        let three = Window::between(d("2026-10-30"), today);
        assert_eq!(
            (plan.baseline, plan.series, plan.current),
            (three, three, three)
        );
        assert!(!plan.baseline_complete());
        assert_eq!(plan.target_date(), Some(d("2027-01-30")));

        // Live long before the range: two windows apart.
        let plan = Plan::new(range, today, Some(ms("2026-01-31T00:00:00Z")));
        assert_eq!(
            plan.baseline,
            Window::between(d("2026-01-31"), d("2026-02-06"))
        );
        assert!(plan.baseline_complete());
        assert_eq!(plan.target_date(), Some(d("2026-04-30")));
        assert_eq!(plan.series, Window::between(d("2026-08-04"), today));
        assert_eq!(plan.current, Window::between(d("2026-10-26"), today));
        assert_eq!(plan.count_windows().len(), 2);

        // A range ending before going live holds no day.
        let early = Range::parse(Some("2025-01-01"), Some("2025-12-31"), today).unwrap();
        let plan = Plan::new(early, today, Some(ms("2026-01-31T00:00:00Z")));
        assert_eq!((plan.series, plan.current), (None, None));
        assert!(plan.baseline.is_some());
    }

    #[test]
    fn pushed_values() {
        assert_eq!(pushed_value(" 72.5 "), Some(72.5));
        assert_eq!(pushed_value("80%"), Some(80.0));
        assert_eq!(pushed_value("100"), Some(100.0));
        for bad in ["", "high", "101", "-1", "NaN", "inf"] {
            assert_eq!(pushed_value(bad), None, "{bad}");
        }
    }

    fn event(user: i64, at: &str, kind: PasswordEvent) -> PersonEvent {
        PersonEvent {
            user: UserId(user),
            at: ms(at),
            kind,
        }
    }

    #[test]
    fn an_exposure_runs_from_the_first_compromised_password_to_the_change() {
        use PasswordEvent::*;
        let mut events = vec![
            event(1, "2026-10-01T00:00:00Z", Compromised),
            event(1, "2026-10-02T00:00:00Z", Compromised),
            event(1, "2026-10-04T12:00:00Z", Changed),
            // A change with nothing open remediates nothing.
            event(1, "2026-10-05T00:00:00Z", Changed),
            event(2, "2026-10-03T00:00:00Z", Weak),
            event(2, "2026-10-04T00:00:00Z", Changed),
            // Still open: not counted.
            event(2, "2026-10-06T00:00:00Z", Compromised),
            event(3, "2026-10-06T00:00:00Z", Changed),
        ];
        events.sort_unstable();
        assert_eq!(
            exposures(&events),
            [Exposure {
                began: ms("2026-10-01T00:00:00Z"),
                ended: ms("2026-10-04T12:00:00Z")
            }]
        );
    }

    /// The definition, read literally: at risk at `e` when counted then, the latest risk
    /// before `e` is at most the window old, and no change at or after it came before `e`.
    fn at_risk_oracle(events: &[PersonEvent], people: &People, user: UserId, e: i64) -> bool {
        if people.counted_until(user).is_none_or(|until| e > until) {
            return false;
        }
        let mine = || events.iter().filter(|x| x.user == user && x.at < e);
        let Some(last_risk) = mine()
            .filter(|x| x.kind != PasswordEvent::Changed)
            .map(|x| x.at)
            .max()
        else {
            return false;
        };
        e - last_risk <= HEALTH_WINDOW_DAYS * DAY_MS
            && !mine().any(|x| x.kind == PasswordEvent::Changed && x.at >= last_risk)
    }

    proptest! {
        #[test]
        fn at_risk_counts_match_the_definition(
            raw in prop::collection::vec((1i64..6, 0i64..400, 0u8..3, 0i64..4), 0..60),
            archived in prop::collection::vec((1i64..6, prop::option::of(0i64..400)), 0..3),
            first in 0i64..380, days in 1usize..30,
        ) {
            let origin = ms("2026-01-01T00:00:00Z");
            // Instants on quarter days, so some fall on a day's first instant.
            let events: Vec<PersonEvent> = raw.iter().map(|(user, day, kind, quarter)| PersonEvent {
                user: UserId(*user),
                at: origin + day * DAY_MS + quarter * DAY_MS / 4,
                kind: [PasswordEvent::Compromised, PasswordEvent::Weak, PasswordEvent::Changed][*kind as usize],
            }).collect();
            let people = People {
                active: 0,
                archived: archived.iter().map(|(u, at)| (UserId(*u), at.map(|a| origin + a * DAY_MS))).collect(),
            };
            let mut sorted = events.clone();
            sorted.sort_unstable();
            let first_date = date_of_ms(origin + first * DAY_MS);
            let window = Window::between(first_date, plus(first_date, days as u64 - 1)).unwrap();
            let counts = at_risk_counts(window, &stretches(&sorted), &people);
            for ((n, _), count) in window.each().zip(counts) {
                let e = (n + 1) * DAY_MS;
                let expected = (1..6).filter(|u| at_risk_oracle(&events, &people, UserId(*u), e)).count();
                prop_assert_eq!(count, expected as i64, "day {}", n);
            }
        }
    }

    #[test]
    fn metrics_compare_current_with_the_baseline() {
        use PasswordEvent::*;
        let today = d("2026-03-10");
        let range = Range::parse(Some("2026-03-01"), None, today).unwrap();
        let live = ms("2026-01-01T08:00:00Z");
        let plan = Plan::new(range, today, Some(live));
        let mut counts = HashMap::new();
        // Baseline: 14 compromised passwords in 7 days, 2 a day.
        for day in 1..=7 {
            counts.insert(
                d(&format!("2026-01-0{day}")),
                DayCounts {
                    compromised: 2,
                    dismissed: 1,
                },
            );
        }
        // Current (2026-03-04..10): 7 in 7 days.
        counts.insert(
            d("2026-03-05"),
            DayCounts {
                compromised: 7,
                dismissed: 0,
            },
        );
        let facts = Facts {
            counts,
            person_events: vec![
                // Began in the baseline, closed 10 days later.
                event(1, "2026-01-02T00:00:00Z", Compromised),
                event(1, "2026-01-12T00:00:00Z", Changed),
                // Closed in the current days after 2 days.
                event(2, "2026-03-03T00:00:00Z", Compromised),
                event(2, "2026-03-05T00:00:00Z", Changed),
                // At risk from 2026-03-08.
                event(3, "2026-03-08T10:00:00Z", Weak),
            ],
            people: People {
                active: 4,
                archived: HashMap::new(),
            },
            pushed: vec![Pushed {
                at: ms("2026-03-09T09:00:00Z"),
                value: 64.5,
            }],
        };
        let report = compute(&plan, &facts);
        let compromised = &report.compromised_passwords;
        assert_eq!(compromised.baseline, Some(2.0));
        assert_eq!(compromised.target, Some(1.6));
        assert_eq!(compromised.current, Some(1.0));
        assert_eq!(compromised.change_percent, Some(-50.0));
        assert_eq!(compromised.target_met, Some(true));
        assert_eq!(compromised.series.len(), 10);
        assert_eq!(compromised.series[4].value, Some(7.0));

        let dismissed = &report.dismissed_phishing_alerts;
        assert_eq!(
            (
                dismissed.baseline,
                dismissed.current,
                dismissed.change_percent
            ),
            (Some(1.0), Some(0.0), Some(-100.0))
        );

        let ttr = &report.time_to_remediate;
        assert_eq!((ttr.baseline, ttr.target), (Some(10.0), Some(8.0)));
        assert_eq!(ttr.current, Some(2.0));
        assert_eq!(ttr.change_percent, Some(-80.0));
        assert_eq!(ttr.series[4].value, Some(2.0));
        assert_eq!(ttr.series[4].samples, 1);
        assert_eq!(ttr.series[3].value, None);

        let health = &report.password_health;
        // Baseline: person 1 at risk from 2026-01-02 to the change on 01-12: 3 of 4 fine
        // at the end of each baseline day but the first.
        assert_eq!(health.baseline, Some(round3((100.0 + 6.0 * 75.0) / 7.0)));
        let days: Vec<(Option<f64>, Source)> =
            health.series.iter().map(|p| (p.value, p.source)).collect();
        assert_eq!(days[6], (Some(100.0), Source::Proxy)); // 03-07
        assert_eq!(days[7], (Some(75.0), Source::Proxy)); // 03-08
        assert_eq!(days[8], (Some(64.5), Source::Pushed)); // 03-09
        assert_eq!(days[9], (Some(64.5), Source::Pushed)); // carried to 03-10
        assert_eq!(health.series[8].samples, 1);
        assert_eq!(health.series[9].samples, 0);
        assert_eq!(health.target_change_percent, 20.0);
    }
}
