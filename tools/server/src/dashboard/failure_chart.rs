//! Failed actions by reason as a bar chart: the fleet's on the overview, a rollout's on its page.

use crate::app_state::AppState;
use crate::charts;
use crate::error::ApiResult;
use maud::Markup;

/// Failure reasons drawn (the most frequent).
const REASONS_SHOWN: i64 = 10;

/// The chart of `rollout`'s failed actions by reason, or of every rollout's with `None`.
pub async fn failure_chart(app: &AppState, rollout: Option<i64>, title: &str) -> ApiResult<Markup> {
    let reasons = app.store.failure_reasons(rollout, REASONS_SHOWN).await?;
    Ok(charts::bar_chart(title, &reasons))
}
