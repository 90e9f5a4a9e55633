//! Reading: manifest ranges to verified bytes.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use cairn_chunk::{chunk_id, Codec};
use cairn_meta::{query, Body, ChunkRef, ObjectRecord};
use cairn_shard_store::ShardKey;
use futures::stream::{self, BoxStream, StreamExt};

use crate::placement::disk_for;
use crate::store::Inner;
use crate::{Error, Result, Store};

impl Store {
    /// Streams bytes `range` of `object` (which the caller has read from the metadata). Chunks
    /// are fetched `read_ahead` at a time; each is verified against its BLAKE3 id before any of
    /// its bytes are yielded.
    pub fn read(&self, object: &ObjectRecord, range: Range<u64>) -> BoxStream<'static, Result<Bytes>> {
        let end = range.end.min(object.size);
        let start = range.start.min(end);
        match &object.body {
            Body::Inline(data) => {
                let b = Bytes::copy_from_slice(&data[start as usize..end as usize]);
                stream::once(async move { Ok(b) }).boxed()
            }
            Body::Chunks(chunks) => {
                let mut pieces = Vec::new();
                let mut offset = 0u64;
                for c in chunks {
                    let (cs, ce) = (offset, offset + u64::from(c.len));
                    offset = ce;
                    if ce <= start || cs >= end {
                        continue;
                    }
                    let from = start.max(cs) - cs;
                    let to = end.min(ce) - cs;
                    pieces.push((*c, from as usize..to as usize));
                }
                let inner = self.inner.clone();
                let ahead = inner.config.read_ahead;
                stream::iter(pieces)
                    .map(move |(c, r)| {
                        let inner = inner.clone();
                        async move { fetch_chunk(&inner, c).await.map(|b| b.slice(r)) }
                    })
                    .buffered(ahead)
                    .boxed()
            }
        }
    }
}

/// Fetches a chunk: its data shards first, the parity shards only if a data shard is missing
/// or corrupt; then decodes and verifies BLAKE3.
pub(crate) async fn fetch_chunk(inner: &Arc<Inner>, c: ChunkRef) -> Result<Bytes> {
    let reader = inner.meta.reader();
    let record = tokio::task::spawn_blocking(move || query::chunk(&*reader, &c.id))
        .await
        .map_err(|e| Error::Storage(e.to_string()))??
        .ok_or_else(|| Error::Storage(format!("chunk {} has no record", c.id)))?;
    let codec = if record.scheme == inner.codec.scheme() {
        inner.codec.clone()
    } else {
        Arc::new(Codec::new(record.scheme))
    };
    let k = usize::from(record.scheme.data);
    let total = record.scheme.total();
    let n = inner.disks.len();
    let read = |i: usize| {
        let disk = inner.disks[disk_for(&c.id, i, n)].clone();
        async move {
            match disk
                .get(ShardKey {
                    chunk: c.id,
                    index: i as u8,
                })
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(chunk = %c.id, shard = i, error = %e, "shard unreadable; rebuilding from the others");
                    metrics::counter!("cairn_shard_read_errors_total").increment(1);
                    None
                }
            }
        }
    };
    let mut slots: Vec<Option<Bytes>> = futures::future::join_all((0..k).map(read)).await;
    if slots.iter().any(Option::is_none) {
        metrics::counter!("cairn_chunk_reconstructions_total").increment(1);
        slots.extend(futures::future::join_all((k..total).map(read)).await);
    } else {
        slots.resize(total, None);
    }
    let len = c.len as usize;
    let id = c.id;
    tokio::task::spawn_blocking(move || {
        let data = codec
            .decode(slots, len)
            .map_err(|e| Error::Storage(format!("chunk {id}: {e}")))?;
        if chunk_id(&data) != id {
            metrics::counter!("cairn_chunk_verify_failures_total").increment(1);
            return Err(Error::Storage(format!("chunk {id} failed BLAKE3 verification")));
        }
        Ok(data)
    })
    .await
    .map_err(|e| Error::Storage(e.to_string()))?
}
