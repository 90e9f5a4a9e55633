//! What one client can hold of the server: idle and header timeouts, connection and in-flight
//! request caps, and a screen that refuses requests before any authentication work.
//!
//! - [`IdleIo`] wraps each accepted socket: a read or write that makes no progress for
//!   `idle_timeout` fails with `TimedOut`, which closes the connection. That bounds idle
//!   keep-alive connections, stalled uploads (a per-read timeout) and clients that stop reading
//!   a download. The header deadline itself is hyper's `header_read_timeout`.
//! - [`S3Front`] wraps the S3 service: requests refused by [`cairn_s3::screen`] (header section
//!   too large, SigV2, bad presign parameters, unsigned `x-amz-*` headers, declared size too
//!   large) get their S3 error without reaching authentication; past `max_inflight` requests in
//!   flight, a request gets `503 SlowDown` at once (SDKs retry it). A request counts as in
//!   flight until its response body has been sent. An `aws-chunked` body is watched by
//!   [`crate::chunked::ChunkCap`] on its way to s3s. Browser-form uploads (at most
//!   `max_form_uploads` at once) go to [`cairn_s3::PostObject`], which streams them, instead of
//!   s3s, which would buffer the file.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Limits of the HTTP servers. The defaults suit a gateway on a small machine; every one can
/// be set in the configuration.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// A request's header section must arrive within this time, or the connection is closed.
    /// hyper starts this timer whenever a connection waits for a request head, so it is also
    /// how long an idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves for this long is closed (idle keep-alive, stalled
    /// body, client not reading its response).
    pub idle_timeout: Duration,
    /// Most open connections; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Most S3 requests in flight; beyond it requests get `503 SlowDown`.
    pub max_inflight: usize,
    /// Largest request header section (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Most browser-form POST uploads in flight; beyond it, `503 SlowDown`. Each holds its
    /// form fields (at most 64 KiB) and the parser's buffer (at most 128 KiB) besides what the
    /// memory budget accounts for.
    pub max_form_uploads: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            max_connections: 8192,
            max_inflight: 1024,
            max_header_bytes: 16 * 1024,
            max_form_uploads: 64,
        }
    }
}

/// Bytes hyper may buffer while reading a request head; a larger head gets `431`. Heads between
/// [`HttpLimits::max_header_bytes`] and this get S3's `400` from the screen.
pub(crate) const MAX_HEAD_BUFFER: usize = 64 * 1024;

/// A socket whose reads and writes fail with `TimedOut` after `idle` without progress.
pub(crate) struct IdleIo<T> {
    inner: T,
    idle: Duration,
    last_progress: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleIo<T> {
    pub(crate) fn new(inner: T, idle: Duration) -> Self {
        let now = Instant::now();
        Self {
            inner,
            idle,
            last_progress: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }

    /// Called when an operation is pending: fails once the connection has been still too long.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = self.last_progress + self.idle;
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "connection idle too long")),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.last_progress = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }
}

impl<T> IdleIo<T> {
    /// Notes the progress of a write, or checks the idle deadline while it is pending.
    fn after_write(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.last_progress = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        self.after_write(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body that holds an in-flight permit until it has been sent (or dropped).
pub struct GuardedBody {
    inner: s3s::Body,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = <s3s::Body as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether the client waits for `100 Continue` before it sends its body.
fn expects_continue<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// A request body that records whether it was ever asked for: hyper sends `100 Continue` only
/// then, so a client that sent `Expect: 100-continue` has not sent a body that was never asked
/// for — or has, if it stopped waiting. Either way the connection cannot be reused safely.
struct Watched<B> {
    inner: B,
    asked: Arc<std::sync::atomic::AtomicBool>,
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.asked.store(true, std::sync::atomic::Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Marks a response as the connection's last: hyper closes the connection once it is sent.
fn close_after<B>(resp: &mut http::Response<B>) {
    resp.headers_mut()
        .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
}

/// The S3 service behind the screen and the in-flight cap; browser-form uploads go to the
/// streaming form handler instead of s3s.
#[derive(Clone)]
pub(crate) struct S3Front {
    inner: s3s::service::S3Service,
    post_object: cairn_s3::PostObject,
    inflight: Arc<Semaphore>,
    form_uploads: Arc<Semaphore>,
    max_header_bytes: usize,
}

impl S3Front {
    pub(crate) fn new(services: cairn_s3::Services, limits: &HttpLimits) -> Self {
        Self {
            inner: services.s3,
            post_object: services.post_object.fields_timeout(limits.header_read_timeout),
            inflight: Arc::new(Semaphore::new(limits.max_inflight)),
            form_uploads: Arc::new(Semaphore::new(limits.max_form_uploads)),
            max_header_bytes: limits.max_header_bytes,
        }
    }
}

fn refusal(r: cairn_s3::Refusal) -> http::Response<GuardedBody> {
    metrics::counter!("cairn_http_refused_total", "code" => r.code).increment(1);
    let mut resp = http::Response::new(GuardedBody {
        inner: s3s::Body::from(r.xml()),
        _permit: None,
    });
    *resp.status_mut() = r.status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    resp
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for S3Front {
    type Response = http::Response<GuardedBody>;
    type Error = s3s::HttpError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        // A client waiting for `100 Continue` whose body is never asked for (the request is
        // refused first) may send it later, or never: hyper cannot know where the next request
        // starts, so such a connection is closed after the answer instead of being misread.
        let waits = expects_continue(&req);
        // hyper sends `100 Continue` only when a body with bytes is read: a waiting client of
        // an empty body gets its final answer without one. botocore then mis-reads the next
        // answer on the connection (it keeps the early status line) and hangs until the
        // connection closes; a fresh connection is cheap, so close this one.
        let waits_for_nothing = waits && hyper::body::Body::is_end_stream(req.body());
        let refuse = |r: cairn_s3::Refusal| {
            let mut resp = refusal(r);
            if waits {
                close_after(&mut resp);
            }
            Box::pin(std::future::ready(Ok(resp))) as Self::Future
        };
        if let Err(r) = cairn_s3::screen(&req, self.max_header_bytes) {
            return refuse(r);
        }
        let Ok(permit) = self.inflight.clone().try_acquire_owned() else {
            return refuse(cairn_s3::Refusal::slow_down());
        };
        let form_permit = if cairn_s3::is_form_upload(&req) {
            match self.form_uploads.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => return refuse(cairn_s3::Refusal::slow_down()),
            }
        } else {
            None
        };
        // Only a waiting client's body is watched; every other body goes to s3s as hyper's.
        let asked = waits.then(|| Arc::new(std::sync::atomic::AtomicBool::new(false)));
        let req = req.map(|inner| match &asked {
            Some(asked) => s3s::Body::http_body(Watched {
                inner,
                asked: asked.clone(),
            }),
            None => s3s::Body::from(inner),
        });
        let fut: BoxFuture<'static, Result<http::Response<s3s::Body>, s3s::HttpError>> = if form_permit.is_some() {
            let post_object = self.post_object.clone();
            Box::pin(async move { Ok(post_object.handle(req).await) })
        } else {
            // s3s buffers each aws-chunked chunk whole: cap what a chunk may declare.
            let req = if crate::chunked::is_aws_chunked(req.headers()) {
                req.map(|b| s3s::Body::http_body(crate::chunked::ChunkCap::new(b)))
            } else {
                req
            };
            let inner = self.inner.clone();
            Box::pin(async move { inner.call(req).await })
        };
        Box::pin(async move {
            let mut resp = fut.await?;
            crate::xml::escape_carriage_returns(&mut resp);
            if waits_for_nothing || asked.is_some_and(|a| !a.load(std::sync::atomic::Ordering::Relaxed)) {
                close_after(&mut resp);
            }
            // The form's file has been read once the handler has answered.
            drop(form_permit);
            Ok(resp.map(|inner| GuardedBody {
                inner,
                _permit: Some(permit),
            }))
        })
    }
}
