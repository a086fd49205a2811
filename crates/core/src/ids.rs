//! Typed ids, so an account id is never passed where a user id belongs.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl From<i64> for $name {
            fn from(id: i64) -> Self {
                Self(id)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type!(
    /// A tenant.
    AccountId,
    /// An API token.
    TokenId,
    /// A person.
    UserId,
    /// An event type of one account.
    EventTypeId,
    /// A group of people (manual, provisioned or smart).
    GroupId,
    /// An administrator of an account.
    AdminId,
    /// A training campaign.
    CampaignId,
    /// A module or policy of an account's content library.
    ContentId,
    /// One person's enrolment in one piece of a campaign's content.
    EnrollmentId,
    /// A registered webhook.
    WebhookId,
    /// A queued notice (an email or a webhook call).
    JobId,
    /// One recorded attempt at a job.
    DeliveryId,
    /// What an account asks of its people for one kind of training (compliance).
    RequirementId,
    /// A person excluded from a requirement for a while.
    ExceptionId,
    /// An export of compliance evidence, kept append-only and hash-chained.
    SnapshotId,
    /// A remote Reporting API that compliance syncs people and enrolments from.
    ConnectionId,
);
