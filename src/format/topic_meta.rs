//! `topic.conf`: a topic's configuration, written once when the topic is created (through a
//! temporary file and a rename) and read at every open. 64 bytes:
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
//! | 48 | 12 | reserved, 0 |
//! | 60 | 4 | CRC32C of bytes `[0, 60)` |

use std::time::Duration;

use super::FORMAT_VERSION;
use super::cursor::{Reader, Writer};
use crate::config::{Retention, TopicConfig};

/// Magic of topic configuration files.
pub(crate) const TOPIC_MAGIC: [u8; 8] = *b"WHARFTOP";
/// Bytes of a topic configuration file.
pub(crate) const TOPIC_META_LEN: usize = 64;
const CRC_POS: usize = 60;

/// Why a topic file was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicMetaError {
    Damaged,
    UnsupportedVersion(u16),
}

/// Encodes a topic's configuration.
pub(crate) fn encode(config: &TopicConfig) -> [u8; TOPIC_META_LEN] {
    let mut out = [0u8; TOPIC_META_LEN];
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
    let crc = crc32c::crc32c(out.get(..CRC_POS).unwrap_or_default());
    if let Some(slot) = out.get_mut(CRC_POS..) {
        slot.copy_from_slice(&crc.to_le_bytes());
    }
    out
}

/// Decodes a topic's configuration (not yet validated against the limits).
pub(crate) fn decode(bytes: &[u8]) -> Result<TopicConfig, TopicMetaError> {
    let all = bytes.get(..TOPIC_META_LEN).ok_or(TopicMetaError::Damaged)?;
    if bytes.len() != TOPIC_META_LEN {
        return Err(TopicMetaError::Damaged);
    }
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
    let retention = Retention {
        max_age: u64::try_from(age).ok().map(Duration::from_millis),
        max_bytes: u64::try_from(bytes_limit).ok(),
    };
    Ok(TopicConfig {
        partitions,
        segment_bytes,
        index_interval_bytes: index_interval,
        max_message_bytes: max_message,
        retention,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let config = TopicConfig::default().partitions(8).retention(
            Retention::forever()
                .max_age(Duration::from_secs(3_600))
                .max_bytes(1 << 30),
        );
        let bytes = encode(&config);
        assert_eq!(decode(&bytes), Ok(config.clone()));
        assert_eq!(
            decode(&encode(&TopicConfig::default())),
            Ok(TopicConfig::default())
        );
        for bit in 0..TOPIC_META_LEN * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&damaged).is_err(), "bit {bit}");
        }
        assert!(decode(&bytes[..10]).is_err());
    }
}
