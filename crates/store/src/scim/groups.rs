//! SCIM groups: provisioned groups (`adi_managed_group`) and their members.

use super::filter::{Scope, push_filter};
use super::{Window, bad_filter, known_total};
use crate::groups::{GROUP_COLUMNS, GROUP_FROM, Group, PROVISIONED, group_kind, set_membership};
use crate::sql::QueryBuilder;
use crate::{Result, Store, StoreError, is_unique_violation};
use coachloop_core::ids::{AccountId, GroupId, UserId};
use coachloop_core::scim::Filter;
use sqlx::{AnyConnection, FromRow};
use std::collections::BTreeSet;
use tracing::instrument;

/// The reasons a provider's membership changes are recorded under.
const JOINED: &str = "added_by_identity_provider";
const LEFT: &str = "removed_by_identity_provider";

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct ScimMember {
    #[sqlx(try_from = "i64")]
    pub user_id: UserId,
    /// What the person is shown as: the provider's displayName, userName, else the email.
    pub display: String,
}

#[derive(Debug, Clone)]
pub struct ScimGroup {
    pub group: Group,
    /// Empty when members were not asked for.
    pub members: Vec<ScimMember>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScimGroupInput {
    pub name: String,
    pub external_id: Option<String>,
    pub members: BTreeSet<UserId>,
}

impl Store {
    #[instrument(skip_all)]
    pub async fn scim_create_group(
        &self,
        account: AccountId,
        input: &ScimGroupInput,
    ) -> Result<ScimGroup> {
        let mut change = self.change_facts(account).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO groups (account_id, name, description, group_type, provisioning_guid, \
             version, status, created_at, updated_at) \
             VALUES ($1, $2, NULL, $3, $4, 0, 'active', $5, $5) RETURNING id",
        )
        .bind(account.0)
        .bind(input.name.trim())
        .bind(PROVISIONED)
        .bind(input.external_id.as_deref())
        .bind(change.now)
        .fetch_one(&mut *change.tx)
        .await
        .map_err(|e| name_taken(e, &input.name))?;
        let id = GroupId(id);
        for user in &input.members {
            require_member(&mut change.tx, account, *user).await?;
            set_membership(&mut change, account, id, *user, true, JOINED).await?;
        }
        change.commit(&self.wakes).await?;
        self.scim_group(account, id, true).await
    }

    /// A live provisioned group, with its members when `members`.
    #[instrument(skip_all)]
    pub async fn scim_group(
        &self,
        account: AccountId,
        id: GroupId,
        members: bool,
    ) -> Result<ScimGroup> {
        let mut conn = self.read.acquire().await?;
        let group: Group = sqlx::query_as(&format!(
            "SELECT {GROUP_COLUMNS} FROM {GROUP_FROM} WHERE g.account_id = $1 AND g.id = $2 \
             AND g.group_type = $3 AND g.status = 'active'"
        ))
        .bind(account.0)
        .bind(id.0)
        .bind(PROVISIONED)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound("group"))?;
        let mut groups = with_members(&mut conn, account, vec![group], members).await?;
        Ok(groups.remove(0))
    }

    /// Replaces a group's name, external id and members with what `edit` makes of its
    /// current state, in one transaction; each join and leave goes the way every
    /// membership change goes (enrolments, webhooks, smart groups that name the group).
    #[instrument(skip_all)]
    pub async fn scim_edit_group<E, F>(
        &self,
        account: AccountId,
        id: GroupId,
        edit: F,
    ) -> std::result::Result<ScimGroup, E>
    where
        E: From<StoreError>,
        F: FnOnce(&ScimGroup) -> std::result::Result<ScimGroupInput, E>,
    {
        let mut change = self.change_facts(account).await?;
        let (kind, status) = group_kind(&mut change.tx, account, id).await?;
        if kind != PROVISIONED || status != "active" {
            return Err(StoreError::NotFound("group").into());
        }
        let group: Group = sqlx::query_as(&format!(
            "SELECT {GROUP_COLUMNS} FROM {GROUP_FROM} WHERE g.account_id = $1 AND g.id = $2"
        ))
        .bind(account.0)
        .bind(id.0)
        .fetch_one(&mut *change.tx)
        .await
        .map_err(StoreError::from)?;
        let current = with_members(&mut change.tx, account, vec![group], true)
            .await?
            .remove(0);
        let input = edit(&current)?;
        sqlx::query(
            "UPDATE groups SET name = $1, provisioning_guid = $2, updated_at = $3 \
             WHERE account_id = $4 AND id = $5",
        )
        .bind(input.name.trim())
        .bind(input.external_id.as_deref())
        .bind(change.now)
        .bind(account.0)
        .bind(id.0)
        .execute(&mut *change.tx)
        .await
        .map_err(|e| name_taken(e, &input.name))?;
        let before: BTreeSet<UserId> = current.members.iter().map(|m| m.user_id).collect();
        for user in before.difference(&input.members) {
            set_membership(&mut change, account, id, *user, false, LEFT).await?;
        }
        for user in input.members.difference(&before) {
            require_member(&mut change.tx, account, *user).await?;
            set_membership(&mut change, account, id, *user, true, JOINED).await?;
        }
        change.commit(&self.wakes).await?;
        Ok(self.scim_group(account, id, true).await?)
    }

    /// Deletes a group as a provider sees it: archived, its history kept.
    #[instrument(skip_all)]
    pub async fn scim_delete_group(&self, account: AccountId, id: GroupId) -> Result<()> {
        self.scim_group(account, id, false).await?;
        self.archive_group(account, id).await?;
        Ok(())
    }

    /// The live provisioned groups `filter` matches, in id order, and how many match.
    #[instrument(skip_all)]
    pub async fn scim_groups(
        &self,
        account: AccountId,
        filter: Option<&Filter>,
        window: Window,
        members: bool,
    ) -> Result<(Vec<ScimGroup>, i64)> {
        let condition = |query: &mut QueryBuilder<'_>| -> Result<()> {
            query
                .push(" WHERE g.account_id = ")
                .push_bind(account.0)
                .push(" AND g.group_type = ")
                .push_bind(PROVISIONED)
                .push(" AND g.status = 'active'");
            if let Some(filter) = filter {
                query.push(" AND ");
                push_filter(query, self.backend, Scope::Group, filter).map_err(bad_filter)?;
            }
            Ok(())
        };
        let mut conn = self.read.acquire().await?;
        let mut groups: Vec<Group> = Vec::new();
        if window.count > 0 {
            let mut select = QueryBuilder::new(format!("SELECT {GROUP_COLUMNS} FROM {GROUP_FROM}"));
            condition(&mut select)?;
            select
                .push(" ORDER BY g.id LIMIT ")
                .push_bind(window.count)
                .push(" OFFSET ")
                .push_bind(window.offset);
            groups = select.build_query_as().fetch_all(&mut *conn).await?;
        }
        let total = match known_total(window, groups.len()) {
            Some(total) => total,
            None => {
                let mut count = QueryBuilder::new("SELECT COUNT(*) FROM groups g");
                condition(&mut count)?;
                count.build_query_scalar().fetch_one(&mut *conn).await?
            }
        };
        Ok((
            with_members(&mut conn, account, groups, members).await?,
            total,
        ))
    }
}

async fn with_members(
    conn: &mut AnyConnection,
    account: AccountId,
    groups: Vec<Group>,
    members: bool,
) -> Result<Vec<ScimGroup>> {
    let mut found: Vec<(i64, ScimMember)> = Vec::new();
    if members && !groups.is_empty() {
        let mut query = QueryBuilder::new(
            "SELECT m.group_id, m.user_id, COALESCE(u.display_name, u.user_name, u.email) \
             FROM group_members m JOIN users u ON u.id = m.user_id WHERE m.account_id = ",
        );
        query.push_bind(account.0).push(" AND m.group_id IN (");
        let mut ids = query.separated(", ");
        for group in &groups {
            ids.push_bind(group.id.0);
        }
        query.push(") ORDER BY m.group_id, m.user_id");
        let rows: Vec<(i64, i64, String)> = query.build_query_as().fetch_all(&mut *conn).await?;
        found = rows
            .into_iter()
            .map(|(group, user, display)| {
                (
                    group,
                    ScimMember {
                        user_id: UserId(user),
                        display,
                    },
                )
            })
            .collect();
    }
    Ok(groups
        .into_iter()
        .map(|group| ScimGroup {
            members: (found.iter())
                .filter(|(g, _)| *g == group.id.0)
                .map(|(_, m)| m.clone())
                .collect(),
            group,
        })
        .collect())
}

/// Fails unless `user` is a person of `account`, naming the member.
async fn require_member(conn: &mut AnyConnection, account: AccountId, user: UserId) -> Result<()> {
    crate::users::require_user(conn, account, user)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => {
                StoreError::invalid("members", format!("no user has the id `{}`", user.0))
            }
            other => other,
        })
}

fn name_taken(err: sqlx::Error, name: &str) -> StoreError {
    if is_unique_violation(&err) {
        StoreError::conflict(
            "displayName",
            format!("a group named `{}` exists already", name.trim()),
        )
    } else {
        err.into()
    }
}
