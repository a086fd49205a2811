//! Why someone was enrolled, in a sentence a learner reads at the top of the email and of
//! the lesson: "On Tuesday 20 November a login used a known-compromised password." It is
//! made from the event type's description and the dates of the events the smart group
//! counted; never from anything the sender put in an event but, when the admin allows it,
//! the site.

use chrono::{Datelike, TimeZone, Utc};

/// One kind of event that made a person join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Happened {
    /// The event type's description ("A login used a known-compromised password."), or
    /// its name when it has none.
    pub what: String,
    /// How many events counted, and the oldest and most recent of them.
    pub count: usize,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Where the most recent one happened, when the admin allows it to be said.
    pub site: Option<String>,
}

/// The sentence for a join caused by `happened` (in the order the criteria name them);
/// with no events (a join on attributes alone), when and which group. Dates are UTC,
/// with the year only when it is not `now`'s.
pub fn sentence(happened: &[Happened], group: &str, joined_ms: i64, now_ms: i64) -> String {
    if happened.is_empty() {
        return format!(
            "On {} you were added to the group \u{201c}{group}\u{201d}.",
            day(joined_ms, now_ms)
        );
    }
    let parts: Vec<String> = happened
        .iter()
        .map(|h| {
            let mut what = clause(&h.what);
            if let Some(site) = h.site.as_deref().filter(|s| !s.is_empty()) {
                what = format!("{what} ({site})");
            }
            let (first, last) = (day(h.first_ms, now_ms), day(h.last_ms, now_ms));
            let times = if h.count > 1 {
                format!(", {} times", h.count)
            } else {
                String::new()
            };
            if first == last {
                format!("On {last}{times}, {what}.")
            } else {
                format!("Between {first} and {last}{times}, {what}.")
            }
        })
        .collect();
    parts.join(" ")
}

/// "Tuesday 20 November", and the year when it is not the current one.
fn day(ms: i64, now_ms: i64) -> String {
    let (Some(at), Some(now)) = (
        Utc.timestamp_millis_opt(ms).single(),
        Utc.timestamp_millis_opt(now_ms).single(),
    ) else {
        return String::new();
    };
    if at.year() == now.year() {
        at.format("%A %-d %B").to_string()
    } else {
        at.format("%A %-d %B %Y").to_string()
    }
}

/// A description as the middle of a sentence: its first letter lower-cased (unless it
/// starts an acronym), its final full stop dropped, "the person" said as "you".
fn clause(description: &str) -> String {
    let text = description.trim().trim_end_matches('.');
    let text = text
        .replacen("The person ", "you ", 1)
        .replace(" the person", " you");
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && !second.is_uppercase() => {
            first.to_lowercase().chain(text.chars().skip(1)).collect()
        }
        _ => text,
    }
}

/// An event type's name as words, for a type with no description:
/// `dashlane_user_typed_weak_password` → "dashlane user typed weak password".
pub fn name_in_words(name: &str) -> String {
    name.replace(['_', '-', '.'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    /// Tuesday 20 November 2029, 09:00 UTC.
    const TUE: i64 = 1_889_859_600_000;

    fn typed(count: usize, first_ms: i64, last_ms: i64) -> Happened {
        Happened {
            what: "A login used a known-compromised password.".into(),
            count,
            first_ms,
            last_ms,
            site: None,
        }
    }

    #[test]
    fn one_event_one_day() {
        assert_eq!(
            sentence(&[typed(1, TUE, TUE)], "g", TUE, TUE + DAY),
            "On Tuesday 20 November, a login used a known-compromised password."
        );
    }

    #[test]
    fn several_events_over_days_and_the_year_when_it_differs() {
        assert_eq!(
            sentence(&[typed(3, TUE - 2 * DAY, TUE)], "g", TUE, TUE),
            "Between Sunday 18 November and Tuesday 20 November, 3 times, a login used a \
             known-compromised password."
        );
        assert_eq!(
            sentence(&[typed(1, TUE, TUE)], "g", TUE, TUE + 60 * DAY),
            "On Tuesday 20 November 2029, a login used a known-compromised password."
        );
    }

    #[test]
    fn the_person_is_you_and_the_site_only_when_given() {
        let happened = Happened {
            what: "The person dismissed an AI phishing alert.".into(),
            site: Some("login.example.net".into()),
            ..typed(1, TUE, TUE)
        };
        assert_eq!(
            sentence(&[happened], "g", TUE, TUE),
            "On Tuesday 20 November, you dismissed an AI phishing alert (login.example.net)."
        );
    }

    #[test]
    fn a_join_without_events_names_the_group() {
        assert_eq!(
            sentence(&[], "New hires", TUE, TUE),
            "On Tuesday 20 November you were added to the group \u{201c}New hires\u{201d}."
        );
    }
}
