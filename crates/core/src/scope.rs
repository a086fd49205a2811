//! What a token may do.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "events:write")]
    EventsWrite,
    #[serde(rename = "events:read")]
    EventsRead,
    #[serde(rename = "account:read")]
    AccountRead,
    #[serde(rename = "user:read")]
    UserRead,
    #[serde(rename = "group:read")]
    GroupRead,
    #[serde(rename = "program:read")]
    ProgramRead,
    #[serde(rename = "campaign:read")]
    CampaignRead,
    #[serde(rename = "enrollments:read")]
    EnrollmentsRead,
    #[serde(rename = "scim")]
    Scim,
    /// xAPI: send statements (an LRS credential's `write`).
    #[serde(rename = "xapi:write")]
    XapiWrite,
    /// xAPI: read statements back (an LRS credential's `read`).
    #[serde(rename = "xapi:read")]
    XapiRead,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 12] = [
        Scope::EventsWrite,
        Scope::EventsRead,
        Scope::AccountRead,
        Scope::UserRead,
        Scope::GroupRead,
        Scope::ProgramRead,
        Scope::CampaignRead,
        Scope::EnrollmentsRead,
        Scope::Scim,
        Scope::XapiWrite,
        Scope::XapiRead,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EventsWrite => "events:write",
            Scope::EventsRead => "events:read",
            Scope::AccountRead => "account:read",
            Scope::UserRead => "user:read",
            Scope::GroupRead => "group:read",
            Scope::ProgramRead => "program:read",
            Scope::CampaignRead => "campaign:read",
            Scope::EnrollmentsRead => "enrollments:read",
            Scope::Scim => "scim",
            Scope::XapiWrite => "xapi:write",
            Scope::XapiRead => "xapi:read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        let text = text.trim();
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| ScopeError(text.to_owned()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope `{0}`; known scopes: events:write, events:read, account:read, user:read, group:read, program:read, campaign:read, enrollments:read, scim, xapi:write, xapi:read, admin"
)]
pub struct ScopeError(pub String);

/// A token's set of scopes. `admin` grants every other scope too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    pub fn new(mut scopes: Vec<Scope>) -> Self {
        scopes.sort();
        scopes.dedup();
        Self(scopes)
    }

    /// Parses a comma-separated list such as `events:write,events:read`.
    pub fn parse_list(text: &str) -> Result<Self, ScopeError> {
        let scopes = text
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(Scope::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if scopes.is_empty() {
            return Err(ScopeError(text.to_owned()));
        }
        Ok(Self::new(scopes))
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.0.contains(&Scope::Admin) || self.0.contains(&scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// The stored form: comma-separated, sorted.
    pub fn to_list(&self) -> String {
        self.0
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_checks() {
        let scopes = Scopes::parse_list("events:read, events:write,events:read").unwrap();
        assert_eq!(scopes.to_list(), "events:write,events:read");
        assert!(scopes.allows(Scope::EventsWrite));
        assert!(!scopes.allows(Scope::UserRead));
        assert!(Scopes::parse_list("admin").unwrap().allows(Scope::UserRead));
        assert_eq!(
            Scopes::parse_list("events:write,evil").unwrap_err(),
            ScopeError("evil".into())
        );
        assert!(Scopes::parse_list(" , ").is_err());
    }
}
