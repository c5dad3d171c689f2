//! The series `GET /metrics` reports (`metrics_api.rs` serves them), in Prometheus' text format
//! (OpenMetrics).
//!
//! Two kinds of series:
//! - counted by this process since it started, by a layer on every route: requests by route
//!   template (`/{tenant}/controller/v1/{controller}`, never the concrete path, so a device id
//!   cannot grow the series), method and status code, and their latency as a histogram per route;
//!   requests that match no route count as route `unmatched`;
//! - read from the database at each scrape, so every process over one database reports the same
//!   fleet: devices, artifacts, actions by state and rollouts by state.
//!
//! Delta savings: bytes this process served by kind (`download_bytes_total{kind="full"|"delta"}`),
//! and from the database the fleet's bytes served for actions (`served_bytes{kind}`), the
//! actions whose device fell back from a patch (`delta_fallbacks`) and patches by state.
//!
//! No HTTP here: the handler and the layer that feed these series are in `metrics_api.rs`.

use crate::store::{DownloadKind, FleetCounts};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets in seconds: the fleet target is a p99 under 50 ms, the request timeout 30 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The media type of [`Metrics::report`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The registry and the series this process updates.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    devices: Gauge,
    artifacts: Gauge,
    actions: Family<StateLabels, Gauge>,
    rollouts: Family<StateLabels, Gauge>,
    downloads: Family<KindLabels, Counter>,
    served: Family<KindLabels, Gauge>,
    delta_fallbacks: Gauge,
    patches: Family<StateLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rustupdate");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let (devices, artifacts) = (Gauge::default(), Gauge::default());
        let actions = Family::<StateLabels, Gauge>::default();
        let rollouts = Family::<StateLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered by this process, by route template, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request in this process, by route template",
            latency.clone(),
        );
        registry.register("devices", "Devices known to the fleet", devices.clone());
        registry.register("artifacts", "Artifacts stored", artifacts.clone());
        registry.register("actions", "Actions by state", actions.clone());
        registry.register("rollouts", "Rollouts by state", rollouts.clone());
        let downloads = Family::<KindLabels, Counter>::default();
        let served = Family::<KindLabels, Gauge>::default();
        let delta_fallbacks = Gauge::default();
        let patches = Family::<StateLabels, Gauge>::default();
        registry.register(
            "download_bytes",
            "Bytes of artifacts (full) and delta patches (delta) this process served to devices",
            downloads.clone(),
        );
        registry.register(
            "served_bytes",
            "Bytes served to devices for their actions, fleet-wide, by kind (full, delta)",
            served.clone(),
        );
        registry.register(
            "delta_fallbacks",
            "Actions whose device left its delta patch for the full artifact",
            delta_fallbacks.clone(),
        );
        registry.register("delta_patches", "Delta patches by state", patches.clone());
        Metrics {
            registry,
            requests,
            latency,
            devices,
            artifacts,
            actions,
            rollouts,
            downloads,
            served,
            delta_fallbacks,
            patches,
        }
    }
}

impl Metrics {
    /// Counts bytes served of an artifact or a patch.
    pub fn count_download(&self, kind: DownloadKind, bytes: u64) {
        self.downloads
            .get_or_create(&KindLabels {
                kind: kind_name(kind).to_owned(),
            })
            .inc_by(bytes);
    }

    /// Counts one answered request under its route template, with its latency.
    pub fn record(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// The fleet's counts (read from the database at each scrape) set into their series, and
    /// every series as OpenMetrics text.
    pub fn report(&self, fleet: &FleetCounts) -> anyhow::Result<String> {
        self.devices.set(fleet.devices);
        self.artifacts.set(fleet.artifacts);
        for (kind, bytes) in [
            (DownloadKind::Full, fleet.served_full_bytes),
            (DownloadKind::Delta, fleet.served_delta_bytes),
        ] {
            self.served
                .get_or_create(&KindLabels {
                    kind: kind_name(kind).to_owned(),
                })
                .set(bytes);
        }
        self.delta_fallbacks.set(fleet.delta_fallbacks);
        for (family, counts) in [
            (&self.actions, &fleet.actions_by_state),
            (&self.rollouts, &fleet.rollouts_by_state),
            (&self.patches, &fleet.patches_by_state),
        ] {
            // A state no row holds any more disappears rather than staying at its last count.
            family.clear();
            for (state, n) in counts {
                family
                    .get_or_create(&StateLabels {
                        state: state.clone(),
                    })
                    .set(*n);
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| anyhow::anyhow!("encoding the metrics: {e}"))?;
        Ok(text)
    }
}

fn kind_name(kind: DownloadKind) -> &'static str {
    match kind {
        DownloadKind::Full => "full",
        DownloadKind::Delta => "delta",
    }
}
