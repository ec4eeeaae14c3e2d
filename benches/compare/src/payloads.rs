//! Random payloads from a seeded PRNG, generated before anything is timed.
//!
//! The bytes come from xorshift64* with a fixed seed, so every run and every system sees the
//! same payloads and nothing compresses. At most [`POOL_BYTES`] of distinct bytes are made;
//! beyond that the payloads repeat (1,000,000 × 1 KiB would otherwise hold 1 GiB in memory).
//! None of the systems compares or deduplicates payloads, so the repetition changes nothing.
//! Every payload is a [`Bytes`] slice of one shared buffer: handing one to wharf's `Record`
//! is a reference-count increment, and the others borrow it as `&[u8]`.

use bytes::Bytes;

/// Distinct payload bytes at most.
pub const POOL_BYTES: usize = 64 << 20;

/// The fixed seed.
const SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// `count` payloads of `len` bytes each.
pub fn generate(count: u64, len: usize) -> Vec<Bytes> {
    assert!(
        len > 0,
        "payloads are never empty (the plain file reads a zero length as its end)"
    );
    let count = usize::try_from(count).expect("the payload count fits in memory");
    let distinct = count.min(POOL_BYTES / len).max(1);
    let pool = Bytes::from(random_bytes(distinct * len));
    (0..count)
        .map(|i| {
            let start = (i % distinct) * len;
            pool.slice(start..start + len)
        })
        .collect()
}

/// `len` bytes from xorshift64* seeded with [`SEED`].
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state = SEED;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}
