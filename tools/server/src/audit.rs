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
        Ok(()) => log::info!(
            "event=audit actor={actor} action={action} target={target:?} detail={detail:?}"
        ),
        Err(e) => log::error!(
            "event=audit-not-recorded actor={actor} action={action} target={target:?} detail={detail:?} error={e:#}"
        ),
    }
}
