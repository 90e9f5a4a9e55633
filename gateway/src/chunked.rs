//! A watch on the framing of `aws-chunked` request bodies.
//!
//! s3s decodes `aws-chunked` bodies and buffers each chunk whole (to check its signature)
//! before passing it on, and accepts any chunk size a client declares (up to 4 GiB). This body
//! wrapper reads the framing as the bytes pass through, unchanged and uncopied, and fails the
//! body as soon as a chunk declares more than [`MAX_CHUNK`] bytes or a chunk line is
//! malformed, so one request cannot make the server buffer gigabytes.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// Largest chunk a client may declare. SDKs send 8 KiB to 1 MiB chunks.
pub const MAX_CHUNK: u64 = 16 << 20;

/// Longest chunk line (`hex-size;chunk-signature=<64 hex>\r\n` is about 90 bytes).
const MAX_LINE: usize = 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an aws-chunked body was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// A chunk declared more than [`MAX_CHUNK`] bytes.
    #[error("aws-chunked chunk of {0} bytes exceeds the limit of {MAX_CHUNK} bytes")]
    TooLarge(u64),
    /// A chunk line could not be parsed.
    #[error("malformed aws-chunked chunk line")]
    Malformed,
}

#[derive(Debug)]
enum State {
    /// Reading a chunk line up to its CRLF.
    Line(Vec<u8>),
    /// Inside a chunk's data, with this many bytes left, then its CRLF.
    Data(u64),
    /// After the final zero-length chunk: trailers, passed through as they are.
    Trailers,
}

/// Whether a request's body is `aws-chunked` framed.
pub(crate) fn is_aws_chunked(headers: &http::HeaderMap) -> bool {
    let streaming = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"));
    let encoded = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().eq_ignore_ascii_case("aws-chunked")));
    streaming || encoded
}

/// An `aws-chunked` body whose framing is checked as it streams by.
pub(crate) struct ChunkCap<B> {
    inner: B,
    state: State,
    failed: bool,
}

impl<B> ChunkCap<B> {
    pub(crate) fn new(inner: B) -> Self {
        Self {
            inner,
            state: State::Line(Vec::new()),
            failed: false,
        }
    }

    /// Advances the framing over `data`.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), ChunkError> {
        while !data.is_empty() {
            match &mut self.state {
                State::Trailers => return Ok(()),
                State::Data(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.state = State::Line(Vec::new());
                    }
                }
                State::Line(line) => {
                    let end = data.iter().position(|b| *b == b'\n');
                    let take = end.map_or(data.len(), |i| i + 1);
                    if line.len() + take > MAX_LINE {
                        return Err(ChunkError::Malformed);
                    }
                    line.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if end.is_none() {
                        continue;
                    }
                    let text = std::str::from_utf8(line).map_err(|_| ChunkError::Malformed)?;
                    let text = text.trim_end_matches(['\r', '\n']);
                    if text.is_empty() {
                        // The CRLF that ends a chunk's data.
                        line.clear();
                        continue;
                    }
                    let hex = text.split(';').next().unwrap_or("");
                    let size = u64::from_str_radix(hex.trim(), 16).map_err(|_| ChunkError::Malformed)?;
                    if size > MAX_CHUNK {
                        return Err(ChunkError::TooLarge(size));
                    }
                    self.state = if size == 0 { State::Trailers } else { State::Data(size) };
                }
            }
        }
        Ok(())
    }
}

impl<B> Body for ChunkCap<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(e) = self.scan(data) {
                        self.failed = true;
                        metrics::counter!("cairn_http_refused_total", "code" => "ChunkTooLarge").increment(1);
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(pieces: &[&[u8]]) -> Result<(), ChunkError> {
        let mut c = ChunkCap::new(());
        for p in pieces {
            c.scan(p)?;
        }
        Ok(())
    }

    #[test]
    fn passes_well_formed_bodies_split_anywhere() {
        let sig = "a".repeat(64);
        let body = format!("5;chunk-signature={sig}\r\nhello\r\n0;chunk-signature={sig}\r\n\r\n");
        let b = body.as_bytes();
        for cut in 0..b.len() {
            scan_all(&[&b[..cut], &b[cut..]]).unwrap();
        }
        scan_all(&[
            b"400\r\n",
            &[7u8; 0x400],
            b"\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n",
        ])
        .unwrap();
    }

    #[test]
    fn refuses_huge_or_malformed_chunks() {
        assert!(matches!(
            scan_all(&[b"1000001\r\n"]),
            Err(ChunkError::TooLarge(0x100_0001))
        ));
        assert!(matches!(
            scan_all(&[b"FFFFFFFF;chunk-signature=x\r\n"]),
            Err(ChunkError::TooLarge(_))
        ));
        assert!(matches!(scan_all(&[b"zz\r\n"]), Err(ChunkError::Malformed)));
        assert!(matches!(scan_all(&[&[b'1'; 2000]]), Err(ChunkError::Malformed)));
    }
}
