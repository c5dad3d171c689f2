//! Who may do what: the three roles of operators and the one table that says which role each
//! management route needs. Pure: the layer that enforces it is `guard::require_role`, the
//! dashboard asks [`Role::may`] before it shows or accepts a form.
//!
//! - viewer: reads everything (devices, rollouts, artifacts, the audit log, `/metrics`);
//! - operator: also runs the fleet: uploads artifacts, creates and steers rollouts, tags devices;
//! - admin: also registers devices (which hands out their tokens).
//!
//! User accounts and API tokens are managed on the server host (`rustupdate-server user …`,
//! `token …`), not over HTTP: whoever can change who is admin must already be on the host.

use axum::http::Method;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: &[Role] = &[Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role includes `needed` (roles are ordered: admin > operator > viewer).
    pub fn may(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("role {s:?} is not one of viewer, operator, admin"))
    }
}

/// Who acts on a request, and with which role: the admin token (actor `admin-token`, admin), a
/// user's API token or dashboard session (actor the user's name). Put into the request's
/// extensions by `guard::require_role`; the audit log names the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub actor: String,
    pub role: Role,
}

/// The actor of the admin token (the management API and the CLI, for automation).
pub const ADMIN_TOKEN_ACTOR: &str = "admin-token";

/// The role a management route needs, by method and matched route (axum's `MatchedPath`, e.g.
/// `/api/v1/rollouts/{id}/{command}`). Reading is for viewers; a route not listed needs admin,
/// so a new route is closed until it is placed here.
pub fn required(method: &Method, route: &str) -> Role {
    if method == Method::GET || method == Method::HEAD {
        return Role::Viewer;
    }
    match (method.as_str(), route) {
        ("POST", "/api/v1/artifacts")
        | ("POST", "/api/v1/rollouts")
        | ("POST", "/api/v1/rollouts/{id}/{command}")
        | ("POST", "/api/v1/artifacts/{id}/deltas")
        | ("PUT", "/api/v1/devices/{controller}/tags") => Role::Operator,
        _ => Role::Admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_roles() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(*role));
        }
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Admin.may(Role::Operator));
        assert!(Role::Operator.may(Role::Operator));
        assert!(!Role::Viewer.may(Role::Operator));
        assert!(!Role::Operator.may(Role::Admin));
    }

    #[test]
    fn reading_is_for_viewers_and_changing_needs_more() {
        assert_eq!(required(&Method::GET, "/api/v1/devices"), Role::Viewer);
        assert_eq!(required(&Method::GET, "/metrics"), Role::Viewer);
        assert_eq!(required(&Method::POST, "/api/v1/rollouts"), Role::Operator);
        assert_eq!(
            required(&Method::POST, "/api/v1/rollouts/{id}/{command}"),
            Role::Operator
        );
        assert_eq!(
            required(&Method::PUT, "/api/v1/devices/{controller}/tags"),
            Role::Operator
        );
        assert_eq!(
            required(&Method::POST, "/api/v1/artifacts/{id}/deltas"),
            Role::Operator
        );
        assert_eq!(required(&Method::POST, "/api/v1/devices"), Role::Admin);
        assert_eq!(required(&Method::DELETE, "/api/v1/rollouts"), Role::Admin);
        assert_eq!(required(&Method::POST, "/api/v1/new-thing"), Role::Admin);
    }
}
