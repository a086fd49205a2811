//! Training's timed work: campaigns start and end at their instants, open enrolments
//! fall past due at theirs, and people's compliance changes at its own.

use crate::campaigns::notice_settings;
use crate::campaigns::start;
use crate::fact_change::FactChange;
use crate::locks::Locks;
use crate::notices::{self, EnrolmentNotice, Notices};
use crate::{Result, Store};
use coachloop_core::ids::AccountId;
use coachloop_core::notice::Notice;
use coachloop_core::time::format_ms;
use serde_json::{Value, json};
use std::collections::HashMap;
use tracing::instrument;

impl Store {
    /// Does what is due: starts campaigns whose start has come, completes those whose end
    /// date has passed, and marks open enrolments past due at their due instant. Returns
    /// how many rows it changed.
    #[instrument(skip_all)]
    pub async fn run_due_training(&self) -> Result<usize> {
        // A campaign starts under its account's lock, so its enrolments and a join's on
        // another node never meet; should another node start it first, `start` finds it
        // started and does nothing.
        let starting: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT id, account_id FROM campaigns WHERE status = 'Created' AND start_at <= $1",
        )
        .bind(self.now_ms())
        .fetch_all(&self.read)
        .await?;
        let mut changed = 0;
        for (campaign, account) in starting {
            let mut change = self.change_facts(AccountId(account)).await?;
            let enrolled = start(&mut change.tx, campaign, change.now).await?;
            let made = enrolled.as_ref().map_or(0, |e| e.made);
            if let Some(enrolled) = enrolled {
                changed += enrolled.made + 1;
                change.wake_enrolled(&enrolled);
                change.wake_jobs();
            }
            change.commit(&self.wakes).await?;
            self.analyze_after("enrollments", made).await;
        }
        // What follows changes no facts, and each row changes once whichever node gets
        // to it (the updates test the status they change). In the order of changes of
        // facts all the same, the fair queue the event writer waits in too: met at
        // SQLite's lock instead, its busy handler sleeps and retries (and can lose, for
        // seconds, to a writer that commits back to back).
        let mut change = self.change_facts_in(Locks::none()).await?;
        let FactChange { tx, now, .. } = &mut change;
        let now = *now;
        let past_due: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(
            "UPDATE enrollments SET status = 'Past Due', past_due_at = due_at \
             WHERE due_at IS NOT NULL AND due_at <= $1 \
             AND status IN ('Not Started', 'In Progress') \
             RETURNING id, account_id, campaign_id, user_id, due_at",
        )
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
        changed += past_due.len();
        let settings = notice_settings(tx, past_due.iter().map(|row| row.2)).await?;
        // Per account: the facts for webhooks, and the notices.
        type Told<'a> = (Vec<(String, Value)>, Vec<EnrolmentNotice<'a>>);
        let mut by_account: HashMap<i64, Told> = HashMap::new();
        let mut outbox = Notices::default();
        for (id, account, campaign, user, due) in &past_due {
            let (facts, queued) = by_account.entry(*account).or_default();
            facts.push((
                format!("enrollment:{id}"),
                json!({"enrollment_id": id, "campaign_id": campaign, "user_id": user,
                       "status": "Past Due", "due_date": format_ms(*due)}),
            ));
            let sends = &settings[campaign];
            for notice in [Notice::PastDue, Notice::PastDueManager] {
                if sends.sends(notice) {
                    queued.push(EnrolmentNotice {
                        campaign: *campaign,
                        notice,
                        enrollment: *id,
                        offset: None,
                        run_at: now,
                    });
                }
            }
        }
        for (account, (facts, queued)) in by_account {
            outbox.notices(tx, account, &queued).await?;
            outbox
                .event(tx, account, notices::ENROLLMENT_PAST_DUE, &facts, now)
                .await?;
        }
        outbox.send(tx, now).await?;
        changed += sqlx::query(
            "UPDATE campaigns SET status = 'Completed', updated_at = $1 \
             WHERE status = 'In Progress' AND end_at IS NOT NULL AND end_at <= $1",
        )
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected() as usize;
        if changed > 0 {
            change.wake_jobs();
        }
        change.commit(&self.wakes).await?;
        // People whose compliance changes by itself now (a completion expiring, a grace
        // or an exception ending).
        changed += self.run_due_compliance().await?;
        Ok(changed)
    }

    /// The next instant [`Store::run_due_training`] has something to do, if any.
    pub async fn next_due_training(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(at) FROM ( \
             SELECT MIN(due_at) AS at FROM enrollments WHERE due_at IS NOT NULL \
             AND status IN ('Not Started', 'In Progress') \
             UNION ALL SELECT MIN(start_at) FROM campaigns WHERE status = 'Created' \
             UNION ALL SELECT MIN(end_at) FROM campaigns WHERE status = 'In Progress' \
             UNION ALL SELECT MIN(changes_at) FROM compliance_people) AS due",
        )
        .fetch_one(&self.read)
        .await?)
    }
}
