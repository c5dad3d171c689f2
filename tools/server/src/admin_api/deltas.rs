//! Delta patches of an artifact: the list (per artifact and of every job), a patch uploaded by a
//! release pipeline, and a patch queued from a base the operator names. The patches themselves
//! are made and checked by `crate::deltas`.

use crate::api;
use crate::app_state::AppState;
use crate::artifact_files;
use crate::audit;
use crate::error::{ApiError, ApiResult};
use crate::guard::{self, ApiPath, JsonBody};
use crate::intake;
use crate::roles::Principal;
use crate::store::PatchRow;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};

use super::artifacts::artifact_by_id;

/// The patches of an artifact: made, being made, queued or failed (with the reason).
pub(super) async fn list_artifact_deltas(
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
pub(super) async fn upload_patch(
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
        crate::patch_uploads::check_uploaded(&checked_file, &target_copy, &bases, &files, &keyring)
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
pub(super) async fn list_deltas(State(app): State<AppState>) -> ApiResult<Json<Vec<PatchRow>>> {
    Ok(Json(app.store.patches().await?))
}

/// Queues a patch of the artifact from a base the operator names (a release devices will run,
/// before they report it). 201 when queued, 200 when one exists already.
pub(super) async fn queue_delta(
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
