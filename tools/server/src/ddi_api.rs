//! The device API: Eclipse hawkBit DDI v1 under `/{tenant}/controller/v1/{controllerId}`.
//!
//! Every request is authenticated first, by the [`Caller`] extractor, before a body is read
//! (`TargetToken` of that very device, or the tenant's `GatewayToken`, which registers unknown
//! devices on first contact); anything else is 401 with the same body whatever was wrong. A device
//! only ever sees its own actions: another device's action id is answered exactly like a missing
//! one (404). Links are built by `links`: from `public-url` or an allowed `Host`, file names
//! percent-encoded. What a device reports (`configData`) is stored and shown; it never changes
//! what the operator set (see `Store::set_attributes`). One extension: the poll answer links the
//! tenant's trust document (`_links.trustDocument`, `…/trust/{version}`), which hawkBit clients
//! ignore.

use crate::app_state::AppState;
use crate::deltas;
use crate::error::{ApiError, ApiResult};
use crate::guard::{ApiPath, JsonBody};
use crate::links;
use crate::operations::{self, Channel};
use crate::store::{ActionWithRollout, ArtifactRow, DeviceRow, PatchRow, now_ms};
use crate::tokens::{self, Credential};
use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use rustupdate_ddi::{self as ddi, ControllerId, Tenant, attributes, path};
use rustupdate_rollout::ActionState;
use tower::ServiceExt;
use tower_http::services::ServeFile;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{tenant}/controller/v1/{controller}", get(poll))
        .route(
            "/{tenant}/controller/v1/{controller}/deploymentBase/{action}",
            get(deployment_base),
        )
        .route(
            "/{tenant}/controller/v1/{controller}/deploymentBase/{action}/feedback",
            post(deployment_feedback),
        )
        .route(
            "/{tenant}/controller/v1/{controller}/cancelAction/{action}",
            get(cancel_action),
        )
        .route(
            "/{tenant}/controller/v1/{controller}/cancelAction/{action}/feedback",
            post(cancel_feedback),
        )
        .route(
            "/{tenant}/controller/v1/{controller}/installedBase/{action}",
            get(installed_base),
        )
        .route(
            "/{tenant}/controller/v1/{controller}/configData",
            put(config_data),
        )
        .route(
            "/{tenant}/controller/v1/{controller}/artifacts/{sha256}/{filename}",
            get(download),
        )
        .route(
            "/{tenant}/controller/v1/{controller}/trust/{version}",
            get(trust_document),
        )
}

/// The authenticated device of a request, with the tenant and id it was addressed by, and the
/// request's `Host` (for links). An extractor from the request's head: handlers take it before
/// their body, so nothing is read from a caller that is not a device.
struct Caller {
    device: DeviceRow,
    tenant: Tenant,
    id: ControllerId,
    host: Option<String>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> ApiResult<Caller> {
        let params = RawPathParams::from_request_parts(parts, app)
            .await
            .map_err(|_| ApiError::Unauthorized)?;
        let mut tenant = None;
        let mut controller = None;
        for (key, value) in &params {
            match key {
                "tenant" => tenant = Some(value),
                "controller" => controller = Some(value),
                _ => {}
            }
        }
        let (Some(tenant), Some(controller)) = (tenant, controller) else {
            return Err(ApiError::Unauthorized);
        };
        authenticate(app, &parts.headers, tenant, controller).await
    }
}

async fn authenticate(
    app: &AppState,
    headers: &HeaderMap,
    tenant: &str,
    controller: &str,
) -> ApiResult<Caller> {
    // Wrong tenant, wrong token: the same 401. A malformed id is 400 with the rule (the rule is
    // public; a wrong id says nothing about what exists).
    let tenant = Tenant::new(tenant).map_err(|_| ApiError::Unauthorized)?;
    if tenant != app.inner.tenant {
        return Err(ApiError::Unauthorized);
    }
    let id = links::controller_id(controller)?;
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    let device = match tokens::parse_authorization(header) {
        Some(Credential::Target(token)) => {
            let device = app
                .store
                .device_by_token(&tokens::hash(token))
                .await?
                .ok_or(ApiError::Unauthorized)?;
            if device.controller_id != id.as_str() {
                return Err(ApiError::Unauthorized);
            }
            device
        }
        Some(Credential::Gateway(token)) if tokens::equal(token, &app.inner.gateway_token) => {
            app.store.device_or_register(id.as_str()).await?
        }
        _ => return Err(ApiError::Unauthorized),
    };
    // Any authenticated request counts as contact, as in hawkBit.
    app.inner.contacts.record(device.id, now_ms());
    Ok(Caller {
        device,
        tenant,
        id,
        host: links::host(headers).map(str::to_owned),
    })
}

fn parse_action(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest(format!("action id {text:?} is not a positive number")))
}

async fn poll(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<ddi::ControllerBase>> {
    // An idle poll costs one statement here (and the one that authenticated it).
    let summary = app.store.poll_summary(caller.device.id).await?;
    let work = if summary.has_open_action {
        operations::work_for(&app.store, &caller.device).await?
    } else {
        operations::new_work_for(&app.store, &caller.device).await?
    };
    let base = links::base_url(&app.inner.settings, caller.host.as_deref());
    let mut links = ddi::ControllerLinks::default();
    if let Some(work) = work {
        let id = work.action.id as u64;
        let state: ActionState = work
            .action
            .state
            .parse()
            .map_err(|e| anyhow::anyhow!("stored action state: {e}"))?;
        if state == ActionState::CancelRequested {
            let href = format!(
                "{base}{}",
                path::cancel_action(&caller.tenant, &caller.id, id)
            );
            links.cancel_action = Some(ddi::Link::new(href));
        } else if state == ActionState::Scheduled
            && deltas::patch_coming(&app, &caller.device, &work).await?
        {
            // Not offered yet: its patch is being built, and the device waits a poll or two for
            // a download a fraction of the artifact's size.
        } else {
            // The `c` parameter changes when the action does, as hawkBit's cache hash.
            let href = format!(
                "{base}{}?c={id}-{}",
                path::deployment_base(&caller.tenant, &caller.id, id),
                work.action.updated_at
            );
            links.deployment_base = Some(ddi::Link::new(href));
        }
    }
    if caller.device.attributes.is_empty() {
        links.config_data = Some(ddi::Link::new(format!(
            "{base}{}",
            path::config_data(&caller.tenant, &caller.id)
        )));
    }
    if let Some(done) = summary.last_succeeded {
        links.installed_base = Some(ddi::Link::new(format!(
            "{base}{}",
            path::installed_base(&caller.tenant, &caller.id, done as u64)
        )));
    }
    // rustupdate's extension: the tenant's trust document, which the device fetches when its
    // version is newer than its own (docs/trust.md, "Delivery").
    if let Some(version) = app.store.trust_version().await? {
        links.trust_document = Some(ddi::Link::new(format!(
            "{base}{}",
            path::trust_document(&caller.tenant, &caller.id, version as u64)
        )));
    }
    Ok(Json(ddi::ControllerBase {
        config: ddi::Config {
            polling: ddi::Polling {
                sleep: ddi::PollSleep::from_secs(app.inner.settings.poll_interval_secs),
            },
        },
        links,
    }))
}

fn deployment_body(
    app: &AppState,
    caller: &Caller,
    work: &ActionWithRollout,
    artifact: &ArtifactRow,
    patch: Option<&PatchRow>,
) -> ddi::DeploymentBase {
    let download = |sha256: &str, filename: &str| {
        format!(
            "{}{}",
            links::base_url(&app.inner.settings, caller.host.as_deref()),
            path::artifact_download(
                &caller.tenant,
                &caller.id,
                sha256,
                &links::segment(filename)
            )
        )
    };
    let href = match &work.download_url {
        Some(url) => url.clone(),
        None => download(&artifact.sha256, &artifact.filename),
    };
    let mut artifacts = vec![ddi::Artifact {
        filename: artifact.filename.clone(),
        size: artifact.size as u64,
        hashes: ddi::Hashes {
            sha1: artifact.sha1.clone(),
            md5: artifact.md5.clone(),
            sha256: artifact.sha256.clone(),
        },
        links: ddi::ArtifactLinks {
            download: Some(ddi::Link::new(href.clone())),
            download_http: Some(ddi::Link::new(href)),
        },
    }];
    if let Some(offer) = patch.and_then(|p| deltas::offer(artifact, p)) {
        let href = download(&offer.sha256, &offer.filename);
        artifacts.push(ddi::Artifact {
            filename: offer.filename,
            size: offer.size,
            hashes: ddi::Hashes {
                sha1: offer.sha1,
                md5: offer.md5,
                sha256: offer.sha256,
            },
            links: ddi::ArtifactLinks {
                download: Some(ddi::Link::new(href.clone())),
                download_http: Some(ddi::Link::new(href)),
            },
        });
    }
    ddi::DeploymentBase {
        id: work.action.id.to_string(),
        deployment: ddi::Deployment {
            download: ddi::HandlingType::Forced,
            update: ddi::HandlingType::Forced,
            maintenance_window: None,
            chunks: vec![ddi::Chunk {
                part: "os".into(),
                version: artifact.version.clone(),
                name: artifact.name.clone(),
                metadata: Vec::new(),
                artifacts,
            }],
        },
    }
}

async fn device_action(
    app: &AppState,
    caller: &Caller,
    action: &str,
) -> ApiResult<(ActionWithRollout, ArtifactRow)> {
    let action_id = parse_action(action)?;
    let work = app
        .store
        .device_action(caller.device.id, action_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no action {action_id} for this device")))?;
    let artifact = app.store.artifact(work.artifact_id).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "artifact {} of action {action_id} missing",
            work.artifact_id
        )
    })?;
    Ok((work, artifact))
}

async fn deployment_base(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((_, _, action)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<ddi::DeploymentBase>> {
    let (work, artifact) = device_action(&app, &caller, &action).await?;
    if work.action.state == ActionState::Canceled.as_str() {
        return Err(ApiError::Conflict(format!(
            "action {} was canceled",
            work.action.id
        )));
    }
    operations::deployment_fetched(&app.store, &work).await?;
    let patch = deltas::patch_for(&app, &caller.device, &work, &artifact).await?;
    Ok(Json(deployment_body(
        &app,
        &caller,
        &work,
        &artifact,
        patch.as_ref(),
    )))
}

async fn installed_base(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((_, _, action)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<ddi::DeploymentBase>> {
    let (work, artifact) = device_action(&app, &caller, &action).await?;
    Ok(Json(deployment_body(&app, &caller, &work, &artifact, None)))
}

async fn cancel_action(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((_, _, action)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<ddi::CancelActionBase>> {
    let (work, _) = device_action(&app, &caller, &action).await?;
    if work.action.state != ActionState::CancelRequested.as_str() {
        return Err(ApiError::NotFound(format!(
            "action {} has no cancellation pending",
            work.action.id
        )));
    }
    let id = work.action.id.to_string();
    Ok(Json(ddi::CancelActionBase {
        id: id.clone(),
        cancel_action: ddi::CancelAction { stop_id: id },
    }))
}

async fn deployment_feedback(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((_, _, action)): ApiPath<(String, String, String)>,
    JsonBody(body): JsonBody<ddi::ActionFeedback>,
) -> ApiResult<StatusCode> {
    feedback(&app, &caller, &action, &body, Channel::Deployment).await
}

async fn cancel_feedback(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((_, _, action)): ApiPath<(String, String, String)>,
    JsonBody(body): JsonBody<ddi::ActionFeedback>,
) -> ApiResult<StatusCode> {
    feedback(&app, &caller, &action, &body, Channel::Cancel).await
}

/// Both feedback resources: the same body, applied to the deployment or to its cancellation.
async fn feedback(
    app: &AppState,
    caller: &Caller,
    action: &str,
    feedback: &ddi::ActionFeedback,
    channel: Channel,
) -> ApiResult<StatusCode> {
    let action_id = parse_action(action)?;
    operations::feedback(
        &app.store,
        &caller.device,
        action_id,
        channel,
        &feedback.status,
    )
    .await?;
    Ok(StatusCode::OK)
}

async fn config_data(
    State(app): State<AppState>,
    caller: Caller,
    JsonBody(config): JsonBody<ddi::ConfigData>,
) -> ApiResult<StatusCode> {
    if config.data.len() > ddi::MAX_ATTRIBUTES {
        return Err(ApiError::BadRequest(format!(
            "configData has {} attributes, at most {} are accepted",
            config.data.len(),
            ddi::MAX_ATTRIBUTES
        )));
    }
    if let Some((k, _)) = config.data.iter().find(|(k, v)| {
        k.is_empty()
            || k.len() > ddi::MAX_ATTRIBUTE_KEY_LEN
            || v.len() > ddi::MAX_ATTRIBUTE_VALUE_LEN
    }) {
        return Err(ApiError::BadRequest(format!(
            "attribute {k:?}: keys must be 1 to {} bytes and values at most {} bytes",
            ddi::MAX_ATTRIBUTE_KEY_LEN,
            ddi::MAX_ATTRIBUTE_VALUE_LEN
        )));
    }
    let mut attributes = caller.device.attributes.clone();
    match config.mode {
        ddi::ConfigDataMode::Merge => attributes.extend(config.data),
        ddi::ConfigDataMode::Replace => attributes = config.data,
        ddi::ConfigDataMode::Remove => {
            for key in config.data.keys() {
                attributes.remove(key);
            }
        }
    }
    if attributes.len() > ddi::MAX_ATTRIBUTES {
        return Err(ApiError::BadRequest(format!(
            "the device would have {} attributes, at most {} are kept",
            attributes.len(),
            ddi::MAX_ATTRIBUTES
        )));
    }
    let reported = attributes.get(attributes::DEVICE_TYPE).cloned();
    if let (Some(registered), Some(reported)) = (&caller.device.device_type, &reported)
        && registered != reported
    {
        tracing::warn!(
            event = %"device-type-mismatch",
            device = %caller.id,
            ?registered,
            ?reported,
            hint = "the registered type stays; rollouts target it",
        );
    }
    app.store
        .set_attributes(caller.device.id, &attributes, reported.as_deref())
        .await?;
    let new_base = deltas::base_of(&attributes);
    if new_base.is_some() && new_base != deltas::base_of(&caller.device.attributes) {
        deltas::queue_for_base(&app, new_base.unwrap_or_default()).await?;
    }
    Ok(StatusCode::OK)
}

/// The tenant's trust document of the version in the path, as the operator uploaded it. Only the
/// current version is served: an older one is 404 (the device polls again and is offered the
/// current one), so what a URL returns never changes.
async fn trust_document(
    State(app): State<AppState>,
    _caller: Caller,
    ApiPath((_, _, version)): ApiPath<(String, String, String)>,
) -> ApiResult<Response> {
    let row = app.store.trust_document().await?;
    match row {
        Some(row) if row.version.to_string() == version => {
            Ok(([(header::CONTENT_TYPE, "application/json")], row.document).into_response())
        }
        _ => Err(ApiError::NotFound(format!(
            "no trust document of version {:?}; poll for the current one",
            version.chars().take(24).collect::<String>()
        ))),
    }
}

/// Serves an artifact or a delta patch by content hash, with Range support (resumed and delta
/// downloads), to a device that was given it; the bytes served count for its action.
async fn download(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((_, _, sha256, _filename)): ApiPath<(String, String, String, String)>,
    request: Request,
) -> ApiResult<Response> {
    let valid = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let given = if valid {
        app.store.download_for(caller.device.id, &sha256).await?
    } else {
        None
    };
    let Some((action_id, kind)) = given else {
        return Err(ApiError::NotFound(
            "no such artifact for this device".into(),
        ));
    };
    let counted = request.method() == axum::http::Method::GET;
    let file = app.inner.artifacts_dir.join(&sha256);
    let response = ServeFile::new(file)
        .oneshot(request)
        .await
        .map_err(|e| anyhow::anyhow!("serving artifact {sha256}: {e}"))?;
    // What the answer carries (its Content-Length), counted when it is sent: a download broken
    // off is counted in full, as a CDN's log would.
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|_| counted && response.status().is_success());
    if let Some(bytes) = bytes {
        app.inner.metrics.count_download(kind, bytes as u64);
        app.store.count_download(action_id, kind, bytes).await?;
    }
    Ok(response.into_response())
}
