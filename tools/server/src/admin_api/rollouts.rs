//! Rollouts: creation (checked, optionally started at once), the list, a rollout with its
//! per-phase counts and events, and the commands that steer it (the API and the dashboard).

use crate::api;
use crate::app_state::AppState;
use crate::audit;
use crate::error::{ApiError, ApiResult};
use crate::guard::{ApiPath, JsonBody};
use crate::operations;
use crate::roles::Principal;
use crate::store::{NewRollout, Store};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use rustupdate_rollout::{Command, Phases, RolloutSpec, RolloutState, Threshold};
use std::collections::BTreeMap;

use super::devices::check_tags;

pub(super) async fn create_rollout(
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
    tracing::info!(event = %"rollout-created", rollout = rollout.id, name = ?rollout.name);
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

pub(super) async fn list_rollouts(
    State(app): State<AppState>,
) -> ApiResult<Json<Vec<api::Rollout>>> {
    let mut out = Vec::new();
    for rollout in app.store.rollouts().await? {
        out.push(rollout_view(&app.store, rollout.id).await?);
    }
    Ok(Json(out))
}

pub(super) async fn show_rollout(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<api::Rollout>> {
    Ok(Json(rollout_view(&app.store, id).await?))
}

pub(super) async fn rollout_command(
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
    tracing::info!(event = %"rollout-command", rollout = id, %command, by = ?actor);
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
