//! Recording operator actions in the audit log (`store/audit.rs`), served by `GET /api/v1/audit`
//! and shown on the dashboard's overview.
//!
//! Recorded after the action succeeded. A failure to record does not undo the action or fail the
//! request (the operator would retry an action that happened): it is logged as an error with
//! everything the row would have held, so the server log keeps the record.

use crate::app_state::AppState;

/// Most entries one `GET /api/v1/audit` returns.
pub const MAX_LIMIT: i64 = 1000;

pub async fn record(app: &AppState, actor: &str, action: &str, target: &str, detail: &str) {
    match app.store.add_audit(actor, action, target, detail).await {
        Ok(()) => tracing::info!(event = %"audit", %actor, %action, on = ?target, ?detail),
        Err(e) => tracing::error!(
            event = %"audit-not-recorded",
            %actor,
            %action,
            on = ?target,
            ?detail,
            error = %format_args!("{e:#}"),
        ),
    }
}
