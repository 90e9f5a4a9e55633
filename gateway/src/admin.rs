//! The admin HTTP API (JSON), `/metrics` and health endpoints.
//!
//! ```text
//! GET    /health/live          200 while the process runs
//! GET    /health/ready         200 once the metadata accepts writes, else 503
//! GET    /metrics              Prometheus text format
//! GET    /admin/v1/status      disks, scheme, space (root only)
//! GET    /admin/v1/workers     background workers: state, passes, last pass, errors (root only)
//! GET    /admin/v1/gc          space reclamation: runs, pending chunks, its workers (root only)
//! GET    /admin/v1/cluster-map the cluster map: epoch, nodes, zones, weights, draining (root only)
//! POST   /admin/v1/storage/{id}/drain, .../undrain   drain a storage node or end it (204, or 404)
//! GET    /admin/v1/repair      repair: chunks queued, its worker's progress (root only)
//! GET    /admin/v1/scrub       scrub: runs, what the last one found, its worker (root only)
//! POST   /admin/v1/scrub       start a scrub run -> {"run": n}
//! POST   /admin/v1/gc/run      start a run of every reclamation worker now -> {"run": n}
//! GET    /admin/v1/keys        list keys without secrets (root only)
//! POST   /admin/v1/keys        {"name", "access_key"?, "secret_key"?} -> the key with its secret
//! DELETE /admin/v1/keys/{id}   204, or 404
//! ```
//! Admin calls authenticate with HTTP Basic using the root access key and secret.

use base64::Engine;
use bytes::Bytes;
use cairn::{AccessKey, Store};
use cairn_s3::RootCredentials;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::keys::{generate_access_key, generate_secret_key};

const MAX_BODY: usize = 64 * 1024;

pub(crate) struct Admin {
    store: Store,
    root: RootCredentials,
    metrics: Option<PrometheusHandle>,
}

#[derive(Deserialize)]
struct CreateKey {
    #[serde(default)]
    name: String,
    access_key: Option<String>,
    secret_key: Option<String>,
}

#[derive(Serialize)]
struct KeyView {
    access_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_key: Option<String>,
    name: String,
    created: i64,
}

fn json(status: StatusCode, v: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

fn error(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": msg }))
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

fn valid_key_part(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

impl Admin {
    pub(crate) fn new(store: Store, root: RootCredentials, metrics: Option<PrometheusHandle>) -> Self {
        Self { store, root, metrics }
    }

    fn authorized<B>(&self, req: &Request<B>) -> bool {
        let Some(v) = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(b64) = v.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return false;
        };
        let expected = format!("{}:{}", self.root.access_key, self.root.secret_key);
        raw.ct_eq(expected.as_bytes()).into()
    }

    pub(crate) async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        match (req.method(), path.as_str()) {
            (&Method::GET, "/health/live") => return text(StatusCode::OK, "ok\n".into()),
            (&Method::GET, "/health/ready") => {
                return if self.store.is_ready() {
                    text(StatusCode::OK, "ready\n".into())
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into())
                };
            }
            (&Method::GET, "/metrics") => {
                let mut out = self.metrics.as_ref().map(PrometheusHandle::render).unwrap_or_default();
                let (mut s, mut unreachable) = (cairn::StoreStats::default(), 0);
                for h in self.store.disk_health().await {
                    match h {
                        Ok(h) => {
                            s.live_bytes += h.stats.live_bytes;
                            s.disk_bytes += h.stats.disk_bytes;
                            s.shards += h.stats.shards;
                        }
                        Err(_) => unreachable += 1,
                    }
                }
                out.push_str(&format!(
                    "# TYPE cairn_store_live_bytes gauge\ncairn_store_live_bytes {}\n# TYPE cairn_store_disk_bytes gauge\ncairn_store_disk_bytes {}\n# TYPE cairn_store_shards gauge\ncairn_store_shards {}\n# TYPE cairn_store_disks_unreachable gauge\ncairn_store_disks_unreachable {unreachable}\n",
                    s.live_bytes, s.disk_bytes, s.shards
                ));
                return text(StatusCode::OK, out);
            }
            _ => {}
        }
        if !path.starts_with("/admin/") {
            return error(StatusCode::NOT_FOUND, "no such endpoint");
        }
        if !self.authorized(&req) {
            return error(StatusCode::UNAUTHORIZED, "root credentials required (HTTP Basic)");
        }
        let method = req.method().clone();
        match (method, path.as_str()) {
            (Method::GET, "/admin/v1/status") => {
                let scheme = self.store.scheme();
                let disks: Vec<serde_json::Value> = self
                    .store
                    .disk_health()
                    .await
                    .into_iter()
                    .map(|h| match h {
                        Ok(h) => serde_json::json!(h),
                        Err(e) => serde_json::json!({ "error": e.to_string() }),
                    })
                    .collect();
                let stats = self.store.stats().await.ok();
                let classes = self.store.storage_classes();
                json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "ready": self.store.is_ready(),
                        "erasure": format!("{}+{}", scheme.data, scheme.parity),
                        "storage_classes": classes
                            .iter()
                            .map(|(name, c)| (name, format!("{}+{}", c.scheme.data, c.scheme.parity)))
                            .collect::<std::collections::BTreeMap<_, _>>(),
                        "storage_class_pools": classes
                            .iter()
                            .map(|(name, c)| (name, c.pool_name()))
                            .collect::<std::collections::BTreeMap<_, _>>(),
                        "warnings": self.store.placement_warnings().await,
                        "stats": stats,
                        "disks": disks,
                    }),
                )
            }
            (Method::GET, "/admin/v1/workers") => json(StatusCode::OK, &self.store.workers()),
            (Method::GET, "/admin/v1/repair") => json(StatusCode::OK, &self.store.repair_status()),
            (Method::GET, "/admin/v1/scrub") => json(StatusCode::OK, &self.store.scrub_status()),
            (Method::POST, "/admin/v1/scrub") => json(
                StatusCode::OK,
                &serde_json::json!({ "run": self.store.request_scrub() }),
            ),
            (Method::GET, "/admin/v1/meta") => match self.store.meta_status().await {
                Ok(s) => json(StatusCode::OK, &s),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            },
            (Method::GET, "/admin/v1/storage") => match self.store.storage_nodes().await {
                Ok(s) => json(StatusCode::OK, &s),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            },
            (Method::GET, "/admin/v1/cluster-map") => match self.store.cluster_map().await {
                Ok(m) => json(StatusCode::OK, &m),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            },
            (Method::POST, p) if p.starts_with("/admin/v1/storage/") => {
                let rest = &p["/admin/v1/storage/".len()..];
                let (id, drain) = match rest.rsplit_once('/') {
                    Some((id, "drain")) => (id, true),
                    Some((id, "undrain")) => (id, false),
                    _ => return error(StatusCode::NOT_FOUND, "no such endpoint"),
                };
                match self.store.drain_storage_node(id, drain).await {
                    Ok(()) => Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Full::new(Bytes::new()))
                        .expect("valid response"),
                    Err(cairn::Error::NoSuchStorageNode) => error(StatusCode::NOT_FOUND, "no such storage node"),
                    Err(e @ cairn::Error::Invalid(_)) => error(StatusCode::BAD_REQUEST, &e.to_string()),
                    Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
                }
            }
            (Method::GET, "/admin/v1/gc") => match self.store.reclaim_status().await {
                Ok(s) => json(StatusCode::OK, &s),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            },
            (Method::POST, "/admin/v1/gc/run") => match self.store.request_reclaim() {
                Ok(run) => json(StatusCode::ACCEPTED, &serde_json::json!({ "run": run })),
                Err(e) => error(StatusCode::CONFLICT, &e.to_string()),
            },
            (Method::GET, "/admin/v1/keys") => match self.store.keys().await {
                Ok(keys) => json(
                    StatusCode::OK,
                    &keys
                        .into_iter()
                        .map(|k| KeyView {
                            access_key: k.access_key,
                            secret_key: None,
                            name: k.name,
                            created: k.created,
                        })
                        .collect::<Vec<_>>(),
                ),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            },
            (Method::POST, "/admin/v1/keys") => self.create_key(req).await,
            (Method::DELETE, p) if p.starts_with("/admin/v1/keys/") => {
                let id = &p["/admin/v1/keys/".len()..];
                match self.store.delete_key(id).await {
                    Ok(()) => Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Full::new(Bytes::new()))
                        .expect("valid response"),
                    Err(cairn::Error::NoSuchAccessKey) => error(StatusCode::NOT_FOUND, "no such access key"),
                    Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
                }
            }
            _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
        }
    }

    async fn create_key(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
        };
        let Ok(c) = serde_json::from_slice::<CreateKey>(&body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "expected {\"name\", \"access_key\"?, \"secret_key\"?}",
            );
        };
        let access_key = c.access_key.unwrap_or_else(generate_access_key);
        let secret_key = c.secret_key.unwrap_or_else(generate_secret_key);
        if !valid_key_part(&access_key, 3, 128) || !valid_key_part(&secret_key, 8, 128) {
            return error(
                StatusCode::BAD_REQUEST,
                "access key must be 3-128 and secret 8-128 printable ASCII characters",
            );
        }
        if access_key == self.root.access_key {
            return error(StatusCode::CONFLICT, "that is the root access key");
        }
        let record = AccessKey {
            access_key: access_key.clone(),
            secret_key: secret_key.clone(),
            name: c.name.clone(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        };
        let created = record.created;
        match self.store.create_key(record).await {
            Ok(()) => json(
                StatusCode::CREATED,
                &KeyView {
                    access_key,
                    secret_key: Some(secret_key),
                    name: c.name,
                    created,
                },
            ),
            Err(cairn::Error::KeyExists) => error(StatusCode::CONFLICT, "access key exists"),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        }
    }
}
