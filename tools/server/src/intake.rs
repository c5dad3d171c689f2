//! Receiving an artifact, from the management API's raw body or the dashboard's upload form:
//! streamed to a temporary file within `max-upload-bytes` (never held in memory), with at most
//! `request-timeout` between two chunks, then verified (a `.rua` against the trusted keys, every
//! chunk and the whole image), moved into `DATA_DIR/artifacts/` and recorded once.

use crate::app_state::AppState;
use crate::artifact_files::{self, Digests, ForeignMeta, Upload, UploadError};
use crate::error::{ApiError, ApiResult};
use crate::store::ArtifactRow;
use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use std::fmt::Display;

/// Stores the artifact `chunks` carry; the row and whether it is new (an artifact with the same
/// sha256 is the same artifact: `false`, nothing added).
pub async fn receive<S, E>(
    app: &AppState,
    chunks: S,
    foreign: Option<ForeignMeta>,
) -> ApiResult<(ArtifactRow, bool)>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let (file, digests) = receive_file(app, chunks, app.inner.settings.max_upload_bytes).await?;
    let new = match foreign {
        Some(meta) => artifact_files::foreign(meta, &digests),
        None => {
            let app2 = app.clone();
            let path = file.path().to_owned();
            let digests2 = digests.clone();
            let verdict = tokio::task::spawn_blocking(move || {
                let keyring = app2.inner.settings.keyring()?;
                artifact_files::verify_rua(&path, &keyring, &digests2)
            })
            .await
            .map_err(|e| anyhow::anyhow!("verification task: {e}"))??;
            verdict.map_err(|e| ApiError::BadRequest(format!("artifact rejected: {e}")))?
        }
    };
    let artifacts_dir = app.inner.artifacts_dir.clone();
    let sha = digests.sha256.clone();
    tokio::task::spawn_blocking(move || artifact_files::keep(file, &artifacts_dir, &sha))
        .await
        .map_err(|e| anyhow::anyhow!("storing task: {e}"))??;
    let (row, inserted) = app.store.add_artifact(&new).await?;
    tracing::info!(
        event = %"artifact-uploaded",
        id = row.id,
        name = %row.name,
        version = %row.version,
        sha256 = %row.sha256,
        new = inserted,
    );
    crate::deltas::queue_for(app, &row).await?;
    Ok((row, inserted))
}

/// Streams `chunks` into a temporary file in the upload directory, at most `limit` bytes, with
/// at most `request-timeout` between two parts; the file and its digests.
pub async fn receive_file<S, E>(
    app: &AppState,
    mut chunks: S,
    limit: u64,
) -> ApiResult<(tempfile::NamedTempFile, Digests)>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let settings = &app.inner.settings;
    let mut upload = Upload::new(&settings.upload_dir(), limit)?;
    let idle = settings.request_timeout;
    while let Some(chunk) = tokio::time::timeout(idle, chunks.next())
        .await
        .map_err(|_| {
            ApiError::Timeout(format!(
                "no part of the upload arrived for {} s (request-timeout)",
                idle.as_secs()
            ))
        })?
    {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the upload: {e}")))?;
        upload.write(&chunk).map_err(|e| match e {
            UploadError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
            UploadError::Io(io) => ApiError::Internal(io.into()),
        })?;
    }
    let (file, digests) = upload.finish()?;
    Ok((file, digests))
}

/// The audit entry of a new artifact.
pub async fn record(app: &AppState, actor: &str, row: &ArtifactRow) {
    crate::audit::record(
        app,
        actor,
        "artifact-upload",
        &format!("artifact {}", row.id),
        &format!("{} {} sha256 {}", row.name, row.version, row.sha256),
    )
    .await;
}
