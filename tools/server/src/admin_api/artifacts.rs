//! Artifacts: the upload (a signed `.rua`, or a foreign file with its name, version and device
//! types given by the uploader) and the list.

use crate::app_state::AppState;
use crate::artifact_files::{self, ForeignMeta};
use crate::error::{ApiError, ApiResult};
use crate::guard::{self, ApiQuery};
use crate::intake;
use crate::roles::Principal;
use crate::store::ArtifactRow;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UploadQuery {
    #[serde(default)]
    foreign: bool,
    name: Option<String>,
    version: Option<String>,
    /// Comma-separated.
    device_types: Option<String>,
    filename: Option<String>,
}

pub(super) async fn upload_artifact(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<UploadQuery>,
    body: Body,
) -> ApiResult<(StatusCode, Json<ArtifactRow>)> {
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

pub(super) async fn list_artifacts(
    State(app): State<AppState>,
) -> ApiResult<Json<Vec<ArtifactRow>>> {
    Ok(Json(app.store.artifacts().await?))
}

pub(super) async fn artifact_by_id(app: &AppState, id: i64) -> ApiResult<ArtifactRow> {
    app.store
        .artifact(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no artifact {id}")))
}
