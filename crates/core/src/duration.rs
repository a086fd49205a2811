//! ISO-8601 durations (`P3M`, `P30D`, `PT12H`, `P1Y2M3W4DT5H6M7S`), subtracted from an
//! instant the calendar way: 3 months before 21 November is 21 August, and 3 months before
//! 31 May is the end of 28/29 February, so "the last 3 months" on 31 May begin 1 March.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IsoDuration {
    pub months: u32,
    pub days: u32,
    pub seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an ISO-8601 duration such as P30D, P3M, P1Y or PT12H")]
pub struct DurationError(pub String);

impl IsoDuration {
    /// Parses `PnYnMnWnDTnHnMnS` (integers; at least one part; no negative durations).
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let err = || DurationError(text.to_owned());
        let rest = text.strip_prefix('P').ok_or_else(err)?;
        let (date, time) = match rest.split_once('T') {
            Some((date, time)) if !time.is_empty() => (date, Some(time)),
            Some(_) => return Err(err()),
            None => (rest, None),
        };
        let mut duration = Self {
            months: 0,
            days: 0,
            seconds: 0,
        };
        let mut parts = 0;
        for (number, unit) in components(date).ok_or_else(err)? {
            parts += 1;
            match unit {
                'Y' => duration.months = add(duration.months, mul(number, 12)?)?,
                'M' => duration.months = add(duration.months, number)?,
                'W' => duration.days = add(duration.days, mul(number, 7)?)?,
                'D' => duration.days = add(duration.days, number)?,
                _ => return Err(err()),
            }
        }
        if let Some(time) = time {
            for (number, unit) in components(time).ok_or_else(err)? {
                parts += 1;
                let seconds = u64::from(number)
                    * match unit {
                        'H' => 3600,
                        'M' => 60,
                        'S' => 1,
                        _ => return Err(err()),
                    };
                duration.seconds += seconds;
            }
        }
        if parts == 0 {
            return Err(err());
        }
        Ok(duration)
    }

    /// `at` minus this duration: months first, then days, then seconds. A day the month
    /// lacks becomes the last millisecond of the month, not the same time on its last day:
    /// that would go back as `at` goes forward (30 March 23:00 − 1 month is 28 February
    /// 23:00, 31 March 00:00 would be 28 February 00:00) and let an event leave a rolling
    /// frame and enter it again. So a later `at` never gives an earlier result.
    pub fn before(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let shifted = match at.checked_sub_months(Months::new(self.months)) {
            Some(shifted) if shifted.day() != at.day() => end_of_day(shifted),
            Some(shifted) => shifted,
            None => DateTime::<Utc>::MIN_UTC,
        };
        shifted - Duration::days(i64::from(self.days)) - Duration::seconds(self.seconds as i64)
    }

    /// `at` plus this duration, the inverse walk of [`IsoDuration::before`]; the last
    /// representable instant when the sum lies beyond it.
    pub fn after(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.checked_after(at).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// [`IsoDuration::after`], or `None` when the sum lies beyond the representable range
    /// (`PT4294967295H` parses, and adding it must not panic).
    pub fn checked_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let seconds = Duration::try_seconds(i64::try_from(self.seconds).ok()?)?;
        at.checked_add_months(Months::new(self.months))?
            .checked_add_signed(Duration::days(i64::from(self.days)))?
            .checked_add_signed(seconds)
    }
}

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;
/// Days from 1 January of year 1 (day 1) to 1 January 1970, as chrono counts them.
const UNIX_EPOCH_CE_DAYS: i64 = 719_163;

impl IsoDuration {
    /// [`IsoDuration::before`] on Unix milliseconds, for the hot paths of rule
    /// evaluation: the calendar step is taken on the day alone, without the conversions
    /// of a full date-time. Saturates where `before` has no answer.
    pub fn before_ms(&self, at_ms: i64) -> i64 {
        let shifted = if self.months == 0 {
            at_ms
        } else {
            let (day, time) = (at_ms.div_euclid(DAY_MS), at_ms.rem_euclid(DAY_MS));
            match shift_day(day, self.months, false) {
                // A day the month lacks: the last millisecond of the month.
                Some((to, true)) => to * DAY_MS + DAY_MS - 1,
                Some((to, false)) => to * DAY_MS + time,
                None => return DateTime::<Utc>::MIN_UTC.timestamp_millis(),
            }
        };
        shifted.saturating_sub(self.fixed_ms())
    }

    /// [`IsoDuration::after`] on Unix milliseconds; see [`IsoDuration::before_ms`].
    pub fn after_ms(&self, at_ms: i64) -> i64 {
        let max = DateTime::<Utc>::MAX_UTC.timestamp_millis();
        let shifted = if self.months == 0 {
            at_ms
        } else {
            let (day, time) = (at_ms.div_euclid(DAY_MS), at_ms.rem_euclid(DAY_MS));
            match shift_day(day, self.months, true) {
                Some((to, _)) => to * DAY_MS + time,
                None => return max,
            }
        };
        shifted.saturating_add(self.fixed_ms()).min(max)
    }

    /// The days and seconds, which are of fixed length.
    fn fixed_ms(&self) -> i64 {
        let seconds = i64::try_from(self.seconds).unwrap_or(i64::MAX);
        (i64::from(self.days) * DAY_MS).saturating_add(seconds.saturating_mul(1000))
    }
}

/// A calendar step taken: `months` from `day`, forward or back, and where it led.
#[derive(Clone, Copy)]
struct Step {
    day: i64,
    months: u32,
    forward: bool,
    to: Option<(i64, bool)>,
}

/// Slots of the per-thread cache of steps (a power of two). Rules ask about the same
/// few hundred days (a year of history, a few frame lengths) over and over.
const STEP_SLOTS: usize = 4096;

thread_local! {
    static STEPS: std::cell::RefCell<Vec<Step>> = std::cell::RefCell::new(vec![
        Step { day: i64::MIN, months: 0, forward: false, to: None };
        STEP_SLOTS
    ]);
}

/// `day` (days since 1970-01-01) moved by `months` calendar months, and whether the
/// month lacked its day of the month (so the result is the month's last day). Cached:
/// chrono's step costs more than all the rest of evaluating a rule.
fn shift_day(day: i64, months: u32, forward: bool) -> Option<(i64, bool)> {
    let slot = (day as usize)
        .wrapping_mul(31)
        .wrapping_add(months as usize * 2 + usize::from(forward))
        % STEP_SLOTS;
    STEPS.with_borrow_mut(|steps| {
        let step = &mut steps[slot];
        if (step.day, step.months, step.forward) != (day, months, forward) {
            *step = Step {
                day,
                months,
                forward,
                to: calendar_step(day, months, forward),
            };
        }
        step.to
    })
}

fn calendar_step(day: i64, months: u32, forward: bool) -> Option<(i64, bool)> {
    let ce = i32::try_from(day + UNIX_EPOCH_CE_DAYS).ok()?;
    let date = NaiveDate::from_num_days_from_ce_opt(ce)?;
    let shifted = if forward {
        date.checked_add_months(Months::new(months))?
    } else {
        date.checked_sub_months(Months::new(months))?
    };
    let to = i64::from(shifted.num_days_from_ce()) - UNIX_EPOCH_CE_DAYS;
    Some((to, shifted.day() != date.day()))
}

impl IsoDuration {
    /// Plain words, as the Reporting API's `relative_duration` shows it: `P1W` is
    /// "1 week", `P14D` "2 weeks", `P1Y2M` "1 year 2 months", `PT12H` "12 hours".
    pub fn in_words(&self) -> String {
        let (years, months) = (self.months / 12, self.months % 12);
        let (weeks, days) = if self.days.is_multiple_of(7) {
            (self.days / 7, 0)
        } else {
            (0, self.days)
        };
        let (hours, rest) = (self.seconds / 3600, self.seconds % 3600);
        let (minutes, seconds) = (rest / 60, rest % 60);
        let parts = [
            (u64::from(years), "year"),
            (u64::from(months), "month"),
            (u64::from(weeks), "week"),
            (u64::from(days), "day"),
            (hours, "hour"),
            (minutes, "minute"),
            (seconds, "second"),
        ];
        let words: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, unit)| format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }))
            .collect();
        if words.is_empty() {
            "0 days".to_owned()
        } else {
            words.join(" ")
        }
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P")?;
        if self.months > 0 {
            write!(f, "{}M", self.months)?;
        }
        if self.days > 0 {
            write!(f, "{}D", self.days)?;
        }
        if self.seconds > 0 {
            write!(f, "T{}S", self.seconds)?;
        }
        if self.months == 0 && self.days == 0 && self.seconds == 0 {
            f.write_str("0D")?;
        }
        Ok(())
    }
}

/// The last millisecond of `at`'s day.
fn end_of_day(at: DateTime<Utc>) -> DateTime<Utc> {
    at.date_naive()
        .and_hms_milli_opt(23, 59, 59, 999)
        .map_or(at, |end| end.and_utc())
}

fn add(a: u32, b: u32) -> Result<u32, DurationError> {
    a.checked_add(b)
        .ok_or_else(|| DurationError("too long".to_owned()))
}

fn mul(a: u32, b: u32) -> Result<u32, DurationError> {
    a.checked_mul(b)
        .ok_or_else(|| DurationError("too long".to_owned()))
}

/// Splits `3M4D` into `[(3, 'M'), (4, 'D')]`; `None` when malformed.
fn components(text: &str) -> Option<Vec<(u32, char)>> {
    let mut out = Vec::new();
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
        } else {
            if number.is_empty() {
                return None;
            }
            out.push((number.parse().ok()?, c));
            number.clear();
        }
    }
    number.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Timelike};
    use proptest::prelude::*;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(IsoDuration::parse("P3M").unwrap().months, 3);
        assert_eq!(IsoDuration::parse("P1Y2M").unwrap().months, 14);
        assert_eq!(IsoDuration::parse("P2W3D").unwrap().days, 17);
        assert_eq!(IsoDuration::parse("PT12H30M").unwrap().seconds, 45_000);
        let full = IsoDuration::parse("P1DT1S").unwrap();
        assert_eq!((full.days, full.seconds), (1, 1));
        for bad in [
            "", "P", "3M", "PT", "P3", "PM", "P-1D", "P1.5D", "P1X", "P1DT",
        ] {
            assert!(IsoDuration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subtracts_calendar_months() {
        let three_months = IsoDuration::parse("P3M").unwrap();
        let end_of_february = Utc
            .with_ymd_and_hms(2026, 2, 28, 23, 59, 59)
            .unwrap()
            .with_nanosecond(999_000_000)
            .unwrap();
        assert_eq!(three_months.before(at(2026, 5, 31)), end_of_february);
        assert_eq!(three_months.before(at(2026, 5, 28)), at(2026, 2, 28));
        assert_eq!(three_months.before(at(2026, 11, 21)), at(2026, 8, 21));
        let thirty_days = IsoDuration::parse("P30D").unwrap();
        assert_eq!(thirty_days.before(at(2026, 3, 1)), at(2026, 1, 30));
        assert_eq!(thirty_days.after(at(2026, 1, 30)), at(2026, 3, 1));
    }

    #[test]
    fn adding_beyond_the_calendar_saturates_instead_of_panicking() {
        let huge = IsoDuration::parse("PT4294967295H").unwrap();
        assert_eq!(huge.checked_after(at(2026, 1, 1)), None);
        assert_eq!(huge.after(at(2026, 1, 1)), DateTime::<Utc>::MAX_UTC);
        let months_and_days = IsoDuration {
            months: u32::MAX,
            days: 1,
            seconds: 0,
        };
        assert_eq!(
            months_and_days.after(at(2026, 1, 1)),
            DateTime::<Utc>::MAX_UTC
        );
        let month = IsoDuration::parse("P1M").unwrap();
        assert_eq!(month.checked_after(at(2026, 1, 31)), Some(at(2026, 2, 28)));
    }

    proptest! {
        /// A later instant never gives an earlier result, at month ends too.
        #[test]
        fn before_never_goes_back(
            months in 0u32..25,
            days in 0u32..40,
            seconds in 0u64..200_000,
            at in 0i64..(4 * 366 * 86_400_000),
            step in 0i64..(3 * 86_400_000),
        ) {
            let period = IsoDuration { months, days, seconds };
            let instant = |ms: i64| Utc.timestamp_millis_opt(ms).unwrap();
            let zero = period.months == 0 && period.days == 0 && period.seconds == 0;
            prop_assert!(period.before(instant(at)) <= period.before(instant(at + step)));
            prop_assert!(zero || period.before(instant(at)) < instant(at));
        }
    }

    proptest! {
        /// The millisecond forms agree with the date-time forms.
        #[test]
        fn millisecond_forms_agree(
            months in prop_oneof![Just(0u32), 1u32..40],
            days in prop_oneof![Just(0u32), 1u32..40],
            seconds in prop_oneof![Just(0u64), 1u64..200_000],
            // 1900 to 2100, with month ends and midnights likely.
            day in -25_567i64..47_482,
            time in prop_oneof![Just(0i64), Just(86_399_999), 0i64..86_400_000],
        ) {
            let period = IsoDuration { months, days, seconds };
            let at = day * DAY_MS + time;
            let instant = Utc.timestamp_millis_opt(at).unwrap();
            prop_assert_eq!(period.before_ms(at), period.before(instant).timestamp_millis());
            prop_assert_eq!(period.after_ms(at), period.after(instant).timestamp_millis());
        }
    }

    #[test]
    fn millisecond_forms_at_month_ends() {
        let three_months = IsoDuration::parse("P3M").unwrap();
        let may_31 = at(2026, 5, 31).timestamp_millis();
        let end_of_february = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(
            three_months.before_ms(may_31),
            end_of_february.timestamp_millis() - 1
        );
        let month = IsoDuration::parse("P1M").unwrap();
        let jan_31 = at(2026, 1, 31).timestamp_millis();
        assert_eq!(month.after_ms(jan_31), at(2026, 2, 28).timestamp_millis());
        assert_eq!(
            IsoDuration::parse("PT4294967295H")
                .unwrap()
                .after_ms(jan_31),
            DateTime::<Utc>::MAX_UTC.timestamp_millis()
        );
    }

    #[test]
    fn durations_in_words() {
        let words = |text: &str| IsoDuration::parse(text).unwrap().in_words();
        assert_eq!(words("P1W"), "1 week");
        assert_eq!(words("P14D"), "2 weeks");
        assert_eq!(words("P10D"), "10 days");
        assert_eq!(words("P1M"), "1 month");
        assert_eq!(words("P1Y2M"), "1 year 2 months");
        assert_eq!(words("PT12H30M"), "12 hours 30 minutes");
        assert_eq!(words("P0D"), "0 days");
    }
}
