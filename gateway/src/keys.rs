//! Generation of access keys and secrets.

use rand::Rng;

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn pick(set: &[u8], n: usize) -> String {
    let mut rng = rand::rng();
    (0..n).map(|_| set[rng.random_range(0..set.len())] as char).collect()
}

/// A new access key id: `CK` and 18 upper-case letters or digits (20 characters, as AWS's).
pub fn generate_access_key() -> String {
    format!("CK{}", pick(UPPER_ALNUM, 18))
}

/// A new 40-character secret key from the OS's random generator.
pub fn generate_secret_key() -> String {
    pick(SECRET_CHARS, 40)
}
