//! The dashboard: server-rendered HTML (maud), no JavaScript. Pages: the fleet overview (devices
//! per running version, rollouts, last seen, the newest operator actions), a rollout with a
//! progress bar per phase, its events and the buttons of the commands its state takes (start,
//! pause, resume, cancel: forms with a CSRF token), a device with its history.
//!
//! Access: the admin token, posted once by the login form (`POST /ui/login`), opens a session: a
//! random 256-bit key in an HttpOnly, SameSite=Strict cookie (`Secure` when the server is reached
//! over HTTPS), valid for [`SESSION_LIFETIME`], of which the database keeps only the sha256
//! (`store/sessions.rs`), so every server process over one database knows it. `POST /ui/logout`
//! ends it. The cookie never holds the admin token. Failed logins are limited per client address
//! (`login_limit.rs`: 429 after 5 wrong tokens in a minute). A token in the login page's URL
//! (`GET /ui/login?token=…`) is refused with 400 and never logs in: a URL ends up in browser
//! histories and proxy logs.

use crate::admin_api;
use crate::audit;
use crate::error::{ApiError, ApiResult};
use crate::fleet;
use crate::links;
use crate::state::AppState;
use crate::store::{DeviceFilter, FEEDBACK_BYTES_PER_ACTION, FEEDBACK_ENTRIES_PER_ACTION, now_ms};
use crate::tokens;
use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use rustupdate_rollout::{Command, RolloutState};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

const COOKIE: &str = "rustupdate_session";
/// Devices on a page of the device list (and on the overview).
const DEVICES_PER_PAGE: i64 = 50;
/// Audit log entries on the overview.
const AUDIT_SHOWN: i64 = 20;
/// How long a dashboard session lasts.
pub const SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(8 * 3600);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/", get(overview))
        .route("/ui/rollouts/{id}", get(rollout))
        .route("/ui/rollouts/{id}/{command}", post(rollout_command))
        .route("/ui/devices", get(devices))
        .route("/ui/devices/{controller}", get(device))
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    token: Option<String>,
    next: Option<String>,
}

fn page(title: &str, body: Markup) -> Markup {
    layout(title, body, true)
}

/// The page around `body`; `log_out` shows the "Log out" button (not on the login form).
fn layout(title: &str, body: Markup, log_out: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · rustupdate" }
                style { (STYLE) }
            }
            body {
                header {
                    a href="/ui/" { "rustupdate fleet" }
                    @if log_out {
                        form.logout method="post" action="/ui/logout" { button { "Log out" } }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
header{background:#1d3557;padding:.6em 1.2em;display:flex;justify-content:space-between}\
.logout{margin:0}.commands{margin:.5em 0 1em}.command{display:inline;margin-right:.5em}header a{color:#fff;text-decoration:none;font-weight:bold}\
main{padding:1em 1.5em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border-bottom:1px solid #ddd;padding:.3em .8em;text-align:left}\
.bar{display:flex;width:24em;height:1.1em;background:#eee;border-radius:3px;overflow:hidden}\
.ok{background:#2a9d8f}.fail{background:#e63946}.busy{background:#e9c46a}\
.state{font-weight:bold}.failed,.paused{color:#c1121f}.succeeded,.finished{color:#2a9d8f}";

/// The session key the request's cookie carries, if any.
fn session_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find_map(|(k, v)| (k == COOKIE).then_some(v))
}

async fn logged_in(app: &AppState, headers: &HeaderMap) -> ApiResult<bool> {
    match session_key(headers) {
        Some(key) => Ok(app.store.session_valid(&tokens::hash(key)).await?),
        None => Ok(false),
    }
}

/// Only local paths are followed after login (no open redirect).
fn safe_next(next: Option<String>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.contains("//") => n,
        _ => "/ui/".into(),
    }
}

/// Whether the operator reaches the server over HTTPS (the cookie is then `Secure`).
fn over_https(app: &AppState) -> bool {
    app.inner.settings.tls.is_some()
        || app
            .inner
            .settings
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
}

fn set_cookie(response: &mut Response, value: &str, max_age_secs: u64, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Opens a session if `token` is the admin token, else the form again with 401; 429 while
/// `client` has failed too often (`login_limit.rs`).
async fn open_session(
    app: &AppState,
    client: IpAddr,
    token: &str,
    next: Option<String>,
) -> Response {
    let limit = &app.inner.login_limit;
    if let Err(wait) = limit.check(client, Instant::now()) {
        log::warn!("event=dashboard-login-limited client={client}");
        return login_refused(wait, next);
    }
    if !tokens::equal(token, &app.inner.admin_token) {
        limit.failed(client, Instant::now());
        log::warn!("event=dashboard-login-failed client={client}");
        return login_form(StatusCode::UNAUTHORIZED, true, next);
    }
    limit.succeeded(client);
    let opened = async {
        let key = tokens::generate()?;
        let expires = now_ms() + SESSION_LIFETIME.as_millis() as i64;
        app.store.add_session(&tokens::hash(&key), expires).await?;
        anyhow::Ok(key)
    }
    .await;
    match opened {
        Ok(key) => {
            let mut response = Redirect::to(&safe_next(next)).into_response();
            set_cookie(
                &mut response,
                &key,
                SESSION_LIFETIME.as_secs(),
                over_https(app),
            );
            log::info!("event=dashboard-login");
            audit::record(
                app,
                audit::DASHBOARD,
                "dashboard-login",
                &client.to_string(),
                "",
            )
            .await;
            response
        }
        Err(e) => error_page(ApiError::Internal(e)),
    }
}

fn login_refused(wait: std::time::Duration, next: Option<String>) -> Response {
    let message = format!(
        "Too many failed logins from your address: try again in {} s.",
        wait.as_secs().max(1)
    );
    login_page_with(StatusCode::TOO_MANY_REQUESTS, Some(&message), next)
}

fn login_form(status: StatusCode, wrong: bool, next: Option<String>) -> Response {
    login_page_with(status, wrong.then_some("Wrong token."), next)
}

fn login_page_with(status: StatusCode, problem: Option<&str>, next: Option<String>) -> Response {
    let body = layout(
        "Log in",
        html! {
            @if let Some(problem) = problem { p.failed { (problem) } }
            form method="post" action="/ui/login" {
                label { "Admin token (DATA_DIR/admin.token) " input type="password" name="token"; }
                input type="hidden" name="next" value=(safe_next(next));
                " " button { "Log in" }
            }
        },
        false,
    );
    (status, body).into_response()
}

async fn login(
    State(app): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    open_session(&app, client.ip(), &form.token, form.next).await
}

async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    if q.token.is_some() {
        log::warn!(
            "event=dashboard-login-by-url-refused hint=\"log in with the form (POST /ui/login): a token in a URL ends up in histories and logs\""
        );
        return login_page_with(
            StatusCode::BAD_REQUEST,
            Some("A token in the address is not accepted: type it into the form."),
            q.next,
        );
    }
    login_form(StatusCode::OK, false, q.next)
}

async fn logout(
    State(app): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(key) = session_key(&headers) {
        // Only a live session's logout is an operator action (anyone can post a made-up cookie,
        // and must not be able to fill the audit log).
        let hash = tokens::hash(key);
        let ended = async {
            let valid = app.store.session_valid(&hash).await?;
            app.store.remove_session(&hash).await?;
            anyhow::Ok(valid)
        }
        .await;
        match ended {
            Ok(true) => {
                let client = client.ip().to_string();
                audit::record(&app, audit::DASHBOARD, "dashboard-logout", &client, "").await;
            }
            Ok(false) => {}
            Err(e) => return error_page(ApiError::Internal(e)),
        }
    }
    let mut response = Redirect::to("/ui/login").into_response();
    set_cookie(&mut response, "", 0, over_https(&app));
    response
}

/// `None` when logged in, else the redirect to the login page (or the error page).
async fn require_login(app: &AppState, headers: &HeaderMap, here: &str) -> Option<Response> {
    match logged_in(app, headers).await {
        Ok(true) => None,
        Ok(false) => Some(Redirect::to(&format!("/ui/login?next={here}")).into_response()),
        Err(e) => Some(error_page(e)),
    }
}

fn ago(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "never".into() };
    let secs = (now_ms() - ms).max(0) / 1000;
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}

fn error_page(err: ApiError) -> Response {
    let status = err.status();
    let text = match &err {
        ApiError::Internal(_) => "internal error (see the server log)".to_owned(),
        other => other.to_string(),
    };
    if let ApiError::Internal(e) = &err {
        log::error!("event=internal-error error={e:#}");
    }
    (status, page("Error", html! { p { (text) } })).into_response()
}

async fn overview(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = require_login(&app, &headers, "/ui/").await {
        return r;
    }
    match overview_page(&app).await {
        Ok(m) => m.into_response(),
        Err(e) => error_page(e),
    }
}

async fn overview_page(app: &AppState) -> ApiResult<Markup> {
    let devices = app.store.devices().await?;
    let rollouts = app.store.rollouts().await?;
    let audit = app.store.audit_log(AUDIT_SHOWN).await?;
    let (first_devices, _) = app
        .store
        .device_page(&DeviceFilter::default(), DEVICES_PER_PAGE, 0)
        .await?;
    let mut per_version: BTreeMap<String, usize> = BTreeMap::new();
    for d in &devices {
        let version = d
            .attributes
            .get(rustupdate_ddi::attributes::RUNNING_VERSION)
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        *per_version.entry(version).or_default() += 1;
    }
    Ok(page(
        "Fleet",
        html! {
            p { (devices.len()) " devices, " (rollouts.len()) " rollouts." }
            h2 { "Devices per running version" }
            table {
                tr { th { "version" } th { "devices" } }
                @for (version, count) in &per_version { tr { td { (version) } td { (count) } } }
            }
            h2 { "Rollouts" }
            table {
                tr { th { "id" } th { "name" } th { "device type" } th { "state" } th { "phase" } }
                @for r in &rollouts {
                    tr {
                        td { a href={ "/ui/rollouts/" (r.id) } { (r.id) } }
                        td { (r.name) } td { (r.device_type) }
                        td.state.(r.state) { (r.state) }
                        td { (r.current_phase + 1) " of " (r.phases.split(',').count()) }
                    }
                }
            }
            h2 { "Devices" }
            p {
                "The first " (first_devices.len()) " of " (devices.len()) " by id; "
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
    ))
}

fn device_table(devices: &[crate::store::DeviceRow]) -> Markup {
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
                        td { (d.attributes.get(rustupdate_ddi::attributes::RUNNING_VERSION).map_or("-", |s| s)) }
                        td { (d.attributes.get(rustupdate_ddi::attributes::RUNNING_SLOT).map_or("-", |s| s)) }
                        td { (d.tags.join(", ")) }
                        td { (ago(d.last_seen)) }
                    }
                }
            }
    }
}

#[derive(Debug, Deserialize)]
struct DeviceSearch {
    #[serde(default)]
    q: String,
    #[serde(default, rename = "type")]
    device_type: String,
    #[serde(default)]
    tag: String,
    page: Option<i64>,
}

/// `GET /ui/devices?q=&type=&tag=&page=`: devices by part of their id, type and tag, a page at a
/// time.
async fn devices(
    State(app): State<AppState>,
    Query(search): Query<DeviceSearch>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = require_login(&app, &headers, "/ui/devices").await {
        return r;
    }
    let page_no = search.page.unwrap_or(1).max(1);
    let filter = DeviceFilter {
        id_part: search.q.trim().to_owned(),
        device_type: search.device_type.trim().to_owned(),
        tag: search.tag.trim().to_owned(),
    };
    let offset = (page_no - 1).saturating_mul(DEVICES_PER_PAGE);
    let (found, total) = match app
        .store
        .device_page(&filter, DEVICES_PER_PAGE, offset)
        .await
    {
        Ok(found) => found,
        Err(e) => return error_page(ApiError::Internal(e)),
    };
    let pages = (total + DEVICES_PER_PAGE - 1) / DEVICES_PER_PAGE;
    let link = |page: i64| {
        let query = serde_urlencoded::to_string([
            ("q", filter.id_part.as_str()),
            ("type", filter.device_type.as_str()),
            ("tag", filter.tag.as_str()),
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
                " " button { "Search" }
            }
            p {
                (total) " devices match"
                @if total > 0 { "; page " (page_no) " of " (pages.max(1)) }
                "."
                @if page_no > 1 { " " a href=(link(page_no - 1)) { "previous page" } }
                @if page_no < pages { " " a href=(link(page_no + 1)) { "next page" } }
            }
            (device_table(&found))
        },
    )
    .into_response()
}

async fn rollout(State(app): State<AppState>, Path(id): Path<i64>, headers: HeaderMap) -> Response {
    if let Some(r) = require_login(&app, &headers, &format!("/ui/rollouts/{id}")).await {
        return r;
    }
    let csrf = csrf_token(session_key(&headers).unwrap_or_default());
    match admin_api::rollout_view(&app.store, id).await {
        Ok(view) => rollout_page(&view, &csrf).into_response(),
        Err(e) => error_page(e),
    }
}

/// The token every state-changing form carries: derived from the session key, which only the
/// operator's browser has (HttpOnly cookie), so a page of another site cannot know it. Checked
/// on top of the cookie's SameSite=Strict.
fn csrf_token(session_key: &str) -> String {
    tokens::hash(&format!("rustupdate-csrf:{session_key}"))
}

#[derive(Debug, Deserialize)]
struct CommandForm {
    csrf: Option<String>,
}

/// `POST /ui/rollouts/{id}/{command}` from the rollout page's buttons: a logged-in session and
/// the form's CSRF token, then the same command as the management API's, recorded in the audit
/// log; back to the rollout page.
async fn rollout_command(
    State(app): State<AppState>,
    Path((id, command)): Path<(i64, String)>,
    headers: HeaderMap,
    Form(form): Form<CommandForm>,
) -> Response {
    let here = format!("/ui/rollouts/{id}");
    if let Some(r) = require_login(&app, &headers, &here).await {
        return r;
    }
    let expected = csrf_token(session_key(&headers).unwrap_or_default());
    if !form
        .csrf
        .is_some_and(|token| tokens::equal(&token, &expected))
    {
        log::warn!("event=dashboard-csrf-refused rollout={id} command={command:?}");
        let body = page(
            "Refused",
            html! { p { "The form's token is missing or wrong (a request from another site?): nothing was changed." } },
        );
        return (StatusCode::FORBIDDEN, body).into_response();
    }
    let Ok(command) = command.parse::<Command>() else {
        return error_page(ApiError::NotFound(format!(
            "no rollout command {command:?}"
        )));
    };
    match fleet::command(&app.store, id, command).await {
        Ok(_) => {
            log::info!("event=rollout-command rollout={id} command={command} by=dashboard");
            let action = format!("rollout-{command}");
            audit::record(
                &app,
                audit::DASHBOARD,
                &action,
                &format!("rollout {id}"),
                "",
            )
            .await;
            Redirect::to(&here).into_response()
        }
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

fn rollout_page(view: &crate::api::Rollout, csrf: &str) -> Markup {
    let r = &view.rollout;
    page(
        &format!("Rollout {}: {}", r.id, r.name),
        html! {
            p {
                "Artifact " b { (view.artifact.name) " " (view.artifact.version) }
                " to device type " b { (r.device_type) }
                @if !r.tags.is_empty() { " with tags " (r.tags.join(", ")) }
                ". State: " span.state.(r.state) { (r.state) }
                @if let Some(reason) = &r.pause_reason { " (" (reason) ")" }
                ". Success threshold " (r.success_threshold) "%, error threshold " (r.error_threshold) "."
            }
            div.commands {
                @for &command in Command::ALL {
                    @if takes(&r.state, command) {
                        form.command method="post" action={ "/ui/rollouts/" (r.id) "/" (command) } {
                            input type="hidden" name="csrf" value=(csrf);
                            button { (command_label(command)) }
                        }
                    }
                }
            }
            h2 { "Phases" }
            table {
                tr { th { "phase" } th { "up to" } th { "devices" } th { "progress" } th { "succeeded" } th { "failed" } th { "in progress" } }
                @for (i, p) in view.phases.iter().enumerate() {
                    tr {
                        td { (i + 1) @if i as i64 == r.current_phase && r.state == "running" { " (current)" } }
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
            h2 { "Events" }
            table {
                tr { th { "when" } th { "event" } th { "phase" } th { "detail" } }
                @for e in &view.events {
                    tr { td { (ago(Some(e.at))) } td { (e.event) } td { (e.phase + 1) } td { (e.detail) } }
                }
            }
        },
    )
}

async fn device(
    State(app): State<AppState>,
    Path(controller): Path<String>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/ui/devices/{}", links::segment(&controller));
    if let Some(r) = require_login(&app, &headers, &here).await {
        return r;
    }
    match admin_api::device_detail(&app.store, &controller).await {
        Ok(detail) => device_page(&detail).into_response(),
        Err(e) => error_page(e),
    }
}

fn device_page(detail: &crate::api::DeviceDetail) -> Markup {
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
            h2 { "Attributes" }
            table { @for (k, v) in &d.attributes { tr { th { (k) } td { (v) } } } }
            h2 { "History" }
            @for a in &detail.actions {
                h3 {
                    "Action " (a.action.id) ": " (a.rollout_name) " (" (a.artifact_version) ") — "
                    span.state.(a.action.state) { (a.action.state) }
                }
                @if let Some(reason) = &a.action.reason { p { "Reason: " (reason) } }
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
    )
}
