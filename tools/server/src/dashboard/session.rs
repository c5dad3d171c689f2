//! Dashboard sessions: who is logged in, with which role, and the checks every state-changing
//! form passes.
//!
//! Login: an operator account's name and password, posted by the login form (`POST /ui/login`;
//! accounts are made on the server host with `rustupdate-server user add`). It opens a session:
//! a random 256-bit key in an HttpOnly, SameSite=Strict cookie (`Secure` when the server is
//! reached over HTTPS), valid for [`SESSION_LIFETIME`], of which the database keeps only the
//! sha256 and the account (`store/sessions.rs`), so every server process over one database
//! knows it. `POST /ui/logout` ends it. Failed logins are limited per client address
//! (`login_limit.rs`: 429 after 5 failures in a minute); at most [`PASSWORD_CHECKS`] password
//! checks run at once (each Argon2id check takes 19 MiB), so a login flood costs bounded memory.
//! Credentials in the login page's URL (`GET /ui/login?token=…` or `?password=…`) are refused
//! with 400: a URL ends up in browser histories and proxy logs.
//!
//! Forms: [`authorize_form`] wants a live session, the form's CSRF token (derived from the
//! session key, which a page of another site cannot know) and the role the action needs.

use super::page::{error_page, layout};
use crate::app_state::AppState;
use crate::audit;
use crate::error::ApiError;
use crate::passwords;
use crate::roles::{Principal, Role};
use crate::store::now_ms;
use crate::tokens;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

const COOKIE: &str = "rustupdate_session";
/// How long a dashboard session lasts.
pub const SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(8 * 3600);
/// Password checks running at once in this process.
pub const PASSWORD_CHECKS: usize = 4;

/// A logged-in operator: who, with which role, and the CSRF token of their forms.
#[derive(Debug, Clone)]
pub struct Operator {
    pub principal: Principal,
    pub csrf: String,
}

impl Operator {
    pub fn may(&self, needed: Role) -> bool {
        self.principal.role.may(needed)
    }
}

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

/// The token every state-changing form carries: derived from the session key, which only the
/// operator's browser has (HttpOnly cookie), so a page of another site cannot know it. Checked
/// on top of the cookie's SameSite=Strict.
fn csrf_token(session_key: &str) -> String {
    tokens::hash(&format!("rustupdate-csrf:{session_key}"))
}

/// The logged-in operator, or the response to send instead: the redirect to the login page
/// (back to `here` afterwards), or an error page.
pub async fn require_login(
    app: &AppState,
    headers: &HeaderMap,
    here: &str,
) -> Result<Operator, Response> {
    let to_login = || {
        let next = serde_urlencoded::to_string([("next", here)]).unwrap_or_default();
        Redirect::to(&format!("/ui/login?{next}")).into_response()
    };
    let Some(key) = session_key(headers) else {
        return Err(to_login());
    };
    match app.store.session_holder(&tokens::hash(key)).await {
        Ok(Some(holder)) => Ok(Operator {
            principal: Principal {
                actor: holder.user,
                role: holder.role,
            },
            csrf: csrf_token(key),
        }),
        Ok(None) => Err(to_login()),
        Err(e) => Err(error_page(ApiError::Internal(e))),
    }
}

/// For a state-changing form: a live session, the form's CSRF token, and the role `needed`;
/// 403 (nothing changed) when the token is missing or wrong or the role is too low.
pub async fn authorize_form(
    app: &AppState,
    headers: &HeaderMap,
    here: &str,
    csrf: Option<&str>,
    needed: Role,
) -> Result<Operator, Response> {
    let operator = require_login(app, headers, here).await?;
    if !csrf.is_some_and(|token| tokens::equal(token, &operator.csrf)) {
        tracing::warn!(
            event = %"dashboard-csrf-refused",
            path = ?here,
            user = ?operator.principal.actor,
        );
        return Err(refused(
            "The form's token is missing or wrong (a request from another site?): nothing was changed.",
        ));
    }
    if !operator.may(needed) {
        tracing::warn!(
            event = %"dashboard-role-refused",
            path = ?here,
            user = ?operator.principal.actor,
            role = %operator.principal.role,
            %needed,
        );
        return Err(refused(&format!(
            "This needs the role {needed}; your account has the role {}: nothing was changed.",
            operator.principal.role
        )));
    }
    Ok(operator)
}

fn refused(text: &str) -> Response {
    let body = layout("Refused", html! { p.failed { (text) } }, None, None);
    (StatusCode::FORBIDDEN, body).into_response()
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
pub struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

/// The account `name` if `password` is its password. Unknown names cost the same time as a
/// wrong password, and at most [`PASSWORD_CHECKS`] checks run at once.
async fn check_password(app: &AppState, name: &str, password: &str) -> anyhow::Result<Option<i64>> {
    let user = app.store.user(name).await?;
    let _slot = app
        .inner
        .password_checks
        .acquire()
        .await
        .map_err(|e| anyhow::anyhow!("password check slots: {e}"))?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || match user {
        Some(user) => passwords::verify(&password, &user.password_hash).then_some(user.id),
        None => {
            passwords::verify_nobody(&password);
            None
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("password check task: {e}"))
}

/// Opens a session if the name and password match an account, else the form again with 401;
/// 429 while `client` has failed too often (`login_limit.rs`).
async fn open_session(app: &AppState, client: IpAddr, form: LoginForm) -> Response {
    let limit = &app.inner.login_limit;
    if let Err(wait) = limit.check(client, Instant::now()) {
        tracing::warn!(event = %"dashboard-login-limited", %client);
        let message = format!(
            "Too many failed logins from your address: try again in {} s.",
            wait.as_secs().max(1)
        );
        return login_page_with(StatusCode::TOO_MANY_REQUESTS, Some(&message), form.next);
    }
    let user_id = match check_password(app, &form.name, &form.password).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            limit.failed(client, Instant::now());
            tracing::warn!(event = %"dashboard-login-failed", %client, user = ?form.name);
            return login_page_with(
                StatusCode::UNAUTHORIZED,
                Some("Wrong name or password."),
                form.next,
            );
        }
        Err(e) => return error_page(ApiError::Internal(e)),
    };
    limit.succeeded(client);
    let opened = async {
        let key = tokens::generate()?;
        let expires = now_ms() + SESSION_LIFETIME.as_millis() as i64;
        app.store
            .add_session(&tokens::hash(&key), user_id, expires)
            .await?;
        anyhow::Ok(key)
    }
    .await;
    match opened {
        Ok(key) => {
            let mut response = Redirect::to(&safe_next(form.next)).into_response();
            set_cookie(
                &mut response,
                &key,
                SESSION_LIFETIME.as_secs(),
                over_https(app),
            );
            tracing::info!(event = %"dashboard-login", user = ?form.name);
            audit::record(app, &form.name, "dashboard-login", &client.to_string(), "").await;
            response
        }
        Err(e) => error_page(ApiError::Internal(e)),
    }
}

fn login_page_with(status: StatusCode, problem: Option<&str>, next: Option<String>) -> Response {
    let body = layout(
        "Log in",
        html! {
            @if let Some(problem) = problem { p.failed { (problem) } }
            form.login method="post" action="/ui/login" {
                label { "Name " input type="text" name="name" autocomplete="username"; }
                " " label { "Password " input type="password" name="password" autocomplete="current-password"; }
                input type="hidden" name="next" value=(safe_next(next));
                " " button { "Log in" }
            }
        },
        None,
        None,
    );
    (status, body).into_response()
}

pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    open_session(&app, client.ip(), form).await
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    token: Option<String>,
    password: Option<String>,
    next: Option<String>,
}

pub async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    if q.token.is_some() || q.password.is_some() {
        tracing::warn!(
            event = %"dashboard-login-by-url-refused",
            hint = "log in with the form (POST /ui/login): credentials in a URL end up in histories and logs",
        );
        return login_page_with(
            StatusCode::BAD_REQUEST,
            Some("Credentials in the address are not accepted: type them into the form."),
            q.next,
        );
    }
    login_page_with(StatusCode::OK, None, q.next)
}

pub async fn logout(
    State(app): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(key) = session_key(&headers) {
        // Only a live session's logout is an operator action (anyone can post a made-up cookie,
        // and must not be able to fill the audit log).
        let hash = tokens::hash(key);
        let ended = async {
            let holder = app.store.session_holder(&hash).await?;
            app.store.remove_session(&hash).await?;
            anyhow::Ok(holder)
        }
        .await;
        match ended {
            Ok(Some(holder)) => {
                let client = client.ip().to_string();
                audit::record(&app, &holder.user, "dashboard-logout", &client, "").await;
            }
            Ok(None) => {}
            Err(e) => return error_page(ApiError::Internal(e)),
        }
    }
    let mut response = Redirect::to("/ui/login").into_response();
    set_cookie(&mut response, "", 0, over_https(&app));
    response
}
