//! `topic.conf`: a topic's configuration and *incarnation*, written once when the topic is
//! created (through a temporary file and a rename) and read at every open. 72 bytes, then a
//! tail only when retention waits for named consumer groups:
//!
//! | position | size | field |
//! |---------:|-----:|-------|
//! | 0  | 8 | magic `WHARFTOP` |
//! | 8  | 2 | format version |
//! | 10 | 2 | reserved, 0 |
//! | 12 | 4 | partitions |
//! | 16 | 8 | `segment_bytes` |
//! | 24 | 4 | `index_interval_bytes` |
//! | 28 | 4 | `max_message_bytes` |
//! | 32 | 8 | retention age in ms, or -1 for none |
//! | 40 | 8 | retention bytes, or -1 for none |
//! | 48 | 8 | hard retention bytes (valid if flag bit 0) |
//! | 56 | 1 | flags: bit 0 hard limit set; bits 1–2 groups retention waits for (0 none, 1 the named ones, 2 all) |
//! | 57 | 3 | reserved, 0 |
//! | 60 | 8 | incarnation: chosen when the topic is created, never 0 |
//! | 68 | 4 | CRC32C of bytes `[0, 68)` |
//!
//! The tail (named groups only): `u16` count, then per group a `u8` length and its name
//! bytes, then a CRC32C of the tail before it.
//!
//! The incarnation tells a topic from an earlier one of the same name (deleted, then created
//! again): every committed offset carries the incarnation it was committed against
//! ([`super::offset_commit`]), and an offset of another incarnation counts as none. A
//! configuration whose incarnation is 0 is damaged.

use std::time::Duration;

use super::FORMAT_VERSION;
use super::cursor::{Reader, Writer};
use crate::config::{KeepUnconsumed, Retention, TopicConfig};

/// Magic of topic configuration files.
pub(crate) const TOPIC_MAGIC: [u8; 8] = *b"WHARFTOP";
/// Bytes of a topic configuration file.
pub(crate) const TOPIC_META_LEN: usize = CRC_POS + 4;
/// Bytes of the largest configuration file: the fixed part and a tail naming
/// [`crate::config::MAX_RETENTION_GROUPS`] groups of the longest name.
pub(crate) const MAX_TOPIC_META_LEN: usize = TOPIC_META_LEN
    + 2
    + crate::config::MAX_RETENTION_GROUPS * (1 + crate::config::MAX_GROUP_NAME_LEN)
    + 4;
const INCARNATION_POS: usize = 60;
const CRC_POS: usize = INCARNATION_POS + 8;
const _: () = assert!(TOPIC_META_LEN == 72);

/// A topic's stored configuration and incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicMeta {
    pub config: TopicConfig,
    /// Never 0.
    pub incarnation: u64,
}

/// Why a topic file was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicMetaError {
    Damaged,
    UnsupportedVersion(u16),
}

/// Where the flags byte ends (the reserved bytes after it start).
const FLAGS_END: usize = 57;
const FLAG_HARD_LIMIT: u8 = 1;
const KEEP_SHIFT: u8 = 1;
const KEEP_MASK: u8 = 0b11;
const KEEP_GROUPS: u8 = 1;
const KEEP_ALL: u8 = 2;

/// Encodes a topic's configuration (a validated one: group names fit a `u8` length) and its
/// incarnation (not 0).
pub(crate) fn encode(config: &TopicConfig, incarnation: u64) -> Vec<u8> {
    assert!(incarnation != 0, "a topic's incarnation is never 0");
    let mut out = vec![0u8; TOPIC_META_LEN];
    let mut w = Writer::new(&mut out);
    w.bytes(&TOPIC_MAGIC);
    w.u16(FORMAT_VERSION);
    w.u16(0);
    w.u32(config.partitions);
    w.u64(config.segment_bytes);
    w.u32(config.index_interval_bytes);
    w.u32(config.max_message_bytes);
    let age = config
        .retention
        .max_age
        .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    w.i64(age);
    w.i64(
        config
            .retention
            .max_bytes
            .map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)),
    );
    let retention = &config.retention;
    w.u64(retention.hard_max_bytes.unwrap_or(0));
    let keep = match &retention.keep_unconsumed {
        KeepUnconsumed::No => 0,
        KeepUnconsumed::ByGroups(_) => KEEP_GROUPS,
        KeepUnconsumed::ByAllGroups => KEEP_ALL,
    };
    let hard = if retention.hard_max_bytes.is_some() {
        FLAG_HARD_LIMIT
    } else {
        0
    };
    w.u8(hard | (keep << KEEP_SHIFT));
    w.skip(INCARNATION_POS - FLAGS_END);
    w.u64(incarnation);
    assert!(
        !w.overflowed() && w.position() == CRC_POS,
        "topic configuration sized wrongly"
    );
    let crc = crc32c::crc32c(out.get(..CRC_POS).unwrap_or_default());
    if let Some(slot) = out.get_mut(CRC_POS..TOPIC_META_LEN) {
        slot.copy_from_slice(&crc.to_le_bytes());
    }
    if let KeepUnconsumed::ByGroups(groups) = &retention.keep_unconsumed {
        let mut tail = Vec::new();
        tail.extend_from_slice(
            &u16::try_from(groups.len())
                .unwrap_or(u16::MAX)
                .to_le_bytes(),
        );
        for group in groups {
            let name = group.as_bytes();
            let name = name.get(..usize::from(u8::MAX)).unwrap_or(name);
            tail.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
            tail.extend_from_slice(name);
        }
        let crc = crc32c::crc32c(&tail);
        tail.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&tail);
    }
    out
}

/// Decodes the tail: the groups retention waits for.
fn decode_groups(tail: &[u8]) -> Result<Vec<String>, TopicMetaError> {
    let body_len = tail.len().checked_sub(4).ok_or(TopicMetaError::Damaged)?;
    let (body, crc) = tail.split_at(body_len);
    if Reader::new(crc).u32() != Some(crc32c::crc32c(body)) {
        return Err(TopicMetaError::Damaged);
    }
    let mut r = Reader::new(body);
    let count = r.u16().ok_or(TopicMetaError::Damaged)?;
    let mut groups = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let len = r.u8().ok_or(TopicMetaError::Damaged)?;
        let name = r.bytes(usize::from(len)).ok_or(TopicMetaError::Damaged)?;
        let name = std::str::from_utf8(name).map_err(|_| TopicMetaError::Damaged)?;
        groups.push(name.to_owned());
    }
    if r.bytes(1).is_some() {
        return Err(TopicMetaError::Damaged);
    }
    Ok(groups)
}

/// Decodes a topic's configuration (not yet validated against the limits) and incarnation.
pub(crate) fn decode(bytes: &[u8]) -> Result<TopicMeta, TopicMetaError> {
    let all = bytes.get(..TOPIC_META_LEN).ok_or(TopicMetaError::Damaged)?;
    let tail = bytes.get(TOPIC_META_LEN..).unwrap_or_default();
    let stored = Reader::new(all.get(CRC_POS..).unwrap_or_default()).u32();
    if stored != Some(crc32c::crc32c(all.get(..CRC_POS).unwrap_or_default())) {
        return Err(TopicMetaError::Damaged);
    }
    let mut r = Reader::new(all);
    if r.array::<8>() != Some(TOPIC_MAGIC) {
        return Err(TopicMetaError::Damaged);
    }
    let version = r.u16().ok_or(TopicMetaError::Damaged)?;
    if version != FORMAT_VERSION {
        return Err(TopicMetaError::UnsupportedVersion(version));
    }
    r.u16();
    let (Some(partitions), Some(segment_bytes), Some(index_interval), Some(max_message)) =
        (r.u32(), r.u64(), r.u32(), r.u32())
    else {
        return Err(TopicMetaError::Damaged);
    };
    let (Some(age), Some(bytes_limit)) = (r.i64(), r.i64()) else {
        return Err(TopicMetaError::Damaged);
    };
    let (Some(hard), Some(flags)) = (r.u64(), r.u8()) else {
        return Err(TopicMetaError::Damaged);
    };
    r.bytes(INCARNATION_POS - FLAGS_END);
    let incarnation = r.u64().filter(|&i| i != 0).ok_or(TopicMetaError::Damaged)?;
    let keep_unconsumed = match (flags >> KEEP_SHIFT) & KEEP_MASK {
        0 if tail.is_empty() => KeepUnconsumed::No,
        KEEP_ALL if tail.is_empty() => KeepUnconsumed::ByAllGroups,
        KEEP_GROUPS => KeepUnconsumed::ByGroups(decode_groups(tail)?),
        _ => return Err(TopicMetaError::Damaged),
    };
    let retention = Retention {
        max_age: u64::try_from(age).ok().map(Duration::from_millis),
        max_bytes: u64::try_from(bytes_limit).ok(),
        keep_unconsumed,
        hard_max_bytes: (flags & FLAG_HARD_LIMIT != 0).then_some(hard),
    };
    let config = TopicConfig {
        partitions,
        segment_bytes,
        index_interval_bytes: index_interval,
        max_message_bytes: max_message,
        retention,
    };
    Ok(TopicMeta {
        config,
        incarnation,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let configs = [
            TopicConfig::default(),
            TopicConfig::default().partitions(8).retention(
                Retention::forever()
                    .max_age(Duration::from_secs(3_600))
                    .max_bytes(1 << 30),
            ),
            TopicConfig::default()
                .retention(Retention::forever().until_consumed().hard_max_bytes(5)),
            TopicConfig::default().retention(
                Retention::forever()
                    .max_age(Duration::ZERO)
                    .until_consumed_by(["billing", "audit"]),
            ),
        ];
        let incarnations = [1, u64::MAX, 0x0123_4567_89ab_cdef, 42];
        for (config, incarnation) in configs.into_iter().zip(incarnations) {
            let bytes = encode(&config, incarnation);
            let meta = TopicMeta {
                config: config.clone(),
                incarnation,
            };
            assert_eq!(decode(&bytes), Ok(meta));
            for bit in 0..bytes.len() * 8 {
                let mut damaged = bytes.clone();
                damaged[bit / 8] ^= 1 << (bit % 8);
                assert!(decode(&damaged).is_err(), "{config:?}: bit {bit}");
            }
            for cut in [10, CRC_POS, TOPIC_META_LEN - 1, bytes.len() - 1] {
                assert!(decode(&bytes[..cut]).is_err(), "{config:?}: cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode(&longer).is_err(), "{config:?}: a byte too many");
        }
    }

    #[test]
    fn the_incarnation_sits_before_the_crc_and_zero_is_damage() {
        let bytes = encode(&TopicConfig::default(), 0x1122_3344_5566_7788);
        assert_eq!(bytes.len(), TOPIC_META_LEN);
        assert_eq!(
            bytes[INCARNATION_POS..CRC_POS],
            0x1122_3344_5566_7788u64.to_le_bytes()
        );
        assert!(bytes[FLAGS_END..INCARNATION_POS].iter().all(|&b| b == 0));
        // A zero incarnation with a valid CRC is still refused.
        let mut zero = bytes.clone();
        zero[INCARNATION_POS..CRC_POS].fill(0);
        let crc = crc32c::crc32c(&zero[..CRC_POS]);
        zero[CRC_POS..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&zero), Err(TopicMetaError::Damaged));
    }
}
