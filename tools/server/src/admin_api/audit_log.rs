//! `GET /api/v1/audit`: the audit log of operator actions.

use crate::app_state::AppState;
use crate::audit;
use crate::error::{ApiError, ApiResult};
use crate::guard::ApiQuery;
use crate::store::AuditRow;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/audit?limit=N`: the newest operator actions, newest first (default 100).
pub(super) async fn audit_log(
    State(app): State<AppState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditRow>>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=audit::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is not 1 to {}",
            audit::MAX_LIMIT
        )));
    }
    Ok(Json(app.store.audit_log(limit).await?))
}
