//! Page-number pagination of the JSON list endpoints: parameters and the `meta` block.

use crate::error::ApiError;
use coachloop_store::Page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// An integer query value. `2.0` reads as 2: JSON Schema (and so a generated client) counts
/// a number with no fraction as an integer.
pub fn parse_integer(text: &str) -> Option<i64> {
    let text = text.trim();
    let whole = match text.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() && fraction.bytes().all(|b| b == b'0') => {
            whole
        }
        Some(_) => return None,
        None => text,
    };
    whole.parse().ok()
}

/// `Option<i64>` from a query string, through [`parse_integer`].
pub fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|text| {
            parse_integer(&text)
                .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a whole number")))
        })
        .transpose()
}

/// `page` (1-based) and `per_page`.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-based page number; default 1.
    #[param(minimum = 1, maximum = 4_294_967_295_i64)]
    #[serde(default, deserialize_with = "integer")]
    pub page: Option<i64>,
    /// Rows per page; default 50, values above 500 are treated as 500.
    #[param(minimum = 1)]
    #[serde(default, deserialize_with = "integer")]
    pub per_page: Option<i64>,
}

pub const DEFAULT_PER_PAGE: i64 = 50;
pub const MAX_PER_PAGE: i64 = 500;

impl PageParams {
    /// The page asked for: below 1 is an error, above the maximum is clamped.
    pub fn page(&self) -> Result<Page, ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if page < 1 {
            return Err(ApiError::bad_request("`page` must be 1 or more"));
        }
        if per_page < 1 {
            return Err(ApiError::bad_request("`per_page` must be 1 or more"));
        }
        let page = u32::try_from(page).map_err(|_| ApiError::bad_request("`page` is too large"))?;
        Ok(Page::new(page, per_page.min(MAX_PER_PAGE) as u32))
    }
}

/// The `meta` block of a list response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Meta {
    /// How many rows match in all.
    pub count: i64,
    pub limit_value: u32,
    pub total_pages: i64,
    pub current_page: u32,
    pub next_page: Option<u32>,
    pub prev_page: Option<u32>,
    pub is_first_page: bool,
    pub is_last_page: bool,
    pub is_out_of_range: bool,
}

impl Meta {
    pub fn new(page: Page, count: i64) -> Self {
        let total_pages = page.total_pages(count);
        let current = i64::from(page.page);
        Self {
            count,
            limit_value: page.per_page,
            total_pages,
            current_page: page.page,
            next_page: (current < total_pages).then(|| page.page + 1),
            prev_page: (page.page > 1).then(|| page.page - 1),
            is_first_page: page.page == 1,
            is_last_page: current >= total_pages,
            is_out_of_range: current > total_pages && count > 0,
        }
    }
}

/// A list response: `{"data": [...], "meta": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListOf<T> {
    pub data: Vec<T>,
    pub meta: Meta,
}

/// A single-object response: `{"data": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataOf<T> {
    pub data: T,
}
