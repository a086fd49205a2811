//! The lists of the Reporting API as [`Source`]s: each reads its rows from the store in
//! key order and shapes them as the reference shows.

use super::RiskNow;
use super::listing::Source;
use super::shapes::{
    CampaignContent, Includes, TrainingCampaign, UserGroups, V1Enrollment, V1Group, V1User,
};
use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use axum::response::{IntoResponse, Response};
use coachloop_core::ids::{AccountId, ContentId, EnrollmentId, GroupId, UserId};
use coachloop_store::Store;
use coachloop_store::content::ContentRow;
use coachloop_store::reporting::{EnrollmentNames, EnrollmentQuery, Listing};
use coachloop_store::users::User;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// People (`/v1/users`, `/v1/groups/{id}/members`).
pub struct Users {
    store: Store,
    account: AccountId,
    listing: Listing,
    risk: Arc<RiskNow>,
    expand: bool,
}

impl Users {
    pub async fn new(
        state: &AppState,
        auth: &Auth,
        listing: Listing,
        expand: bool,
    ) -> ApiResult<Self> {
        Ok(Self {
            store: state.store.clone(),
            account: auth.account(),
            listing,
            risk: state.reporting.risk(state, auth.account()).await?,
            expand,
        })
    }

    /// Shapes people: their groups (ids or whole) and current scores.
    pub async fn show(&self, users: Vec<User>) -> ApiResult<Vec<(i64, V1User)>> {
        let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
        let mut memberships = self.store.group_ids_of(&ids).await?;
        let groups: HashMap<GroupId, V1Group> = if self.expand {
            let all: BTreeSet<GroupId> = memberships.values().flatten().copied().collect();
            let all: Vec<GroupId> = all.into_iter().collect();
            self.store
                .groups_by_id(self.account, &all)
                .await?
                .into_iter()
                .map(|g| {
                    let id = g.id;
                    (id, V1Group::new(g, self.risk.group(id)))
                })
                .collect()
        } else {
            HashMap::new()
        };
        Ok(users
            .into_iter()
            .map(|user| {
                let id = user.id;
                let ids = memberships.remove(&id).unwrap_or_default();
                let shown = if self.expand {
                    UserGroups::Expanded(
                        ids.iter().filter_map(|g| groups.get(g).cloned()).collect(),
                    )
                } else {
                    UserGroups::Ids(ids.iter().map(|g| g.0).collect())
                };
                (id.0, V1User::new(user, shown, self.risk.person(id)))
            })
            .collect())
    }
}

impl Source for Users {
    type Item = V1User;

    fn stored(&self) -> Option<(&Store, AccountId, &Listing)> {
        Some((&self.store, self.account, &self.listing))
    }

    async fn rows(&self, after: i64, limit: i64) -> ApiResult<Vec<(i64, V1User)>> {
        let users = self
            .store
            .report_users(self.account, &self.listing, after, limit)
            .await?;
        self.show(users).await
    }
}

/// Groups (`/v1/groups`).
pub struct Groups {
    store: Store,
    account: AccountId,
    listing: Listing,
    risk: Arc<RiskNow>,
}

impl Groups {
    pub async fn new(state: &AppState, auth: &Auth, listing: Listing) -> ApiResult<Self> {
        Ok(Self {
            store: state.store.clone(),
            account: auth.account(),
            listing,
            risk: state.reporting.risk(state, auth.account()).await?,
        })
    }
}

impl Source for Groups {
    type Item = V1Group;

    fn stored(&self) -> Option<(&Store, AccountId, &Listing)> {
        Some((&self.store, self.account, &self.listing))
    }

    async fn rows(&self, after: i64, limit: i64) -> ApiResult<Vec<(i64, V1Group)>> {
        let groups = self
            .store
            .report_groups(self.account, &self.listing, after, limit)
            .await?;
        Ok(groups
            .into_iter()
            .map(|g| {
                let score = self.risk.group(g.id);
                (g.id.0, V1Group::new(g, score))
            })
            .collect())
    }
}

/// Modules (`store_purchases`) or policies.
pub struct Content {
    store: Store,
    account: AccountId,
    account_name: String,
    listing: Listing,
}

impl Content {
    pub fn new(state: &AppState, auth: &Auth, kind: &'static str) -> Self {
        Self {
            store: state.store.clone(),
            account: auth.account(),
            account_name: auth.token.account_name.clone(),
            listing: Listing::Content { kind },
        }
    }

    fn kind(&self) -> &'static str {
        match self.listing {
            Listing::Content { kind } => kind,
            _ => "module",
        }
    }

    /// One module or policy; 404 for the other kind or another account's.
    pub async fn one(&self, id: i64) -> ApiResult<Response> {
        let row = self
            .store
            .content_by_id(self.account, &[ContentId(id)])
            .await?
            .into_iter()
            .find(|row| row.kind.as_str() == self.kind())
            .ok_or_else(|| {
                ApiError::not_found(if self.kind() == "policy" {
                    "policy"
                } else {
                    "store purchase"
                })
            })?;
        Ok(axum::Json(CampaignContent::new(row, &self.account_name)).into_response())
    }
}

impl Source for Content {
    type Item = CampaignContent;

    fn stored(&self) -> Option<(&Store, AccountId, &Listing)> {
        Some((&self.store, self.account, &self.listing))
    }

    async fn rows(&self, after: i64, limit: i64) -> ApiResult<Vec<(i64, CampaignContent)>> {
        let rows = self
            .store
            .report_content(self.account, &self.listing, after, limit)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.id.0, CampaignContent::new(row, &self.account_name)))
            .collect())
    }
}

/// Training campaigns.
pub struct Campaigns {
    store: Store,
    account: AccountId,
    account_name: String,
    percentages: bool,
}

impl Campaigns {
    pub fn new(state: &AppState, auth: &Auth, percentages: bool) -> Self {
        Self {
            store: state.store.clone(),
            account: auth.account(),
            account_name: auth.token.account_name.clone(),
            percentages,
        }
    }

    /// One campaign; 404 for another account's.
    pub async fn one(&self, id: i64) -> ApiResult<Response> {
        let (_, campaign) = self
            .rows(id.saturating_sub(1), 1)
            .await?
            .into_iter()
            .find(|(key, _)| *key == id)
            .ok_or_else(|| ApiError::not_found("campaign"))?;
        Ok(axum::Json(campaign).into_response())
    }
}

impl Source for Campaigns {
    type Item = TrainingCampaign;

    fn stored(&self) -> Option<(&Store, AccountId, &Listing)> {
        Some((&self.store, self.account, &Listing::Campaigns))
    }

    async fn rows(&self, after: i64, limit: i64) -> ApiResult<Vec<(i64, TrainingCampaign)>> {
        let campaigns = self
            .store
            .report_campaigns(self.account, after, limit, self.percentages)
            .await?;
        let ids: BTreeSet<ContentId> = campaigns
            .iter()
            .flat_map(|c| c.content.iter().copied())
            .collect();
        let ids: Vec<ContentId> = ids.into_iter().collect();
        let content: HashMap<ContentId, ContentRow> = self
            .store
            .content_by_id(self.account, &ids)
            .await?
            .into_iter()
            .map(|row| (row.id, row))
            .collect();
        Ok(campaigns
            .into_iter()
            .map(|c| {
                let id = c.id.0;
                (
                    id,
                    TrainingCampaign::new(c, &content, &self.account_name, self.percentages),
                )
            })
            .collect())
    }
}

/// Enrolments. The names of campaigns and content are read once and again only when a
/// row names one not yet known (a campaign made while a long stream runs).
pub struct Enrollments {
    store: Store,
    account: AccountId,
    listing: Listing,
    includes: Includes,
    names: Mutex<Arc<EnrollmentNames>>,
}

impl Enrollments {
    pub async fn new(
        state: &AppState,
        auth: &Auth,
        filter: EnrollmentQuery,
        includes: Includes,
    ) -> ApiResult<Self> {
        let names = state.store.enrollment_names(auth.account()).await?;
        Ok(Self {
            store: state.store.clone(),
            account: auth.account(),
            listing: Listing::Enrollments(filter),
            includes,
            names: Mutex::new(Arc::new(names)),
        })
    }

    /// One enrolment; 404 for another account's.
    pub async fn one(&self, id: i64) -> ApiResult<Response> {
        let row = self
            .store
            .report_enrollment(self.account, EnrollmentId(id))
            .await?;
        let names = self.names_for(std::slice::from_ref(&row)).await?;
        Ok(axum::Json(V1Enrollment::new(row, &names, self.includes)).into_response())
    }

    async fn names_for(
        &self,
        rows: &[coachloop_store::reporting::ReportEnrollment],
    ) -> ApiResult<Arc<EnrollmentNames>> {
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let known = rows.iter().all(|row| {
            names.campaigns.contains_key(&row.campaign_id)
                && names.content.contains_key(&row.content_id)
        });
        if known {
            return Ok(names);
        }
        let fresh = Arc::new(self.store.enrollment_names(self.account).await?);
        *self.names.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        Ok(fresh)
    }
}

impl Source for Enrollments {
    type Item = V1Enrollment;

    fn stored(&self) -> Option<(&Store, AccountId, &Listing)> {
        Some((&self.store, self.account, &self.listing))
    }

    async fn rows(&self, after: i64, limit: i64) -> ApiResult<Vec<(i64, V1Enrollment)>> {
        let rows = self
            .store
            .report_enrollments(self.account, &self.listing, after, limit)
            .await?;
        let names = self.names_for(&rows).await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.id.0, V1Enrollment::new(row, &names, self.includes)))
            .collect())
    }
}
