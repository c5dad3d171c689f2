//! What every request handler shares.

use crate::config::Settings;
use crate::login_limit::LoginLimit;
use crate::metrics::Metrics;
use crate::store::Store;
use rustupdate_ddi::Tenant;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub inner: Arc<Shared>,
}

#[derive(Debug)]
pub struct Shared {
    pub settings: Settings,
    pub tenant: Tenant,
    pub admin_token: String,
    pub gateway_token: String,
    /// `DATA_DIR/artifacts`: one file per artifact, named by its sha256.
    pub artifacts_dir: PathBuf,
    /// What `/metrics` reports of this process (requests and their latency).
    pub metrics: Metrics,
    /// Failed dashboard logins per client address.
    pub login_limit: LoginLimit,
    /// Dashboard password checks that may run at once (each Argon2id check takes 19 MiB).
    pub password_checks: tokio::sync::Semaphore,
}
