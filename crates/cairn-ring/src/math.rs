//! The arithmetic of placement version 1, frozen: changing anything here moves data.

/// SplitMix64's finaliser: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 64 bits of the chunk id (itself a BLAKE3 hash: uniform already).
pub fn chunk_seed(chunk: &[u8; 32]) -> u64 {
    u64::from_le_bytes(chunk[..8].try_into().expect("8 bytes"))
}

/// The identity of a disk in draws: 64 bits of BLAKE3 over the node id and disk index.
pub fn disk_key(node: &str, disk: u16) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(b"cairn-ring v1 disk\0");
    h.update(node.as_bytes());
    h.update(&[0]);
    h.update(&disk.to_le_bytes());
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

/// The straw2 score of a disk for a chunk: `ln(u) / weight` with `u` uniform in (0, 1] drawn
/// from (chunk, disk). The largest score comes first; a disk comes first with probability
/// proportional to its weight.
pub fn straw2(seed: u64, disk: u64, weight: u64) -> f64 {
    let h = mix(seed ^ mix(disk));
    // 53 bits: exactly representable; +1 keeps u in (0, 1].
    let u = ((h >> 11) + 1) as f64 / (1u64 << 53) as f64;
    ln(u) / weight as f64
}

/// Natural logarithm of `x` in (0, 1], with `+ - * /` only: `x = m * 2^e`, `m` in [1, 2),
/// `ln x = e ln 2 + 2 atanh((m - 1) / (m + 1))`, the series summed to well below the last bit.
pub fn ln(x: f64) -> f64 {
    debug_assert!(x > 0.0 && x <= 1.0);
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let mut term = z;
    let mut sum = 0.0;
    let mut k = 1.0;
    // z <= 1/3: z^(2k+1)/(2k+1) < 2^-53 by k = 17.
    for _ in 0..20 {
        sum += term / k;
        term *= z2;
        k += 2.0;
    }
    exp as f64 * std::f64::consts::LN_2 + 2.0 * sum
}
