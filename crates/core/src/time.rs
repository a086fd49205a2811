//! The wire forms of instants and dates: RFC 3339 UTC with milliseconds and `Z`, and
//! `YYYY-MM-DD`; and the form shown to people on pages. Instants are stored as epoch
//! milliseconds.

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};

/// Formats epoch milliseconds as `2023-01-13T13:52:04.529Z`.
pub fn format_ms(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(at) => at.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => String::new(),
    }
}

/// Formats epoch milliseconds as people read them: `Tuesday 8 December 2026, 13:37 UTC`.
pub fn format_human_ms(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(at) => at.format("%A %-d %B %Y, %H:%M UTC").to_string(),
        None => String::new(),
    }
}

pub fn format_date(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// Parses a strict `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    if text.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// Parses `YYYY-MM-DD` (midnight UTC) or a full RFC 3339 timestamp.
pub fn parse_date_or_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Some(date) = parse_date(text) {
        return date.and_hms_opt(0, 0, 0).map(|at| at.and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// The UTC calendar day of an instant given in epoch milliseconds.
pub fn date_of_ms(ms: i64) -> NaiveDate {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .date_naive()
}

/// Midnight UTC at the start of `date`, in epoch milliseconds.
pub fn date_start_ms(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .map(|at| at.and_utc().timestamp_millis())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_z() {
        assert_eq!(format_ms(1_673_617_924_529), "2023-01-13T13:52:04.529Z");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn formats_for_people() {
        let at = parse_date_or_timestamp("2026-12-08T13:37:59.999Z").unwrap();
        assert_eq!(
            format_human_ms(at.timestamp_millis()),
            "Tuesday 8 December 2026, 13:37 UTC"
        );
        let at = parse_date_or_timestamp("2027-01-01T09:05:00+02:00").unwrap();
        assert_eq!(
            format_human_ms(at.timestamp_millis()),
            "Friday 1 January 2027, 07:05 UTC"
        );
        assert_eq!(format_human_ms(i64::MAX), "");
    }

    #[test]
    fn parses_dates_and_timestamps() {
        let day = parse_date_or_timestamp("2023-01-13").unwrap();
        assert_eq!(
            format_ms(day.timestamp_millis()),
            "2023-01-13T00:00:00.000Z"
        );
        let at = parse_date_or_timestamp("2023-01-13T15:52:04.529+02:00").unwrap();
        assert_eq!(format_ms(at.timestamp_millis()), "2023-01-13T13:52:04.529Z");
        assert!(parse_date_or_timestamp("13/01/2023").is_none());
        assert!(parse_date_or_timestamp("2023-02-30").is_none());
        assert!(parse_date("2023-1-3").is_none());
    }
}
