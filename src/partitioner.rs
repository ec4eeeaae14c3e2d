//! Choosing a partition for a record.
//!
//! A record with an explicit partition ([`crate::Record::partition`]) goes there. Otherwise
//! the producer's [`Partitioner`] decides; the default hashes the key with murmur2, exactly as
//! Kafka's Java client does (`toPositive(murmur2(key)) % partitions`), so a key maps to the
//! same partition across restarts, versions and platforms, and to the same partition a Kafka
//! producer would pick for a topic with the same partition count. Records without a key are
//! spread round-robin.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::format::record::Record;

/// Picks the partition of a record that names none itself.
///
/// The returned value must be below `partitions`; a larger one makes the send fail with
/// [`crate::ErrorKind::PartitionOutOfRange`].
pub trait Partitioner: Send + Sync + fmt::Debug + 'static {
    /// The partition for `record`, among `partitions` (at least 1).
    fn partition(&self, record: &Record, partitions: u32) -> u32;

    /// The partition for a record sent from borrowed slices
    /// ([`crate::Producer::send_slice`]), which has `key` and no explicit partition. The
    /// default builds a record with that key and an empty payload for
    /// [`Partitioner::partition`]; a partitioner that looks at more than the key sees only
    /// that.
    fn partition_key(&self, key: Option<&[u8]>, partitions: u32) -> u32 {
        let mut record = Record::new("", bytes::Bytes::new());
        if let Some(key) = key {
            record = record.key(bytes::Bytes::copy_from_slice(key));
        }
        self.partition(&record, partitions)
    }
}

/// Key hash (murmur2, Kafka-compatible) for keyed records, round-robin for the rest.
#[derive(Debug, Default)]
pub struct DefaultPartitioner {
    next: AtomicU32,
}

impl Partitioner for DefaultPartitioner {
    fn partition(&self, record: &Record, partitions: u32) -> u32 {
        self.partition_key(record.key.as_deref(), partitions)
    }

    fn partition_key(&self, key: Option<&[u8]>, partitions: u32) -> u32 {
        match key {
            Some(key) => partition_for_key(key, partitions),
            None => self.next.fetch_add(1, Ordering::Relaxed) % partitions,
        }
    }
}

/// Round-robin over all partitions, ignoring keys.
#[derive(Debug, Default)]
pub struct RoundRobinPartitioner {
    next: AtomicU32,
}

impl Partitioner for RoundRobinPartitioner {
    fn partition(&self, _record: &Record, partitions: u32) -> u32 {
        self.next.fetch_add(1, Ordering::Relaxed) % partitions
    }

    fn partition_key(&self, _key: Option<&[u8]>, partitions: u32) -> u32 {
        self.next.fetch_add(1, Ordering::Relaxed) % partitions
    }
}

/// The partition Kafka's default partitioner gives `key` among `partitions` (at least 1).
///
/// ```
/// // Pinned by Kafka's own test vectors for murmur2.
/// assert_eq!(wharf::partition_for_key(b"foobar", 100), (-790_332_482i32 & 0x7fff_ffff) as u32 % 100);
/// ```
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Kafka's murmur2 (seed `0x9747b28c`), as `org.apache.kafka.common.utils.Utils.murmur2`.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Kafka takes the length as a Java int; keys longer than 2 GiB do not occur.
    let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut h = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2` vectors (Java ints).
    #[test]
    #[expect(clippy::cast_possible_wrap, reason = "Kafka's vectors are Java ints")]
    fn murmur2_matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key) as i32,
                expected,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn keyless_records_go_round_robin_and_keys_stick() {
        let partitioner = DefaultPartitioner::default();
        let keyless = Record::new("t", "x");
        let spread: Vec<u32> = (0..6).map(|_| partitioner.partition(&keyless, 3)).collect();
        assert_eq!(spread, [0, 1, 2, 0, 1, 2]);
        let keyed = Record::new("t", "x").key("user-7");
        let first = partitioner.partition(&keyed, 12);
        assert!((0..100).all(|_| partitioner.partition(&keyed, 12) == first));
    }
}
