//! What every dashboard page shares: the layout around its body (navigation, who is logged in,
//! the style sheet), error pages, and small formatting helpers.

use crate::error::ApiError;
use crate::roles::Principal;
use crate::store::now_ms;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// Seconds between reloads of a running rollout's page (a `<meta http-equiv="refresh">`: live
/// without JavaScript).
pub const LIVE_REFRESH_SECS: u32 = 10;

pub(super) fn page(title: &str, body: Markup, who: &Principal) -> Markup {
    layout(title, body, Some(who), None)
}

/// The page around `body`; with `who`, the navigation and who is logged in (not on the login
/// form); with `refresh`, reloaded every that many seconds.
pub(super) fn layout(
    title: &str,
    body: Markup,
    who: Option<&Principal>,
    refresh: Option<u32>,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if let Some(secs) = refresh { meta http-equiv="refresh" content=(secs); }
                title { (title) " · rustupdate" }
                style { (STYLE) }
            }
            body {
                header {
                    nav {
                        a.home href="/ui/" { "rustupdate fleet" }
                        @if who.is_some() {
                            a href="/ui/devices" { "Devices" }
                            a href="/ui/rollouts" { "Rollouts" }
                            a href="/ui/artifacts" { "Artifacts" }
                        }
                    }
                    @if let Some(who) = who {
                        form.logout method="post" action="/ui/logout" {
                            span.who { (who.actor) " (" (who.role) ") " }
                            button { "Log out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
header{background:#1d3557;padding:.6em 1.2em;display:flex;justify-content:space-between;align-items:center}\
header a{color:#fff;text-decoration:none;margin-right:1.2em}header .home{font-weight:bold}\
.who{color:#fff;margin-right:.5em}.logout{margin:0}.commands{margin:.5em 0 1em}.command{display:inline;margin-right:.5em}\
main{padding:1em 1.5em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border-bottom:1px solid #ddd;padding:.3em .8em;text-align:left}\
.bar{display:flex;width:24em;height:1.1em;background:#eee;border-radius:3px;overflow:hidden}\
.ok{background:#2a9d8f}.fail{background:#e63946}.busy{background:#e9c46a}\
form.edit label{display:block;margin:.4em 0}form.edit input[type=text]{width:24em}\
.state{font-weight:bold}.failed,.paused{color:#c1121f}.succeeded,.finished{color:#2a9d8f}";

pub(super) fn ago(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "never".into() };
    let secs = (now_ms() - ms).max(0) / 1000;
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}

/// An error as a page with its status; internal errors are logged and answered generically.
pub(super) fn error_page(err: ApiError) -> Response {
    let status = err.status();
    let text = match &err {
        ApiError::Internal(e) if status == StatusCode::SERVICE_UNAVAILABLE => {
            tracing::warn!(event = %"database-unavailable", error = %format_args!("{e:#}"));
            "The database is unavailable: try again in a few seconds.".to_owned()
        }
        ApiError::Internal(e) => {
            tracing::error!(event = %"internal-error", error = %format_args!("{e:#}"));
            "internal error (see the server log)".to_owned()
        }
        other => other.to_string(),
    };
    let body = layout("Error", html! { p.failed { (text) } }, None, None);
    (status, body).into_response()
}

/// Comma- or space-separated items of a form field, without empty ones.
pub(super) fn items(field: &str) -> Vec<String> {
    field
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_form_lists() {
        assert_eq!(items(" a, b ,,c\nd "), ["a", "b", "c", "d"]);
        assert!(items(" , ").is_empty());
    }
}
