use bytes::{Bytes, BytesMut};
use fastcdc::v2020;

/// FastCDC parameters. They are part of the storage format: changing them changes every chunk
/// boundary, so new data would no longer deduplicate against old. They are therefore versioned
/// and frozen; [`ChunkerParams::V1`] is the only version so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Format version of these parameters.
    pub version: u8,
    /// No chunk is smaller than this, except the last one of a stream.
    pub min_size: usize,
    /// Target average chunk size.
    pub avg_size: usize,
    /// No chunk is larger than this.
    pub max_size: usize,
}

impl ChunkerParams {
    /// Version 1: FastCDC 2020, normalisation level 1, min 256 KiB, average 1 MiB, max 4 MiB.
    pub const V1: ChunkerParams = ChunkerParams {
        version: 1,
        min_size: 256 * 1024,
        avg_size: 1024 * 1024,
        max_size: 4 * 1024 * 1024,
    };
}

/// A streaming content-defined chunker: feed it bytes in any framing, and it yields the same
/// chunks as if it had seen the whole stream at once. It holds at most `max_size` bytes plus the
/// last pushed buffer.
#[derive(Debug)]
pub struct Chunker {
    params: ChunkerParams,
    masks: (u64, u64),
    buf: BytesMut,
}

impl Chunker {
    /// A chunker with the given parameters.
    pub fn new(params: ChunkerParams) -> Self {
        let masks = v2020::select_masks(params.avg_size, v2020::Normalization::Level1);
        Self {
            params,
            masks,
            buf: BytesMut::new(),
        }
    }

    /// Adds `data` to the stream and returns every chunk that is now complete.
    pub fn push(&mut self, data: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut data = data;
        while !data.is_empty() {
            // Never hold much more than one max-size chunk: fill up to max, cut, repeat.
            let room = (self.params.max_size * 2).saturating_sub(self.buf.len()).max(1);
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            while self.buf.len() >= self.params.max_size {
                let n = self.cut();
                out.push(self.buf.split_to(n).freeze());
            }
        }
        out
    }

    /// Ends the stream and returns the remaining chunks (none for an empty stream).
    pub fn finish(mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        while !self.buf.is_empty() {
            let n = self.cut();
            out.push(self.buf.split_to(n).freeze());
        }
        out
    }

    /// Bytes buffered but not yet emitted.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn cut(&self) -> usize {
        let (s, l) = self.masks;
        let (_, n) = v2020::cut(
            &self.buf,
            self.params.min_size,
            self.params.avg_size,
            self.params.max_size,
            s,
            l,
            s << 1,
            l << 1,
        );
        n.clamp(1, self.buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ChunkerParams {
        ChunkerParams {
            version: 0,
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        }
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn chunk_all(params: ChunkerParams, data: &[u8], frame: usize) -> Vec<Bytes> {
        let mut c = Chunker::new(params);
        let mut out = Vec::new();
        for piece in data.chunks(frame.max(1)) {
            out.extend(c.push(piece));
        }
        out.extend(c.finish());
        out
    }

    #[test]
    fn empty_stream_has_no_chunks() {
        assert!(chunk_all(small(), &[], 10).is_empty());
    }

    #[test]
    fn sizes_stay_within_bounds_and_concatenate_back() {
        let data = pseudo_random(1_000_000, 7);
        let chunks = chunk_all(small(), &data, 3000);
        let (last, body) = chunks.split_last().unwrap();
        for c in body {
            assert!(c.len() >= 4096 && c.len() <= 65536, "{}", c.len());
        }
        assert!(last.len() <= 65536);
        assert_eq!(chunks.concat(), data);
    }

    #[test]
    fn v1_parameters_bound_chunk_sizes() {
        let data = pseudo_random(12 << 20, 3);
        let chunks = chunk_all(ChunkerParams::V1, &data, 1 << 16);
        for c in &chunks[..chunks.len() - 1] {
            assert!(c.len() >= 256 << 10 && c.len() <= 4 << 20);
        }
        assert_eq!(chunks.concat(), data);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Framing of the input never changes the boundaries.
        #[test]
        fn boundaries_ignore_framing(seed in any::<u64>(), frame in 1usize..100_000) {
            let data = pseudo_random(400_000, seed);
            prop_assert_eq!(chunk_all(small(), &data, frame), chunk_all(small(), &data, 400_000));
        }

        /// Inserting bytes in the middle leaves most chunks unchanged: only the chunks around
        /// the insertion differ, so deduplication keeps working on edited files.
        #[test]
        fn boundaries_stable_under_insertion(seed in any::<u64>(), at in 0usize..600_000, ins in 1usize..64) {
            let data = pseudo_random(600_000, seed);
            let mut edited = data[..at].to_vec();
            edited.extend(std::iter::repeat_n(0xAB, ins));
            edited.extend_from_slice(&data[at..]);
            let a = chunk_all(small(), &data, 65536);
            let b = chunk_all(small(), &edited, 65536);
            let set: std::collections::HashSet<_> = a.iter().collect();
            let changed = b.iter().filter(|c| !set.contains(c)).count();
            prop_assert!(changed <= 3, "{} of {} chunks changed", changed, b.len());
        }
    }
}
