//! The notices people get about their training: which ones a campaign sends and when
//! ([`NoticeSettings`]), the templates they are written in ([`template`]), and the
//! sentence that tells a learner why they were enrolled ([`reason`]).

pub mod reason;
pub mod template;

use crate::FieldError;
use crate::duration::IsoDuration;
use serde::{Deserialize, Serialize};

/// One notice a campaign can send about an enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// To the learner, when enrolled.
    Enrolled,
    /// To the learner, at each of the campaign's reminder offsets before the due time.
    Reminder,
    /// To the learner, when the enrolment falls past due.
    PastDue,
    /// To the learner's manager, when the enrolment falls past due.
    PastDueManager,
    /// To the learner, when they finish.
    Completed,
}

impl Notice {
    pub const ALL: [Self; 5] = [
        Self::Enrolled,
        Self::Reminder,
        Self::PastDue,
        Self::PastDueManager,
        Self::Completed,
    ];

    /// The stored and wire name (also the email job's `template`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enrolled => "enrolled",
            Self::Reminder => "reminder",
            Self::PastDue => "past_due",
            Self::PastDueManager => "past_due_manager",
            Self::Completed => "completed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == text)
    }

    /// Whether it goes to the learner's manager rather than the learner.
    pub fn to_manager(self) -> bool {
        self == Self::PastDueManager
    }

    /// Whether it carries the learner's own link (and the button to it): only what asks
    /// the learner to act.
    pub fn has_link(self) -> bool {
        matches!(self, Self::Enrolled | Self::Reminder | Self::PastDue)
    }

    /// Whether it is worth sending once the enrolment is finished.
    pub fn after_finish(self) -> bool {
        self == Self::Completed
    }
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A due time to order reminder offsets by (2100-01-01).
const DUE: i64 = 4_102_444_800_000;

/// Reminder offsets a campaign may set, at most.
pub const MAX_REMINDERS: usize = 10;

/// Which notices a campaign sends, and when. The defaults are what every campaign sent
/// before campaigns could choose: the enrolment email, one reminder a day before the due
/// time, and the manager told of a past-due enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoticeSettings {
    pub enrolled: bool,
    /// ISO 8601 durations before the due time (`P3D`, `PT0S` for the due time itself).
    /// A reminder never comes before half-way from enrolment to due.
    pub reminders: Vec<String>,
    pub past_due: bool,
    pub past_due_manager: bool,
    pub completed: bool,
    /// Whether `{{ reason }}` may name the site an event happened on (from the event's
    /// `metadata.site` or `metadata.domain`). Off by default: the site can be private.
    pub reason_shows_site: bool,
}

impl Default for NoticeSettings {
    fn default() -> Self {
        Self {
            enrolled: true,
            reminders: vec!["P1D".into()],
            past_due: false,
            past_due_manager: true,
            completed: false,
            reason_shows_site: false,
        }
    }
}

impl NoticeSettings {
    /// The stored form (`None`, the defaults, reads back as the defaults).
    pub fn from_stored(stored: Option<&str>) -> Result<Self, String> {
        match stored {
            None => Ok(Self::default()),
            Some(text) => serde_json::from_str(text)
                .map_err(|e| format!("the campaign's notice settings cannot be read: {e}")),
        }
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).expect("settings serialize")
    }

    /// Checks the reminders and puts them in their canonical form, latest first (the
    /// largest offset), without repeats.
    pub fn validated(mut self) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.reminders.len() > MAX_REMINDERS {
            errors.push(FieldError::new(
                "reminders",
                format!("at most {MAX_REMINDERS} reminders"),
            ));
        }
        let mut parsed: Vec<(i64, IsoDuration, String)> = Vec::new();
        for (i, text) in self.reminders.iter().enumerate() {
            let text = text.trim();
            match IsoDuration::parse(text) {
                Ok(d) => {
                    // Ordered by how long before a fixed due time each comes.
                    let before = DUE - d.before_ms(DUE);
                    if !parsed.iter().any(|(_, seen, _)| *seen == d) {
                        parsed.push((before, d, text.to_owned()));
                    }
                }
                Err(e) => errors.push(FieldError::new(
                    format!("reminders[{i}]"),
                    format!("{e}; write a duration before the due time, e.g. P3D or PT0S"),
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        parsed.sort_by_key(|p| std::cmp::Reverse(p.0));
        self.reminders = parsed.into_iter().map(|(_, _, text)| text).collect();
        Ok(self)
    }

    /// Whether `notice` is sent (for a reminder: whether any reminder is).
    pub fn sends(&self, notice: Notice) -> bool {
        match notice {
            Notice::Enrolled => self.enrolled,
            Notice::Reminder => !self.reminders.is_empty(),
            Notice::PastDue => self.past_due,
            Notice::PastDueManager => self.past_due_manager,
            Notice::Completed => self.completed,
        }
    }

    /// When each reminder of an enrolment made at `enrolled_at`, due at `due_at`, goes:
    /// (its offset, the instant), each at the offset before the due time but never
    /// before half-way from enrolment to due; two that land on one instant go once.
    pub fn reminder_times(&self, enrolled_at: i64, due_at: i64) -> Vec<(String, i64)> {
        let halfway = enrolled_at + (due_at - enrolled_at) / 2;
        if halfway <= enrolled_at {
            return Vec::new();
        }
        let mut times: Vec<(String, i64)> = Vec::new();
        for offset in &self.reminders {
            let Ok(d) = IsoDuration::parse(offset) else {
                continue;
            };
            let at = d.before_ms(due_at).max(halfway);
            if !times.iter().any(|(_, t)| *t == at) {
                times.push((offset.clone(), at));
            }
        }
        times
    }
}

/// Which of a notice's language variants a person gets: their `language` exactly (case
/// aside), else its primary subtag (`fr` for `fr-CA`), else a variant of the same
/// primary language (`fr-FR` for `fr`), else the variant for any language (`""`). `None`:
/// none fits, and the built-in text is used.
pub fn choose_language<'a>(
    wanted: Option<&str>,
    available: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<&'a str> {
    let primary = |tag: &str| {
        tag.split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let wanted = wanted.map(str::trim).filter(|w| !w.is_empty());
    if let Some(wanted) = wanted {
        let want = primary(wanted);
        let tiers: [&dyn Fn(&str) -> bool; 3] = [
            &|tag| tag.eq_ignore_ascii_case(wanted),
            &|tag| tag.eq_ignore_ascii_case(&want),
            &|tag| !tag.is_empty() && primary(tag) == want,
        ];
        for fits in tiers {
            if let Some(tag) = available.clone().into_iter().find(|tag| fits(tag)) {
                return Some(tag);
            }
        }
    }
    available.into_iter().find(|tag| tag.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn language_is_chosen_exactly_then_by_its_primary_subtag_then_the_fallback() {
        let all = ["", "de", "fr-CA", "pt-BR", "pt"];
        assert_eq!(choose_language(Some("FR-ca"), all), Some("fr-CA"));
        assert_eq!(choose_language(Some("de-AT"), all), Some("de"));
        assert_eq!(choose_language(Some("fr"), all), Some("fr-CA"));
        assert_eq!(choose_language(Some("pt-PT"), all), Some("pt"));
        assert_eq!(choose_language(Some("ja"), all), Some(""));
        assert_eq!(choose_language(None, all), Some(""));
        assert_eq!(choose_language(Some("ja"), ["de"]), None);
    }

    #[test]
    fn defaults_are_the_old_behaviour() {
        let s = NoticeSettings::default();
        assert!(s.sends(Notice::Enrolled) && s.sends(Notice::PastDueManager));
        assert!(!s.sends(Notice::PastDue) && !s.sends(Notice::Completed));
        // A day ahead, or half-way for a shorter course.
        assert_eq!(s.reminder_times(0, 7 * DAY), [("P1D".into(), 6 * DAY)]);
        assert_eq!(s.reminder_times(0, DAY), [("P1D".into(), DAY / 2)]);
        assert_eq!(s.reminder_times(0, 0), []);
        assert_eq!(NoticeSettings::from_stored(None).unwrap(), s);
    }

    #[test]
    fn reminders_are_checked_ordered_and_collapse_on_one_instant() {
        let s = NoticeSettings {
            reminders: vec!["PT0S".into(), "P3D".into(), "P3D".into(), "P1D".into()],
            ..NoticeSettings::default()
        }
        .validated()
        .unwrap();
        assert_eq!(s.reminders, ["P3D", "P1D", "PT0S"]);
        assert_eq!(
            s.reminder_times(0, 10 * DAY),
            [
                ("P3D".into(), 7 * DAY),
                ("P1D".into(), 9 * DAY),
                ("PT0S".into(), 10 * DAY)
            ]
        );
        // A two-day course: three days ahead and one day ahead both come half-way.
        assert_eq!(
            s.reminder_times(0, 2 * DAY),
            [("P3D".into(), DAY), ("PT0S".into(), 2 * DAY)]
        );
        let bad = NoticeSettings {
            reminders: vec!["P1D".into(), "soon".into()],
            ..NoticeSettings::default()
        }
        .validated()
        .unwrap_err();
        assert_eq!(bad[0].field, "reminders[1]");
    }

    #[test]
    fn stored_settings_round_trip_and_unknown_fields_are_refused() {
        let s = NoticeSettings {
            completed: true,
            ..NoticeSettings::default()
        };
        assert_eq!(
            NoticeSettings::from_stored(Some(&s.to_stored())).unwrap(),
            s
        );
        assert!(serde_json::from_str::<NoticeSettings>(r#"{"enroled": true}"#).is_err());
    }
}
