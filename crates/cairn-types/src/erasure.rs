use serde::{Deserialize, Serialize};

/// A Reed-Solomon scheme: `data` shards, any `data` of which rebuild a chunk, plus `parity`
/// shards. `parity == 0` means a single plain copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ErasureScheme {
    /// Number of data shards (k), at least 1.
    pub data: u8,
    /// Number of parity shards (m).
    pub parity: u8,
}

/// A scheme that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid erasure scheme {data}+{parity}: need 1 ≤ data and data + parity ≤ 32")]
pub struct InvalidErasureScheme {
    /// Requested data shards.
    pub data: u8,
    /// Requested parity shards.
    pub parity: u8,
}

impl ErasureScheme {
    /// Builds a scheme, refusing `data == 0` and more than 32 shards in all.
    pub fn new(data: u8, parity: u8) -> Result<Self, InvalidErasureScheme> {
        if data == 0 || u16::from(data) + u16::from(parity) > 32 {
            return Err(InvalidErasureScheme { data, parity });
        }
        Ok(Self { data, parity })
    }

    /// The default scheme for `disks` disks, one shard per disk: 1 disk → 1+0, 2 → 1+1,
    /// 3 → 2+1, 6 → 4+2, 12 → 8+4 (parity is a third of the disks, at least one once there are
    /// two disks).
    pub fn for_disks(disks: usize) -> Result<Self, InvalidErasureScheme> {
        let n = u8::try_from(disks.clamp(1, 32)).expect("clamped");
        if disks == 0 || disks > 32 {
            return Err(InvalidErasureScheme { data: n, parity: 0 });
        }
        let parity = if n == 1 { 0 } else { (n / 3).max(1) };
        Self::new(n - parity, parity)
    }

    /// Total number of shards per chunk.
    pub fn total(&self) -> usize {
        usize::from(self.data) + usize::from(self.parity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_per_disk_count() {
        let s = |n| ErasureScheme::for_disks(n).map(|s| (s.data, s.parity));
        assert_eq!(s(1), Ok((1, 0)));
        assert_eq!(s(2), Ok((1, 1)));
        assert_eq!(s(3), Ok((2, 1)));
        assert_eq!(s(6), Ok((4, 2)));
        assert_eq!(s(12), Ok((8, 4)));
        assert!(s(0).is_err());
        assert!(s(33).is_err());
    }
}
