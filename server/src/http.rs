//! etcd's HTTP endpoints: `/health`, `/version` and `/metrics` (Prometheus text), served on the
//! client port beside gRPC and on `--listen-metrics-urls`.

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::node::{Node, ETCD_COMPAT_VERSION};

/// The router of the HTTP endpoints.
pub fn router(node: Node) -> Router {
    let (health_node, metrics_node) = (node.clone(), node);
    Router::new()
        .route("/health", get(move || health(health_node.clone())))
        .route("/version", get(version))
        .route("/metrics", get(move || metrics(metrics_node.clone())))
}

/// etcd 3.5's answer: `{"health":"true","reason":""}`, or 503 with the reason when an alarm is
/// active or the store cannot be read.
async fn health(node: Node) -> impl IntoResponse {
    let alarms = node.alarms();
    let readable = node.blocking(|store| store.status()).await;
    let reason = if let Some(alarm) = alarms.first() {
        Some(format!("ALARM {}", alarm.as_str_name()))
    } else {
        readable
            .err()
            .map(|status| format!("RANGE ERROR: {}", status.message()))
    };
    let (code, body) = match reason {
        None => (
            StatusCode::OK,
            serde_json::json!({"health": "true", "reason": ""}),
        ),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"health": "false", "reason": reason}),
        ),
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn version() -> impl IntoResponse {
    let body =
        serde_json::json!({"etcdserver": ETCD_COMPAT_VERSION, "etcdcluster": ETCD_COMPAT_VERSION});
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn metrics(node: Node) -> impl IntoResponse {
    match node.blocking(|store| store.status()).await {
        Ok(status) => {
            let text = node.metrics().render(
                &status,
                node.config().quota_backend_bytes,
                ETCD_COMPAT_VERSION,
            );
            (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
        }
        Err(status) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("store unavailable: {}\n", status.message()),
        ),
    }
}
