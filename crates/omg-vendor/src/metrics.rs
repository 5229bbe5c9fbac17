//! The service's metrics, served at `/metrics` in the Prometheus text format (OpenMetrics 1.0,
//! which Prometheus scrapes as it is): activations by result and reason, request latency by
//! route, 503 answers, and the SQLite store's group-commit batch sizes. They hold no secret: no
//! device, model, key or token appears in a label, only routes, methods, status codes and the
//! fixed reason codes of the API.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Bucket bounds of the request latency histogram, in seconds: 0.25 ms to about 8 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
    2.048, 4.096, 8.192,
];

/// An activation's outcome: `result` is `granted`, or the API's error category (`refused`,
/// `bad_request`, `unavailable`, `internal`, ...); `reason` its reason code (`none` when
/// granted).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivationLabels {
    result: &'static str,
    reason: &'static str,
}

/// A request: its method, the route that matched (the pattern, never the URI) and the status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// A route (for the 503 answers).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// The service's metrics and their registry; cheap to clone (every metric is shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    activations: Family<ActivationLabels, Counter>,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    unavailable: Family<RouteLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    /// Fresh metrics; `commit_batch_sizes` is the store's group-commit histogram
    /// ([`crate::Store::commit_batch_sizes`]), registered when the store has one.
    pub fn new(commit_batch_sizes: Option<Histogram>) -> Self {
        let mut registry = Registry::default();
        let activations = Family::<ActivationLabels, Counter>::default();
        registry.register(
            "omg_activations",
            "Activation requests by result (granted or the error category) and reason code",
            activations.clone(),
        );
        let requests: Family<RequestLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "omg_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by method, route and status",
            requests.clone(),
        );
        let unavailable = Family::<RouteLabels, Counter>::default();
        registry.register(
            "omg_http_unavailable",
            "503 answers (the database busy or unreachable) by route",
            unavailable.clone(),
        );
        if let Some(sizes) = commit_batch_sizes {
            registry.register(
                "omg_store_commit_batch_size",
                "Writes per group commit of the SQLite store",
                sizes,
            );
        }
        Metrics {
            registry: Arc::new(registry),
            activations,
            requests,
            unavailable,
        }
    }

    /// Counts one activation request with its outcome.
    pub(crate) fn activation(&self, result: &'static str, reason: &'static str) {
        self.activations
            .get_or_create(&ActivationLabels { result, reason })
            .inc();
    }

    /// Records one answered request.
    pub(crate) fn request(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route: route.to_owned(),
                status,
            })
            .observe(seconds);
        if status == 503 {
            self.unavailable
                .get_or_create(&RouteLabels {
                    route: route.to_owned(),
                })
                .inc();
        }
    }

    /// The metrics in the text format of [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
