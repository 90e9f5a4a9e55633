//! A small HTTP listener for the roles that serve no admin API of their own (`cairn
//! meta-node`): `GET /metrics` (Prometheus text) and `GET /health/live`. Bounded like every
//! Cairn server: few connections, a header read timeout, an idle timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Most open connections of the metrics listener.
const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request head, and may stay idle.
const TIMEOUT: Duration = Duration::from_secs(10);

fn answer(req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let page = crate::METRICS
                .get()
                .map(metrics_exporter_prometheus::PrometheusHandle::render)
                .unwrap_or_default();
            (StatusCode::OK, page)
        }
        (&Method::GET, "/health/live") => (StatusCode::OK, "ok\n".to_string()),
        (&Method::GET, _) => (StatusCode::NOT_FOUND, "not found\n".to_string()),
        _ => (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".to_string()),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// Serves `/metrics` of the process-wide recorder ([`crate::install_metrics`]) on `listener`
/// until `shutdown` completes.
pub async fn serve_metrics(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    crate::install_metrics();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(TIMEOUT)
        .max_buf_size(crate::limits::MAX_HEAD_BUFFER);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(4);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            (stream, permit) = crate::accept(&listener, &slots) => {
                let io = TokioIo::new(crate::limits::IdleIo::new(stream, TIMEOUT));
                let svc = hyper::service::service_fn(|req| async move {
                    Ok::<_, std::convert::Infallible>(answer(&req))
                });
                let conn = builder.serve_connection(io, svc).into_owned();
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "metrics connection ended");
                    }
                    drop(permit);
                });
            }
            () = &mut shutdown => return,
        }
    }
}
