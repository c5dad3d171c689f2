//! The tenant's trust document (docs/trust.md), which devices fetch through DDI:
//! `PUT /api/v1/trust` (admin) sets it, `GET /api/v1/trust` returns it as uploaded,
//! `GET /api/v1/trust/summary` says what it holds.
//!
//! The server holds no root private key and checks what it can without one, with the device's
//! own rules (`rustupdate_trust`): the document parses, a threshold of its own root keys signed
//! it, and the stored one (if any) accepts it: a higher version, signed by a threshold of the
//! stored root keys (and of the new ones when they change). So the server can never hand devices
//! a document they would refuse for its signatures, nor go back to an older one.

use crate::api::TrustSummary;
use crate::app_state::AppState;
use crate::audit;
use crate::error::{ApiError, ApiResult};
use crate::guard::RawBody;
use crate::roles::Principal;
use crate::store::TrustRow;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rustupdate_trust::{Document, TrustError, Trusted};

/// `PUT /api/v1/trust`: the document as body (at most 64 KiB, the trust format's own bound).
pub(super) async fn put_trust(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    RawBody(body): RawBody,
) -> ApiResult<Json<TrustSummary>> {
    let document = Document::parse(&body)
        .map_err(|e| ApiError::BadRequest(format!("the trust document is refused: {e}")))?;
    // Self-consistent: a device keeps it as its own copy (`Trusted::kept`).
    let trusted = Trusted::kept(document.clone()).map_err(|e| {
        ApiError::BadRequest(format!(
            "the trust document is refused: it must be signed by a threshold of its own root \
             keys: {e}"
        ))
    })?;
    let stored = app.store.trust_document().await?;
    if let Some(row) = &stored {
        stored_trusted(row)?.accept(document).map_err(refusal)?;
    }
    let version = i64::try_from(trusted.version()).map_err(|_| {
        ApiError::BadRequest(format!(
            "trust document version {} is too large for the server",
            trusted.version()
        ))
    })?;
    let text = String::from_utf8_lossy(&body).into_owned();
    let replaces = stored.as_ref().map(|row| row.version);
    if !app
        .store
        .replace_trust_document(replaces, version, &text)
        .await?
    {
        return Err(ApiError::Conflict(
            "the trust document was replaced meanwhile; upload again".into(),
        ));
    }
    let detail = match replaces {
        Some(old) => format!("version {version} (was {old})"),
        None => format!("version {version} (the first)"),
    };
    audit::record(&app, &who.actor, "trust-update", "trust document", &detail).await;
    let row = app
        .store
        .trust_document()
        .await?
        .ok_or_else(|| anyhow::anyhow!("the trust document just stored is missing"))?;
    Ok(Json(summary(&row)?))
}

/// `GET /api/v1/trust`: the current document, byte for byte as uploaded.
pub(super) async fn get_trust(State(app): State<AppState>) -> ApiResult<Response> {
    let row = current(&app).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], row.document).into_response())
}

/// `GET /api/v1/trust/summary`.
pub(super) async fn trust_summary(State(app): State<AppState>) -> ApiResult<Json<TrustSummary>> {
    Ok(Json(summary(&current(&app).await?)?))
}

async fn current(app: &AppState) -> ApiResult<TrustRow> {
    app.store
        .trust_document()
        .await?
        .ok_or_else(|| ApiError::NotFound("no trust document is set".into()))
}

/// The stored document, trusted as a device trusts its own copy; stored only after that check,
/// so a failure here is the database's, not the request's.
fn stored_trusted(row: &TrustRow) -> ApiResult<Trusted> {
    let document = Document::parse(row.document.as_bytes())
        .map_err(|e| anyhow::anyhow!("the stored trust document: {e}"))?;
    Ok(Trusted::kept(document).map_err(|e| anyhow::anyhow!("the stored trust document: {e}"))?)
}

/// Why the stored document does not accept the offered one: not newer is a conflict with what
/// is stored, anything else (too few or bad signatures) a bad request.
fn refusal(err: TrustError) -> ApiError {
    let text = format!("the trust document is refused: {err}");
    match err {
        TrustError::NotNewer { .. } => ApiError::Conflict(text),
        _ => ApiError::BadRequest(text),
    }
}

fn summary(row: &TrustRow) -> ApiResult<TrustSummary> {
    let document = stored_trusted(row)?.document().clone();
    let ids = |role: &rustupdate_trust::Role, name: &'static str| -> ApiResult<Vec<String>> {
        Ok(role
            .public_keys(name)
            .map_err(|e| anyhow::anyhow!("the stored trust document: {e}"))?
            .iter()
            .map(|k| k.id().to_string())
            .collect())
    };
    let signed = &document.signed;
    Ok(TrustSummary {
        version: signed.version,
        root_threshold: signed.root.threshold,
        root_keys: ids(&signed.root, "root")?,
        release_threshold: signed.release.threshold,
        release_keys: ids(&signed.release, "release")?,
        revoked: signed.revoked.clone(),
        updated_at: row.updated_at,
    })
}
