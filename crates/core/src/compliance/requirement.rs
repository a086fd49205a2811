//! What an account asks of its people for a kind of training: which content or campaigns
//! count, how often, how long new hires have, who is in scope, and the tolerance before a
//! late person fails.

use crate::FieldError;
use chrono::{Datelike, Months, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequirementKind {
    /// Security awareness training, yearly; new hires within their first days.
    Awareness,
    /// Phishing and social-engineering training.
    Phishing,
    /// Acknowledgement of the acceptable use policy.
    Policy,
    /// Training triggered by an event (a smart-group enrolment), finished within a time
    /// of the event.
    EventTriggered,
    /// Training for people in a role (a group the admin picks).
    RoleBased,
}

impl RequirementKind {
    pub const ALL: [Self; 5] = [
        Self::Awareness,
        Self::Phishing,
        Self::Policy,
        Self::EventTriggered,
        Self::RoleBased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Awareness => "awareness",
            Self::Phishing => "phishing",
            Self::Policy => "policy",
            Self::EventTriggered => "event_triggered",
            Self::RoleBased => "role_based",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    pub fn default_title(self) -> &'static str {
        match self {
            Self::Awareness => "Security awareness training every 12 months",
            Self::Phishing => "Phishing and social-engineering training",
            Self::Policy => "Acceptable use policy acknowledged",
            Self::EventTriggered => "Training finished within 14 days of a triggering event",
            Self::RoleBased => "Role-based training",
        }
    }

    /// The library content that counts when an admin has picked none: `None` for every
    /// module (awareness, role-based) or, for event-triggered training, every enrolment a
    /// smart-group join made.
    pub fn default_slugs(self) -> Option<&'static [&'static str]> {
        match self {
            Self::Phishing => Some(&["phishing-red-flags", "social-engineering"]),
            Self::Policy => Some(&["acceptable-use"]),
            Self::Awareness | Self::EventTriggered | Self::RoleBased => None,
        }
    }
}

/// When a completion stops counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recurrence {
    /// A completion counts for this many months (a rolling year is 12).
    Rolling { months: u32 },
    /// Every completion stops counting on one date each year (`month`-`day`, UTC).
    Fixed { month: u32, day: u32 },
    /// Once done, done.
    Once,
}

impl Recurrence {
    /// The instant a completion at `completed_ms` stops counting (`None`: never).
    pub fn expiry(self, completed_ms: i64) -> Option<i64> {
        let at = Utc.timestamp_millis_opt(completed_ms).single()?;
        match self {
            Self::Rolling { months } => at
                .checked_add_months(Months::new(months))
                .map(|t| t.timestamp_millis()),
            Self::Fixed { month, day } => {
                let year = at.year();
                [year, year + 1].into_iter().find_map(|y| {
                    let reset = NaiveDate::from_ymd_opt(y, month, day)?
                        .and_hms_opt(0, 0, 0)?
                        .and_utc()
                        .timestamp_millis();
                    (reset > completed_ms).then_some(reset)
                })
            }
            Self::Once => None,
        }
    }
}

/// Who a requirement applies to (always only active people).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    All,
    Group { group_id: i64 },
}

/// A requirement's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub kind: RequirementKind,
    pub title: String,
    /// Content that counts (ids); with `campaigns` empty too, the kind's default.
    pub content: Vec<i64>,
    /// Campaigns whose enrolments count (ids).
    pub campaigns: Vec<i64>,
    pub recurrence: Recurrence,
    /// Days a person has from their start date when nothing that counts was assigned yet.
    pub new_hire_days: u32,
    pub scope: Scope,
    /// Days a late person is at risk before failing.
    pub tolerance_days: u32,
    /// A person due within this many days is at risk.
    pub due_soon_days: u32,
    /// Event-triggered training: days from the event to the completion.
    pub completion_days: u32,
}

pub const MAX_DAYS: u32 = 3650;
pub const MAX_MONTHS: u32 = 120;
pub const MAX_TITLE: usize = 200;
pub const MAX_IDS: usize = 1000;

impl Requirement {
    pub fn default_for(kind: RequirementKind) -> Self {
        Self {
            kind,
            title: kind.default_title().to_owned(),
            content: Vec::new(),
            campaigns: Vec::new(),
            recurrence: match kind {
                RequirementKind::EventTriggered => Recurrence::Once,
                _ => Recurrence::Rolling { months: 12 },
            },
            new_hire_days: 30,
            scope: Scope::All,
            tolerance_days: 0,
            due_soon_days: 30,
            completion_days: 14,
        }
    }

    /// Checks the settings; every problem named by its field.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let title = self.title.trim();
        if title.is_empty() {
            errors.push(FieldError::new("title", "must not be empty"));
        } else if self.title.chars().count() > MAX_TITLE {
            errors.push(FieldError::new(
                "title",
                format!("at most {MAX_TITLE} characters"),
            ));
        }
        for (field, ids) in [("content", &self.content), ("campaigns", &self.campaigns)] {
            if ids.len() > MAX_IDS {
                errors.push(FieldError::new(field, format!("at most {MAX_IDS} ids")));
            }
            if ids.iter().any(|id| *id < 1) {
                errors.push(FieldError::new(field, "ids are positive integers"));
            }
        }
        match self.recurrence {
            Recurrence::Rolling { months } if !(1..=MAX_MONTHS).contains(&months) => {
                errors.push(FieldError::new(
                    "recurrence.months",
                    format!("between 1 and {MAX_MONTHS}"),
                ));
            }
            Recurrence::Fixed { month, day } => {
                if month == 2 && day == 29 {
                    errors.push(FieldError::new(
                        "recurrence.day",
                        "29 February comes once in four years: pick 28 February or 1 March",
                    ));
                } else if NaiveDate::from_ymd_opt(2025, month, day).is_none() {
                    errors.push(FieldError::new(
                        "recurrence",
                        format!("month {month} has no day {day}"),
                    ));
                }
            }
            _ => {}
        }
        if let Scope::Group { group_id } = self.scope
            && group_id < 1
        {
            errors.push(FieldError::new("scope.group_id", "a positive integer"));
        }
        for (field, days) in [
            ("new_hire_days", self.new_hire_days),
            ("tolerance_days", self.tolerance_days),
            ("due_soon_days", self.due_soon_days),
            ("completion_days", self.completion_days),
        ] {
            if days > MAX_DAYS {
                errors.push(FieldError::new(field, format!("at most {MAX_DAYS}")));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn rolling_months_clamp_to_the_month_end() {
        let year = Recurrence::Rolling { months: 12 };
        assert_eq!(
            year.expiry(ms("2025-11-03T10:00:00Z")),
            Some(ms("2026-11-03T10:00:00Z"))
        );
        // A leap day's year ends on 28 February.
        assert_eq!(
            year.expiry(ms("2024-02-29T12:00:00Z")),
            Some(ms("2025-02-28T12:00:00Z"))
        );
    }

    #[test]
    fn a_fixed_date_resets_every_completion_before_it() {
        let jan31 = Recurrence::Fixed { month: 1, day: 31 };
        assert_eq!(
            jan31.expiry(ms("2025-11-03T10:00:00Z")),
            Some(ms("2026-01-31T00:00:00Z"))
        );
        assert_eq!(
            jan31.expiry(ms("2026-01-31T00:00:00Z")),
            Some(ms("2027-01-31T00:00:00Z"))
        );
        assert_eq!(
            jan31.expiry(ms("2026-01-30T23:59:59Z")),
            Some(ms("2026-01-31T00:00:00Z"))
        );
        assert_eq!(Recurrence::Once.expiry(0), None);
    }

    #[test]
    fn validation_names_each_field() {
        let mut r = Requirement::default_for(RequirementKind::Awareness);
        assert_eq!(r.validate(), Ok(()));
        r.title = " ".into();
        r.recurrence = Recurrence::Fixed { month: 2, day: 29 };
        r.tolerance_days = MAX_DAYS + 1;
        let fields: Vec<String> = r
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["title", "recurrence.day", "tolerance_days"]);
        r = Requirement::default_for(RequirementKind::Awareness);
        r.recurrence = Recurrence::Fixed { month: 4, day: 31 };
        assert_eq!(r.validate().unwrap_err()[0].field, "recurrence");
        r.recurrence = Recurrence::Rolling { months: 0 };
        assert_eq!(r.validate().unwrap_err()[0].field, "recurrence.months");
    }
}
