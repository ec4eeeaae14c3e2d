//! Random payloads from a seeded PRNG, generated before anything is timed.
//!
//! The bytes come from xorshift64* with a fixed seed, so every run and every system sees the
//! same payloads and nothing compresses. At most [`POOL_BYTES`] of distinct bytes are made;
//! beyond that the payloads repeat (1,000,000 × 1 KiB would otherwise hold 1 GiB in memory).
//! None of the systems compares or deduplicates payloads, so the repetition changes nothing.
//!
//! Every system is handed the same thing: a `&[u8]` borrowed from one buffer that
//! [`Payloads`] owns, as an application would hold its message. No system gets a form that
//! suits it better (wharf's `Record` wants a `Bytes`: its adapter copies the slice into one,
//! inside the timed region, like any other conversion a system needs).

/// Distinct payload bytes at most.
pub const POOL_BYTES: usize = 64 << 20;

/// The fixed seed.
const SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// `count` payloads of `len` bytes each, all slices of one buffer.
pub struct Payloads {
    pool: Vec<u8>,
    len: usize,
    count: usize,
    /// Payloads before they repeat.
    distinct: usize,
}

impl Payloads {
    /// `count` payloads of `len` bytes each.
    pub fn generate(count: u64, len: usize) -> Payloads {
        assert!(
            len > 0,
            "payloads are never empty (the plain file reads a zero length as its end)"
        );
        let count = usize::try_from(count).expect("the payload count fits in memory");
        let distinct = count.min(POOL_BYTES / len).max(1);
        Payloads {
            pool: random_bytes(distinct * len),
            len,
            count,
            distinct,
        }
    }

    /// One borrowed slice per payload, in order (made untimed, before a run).
    pub fn slices(&self) -> Vec<&[u8]> {
        (0..self.count)
            .map(|i| {
                let start = (i % self.distinct) * self.len;
                &self.pool[start..start + self.len]
            })
            .collect()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_have_the_length_and_count_asked_for_and_repeat_past_the_pool() {
        let payloads = Payloads::generate(10, POOL_BYTES / 4);
        let slices = payloads.slices();
        assert_eq!(slices.len(), 10);
        assert!(slices.iter().all(|s| s.len() == POOL_BYTES / 4));
        assert_ne!(slices[0], slices[1]);
        assert_eq!(slices[0], slices[4], "the fifth payload repeats the first");
        assert!(
            std::ptr::eq(slices[0], slices[4]),
            "both borrow the one pool"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let a = Payloads::generate(3, 100);
        let b = Payloads::generate(3, 100);
        assert_eq!(a.slices(), b.slices());
    }
}
