//! Reading: manifest ranges to verified bytes.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use cairn_meta::{Body, ChunkRef, ManifestPage};
use cairn_types::ErasureScheme;

use crate::api::Object;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use crate::budget::Reservation;
use crate::store::Inner;
use crate::{Error, Result, Store};

impl Store {
    /// Streams bytes `range` of `object` (which the caller has read from the metadata). Chunks
    /// are fetched `read_ahead` at a time; each is verified against its BLAKE3 id before any of
    /// its bytes are yielded.
    pub fn read(&self, object: &Object, range: Range<u64>) -> BoxStream<'static, Result<Bytes>> {
        self.read_with(object, range, true)
    }

    /// [`Store::read`], reserving each chunk's share of the memory budget when `budgeted`;
    /// without, the caller's own reservation must cover `read_ahead + 1` chunks.
    pub(crate) fn read_with(
        &self,
        object: &Object,
        range: Range<u64>,
        budgeted: bool,
    ) -> BoxStream<'static, Result<Bytes>> {
        let end = range.end.min(object.size);
        let start = range.start.min(end);
        match &object.body {
            Body::Inline(data) => {
                let b = Bytes::copy_from_slice(&data[start as usize..end as usize]);
                stream::once(async move { Ok(b) }).boxed()
            }
            Body::Chunks(chunks) => {
                let wanted: Vec<Piece> = pieces(chunks, 0, start..end).collect();
                self.fetch_pieces(stream::iter(wanted.into_iter().map(Ok)), budgeted)
            }
            Body::Paged(_) => {
                let pieces = paged_pieces(self.inner.clone(), object.version_id.clone(), start..end);
                self.fetch_pieces(pieces, budgeted)
            }
        }
    }

    /// Fetches the chunk pieces `read_ahead` at a time, in order. Each chunk reserves its
    /// share of the memory budget before it is fetched, in order (so the chunk to be yielded
    /// next always has its share, and reads never wait on each other in a circle); the bytes
    /// yielded carry the reservation, which is given back when the consumer drops them (after
    /// writing them to its socket), not when it asks for more.
    fn fetch_pieces(
        &self,
        pieces: impl futures::Stream<Item = Result<Piece>> + Send + 'static,
        budgeted: bool,
    ) -> BoxStream<'static, Result<Bytes>> {
        let inner = self.inner.clone();
        let reserving = inner.clone();
        let looking = inner.clone();
        let ahead = inner.config.read_ahead;
        // The chunk records (their schemes) in batches, as many at once as the manifest has
        // ready: a GET costs a metadata read per batch, not per chunk.
        let pieces = pieces
            .ready_chunks(LOOKUP_BATCH)
            .then(move |batch| with_schemes(looking.clone(), batch))
            .flat_map(stream::iter);
        pieces
            .then(move |p| {
                let inner = reserving.clone();
                async move {
                    let p = p?;
                    let r = if budgeted {
                        Some(inner.budget.reserve(inner.chunk_cost(u64::from(p.0 .0.len))).await?)
                    } else {
                        None
                    };
                    Ok::<_, Error>((p, r))
                }
            })
            .map(move |p| {
                let inner = inner.clone();
                async move {
                    let (((c, range), (scheme, placement)), reservation) = p?;
                    let bytes = crate::fetch::fetch_chunk(&inner, c, scheme, placement)
                        .await?
                        .slice(range);
                    Ok(Bytes::from_owner(Reserved {
                        bytes,
                        _reservation: reservation,
                    }))
                }
            })
            .buffered(ahead)
            .boxed()
    }
}

/// Bytes that keep their memory-budget reservation for as long as they live.
struct Reserved {
    bytes: Bytes,
    _reservation: Option<Reservation>,
}

impl AsRef<[u8]> for Reserved {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A chunk and the part of it a read wants.
type Piece = (ChunkRef, Range<usize>);

/// Most chunk records read from the metadata in one call while streaming.
const LOOKUP_BATCH: usize = 256;

/// How a chunk is stored: its erasure scheme and where its shards are.
type Stored = (ErasureScheme, cairn_meta::ChunkPlacement);

/// `batch` with how each piece's chunk is stored, from one metadata read; an error in the
/// batch (or a chunk without a record) ends it there.
async fn with_schemes(inner: Arc<Inner>, batch: Vec<Result<Piece>>) -> Vec<Result<(Piece, Stored)>> {
    let ok: Vec<Piece> = batch.iter().map_while(|p| p.as_ref().ok().cloned()).collect();
    let failed = batch.into_iter().find_map(Result::err);
    let mut ids: Vec<cairn_types::ChunkId> = ok.iter().map(|(c, _)| c.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out: Vec<Result<(Piece, Stored)>> = Vec::with_capacity(ok.len() + 1);
    match inner.meta.chunks(ids).await {
        Err(e) => out.push(Err(e.into())),
        Ok(states) => {
            let schemes: std::collections::HashMap<_, _> = states
                .into_iter()
                .filter_map(|s| Some((s.id, (s.record?.scheme, s.placement))))
                .collect();
            for p in ok {
                match schemes.get(&p.0.id) {
                    Some(stored) => out.push(Ok((p, stored.clone()))),
                    None => {
                        out.push(Err(Error::Storage(format!("chunk {} has no record", p.0.id))));
                        return out;
                    }
                }
            }
        }
    }
    out.extend(failed.map(Err));
    out
}

/// The pieces of `chunks` (the first starting at object offset `first`) that overlap `range`.
fn pieces(chunks: &[ChunkRef], first: u64, range: Range<u64>) -> impl Iterator<Item = Piece> + '_ {
    let mut offset = first;
    chunks.iter().filter_map(move |c| {
        let (cs, ce) = (offset, offset + u64::from(c.len));
        offset = ce;
        if ce <= range.start || cs >= range.end {
            return None;
        }
        let from = range.start.max(cs) - cs;
        let to = range.end.min(ce) - cs;
        Some((*c, from as usize..to as usize))
    })
}

/// Manifest pages read from the metadata at a time while streaming a paged object.
const PAGES_PER_READ: usize = 2;

/// The pieces of a paged version that overlap `range`, reading its manifest pages lazily, a
/// few at a time, so a read holds at most a few pages whatever the object's size. A page that
/// is missing (the version was collected during a very long read) ends the stream with an
/// error, never with other bytes.
fn paged_pieces(
    inner: Arc<Inner>,
    version: String,
    range: Range<u64>,
) -> impl futures::Stream<Item = Result<Piece>> + Send + 'static {
    let pages = stream::try_unfold(range.start, move |cursor| {
        let (inner, version, range) = (inner.clone(), version.clone(), range.clone());
        async move {
            if cursor >= range.end {
                return Ok(None);
            }
            let pages: Vec<ManifestPage> = inner.meta.manifest_pages(&version, cursor, PAGES_PER_READ).await?;
            let next = match pages.last() {
                Some(p) if pages[0].start <= cursor => p.end(),
                _ => {
                    return Err(Error::Storage(format!(
                        "manifest of version {version} is missing at offset {cursor}"
                    )))
                }
            };
            let wanted: Vec<Piece> = pages
                .iter()
                .flat_map(|p| pieces(&p.chunks, p.start, range.clone()))
                .collect();
            Ok(Some((stream::iter(wanted.into_iter().map(Ok)), next)))
        }
    });
    pages.try_flatten()
}
