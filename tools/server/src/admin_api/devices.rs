//! Devices: registration (with the device's token, shown once), the list, a device with its
//! actions and their feedback, and its tags (the API and the dashboard).

use crate::api;
use crate::app_state::AppState;
use crate::audit;
use crate::error::{ApiError, ApiResult};
use crate::guard::{ApiPath, JsonBody};
use crate::links;
use crate::roles::Principal;
use crate::store::{DeviceRow, Store};
use crate::tokens;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use rustupdate_ddi::attributes;

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 64
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

pub(super) fn check_tags(tags: &[String]) -> ApiResult<()> {
    match tags.iter().find(|t| !valid_tag(t)) {
        Some(bad) => Err(ApiError::BadRequest(format!(
            "tag {bad:?} is not 1 to 64 characters of A-Z a-z 0-9 . _ : -"
        ))),
        None => Ok(()),
    }
}

pub(super) async fn add_device(
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
    tracing::info!(event = %"device-added", device = %id);
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

pub(super) async fn list_devices(State(app): State<AppState>) -> ApiResult<Json<Vec<api::Device>>> {
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

pub(super) async fn show_device(
    State(app): State<AppState>,
    ApiPath(controller): ApiPath<String>,
) -> ApiResult<Json<api::DeviceDetail>> {
    app.flush_contacts().await?;
    Ok(Json(device_detail(&app.store, &controller).await?))
}

pub(super) async fn change_tags(
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
