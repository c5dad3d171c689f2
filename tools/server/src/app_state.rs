//! What every request handler shares.

use crate::config::Settings;
use crate::contacts::Contacts;
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
    /// Permits for the requests answered at once (`guard::shed_load`).
    pub in_flight: tokio::sync::Semaphore,
    /// Devices' last contact, written behind (`contacts.rs`).
    pub contacts: Contacts,
    /// Dashboard password checks that may run at once (each Argon2id check takes 19 MiB).
    pub password_checks: tokio::sync::Semaphore,
    /// Wakes this process's delta patch workers when a job is queued (`deltas.rs`).
    pub delta_wake: tokio::sync::Notify,
}

impl AppState {
    /// Writes the pending contact times (before showing them, and periodically); on failure
    /// they stay pending.
    pub async fn flush_contacts(&self) -> anyhow::Result<()> {
        let pending = self.inner.contacts.take();
        if pending.is_empty() {
            return Ok(());
        }
        let written = self.store.write_contacts(&pending).await;
        if written.is_err() {
            self.inner.contacts.restore(&pending);
        }
        written
    }
}
