//! Risk scores of people and accounts.
//!
//! - An event with a risk level contributes `level × factor` at the time of scoring, where
//!   `factor` is the share of the level that still counts: with decay mode 0 (the
//!   default) it falls linearly from 1 at `occurred_date` to 0 at `risk_expire_date`;
//!   with decay mode 1 it stays 1 until `risk_expire_date`; from `risk_expire_date` on it
//!   is 0 in both modes; an event that has not occurred yet counts whole. Events without
//!   a risk level contribute nothing.
//! - A person's sum `s` is the sum of their events' contributions (levels run from −10
//!   to 10, so `s` can be negative). Their score is `100 × (1 − e^(−max(s, 0) / 20))`,
//!   rounded to 3 decimals and at most 99.999: one level-10 event scores 39.347, two score
//!   63.212, a sum of 0 or less scores 0, and no sum reaches 100.
//! - An account's score is the mean of its active people's scores (0 when it has none),
//!   rounded to 3 decimals.

use crate::event::Risk;

/// The sum at which a score reaches 1 − 1/e of the way to 100.
const SCALE: f64 = 20.0;

/// The highest score: the curve only approaches 100, and rounding must not reach it.
const MAX_SCORE: f64 = 99.999;

/// A person's score at `now_ms` from their events' `(occurred_ms, risk)`.
pub fn person_score<'a>(events: impl IntoIterator<Item = (i64, &'a Risk)>, now_ms: i64) -> f64 {
    let sum = events
        .into_iter()
        .map(|(occurred_ms, risk)| contribution(occurred_ms, risk, now_ms))
        .sum();
    score_from_sum(sum)
}

/// What one event adds to its person's sum at `now_ms`.
pub fn contribution(occurred_ms: i64, risk: &Risk, now_ms: i64) -> f64 {
    risk.level as f64 * risk.factor(occurred_ms, now_ms)
}

/// The score of a person whose contributions sum to `sum`.
pub fn score_from_sum(sum: f64) -> f64 {
    // `max` also turns a NaN sum into 0.
    let score = 100.0 * (1.0 - (-sum.max(0.0) / SCALE).exp());
    round3(score).min(MAX_SCORE)
}

/// The score of an account from its active people's scores.
pub fn account_score(scores: &[f64]) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    round3(scores.iter().sum::<f64>() / scores.len() as f64)
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DecayMode;
    use chrono::NaiveDate;

    const DAY: i64 = 86_400_000;

    /// 2026-11-01T00:00Z.
    const OCCURRED: i64 = 1_793_491_200_000;

    fn risk(level: i64, decay_mode: Option<DecayMode>) -> Risk {
        Risk {
            level,
            decay_mode,
            // Ten days after OCCURRED.
            expire_date: NaiveDate::from_ymd_opt(2026, 11, 11).unwrap(),
        }
    }

    #[test]
    fn the_curve_from_the_module_doc() {
        let ten = risk(10, None);
        assert_eq!(person_score([(OCCURRED, &ten)], OCCURRED), 39.347);
        assert_eq!(
            person_score([(OCCURRED, &ten), (OCCURRED, &ten)], OCCURRED),
            63.212
        );
        assert_eq!(person_score([], OCCURRED), 0.0);
        assert_eq!(score_from_sum(0.0), 0.0);
        assert_eq!(score_from_sum(-5.0), 0.0);
        assert_eq!(score_from_sum(f64::NAN), 0.0);
        assert_eq!(score_from_sum(150.0), 99.945);
        assert_eq!(score_from_sum(1000.0), 99.999);
        assert_eq!(score_from_sum(f64::INFINITY), 99.999);
    }

    #[test]
    fn decay_modes_and_expiry() {
        let linear = risk(10, None);
        let explicit = risk(10, Some(DecayMode::Linear));
        let constant = risk(10, Some(DecayMode::Constant));
        let halfway = OCCURRED + 5 * DAY;
        // Half of level 10 is left: 100 × (1 − e^(−5/20)).
        assert_eq!(person_score([(OCCURRED, &linear)], halfway), 22.12);
        assert_eq!(person_score([(OCCURRED, &explicit)], halfway), 22.12);
        assert_eq!(person_score([(OCCURRED, &constant)], halfway), 39.347);
        let expiry = OCCURRED + 10 * DAY;
        assert_eq!(person_score([(OCCURRED, &constant)], expiry - 1), 39.347);
        assert_eq!(person_score([(OCCURRED, &constant)], expiry), 0.0);
        assert_eq!(person_score([(OCCURRED, &linear)], expiry), 0.0);
        // Not yet occurred: whole.
        assert_eq!(person_score([(OCCURRED + DAY, &linear)], OCCURRED), 39.347);
    }

    #[test]
    fn negative_levels_offset_but_never_go_below_zero() {
        let bad = risk(10, Some(DecayMode::Constant));
        let good = risk(-4, Some(DecayMode::Constant));
        let now = OCCURRED + DAY;
        // 10 − 4 = 6: 100 × (1 − e^(−0.3)).
        assert_eq!(
            person_score([(OCCURRED, &bad), (OCCURRED, &good)], now),
            25.918
        );
        assert_eq!(person_score([(OCCURRED, &good)], now), 0.0);
        assert_eq!(
            person_score(
                [
                    (OCCURRED, &bad),
                    (OCCURRED, &good),
                    (OCCURRED, &good),
                    (OCCURRED, &good)
                ],
                now
            ),
            0.0
        );
    }

    #[test]
    fn accounts_average_their_people() {
        assert_eq!(account_score(&[]), 0.0);
        assert_eq!(account_score(&[39.347, 0.0]), 19.674);
        assert_eq!(account_score(&[39.347, 63.212, 0.0]), 34.186);
    }
}
