//! A join or leave of a group, as the engine decides it and the writers record it
//! (history, webhooks, auto-enrolment).

/// A join or leave to record.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub account: i64,
    pub group: i64,
    pub user: i64,
    pub joined: bool,
    pub at: i64,
    pub version: i64,
    pub reason: String,
}
