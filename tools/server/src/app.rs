//! Wiring: settings -> store, tokens, keys -> router -> listener (HTTP, or HTTPS with rustls),
//! with graceful shutdown on SIGINT/SIGTERM and a periodic sweep that moves rollouts whose
//! last feedback arrived at another server process.

use crate::app_state::{AppState, Shared};
use crate::config::Settings;
use crate::contacts::{self, Contacts};
use crate::error::ApiResult;
use crate::login_limit::LoginLimit;
use crate::store::{self, Store};
use crate::{
    admin_api, api, dashboard, ddi_api, guard, metrics, metrics_api, operations, request_span,
    tokens,
};
use anyhow::{Context, Result};
use axum::extract::{DefaultBodyLimit, State};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use axum::{Json, Router};
use rustupdate_rollout::RolloutState;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often each server process re-checks running rollouts (a safety net: feedback moves them
/// at once in the process that received it) and whether this hour's sample of devices per
/// version is taken.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn ensure_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))
}

/// Prepares the data directory, the database and the shared state.
pub async fn build_state(settings: Settings) -> Result<AppState> {
    ensure_dir(&settings.data_dir)?;
    ensure_dir(&settings.artifacts_dir())?;
    ensure_dir(&settings.upload_dir())?;
    ensure_dir(&settings.keys_dir())?;
    let admin_token = tokens::load_or_create(&settings.admin_token_path())?;
    let gateway_token = tokens::load_or_create(&settings.gateway_token_path())?;
    if settings.keyring()?.is_empty() {
        tracing::warn!(
            event = %"no-trusted-keys",
            hint = format!(
                "put release public keys in {} or pass --trusted-key; .rua uploads are refused until then",
                settings.keys_dir().display()
            ),
        );
    }
    let store = Store::open(&settings.database_url).await?;
    let tenant = rustupdate_ddi::Tenant::new(&settings.tenant)?;
    Ok(AppState {
        store,
        inner: Arc::new(Shared {
            artifacts_dir: settings.artifacts_dir(),
            tenant,
            admin_token,
            gateway_token,
            settings,
            metrics: metrics::Metrics::default(),
            login_limit: LoginLimit::default(),
            password_checks: tokio::sync::Semaphore::new(dashboard::PASSWORD_CHECKS),
            contacts: Contacts::default(),
            in_flight: tokio::sync::Semaphore::new(guard::MAX_IN_FLIGHT),
            delta_wake: tokio::sync::Notify::new(),
        }),
    })
}

/// Every route, bounded as `guard` describes: the device API and the dashboard within the request
/// timeout, the management API behind the admin token; bodies buffered by an extractor are at
/// most `guard::MAX_JSON_BODY` bytes on every route (the upload streams to disk with its own
/// limit); unknown routes and methods are JSON 404 and 405. Every request is counted for
/// `/metrics` (`metrics_api::count`) and runs in a span (`request_span::trace`).
pub fn router(state: AppState) -> Router {
    let bounded = Router::new()
        .route("/healthz", get(healthz))
        .merge(ddi_api::routes())
        .merge(dashboard::routes())
        .route_layer(from_fn_with_state(state.clone(), guard::deadline));
    Router::new()
        .merge(bounded)
        .merge(admin_api::routes(&state))
        .merge(dashboard::upload_routes())
        .fallback(guard::not_found)
        .method_not_allowed_fallback(guard::method_not_allowed)
        .layer(DefaultBodyLimit::max(guard::MAX_JSON_BODY))
        .layer(from_fn_with_state(state.clone(), guard::shed_load))
        .layer(from_fn_with_state(state.clone(), metrics_api::count))
        .layer(from_fn(request_span::trace))
        .with_state(state)
}

async fn healthz(State(app): State<AppState>) -> ApiResult<Json<api::Health>> {
    app.store.ping().await?;
    Ok(Json(api::Health {
        status: "ok".into(),
        database: if app.store.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
        .into(),
    }))
}

async fn sweep(store: Store) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(e) = store.sample_versions().await {
            tracing::warn!(event = %"version-sample-failed", error = %format_args!("{e:#}"));
        }
        match store
            .rollouts_in_state(RolloutState::Running.as_str())
            .await
        {
            Ok(rollouts) => {
                for rollout in rollouts {
                    if let Err(e) = operations::advance(&store, rollout.id).await {
                        tracing::warn!(
                            event = %"sweep-failed",
                            rollout = rollout.id,
                            error = %format_args!("{e:#}"),
                        );
                    }
                }
            }
            Err(e) => tracing::warn!(event = %"sweep-failed", error = %format_args!("{e:#}")),
        }
    }
}

/// Writes devices' contact times every `contacts::FLUSH_INTERVAL`.
async fn flush_contacts(app: AppState) {
    let mut tick = tokio::time::interval(contacts::FLUSH_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(e) = app.flush_contacts().await {
            tracing::warn!(event = %"contacts-not-written", error = %format_args!("{e:#}"));
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!(event = %"shutdown");
}

/// Small answers go out at once: without TCP_NODELAY, Nagle's algorithm and the client's delayed
/// ACK held a 1 KiB range answer back for about 40 ms (measured by bench/fleet-load).
fn nodelay() -> axum_server::accept::TcpConfigAcceptor {
    axum_server::accept::TcpConfigAcceptor::new(
        axum_server::accept::TcpSocketConfig::new().nodelay(true),
    )
}

pub async fn serve(settings: Settings) -> Result<()> {
    let listen = settings.listen;
    let tls = settings.tls.clone();
    // hyper's side of the bounds (guard.rs has the rest): a connection's first request line and
    // headers must arrive within `header-read-timeout` (axum-server's first-request timeout, which
    // also covers hyper's protocol detection), and so must every later request's, counted from
    // when the connection became idle (hyper's header read timeout): an idle keep-alive
    // connection is closed after the same time.
    let header_read_timeout = settings.header_read_timeout;
    if settings.public_url.is_none()
        && settings.allowed_hosts.is_empty()
        && listen.ip().is_unspecified()
    {
        tracing::warn!(
            event = %"links-to-listen-address",
            %listen,
            hint = format!(
                "without public-url or allowed-hosts, links given to devices point to {listen}; set public-url"
            ),
        );
    }
    let state = build_state(settings).await?;
    tracing::info!(
        event = %"started",
        %listen,
        database = %store::redact(&state.inner.settings.database_url),
        tenant = %state.inner.tenant,
        admin_token_file = %state.inner.settings.admin_token_path().display(),
    );
    tokio::spawn(sweep(state.store.clone()));
    crate::deltas::spawn_workers(&state);
    tokio::spawn(flush_contacts(state.clone()));
    let flush_at_exit = state.clone();
    let app = router(state);
    let handle = axum_server::Handle::new();
    let watcher = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        watcher.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    // The client's address reaches handlers (ConnectInfo) for the dashboard's login limit.
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    match tls {
        Some(tls) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .with_context(|| {
                    format!(
                        "loading TLS {} and {}",
                        tls.cert.display(),
                        tls.key.display()
                    )
                })?;
            // The TLS handshake has axum-server's own timeout (10 s).
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(nodelay());
            let mut server = axum_server::bind(listen)
                .acceptor(acceptor)
                .handle(handle)
                .first_request_timeout(header_read_timeout);
            server
                .http_builder()
                .http1()
                .header_read_timeout(header_read_timeout);
            server.serve(service).await
        }
        None => {
            let mut server = axum_server::bind(listen)
                .handle(handle)
                .first_request_timeout(header_read_timeout);
            server
                .http_builder()
                .http1()
                .header_read_timeout(header_read_timeout);
            server.serve(service).await
        }
    }
    .with_context(|| format!("serving on {listen}"))?;
    if let Err(e) = flush_at_exit.flush_contacts().await {
        tracing::warn!(event = %"contacts-not-written", error = %format_args!("{e:#}"));
    }
    Ok(())
}
