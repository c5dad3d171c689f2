//! Rollouts: the list, the new-rollout form (artifact, target: device type, tags and attribute
//! filters; phases and thresholds), a rollout's page with a progress bar per phase and its
//! events, reloaded while it runs, and its command buttons (operators).

use super::failure_chart::failure_chart;
use super::page::{LIVE_REFRESH_SECS, ago, error_page, items, layout, page};
use super::session::{Operator, authorize_form, require_login};
use crate::admin_api;
use crate::api;
use crate::app_state::AppState;
use crate::charts;
use crate::error::{ApiError, ApiResult};
use crate::roles::Role;
use crate::store::RolloutRow;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use rustupdate_rollout::{Command, RolloutState};
use serde::Deserialize;

pub fn rollout_table(rollouts: &[RolloutRow]) -> Markup {
    html! {
        table {
            tr { th { "id" } th { "name" } th { "device type" } th { "state" } th { "phase" } }
            @for r in rollouts {
                tr {
                    td { a href={ "/ui/rollouts/" (r.id) } { (r.id) } }
                    td { (r.name) } td { (r.device_type) }
                    td.state.(r.state) { (r.state) }
                    td { (r.current_phase + 1) " of " (r.phases.split(',').count()) }
                }
            }
        }
    }
}

pub async fn list(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let who = match require_login(&app, &headers, "/ui/rollouts").await {
        Ok(who) => who,
        Err(r) => return r,
    };
    match app.store.rollouts().await {
        Ok(rollouts) => page(
            "Rollouts",
            html! {
                @if who.may(Role::Operator) { p { a href="/ui/rollouts/new" { "Create a rollout" } } }
                (rollout_table(&rollouts))
            },
            &who.principal,
        )
        .into_response(),
        Err(e) => error_page(ApiError::Internal(e)),
    }
}

pub async fn new_form(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let who = match require_login(&app, &headers, "/ui/rollouts/new").await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let artifacts = match app.store.artifacts().await {
        Ok(a) => a,
        Err(e) => return error_page(ApiError::Internal(e)),
    };
    page(
        "New rollout",
        html! {
            @if !who.may(Role::Operator) {
                p.failed { "Creating a rollout needs the role operator; yours is " (who.principal.role) "." }
            } @else if artifacts.is_empty() {
                p { "No artifact yet: " a href="/ui/artifacts" { "upload one" } " first." }
            } @else {
                form.edit method="post" action="/ui/rollouts" {
                    input type="hidden" name="csrf" value=(who.csrf);
                    label { "Name " input type="text" name="name" required; }
                    label {
                        "Artifact "
                        select name="artifact_id" {
                            @for a in artifacts.iter().rev() {
                                option value=(a.id) { (a.id) ": " (a.name) " " (a.version) " (" (a.device_types.join(", ")) ")" }
                            }
                        }
                    }
                    label { "Device type " input type="text" name="device_type" required; }
                    label { "Only devices with all of these tags " input type="text" name="tags" placeholder="lab, eu-west"; }
                    label { "Only devices with these attributes (KEY=VALUE, comma-separated) " input type="text" name="attributes" placeholder="hw_rev=3"; }
                    label { "Phases (cumulative percentages) " input type="text" name="phases" value="1,10,50,100" required; }
                    label { "Success threshold (% of a phase before the next starts) " input type="number" name="success_threshold" min="1" max="100" value="100"; }
                    label { "Error threshold (failures that pause it: a count or a percentage) " input type="text" name="error_threshold" value="1"; }
                    label { input type="checkbox" name="start" value="on"; " start at once" }
                    button { "Create rollout" }
                }
            }
        },
        &who.principal,
    )
    .into_response()
}

#[derive(Debug, Deserialize)]
pub struct RolloutForm {
    csrf: Option<String>,
    name: String,
    artifact_id: i64,
    device_type: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    attributes: String,
    phases: String,
    success_threshold: u8,
    error_threshold: String,
    start: Option<String>,
}

/// `POST /ui/rollouts` from the new-rollout form (operators): the same checks as the API's.
pub async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<RolloutForm>,
) -> Response {
    let here = "/ui/rollouts/new";
    let who = match authorize_form(&app, &headers, here, form.csrf.as_deref(), Role::Operator).await
    {
        Ok(who) => who,
        Err(r) => return r,
    };
    let attributes = match admin_api::rollouts::parse_attribute_filters(&items(&form.attributes)) {
        Ok(a) => a,
        Err(e) => return error_page(ApiError::BadRequest(e)),
    };
    let request = api::CreateRollout {
        name: form.name.trim().to_owned(),
        artifact_id: form.artifact_id,
        device_type: form.device_type.trim().to_owned(),
        tags: items(&form.tags),
        attributes,
        phases: form.phases.trim().to_owned(),
        success_threshold: form.success_threshold,
        error_threshold: form.error_threshold.trim().to_owned(),
        download_url: None,
        start: form.start.is_some(),
    };
    match admin_api::rollouts::create(&app, &who.principal.actor, request).await {
        Ok(id) => Redirect::to(&format!("/ui/rollouts/{id}")).into_response(),
        Err(e) => error_page(e),
    }
}

pub async fn rollout(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let who = match require_login(&app, &headers, &format!("/ui/rollouts/{id}")).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let page = async {
        let view = admin_api::rollouts::rollout_view(&app.store, id).await?;
        let finished = app.store.finished_actions(id).await?;
        let failures = failure_chart(&app, Some(id), "Failed actions by reason").await?;
        let events: Vec<(i64, String)> = finished
            .into_iter()
            .map(|(at, phase, state)| (at, format!("phase {} {state}", phase + 1)))
            .collect();
        let charts = html! {
            h2 { "Progress over time" }
            (charts::line_chart(
                "Finished actions per phase",
                "devices",
                &charts::cumulative(&events, view.rollout.started_at),
            ))
            h2 { "Failures by reason" }
            (failures)
        };
        ApiResult::Ok(rollout_page(&view, &who, charts))
    };
    match page.await {
        Ok(page) => page.into_response(),
        Err(e) => error_page(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CommandForm {
    csrf: Option<String>,
}

/// `POST /ui/rollouts/{id}/{command}` from the rollout page's buttons (operators): the same
/// command as the management API's, recorded in the audit log; back to the rollout page.
pub async fn command(
    State(app): State<AppState>,
    Path((id, command)): Path<(i64, String)>,
    headers: HeaderMap,
    Form(form): Form<CommandForm>,
) -> Response {
    let here = format!("/ui/rollouts/{id}");
    let who =
        match authorize_form(&app, &headers, &here, form.csrf.as_deref(), Role::Operator).await {
            Ok(who) => who,
            Err(r) => return r,
        };
    let Ok(command) = command.parse::<Command>() else {
        return error_page(ApiError::NotFound(format!(
            "no rollout command {command:?}"
        )));
    };
    match admin_api::rollouts::steer(&app, &who.principal.actor, id, command).await {
        Ok(()) => Redirect::to(&here).into_response(),
        Err(e) => error_page(e),
    }
}

/// Percent of `part` in `whole`, for bar widths.
fn share(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn command_label(command: Command) -> &'static str {
    match command {
        Command::Start => "Start",
        Command::Pause => "Pause",
        Command::Resume => "Resume",
        Command::Cancel => "Cancel rollout",
    }
}

/// Whether the rollout page shows `command`'s button: the commands its state takes.
fn takes(state: &str, command: Command) -> bool {
    state
        .parse::<RolloutState>()
        .is_ok_and(|state| rustupdate_rollout::apply(state, command).is_ok())
}

fn rollout_page(view: &api::Rollout, who: &Operator, charts: Markup) -> Markup {
    let r = &view.rollout;
    let running = r.state == RolloutState::Running.as_str();
    let body = html! {
        p {
            "Artifact " b { (view.artifact.name) " " (view.artifact.version) }
            " to device type " b { (r.device_type) }
            @if !r.tags.is_empty() { " with tags " (r.tags.join(", ")) }
            @for (k, v) in &r.attributes { " where " (k) " = " (v) }
            ". State: " span.state.(r.state) { (r.state) }
            @if let Some(reason) = &r.pause_reason { " (" (reason) ")" }
            ". Success threshold " (r.success_threshold) "%, error threshold " (r.error_threshold) "."
            @if running { " This page reloads every " (LIVE_REFRESH_SECS) " s." }
        }
        @if who.may(Role::Operator) {
            div.commands {
                @for &command in Command::ALL {
                    @if takes(&r.state, command) {
                        form.command method="post" action={ "/ui/rollouts/" (r.id) "/" (command) } {
                            input type="hidden" name="csrf" value=(who.csrf);
                            button { (command_label(command)) }
                        }
                    }
                }
            }
        }
        h2 { "Phases" }
        table {
            tr { th { "phase" } th { "up to" } th { "devices" } th { "progress" } th { "succeeded" } th { "failed" } th { "in progress" } }
            @for (i, p) in view.phases.iter().enumerate() {
                tr {
                    td { (i + 1) @if i as i64 == r.current_phase && running { " (current)" } }
                    td { (p.percent) "%" }
                    td { (p.counts.members) }
                    td {
                        div.bar title={ (p.counts.succeeded) " succeeded, " (p.counts.failed) " failed" } {
                            div.ok style={ "width:" (share(p.counts.succeeded, p.counts.members)) "%" } {}
                            div.fail style={ "width:" (share(p.counts.failed, p.counts.members)) "%" } {}
                            div.busy style={ "width:" (share(p.counts.in_progress, p.counts.members)) "%" } {}
                        }
                    }
                    td { (p.counts.succeeded) " succeeded" }
                    td { (p.counts.failed) " failed" }
                    td { (p.counts.in_progress) }
                }
            }
        }
        h2 { "Downloads" }
        p.downloads { (crate::deltas::downloads_summary(&view.downloads, view.artifact.size)) }
        (charts)
        h2 { "Events" }
        table {
            tr { th { "when" } th { "event" } th { "phase" } th { "detail" } }
            @for e in &view.events {
                tr { td { (ago(Some(e.at))) } td { (e.event) } td { (e.phase + 1) } td { (e.detail) } }
            }
        }
    };
    let title = format!("Rollout {}: {}", r.id, r.name);
    layout(
        &title,
        body,
        Some(&who.principal),
        running.then_some(LIVE_REFRESH_SECS),
    )
}
