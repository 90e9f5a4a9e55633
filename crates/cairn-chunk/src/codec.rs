use bytes::{Bytes, BytesMut};
use cairn_types::ErasureScheme;
use reed_solomon_erasure::galois_8::ReedSolomon;

/// Why a chunk could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Fewer than `data` shards were available.
    #[error("only {have} of the {need} shards needed to rebuild the chunk are readable")]
    NotEnoughShards {
        /// Shards available.
        have: usize,
        /// Shards needed.
        need: usize,
    },
    /// Shards disagree in length, or a shard has the wrong length.
    #[error("shard lengths are inconsistent")]
    BadShardLength,
    /// The shard list does not have one slot per shard of the scheme.
    #[error("expected {expected} shard slots, got {got}")]
    WrongSlotCount {
        /// Slots the scheme has.
        expected: usize,
        /// Slots given.
        got: usize,
    },
}

/// Reed-Solomon encoder/decoder for one [`ErasureScheme`]. Build it once and share it: building
/// computes the coding matrix.
pub struct Codec {
    scheme: ErasureScheme,
    rs: Option<ReedSolomon>,
}

impl Codec {
    /// A codec for `scheme`.
    pub fn new(scheme: ErasureScheme) -> Self {
        let rs = (scheme.parity > 0).then(|| {
            ReedSolomon::new(usize::from(scheme.data), usize::from(scheme.parity))
                .expect("ErasureScheme is validated on construction")
        });
        Self { scheme, rs }
    }

    /// The scheme this codec implements.
    pub fn scheme(&self) -> ErasureScheme {
        self.scheme
    }

    /// Length of each shard for a chunk of `chunk_len` bytes.
    pub fn shard_len(&self, chunk_len: usize) -> usize {
        chunk_len.div_ceil(usize::from(self.scheme.data)).max(1)
    }

    /// Splits `chunk` into `data + parity` equal shards (the last data shard zero-padded).
    /// With one data shard and no parity the single shard is `chunk` itself, without a copy.
    pub fn encode(&self, chunk: &Bytes) -> Vec<Bytes> {
        let k = usize::from(self.scheme.data);
        if k == 1 && self.rs.is_none() {
            return vec![chunk.clone()];
        }
        let len = self.shard_len(chunk.len());
        let total = self.scheme.total();
        let mut buf = BytesMut::zeroed(len * total);
        buf[..chunk.len()].copy_from_slice(chunk);
        let mut shards: Vec<BytesMut> = Vec::with_capacity(total);
        for _ in 0..total - 1 {
            shards.push(buf.split_to(len));
        }
        shards.push(buf);
        if let Some(rs) = &self.rs {
            let (data, parity) = shards.split_at_mut(k);
            rs.encode_sep(data, parity)
                .expect("shard counts and lengths match the codec");
        }
        shards.into_iter().map(BytesMut::freeze).collect()
    }

    /// Rebuilds a chunk of `chunk_len` bytes from its shards; `None` marks a shard that is
    /// missing or failed its checksum. Any `data` present shards suffice.
    pub fn decode(&self, shards: Vec<Option<Bytes>>, chunk_len: usize) -> Result<Bytes, CodecError> {
        let k = usize::from(self.scheme.data);
        let total = self.scheme.total();
        if shards.len() != total {
            return Err(CodecError::WrongSlotCount {
                expected: total,
                got: shards.len(),
            });
        }
        let have = shards.iter().filter(|s| s.is_some()).count();
        if have < k {
            return Err(CodecError::NotEnoughShards { have, need: k });
        }
        let len = self.shard_len(chunk_len);
        if shards.iter().flatten().any(|s| s.len() != len) {
            return Err(CodecError::BadShardLength);
        }
        if k == 1 {
            // Any present shard is the chunk (a copy, or the RS(1,m) parity, which equals data).
            let s = shards.into_iter().flatten().next().expect("have >= 1");
            return Ok(s.slice(..chunk_len));
        }
        if shards[..k].iter().all(Option::is_some) {
            let mut out = BytesMut::with_capacity(len * k);
            for s in shards.into_iter().take(k).flatten() {
                out.extend_from_slice(&s);
            }
            out.truncate(chunk_len);
            return Ok(out.freeze());
        }
        let rs = self.rs.as_ref().ok_or(CodecError::NotEnoughShards { have, need: k })?;
        let mut slots: Vec<Option<Vec<u8>>> = shards.into_iter().map(|s| s.map(|b| b.to_vec())).collect();
        rs.reconstruct_data(&mut slots)
            .map_err(|_| CodecError::BadShardLength)?;
        let mut out = BytesMut::with_capacity(len * k);
        for s in slots.into_iter().take(k) {
            out.extend_from_slice(&s.expect("reconstructed"));
        }
        out.truncate(chunk_len);
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codec(k: u8, m: u8) -> Codec {
        Codec::new(ErasureScheme::new(k, m).unwrap())
    }

    #[test]
    fn plain_copy_is_zero_copy() {
        let c = codec(1, 0);
        let chunk = Bytes::from_static(b"hello");
        let shards = c.encode(&chunk);
        assert_eq!(shards.len(), 1);
        assert_eq!(shards[0].as_ptr(), chunk.as_ptr());
        assert_eq!(c.decode(vec![Some(shards[0].clone())], 5).unwrap(), chunk);
        assert!(c.decode(vec![None], 5).is_err());
    }

    #[test]
    fn too_many_missing_is_an_error() {
        let c = codec(4, 2);
        let chunk = Bytes::from(vec![7u8; 1000]);
        let mut shards: Vec<Option<Bytes>> = c.encode(&chunk).into_iter().map(Some).collect();
        shards[0] = None;
        shards[2] = None;
        shards[5] = None;
        assert!(matches!(
            c.decode(shards, 1000),
            Err(CodecError::NotEnoughShards { have: 3, need: 4 })
        ));
    }

    proptest! {
        // Seeded: the same cases on every run.
        #![proptest_config(ProptestConfig {
            cases: 64,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_0002),
            ..ProptestConfig::default()
        })]

        /// Any `data` of the `data + parity` shards rebuild the chunk.
        #[test]
        fn any_k_of_k_plus_m_decode(
            (k, m) in (1u8..9, 0u8..5),
            len in 0usize..5000,
            seed in any::<u64>(),
            drop_mask in any::<u32>(),
        ) {
            let c = codec(k, m);
            let data: Vec<u8> = (0..len).map(|i| (i as u64).wrapping_mul(seed | 1).to_le_bytes()[3]).collect();
            let chunk = Bytes::from(data);
            let shards = c.encode(&chunk);
            prop_assert_eq!(shards.len(), usize::from(k + m));
            // Drop up to m shards chosen by the mask.
            let mut dropped = 0;
            let slots: Vec<Option<Bytes>> = shards.into_iter().enumerate().map(|(i, s)| {
                if dropped < m && drop_mask & (1 << i) != 0 { dropped += 1; None } else { Some(s) }
            }).collect();
            prop_assert_eq!(c.decode(slots, len).unwrap(), chunk);
        }
    }
}
