//! The reads behind the Reporting API (`/v1`): every list in key order, read from a key
//! onwards (`key > after`), so a deep page costs what the first one does. Each list is a
//! [`Listing`]; [`Store::listing_key_at`] finds where a page starts when a client jumps
//! to it without having read the page before.

use crate::campaigns::{CAMPAIGN_COLUMNS, Campaign, fill_campaign};
use crate::content::{COLUMNS as CONTENT_COLUMNS, ContentRow, read_rows as read_content_rows};
use crate::groups::{GROUP_COLUMNS, GROUP_FROM, Group};
use crate::risk::DailyScore;
use crate::sql::QueryBuilder;
use crate::users::{COLUMNS as USER_COLUMNS, User};
use crate::{Result, Store, StoreError};
use coachloop_core::ids::{AccountId, CampaignId, ContentId, EnrollmentId, GroupId, UserId};
use coachloop_core::user::UserStatus;
use sqlx::FromRow;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::instrument;

/// A list the Reporting API serves, with its filters.
#[derive(Debug, Clone, PartialEq)]
pub enum Listing {
    Users {
        status: Option<UserStatus>,
        group: Option<GroupId>,
    },
    Groups {
        status: Option<String>,
    },
    Members {
        group: GroupId,
    },
    /// `module` or `policy`.
    Content {
        kind: &'static str,
    },
    Campaigns,
    Enrollments(EnrollmentQuery),
}

/// The filters of the enrolment list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnrollmentQuery {
    pub user: Option<UserId>,
    pub campaign: Option<CampaignId>,
    pub content: Option<ContentId>,
    pub exclude_archived_users: bool,
}

impl Listing {
    /// The column the list is ordered and resumed by.
    fn key(&self) -> &'static str {
        match self {
            Listing::Users { group: Some(_), .. } | Listing::Members { .. } => "m.user_id",
            Listing::Users { .. } => "u.id",
            Listing::Groups { .. } => "g.id",
            Listing::Content { .. } => "id",
            Listing::Campaigns => "c.id",
            Listing::Enrollments(_) => "e.id",
        }
    }

    /// The tables, narrowest first, and the filters (after `WHERE`).
    fn push_from_where(&self, query: &mut QueryBuilder<'_>, account: AccountId) {
        match self {
            Listing::Users { status, group } => {
                match group {
                    Some(group) => query
                        .push(" FROM group_members m JOIN users u ON u.id = m.user_id WHERE m.group_id = ")
                        .push_bind(group.0)
                        .push(" AND u.account_id = "),
                    None => query.push(" FROM users u WHERE u.account_id = "),
                };
                query.push_bind(account.0);
                if let Some(status) = status {
                    query.push(" AND u.status = ").push_bind(status.as_str());
                }
            }
            Listing::Members { group } => {
                query
                    .push(" FROM group_members m JOIN users u ON u.id = m.user_id WHERE m.group_id = ")
                    .push_bind(group.0)
                    .push(" AND m.account_id = ")
                    .push_bind(account.0);
            }
            Listing::Groups { status } => {
                query
                    .push(format!(" FROM {GROUP_FROM} WHERE g.account_id = "))
                    .push_bind(account.0);
                if let Some(status) = status {
                    query.push(" AND g.status = ").push_bind(status.clone());
                }
            }
            Listing::Content { kind } => {
                query
                    .push(" FROM content WHERE account_id = ")
                    .push_bind(account.0)
                    .push(" AND kind = ")
                    .push_bind(*kind);
            }
            Listing::Campaigns => {
                query
                    .push(" FROM campaigns c WHERE c.account_id = ")
                    .push_bind(account.0);
            }
            Listing::Enrollments(filter) => {
                query.push(" FROM enrollments e JOIN users p ON p.id = e.user_id");
                if filter.exclude_archived_users {
                    query.push(" AND p.status = 'active'");
                }
                query.push(" WHERE e.account_id = ").push_bind(account.0);
                if let Some(user) = filter.user {
                    query.push(" AND e.user_id = ").push_bind(user.0);
                }
                if let Some(campaign) = filter.campaign {
                    query.push(" AND e.campaign_id = ").push_bind(campaign.0);
                }
                if let Some(content) = filter.content {
                    query.push(" AND e.content_id = ").push_bind(content.0);
                }
            }
        }
    }

    fn push_after(&self, query: &mut QueryBuilder<'_>, after: i64, limit: i64) {
        let key = self.key();
        query
            .push(format!(" AND {key} > "))
            .push_bind(after)
            .push(format!(" ORDER BY {key} LIMIT "))
            .push_bind(limit);
    }
}

/// An enrolment as the Reporting API shows it.
#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct ReportEnrollment {
    #[sqlx(try_from = "i64")]
    pub id: EnrollmentId,
    #[sqlx(try_from = "i64")]
    pub campaign_id: CampaignId,
    #[sqlx(try_from = "i64")]
    pub content_id: ContentId,
    pub status: String,
    pub enrolled_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub time_spent: i64,
    #[sqlx(try_from = "crate::db::Flag")]
    pub policy_acknowledged: bool,
    #[sqlx(try_from = "i64")]
    pub user_id: UserId,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub employee_number: Option<String>,
}

/// What enrolments point at, read once per request rather than joined into every row.
#[derive(Debug, Clone, Default)]
pub struct EnrollmentNames {
    /// Campaign id → name.
    pub campaigns: HashMap<CampaignId, Arc<str>>,
    /// Content id → (is a policy, title).
    pub content: HashMap<ContentId, (bool, Arc<str>)>,
}

impl Store {
    /// The key after which row `offset` (0-based) of a list comes, i.e. the last key of
    /// the rows before it: `Some(0)` at the start, `None` when the list is shorter.
    #[instrument(skip_all)]
    pub async fn listing_key_at(
        &self,
        account: AccountId,
        listing: &Listing,
        offset: i64,
    ) -> Result<Option<i64>> {
        if offset <= 0 {
            return Ok(Some(0));
        }
        let key = listing.key();
        let mut query = QueryBuilder::new(format!("SELECT {key}"));
        listing.push_from_where(&mut query, account);
        query
            .push(format!(" ORDER BY {key} LIMIT 1 OFFSET "))
            .push_bind(offset - 1);
        Ok(query
            .build_query_scalar()
            .fetch_optional(&self.read)
            .await?)
    }

    /// People after `after` in id order, with their aliases.
    #[instrument(skip_all)]
    pub async fn report_users(
        &self,
        account: AccountId,
        listing: &Listing,
        after: i64,
        limit: i64,
    ) -> Result<Vec<User>> {
        debug_assert!(matches!(
            listing,
            Listing::Users { .. } | Listing::Members { .. }
        ));
        let columns = USER_COLUMNS.replace(", ", ", u.");
        let mut query = QueryBuilder::new(format!("SELECT u.{columns}"));
        listing.push_from_where(&mut query, account);
        listing.push_after(&mut query, after, limit);
        let mut users: Vec<User> = query.build_query_as().fetch_all(&self.read).await?;
        self.load_aliases(&mut users).await?;
        Ok(users)
    }

    /// The groups each of `users` belongs to now, in group id order.
    pub async fn group_ids_of(&self, users: &[UserId]) -> Result<HashMap<UserId, Vec<GroupId>>> {
        let mut groups: HashMap<UserId, Vec<GroupId>> = HashMap::new();
        for chunk in users.chunks(500) {
            let mut query =
                QueryBuilder::new("SELECT user_id, group_id FROM group_members WHERE user_id IN (");
            let mut ids = query.separated(", ");
            for user in chunk {
                ids.push_bind(user.0);
            }
            query.push(") ORDER BY user_id, group_id");
            let rows: Vec<(i64, i64)> = query.build_query_as().fetch_all(&self.read).await?;
            for (user, group) in rows {
                groups.entry(UserId(user)).or_default().push(GroupId(group));
            }
        }
        Ok(groups)
    }

    /// Groups after `after` in id order.
    pub async fn report_groups(
        &self,
        account: AccountId,
        listing: &Listing,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Group>> {
        let mut query = QueryBuilder::new(format!("SELECT {GROUP_COLUMNS}"));
        listing.push_from_where(&mut query, account);
        listing.push_after(&mut query, after, limit);
        Ok(query.build_query_as().fetch_all(&self.read).await?)
    }

    /// Groups by id, for `expand=group` (ids of other accounts are left out).
    /// The id, name and type of each of these groups of the account, by name: what a
    /// list of someone's groups shows, without counting each group's members.
    pub async fn group_names(
        &self,
        account: AccountId,
        ids: &[GroupId],
    ) -> Result<Vec<(GroupId, String, String)>> {
        let mut groups = Vec::new();
        for chunk in ids.chunks(500) {
            let mut query =
                QueryBuilder::new("SELECT id, name, group_type FROM groups WHERE account_id = ");
            query.push_bind(account.0).push(" AND id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.0);
            }
            query.push(")");
            let rows: Vec<(i64, String, String)> =
                query.build_query_as().fetch_all(&self.read).await?;
            groups.extend(
                rows.into_iter()
                    .map(|(id, name, kind)| (GroupId(id), name, kind)),
            );
        }
        groups.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.0.cmp(&b.0.0)));
        Ok(groups)
    }

    pub async fn groups_by_id(&self, account: AccountId, ids: &[GroupId]) -> Result<Vec<Group>> {
        let mut groups = Vec::new();
        for chunk in ids.chunks(500) {
            let mut query = QueryBuilder::new(format!(
                "SELECT {GROUP_COLUMNS} FROM {GROUP_FROM} WHERE g.account_id = "
            ));
            query.push_bind(account.0).push(" AND g.id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.0);
            }
            query.push(")");
            groups.extend(
                query
                    .build_query_as::<Group>()
                    .fetch_all(&self.read)
                    .await?,
            );
        }
        Ok(groups)
    }

    /// Modules or policies after `after` in id order.
    pub async fn report_content(
        &self,
        account: AccountId,
        listing: &Listing,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ContentRow>> {
        let mut query = QueryBuilder::new(format!("SELECT {CONTENT_COLUMNS}"));
        listing.push_from_where(&mut query, account);
        listing.push_after(&mut query, after, limit);
        read_content_rows(query.build_query_as().fetch_all(&self.read).await?)
    }

    /// Content by id, for the campaigns that list it.
    pub async fn content_by_id(
        &self,
        account: AccountId,
        ids: &[ContentId],
    ) -> Result<Vec<ContentRow>> {
        let mut query = QueryBuilder::new(format!(
            "SELECT {CONTENT_COLUMNS} FROM content WHERE account_id = "
        ));
        query.push_bind(account.0).push(" AND id IN (");
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(id.0);
        }
        query.push(")");
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        read_content_rows(query.build_query_as().fetch_all(&self.read).await?)
    }

    /// Campaigns after `after` in id order; `counts` false skips counting enrolments
    /// (`exclude_percentages`), which costs a pass over each campaign's enrolments.
    pub async fn report_campaigns(
        &self,
        account: AccountId,
        after: i64,
        limit: i64,
        counts: bool,
    ) -> Result<Vec<Campaign>> {
        let listing = Listing::Campaigns;
        let columns = if counts {
            CAMPAIGN_COLUMNS.to_owned()
        } else {
            CAMPAIGN_COLUMNS
                .split_once(", (SELECT COUNT(*)")
                .map_or(CAMPAIGN_COLUMNS.to_owned(), |(head, _)| {
                    format!("{head}, 0 AS enrolled, 0 AS finished")
                })
        };
        let mut query = QueryBuilder::new(format!("SELECT {columns}"));
        listing.push_from_where(&mut query, account);
        listing.push_after(&mut query, after, limit);
        let mut conn = self.read.acquire().await?;
        let mut campaigns: Vec<Campaign> = query.build_query_as().fetch_all(&mut *conn).await?;
        for campaign in &mut campaigns {
            fill_campaign(&mut conn, campaign).await?;
        }
        Ok(campaigns)
    }

    /// Enrolments after `after` in id order.
    #[instrument(skip_all)]
    pub async fn report_enrollments(
        &self,
        account: AccountId,
        listing: &Listing,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ReportEnrollment>> {
        if !matches!(listing, Listing::Enrollments(_)) {
            return Err(StoreError::invalid("listing", "not an enrolment list"));
        }
        // The planner walks the enrolments by id (or the filter's index) and reads each
        // person by primary key; a LIMITed subquery would be materialized and sorted.
        let mut query = QueryBuilder::new(
            "SELECT e.id, e.campaign_id, e.content_id, e.status, e.enrolled_at, e.started_at, \
             e.completed_at, e.time_spent, e.policy_acknowledged, e.user_id, p.email, \
             p.first_name, p.last_name, p.employee_number",
        );
        listing.push_from_where(&mut query, account);
        listing.push_after(&mut query, after, limit);
        Ok(query.build_query_as().fetch_all(&self.read).await?)
    }

    /// One enrolment as the Reporting API shows it.
    pub async fn report_enrollment(
        &self,
        account: AccountId,
        id: EnrollmentId,
    ) -> Result<ReportEnrollment> {
        let listing = Listing::Enrollments(EnrollmentQuery::default());
        let rows = self
            .report_enrollments(account, &listing, id.0.saturating_sub(1), 1)
            .await?;
        rows.into_iter()
            .find(|e| e.id == id)
            .ok_or(StoreError::NotFound("enrollment"))
    }

    /// The names of an account's campaigns and content.
    pub async fn enrollment_names(&self, account: AccountId) -> Result<EnrollmentNames> {
        let campaigns: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM campaigns WHERE account_id = $1")
                .bind(account.0)
                .fetch_all(&self.read)
                .await?;
        let content: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT id, kind, title FROM content WHERE account_id = $1")
                .bind(account.0)
                .fetch_all(&self.read)
                .await?;
        Ok(EnrollmentNames {
            campaigns: campaigns
                .into_iter()
                .map(|(id, name)| (CampaignId(id), name.into()))
                .collect(),
            content: content
                .into_iter()
                .map(|(id, kind, title)| (ContentId(id), (kind == "policy", title.into())))
                .collect(),
        })
    }

    /// The daily scores of a group (from `since`, `YYYY-MM-DD`), oldest first.
    pub async fn group_risk_history(
        &self,
        account: AccountId,
        group: GroupId,
        since: &str,
    ) -> Result<Vec<DailyScore>> {
        let rows: Vec<(String, f64)> = sqlx::query_as(
            "SELECT day, score FROM group_risk_scores WHERE account_id = $1 AND group_id = $2 \
             AND day >= $3 ORDER BY day",
        )
        .bind(account.0)
        .bind(group.0)
        .bind(since)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(day, score)| DailyScore { day, score })
            .collect())
    }

    /// How many active people an account has, and the domains of their email addresses.
    pub async fn seats_and_domains(&self, account: AccountId) -> Result<(i64, Vec<String>)> {
        let seats: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE account_id = $1 AND status = 'active'",
        )
        .bind(account.0)
        .fetch_one(&self.read)
        .await?;
        let at = self.backend.position("'@'", "email_norm");
        let domains: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT substr(email_norm, {at} + 1) AS domain \
             FROM users WHERE account_id = $1 AND status = 'active' AND {at} > 0 ORDER BY domain"
        ))
        .bind(account.0)
        .fetch_all(&self.read)
        .await?;
        Ok((seats, domains))
    }
}
