//! Enrolments: one person's way through one piece of content in one campaign, as a state
//! machine, and the rule for enrolling the same person again.
//!
//! `Not Started` → `In Progress` → `Passed` (a quiz) | `Completed` (no quiz, a policy
//! acknowledged); `Past Due` once the due time passes unfinished. The server, the
//! past-due executor and xAPI statements from another LMS all move an enrolment only
//! through these methods, so the rules hold whichever of them gets there first: every
//! step that carries a time first catches up with the due time, so the result does not
//! depend on whether the executor has run yet. A finished enrolment is the record of the
//! finish and never changes again. A step that is refused changes nothing.

use crate::content::Grade;
use crate::duration::IsoDuration;
use crate::time::format_ms;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The most time one report of time spent may add: a tab left open over a weekend, or a
/// forged request, must not turn into days of training.
pub const MAX_SPEND_S: i64 = 4 * 60 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EnrolmentStatus {
    #[serde(rename = "Not Started")]
    NotStarted,
    #[serde(rename = "In Progress")]
    InProgress,
    Passed,
    Completed,
    #[serde(rename = "Past Due")]
    PastDue,
}

impl EnrolmentStatus {
    pub const ALL: [Self; 5] = [
        Self::NotStarted,
        Self::InProgress,
        Self::Passed,
        Self::Completed,
        Self::PastDue,
    ];

    /// The stored and wire form, as the Reporting API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "Not Started",
            Self::InProgress => "In Progress",
            Self::Passed => "Passed",
            Self::Completed => "Completed",
            Self::PastDue => "Past Due",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Passed or Completed: nothing more to do, and nothing changes it.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Passed | Self::Completed)
    }
}

impl fmt::Display for EnrolmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one enrolment. Instants are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    pub status: EnrolmentStatus,
    pub enrolled_at: i64,
    pub due_at: Option<i64>,
    pub started_at: Option<i64>,
    /// Set exactly when the status is Passed or Completed.
    pub completed_at: Option<i64>,
    /// The due time itself, not when the executor noticed it.
    pub past_due_at: Option<i64>,
    pub time_spent_s: i64,
    /// The best quiz score, percent.
    pub score: Option<u8>,
    pub attempts: u32,
    pub policy_acknowledged: bool,
}

/// What a step did, so the caller knows whether to write, notify or record history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing: a repeat, or nothing to do yet.
    Unchanged,
    /// Something was recorded (a start, time, an attempt) but the status stayed.
    Updated,
    /// The status moved.
    Status {
        from: EnrolmentStatus,
        to: EnrolmentStatus,
    },
}

impl Change {
    pub fn is_changed(self) -> bool {
        self != Self::Unchanged
    }

    /// The step finished the enrolment.
    pub fn finished(self) -> bool {
        matches!(self, Self::Status { to, .. } if to.is_finished())
    }
}

/// Why a step is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnrolmentError {
    #[error("the enrolment is already {0}, so it takes no more quiz attempts")]
    Finished(EnrolmentStatus),
    #[error("this content has no quiz to submit; complete or acknowledge it instead")]
    NoQuiz,
    #[error("time spent cannot be negative ({0} seconds)")]
    NegativeTime(i64),
    #[error("a score is a percentage from 0 to 100, not {0}")]
    Score(u8),
    #[error("the policy must be read for {remaining_s} more seconds before it can be acknowledged")]
    TooSoon { remaining_s: i64 },
    #[error(
        "the outcome is dated {}, before the enrolment began at {}",
        format_ms(*.at),
        format_ms(*.enrolled_at)
    )]
    BeforeEnrolment { at: i64, enrolled_at: i64 },
}

/// A result reported by another LMS (an xAPI statement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum External {
    /// The learner began (xAPI `launched`, `initialized`, …).
    Started,
    Completed,
    Passed {
        score: Option<u8>,
    },
    Failed {
        score: Option<u8>,
    },
}

impl Enrolment {
    pub fn new(enrolled_at: i64, due_at: Option<i64>) -> Self {
        Self {
            status: EnrolmentStatus::NotStarted,
            enrolled_at,
            due_at,
            started_at: None,
            completed_at: None,
            past_due_at: None,
            time_spent_s: 0,
            score: None,
            attempts: 0,
            policy_acknowledged: false,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }

    /// When the past-due executor should look at this enrolment again: its due time while
    /// it is unfinished and not yet past due.
    pub fn next_due(&self) -> Option<i64> {
        match self.status {
            EnrolmentStatus::NotStarted | EnrolmentStatus::InProgress => self.due_at,
            _ => None,
        }
    }

    /// The learner opens the lesson. Past Due stays Past Due.
    pub fn open(&mut self, now: i64) -> Result<Change, EnrolmentError> {
        self.step(|e| {
            if !e.is_finished() {
                e.catch_up(now);
                e.start(now);
            }
            Ok(())
        })
    }

    /// Adds time the learner spent on the lesson, at most [`MAX_SPEND_S`] per call.
    pub fn spend(&mut self, seconds: i64) -> Result<Change, EnrolmentError> {
        if seconds < 0 {
            return Err(EnrolmentError::NegativeTime(seconds));
        }
        self.step(|e| {
            if !e.is_finished() {
                e.time_spent_s = e.time_spent_s.saturating_add(seconds.min(MAX_SPEND_S));
            }
            Ok(())
        })
    }

    /// One attempt at a module's quiz. A pass finishes the enrolment at `now`, late or
    /// not; a fail leaves it open for another try.
    pub fn submit_quiz(&mut self, now: i64, grade: &Grade) -> Result<Change, EnrolmentError> {
        if self.is_finished() {
            return Err(EnrolmentError::Finished(self.status));
        }
        if grade.total == 0 {
            return Err(EnrolmentError::NoQuiz);
        }
        self.step(|e| e.attempt(now, Some(grade.score), grade.passed))
    }

    /// A module without a quiz is read to the end. Repeating it changes nothing.
    pub fn complete(&mut self, now: i64) -> Result<Change, EnrolmentError> {
        self.step(|e| {
            if !e.is_finished() {
                e.catch_up(now);
                e.finish(now, EnrolmentStatus::Completed);
            }
            Ok(())
        })
    }

    /// The learner acknowledges a policy after reading it for `minimum_seconds`.
    /// Repeating it changes nothing.
    pub fn acknowledge(
        &mut self,
        now: i64,
        minimum_seconds: i64,
    ) -> Result<Change, EnrolmentError> {
        self.step(|e| {
            if e.is_finished() {
                return Ok(());
            }
            if e.time_spent_s < minimum_seconds {
                return Err(EnrolmentError::TooSoon {
                    remaining_s: minimum_seconds - e.time_spent_s,
                });
            }
            e.catch_up(now);
            e.finish(now, EnrolmentStatus::Completed);
            e.policy_acknowledged = true;
            Ok(())
        })
    }

    /// Past Due once `now` reaches the due time unfinished, recorded at the due time
    /// itself so that when the executor runs does not matter.
    pub fn mark_past_due(&mut self, now: i64) -> Change {
        let before = self.clone();
        self.catch_up(now);
        Change::between(&before, self)
    }

    /// A result from another LMS, dated `at` (the statement's time). The same rules as the
    /// learner's own steps, except that a result for a finished enrolment is ignored
    /// rather than refused: statements are re-sent, and a late fail must not undo a pass.
    pub fn record_external(
        &mut self,
        at: i64,
        outcome: External,
    ) -> Result<Change, EnrolmentError> {
        if at < self.enrolled_at {
            return Err(EnrolmentError::BeforeEnrolment {
                at,
                enrolled_at: self.enrolled_at,
            });
        }
        self.step(|e| {
            if e.is_finished() {
                return Ok(());
            }
            match outcome {
                External::Started => {
                    e.catch_up(at);
                    e.start(at);
                    Ok(())
                }
                External::Completed => {
                    e.catch_up(at);
                    e.finish(at, EnrolmentStatus::Completed);
                    Ok(())
                }
                External::Passed { score } => e.attempt(at, score, true),
                External::Failed { score } => e.attempt(at, score, false),
            }
        })
    }

    /// Takes back a completion that came from outside and was withdrawn (its xAPI
    /// statement voided): open again, started or not as it was, past due if its due
    /// time has gone by meanwhile. The best score and the attempts stay.
    pub fn take_back(&mut self, now: i64) -> Change {
        let before = self.clone();
        if self.is_finished() {
            // A start recorded by the completion itself (nothing else done) goes with it.
            if self.started_at == self.completed_at && self.attempts == 0 && self.time_spent_s == 0
            {
                self.started_at = None;
            }
            self.completed_at = None;
            self.status = if self.started_at.is_some() {
                EnrolmentStatus::InProgress
            } else {
                EnrolmentStatus::NotStarted
            };
            self.catch_up(now);
        }
        Change::between(&before, self)
    }

    /// Runs `apply` on a copy and keeps the result only on success, so a refused step
    /// leaves nothing half done.
    fn step(
        &mut self,
        apply: impl FnOnce(&mut Self) -> Result<(), EnrolmentError>,
    ) -> Result<Change, EnrolmentError> {
        let mut next = self.clone();
        apply(&mut next)?;
        let change = Change::between(self, &next);
        *self = next;
        Ok(change)
    }

    fn catch_up(&mut self, now: i64) {
        if let Some(due) = self.next_due().filter(|due| *due <= now) {
            self.status = EnrolmentStatus::PastDue;
            self.past_due_at = Some(due);
        }
    }

    fn start(&mut self, now: i64) {
        self.started_at.get_or_insert(now);
        if self.status == EnrolmentStatus::NotStarted {
            self.status = EnrolmentStatus::InProgress;
        }
    }

    fn attempt(&mut self, at: i64, score: Option<u8>, passed: bool) -> Result<(), EnrolmentError> {
        if let Some(score) = score.filter(|score| *score > 100) {
            return Err(EnrolmentError::Score(score));
        }
        self.catch_up(at);
        self.start(at);
        self.attempts = self.attempts.saturating_add(1);
        // `None < Some`, so this keeps the best score and never forgets one.
        self.score = self.score.max(score);
        if passed {
            self.finish(at, EnrolmentStatus::Passed);
        }
        Ok(())
    }

    fn finish(&mut self, at: i64, status: EnrolmentStatus) {
        self.started_at.get_or_insert(at);
        self.status = status;
        self.completed_at = Some(at);
    }
}

impl Change {
    fn between(before: &Enrolment, after: &Enrolment) -> Self {
        if before.status != after.status {
            Self::Status {
                from: before.status,
                to: after.status,
            }
        } else if before != after {
            Self::Updated
        } else {
            Self::Unchanged
        }
    }
}

/// An earlier enrolment of the same person in the same campaign and content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Previous {
    /// When it was passed or completed; `None` while it is open (Past Due included).
    pub finished_at: Option<i64>,
}

impl From<&Enrolment> for Previous {
    fn from(enrolment: &Enrolment) -> Self {
        Self {
            finished_at: enrolment.completed_at,
        }
    }
}

/// Whether a person may be enrolled in a campaign's content again: always the first
/// time; after that only when the campaign allows multiple enrolments, every earlier one
/// is finished, and the cooldown (calendar-aware, from the latest finish) is over. A
/// cooldown that reaches beyond the calendar never ends.
pub fn may_enrol(
    previous: &[Previous],
    allow_multiple: bool,
    cooldown: Option<&IsoDuration>,
    now: i64,
) -> bool {
    if previous.is_empty() {
        return true;
    }
    if !allow_multiple {
        return false;
    }
    let finishes: Option<Vec<i64>> = previous.iter().map(|p| p.finished_at).collect();
    let Some(latest) = finishes.and_then(|at| at.into_iter().max()) else {
        return false;
    };
    let Some(cooldown) = cooldown else {
        return true;
    };
    chrono::DateTime::from_timestamp_millis(latest)
        .and_then(|finished| cooldown.checked_after(finished))
        .is_some_and(|over| over.timestamp_millis() <= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use EnrolmentStatus::*;
    use proptest::prelude::*;

    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 86_400_000;
    /// 2026-01-01T00:00Z.
    const T0: i64 = 1_767_225_600_000;
    const DUE: i64 = T0 + 7 * DAY;

    fn enrolment() -> Enrolment {
        Enrolment::new(T0, Some(DUE))
    }

    fn grade(score: u8, passed: bool) -> Grade {
        Grade {
            correct: usize::from(score / 20),
            total: 5,
            score,
            passed,
        }
    }

    fn moved(from: EnrolmentStatus, to: EnrolmentStatus) -> Change {
        Change::Status { from, to }
    }

    #[test]
    fn status_strings_are_exact() {
        let names = [
            "Not Started",
            "In Progress",
            "Passed",
            "Completed",
            "Past Due",
        ];
        for (status, name) in EnrolmentStatus::ALL.into_iter().zip(names) {
            assert_eq!(status.as_str(), name);
            assert_eq!(EnrolmentStatus::parse(name), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), name);
            assert_eq!(
                serde_json::from_value::<EnrolmentStatus>(name.into()).unwrap(),
                status
            );
        }
        assert_eq!(EnrolmentStatus::parse("not started"), None);
        assert_eq!(EnrolmentStatus::parse("PastDue"), None);
        assert!(serde_json::from_value::<EnrolmentStatus>("NotStarted".into()).is_err());
        assert_eq!(PastDue.to_string(), "Past Due");
    }

    #[test]
    fn a_new_enrolment_has_not_started() {
        let e = enrolment();
        assert_eq!(e.status, NotStarted);
        assert_eq!((e.started_at, e.completed_at, e.score), (None, None, None));
        assert_eq!((e.time_spent_s, e.attempts), (0, 0));
        assert_eq!(e.next_due(), Some(DUE));
    }

    #[test]
    fn opening_starts_once() {
        let mut e = enrolment();
        assert_eq!(e.open(T0 + MINUTE), Ok(moved(NotStarted, InProgress)));
        assert_eq!(e.started_at, Some(T0 + MINUTE));
        assert_eq!(e.open(T0 + 2 * MINUTE), Ok(Change::Unchanged));
        assert_eq!(e.started_at, Some(T0 + MINUTE));
    }

    #[test]
    fn opening_past_due_keeps_past_due_and_records_the_start() {
        let mut e = enrolment();
        assert_eq!(e.mark_past_due(DUE), moved(NotStarted, PastDue));
        assert_eq!(e.open(DUE + DAY), Ok(Change::Updated));
        assert_eq!((e.status, e.started_at), (PastDue, Some(DUE + DAY)));
        assert_eq!(e.open(DUE + 2 * DAY), Ok(Change::Unchanged));
    }

    #[test]
    fn opening_after_the_due_time_is_past_due_even_before_the_executor_runs() {
        let mut e = enrolment();
        assert_eq!(e.open(DUE + 1), Ok(moved(NotStarted, PastDue)));
        assert_eq!(e.past_due_at, Some(DUE));
        assert_eq!(e.started_at, Some(DUE + 1));
    }

    #[test]
    fn opening_a_finished_enrolment_changes_nothing() {
        let mut e = enrolment();
        e.complete(T0 + DAY).unwrap();
        let finished = e.clone();
        assert_eq!(e.open(T0 + 2 * DAY), Ok(Change::Unchanged));
        assert_eq!(e, finished);
    }

    #[test]
    fn time_spent_adds_up_within_a_cap() {
        let mut e = enrolment();
        assert_eq!(e.spend(90), Ok(Change::Updated));
        assert_eq!(e.spend(0), Ok(Change::Unchanged));
        assert_eq!(e.spend(30), Ok(Change::Updated));
        assert_eq!(e.time_spent_s, 120);
        e.spend(i64::MAX).unwrap();
        assert_eq!(e.time_spent_s, 120 + MAX_SPEND_S);
        assert_eq!(e.spend(-1), Err(EnrolmentError::NegativeTime(-1)));
        assert_eq!(e.time_spent_s, 120 + MAX_SPEND_S);
        e.complete(T0).unwrap();
        assert_eq!(e.spend(60), Ok(Change::Unchanged));
    }

    #[test]
    fn a_passing_quiz_passes_and_counts_the_attempt() {
        let mut e = enrolment();
        e.open(T0).unwrap();
        assert_eq!(
            e.submit_quiz(T0 + DAY, &grade(80, true)),
            Ok(moved(InProgress, Passed))
        );
        assert_eq!(e.completed_at, Some(T0 + DAY));
        assert_eq!((e.score, e.attempts), (Some(80), 1));
        assert_eq!(e.next_due(), None);
    }

    #[test]
    fn a_failing_quiz_stays_open_for_a_retry_and_keeps_the_best_score() {
        let mut e = enrolment();
        e.open(T0).unwrap();
        assert_eq!(
            e.submit_quiz(T0 + 1, &grade(60, false)),
            Ok(Change::Updated)
        );
        assert_eq!((e.status, e.score, e.attempts), (InProgress, Some(60), 1));
        e.submit_quiz(T0 + 2, &grade(40, false)).unwrap();
        assert_eq!((e.score, e.attempts), (Some(60), 2));
        e.submit_quiz(T0 + 3, &grade(100, true)).unwrap();
        assert_eq!((e.status, e.score, e.attempts), (Passed, Some(100), 3));
        assert_eq!(e.completed_at, Some(T0 + 3));
    }

    #[test]
    fn a_quiz_without_opening_starts_the_enrolment() {
        let mut e = enrolment();
        assert_eq!(
            e.submit_quiz(T0 + 5, &grade(20, false)),
            Ok(moved(NotStarted, InProgress))
        );
        assert_eq!(e.started_at, Some(T0 + 5));
    }

    #[test]
    fn a_late_pass_is_passed_on_its_real_date() {
        let mut e = enrolment();
        e.open(T0).unwrap();
        e.mark_past_due(DUE + DAY);
        assert_eq!(
            e.submit_quiz(DUE + 2 * DAY, &grade(40, false)),
            Ok(Change::Updated)
        );
        assert_eq!(e.status, PastDue);
        assert_eq!(
            e.submit_quiz(DUE + 3 * DAY, &grade(80, true)),
            Ok(moved(PastDue, Passed))
        );
        assert_eq!(e.completed_at, Some(DUE + 3 * DAY));
        assert_eq!(e.past_due_at, Some(DUE));
    }

    #[test]
    fn a_passed_enrolment_takes_no_more_attempts() {
        let mut e = enrolment();
        e.submit_quiz(T0, &grade(80, true)).unwrap();
        let passed = e.clone();
        let refused = e.submit_quiz(T0 + 1, &grade(100, true)).unwrap_err();
        assert_eq!(refused, EnrolmentError::Finished(Passed));
        assert!(refused.to_string().contains("already Passed"), "{refused}");
        assert_eq!(e, passed);
        e = enrolment();
        e.complete(T0).unwrap();
        assert_eq!(
            e.submit_quiz(T0 + 1, &grade(100, true)),
            Err(EnrolmentError::Finished(Completed))
        );
    }

    #[test]
    fn a_quiz_needs_questions_and_a_real_percentage() {
        let mut e = enrolment();
        let empty = Grade {
            correct: 0,
            total: 0,
            score: 0,
            passed: false,
        };
        assert_eq!(e.submit_quiz(T0, &empty), Err(EnrolmentError::NoQuiz));
        assert_eq!(
            e.submit_quiz(T0, &grade(101, true)),
            Err(EnrolmentError::Score(101))
        );
        assert_eq!(e, enrolment());
    }

    #[test]
    fn completing_finishes_once() {
        let mut e = enrolment();
        e.open(T0).unwrap();
        assert_eq!(e.complete(T0 + DAY), Ok(moved(InProgress, Completed)));
        assert_eq!(e.completed_at, Some(T0 + DAY));
        assert_eq!(e.complete(T0 + 2 * DAY), Ok(Change::Unchanged));
        assert_eq!(e.completed_at, Some(T0 + DAY));
        assert!(!e.policy_acknowledged);
    }

    #[test]
    fn completing_unopened_records_the_start_too() {
        let mut e = enrolment();
        assert!(e.complete(T0 + 3).unwrap().finished());
        assert_eq!((e.started_at, e.completed_at), (Some(T0 + 3), Some(T0 + 3)));
    }

    #[test]
    fn a_policy_is_acknowledged_only_after_its_minimum_time() {
        let mut e = enrolment();
        e.open(T0).unwrap();
        e.spend(100).unwrap();
        let refused = e.acknowledge(T0 + MINUTE, 180).unwrap_err();
        assert_eq!(refused, EnrolmentError::TooSoon { remaining_s: 80 });
        assert!(refused.to_string().contains("80 more seconds"), "{refused}");
        assert_eq!(e.status, InProgress);
        e.spend(80).unwrap();
        assert_eq!(
            e.acknowledge(T0 + 2 * MINUTE, 180),
            Ok(moved(InProgress, Completed))
        );
        assert!(e.policy_acknowledged);
        assert_eq!(e.completed_at, Some(T0 + 2 * MINUTE));
        assert_eq!(e.acknowledge(T0 + 3 * MINUTE, 180), Ok(Change::Unchanged));
    }

    #[test]
    fn a_past_due_policy_can_still_be_acknowledged() {
        let mut e = enrolment();
        e.spend(300).unwrap();
        e.mark_past_due(DUE);
        assert_eq!(e.acknowledge(DUE + DAY, 180), Ok(moved(PastDue, Completed)));
        assert_eq!(e.past_due_at, Some(DUE));
    }

    #[test]
    fn past_due_is_marked_at_the_due_instant() {
        let mut e = enrolment();
        assert_eq!(e.mark_past_due(DUE - 1), Change::Unchanged);
        assert_eq!(e.status, NotStarted);
        assert_eq!(e.mark_past_due(DUE + 3 * DAY), moved(NotStarted, PastDue));
        assert_eq!(e.past_due_at, Some(DUE));
        assert_eq!(e.next_due(), None);
        assert_eq!(e.mark_past_due(DUE + 4 * DAY), Change::Unchanged);
        assert_eq!(e.past_due_at, Some(DUE));

        let mut open = enrolment();
        open.open(T0).unwrap();
        assert_eq!(open.mark_past_due(DUE), moved(InProgress, PastDue));
    }

    #[test]
    fn no_due_time_or_a_finish_means_never_past_due() {
        let mut undated = Enrolment::new(T0, None);
        assert_eq!(undated.next_due(), None);
        assert_eq!(undated.mark_past_due(i64::MAX), Change::Unchanged);
        let mut done = enrolment();
        done.complete(T0).unwrap();
        assert_eq!(done.mark_past_due(DUE + DAY), Change::Unchanged);
        assert_eq!(done.status, Completed);
    }

    #[test]
    fn external_results_follow_the_same_rules() {
        let mut e = enrolment();
        let failed = External::Failed { score: Some(40) };
        assert_eq!(
            e.record_external(T0 + 1, failed),
            Ok(moved(NotStarted, InProgress))
        );
        assert_eq!((e.score, e.attempts, e.completed_at), (Some(40), 1, None));
        let passed = External::Passed { score: Some(90) };
        assert_eq!(
            e.record_external(T0 + 2, passed),
            Ok(moved(InProgress, Passed))
        );
        assert_eq!(
            (e.score, e.attempts, e.completed_at),
            (Some(90), 2, Some(T0 + 2))
        );

        // A re-sent statement, or a fail arriving after the pass, is ignored.
        let finished = e.clone();
        assert_eq!(e.record_external(T0 + 3, passed), Ok(Change::Unchanged));
        assert_eq!(e.record_external(T0 + 3, failed), Ok(Change::Unchanged));
        assert_eq!(e, finished);

        let mut plain = enrolment();
        assert_eq!(
            plain.record_external(DUE + DAY, External::Completed),
            Ok(moved(NotStarted, Completed))
        );
        assert_eq!(
            (plain.completed_at, plain.past_due_at),
            (Some(DUE + DAY), Some(DUE))
        );
        assert_eq!((plain.score, plain.attempts), (None, 0));

        let mut unscored = enrolment();
        unscored
            .record_external(T0, External::Passed { score: None })
            .unwrap();
        assert_eq!(
            (unscored.status, unscored.score, unscored.attempts),
            (Passed, None, 1)
        );
    }

    #[test]
    fn external_results_are_checked() {
        let mut e = enrolment();
        let refused = e.record_external(T0 - 1, External::Completed).unwrap_err();
        assert_eq!(
            refused,
            EnrolmentError::BeforeEnrolment {
                at: T0 - 1,
                enrolled_at: T0
            }
        );
        assert!(
            refused.to_string().contains("2025-12-31T23:59:59.999Z"),
            "{refused}"
        );
        assert_eq!(
            e.record_external(T0, External::Failed { score: Some(200) }),
            Err(EnrolmentError::Score(200))
        );
        assert_eq!(e, enrolment());
    }

    #[test]
    fn enrolment_state_round_trips_through_json() {
        let mut e = enrolment();
        e.submit_quiz(T0, &grade(80, true)).unwrap();
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["status"], "Passed");
        assert_eq!(serde_json::from_value::<Enrolment>(json).unwrap(), e);
    }

    fn finished(at: i64) -> Previous {
        Previous {
            finished_at: Some(at),
        }
    }

    const OPEN: Previous = Previous { finished_at: None };

    #[test]
    fn the_first_enrolment_is_always_allowed() {
        assert!(may_enrol(&[], false, None, T0));
    }

    #[test]
    fn no_second_enrolment_unless_the_campaign_allows_it() {
        assert!(!may_enrol(&[finished(T0)], false, None, T0 + 365 * DAY));
        assert!(may_enrol(&[finished(T0)], true, None, T0));
    }

    #[test]
    fn every_earlier_enrolment_must_be_finished() {
        assert!(!may_enrol(&[OPEN], true, None, T0));
        assert!(!may_enrol(&[finished(T0), OPEN], true, None, T0 + DAY));
        let mut past_due = enrolment();
        past_due.mark_past_due(DUE);
        assert!(!may_enrol(
            &[Previous::from(&past_due)],
            true,
            None,
            DUE + DAY
        ));
        let mut passed = enrolment();
        passed.submit_quiz(T0, &grade(100, true)).unwrap();
        assert!(may_enrol(&[Previous::from(&passed)], true, None, T0 + 1));
    }

    #[test]
    fn the_cooldown_runs_from_the_latest_finish_by_the_calendar() {
        let month = IsoDuration::parse("P1M").unwrap();
        // 2026-01-31 + 1 month is 2026-02-28 (no 31 February); 28 days after 31 January.
        let jan_31 = T0 + 30 * DAY;
        let feb_28 = jan_31 + 28 * DAY;
        let earlier = [finished(T0), finished(jan_31)];
        assert!(!may_enrol(&earlier, true, Some(&month), feb_28 - 1));
        assert!(may_enrol(&earlier, true, Some(&month), feb_28));
        // Order does not matter: the latest finish counts.
        let reversed = [finished(jan_31), finished(T0)];
        assert!(!may_enrol(&reversed, true, Some(&month), feb_28 - 1));
    }

    #[test]
    fn a_cooldown_beyond_the_calendar_never_ends() {
        let forever = IsoDuration::parse("PT4294967295H").unwrap();
        assert!(!may_enrol(&[finished(T0)], true, Some(&forever), i64::MAX));
        let day = IsoDuration::parse("P1D").unwrap();
        assert!(!may_enrol(
            &[finished(i64::MAX)],
            true,
            Some(&day),
            i64::MAX
        ));
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Open,
        Spend(i64),
        Submit { score: u8 },
        Complete,
        Acknowledge { minimum_s: i64 },
        MarkPastDue,
        External { back: i64, outcome: External },
    }

    fn op() -> impl Strategy<Value = Op> {
        let score = proptest::option::of(0u8..=100);
        // Finishing steps are rarer, so that sequences reach the due time unfinished.
        prop_oneof![
            3 => Just(Op::Open),
            3 => (-10i64..2_000).prop_map(Op::Spend),
            2 => (0u8..=5).prop_map(|right| Op::Submit { score: right * 20 }),
            1 => Just(Op::Complete),
            2 => (0i64..6_000).prop_map(|minimum_s| Op::Acknowledge { minimum_s }),
            3 => Just(Op::MarkPastDue),
            2 => (0i64..72, 0u8..3, score).prop_map(|(hours, kind, score)| Op::External {
                back: hours * HOUR,
                outcome: match kind {
                    0 => External::Completed,
                    1 => External::Passed { score },
                    _ => External::Failed { score },
                },
            }),
        ]
    }

    proptest! {
        /// Times move in whole hours, sometimes 1 ms short, so steps land on and just
        /// before the due time.
        #[test]
        fn invariants_hold_over_any_sequence(
            due_hours in proptest::option::of(0i64..48),
            steps in proptest::collection::vec((op(), 0i64..8, any::<bool>()), 0..40),
        ) {
            let mut e = Enrolment::new(T0, due_hours.map(|h| T0 + h * HOUR));
            let mut hours = 0;
            for (op, step, short) in steps {
                hours += step;
                let now = (T0 + hours * HOUR - i64::from(short)).max(T0);
                let before = e.clone();
                let (result, at) = match op {
                    Op::Open => (e.open(now), now),
                    Op::Spend(s) => (e.spend(s), now),
                    // 60 % passes.
                    Op::Submit { score } => (e.submit_quiz(now, &grade(score, score >= 60)), now),
                    Op::Complete => (e.complete(now), now),
                    Op::Acknowledge { minimum_s } => (e.acknowledge(now, minimum_s), now),
                    Op::MarkPastDue => (Ok(e.mark_past_due(now)), now),
                    Op::External { back, outcome } => {
                        (e.record_external(now - back, outcome), now - back)
                    }
                };
                match result {
                    Err(_) => prop_assert_eq!(&e, &before),
                    Ok(change) => prop_assert_eq!(change, Change::between(&before, &e)),
                }
                prop_assert_eq!(e.completed_at.is_some(), e.is_finished());
                if before.is_finished() {
                    prop_assert_eq!(&e, &before);
                }
                if e.status == EnrolmentStatus::PastDue {
                    prop_assert!(e.past_due_at.is_some());
                }
                if e.past_due_at != before.past_due_at {
                    prop_assert_eq!(before.past_due_at, None);
                    prop_assert_eq!(e.past_due_at, e.due_at);
                    prop_assert!(e.due_at.is_some_and(|due| due <= at));
                }
                prop_assert!(e.score >= before.score);
                prop_assert!(e.attempts >= before.attempts);
                prop_assert!(e.time_spent_s >= before.time_spent_s);
                if before.started_at.is_some() {
                    prop_assert_eq!(e.started_at, before.started_at);
                }
                if e.policy_acknowledged {
                    prop_assert_eq!(e.status, EnrolmentStatus::Completed);
                }
            }
        }
    }
}
