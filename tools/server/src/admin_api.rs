//! The management API under `/api/v1` and `/metrics`, for operators, the CLI and Prometheus:
//! `Authorization: Bearer <admin token or a user's API token>`, checked with the role each route
//! needs (`roles::required`) by the `guard::require_role` layer on every route before anything
//! else runs (no handler checks it, none can forget to). The audit log names the token's actor. Documented in
//! `docs/server.md`.

use crate::api;
use crate::app_state::AppState;
use crate::artifact_files::{self, ForeignMeta};
use crate::audit;
use crate::error::{ApiError, ApiResult};
use crate::guard::{self, ApiPath, ApiQuery, JsonBody};
use crate::intake;
use crate::links;
use crate::operations;
use crate::roles::Principal;
use crate::store::{DeviceRow, NewRollout, PatchRow, Store};
use crate::tokens;
use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rustupdate_ddi::attributes;
use rustupdate_rollout::{Command, Phases, RolloutSpec, RolloutState, Threshold};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Every route behind the admin token; all but the upload (streamed to disk, with a per-chunk
/// idle timeout instead) also within the request timeout.
pub fn routes(app: &AppState) -> Router<AppState> {
    let bounded = Router::new()
        .route("/api/v1/artifacts", get(list_artifacts))
        .route(
            "/api/v1/artifacts/{id}/deltas",
            get(list_artifact_deltas).post(queue_delta),
        )
        .route("/api/v1/deltas", get(list_deltas))
        .route("/api/v1/devices", post(add_device).get(list_devices))
        .route("/api/v1/devices/{controller}", get(show_device))
        .route("/api/v1/devices/{controller}/tags", put(change_tags))
        .route("/api/v1/rollouts", post(create_rollout).get(list_rollouts))
        .route("/api/v1/rollouts/{id}", get(show_rollout))
        .route("/api/v1/rollouts/{id}/{command}", post(rollout_command))
        .route("/api/v1/audit", get(audit_log))
        .route("/metrics", get(crate::metrics_api::scrape))
        .route_layer(from_fn_with_state(app.clone(), guard::deadline));
    Router::new()
        .route("/api/v1/artifacts", post(upload_artifact))
        .route("/api/v1/artifacts/{id}/patch", post(upload_patch))
        .merge(bounded)
        .route_layer(from_fn_with_state(app.clone(), guard::require_role))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    #[serde(default)]
    foreign: bool,
    name: Option<String>,
    version: Option<String>,
    /// Comma-separated.
    device_types: Option<String>,
    filename: Option<String>,
}

async fn upload_artifact(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<UploadQuery>,
    body: Body,
) -> ApiResult<(StatusCode, Json<crate::store::ArtifactRow>)> {
    guard::check_declared_length(&headers, app.inner.settings.max_upload_bytes).map_err(|_| {
        ApiError::TooLarge(format!(
            "the upload is larger than the limit of {} bytes (max-upload-bytes)",
            app.inner.settings.max_upload_bytes
        ))
    })?;
    let foreign = if query.foreign {
        let missing = |what: &str| ApiError::BadRequest(format!("a foreign artifact needs {what}"));
        let meta = ForeignMeta {
            name: query.name.ok_or_else(|| missing("name"))?,
            version: query.version.ok_or_else(|| missing("version"))?,
            device_types: query
                .device_types
                .ok_or_else(|| missing("device_types"))?
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            filename: query.filename.ok_or_else(|| missing("filename"))?,
        };
        if !artifact_files::valid_filename(&meta.filename) {
            return Err(ApiError::BadRequest(format!(
                "file name {:?} must be letters, digits, . _ - +, not starting with a dot",
                meta.filename
            )));
        }
        if meta.device_types.is_empty() || meta.name.is_empty() || meta.version.is_empty() {
            return Err(ApiError::BadRequest(
                "name, version and at least one device type must not be empty".into(),
            ));
        }
        Some(meta)
    } else {
        None
    };
    let (row, inserted) = intake::receive(&app, body.into_data_stream(), foreign).await?;
    let status = if inserted {
        intake::record(&app, &who.actor, &row).await;
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(row)))
}

async fn list_artifacts(
    State(app): State<AppState>,
) -> ApiResult<Json<Vec<crate::store::ArtifactRow>>> {
    Ok(Json(app.store.artifacts().await?))
}

async fn artifact_by_id(app: &AppState, id: i64) -> ApiResult<crate::store::ArtifactRow> {
    app.store
        .artifact(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no artifact {id}")))
}

/// The patches of an artifact: made, being made, queued or failed (with the reason).
async fn list_artifact_deltas(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<PatchRow>>> {
    let target = artifact_by_id(&app, id).await?;
    Ok(Json(app.store.patches_of(target.id).await?))
}

/// Receives a patch of the artifact made by a release pipeline (`artifact upload --delta`):
/// streamed to disk (at most the artifact's size: a larger patch saves nothing), checked to
/// rebuild the artifact from a release the server holds, then offered like a built one. A
/// refused patch leaves nothing behind.
async fn upload_patch(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Vec<PatchRow>>)> {
    let target = artifact_by_id(&app, id).await?;
    if target.kind != "rua" {
        return Err(ApiError::BadRequest(format!(
            "artifact {id} is not a .rua: patches rebuild rustupdate artifacts only"
        )));
    }
    let limit = target.size as u64;
    guard::check_declared_length(&headers, limit).map_err(|_| {
        ApiError::TooLarge(format!(
            "the patch is larger than artifact {id} itself ({limit} bytes)"
        ))
    })?;
    let (file, digests) = intake::receive_file(&app, body.into_data_stream(), limit).await?;
    let bases = app.store.artifacts().await?;
    let files = crate::deltas::JobFiles::of(&app);
    let keyring = app.inner.settings.keyring()?;
    let (checked_file, target_copy) = (file.path().to_owned(), target.clone());
    let verdict = tokio::task::spawn_blocking(move || {
        crate::deltas::check_uploaded(&checked_file, &target_copy, &bases, &files, &keyring)
    })
    .await
    .map_err(|e| anyhow::anyhow!("patch check: {e}"))?;
    let (base_id, base_sha256) = verdict.map_err(ApiError::BadRequest)?;
    let artifacts_dir = app.inner.artifacts_dir.clone();
    let sha = digests.sha256.clone();
    tokio::task::spawn_blocking(move || artifact_files::keep(file, &artifacts_dir, &sha))
        .await
        .map_err(|e| anyhow::anyhow!("storing task: {e}"))??;
    let stored = crate::store::PatchFile {
        sha256: digests.sha256,
        sha1: digests.sha1,
        md5: digests.md5,
        size: digests.size as i64,
    };
    if !app
        .store
        .add_uploaded_patch(target.id, &base_sha256, Some(base_id), &stored)
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "artifact {id} has a patch from base image {base_sha256} already (ready or being \
             built)"
        )));
    }
    audit::record(
        &app,
        &who.actor,
        "delta-upload",
        &format!("artifact {}", target.id),
        &format!("patch from artifact {base_id}, {} bytes", stored.size),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(app.store.patches_of(target.id).await?),
    ))
}

/// Every patch job, newest first.
async fn list_deltas(State(app): State<AppState>) -> ApiResult<Json<Vec<PatchRow>>> {
    Ok(Json(app.store.patches().await?))
}

/// Queues a patch of the artifact from a base the operator names (a release devices will run,
/// before they report it). 201 when queued, 200 when one exists already.
async fn queue_delta(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<i64>,
    JsonBody(request): JsonBody<api::QueueDelta>,
) -> ApiResult<(StatusCode, Json<Vec<PatchRow>>)> {
    let target = artifact_by_id(&app, id).await?;
    let base = artifact_by_id(&app, request.base_artifact_id).await?;
    let queued = crate::deltas::queue_named(&app, &target, &base).await?;
    if queued {
        audit::record(
            &app,
            &who.actor,
            "delta-queue",
            &format!("artifact {}", target.id),
            &format!("patch from artifact {} ({})", base.id, base.version),
        )
        .await;
    }
    let status = if queued {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(app.store.patches_of(target.id).await?)))
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 64
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn check_tags(tags: &[String]) -> ApiResult<()> {
    match tags.iter().find(|t| !valid_tag(t)) {
        Some(bad) => Err(ApiError::BadRequest(format!(
            "tag {bad:?} is not 1 to 64 characters of A-Z a-z 0-9 . _ : -"
        ))),
        None => Ok(()),
    }
}

async fn add_device(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(request): JsonBody<api::AddDevice>,
) -> ApiResult<(StatusCode, Json<api::AddedDevice>)> {
    let id = links::controller_id(&request.controller_id)?;
    check_tags(&request.tags)?;
    let token = tokens::generate()?;
    if !app
        .store
        .add_device(
            id.as_str(),
            request.device_type.as_deref(),
            &tokens::hash(&token),
        )
        .await?
    {
        return Err(ApiError::Conflict(format!("device {id} exists already")));
    }
    if let Some(device) = app.store.device(id.as_str()).await? {
        app.store.change_tags(device.id, &request.tags, &[]).await?;
    }
    log::info!("event=device-added device={id}");
    let detail = format!(
        "type {}, tags [{}]",
        request
            .device_type
            .as_deref()
            .unwrap_or("(from the device)"),
        request.tags.join(", ")
    );
    audit::record(
        &app,
        &who.actor,
        "device-add",
        &format!("device {id}"),
        &detail,
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(api::AddedDevice {
            controller_id: id.to_string(),
            token,
        }),
    ))
}

pub fn device_view(row: &DeviceRow) -> api::Device {
    api::Device {
        controller_id: row.controller_id.clone(),
        device_type: row.device_type.clone(),
        tags: row.tags.clone(),
        attributes: row.attributes.clone(),
        created_at: row.created_at,
        last_seen: row.last_seen,
        running_version: row.attributes.get(attributes::RUNNING_VERSION).cloned(),
        reported_device_type: row.type_mismatch().map(str::to_owned),
    }
}

async fn list_devices(State(app): State<AppState>) -> ApiResult<Json<Vec<api::Device>>> {
    app.flush_contacts().await?;
    Ok(Json(
        app.store.devices().await?.iter().map(device_view).collect(),
    ))
}

/// A device with its actions and their feedback.
pub async fn device_detail(store: &Store, controller: &str) -> ApiResult<api::DeviceDetail> {
    let device = store
        .device(controller)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device {controller:?}")))?;
    let mut actions = Vec::new();
    for action in store.actions_of_device(device.id).await? {
        let rollout = store.rollout(action.rollout_id).await?;
        let artifact = match &rollout {
            Some(r) => store.artifact(r.artifact_id).await?,
            None => None,
        };
        actions.push(api::Action {
            feedback: store.feedback(action.id).await?,
            rollout_name: rollout.map(|r| r.name).unwrap_or_default(),
            artifact_version: artifact.map(|a| a.version).unwrap_or_default(),
            action,
        });
    }
    Ok(api::DeviceDetail {
        device: device_view(&device),
        actions,
    })
}

async fn show_device(
    State(app): State<AppState>,
    ApiPath(controller): ApiPath<String>,
) -> ApiResult<Json<api::DeviceDetail>> {
    app.flush_contacts().await?;
    Ok(Json(device_detail(&app.store, &controller).await?))
}

async fn change_tags(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath(controller): ApiPath<String>,
    JsonBody(request): JsonBody<api::ChangeTags>,
) -> ApiResult<Json<api::Device>> {
    Ok(Json(retag(&app, &who.actor, &controller, &request).await?))
}

/// Adds and removes a device's tags for `actor` (the API and the dashboard), audited.
pub async fn retag(
    app: &AppState,
    actor: &str,
    controller: &str,
    request: &api::ChangeTags,
) -> ApiResult<api::Device> {
    check_tags(&request.add)?;
    check_tags(&request.remove)?;
    let device = app
        .store
        .device(controller)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device {controller:?}")))?;
    app.store
        .change_tags(device.id, &request.add, &request.remove)
        .await?;
    let detail = format!(
        "add [{}], remove [{}]",
        request.add.join(", "),
        request.remove.join(", ")
    );
    audit::record(
        app,
        actor,
        "device-tags",
        &format!("device {controller}"),
        &detail,
    )
    .await;
    let device = app
        .store
        .device(controller)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device {controller:?}")))?;
    Ok(device_view(&device))
}

async fn create_rollout(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(request): JsonBody<api::CreateRollout>,
) -> ApiResult<(StatusCode, Json<api::Rollout>)> {
    let id = create(&app, &who.actor, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(rollout_view(&app.store, id).await?),
    ))
}

/// Checks and creates a rollout for `actor` (the API and the dashboard), started at once if the
/// request says so, audited; its id.
pub async fn create(app: &AppState, actor: &str, request: api::CreateRollout) -> ApiResult<i64> {
    let bad = |e: &dyn std::fmt::Display| ApiError::BadRequest(e.to_string());
    let phases = Phases::parse(&request.phases).map_err(|e| bad(&e))?;
    let error_threshold: Threshold = request.error_threshold.parse().map_err(|e| bad(&e))?;
    let mut spec = RolloutSpec::new(phases);
    spec.success_threshold = request.success_threshold;
    spec.error_threshold = error_threshold;
    spec.validate().map_err(|e| bad(&e))?;
    check_tags(&request.tags)?;
    if request.name.trim().is_empty() || request.name.len() > 128 {
        return Err(ApiError::BadRequest(
            "a rollout name is 1 to 128 characters".into(),
        ));
    }
    if let Some(url) = &request.download_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ApiError::BadRequest(format!(
            "download_url {url:?} must be an http:// or https:// URL"
        )));
    }
    let rollout = operations::create_rollout(
        &app.store,
        NewRollout {
            name: request.name,
            artifact_id: request.artifact_id,
            device_type: request.device_type,
            tags: request.tags,
            attributes: request.attributes,
            phases: spec.phases.to_string(),
            success_threshold: i64::from(spec.success_threshold),
            error_threshold: spec.error_threshold.to_string(),
            download_url: request.download_url,
            state: RolloutState::Created.as_str().to_owned(),
        },
    )
    .await?;
    log::info!(
        "event=rollout-created rollout={} name={:?}",
        rollout.id,
        rollout.name
    );
    let detail = format!(
        "{:?}: artifact {} to {}, phases {}, error threshold {}",
        rollout.name,
        rollout.artifact_id,
        rollout.device_type,
        rollout.phases,
        rollout.error_threshold
    );
    let target = format!("rollout {}", rollout.id);
    audit::record(app, actor, "rollout-create", &target, &detail).await;
    // Devices may run other releases now than when the artifact came: patches for them too.
    if let Some(artifact) = app.store.artifact(rollout.artifact_id).await? {
        crate::deltas::queue_for(app, &artifact).await?;
    }
    if request.start {
        steer(app, actor, rollout.id, Command::Start).await?;
    }
    Ok(rollout.id)
}

/// A rollout with its artifact, per-phase counts and events.
pub async fn rollout_view(store: &Store, id: i64) -> ApiResult<api::Rollout> {
    let rollout = store
        .rollout(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no rollout {id}")))?;
    let artifact = store.artifact(rollout.artifact_id).await?.ok_or_else(|| {
        anyhow::anyhow!("artifact {} of rollout {id} missing", rollout.artifact_id)
    })?;
    let spec = operations::spec_of(&rollout)?;
    let counts = store.phase_counts(id, spec.phases.count() as usize).await?;
    let phases = spec
        .phases
        .as_slice()
        .iter()
        .zip(counts)
        .map(|(percent, counts)| api::Phase {
            percent: *percent,
            counts,
        })
        .collect();
    Ok(api::Rollout {
        events: store.events(id).await?,
        downloads: store.download_totals(id).await?,
        rollout,
        artifact,
        phases,
    })
}

async fn list_rollouts(State(app): State<AppState>) -> ApiResult<Json<Vec<api::Rollout>>> {
    let mut out = Vec::new();
    for rollout in app.store.rollouts().await? {
        out.push(rollout_view(&app.store, rollout.id).await?);
    }
    Ok(Json(out))
}

async fn show_rollout(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<api::Rollout>> {
    Ok(Json(rollout_view(&app.store, id).await?))
}

async fn rollout_command(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiPath((id, command)): ApiPath<(i64, String)>,
) -> ApiResult<Json<api::Rollout>> {
    let command: Command = command.parse().map_err(|_| {
        ApiError::NotFound(format!(
            "no rollout command {command:?} (start, pause, resume, cancel)"
        ))
    })?;
    steer(&app, &who.actor, id, command).await?;
    Ok(Json(rollout_view(&app.store, id).await?))
}

/// Applies a rollout command for `actor` (the API and the dashboard), audited.
pub async fn steer(app: &AppState, actor: &str, id: i64, command: Command) -> ApiResult<()> {
    operations::command(&app.store, id, command).await?;
    log::info!("event=rollout-command rollout={id} command={command} by={actor:?}");
    audit::record(
        app,
        actor,
        &format!("rollout-{command}"),
        &format!("rollout {id}"),
        "",
    )
    .await;
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/audit?limit=N`: the newest operator actions, newest first (default 100).
async fn audit_log(
    State(app): State<AppState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<crate::store::AuditRow>>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=audit::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is not 1 to {}",
            audit::MAX_LIMIT
        )));
    }
    Ok(Json(app.store.audit_log(limit).await?))
}

/// Attribute filters given as `KEY=VALUE`.
pub fn parse_attribute_filters(items: &[String]) -> Result<BTreeMap<String, String>, String> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(format!("attribute filter {item:?} is not KEY=VALUE")),
        })
        .collect()
}
