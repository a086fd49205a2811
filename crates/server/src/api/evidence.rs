//! Compliance evidence: `/api/compliance/evidence` exports a framework's (or a control's)
//! per-person training records for a period as CSV, JSON or OSCAL assessment results, and
//! keeps each export as a hash-chained snapshot; the snapshots can be listed, read back
//! and their chain verified.

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::paging::{DataOf, ListOf, Meta, PageParams};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use coachloop_core::FieldError;
use coachloop_core::compliance::catalog;
use coachloop_core::compliance::evidence::{Format, Period};
use coachloop_core::ids::SnapshotId;
use coachloop_core::time::format_ms;
use coachloop_store::evidence::{EvidenceQuery, Snapshot, Verification};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export))
        .routes(routes!(list_snapshots))
        .routes(routes!(get_snapshot))
        .routes(routes!(verify))
}

/// The header that names the snapshot an export was kept as.
pub const SNAPSHOT_HEADER: &str = "x-evidence-snapshot";

/// A framework of the catalog.
#[derive(ToSchema)]
#[schema(as = EvidenceFramework)]
#[expect(
    dead_code,
    reason = "only describes the parameter in the OpenAPI document"
)]
enum FrameworkParam {
    #[schema(rename = "soc2")]
    Soc2,
    #[schema(rename = "iso27001")]
    Iso27001,
    #[schema(rename = "nist-800-53")]
    Nist80053,
    #[schema(rename = "nist-csf")]
    NistCsf,
    #[schema(rename = "hipaa")]
    Hipaa,
    #[schema(rename = "pci-dss")]
    PciDss,
}

/// How the export is written.
#[derive(ToSchema)]
#[schema(as = EvidenceFormat)]
#[expect(
    dead_code,
    reason = "only describes the parameter in the OpenAPI document"
)]
enum FormatParam {
    #[schema(rename = "csv")]
    Csv,
    #[schema(rename = "json")]
    Json,
    #[schema(rename = "oscal")]
    Oscal,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EvidenceParams {
    /// The framework (`soc2`, `iso27001`, `nist-800-53`, `nist-csf`, `hipaa`, `pci-dss`);
    /// it need not be enabled.
    #[param(inline, value_type = FrameworkParam, required = true)]
    pub framework: Option<String>,
    /// One control of it, as the standard writes it (`CC1.4`, `12.6.3.1`); default: all.
    pub control: Option<String>,
    /// The period's first day (`YYYY-MM-DD`, UTC, 1970-01-01 to 2999-12-30), not after `to`.
    #[param(value_type = String, format = Date, required = true)]
    pub from: Option<String>,
    /// The period's last day, included (`YYYY-MM-DD`).
    #[param(value_type = String, format = Date, required = true)]
    pub to: Option<String>,
    /// `csv` (default), `json` or `oscal` (OSCAL 1.2.1 assessment results, JSON).
    #[param(inline, value_type = Option<FormatParam>)]
    pub format: Option<String>,
}

fn bad_parameter(field: &str, message: &str) -> ApiError {
    let detail = FieldError::new(field, message);
    ApiError {
        details: vec![FieldError::new(field, message)],
        ..ApiError::bad_request(format!("`{}` {}", detail.field, detail.message))
    }
}

fn required<'a>(value: &'a Option<String>, field: &str) -> ApiResult<&'a str> {
    value
        .as_deref()
        .ok_or_else(|| bad_parameter(field, "is required"))
}

impl EvidenceParams {
    /// What to export; a bad or missing parameter is a 400 naming it, an unknown framework
    /// or control a 404.
    fn parse(&self) -> ApiResult<EvidenceQuery> {
        let framework = required(&self.framework, "framework")?;
        let from = required(&self.from, "from")?;
        let to = required(&self.to, "to")?;
        let format = match self.format.as_deref() {
            None => Format::Csv,
            Some(text) => Format::parse(text)
                .ok_or_else(|| bad_parameter("format", "must be `csv`, `json` or `oscal`"))?,
        };
        let period = Period::parse(from, to).map_err(|e| bad_parameter(&e.field, &e.message))?;
        let framework =
            catalog::framework(framework).ok_or_else(|| ApiError::not_found("framework"))?;
        let control = match self.control.as_deref() {
            None | Some("") => None,
            Some(id) => Some(
                catalog::control_of(framework.id, id)
                    .ok_or_else(|| ApiError::not_found("control"))?,
            ),
        };
        Ok(EvidenceQuery {
            framework,
            control,
            period,
            format,
        })
    }
}

/// A document with its content type and the snapshot it was kept as.
fn document(snapshot: &Snapshot, body: String) -> Response {
    let format = Format::parse(&snapshot.format).unwrap_or(Format::Json);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(SNAPSHOT_HEADER, HeaderValue::from(snapshot.id));
    response
}

/// Export evidence: everyone in scope of the framework's (or the control's) requirements,
/// with their status now and their training records of the period (open or finished in
/// it), dated by when the training happened. A framework that is not enabled is evaluated
/// for the export with the requirements enabling it would use, and the document says so.
/// Each export is kept as an evidence snapshot (its id in `X-Evidence-Snapshot`).
#[utoipa::path(get, path = "/api/compliance/evidence", tag = "compliance",
    params(EvidenceParams),
    responses(
        (status = 200, description = "the evidence: CSV with a header row (`format=csv`), a JSON document (`json`) or an OSCAL assessment-results document (`oscal`)",
            content(
                (String = "text/csv"),
                (Object = "application/json")),
            headers(("x-evidence-snapshot" = String, description = "the id of the snapshot this export was kept as"))),
        (status = 400, description = "a missing or bad parameter (named in `details`): a date not written YYYY-MM-DD or out of range, `from` after `to`, an unknown format", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such framework, or no such control of it", body = ErrorBody)),
    security(("bearer" = [])))]
async fn export(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Query(params): Query<EvidenceParams>,
) -> ApiResult<Response> {
    let query = params.parse()?;
    let (snapshot, body) = state.store.export_evidence(auth.account(), &query).await?;
    Ok(document(&snapshot, body))
}

/// A kept export, without its body.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotBody {
    pub id: i64,
    pub framework: String,
    /// `null`: every control of the framework.
    pub control: Option<String>,
    /// `csv`, `json` or `oscal`.
    pub format: String,
    /// The effective period, both days included.
    #[schema(format = Date)]
    pub period_from: String,
    #[schema(format = Date)]
    pub period_to: String,
    #[schema(format = DateTime)]
    pub collected_at: String,
    /// SHA-256 of the body (hex).
    pub sha256: String,
    /// The previous snapshot's `chain_sha256` (`null` for the account's first).
    pub previous_sha256: Option<String>,
    /// SHA-256 of `previous_sha256`, this snapshot's record and `sha256`.
    pub chain_sha256: String,
    /// Characters of the body.
    pub size: i64,
}

impl From<Snapshot> for SnapshotBody {
    fn from(s: Snapshot) -> Self {
        Self {
            id: s.id,
            framework: s.framework,
            control: s.control,
            format: s.format,
            period_from: s.period_from,
            period_to: s.period_to,
            collected_at: format_ms(s.collected_at),
            sha256: s.sha256,
            previous_sha256: s.previous_sha256,
            chain_sha256: s.chain_sha256,
            size: s.size,
        }
    }
}

/// The evidence snapshots, newest first.
#[utoipa::path(get, path = "/api/compliance/evidence/snapshots", tag = "compliance",
    params(PageParams),
    responses(
        (status = 200, description = "a page of snapshots (without their bodies)", body = ListOf<SnapshotBody>),
        (status = 400, description = "a bad page", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_snapshots(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<SnapshotBody>>> {
    let page = paging.page()?;
    let (rows, count) = state.store.evidence_snapshots(auth.account(), page).await?;
    Ok(Json(ListOf {
        data: rows.into_iter().map(SnapshotBody::from).collect(),
        meta: Meta::new(page, count),
    }))
}

/// One snapshot's body, exactly as it was exported.
#[utoipa::path(get, path = "/api/compliance/evidence/snapshots/{id}", tag = "compliance",
    params(("id" = i64, Path, description = "snapshot id", minimum = 1)),
    responses(
        (status = 200, description = "the document as exported, with its content type",
            content(
                (String = "text/csv"),
                (Object = "application/json")),
            headers(("x-evidence-snapshot" = String, description = "the snapshot's id"))),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such snapshot in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_snapshot(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let (snapshot, body) = state
        .store
        .evidence_snapshot(auth.account(), SnapshotId(id))
        .await?;
    Ok(document(&snapshot, body))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationBody {
    /// Whether every snapshot's body, record and link to the previous one match.
    pub ok: bool,
    /// Snapshots checked (up to the first broken one).
    pub checked: i64,
    /// The first broken link, if any.
    pub broken: Option<BrokenLinkBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BrokenLinkBody {
    pub snapshot_id: i64,
    /// What differs, in words.
    pub what: String,
}

impl From<Verification> for VerificationBody {
    fn from(v: Verification) -> Self {
        Self {
            ok: v.broken.is_none(),
            checked: v.checked,
            broken: v.broken.map(|b| BrokenLinkBody {
                snapshot_id: b.id.0,
                what: b.what,
            }),
        }
    }
}

/// Recompute the snapshots' chain and name the first broken link.
#[utoipa::path(get, path = "/api/compliance/evidence/verify", tag = "compliance",
    responses(
        (status = 200, description = "what the check found", body = DataOf<VerificationBody>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn verify(
    State(state): State<AppState>,
    Admin(auth): Admin,
) -> ApiResult<Json<DataOf<VerificationBody>>> {
    let verification = state.store.verify_evidence(auth.account()).await?;
    Ok(Json(DataOf {
        data: verification.into(),
    }))
}
