//! Risk scores: computed from the events that still weigh (see `coachloop_core::risk`
//! for the formula), and a daily history per person and per account.

use crate::scan::each_risk;
use crate::users::require_user;
use crate::{Result, Store};
use coachloop_core::event::{DecayMode, Risk};
use coachloop_core::ids::{AccountId, GroupId, UserId};
use coachloop_core::risk::{account_score, contribution, person_score, score_from_sum};
use coachloop_core::time::{date_of_ms, format_date};
use sqlx::AnyConnection;
use std::collections::HashMap;
use tracing::instrument;

/// Scores of one account at one instant.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    pub account: f64,
    /// Active people by id (people with nothing that weighs score 0).
    pub people: HashMap<UserId, f64>,
}

/// One day of a score's history.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyScore {
    pub day: String,
    pub score: f64,
}

type EventRiskTuple = (i64, i64, i64, Option<i64>, i64);

fn risk_of(level: i64, decay: Option<i64>, expire_ms: i64) -> Risk {
    Risk {
        level,
        decay_mode: decay.and_then(DecayMode::from_i64),
        expire_date: date_of_ms(expire_ms),
    }
}

/// Scores every person of an account at `now` from the events whose risk has not expired.
async fn compute(conn: &mut AnyConnection, account: i64, now: i64) -> Result<Scores> {
    let active: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM users WHERE account_id = $1 AND status = 'active'")
            .bind(account)
            .fetch_all(&mut *conn)
            .await?;
    // A person's score depends only on the sum of their events' contributions: keep one
    // sum a person, not every event (10 M events would be hundreds of MiB).
    let mut sums: HashMap<i64, f64> = HashMap::new();
    each_risk(conn, account, now, |row| {
        let risk = risk_of(row.level, row.decay_mode, row.expire_ms);
        *sums.entry(row.user).or_default() += contribution(row.occurred_ms, &risk, now);
    })
    .await?;
    let people: HashMap<UserId, f64> = active
        .into_iter()
        .map(|user| {
            (
                UserId(user),
                score_from_sum(sums.get(&user).copied().unwrap_or(0.0)),
            )
        })
        .collect();
    let all: Vec<f64> = people.values().copied().collect();
    Ok(Scores {
        account: account_score(&all),
        people,
    })
}

/// The score of each active group of an account: the mean of its active members' scores.
async fn group_scores(
    pool: &sqlx::AnyPool,
    account: i64,
    scores: &Scores,
) -> Result<Vec<(i64, f64)>> {
    let members: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT m.group_id, m.user_id FROM group_members m JOIN groups g ON g.id = m.group_id \
         WHERE g.account_id = $1 AND g.status = 'active' ORDER BY m.group_id",
    )
    .bind(account)
    .fetch_all(pool)
    .await?;
    let groups: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM groups WHERE account_id = $1 AND status = 'active'")
            .bind(account)
            .fetch_all(pool)
            .await?;
    let mut by_group: HashMap<i64, Vec<f64>> =
        groups.into_iter().map(|g| (g, Vec::new())).collect();
    for (group, user) in members {
        if let (Some(list), Some(score)) =
            (by_group.get_mut(&group), scores.people.get(&UserId(user)))
        {
            list.push(*score);
        }
    }
    let mut out: Vec<(i64, f64)> = by_group
        .into_iter()
        .map(|(group, list)| (group, account_score(&list)))
        .collect();
    out.sort_by_key(|(group, _)| *group);
    Ok(out)
}

impl Store {
    /// The current scores of an account and its active people.
    #[instrument(skip_all)]
    pub async fn risk_scores(&self, account: AccountId) -> Result<Scores> {
        let mut conn = self.read.acquire().await?;
        compute(&mut conn, account.0, self.now_ms()).await
    }

    /// The current score of each active group: the mean of its active members' scores.
    pub async fn group_scores(
        &self,
        account: AccountId,
        scores: &Scores,
    ) -> Result<HashMap<GroupId, f64>> {
        Ok(group_scores(&self.read, account.0, scores)
            .await?
            .into_iter()
            .map(|(group, score)| (GroupId(group), score))
            .collect())
    }

    /// One person's current score.
    pub async fn user_risk_score(&self, account: AccountId, user: UserId) -> Result<f64> {
        let now = self.now_ms();
        let mut conn = self.read.acquire().await?;
        require_user(&mut conn, account, user).await?;
        let rows: Vec<EventRiskTuple> = sqlx::query_as(
            "SELECT user_id, occurred_at, risk_level, risk_decay_mode, risk_expire_date \
             FROM events WHERE user_id = $1 AND risk_level IS NOT NULL AND risk_expire_date > $2",
        )
        .bind(user.0)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        let events: Vec<(i64, Risk)> = rows
            .into_iter()
            .map(|(_, at, level, decay, expire)| (at, risk_of(level, decay, expire)))
            .collect();
        Ok(person_score(events.iter().map(|(at, r)| (*at, r)), now))
    }

    /// Records today's score of every account and active person (replacing an earlier
    /// record of the same day). Returns how many scores it wrote.
    #[instrument(skip_all)]
    pub async fn record_daily_risk(&self) -> Result<usize> {
        let now = self.now_ms();
        let day = format_date(date_of_ms(now));
        let accounts: Vec<i64> = sqlx::query_scalar("SELECT id FROM accounts ORDER BY id")
            .fetch_all(&self.read)
            .await?;
        let mut written = 0;
        for account in accounts {
            let scores = {
                let mut conn = self.read.acquire().await?;
                compute(&mut conn, account, now).await?
            };
            let groups = group_scores(&self.read, account, &scores).await?;
            let mut tx = self.begin_write(&crate::Locks::none()).await?;
            let rows: Vec<(i64, f64)> = std::iter::once((0, scores.account))
                .chain(
                    scores
                        .people
                        .into_iter()
                        .map(|(user, score)| (user.0, score)),
                )
                .collect();
            for chunk in groups.chunks(500) {
                let mut insert = crate::sql::QueryBuilder::with(
                    self.backend,
                    "INSERT INTO group_risk_scores (account_id, group_id, day, score) ",
                );
                insert.push_values(chunk, |mut row, (group, score)| {
                    row.push_bind(account)
                        .push_bind(*group)
                        .push_bind(day.as_str())
                        .push_bind(*score);
                });
                insert.push(
                    " ON CONFLICT (account_id, group_id, day) DO UPDATE SET score = excluded.score",
                );
                insert.build().execute(&mut *tx).await?;
            }
            written += groups.len();
            for chunk in rows.chunks(500) {
                let mut insert = crate::sql::QueryBuilder::with(
                    self.backend,
                    "INSERT INTO risk_scores (account_id, user_id, day, score) ",
                );
                insert.push_values(chunk, |mut row, (user, score)| {
                    row.push_bind(account)
                        .push_bind(*user)
                        .push_bind(day.as_str())
                        .push_bind(*score);
                });
                insert.push(
                    " ON CONFLICT (account_id, user_id, day) DO UPDATE SET score = excluded.score",
                );
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            written += rows.len();
        }
        Ok(written)
    }

    /// The daily history of an account's score (`user` None) or a person's, newest first.
    pub async fn risk_history(
        &self,
        account: AccountId,
        user: Option<UserId>,
        limit: i64,
    ) -> Result<Vec<DailyScore>> {
        let rows: Vec<(String, f64)> = sqlx::query_as(
            "SELECT day, score FROM risk_scores WHERE account_id = $1 AND user_id = $2 \
             ORDER BY day DESC LIMIT $3",
        )
        .bind(account.0)
        .bind(user.map_or(0, |u| u.0))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(day, score)| DailyScore { day, score })
            .collect())
    }
}
