//! The Reporting API's JSON shapes, field for field as reference/reporting-api.md shows
//! them: `null` where the reference has null, keys left out only where it says so (the
//! `include_*` and `exclude_percentages` options). Instants are RFC 3339 with
//! milliseconds and `Z`, dates `YYYY-MM-DD`.

use coachloop_core::duration::IsoDuration;
use coachloop_core::ids::ContentId;
use coachloop_core::time::format_ms;
use coachloop_store::campaigns::Campaign;
use coachloop_store::content::ContentRow;
use coachloop_store::groups::Group;
use coachloop_store::reporting::{EnrollmentNames, ReportEnrollment};
use coachloop_store::users::User;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::ToSchema;

/// The publisher of the library shipped in the binary.
pub const PUBLISHER: &str = "coachloop";

#[derive(Debug, Serialize, ToSchema)]
pub struct Account {
    pub name: String,
    /// Always `paid`: coachloop has no trial accounts.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The domains of active people's email addresses.
    pub domains: Vec<String>,
    pub admins: Vec<Admin>,
    /// Always `coachloop`.
    pub subscription_level: &'static str,
    /// Always null: a self-hosted server does not lapse.
    pub subscription_end_date: Option<String>,
    /// Active people.
    pub number_of_seats: i64,
    pub current_risk_score: f64,
    /// The last six months, oldest first.
    pub risk_score_history: Vec<RiskScore>,
}

/// An administrator as `/v1/account` lists them.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AccountAdmin)]
pub struct Admin {
    pub id: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RiskScore {
    pub risk_score: f64,
    /// `YYYY-MM-DD`.
    pub date: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct V1User {
    pub id: i64,
    pub employee_number: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub job_title: Option<String>,
    pub email: String,
    /// Always 0.0: coachloop runs no phishing simulations.
    pub phish_prone_percentage: f64,
    pub phone_number: Option<String>,
    pub extension: Option<String>,
    pub mobile_phone_number: Option<String>,
    pub location: Option<String>,
    pub division: Option<String>,
    pub manager_name: Option<String>,
    pub manager_email: Option<String>,
    pub provisioning_managed: bool,
    pub provisioning_guid: Option<String>,
    /// Group ids, or whole groups with `expand=group`.
    #[schema(schema_with = user_groups_schema)]
    pub groups: UserGroups,
    pub current_risk_score: f64,
    pub aliases: Vec<String>,
    pub joined_on: String,
    pub last_sign_in: Option<String>,
    /// `active` or `archived`.
    pub status: String,
    pub organization: Option<String>,
    pub department: Option<String>,
    pub language: Option<String>,
    pub comment: Option<String>,
    pub employee_start_date: Option<String>,
    pub archived_at: Option<String>,
    pub custom_field_1: Option<String>,
    pub custom_field_2: Option<String>,
    pub custom_field_3: Option<String>,
    pub custom_field_4: Option<String>,
    pub custom_date_1: Option<String>,
    pub custom_date_2: Option<String>,
}

/// A person's groups: their ids, or the groups themselves with `expand=groups`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum UserGroups {
    Ids(Vec<i64>),
    Expanded(Vec<V1Group>),
}

/// `groups` as one array whose items are ids or groups: an empty list is both forms, so
/// the two forms cannot be told apart as a `oneOf` of two arrays.
fn user_groups_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    use utoipa::openapi::{KnownFormat, Ref, SchemaFormat};
    ArrayBuilder::new()
        .items(
            OneOfBuilder::new()
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
                )
                .item(Ref::from_schema_name("V1Group")),
        )
        .description(Some(
            "group ids, or the groups themselves with `expand=groups`",
        ))
        .build()
}

impl V1User {
    pub fn new(user: User, groups: UserGroups, risk: f64) -> Self {
        Self {
            id: user.id.0,
            employee_number: user.employee_number,
            first_name: user.first_name,
            last_name: user.last_name,
            job_title: user.job_title,
            email: user.email,
            phish_prone_percentage: 0.0,
            phone_number: user.phone_number,
            extension: user.extension,
            mobile_phone_number: user.mobile_phone_number,
            location: user.location,
            division: user.division,
            manager_name: user.manager_name,
            manager_email: user.manager_email,
            provisioning_managed: user.provisioning_managed,
            provisioning_guid: user.provisioning_guid,
            groups,
            current_risk_score: risk,
            aliases: user.aliases,
            joined_on: format_ms(user.joined_on),
            last_sign_in: user.last_sign_in.map(format_ms),
            status: user.status,
            organization: user.organization,
            department: user.department,
            language: user.language,
            comment: user.comment,
            employee_start_date: user.employee_start_date,
            archived_at: user.archived_at.map(format_ms),
            custom_field_1: user.custom_field_1,
            custom_field_2: user.custom_field_2,
            custom_field_3: user.custom_field_3,
            custom_field_4: user.custom_field_4,
            custom_date_1: user.custom_date_1,
            custom_date_2: user.custom_date_2,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct V1Group {
    pub id: i64,
    pub name: String,
    /// `console_group`, `smart_group` or `adi_managed_group`.
    pub group_type: String,
    pub provisioning_guid: Option<String>,
    pub member_count: i64,
    pub current_risk_score: f64,
    /// `active` or `archived`.
    pub status: String,
}

impl V1Group {
    pub fn new(group: Group, risk: f64) -> Self {
        Self {
            id: group.id.0,
            name: group.name,
            group_type: group.group_type,
            provisioning_guid: group.provisioning_guid,
            member_count: group.member_count,
            current_risk_score: risk,
            status: group.status,
        }
    }
}

/// A training module.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorePurchase {
    pub store_purchase_id: i64,
    /// Always `Store Purchase`.
    pub content_type: &'static str,
    pub name: String,
    pub description: String,
    /// Always `Training Module`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Minutes.
    pub duration: i64,
    pub retired: bool,
    pub retirement_date: Option<String>,
    pub publish_date: String,
    /// `coachloop` for the built-in library, the account's name for its own modules.
    pub publisher: String,
    pub purchase_date: String,
    pub policy_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Policy {
    pub policy_id: i64,
    /// Always `Uploaded Policy`.
    pub content_type: &'static str,
    pub name: String,
    /// Minutes of reading before it can be acknowledged.
    pub minimum_time: i64,
    /// Always `en-us`.
    pub default_language: &'static str,
    /// False once retired.
    pub published: bool,
}

/// A module or a policy, as a campaign lists its content.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CampaignContent {
    Module(StorePurchase),
    Policy(Policy),
}

impl CampaignContent {
    pub fn new(row: ContentRow, account_name: &str) -> Self {
        if row.is_policy() {
            Self::Policy(Policy {
                policy_id: row.id.0,
                content_type: "Uploaded Policy",
                name: row.title,
                minimum_time: row.minutes,
                default_language: "en-us",
                published: row.retired_at.is_none(),
            })
        } else {
            Self::Module(StorePurchase {
                store_purchase_id: row.id.0,
                content_type: "Store Purchase",
                name: row.title,
                description: row.summary,
                kind: "Training Module",
                duration: row.minutes,
                retired: row.retired_at.is_some(),
                retirement_date: row.retired_at.map(format_ms),
                publish_date: format_ms(row.published_at),
                publisher: if row.builtin {
                    PUBLISHER.to_owned()
                } else {
                    account_name.to_owned()
                },
                purchase_date: format_ms(row.created_at),
                policy_url: None,
            })
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrainingCampaign {
    pub campaign_id: i64,
    pub name: String,
    pub groups: Vec<CampaignGroup>,
    /// `Created`, `In Progress`, `Completed` or `Closed`.
    pub status: String,
    /// The campaign's modules.
    pub modules: Vec<StorePurchase>,
    /// Its modules and policies, in order.
    pub content: Vec<CampaignContent>,
    /// `Specific End Date` or `Relative Duration`.
    pub duration_type: &'static str,
    pub start_date: String,
    pub end_date: Option<String>,
    /// e.g. `1 week`; null with a specific end date.
    pub relative_duration: Option<String>,
    pub auto_enroll: bool,
    pub allow_multiple_enrollments: bool,
    /// Finished enrolments as a whole percentage; left out with `exclude_percentages`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_percentage: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignGroup {
    /// 0: all users.
    pub group_id: i64,
    pub name: String,
}

impl TrainingCampaign {
    /// `content` holds (at least) the campaign's content rows by id.
    pub fn new(
        campaign: Campaign,
        content: &HashMap<ContentId, ContentRow>,
        account_name: &str,
        percentages: bool,
    ) -> Self {
        let mut groups: Vec<CampaignGroup> = campaign
            .groups
            .iter()
            .map(|(id, name)| CampaignGroup {
                group_id: id.0,
                name: name.clone(),
            })
            .collect();
        if campaign.all_users {
            groups.insert(
                0,
                CampaignGroup {
                    group_id: 0,
                    name: "All Users".to_owned(),
                },
            );
        }
        let items: Vec<CampaignContent> = campaign
            .content
            .iter()
            .filter_map(|id| content.get(id))
            .map(|row| CampaignContent::new(row.clone(), account_name))
            .collect();
        let modules = campaign
            .content
            .iter()
            .filter_map(|id| content.get(id))
            .filter(|row| !row.is_policy())
            .filter_map(
                |row| match CampaignContent::new(row.clone(), account_name) {
                    CampaignContent::Module(module) => Some(module),
                    CampaignContent::Policy(_) => None,
                },
            )
            .collect();
        let relative = campaign.relative_duration.as_deref().map(|text| {
            IsoDuration::parse(text).map_or_else(|_| text.to_owned(), |d| d.in_words())
        });
        Self {
            campaign_id: campaign.id.0,
            completion_percentage: percentages.then(|| campaign.completion_percentage()),
            name: campaign.name,
            groups,
            status: campaign.status,
            modules,
            content: items,
            duration_type: if campaign.end_at.is_some() {
                "Specific End Date"
            } else {
                "Relative Duration"
            },
            start_date: format_ms(campaign.start_at),
            end_date: campaign.end_at.map(format_ms),
            relative_duration: relative,
            auto_enroll: campaign.auto_enroll,
            allow_multiple_enrollments: campaign.allow_multiple,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct V1Enrollment {
    pub enrollment_id: i64,
    /// `Store Purchase` or `Uploaded Policy`.
    pub content_type: &'static str,
    #[schema(value_type = String)]
    pub module_name: Arc<str>,
    pub user: EnrolledUser,
    #[schema(value_type = String)]
    pub campaign_name: Arc<str>,
    pub enrollment_date: String,
    pub start_date: Option<String>,
    pub completion_date: Option<String>,
    /// `Not Started`, `In Progress`, `Completed`, `Passed` or `Past Due`.
    pub status: String,
    /// Seconds.
    pub time_spent: i64,
    pub policy_acknowledged: bool,
    /// With `include_campaign_id=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<i64>,
    /// With `include_store_purchase_id=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_purchase_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrolledUser {
    pub id: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: String,
    /// With `include_employee_number=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub employee_number: Option<Option<String>>,
}

/// Which of the optional enrolment keys to show.
#[derive(Debug, Clone, Copy, Default)]
pub struct Includes {
    pub campaign_id: bool,
    pub store_purchase_id: bool,
    pub employee_number: bool,
}

impl V1Enrollment {
    pub fn new(row: ReportEnrollment, names: &EnrollmentNames, includes: Includes) -> Self {
        let (policy, title) = names
            .content
            .get(&row.content_id)
            .cloned()
            .unwrap_or((false, Arc::from("")));
        Self {
            enrollment_id: row.id.0,
            content_type: if policy {
                "Uploaded Policy"
            } else {
                "Store Purchase"
            },
            module_name: title,
            user: EnrolledUser {
                id: row.user_id.0,
                first_name: row.first_name,
                last_name: row.last_name,
                email: row.email,
                employee_number: includes.employee_number.then_some(row.employee_number),
            },
            campaign_name: names
                .campaigns
                .get(&row.campaign_id)
                .cloned()
                .unwrap_or_else(|| Arc::from("")),
            enrollment_date: format_ms(row.enrolled_at),
            start_date: row.started_at.map(format_ms),
            completion_date: row.completed_at.map(format_ms),
            status: row.status,
            time_spent: row.time_spent,
            policy_acknowledged: row.policy_acknowledged,
            campaign_id: includes.campaign_id.then_some(row.campaign_id.0),
            store_purchase_id: includes.store_purchase_id.then_some(row.content_id.0),
        }
    }
}
