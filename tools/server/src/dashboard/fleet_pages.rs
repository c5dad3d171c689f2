//! The fleet's pages: the overview, the device search and a device with its history; operators
//! change a device's tags on its page.

use super::failure_chart::failure_chart;
use super::page::{ago, error_page, items, page};
use super::session::{Operator, authorize_form, require_login};
use crate::admin_api;
use crate::api;
use crate::app_state::AppState;
use crate::charts;
use crate::error::{ApiError, ApiResult};
use crate::links;
use crate::roles::Role;
use crate::store::{
    COUNT_CAP, DeviceFilter, DeviceRow, FEEDBACK_BYTES_PER_ACTION, FEEDBACK_ENTRIES_PER_ACTION,
    now_ms,
};
use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use rustupdate_ddi::attributes::{RUNNING_SLOT, RUNNING_VERSION};
use rustupdate_rollout::ActionState;
use serde::Deserialize;

/// Audit log entries on the overview.
const AUDIT_SHOWN: i64 = 20;
/// How far back the chart of versions goes, and how many versions it draws (the rest: "other").
const VERSION_HISTORY_MS: i64 = 30 * 86_400_000;
const VERSIONS_CHARTED: usize = 8;
/// Devices on a page of the device list (and on the overview).
const DEVICES_PER_PAGE: i64 = 50;

pub async fn overview(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let who = match require_login(&app, &headers, "/ui/").await {
        Ok(who) => who,
        Err(r) => return r,
    };
    match overview_page(&app, &who).await {
        Ok(m) => m.into_response(),
        Err(e) => error_page(e),
    }
}

async fn overview_page(app: &AppState, who: &Operator) -> ApiResult<Markup> {
    app.flush_contacts().await?;
    let per_version = app.store.devices_per_version().await?;
    let device_count: i64 = per_version.values().sum();
    let rollouts = app.store.rollouts().await?;
    let audit = app.store.audit_log(AUDIT_SHOWN).await?;
    let now = now_ms();
    // The hourly samples, and now.
    let mut samples = app.store.version_samples(now - VERSION_HISTORY_MS).await?;
    samples.extend(per_version.iter().map(|(v, n)| (now, v.clone(), *n)));
    let failures = failure_chart(app, None, "Failed actions by reason, all rollouts").await?;
    let (first_devices, _) = app
        .store
        .device_page(&DeviceFilter::default(), DEVICES_PER_PAGE, 0)
        .await?;
    Ok(page(
        "Fleet",
        html! {
            p { (device_count) " devices, " (rollouts.len()) " rollouts." }
            h2 { "Devices per running version" }
            table {
                tr { th { "version" } th { "devices" } }
                @for (version, count) in &per_version { tr { td { (version) } td { (count) } } }
            }
            (charts::line_chart(
                "Devices per running version, the last 30 days (sampled hourly, and now)",
                "devices",
                &charts::snapshot_series(&samples, VERSIONS_CHARTED),
            ))
            h2 { "Rollouts" }
            (super::rollout_pages::rollout_table(&rollouts))
            h2 { "Failures by reason" }
            (failures)
            h2 { "Devices" }
            p {
                "The first " (first_devices.len()) " of " (device_count) " by id; "
                a href="/ui/devices" { "search and page through all of them" } "."
            }
            (device_table(&first_devices))
            h2 { "Operator actions" }
            p { "The newest " (AUDIT_SHOWN) "; all of them: " code { "GET /api/v1/audit" } "." }
            table {
                tr { th { "when" } th { "who" } th { "action" } th { "on" } th { "detail" } }
                @for a in &audit {
                    tr {
                        td { (ago(Some(a.at))) } td { (a.actor) } td { (a.action) }
                        td { (a.target) } td { (a.detail) }
                    }
                }
            }
        },
        &who.principal,
    ))
}

fn device_table(devices: &[DeviceRow]) -> Markup {
    html! {
        table {
            tr { th { "device" } th { "type" } th { "running version" } th { "slot" } th { "tags" } th { "last seen" } }
            @for d in devices {
                tr {
                    td { a href={ "/ui/devices/" (links::segment(&d.controller_id)) } { (d.controller_id) } }
                    td {
                        (d.device_type.as_deref().unwrap_or("-"))
                        @if let Some(reported) = d.type_mismatch() {
                            " " span.failed title="the device reports another type; its registered type stays" { "(reports " (reported) ")" }
                        }
                    }
                    td { (d.attributes.get(RUNNING_VERSION).map_or("-", |s| s)) }
                    td { (d.attributes.get(RUNNING_SLOT).map_or("-", |s| s)) }
                    td { (d.tags.join(", ")) }
                    td { (ago(d.last_seen)) }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct DeviceSearch {
    #[serde(default)]
    q: String,
    #[serde(default, rename = "type")]
    device_type: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    version: String,
    /// `KEY=VALUE`.
    #[serde(default)]
    attribute: String,
    /// The state of the newest action.
    #[serde(default)]
    state: String,
    /// Not seen for this many hours (or never).
    #[serde(default)]
    silent_hours: String,
    page: Option<i64>,
}

impl DeviceSearch {
    /// The store's filter, or what is wrong with the search.
    fn filter(&self) -> Result<DeviceFilter, String> {
        let attribute = match self.attribute.trim() {
            "" => None,
            pair => match pair.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    Some((k.trim().to_owned(), v.trim().to_owned()))
                }
                _ => return Err(format!("attribute {pair:?} is not KEY=VALUE")),
            },
        };
        let last_action = match self.state.trim() {
            "" => String::new(),
            s => s
                .parse::<ActionState>()
                .map_err(|e| e.to_string())?
                .as_str()
                .to_owned(),
        };
        let silent_since = match self.silent_hours.trim() {
            "" => None,
            h => {
                let hours: u32 = h
                    .parse()
                    .map_err(|_| format!("hours {h:?} is not a whole number"))?;
                Some(now_ms() - i64::from(hours) * 3_600_000)
            }
        };
        Ok(DeviceFilter {
            id_part: self.q.trim().to_owned(),
            device_type: self.device_type.trim().to_owned(),
            tag: self.tag.trim().to_owned(),
            version: self.version.trim().to_owned(),
            attribute,
            last_action,
            silent_since,
        })
    }
}

/// `GET /ui/devices?q=&type=&tag=&version=&attribute=&state=&silent_hours=&page=`: devices by
/// part of their id, type, tag, running version, an attribute, their newest action's state and
/// silence, a page at a time.
pub async fn devices(
    State(app): State<AppState>,
    Query(search): Query<DeviceSearch>,
    headers: HeaderMap,
) -> Response {
    let who = match require_login(&app, &headers, "/ui/devices").await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let page_no = search.page.unwrap_or(1).max(1);
    let filter = match search.filter() {
        Ok(f) => f,
        Err(e) => return error_page(ApiError::BadRequest(e)),
    };
    if let Err(e) = app.flush_contacts().await {
        return error_page(ApiError::Internal(e));
    }
    let offset = (page_no - 1).saturating_mul(DEVICES_PER_PAGE);
    let (found, total) = match app
        .store
        .device_page(&filter, DEVICES_PER_PAGE, offset)
        .await
    {
        Ok(found) => found,
        Err(e) => return error_page(ApiError::Internal(e)),
    };
    // Beyond COUNT_CAP matches the total is not counted: a full page then has a next one.
    let capped = total > COUNT_CAP;
    let pages = if capped {
        page_no + i64::from(found.len() as i64 == DEVICES_PER_PAGE)
    } else {
        (total + DEVICES_PER_PAGE - 1) / DEVICES_PER_PAGE
    };
    let link = |page: i64| {
        let query = serde_urlencoded::to_string([
            ("q", search.q.trim()),
            ("type", search.device_type.trim()),
            ("tag", search.tag.trim()),
            ("version", search.version.trim()),
            ("attribute", search.attribute.trim()),
            ("state", search.state.trim()),
            ("silent_hours", search.silent_hours.trim()),
            ("page", page.to_string().as_str()),
        ])
        .unwrap_or_default();
        format!("/ui/devices?{query}")
    };
    page(
        "Devices",
        html! {
            form.search method="get" action="/ui/devices" {
                label { "id contains " input type="search" name="q" value=(filter.id_part); }
                " " label { "type " input type="text" name="type" value=(filter.device_type); }
                " " label { "tag " input type="text" name="tag" value=(filter.tag); }
                " " label { "version " input type="text" name="version" value=(filter.version) size="10"; }
                " " label { "attribute " input type="text" name="attribute" value=(search.attribute) placeholder="KEY=VALUE" size="14"; }
                " " label {
                    "newest action "
                    select name="state" {
                        option value="" { "any" }
                        @for state in ActionState::ALL {
                            option value=(state.as_str()) selected[filter.last_action == state.as_str()] { (state.as_str()) }
                        }
                    }
                }
                " " label { "not seen for " input type="number" name="silent_hours" min="0" value=(search.silent_hours) size="4"; " h" }
                " " button { "Search" }
            }
            p {
                @if capped { "More than " (COUNT_CAP) " devices match; page " (page_no) "." }
                @else {
                    (total) " devices match"
                    @if total > 0 { "; page " (page_no) " of " (pages.max(1)) }
                    "."
                }
                @if page_no > 1 { " " a href=(link(page_no - 1)) { "previous page" } }
                @if page_no < pages { " " a href=(link(page_no + 1)) { "next page" } }
            }
            (device_table(&found))
        },
        &who.principal,
    )
    .into_response()
}

fn device_here(controller: &str) -> String {
    format!("/ui/devices/{}", links::segment(controller))
}

pub async fn device(
    State(app): State<AppState>,
    Path(controller): Path<String>,
    headers: HeaderMap,
) -> Response {
    let who = match require_login(&app, &headers, &device_here(&controller)).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    if let Err(e) = app.flush_contacts().await {
        return error_page(ApiError::Internal(e));
    }
    match admin_api::devices::device_detail(&app.store, &controller).await {
        Ok(detail) => device_page(&detail, &who).into_response(),
        Err(e) => error_page(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct TagsForm {
    csrf: Option<String>,
    #[serde(default)]
    add: String,
    #[serde(default)]
    remove: String,
}

/// `POST /ui/devices/{controller}/tags` from the device page (operators).
pub async fn retag(
    State(app): State<AppState>,
    Path(controller): Path<String>,
    headers: HeaderMap,
    Form(form): Form<TagsForm>,
) -> Response {
    let here = device_here(&controller);
    let who =
        match authorize_form(&app, &headers, &here, form.csrf.as_deref(), Role::Operator).await {
            Ok(who) => who,
            Err(r) => return r,
        };
    let change = api::ChangeTags {
        add: items(&form.add),
        remove: items(&form.remove),
    };
    match admin_api::devices::retag(&app, &who.principal.actor, &controller, &change).await {
        Ok(_) => Redirect::to(&here).into_response(),
        Err(e) => error_page(e),
    }
}

fn device_page(detail: &api::DeviceDetail, who: &Operator) -> Markup {
    let d = &detail.device;
    page(
        &format!("Device {}", d.controller_id),
        html! {
            p {
                "Type " b { (d.device_type.as_deref().unwrap_or("unknown")) }
                @if let Some(reported) = &d.reported_device_type {
                    " " span.failed { "(the device reports " b { (reported) } "; the registered type stays, rollouts target it)" }
                }
                ", running " b { (d.running_version.as_deref().unwrap_or("unknown")) }
                ", last seen " (ago(d.last_seen)) "."
                @if !d.tags.is_empty() { " Tags: " (d.tags.join(", ")) "." }
            }
            @if who.may(Role::Operator) {
                form.tags method="post" action={ (device_here(&d.controller_id)) "/tags" } {
                    input type="hidden" name="csrf" value=(who.csrf);
                    label { "add tags " input type="text" name="add" placeholder="lab, eu-west"; }
                    " " label { "remove tags " input type="text" name="remove"; }
                    " " button { "Change tags" }
                }
            }
            h2 { "Attributes" }
            table { @for (k, v) in &d.attributes { tr { th { (k) } td { (v) } } } }
            h2 { "History" }
            @for a in &detail.actions {
                h3 {
                    "Action " (a.action.id) ": " (a.rollout_name) " (" (a.artifact_version) ") — "
                    span.state.(a.action.state) { (a.action.state) }
                }
                @if let Some(reason) = &a.action.reason { p { "Reason: " (reason) } }
                @if a.action.full_bytes > 0 || a.action.delta_bytes > 0 {
                    p.downloads {
                        "Downloaded: " (a.action.delta_bytes) " bytes of a delta patch, "
                        (a.action.full_bytes) " bytes of the artifact."
                        @if let Some(why) = &a.action.delta_fallback { " Fell back from the patch: " (why) }
                    }
                }
                @if a.action.feedback_dropped > 0 {
                    p {
                        (a.action.feedback_dropped) " feedback entries not kept (the first one and the latest are kept: at most "
                        (FEEDBACK_ENTRIES_PER_ACTION) " entries and " (FEEDBACK_BYTES_PER_ACTION / 1024) " KiB of details per action)."
                    }
                }
                table {
                    tr { th { "when" } th { "channel" } th { "execution" } th { "result" } th { "progress" } th { "details" } }
                    @for f in &a.feedback {
                        tr {
                            td { (ago(Some(f.received_at))) } td { (f.channel) } td { (f.execution) } td { (f.finished) }
                            td { @if let Some((c, o)) = f.progress { (c) "/" (o) } }
                            td { @for line in &f.details { (line) br; } }
                        }
                    }
                }
            }
        },
        &who.principal,
    )
}
