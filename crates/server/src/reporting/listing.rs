//! How a Reporting API list is answered: a page (bare JSON array), a cursor page
//! (`{"data", "pagination"}`), or every row as NDJSON. Every list is read in key order
//! from a key onwards, so no answer costs more the deeper it lies:
//!
//! * a cursor carries the last key it showed, signed so it cannot be forged or carried
//!   to another account or list;
//! * a page number is turned into a key by the anchors the previous page left behind
//!   (a client reading page after page never pays for the pages before); a page jumped to
//!   cold is found once through the list's narrowest index and anchored from then on.

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use coachloop_core::ids::AccountId;
use coachloop_store::Store;
use coachloop_store::reporting::Listing;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

pub const DEFAULT_PER_PAGE: u32 = 100;
pub const MAX_PER_PAGE: u32 = 500;
/// Rows per read while streaming NDJSON.
const STREAM_CHUNK: i64 = 2_000;
/// The name of the key cursors are signed with.
const CURSOR_KEY: &str = "reporting-cursor";
pub const NDJSON: &str = "application/x-ndjson";

/// One list: its rows in key order, read from a key onwards.
pub trait Source: Send + Sync + 'static {
    type Item: Serialize + Send + 'static;

    /// Up to `limit` rows whose key is above `after`, with their keys, in key order.
    fn rows(
        &self,
        after: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<(i64, Self::Item)>, ApiError>> + Send;

    /// The store list the rows come from, if they come from one; [`Source::identity`]
    /// and [`Source::key_at`] follow from it.
    fn stored(&self) -> Option<(&Store, AccountId, &Listing)> {
        None
    }

    /// Names the list and its filters: anchors and cursors are bound to it.
    fn identity(&self) -> String {
        self.stored()
            .map(|(_, _, listing)| format!("{listing:?}"))
            .unwrap_or_default()
    }

    /// The key of row `offset - 1` (0-based), i.e. where row `offset` starts; `Some(0)`
    /// for offset 0, `None` when the list is shorter.
    fn key_at(&self, offset: i64) -> impl Future<Output = Result<Option<i64>, ApiError>> + Send {
        async move {
            match self.stored() {
                Some((store, account, listing)) => {
                    Ok(store.listing_key_at(account, listing, offset).await?)
                }
                None => Ok((offset == 0).then_some(0)),
            }
        }
    }
}

/// What the client asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Page(u32),
    /// `cursor=true` (None) or the cursor text the previous answer gave.
    Cursor(Option<String>),
    Stream,
}

/// The paging part of a list request: `page`, `per_page`, `cursor`, and `Accept`.
#[derive(Debug, Clone)]
pub struct ListRequest {
    pub mode: Mode,
    pub per_page: u32,
}

impl<S: Send + Sync> FromRequestParts<S> for ListRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut page = None;
        let mut per_page = None;
        let mut cursor = None;
        let query = parts.uri.query().unwrap_or_default();
        for (name, value) in form_pairs(query) {
            match name.as_str() {
                "page" => page = Some(value),
                "per_page" => per_page = Some(value),
                "cursor" => cursor = Some(value),
                _ => {}
            }
        }
        let per_page = match per_page {
            None => DEFAULT_PER_PAGE,
            Some(text) => match crate::paging::parse_integer(&text).ok_or(()) {
                Ok(n) if n >= 1 => n.min(i64::from(MAX_PER_PAGE)) as u32,
                Ok(_) => {
                    return Err(ApiError::bad_request(format!(
                        "`per_page` must be 1 or more (values above {MAX_PER_PAGE} are read as {MAX_PER_PAGE}); got `{text}`"
                    )));
                }
                Err(_) => {
                    return Err(ApiError::bad_request(format!(
                        "`per_page` must be a whole number from 1 to {MAX_PER_PAGE}; got `{text}`"
                    )));
                }
            },
        };
        let streams = parts
            .headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains(NDJSON));
        let mode = if streams {
            Mode::Stream
        } else if let Some(cursor) = cursor {
            match cursor.trim() {
                "true" => Mode::Cursor(None),
                "" | "false" => page_mode(page)?,
                text => Mode::Cursor(Some(text.to_owned())),
            }
        } else {
            page_mode(page)?
        };
        Ok(Self { mode, per_page })
    }
}

fn page_mode(page: Option<String>) -> Result<Mode, ApiError> {
    match page {
        None => Ok(Mode::Page(1)),
        Some(text) => match crate::paging::parse_integer(&text).ok_or(()) {
            Ok(n) if n >= 1 => u32::try_from(n)
                .map(Mode::Page)
                .map_err(|_| ApiError::bad_request("`page` is too large")),
            _ => Err(ApiError::bad_request(format!(
                "`page` must be a whole number from 1 up; got `{text}`"
            ))),
        },
    }
}

/// The paging parameters as the API description lists them ([`ListRequest`] reads them).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(
    dead_code,
    reason = "read by ListRequest from the raw query; this is its description"
)]
pub struct Paging {
    /// 1-based page number; default 1.
    #[param(minimum = 1, maximum = 4_294_967_295_i64)]
    page: Option<i64>,
    /// Rows per page: default 100, at most 500 (larger is read as 500).
    #[param(minimum = 1)]
    per_page: Option<i64>,
    /// `true` for the first cursor page, then the `next_cursor` the last answer gave.
    cursor: Option<String>,
}

/// The decoded `name=value` pairs of a query string.
pub fn form_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()
}

/// A cursor page.
#[derive(Debug, Serialize, ToSchema)]
pub struct CursorPage<T> {
    pub data: Vec<T>,
    pub pagination: Pagination,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Pagination {
    pub per_page: u32,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// Where sequential page reads resume: (account, list, per_page, page) → the key the
/// page starts after.
type AnchorKey = (i64, String, u32, u32);

/// Anchors are dropped after this, so a list that changed under them realigns.
const ANCHOR_TTL: Duration = Duration::from_secs(600);
const MAX_ANCHORS: usize = 100_000;

#[derive(Default)]
pub struct Anchors {
    entries: Mutex<HashMap<AnchorKey, (i64, Instant)>>,
}

impl Anchors {
    fn get(&self, key: &AnchorKey) -> Option<i64> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < ANCHOR_TTL)
            .map(|(after, _)| *after)
    }

    fn put(&self, key: AnchorKey, after: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ANCHORS {
            entries.retain(|_, (_, at)| at.elapsed() < ANCHOR_TTL);
            if entries.len() >= MAX_ANCHORS {
                entries.clear();
            }
        }
        entries.insert(key, (after, Instant::now()));
    }
}

impl ListRequest {
    /// Answers the request from `source`.
    pub async fn respond<S: Source>(
        self,
        state: &AppState,
        auth: &Auth,
        source: S,
    ) -> Result<Response, ApiError> {
        let account = auth.account().0;
        match self.mode {
            Mode::Stream => Ok(stream(source)),
            Mode::Cursor(cursor) => {
                let key = state.store.secret(CURSOR_KEY).await?;
                let identity = source.identity();
                let after = match cursor {
                    None => 0,
                    Some(text) => open_cursor(&key, account, &identity, &text)?,
                };
                let limit = i64::from(self.per_page);
                let mut rows = source.rows(after, limit + 1).await?;
                let next_cursor = if rows.len() as i64 > limit {
                    rows.truncate(self.per_page as usize);
                    rows.last()
                        .map(|(last, _)| seal_cursor(&key, account, &identity, *last))
                } else {
                    None
                };
                Ok(axum::Json(CursorPage {
                    data: rows.into_iter().map(|(_, item)| item).collect(),
                    pagination: Pagination {
                        per_page: self.per_page,
                        next_cursor,
                    },
                })
                .into_response())
            }
            Mode::Page(page) => {
                let anchors = &state.reporting.anchors;
                let anchor = (account, source.identity(), self.per_page, page);
                let after = match anchors.get(&anchor) {
                    Some(after) => Some(after),
                    None => {
                        let offset = i64::from(page - 1) * i64::from(self.per_page);
                        source.key_at(offset).await?
                    }
                };
                let Some(after) = after else {
                    return Ok(axum::Json(Vec::<S::Item>::new()).into_response());
                };
                let rows = source.rows(after, i64::from(self.per_page)).await?;
                if rows.len() == self.per_page as usize
                    && let Some((last, _)) = rows.last()
                {
                    let (account, identity, per_page, page) = anchor;
                    anchors.put((account, identity, per_page, page + 1), *last);
                }
                let items: Vec<S::Item> = rows.into_iter().map(|(_, item)| item).collect();
                Ok(axum::Json(items).into_response())
            }
        }
    }
}

/// Every row as NDJSON, read chunk by chunk while the client takes them: memory stays at
/// a chunk however long the list. A failure part-way ends the body abruptly, so the
/// client sees an incomplete response rather than a short list.
fn stream<S: Source>(source: S) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let source = std::sync::Arc::new(source);
    tokio::spawn(async move {
        let fetch = |after: i64| {
            let source = source.clone();
            tokio::spawn(async move { source.rows(after, STREAM_CHUNK).await })
        };
        let mut next = Some(fetch(0));
        while let Some(reading) = next.take() {
            let rows = match reading.await {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) => {
                    tracing::error!(error = %e.message, "NDJSON stream stopped");
                    let _ = sender.send(Err(std::io::Error::other(e.message))).await;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "NDJSON stream stopped");
                    let _ = sender
                        .send(Err(std::io::Error::other("a read failed")))
                        .await;
                    return;
                }
            };
            // A full chunk may have more after it: read that while this one is written.
            if rows.len() as i64 == STREAM_CHUNK
                && let Some((last, _)) = rows.last()
            {
                next = Some(fetch(*last));
            }
            let mut buffer = Vec::with_capacity(rows.len() * 256);
            for (_, item) in rows {
                if serde_json::to_writer(&mut buffer, &item).is_err() {
                    let _ = sender
                        .send(Err(std::io::Error::other("a row could not be written")))
                        .await;
                    return;
                }
                buffer.push(b'\n');
            }
            if !buffer.is_empty() && sender.send(Ok(Bytes::from(buffer))).await.is_err() {
                if let Some(reading) = next {
                    reading.abort();
                }
                return; // the client went away
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) },
    ));
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    response
}

/// Bytes of the MAC kept in a cursor.
const MAC_BYTES: usize = 16;

fn cursor_mac(key: &[u8], account: i64, identity: &str, after: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&account.to_be_bytes());
    mac.update(identity.as_bytes());
    mac.update(&[0]);
    mac.update(&after.to_be_bytes());
    mac
}

/// A cursor: the last key shown and a MAC binding it to the account and the list.
pub fn seal_cursor(key: &[u8], account: i64, identity: &str, after: i64) -> String {
    let tag = cursor_mac(key, account, identity, after)
        .finalize()
        .into_bytes();
    let mut bytes = after.to_be_bytes().to_vec();
    bytes.extend_from_slice(&tag[..MAC_BYTES]);
    hex::encode(bytes)
}

/// The key a cursor resumes after; 400 unless this list in this account gave it out.
pub fn open_cursor(key: &[u8], account: i64, identity: &str, text: &str) -> Result<i64, ApiError> {
    let refuse = || {
        ApiError::bad_request(
            "`cursor` is not one this list gave out (for this account and these filters); \
             start again with `cursor=true`",
        )
    };
    let bytes = hex::decode(text.trim()).map_err(|_| refuse())?;
    if bytes.len() != 8 + MAC_BYTES {
        return Err(refuse());
    }
    let after = i64::from_be_bytes(bytes[..8].try_into().map_err(|_| refuse())?);
    cursor_mac(key, account, identity, after)
        .verify_truncated_left(&bytes[8..])
        .map_err(|_| refuse())?;
    Ok(after)
}

/// A list held in memory (risk histories, the phishing lists): keys are positions.
pub struct InMemory<T> {
    pub identity: String,
    pub rows: Vec<T>,
}

impl<T: Serialize + Clone + Send + Sync + 'static> Source for InMemory<T> {
    type Item = T;

    fn identity(&self) -> String {
        self.identity.clone()
    }

    async fn rows(&self, after: i64, limit: i64) -> Result<Vec<(i64, T)>, ApiError> {
        let start = usize::try_from(after.max(0)).unwrap_or(usize::MAX);
        Ok(self
            .rows
            .iter()
            .enumerate()
            .skip(start)
            .take(usize::try_from(limit).unwrap_or(0))
            .map(|(i, row)| (i as i64 + 1, row.clone()))
            .collect())
    }

    async fn key_at(&self, offset: i64) -> Result<Option<i64>, ApiError> {
        Ok((offset <= self.rows.len() as i64).then_some(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_open_only_where_they_were_given() {
        let key = b"0123456789abcdef0123456789abcdef";
        let cursor = seal_cursor(key, 1, "users", 42);
        assert_eq!(open_cursor(key, 1, "users", &cursor).unwrap(), 42);
        assert!(open_cursor(key, 2, "users", &cursor).is_err());
        assert!(open_cursor(key, 1, "groups", &cursor).is_err());
        assert!(open_cursor(b"another key", 1, "users", &cursor).is_err());
        let mut tampered = cursor.clone().into_bytes();
        tampered[3] = if tampered[3] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(open_cursor(key, 1, "users", &tampered).is_err());
        assert!(open_cursor(key, 1, "users", "not hex").is_err());
        assert!(open_cursor(key, 1, "users", "").is_err());
    }
}
