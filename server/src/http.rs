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
/// active, no leader is known (`RAFT NO LEADER`) or the store cannot be read (etcd reads
/// linearizably there, so a member cut off from its leader is unhealthy).
async fn health(node: Node) -> impl IntoResponse {
    let alarms = node.alarms();
    let reason = if let Some(alarm) = alarms.first() {
        Some(format!("ALARM {}", alarm.as_str_name()))
    } else if node.raft_state().leader == 0 {
        Some("RAFT NO LEADER".to_string())
    } else {
        let probe = etch_engine::RangeOptions {
            limit: 1,
            keys_only: true,
            ..Default::default()
        };
        node.backend()
            .range(etch_engine::Range::key("health"), probe, false)
            .await
            .err()
            .map(|e| format!("RANGE ERROR: {}", node.fail(e).message()))
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
    match node.backend().status().await.map_err(|e| node.fail(e)) {
        Ok(status) => {
            let text = node.metrics().render(
                &status,
                &node.raft_state(),
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
