//! A remote Reporting API that compliance reads training from (a KnowBe4 account, or
//! another coachloop): where it is ([`Region`] or a base URL), and which of its campaigns
//! count for which requirement ([`Counting`]).

use super::requirement::RequirementKind;
use crate::FieldError;
use chrono::{DateTime, Days, Months, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

/// The reference service's regions, each with its own host (and its own keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    Us,
    Eu,
    Ca,
    Uk,
    De,
}

impl Region {
    pub const ALL: [Self; 5] = [Self::Us, Self::Eu, Self::Ca, Self::Uk, Self::De];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Us => "us",
            Self::Eu => "eu",
            Self::Ca => "ca",
            Self::Uk => "uk",
            Self::De => "de",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// The reference service's base URL in this region.
    pub fn base_url(self) -> String {
        format!("https://{}.api.knowbe4.com", self.as_str())
    }
}

/// Which remote training campaigns count for which requirement. Empty: every remote
/// enrolment counts for security awareness training (what compliance platforms assume
/// when nothing is mapped). Event-triggered training is measured from our own events, so
/// no remote campaign counts for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counting(BTreeMap<RequirementKind, Vec<i64>>);

/// Most campaigns one requirement may name.
pub const MAX_CAMPAIGNS: usize = 1_000;

impl Counting {
    /// Reads `{"awareness": [3317, 12], "phishing": [40]}`; each problem names its field
    /// under `field`.
    pub fn from_json(value: &Value, field: &str) -> Result<Self, Vec<FieldError>> {
        let Some(object) = value.as_object() else {
            return Err(vec![FieldError::new(
                field,
                "must be an object of requirement kinds to lists of remote campaign ids",
            )]);
        };
        let mut errors = Vec::new();
        let mut counting = BTreeMap::new();
        for (key, ids) in object {
            let at = format!("{field}.{key}");
            let kind = match RequirementKind::parse(key) {
                Some(RequirementKind::EventTriggered) => {
                    errors.push(FieldError::new(
                        &at,
                        "event-triggered training is measured from this installation's own \
                         events; no remote campaign counts for it",
                    ));
                    continue;
                }
                Some(kind) => kind,
                None => {
                    errors.push(FieldError::new(
                        &at,
                        "is not a requirement kind: one of awareness, phishing, policy, role_based",
                    ));
                    continue;
                }
            };
            let list = ids.as_array().map(|ids| {
                ids.iter()
                    .map(|id| id.as_i64().filter(|id| *id > 0))
                    .collect::<Option<Vec<i64>>>()
            });
            match list {
                Some(Some(mut ids)) if ids.len() <= MAX_CAMPAIGNS => {
                    ids.sort_unstable();
                    ids.dedup();
                    counting.insert(kind, ids);
                }
                Some(Some(_)) => errors.push(FieldError::new(
                    &at,
                    format!("names more than {MAX_CAMPAIGNS} campaigns"),
                )),
                _ => errors.push(FieldError::new(
                    &at,
                    "must be a list of remote campaign ids (positive integers)",
                )),
            }
        }
        if errors.is_empty() {
            Ok(Self(counting))
        } else {
            Err(errors)
        }
    }

    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(kind, ids)| (kind.as_str().to_owned(), Value::from(ids.clone())))
                .collect(),
        )
    }

    /// Whether an enrolment of remote campaign `campaign` (`None`: not known) counts for
    /// a requirement of `kind`.
    pub fn counts(&self, kind: RequirementKind, campaign: Option<i64>) -> bool {
        if kind == RequirementKind::EventTriggered {
            return false;
        }
        if self.0.is_empty() {
            return kind == RequirementKind::Awareness;
        }
        match (self.0.get(&kind), campaign) {
            (Some(ids), Some(campaign)) => ids.binary_search(&campaign).is_ok(),
            _ => false,
        }
    }
}

/// When an enrolment made at `enrolled` is due under a campaign's relative duration as
/// the Reporting API writes it ("1 week", "3 days", "2 months").
pub fn due_after(enrolled: DateTime<Utc>, duration: &str) -> Option<DateTime<Utc>> {
    let mut words = duration.split_whitespace();
    let n: u32 = words.next()?.parse().ok()?;
    let unit = words.next()?.to_ascii_lowercase();
    if words.next().is_some() {
        return None;
    }
    match unit.trim_end_matches('s') {
        "day" => enrolled.checked_add_days(Days::new(u64::from(n))),
        "week" => enrolled.checked_add_days(Days::new(7 * u64::from(n))),
        "month" => enrolled.checked_add_months(Months::new(n)),
        "year" => enrolled.checked_add_months(Months::new(12 * n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn regions_have_the_reference_hosts() {
        assert_eq!(Region::parse("EU"), Some(Region::Eu));
        assert_eq!(Region::parse("fr"), None);
        assert_eq!(Region::De.base_url(), "https://de.api.knowbe4.com");
    }

    #[test]
    fn nothing_mapped_counts_everything_for_awareness_only() {
        let counting = Counting::default();
        assert!(counting.counts(RequirementKind::Awareness, Some(4)));
        assert!(counting.counts(RequirementKind::Awareness, None));
        assert!(!counting.counts(RequirementKind::Phishing, Some(4)));
        assert!(!counting.counts(RequirementKind::EventTriggered, Some(4)));
    }

    #[test]
    fn mapped_campaigns_count_for_their_requirement() {
        let counting =
            Counting::from_json(&json!({"phishing": [40, 12, 40], "awareness": []}), "r").unwrap();
        assert!(counting.counts(RequirementKind::Phishing, Some(12)));
        assert!(!counting.counts(RequirementKind::Phishing, Some(13)));
        assert!(!counting.counts(RequirementKind::Phishing, None));
        assert!(!counting.counts(RequirementKind::Awareness, Some(12)));
        assert_eq!(
            counting.to_json(),
            json!({"awareness": [], "phishing": [12, 40]})
        );
    }

    #[test]
    fn bad_mappings_name_their_field() {
        let errors = Counting::from_json(
            &json!({"event_triggered": [1], "nope": [1], "policy": [0], "phishing": "7"}),
            "requirements",
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "requirements.event_triggered",
                "requirements.nope",
                "requirements.phishing",
                "requirements.policy"
            ]
        );
        assert!(Counting::from_json(&json!([1]), "requirements").is_err());
    }

    #[test]
    fn relative_durations() {
        let at = "2026-01-31T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let due = |d| due_after(at, d).map(|t| t.to_rfc3339());
        assert_eq!(due("1 week").as_deref(), Some("2026-02-07T10:00:00+00:00"));
        assert_eq!(due("3 days").as_deref(), Some("2026-02-03T10:00:00+00:00"));
        assert_eq!(due("1 month").as_deref(), Some("2026-02-28T10:00:00+00:00"));
        assert_eq!(due("2 Weeks").as_deref(), Some("2026-02-14T10:00:00+00:00"));
        assert_eq!(due("soon"), None);
        assert_eq!(due("1 fortnight"), None);
    }
}
