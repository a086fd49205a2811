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

/// Appends [`format_ms`]`(ms)` to `out`, without chrono's formatting machinery or an
/// allocation for the years 1970 to 9999 (an evidence export writes millions of
/// instants); others go through [`format_ms`].
pub fn push_ms(out: &mut Vec<u8>, ms: i64) {
    const LAST: i64 = 253_402_300_800_000; // 10000-01-01T00:00:00Z
    if !(0..LAST).contains(&ms) {
        out.extend_from_slice(format_ms(ms).as_bytes());
        return;
    }
    push_day(out, ms);
    let in_day = ms % DAY_MS;
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    out.extend_from_slice(&[
        b'T',
        b'0' + (h / 10) as u8,
        b'0' + (h % 10) as u8,
        b':',
        b'0' + (m / 10) as u8,
        b'0' + (m % 10) as u8,
        b':',
        b'0' + (s / 10) as u8,
        b'0' + (s % 10) as u8,
        b'.',
        b'0' + (milli / 100) as u8,
        b'0' + (milli / 10 % 10) as u8,
        b'0' + (milli % 10) as u8,
        b'Z',
    ]);
}

/// Appends the UTC day of `ms` (0 to the end of 9999) as `YYYY-MM-DD`.
fn push_day(out: &mut Vec<u8>, ms: i64) {
    // Howard Hinnant's `civil_from_days`, for days since 1970-01-01 (not negative here).
    let z = ms / DAY_MS + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    out.extend_from_slice(&[
        b'0' + (y / 1000) as u8,
        b'0' + (y / 100 % 10) as u8,
        b'0' + (y / 10 % 10) as u8,
        b'0' + (y % 10) as u8,
        b'-',
        b'0' + (m / 10) as u8,
        b'0' + (m % 10) as u8,
        b'-',
        b'0' + (d / 10) as u8,
        b'0' + (d % 10) as u8,
    ]);
}

/// Appends `format_date(date_of_ms(ms))` to `out` (see [`push_ms`]).
pub fn push_date_of_ms(out: &mut Vec<u8>, ms: i64) {
    const LAST: i64 = 253_402_300_800_000;
    if (0..LAST).contains(&ms) {
        push_day(out, ms);
    } else {
        out.extend_from_slice(format_date(date_of_ms(ms)).as_bytes());
    }
}

/// `format_date(date_of_ms(ms))` without chrono's formatting machinery (a full
/// compliance pass writes a date into each of 400,000 reasons).
pub fn format_day_ms(ms: i64) -> String {
    let mut out = Vec::with_capacity(10);
    push_date_of_ms(&mut out, ms);
    String::from_utf8(out).unwrap_or_default()
}

const DAY_MS: i64 = 86_400_000;

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

    proptest::proptest! {
        #[test]
        fn pushed_instants_and_days_are_the_formatted_ones(
            ms in proptest::prop_oneof![
                -100_000_000_000_000_i64..300_000_000_000_000,
                proptest::sample::select(vec![
                    0, -1, 951_782_400_000, 4_107_542_400_000, 253_402_300_799_999,
                    253_402_300_800_000,
                ]),
            ]
        ) {
            let mut out = Vec::new();
            push_ms(&mut out, ms);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), format_ms(ms));
            let mut out = Vec::new();
            push_date_of_ms(&mut out, ms);
            proptest::prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                format_date(date_of_ms(ms))
            );
            proptest::prop_assert_eq!(format_day_ms(ms), format_date(date_of_ms(ms)));
        }
    }

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
