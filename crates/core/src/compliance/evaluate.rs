//! Whether a person meets a requirement at an instant, why in words, and the next instant
//! that answer changes by itself.
//!
//! For each piece of content that counts, a person's obligation ends (their *deadline*)
//! when their last completion stops counting (see [`super::Recurrence`]), or at the due
//! date of an enrolment they have not finished (a missing due date gives them the
//! new-hire days from the enrolment); when both, the later (a new enrolment does not cut
//! short a completion that still counts). With nothing that counts assigned, a person has the new-hire
//! days from their start date. The person's deadline is the earliest of their
//! obligations'. Then, at `now`:
//!
//! * past the deadline by the tolerance or more: *non-compliant*;
//! * past the deadline, inside the tolerance: *at risk*;
//! * something that counts never finished (a new hire, a first enrolment): *at risk*;
//! * within `due_soon_days` of the deadline: *at risk*;
//! * otherwise *compliant*.
//!
//! Event-triggered training asks that each enrolment a smart-group join made is finished
//! within `completion_days` of the event, with the same tolerance.

use super::requirement::{Requirement, RequirementKind};
use crate::time::format_day_ms;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Compliant,
    AtRisk,
    NonCompliant,
    /// Excluded by an exception.
    Excepted,
}

impl Status {
    pub const ALL: [Self; 4] = [
        Self::Compliant,
        Self::AtRisk,
        Self::NonCompliant,
        Self::Excepted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compliant => "compliant",
            Self::AtRisk => "at_risk",
            Self::NonCompliant => "non_compliant",
            Self::Excepted => "excepted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A requirement's (and so its controls') verdict: it fails while anyone in scope is
/// non-compliant, is at risk while anyone is at risk, and passes otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    AtRisk,
    Fail,
}

impl Verdict {
    pub fn of(non_compliant: usize, at_risk: usize) -> Self {
        if non_compliant > 0 {
            Self::Fail
        } else if at_risk > 0 {
            Self::AtRisk
        } else {
            Self::Pass
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::AtRisk => "at_risk",
            Self::Fail => "fail",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pass, Self::AtRisk, Self::Fail]
            .into_iter()
            .find(|v| v.as_str() == text)
    }
}

/// What the evaluation needs of the person.
#[derive(Debug, Clone, Copy)]
pub struct Person {
    /// Midnight UTC of their start date (their employee start date, else the day they
    /// were added).
    pub start_ms: i64,
}

/// One enrolment that counts for the requirement.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub content: i64,
    pub title: &'a str,
    pub enrolled_at: i64,
    pub due_at: Option<i64>,
    pub completed_at: Option<i64>,
    /// When the event that caused it happened (enrolments made by a smart-group join).
    pub triggered_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    pub status: Status,
    pub reason: String,
    /// When the person's obligation ends (`None`: never).
    pub deadline: Option<i64>,
    pub last_completed: Option<i64>,
    /// The next instant the status changes by itself.
    pub next_change: Option<i64>,
}

impl Evaluation {
    /// The reason as of `now`: the stored reason with how overdue the person is, or how
    /// long they have left when at risk (the stored part changes only with the status, so
    /// it is not rewritten every day).
    pub fn describe(&self, now: i64) -> String {
        describe(&self.reason, self.status, self.deadline, now)
    }

    /// A person excluded by an exception until `expires` (`None`: for good).
    pub fn excepted(granted_by: &str, reason: &str, expires: Option<i64>) -> Self {
        let until = match expires {
            Some(at) => format!(" until {}", day(at)),
            None => String::new(),
        };
        Self {
            status: Status::Excepted,
            reason: format!("excepted by {granted_by}{until}: {reason}"),
            deadline: None,
            last_completed: None,
            next_change: expires,
        }
    }
}

/// See [`Evaluation::describe`].
pub fn describe(reason: &str, status: Status, deadline: Option<i64>, now: i64) -> String {
    match deadline {
        Some(d) if status != Status::Excepted && now >= d => {
            format!("{reason}; {}", overdue(now, d))
        }
        Some(d) if status == Status::AtRisk => format!("{reason}, {}", days_left(now, d)),
        _ => reason.to_owned(),
    }
}

fn day(ms: i64) -> String {
    format_day_ms(ms)
}

fn overdue(now: i64, deadline: i64) -> String {
    match (now - deadline) / DAY_MS {
        0 => "less than a day overdue".to_owned(),
        1 => "1 day overdue".to_owned(),
        n => format!("{n} days overdue"),
    }
}

fn days_left(now: i64, deadline: i64) -> String {
    // Whole days left, counting a part day as one.
    match (deadline - now + DAY_MS - 1) / DAY_MS {
        1 => "in 1 day".to_owned(),
        n => format!("in {n} days"),
    }
}

/// One obligation: a piece of content, or everything for a person with nothing assigned.
struct Obligation<'a> {
    title: &'a str,
    last_completed: Option<i64>,
    deadline: Option<i64>,
    /// Never finished.
    pending: bool,
}

pub fn evaluate(
    req: &Requirement,
    person: &Person,
    records: &[Record<'_>],
    now: i64,
) -> Evaluation {
    if req.kind == RequirementKind::EventTriggered {
        return evaluate_triggered(req, records, now);
    }
    let days = |n: u32| i64::from(n) * DAY_MS;
    let mut by_content: BTreeMap<i64, Vec<&Record<'_>>> = BTreeMap::new();
    for r in records {
        by_content.entry(r.content).or_default().push(r);
    }
    let obligations: Vec<Obligation<'_>> = by_content
        .values()
        .map(|records| {
            let last_completed = records.iter().filter_map(|r| r.completed_at).max();
            let cover = last_completed.map(|at| req.recurrence.expiry(at));
            let open = records
                .iter()
                .filter(|r| r.completed_at.is_none())
                .filter(|r| last_completed.is_none_or(|done| r.enrolled_at > done))
                .map(|r| r.due_at.unwrap_or(r.enrolled_at + days(req.new_hire_days)))
                .min();
            let deadline = match (cover, open) {
                (Some(None), _) => None,
                (Some(Some(cover)), Some(open)) => Some(cover.max(open)),
                (Some(Some(cover)), None) => Some(cover),
                (None, open) => open,
            };
            Obligation {
                title: records[0].title,
                last_completed,
                deadline,
                pending: last_completed.is_none(),
            }
        })
        .collect();
    let nothing = Obligation {
        title: "",
        last_completed: None,
        deadline: Some(person.start_ms + days(req.new_hire_days + 1)),
        pending: true,
    };
    let first = obligations
        .iter()
        .filter(|o| o.deadline.is_some())
        .min_by_key(|o| (o.deadline, !o.pending))
        .or(obligations.is_empty().then_some(&nothing));
    let pending = obligations.is_empty() || obligations.iter().any(|o| o.pending);
    let last_completed = obligations.iter().filter_map(|o| o.last_completed).max();
    let Some(first) = first else {
        // Everything done, for good.
        let o = &obligations[0];
        return Evaluation {
            status: Status::Compliant,
            reason: format!(
                "completed {} on {}; it counts for good",
                o.title,
                day(o.last_completed.unwrap_or_default())
            ),
            deadline: None,
            last_completed,
            next_change: None,
        };
    };
    let deadline = first.deadline.unwrap_or(i64::MAX);
    let what = if obligations.is_empty() {
        format!(
            "started on {}; nothing that counts assigned or finished yet",
            day(person.start_ms)
        )
    } else if let Some(done) = first.last_completed {
        format!("last completed {} on {}", first.title, day(done))
    } else {
        format!("{} not finished yet", first.title)
    };
    let again = if first.last_completed.is_some() {
        "due again"
    } else {
        "due"
    };
    let tolerance = days(req.tolerance_days);
    let soon = days(req.due_soon_days);
    let due = format!("{what}; {again} {}", day(deadline));
    let (status, reason) = if now >= deadline.saturating_add(tolerance) {
        (Status::NonCompliant, due)
    } else if now >= deadline {
        (
            Status::AtRisk,
            format!("{due} (tolerance {} days)", req.tolerance_days),
        )
    } else if pending || now >= deadline - soon {
        (Status::AtRisk, due)
    } else {
        (Status::Compliant, due)
    };
    let next_change = [
        deadline - soon,
        deadline,
        deadline.saturating_add(tolerance),
    ]
    .into_iter()
    .filter(|at| *at > now)
    .filter(|at| !pending || *at != deadline - soon)
    .min();
    Evaluation {
        status,
        reason,
        deadline: Some(deadline),
        last_completed,
        next_change,
    }
}

fn evaluate_triggered(req: &Requirement, records: &[Record<'_>], now: i64) -> Evaluation {
    let within = i64::from(req.completion_days) * DAY_MS;
    let triggered: Vec<(&Record<'_>, i64)> = records
        .iter()
        .filter_map(|r| r.triggered_at.map(|at| (r, at + within)))
        .collect();
    let last_completed = triggered.iter().filter_map(|(r, _)| r.completed_at).max();
    let Some((open, deadline)) = triggered
        .iter()
        .filter(|(r, _)| r.completed_at.is_none())
        .min_by_key(|(_, deadline)| *deadline)
    else {
        let reason = match triggered.iter().max_by_key(|(r, _)| r.completed_at) {
            None => "no training triggered by an event".to_owned(),
            Some((r, _)) => format!(
                "finished all {} event-triggered trainings; the latest, {}, on {}",
                triggered.len(),
                r.title,
                day(r.completed_at.unwrap_or_default())
            ),
        };
        return Evaluation {
            status: Status::Compliant,
            reason,
            deadline: None,
            last_completed,
            next_change: None,
        };
    };
    let deadline = *deadline;
    let what = format!(
        "{} after an event on {} not finished",
        open.title,
        day(open.triggered_at.unwrap_or_default())
    );
    let tolerance = i64::from(req.tolerance_days) * DAY_MS;
    let due = format!("{what}; due {}", day(deadline));
    let (status, reason) = if now >= deadline + tolerance {
        (Status::NonCompliant, due)
    } else if now >= deadline {
        (
            Status::AtRisk,
            format!("{due} (tolerance {} days)", req.tolerance_days),
        )
    } else {
        (Status::AtRisk, due)
    };
    Evaluation {
        status,
        reason,
        deadline: Some(deadline),
        last_completed,
        next_change: [deadline, deadline + tolerance]
            .into_iter()
            .filter(|at| *at > now)
            .min(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::requirement::Recurrence;

    fn ms(text: &str) -> i64 {
        crate::time::parse_date_or_timestamp(text)
            .unwrap()
            .timestamp_millis()
    }

    fn awareness() -> Requirement {
        Requirement::default_for(RequirementKind::Awareness)
    }

    fn done<'a>(title: &'a str, completed: &str) -> Record<'a> {
        Record {
            content: title.len() as i64,
            title,
            enrolled_at: ms(completed) - DAY_MS,
            due_at: None,
            completed_at: Some(ms(completed)),
            triggered_at: None,
        }
    }

    const PERSON: Person = Person { start_ms: 0 };

    #[test]
    fn a_completion_counts_for_exactly_twelve_months() {
        let r = awareness();
        let records = [done("Password Management", "2025-11-03")];
        let e = evaluate(&r, &PERSON, &records, ms("2026-06-01"));
        assert_eq!(e.status, Status::Compliant);
        assert_eq!(
            e.reason,
            "last completed Password Management on 2025-11-03; due again 2026-11-03"
        );
        // 30 days before: due soon.
        assert_eq!(e.next_change, Some(ms("2026-10-04")));
        let e = evaluate(&r, &PERSON, &records, ms("2026-10-04"));
        assert_eq!(e.status, Status::AtRisk);
        assert_eq!(e.next_change, Some(ms("2026-11-03")));
        // One millisecond before the anniversary it still counts; at it, it does not.
        let e = evaluate(&r, &PERSON, &records, ms("2026-11-03") - 1);
        assert_eq!(e.status, Status::AtRisk);
        let e = evaluate(&r, &PERSON, &records, ms("2026-11-03"));
        assert_eq!(e.status, Status::NonCompliant);
        assert_eq!(e.next_change, None);
        let e = evaluate(&r, &PERSON, &records, ms("2026-12-01"));
        assert_eq!(
            e.describe(ms("2026-12-01")),
            "last completed Password Management on 2025-11-03; due again 2026-11-03; \
             28 days overdue"
        );
    }

    #[test]
    fn a_tolerance_keeps_a_late_person_at_risk() {
        let mut r = awareness();
        r.tolerance_days = 7;
        let records = [done("Phishing", "2025-11-03")];
        let e = evaluate(&r, &PERSON, &records, ms("2026-11-05"));
        assert_eq!(e.status, Status::AtRisk);
        assert_eq!(
            e.describe(ms("2026-11-05")),
            "last completed Phishing on 2025-11-03; due again 2026-11-03 (tolerance 7 days); \
             2 days overdue"
        );
        assert_eq!(e.next_change, Some(ms("2026-11-10")));
        let e = evaluate(&r, &PERSON, &records, ms("2026-11-10"));
        assert_eq!(e.status, Status::NonCompliant);
    }

    #[test]
    fn a_new_hire_has_thirty_days_from_their_start() {
        let r = awareness();
        let hire = Person {
            start_ms: ms("2026-11-01"),
        };
        // Day 30 after the start date is still inside the grace.
        let e = evaluate(&r, &hire, &[], ms("2026-12-01T23:59:59Z"));
        assert_eq!(e.status, Status::AtRisk);
        assert_eq!(
            e.describe(ms("2026-12-01T23:59:59Z")),
            "started on 2026-11-01; nothing that counts assigned or finished yet; \
             due 2026-12-02, in 1 day"
        );
        assert_eq!(e.next_change, Some(ms("2026-12-02")));
        // Day 31: late.
        let e = evaluate(&r, &hire, &[], ms("2026-12-02"));
        assert_eq!(e.status, Status::NonCompliant);
    }

    #[test]
    fn every_enrolment_that_counts_must_be_finished() {
        let r = awareness();
        let mut open = done("Safe Browsing", "2026-01-01");
        open.completed_at = None;
        open.enrolled_at = ms("2026-05-01");
        open.due_at = Some(ms("2026-05-15"));
        let records = [done("Password Management", "2026-02-01"), open];
        let e = evaluate(&r, &PERSON, &records, ms("2026-05-10"));
        assert_eq!(e.status, Status::AtRisk);
        assert_eq!(
            e.describe(ms("2026-05-10")),
            "Safe Browsing not finished yet; due 2026-05-15, in 5 days"
        );
        let e = evaluate(&r, &PERSON, &records, ms("2026-05-16"));
        assert_eq!(e.status, Status::NonCompliant);
        assert_eq!(e.last_completed, Some(ms("2026-02-01")));
    }

    #[test]
    fn a_new_enrolment_does_not_shorten_a_valid_completion() {
        let r = awareness();
        let earlier = done("Password Management", "2025-11-03");
        let again = Record {
            enrolled_at: ms("2026-10-01"),
            due_at: Some(ms("2026-10-15")),
            completed_at: None,
            ..earlier
        };
        let e = evaluate(&r, &PERSON, &[earlier, again], ms("2026-10-20"));
        // Covered until 2026-11-03: the later of the two ends the obligation.
        assert_eq!(e.deadline, Some(ms("2026-11-03")));
        assert_eq!(e.status, Status::AtRisk);
    }

    #[test]
    fn a_fixed_yearly_date_resets_everyone() {
        let mut r = awareness();
        r.recurrence = Recurrence::Fixed { month: 1, day: 31 };
        r.due_soon_days = 0;
        let records = [done("Password Management", "2025-12-20")];
        let e = evaluate(&r, &PERSON, &records, ms("2026-01-30"));
        assert_eq!(e.status, Status::Compliant);
        assert_eq!(e.next_change, Some(ms("2026-01-31")));
        let e = evaluate(&r, &PERSON, &records, ms("2026-01-31"));
        assert_eq!(e.status, Status::NonCompliant);
    }

    #[test]
    fn once_done_counts_for_good() {
        let mut r = Requirement::default_for(RequirementKind::Policy);
        r.recurrence = Recurrence::Once;
        let records = [done("Acceptable Use", "2020-01-01")];
        let e = evaluate(&r, &PERSON, &records, ms("2030-01-01"));
        assert_eq!(e.status, Status::Compliant);
        assert_eq!(e.next_change, None);
        assert_eq!(
            e.reason,
            "completed Acceptable Use on 2020-01-01; it counts for good"
        );
    }

    #[test]
    fn event_triggered_training_is_due_days_after_its_event() {
        let r = Requirement::default_for(RequirementKind::EventTriggered);
        let e = evaluate(&r, &PERSON, &[], ms("2026-01-01"));
        assert_eq!(e.status, Status::Compliant);
        let open = Record {
            content: 1,
            title: "Password Management",
            enrolled_at: ms("2026-03-01T10:00:00Z"),
            due_at: None,
            completed_at: None,
            triggered_at: Some(ms("2026-03-01T09:59:00Z")),
        };
        let e = evaluate(&r, &PERSON, &[open], ms("2026-03-10"));
        assert_eq!(e.status, Status::AtRisk);
        assert_eq!(e.next_change, Some(ms("2026-03-15T09:59:00Z")));
        let e = evaluate(&r, &PERSON, &[open], ms("2026-03-15T09:59:00Z"));
        assert_eq!(e.status, Status::NonCompliant);
        let finished = Record {
            completed_at: Some(ms("2026-03-20")),
            ..open
        };
        let e = evaluate(&r, &PERSON, &[finished], ms("2026-03-21"));
        assert_eq!(e.status, Status::Compliant);
        // Records without a triggering event do not count here.
        let plain = Record {
            triggered_at: None,
            ..open
        };
        assert_eq!(
            evaluate(&r, &PERSON, &[plain], ms("2027-01-01")).status,
            Status::Compliant
        );
    }

    #[test]
    fn an_exception_says_who_why_and_until_when() {
        let e = Evaluation::excepted("ana@acme.example", "on leave", Some(ms("2026-12-24")));
        assert_eq!(e.status, Status::Excepted);
        assert_eq!(
            e.reason,
            "excepted by ana@acme.example until 2026-12-24: on leave"
        );
        assert_eq!(e.next_change, Some(ms("2026-12-24")));
    }
}
