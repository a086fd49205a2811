//! Training content: the library shipped in the binary, copied into every account (and
//! refreshed at start-up, so an upgrade brings new lessons), and admins' own modules and
//! policies. Ids are per account: they are the Reporting API's `store_purchase_id` and
//! `policy_id`.

use crate::sql::QueryBuilder;
use crate::{Page, Result, Store, StoreError, is_unique_violation};
use coachloop_core::content::{Content, ContentKind, QuizQuestion, library};
use coachloop_core::ids::{AccountId, ContentId};
use coachloop_core::time::{date_of_ms, date_start_ms};
use sqlx::{AnyConnection, FromRow};

#[derive(Debug, Clone, PartialEq)]
pub struct ContentRow {
    pub id: ContentId,
    pub account_id: AccountId,
    pub kind: ContentKind,
    pub slug: String,
    pub builtin: bool,
    pub title: String,
    pub summary: String,
    pub minutes: i64,
    pub pass_mark: Option<i64>,
    pub quiz: Vec<QuizQuestion>,
    pub version: Option<String>,
    pub body: String,
    pub published_at: i64,
    pub retired_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A content row as stored: [`ContentRow`] once its kind and quiz are read.
#[derive(FromRow)]
pub(crate) struct StoredContent {
    id: i64,
    account_id: i64,
    kind: String,
    slug: String,
    #[sqlx(try_from = "crate::db::Flag")]
    builtin: bool,
    title: String,
    summary: String,
    minutes: i64,
    pass_mark: Option<i64>,
    /// JSON array of questions.
    quiz: String,
    version: Option<String>,
    body: String,
    published_at: i64,
    retired_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<StoredContent> for ContentRow {
    type Error = StoreError;

    /// A kind or quiz that cannot be read is an error naming the row, never a module
    /// without a quiz.
    fn try_from(row: StoredContent) -> Result<Self> {
        let kind = ContentKind::parse(&row.kind).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "content {}: kind `{}` is neither module nor policy",
                row.id, row.kind
            ))
        })?;
        let quiz = serde_json::from_str(&row.quiz).map_err(|e| {
            StoreError::Corrupt(format!("content {}: the quiz cannot be read: {e}", row.id))
        })?;
        Ok(Self {
            id: ContentId(row.id),
            account_id: AccountId(row.account_id),
            kind,
            slug: row.slug,
            builtin: row.builtin,
            title: row.title,
            summary: row.summary,
            minutes: row.minutes,
            pass_mark: row.pass_mark,
            quiz,
            version: row.version,
            body: row.body,
            published_at: row.published_at,
            retired_at: row.retired_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Reads stored rows, failing on the first that cannot be read.
pub(crate) fn read_rows(rows: Vec<StoredContent>) -> Result<Vec<ContentRow>> {
    rows.into_iter().map(ContentRow::try_from).collect()
}

impl ContentRow {
    /// The content as the core crate knows it (for rendering and grading).
    pub fn content(&self) -> Content {
        Content {
            slug: self.slug.clone(),
            kind: self.kind,
            title: self.title.clone(),
            summary: self.summary.clone(),
            minutes: u32::try_from(self.minutes).unwrap_or(0),
            pass_mark: self.pass_mark.and_then(|m| u8::try_from(m).ok()),
            quiz: self.quiz.clone(),
            version: self.version.clone(),
            published: date_of_ms(self.published_at),
            body: self.body.clone(),
        }
    }

    pub fn is_policy(&self) -> bool {
        self.kind == ContentKind::Policy
    }
}

#[derive(Debug, Clone, Default)]
pub struct ContentFilter {
    /// `module` or `policy`.
    pub kind: Option<String>,
    pub include_retired: bool,
}

pub(crate) const COLUMNS: &str = "id, account_id, kind, slug, builtin, title, summary, minutes, pass_mark, \
    quiz, version, body, published_at, retired_at, created_at, updated_at";

fn slug_conflict(err: sqlx::Error, slug: &str) -> StoreError {
    if is_unique_violation(&err) {
        StoreError::conflict(
            "slug",
            format!("content with the slug `{slug}` exists already"),
        )
    } else {
        err.into()
    }
}

/// Inserts or (for `builtin`) refreshes one piece of content; returns its id.
async fn upsert(
    conn: &mut AnyConnection,
    account: i64,
    content: &Content,
    builtin: bool,
    now: i64,
) -> Result<i64> {
    let quiz = serde_json::to_string(&content.quiz).unwrap_or_else(|_| "[]".into());
    let sql = if builtin {
        // The binary's text wins for built-in rows; an admin's row of the same slug stays.
        "INSERT INTO content (account_id, kind, slug, builtin, title, summary, minutes, \
         pass_mark, quiz, version, body, published_at, created_at, updated_at) \
         VALUES ($1, $2, $3, TRUE, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
         ON CONFLICT (account_id, slug) DO UPDATE SET kind = excluded.kind, \
         title = excluded.title, summary = excluded.summary, minutes = excluded.minutes, \
         pass_mark = excluded.pass_mark, quiz = excluded.quiz, version = excluded.version, \
         body = excluded.body, published_at = excluded.published_at, \
         updated_at = excluded.updated_at \
         WHERE content.builtin = TRUE AND (content.body <> excluded.body \
         OR content.quiz <> excluded.quiz OR content.title <> excluded.title \
         OR content.summary <> excluded.summary OR content.minutes <> excluded.minutes \
         OR content.pass_mark IS DISTINCT FROM excluded.pass_mark) \
         RETURNING id"
    } else {
        "INSERT INTO content (account_id, kind, slug, builtin, title, summary, minutes, \
         pass_mark, quiz, version, body, published_at, created_at, updated_at) \
         VALUES ($1, $2, $3, FALSE, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id"
    };
    let id: Option<i64> = sqlx::query_scalar(sql)
        .bind(account)
        .bind(content.kind.as_str())
        .bind(&content.slug)
        .bind(&content.title)
        .bind(&content.summary)
        .bind(i64::from(content.minutes))
        .bind(content.pass_mark.map(i64::from))
        .bind(quiz)
        .bind(content.version.as_deref())
        .bind(&content.body)
        .bind(date_start_ms(content.published))
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| slug_conflict(e, &content.slug))?;
    Ok(id.unwrap_or_default())
}

/// Copies the built-in library into an account, refreshing changed lessons.
pub(crate) async fn sync_library(conn: &mut AnyConnection, account: i64, now: i64) -> Result<()> {
    for content in library() {
        upsert(conn, account, content, true, now).await?;
    }
    Ok(())
}

/// One piece of content of the account, read on `conn` (a transaction's, say).
pub(crate) async fn content_in(
    conn: &mut AnyConnection,
    account: AccountId,
    id: ContentId,
) -> Result<ContentRow> {
    let row: StoredContent = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM content WHERE account_id = $1 AND id = $2"
    ))
    .bind(account.0)
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound("content"))?;
    row.try_into()
}

impl Store {
    /// Brings every account's copy of the built-in library up to date (at start-up).
    pub async fn sync_content_library(&self) -> Result<()> {
        let mut tx = self.begin_write(&crate::Locks::none()).await?;
        let now = self.now_ms();
        let accounts: Vec<i64> = sqlx::query_scalar("SELECT id FROM accounts")
            .fetch_all(&mut *tx)
            .await?;
        for account in accounts {
            sync_library(&mut tx, account, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_content(
        &self,
        account: AccountId,
        filter: &ContentFilter,
        page: Page,
    ) -> Result<(Vec<ContentRow>, i64)> {
        let push_filter = |query: &mut QueryBuilder<'_>| {
            query.push(" WHERE account_id = ").push_bind(account.0);
            if let Some(kind) = &filter.kind {
                query.push(" AND kind = ").push_bind(kind.clone());
            }
            if !filter.include_retired {
                query.push(" AND retired_at IS NULL");
            }
        };
        let mut select = QueryBuilder::new(format!("SELECT {COLUMNS} FROM content"));
        push_filter(&mut select);
        select
            .push(" ORDER BY id LIMIT ")
            .push_bind(page.limit())
            .push(" OFFSET ")
            .push_bind(page.offset());
        let rows: Vec<_> = select.build_query_as().fetch_all(&self.read).await?;
        let total = self
            .page_total(page, rows.len(), "content", push_filter)
            .await?;
        Ok((read_rows(rows)?, total))
    }

    pub async fn content(&self, account: AccountId, id: ContentId) -> Result<ContentRow> {
        let mut conn = self.read.acquire().await?;
        content_in(&mut conn, account, id).await
    }

    /// Adds an admin's module or policy (validated by the caller).
    pub async fn create_content(
        &self,
        account: AccountId,
        content: &Content,
    ) -> Result<ContentRow> {
        let mut tx = self.begin_write(&crate::Locks::none()).await?;
        let id = upsert(&mut tx, account.0, content, false, self.now_ms()).await?;
        tx.commit().await?;
        self.content(account, ContentId(id)).await
    }

    /// Replaces an admin's module or policy; built-in content is read-only.
    pub async fn update_content(
        &self,
        account: AccountId,
        id: ContentId,
        content: &Content,
    ) -> Result<ContentRow> {
        let current = self.content(account, id).await?;
        if current.builtin {
            return Err(StoreError::conflict(
                "id",
                "built-in content cannot be edited; create your own copy under a new slug",
            ));
        }
        let quiz = serde_json::to_string(&content.quiz).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "UPDATE content SET kind = $1, slug = $2, title = $3, summary = $4, minutes = $5, \
             pass_mark = $6, quiz = $7, version = $8, body = $9, updated_at = $10 \
             WHERE account_id = $11 AND id = $12",
        )
        .bind(content.kind.as_str())
        .bind(&content.slug)
        .bind(&content.title)
        .bind(&content.summary)
        .bind(i64::from(content.minutes))
        .bind(content.pass_mark.map(i64::from))
        .bind(quiz)
        .bind(content.version.as_deref())
        .bind(&content.body)
        .bind(self.now_ms())
        .bind(account.0)
        .bind(id.0)
        .execute(&self.write)
        .await
        .map_err(|e| slug_conflict(e, &content.slug))?;
        self.content(account, id).await
    }

    /// Retires content: campaigns can no longer add it; enrolments in it stay.
    pub async fn retire_content(&self, account: AccountId, id: ContentId) -> Result<ContentRow> {
        self.content(account, id).await?;
        sqlx::query(
            "UPDATE content SET retired_at = COALESCE(retired_at, $1), updated_at = $1 \
             WHERE account_id = $2 AND id = $3",
        )
        .bind(self.now_ms())
        .bind(account.0)
        .bind(id.0)
        .execute(&self.write)
        .await?;
        self.content(account, id).await
    }
}
