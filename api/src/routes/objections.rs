//! The objection API (异议处理): a consumer disputes a record or a field it reads through a
//! resource; the field's authoritative department (一数一源) — or the resource's provider —
//! confirms the data or corrects it, by hand (an audited manual correction written to the
//! library) or at the source through a normal connector run. The states and routing are
//! described in [`catalog::Objection`]'s module.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use catalog::{Correction, NewObjection, ObjectionQuery, ObjectionStatus, Resolution};
use exchange_core::{Library, LibraryWriter, Upsert};
use policy::Role;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Caller, forbidden};
use crate::problem::Problem;
use crate::routes::exchange::{CallRecord, authorize, denied, parse_key, visible};
use crate::startup::AppState;

type Reply = Result<HttpResponse, Problem>;

const RAISE_ENDPOINT: &str = "POST /api/v1/objections";
const CORRECT_ENDPOINT: &str = "POST /api/v1/objections/{id}/correct";

/// The watermark application of manual corrections in a library's commits; the watermark is
/// the objection's id.
pub const CORRECTIONS_APP: &str = "huitong-corrections";

/// Body of `POST /api/v1/objections`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"resource_code": "1-01-001-000001", "key": "330102198807150031", "field": "name", "claimed_value": "周杰", "reason": "户籍登记姓名为周杰，库中为旧名"}))]
#[serde(deny_unknown_fields)]
pub struct RaiseObjection {
    /// The resource through which the record was read.
    pub resource_code: String,
    /// The record's key, parsed as the exchange API parses it (an ID number is normalized).
    pub key: String,
    /// The disputed data item; absent: the whole record.
    #[serde(default)]
    pub field: Option<String>,
    /// The value the consumer says is right (optional; needs `field`). The value it saw is not
    /// stored.
    #[serde(default)]
    pub claimed_value: Option<String>,
    /// Why (异议理由).
    pub reason: String,
}

/// `POST /api/v1/objections`: raises an objection to a record the caller may read through the
/// exchange policy (the same decision as a lookup, audited like one), routed to the field's
/// authoritative department, or the resource's provider.
#[utoipa::path(
    post,
    path = "/api/v1/objections",
    tag = "objections",
    params(crate::openapi::RequestIdHeader),
    request_body(content = RaiseObjection),
    responses(
        (status = 201, description = "The objection, open, routed, with its due time and timeline", body = catalog::Objection, headers(("Location" = String, description = "The objection's URL"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "Refused by policy as a lookup would be (`no_grant`, `grant_expired`, `not_shared`, `role_forbidden`, `no_department`), or `item_not_granted` (`field: field`): the field is not among the granted items", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`resource_not_found`, `resource_not_served`, or `record_not_found` (`field: key`): no record the caller may see has this key", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_key` (`field: key`), `unknown_item` (`field: field`): not a data item of the resource, `invalid_claim` (`field: claimed_value`), `validation_failed` (`field: reason` when empty, `claimed_value` without a field), `invalid_body`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, response = crate::openapi::QuotaExceeded),
        (status = 500, response = crate::openapi::Internal),
        (status = 503, response = crate::openapi::AuditUnavailable),
    )
)]
pub async fn create(req: HttpRequest, state: web::Data<AppState>, body: web::Json<RaiseObjection>) -> HttpResponse {
    let mut call = CallRecord::new(&req, RAISE_ENDPOINT, &body.resource_code);
    let outcome = raise(&req, &state, &body, &mut call).await;
    call.finish(&state, outcome).await
}

fn unprocessable(code: &'static str, title: &'static str, field: &str, detail: String) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, title, detail).with_field(field)
}

async fn raise(req: &HttpRequest, state: &AppState, body: &RaiseObjection, call: &mut CallRecord) -> Reply {
    let (resource, library, access) = authorize(req, state, &body.resource_code, call).await?;
    // Nothing of the record is returned: the audit record lists no items.
    call.entry.items_plain.clear();
    call.entry.items_masked.clear();
    let schema = library.schema();
    let mut claimed = body.claimed_value.clone();
    if let Some(field) = &body.field {
        let Some(position) = schema.position(field).filter(|_| resource.item(field).is_some()) else {
            return Err(unprocessable(
                "unknown_item",
                "Unknown data item",
                "field",
                format!("{} has no data item {field:?}", resource.code),
            ));
        };
        if !access.items.iter().any(|a| &a.name == field) {
            return Err(denied(policy::Denial::ItemNotGranted).with_field("field"));
        }
        if let Some(raw) = &body.claimed_value {
            claimed = schema.fields[position]
                .normalize(raw)
                .map_err(|why| {
                    unprocessable(
                        "invalid_claim",
                        "Invalid claimed value",
                        "claimed_value",
                        format!("{field}: {why}"),
                    )
                })?
                .map(std::borrow::Cow::into_owned);
        }
    }
    let key = parse_key(&library, &body.key)?;
    call.entry.subject_hash = Some(policy::sha256_hex(&[&state.audit_key, key.as_bytes()]));
    let row_filter = crate::query::grant_filter(&access, schema)?;
    let stored = visible(
        row_filter.as_deref(),
        library.get(&key).map_err(|e| Problem::internal(&e))?,
    )
    .ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "record_not_found",
            "No such record",
            format!("resource {} holds no record for this key", resource.code),
        )
        .with_field("key")
    })?;
    let caller = Caller::from_request(req, state).await?;
    let objection = state
        .catalog
        .create_objection(
            &NewObjection {
                resource_code: resource.code.clone(),
                library: schema.name.to_string(),
                record_key: key,
                field: body.field.clone(),
                claimed_value: claimed,
                reason: body.reason.clone(),
                department_id: caller.department()?,
                credential_id: caller.0.id,
                actor: caller.actor(),
                record_version: stored.version,
            },
            state.objection_deadline_working_days,
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/objections/{}", objection.id)))
        .json(objection))
}

/// Query of `GET /api/v1/objections`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only `open`, `confirmed` or `corrected` objections.
    #[serde(default)]
    pub status: Option<String>,
    /// `true`: only open objections past their deadline.
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    pub overdue: Option<String>,
    /// Only objections on this resource code.
    #[serde(default)]
    pub resource: Option<String>,
}

/// `GET /api/v1/objections`: a department sees what it raised and what it must answer;
/// platform staff see every objection.
#[utoipa::path(
    get,
    path = "/api/v1/objections",
    tag = "objections",
    params(ListQuery),
    responses(
        (status = 200, description = "The objections, newest first, each with its timeline", body = crate::openapi::Items<catalog::Objection>),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, description = "`invalid_query` naming the parameter (`status`, `overdue`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>, query: web::Query<ListQuery>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let status = query
        .status
        .as_deref()
        .map(|s| ObjectionStatus::parse(s, "status"))
        .transpose()
        .map_err(|e| crate::problem::bad_request_body("invalid_query", e.to_string()).with_field("status"))?;
    let query = ObjectionQuery {
        department_id: if caller.is_platform() {
            None
        } else {
            Some(caller.department()?)
        },
        status,
        overdue: match query.overdue.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(crate::problem::bad_request_body(
                    "invalid_query",
                    format!("overdue: true or false, not {other:?}"),
                )
                .with_field("overdue"));
            }
        },
        resource_code: query.resource.clone(),
    };
    Ok(HttpResponse::Ok().json(json!({"items": state.catalog.objections(&query).await?})))
}

/// `GET /api/v1/objections/{id}`: for the raising and the routed department and platform
/// staff. The routed department's first look is a `viewed` event.
#[utoipa::path(
    get,
    path = "/api/v1/objections/{id}",
    tag = "objections",
    params(("id" = i64, Path, description = "The objection's id")),
    responses(
        (status = 200, description = "The objection with its timeline", body = catalog::Objection),
        (status = 400, response = crate::openapi::BadPath),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get(req: HttpRequest, state: web::Data<AppState>, id: web::Path<i64>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let objection = state.catalog.objection(*id).await?;
    if caller.is_platform() {
        return Ok(HttpResponse::Ok().json(objection));
    }
    let department = caller.department()?;
    if department == objection.routed_department_id {
        state.catalog.objection_viewed(*id, department, &caller.actor()).await?;
        return Ok(HttpResponse::Ok().json(state.catalog.objection(*id).await?));
    }
    if department != objection.raised_by_department_id {
        return Err(forbidden(format!("objection {id} is between other departments")));
    }
    Ok(HttpResponse::Ok().json(objection))
}

/// Body of `confirm`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    /// Why the data is right (答复), shown to the consumer.
    pub answer: String,
}

/// `POST /api/v1/objections/{id}/confirm`: the routed department says the data is right.
#[utoipa::path(
    post,
    path = "/api/v1/objections/{id}/confirm",
    tag = "objections",
    params(("id" = i64, Path, description = "The objection's id")),
    request_body(content = Confirm),
    responses(
        (status = 200, description = "The objection, confirmed (final)", body = catalog::Objection),
        (status = 400, response = crate::openapi::BadPath),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: not a data officer (provider_admin) of the routed department", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, description = "`invalid_state`: the objection is no longer open", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (`field: answer`): empty; `invalid_body`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn confirm(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Confirm>,
) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::ProviderAdmin], "answering an objection")?;
    let objection = state
        .catalog
        .confirm_objection(*id, caller.department()?, &caller.actor(), &body.answer)
        .await?;
    Ok(HttpResponse::Ok().json(objection))
}

/// Body of `correct` (人工更正).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"values": {"name": "周杰"}, "note": "按户籍档案更正"}))]
#[serde(deny_unknown_fields)]
pub struct Correct {
    /// The corrected values by library field (not the key), normalized like source values.
    pub values: BTreeMap<String, String>,
    /// A note to the consumer.
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /api/v1/objections/{id}/correct`: the routed department corrects the record by
/// hand. The values are written to the library as the department's authoritative data
/// (source: its code, run 0) in one commit whose watermark under `huitong-corrections` is the
/// objection's id; the call is recorded in the audit trail; the objection is corrected with the
/// library version that carries the correction.
#[utoipa::path(
    post,
    path = "/api/v1/objections/{id}/correct",
    tag = "objections",
    params(("id" = i64, Path, description = "The objection's id"), crate::openapi::RequestIdHeader),
    request_body(content = Correct),
    responses(
        (status = 200, description = "The objection, corrected (final), with `corrected_version`", body = catalog::Objection),
        (status = 400, response = crate::openapi::BadPath),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: not a data officer of the routed department, or (`field: values.<f>`) a field another department is authoritative for", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such objection; `record_not_found` (`field: key`): the record is gone from the library", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_state`: the objection is no longer open", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` naming `values` (none given) or `values.<f>` (the key, or an empty value); `unknown_item` (`field: values.<f>`); `invalid_value` (`field: values.<f>`): does not normalize; `correction_unchanged` (`field: values`): the record holds these values already (confirm instead); `invalid_body`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
        (status = 503, response = crate::openapi::AuditUnavailable),
    )
)]
pub async fn correct(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Correct>,
) -> HttpResponse {
    let mut call = CallRecord::new(&req, CORRECT_ENDPOINT, "");
    call.entry.resource_code = None;
    let outcome = serve_correct(&req, &state, *id, &body, &mut call).await;
    call.finish(&state, outcome).await
}

async fn serve_correct(req: &HttpRequest, state: &AppState, id: i64, body: &Correct, call: &mut CallRecord) -> Reply {
    let caller = Caller::from_request(req, state).await?;
    call.entry.credential_id = Some(caller.0.id);
    call.entry.department = caller.0.department_code.clone();
    caller.require(&[Role::ProviderAdmin], "correcting a record")?;
    let department = caller.department()?;
    let objection = state.catalog.check_objection_answerable(id, department).await?;
    call.entry.resource_code = Some(objection.resource_code.clone());
    call.entry.subject_hash = Some(policy::sha256_hex(&[&state.audit_key, objection.record_key.as_bytes()]));
    let library = library_named(state, &objection.library)?;
    let schema = library.schema();
    let invalid = |field: String, message: &str| {
        Problem::from(catalog::Error::Invalid {
            field,
            message: message.to_string(),
        })
    };
    if body.values.is_empty() {
        return Err(invalid("values".into(), "give at least one corrected value"));
    }
    let authorities = state.catalog.field_authorities(&objection.library).await?;
    let mut row: Vec<Option<String>> = vec![None; schema.fields.len()];
    row[0] = Some(objection.record_key.clone());
    for (name, raw) in &body.values {
        let field = format!("values.{name}");
        let Some(position) = schema.position(name) else {
            return Err(unprocessable(
                "unknown_item",
                "Unknown data item",
                &field,
                format!("library {} has no field {name:?}", schema.name),
            ));
        };
        if name == schema.key {
            return Err(invalid(field, "the key identifies the record and is not corrected"));
        }
        if let Some(owner) = authorities.iter().find(|a| &a.field == name)
            && owner.department_id != department
        {
            return Err(forbidden(format!(
                "{} is the authoritative source of {name} (一数一源); only it corrects that field",
                owner.department_code
            ))
            .with_field(field));
        }
        let value = schema.fields[position]
            .normalize(raw)
            .map_err(|why| unprocessable("invalid_value", "Invalid value", &field, format!("{name}: {why}")))?;
        let Some(value) = value else {
            return Err(invalid(field, "a correction gives a value"));
        };
        row[position] = Some(value.into_owned());
    }
    if library
        .get(&objection.record_key)
        .map_err(|e| Problem::internal(&e))?
        .is_none()
    {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "record_not_found",
            "No such record",
            format!("library {} no longer holds the disputed record", schema.name),
        )
        .with_field("key"));
    }
    let source = caller.0.department_code.clone().unwrap_or_default();
    let fields: Vec<&String> = body.values.keys().collect();
    let mut writer = correction_writer(&library, &source, &fields)
        .await
        .map_err(|e| Problem::internal(&e))?;
    let version = if writer.upsert(row).map_err(|e| Problem::internal(&e))? == Upsert::Unchanged {
        // The record holds these values. When the library's last correction answers this very
        // objection, an earlier attempt committed it and failed after (the objection was not
        // marked): the retry finishes it. Otherwise there is nothing to correct.
        let answered = writer
            .watermark(CORRECTIONS_APP)
            .await
            .map_err(|e| Problem::internal(&e))?
            == Some(id);
        // Dropped without a commit: the library is as it was.
        drop(writer);
        if !answered {
            return Err(unprocessable(
                "correction_unchanged",
                "Nothing to correct",
                "values",
                "the record holds these values already; confirm the objection instead".into(),
            ));
        }
        corrected_version(&library, &objection.record_key, &source, &fields)?
    } else {
        writer
            .commit(CORRECTIONS_APP, id)
            .await
            .map_err(|e| Problem::internal(&e))?
            .version
    };
    call.entry.row_count = Some(1);
    let objection = state
        .catalog
        .correct_objection(
            id,
            department,
            &caller.actor(),
            Correction {
                resolution: Resolution::Manual,
                version,
                note: body.note.clone(),
                detail: json!({"fields": fields, "library_version": version, "request_id": call.entry.request_id}),
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(objection))
}

/// The library version of an earlier correction by `source` of `fields` of the record `key`:
/// the version its lineage gives the corrected fields (a manual correction is run 0).
fn corrected_version(library: &Library, key: &str, source: &str, fields: &[&String]) -> Result<i64, Problem> {
    let record = library
        .get(key)
        .map_err(|e| Problem::internal(&e))?
        .ok_or_else(|| Problem::internal(&"the corrected record is gone"))?;
    let schema = library.schema();
    Ok(fields
        .iter()
        .filter_map(|f| schema.position(f))
        .filter_map(|i| record.lineage.field(i))
        .filter(|o| o.source == source && o.run == 0)
        .map(|o| o.version)
        .max()
        .unwrap_or(record.version))
}

/// The one place a manual correction opens a library write: as the routed department, outside
/// any sync run (run 0), authoritative for the fields it corrects (and only those).
async fn correction_writer<'l>(
    library: &'l Library,
    department_code: &str,
    fields: &[&String],
) -> exchange_core::Result<LibraryWriter<'l>> {
    let authority = exchange_core::Authority::by_field(library.schema(), |f| fields.iter().any(|c| c.as_str() == f));
    library.writer(department_code, 0, authority).await
}

fn library_named(state: &AppState, name: &str) -> Result<Arc<Library>, Problem> {
    state
        .libraries
        .get(name)
        .ok_or_else(|| Problem::internal(&format!("library {name} of an objection is not open")))
}

/// Body of `resolve`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    /// The library version, committed by a connector run after the fix at the source, in
    /// which the record differs from the one disputed.
    pub library_version: i64,
    /// A note to the consumer.
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /api/v1/objections/{id}/resolve`: the routed department fixed the record at its
/// source and a normal connector run brought the fix in. The record as of `library_version`
/// must differ from the disputed one — in the disputed field, or anywhere when the objection
/// names none; the objection is corrected with the version of that change.
#[utoipa::path(
    post,
    path = "/api/v1/objections/{id}/resolve",
    tag = "objections",
    params(("id" = i64, Path, description = "The objection's id")),
    request_body(content = Resolve),
    responses(
        (status = 200, description = "The objection, corrected (final), `resolution: run`", body = catalog::Objection),
        (status = 400, response = crate::openapi::BadPath),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: not a data officer of the routed department", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, description = "`invalid_state`: the objection is no longer open", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (`field: library_version`): no such version, or not after the disputed one; `record_unchanged` (`field: library_version`): the record as of that version is the disputed one; `invalid_body`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn resolve(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Resolve>,
) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::ProviderAdmin], "resolving an objection")?;
    let department = caller.department()?;
    let objection = state.catalog.check_objection_answerable(*id, department).await?;
    let library = library_named(&state, &objection.library)?;
    let invalid = |message: String| {
        Problem::from(catalog::Error::Invalid {
            field: "library_version".into(),
            message,
        })
    };
    let current = library.version().map_err(|e| Problem::internal(&e))?;
    let asked = body.library_version;
    if asked < 1 || asked > current {
        return Err(invalid(format!(
            "library {} has versions 1 to {current}",
            objection.library
        )));
    }
    if asked <= objection.record_version {
        return Err(invalid(format!(
            "the objection disputes the record of version {}; name a later version",
            objection.record_version
        )));
    }
    let disputed = record_as_of(&library, &objection.record_key, objection.record_version).await?;
    let now = record_as_of(&library, &objection.record_key, asked).await?;
    let position = objection.field.as_deref().and_then(|f| library.schema().position(f));
    let changed = match (&disputed, &now) {
        (Some(before), Some(after)) => match position {
            Some(p) => before.values[p] != after.values[p],
            None => before.values != after.values,
        },
        // Deleted since (or, impossibly, absent then): the disputed record is gone.
        (a, b) => a.is_some() != b.is_some(),
    };
    let change_version = now.as_ref().map(|r| r.version).unwrap_or(asked);
    if !changed || change_version <= objection.record_version {
        return Err(unprocessable(
            "record_unchanged",
            "Record unchanged",
            "library_version",
            format!(
                "as of version {asked} the record's {} is as disputed; correct it at the source and sync first",
                objection.field.as_deref().unwrap_or("content")
            ),
        ));
    }
    let objection = state
        .catalog
        .correct_objection(
            *id,
            department,
            &caller.actor(),
            Correction {
                resolution: Resolution::Run,
                version: change_version,
                note: body.note.clone(),
                detail: json!({"library_version": change_version, "named_version": asked}),
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(objection))
}

/// A record as of a library version (a deletion reads as `None`).
async fn record_as_of(
    library: &Library,
    key: &str,
    version: i64,
) -> Result<Option<exchange_core::StoredRecord>, Problem> {
    library
        .record_as_of(key, version)
        .await
        .map_err(|e| Problem::internal(&e))
}
