//! Artifacts: the list, and the upload form (operators) for signed `.rua` files, which go through
//! the same intake as the management API's upload (`intake.rs`): streamed to disk, verified
//! against the trusted keys, refused with the reason. Another updater's formats are uploaded
//! through the API (they need a name, version and device types the server cannot read).

use super::page::{ago, error_page, page};
use super::session::{authorize_form, require_login};
use crate::app_state::AppState;
use crate::error::ApiError;
use crate::intake;
use crate::roles::Role;
use axum::extract::State;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

const HERE: &str = "/ui/artifacts";
/// Longest CSRF field read before the file (the token is 64 hex characters).
const MAX_CSRF_FIELD: usize = 256;

pub async fn list(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let who = match require_login(&app, &headers, HERE).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let (artifacts, patches) = match (app.store.artifacts().await, app.store.patches().await) {
        (Ok(a), Ok(p)) => (a, p),
        (Err(e), _) | (_, Err(e)) => return error_page(ApiError::Internal(e)),
    };
    page(
        "Artifacts",
        html! {
            @if who.may(Role::Operator) {
                form.upload method="post" action=(HERE) enctype="multipart/form-data" {
                    input type="hidden" name="csrf" value=(who.csrf);
                    label { "Signed artifact (.rua) " input type="file" name="file" accept=".rua" required; }
                    " " button { "Upload" }
                }
            }
            table {
                tr { th { "id" } th { "name" } th { "version" } th { "device types" } th { "size" } th { "signed by" } th { "uploaded" } }
                @for a in artifacts.iter().rev() {
                    tr {
                        td { (a.id) } td { (a.name) } td { (a.version) } td { (a.device_types.join(", ")) }
                        td { (a.size) " bytes" } td { (a.signers.join(", ")) } td { (ago(Some(a.created_at))) }
                    }
                }
            }
            @if !patches.is_empty() {
                h2 { "Delta patches" }
                table {
                    tr { th { "artifact" } th { "from base image" } th { "state" } th { "size" } th { "queued" } }
                    @for p in &patches {
                        tr {
                            td { (p.target_artifact_id) }
                            td.mono { (p.base_sha256.get(..16).unwrap_or(&p.base_sha256)) "…"
                                @if let Some(base) = p.base_artifact_id { " (artifact " (base) ")" } }
                            td { span.state.(p.state) { (p.state) }
                                @if let Some(why) = &p.reason { ": " (why) } }
                            td { @if let Some(size) = p.size { (size) " bytes" } }
                            td { (ago(Some(p.created_at))) }
                        }
                    }
                }
            }
        },
        &who.principal,
    )
    .into_response()
}

/// A small text field, read up to `limit` bytes (a longer one is refused, not buffered).
async fn small_field(field: &mut Field<'_>, limit: usize) -> Result<String, ApiError> {
    let mut text = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::BadRequest(format!("reading the form: {e}")))?
    {
        if text.len() + chunk.len() > limit {
            return Err(ApiError::BadRequest(format!(
                "the form field {:?} is longer than {limit} bytes",
                field.name().unwrap_or_default()
            )));
        }
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text).map_err(|_| ApiError::BadRequest("a form field is not UTF-8".into()))
}

/// `POST /ui/artifacts` (multipart: the `csrf` field first, then `file`): the session and the
/// token are checked before a byte of the file is read.
pub async fn upload(
    State(app): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    if let Err(r) = require_login(&app, &headers, HERE).await {
        return r;
    }
    let mut multipart = match multipart {
        Ok(m) => m,
        Err(e) => return error_page(ApiError::BadRequest(format!("not an upload form: {e}"))),
    };
    let csrf = match multipart.next_field().await {
        Ok(Some(mut field)) if field.name() == Some("csrf") => {
            match small_field(&mut field, MAX_CSRF_FIELD).await {
                Ok(text) => Some(text),
                Err(e) => return error_page(e),
            }
        }
        _ => None,
    };
    let who = match authorize_form(&app, &headers, HERE, csrf.as_deref(), Role::Operator).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let field = match multipart.next_field().await {
        Ok(Some(field)) if field.name() == Some("file") => field,
        Ok(_) => return error_page(ApiError::BadRequest("the form has no file".into())),
        Err(e) => return error_page(ApiError::BadRequest(format!("reading the form: {e}"))),
    };
    match intake::receive(&app, Box::pin(field), None).await {
        Ok((row, inserted)) => {
            if inserted {
                intake::record(&app, &who.principal.actor, &row).await;
            }
            Redirect::to(HERE).into_response()
        }
        Err(e) => error_page(e),
    }
}
