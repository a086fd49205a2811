//! People and groups as an identity provider provisions them over SCIM 2.0.
//!
//! A SCIM user is a person: `userName` is the name the provider knows them by (unique per
//! account, case-insensitively, together with every person's email: a person no provider
//! named answers to their email), the primary email is the person's email, and the
//! provider's other attributes land in the person's columns the criteria read. A person
//! named without any email is known (and matched in events) by the userName itself.
//! Deactivating or deleting archives: nothing is erased. A SCIM group is a provisioned
//! group (`adi_managed_group`) whose members change through the same path as every
//! membership, so campaigns and smart groups react in the same transaction.

pub(crate) mod creates;
pub mod filter;
pub mod groups;
pub mod users;

pub use groups::{ScimGroup, ScimGroupInput, ScimMember};
pub use users::{SCIM_TEXT_FIELDS, ScimEmail, ScimUser, ScimUserInput};

/// A page of a SCIM list: `offset` rows skipped (`startIndex` − 1), at most `count`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub offset: i64,
    pub count: i64,
}

/// The error of a filter the store cannot answer: it names the field `filter`.
fn bad_filter(message: String) -> crate::StoreError {
    crate::StoreError::invalid("filter", message)
}

/// How many match in all, when a first page that came back short says it: then no count
/// is needed (Okta's `userName eq` look-up before each create is such a page).
fn known_total(window: Window, rows: usize) -> Option<i64> {
    (window.offset == 0 && window.count > 0 && (rows as i64) < window.count).then_some(rows as i64)
}
