//! File headers: the first bytes of every file wharf writes.
//!
//! Most files start with a 32-byte *small header*:
//!
//! | position | size | field |
//! |---------:|-----:|-------|
//! | 0  | 8 | magic: names the file kind (`WHARFLOG`, `WHARFTIX`, `WHARFDIR`, `WHARFCLN`) |
//! | 8  | 2 | format version ([`super::FORMAT_VERSION`]) |
//! | 10 | 6 | reserved, 0 |
//! | 16 | 8 | `value`: the base offset for segment files, 0 otherwise |
//! | 24 | 4 | reserved, 0 |
//! | 28 | 4 | CRC32C of bytes `[0, 28)` |
//!
//! The offset index (`.index`) starts with a 64-byte header that also carries the segment's
//! summary once the segment is sealed or cleanly closed:
//!
//! | position | size | field |
//! |---------:|-----:|-------|
//! | 0  | 8 | magic `WHARFIDX` |
//! | 8  | 2 | format version |
//! | 10 | 2 | flags: bit 0 = *complete* (the fields from 24 on are valid) |
//! | 12 | 4 | reserved, 0 |
//! | 16 | 8 | base offset of the segment |
//! | 24 | 4 | number of index entries |
//! | 28 | 4 | CRC32C of those entries |
//! | 32 | 8 | byte position of the end of the segment's log data |
//! | 40 | 8 | next offset (one past the segment's last record) |
//! | 48 | 8 | largest record timestamp in the segment |
//! | 56 | 4 | reserved, 0 |
//! | 60 | 4 | CRC32C of bytes `[0, 60)` |

use super::FORMAT_VERSION;
use super::cursor::{Reader, Writer};

/// Magic of segment log files.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"WHARFLOG";
/// Magic of time index files.
pub(crate) const TIME_INDEX_MAGIC: [u8; 8] = *b"WHARFTIX";
/// Magic of the data directory's header file.
pub(crate) const DIR_MAGIC: [u8; 8] = *b"WHARFDIR";
/// Magic of the clean-shutdown marker.
pub(crate) const CLEAN_MAGIC: [u8; 8] = *b"WHARFCLN";
/// Magic of offset index files.
pub(crate) const INDEX_MAGIC: [u8; 8] = *b"WHARFIDX";

/// Length of a small header; also where a segment's first batch starts.
pub(crate) const SMALL_HEADER_LEN: usize = 32;
/// Position of the first batch in a segment file.
pub(crate) const SEGMENT_HEADER_LEN: usize = SMALL_HEADER_LEN;
/// Length of the offset index header.
pub(crate) const INDEX_HEADER_LEN: usize = 64;

const SMALL_CRC_POS: usize = 28;
const INDEX_CRC_POS: usize = 60;
const FLAG_COMPLETE: u16 = 1;

/// Why a header was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    Truncated,
    BadMagic,
    BadCrc,
    /// A valid header of a version this build does not read.
    UnsupportedVersion(u16),
    /// The checksum passes, but the segment summary is impossible: its next offset is below
    /// the base offset (or more than a `u32` of offsets past it), or its end position lies
    /// inside the segment file's header.
    BadSummary,
    /// Valid, but describes another file (a base offset that does not match the file name).
    Mismatch {
        expected: u64,
        found: u64,
    },
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Truncated => write!(f, "file header is cut short"),
            HeaderError::BadMagic => write!(f, "file header has the wrong magic number"),
            HeaderError::BadCrc => write!(f, "file header checksum mismatch"),
            HeaderError::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            HeaderError::BadSummary => write!(f, "impossible segment summary"),
            HeaderError::Mismatch { expected, found } => {
                write!(
                    f,
                    "header names base offset {found}, the file name says {expected}"
                )
            }
        }
    }
}

/// Encodes a small header.
pub(crate) fn encode_small(magic: [u8; 8], value: u64) -> [u8; SMALL_HEADER_LEN] {
    let mut out = [0u8; SMALL_HEADER_LEN];
    let mut w = Writer::new(&mut out);
    w.bytes(&magic);
    w.u16(FORMAT_VERSION);
    w.skip(6);
    w.u64(value);
    w.skip(4);
    let crc = crc32c::crc32c(out.get(..SMALL_CRC_POS).unwrap_or_default());
    if let Some(slot) = out.get_mut(SMALL_CRC_POS..) {
        slot.copy_from_slice(&crc.to_le_bytes());
    }
    out
}

/// Decodes a small header of the given kind and returns its value.
pub(crate) fn decode_small(bytes: &[u8], magic: [u8; 8]) -> Result<u64, HeaderError> {
    let header = bytes
        .get(..SMALL_HEADER_LEN)
        .ok_or(HeaderError::Truncated)?;
    check_crc(header, SMALL_CRC_POS)?;
    let mut r = Reader::new(header);
    if r.array::<8>() != Some(magic) {
        return Err(HeaderError::BadMagic);
    }
    let version = r.u16().ok_or(HeaderError::Truncated)?;
    if version != FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion(version));
    }
    r.bytes(6);
    r.u64().ok_or(HeaderError::Truncated)
}

/// Decodes a segment (or time index) header and checks its base offset.
pub(crate) fn decode_based(
    bytes: &[u8],
    magic: [u8; 8],
    expected_base: u64,
) -> Result<(), HeaderError> {
    let found = decode_small(bytes, magic)?;
    if found == expected_base {
        Ok(())
    } else {
        Err(HeaderError::Mismatch {
            expected: expected_base,
            found,
        })
    }
}

fn check_crc(header: &[u8], crc_pos: usize) -> Result<(), HeaderError> {
    let body = header.get(..crc_pos).ok_or(HeaderError::Truncated)?;
    let stored = Reader::new(header.get(crc_pos..).unwrap_or_default())
        .u32()
        .ok_or(HeaderError::Truncated)?;
    if crc32c::crc32c(body) == stored {
        Ok(())
    } else if header.iter().all(|&b| b == 0) {
        Err(HeaderError::BadMagic)
    } else {
        Err(HeaderError::BadCrc)
    }
}

/// What a sealed (or cleanly closed) segment's index header records about the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentSummary {
    pub entry_count: u32,
    pub entries_crc: u32,
    pub log_end_position: u64,
    pub next_offset: u64,
    pub max_timestamp: i64,
}

/// The offset index header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexHeader {
    pub base_offset: u64,
    pub summary: Option<SegmentSummary>,
}

/// Encodes an offset index header.
pub(crate) fn encode_index(header: &IndexHeader) -> [u8; INDEX_HEADER_LEN] {
    let mut out = [0u8; INDEX_HEADER_LEN];
    let mut w = Writer::new(&mut out);
    w.bytes(&INDEX_MAGIC);
    w.u16(FORMAT_VERSION);
    w.u16(if header.summary.is_some() {
        FLAG_COMPLETE
    } else {
        0
    });
    w.skip(4);
    w.u64(header.base_offset);
    if let Some(s) = header.summary {
        w.u32(s.entry_count);
        w.u32(s.entries_crc);
        w.u64(s.log_end_position);
        w.u64(s.next_offset);
        w.i64(s.max_timestamp);
    }
    let crc = crc32c::crc32c(out.get(..INDEX_CRC_POS).unwrap_or_default());
    if let Some(slot) = out.get_mut(INDEX_CRC_POS..) {
        slot.copy_from_slice(&crc.to_le_bytes());
    }
    out
}

/// Decodes an offset index header and checks its base offset.
pub(crate) fn decode_index(bytes: &[u8], expected_base: u64) -> Result<IndexHeader, HeaderError> {
    let header = bytes
        .get(..INDEX_HEADER_LEN)
        .ok_or(HeaderError::Truncated)?;
    check_crc(header, INDEX_CRC_POS)?;
    let mut r = Reader::new(header);
    if r.array::<8>() != Some(INDEX_MAGIC) {
        return Err(HeaderError::BadMagic);
    }
    let version = r.u16().ok_or(HeaderError::Truncated)?;
    if version != FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion(version));
    }
    let flags = r.u16().ok_or(HeaderError::Truncated)?;
    r.bytes(4);
    let base_offset = r.u64().ok_or(HeaderError::Truncated)?;
    if base_offset != expected_base {
        return Err(HeaderError::Mismatch {
            expected: expected_base,
            found: base_offset,
        });
    }
    let summary = if flags & FLAG_COMPLETE != 0 {
        let (Some(entry_count), Some(entries_crc), Some(end), Some(next), Some(max_ts)) =
            (r.u32(), r.u32(), r.u64(), r.u64(), r.i64())
        else {
            return Err(HeaderError::Truncated);
        };
        let span = next
            .checked_sub(base_offset)
            .ok_or(HeaderError::BadSummary)?;
        if span > u64::from(u32::MAX) || end < SEGMENT_HEADER_LEN as u64 {
            return Err(HeaderError::BadSummary);
        }
        Some(SegmentSummary {
            entry_count,
            entries_crc,
            log_end_position: end,
            next_offset: next,
            max_timestamp: max_ts,
        })
    } else {
        None
    };
    Ok(IndexHeader {
        base_offset,
        summary,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn small_header_round_trips_and_rejects_damage() {
        let bytes = encode_small(SEGMENT_MAGIC, 1234);
        assert_eq!(decode_based(&bytes, SEGMENT_MAGIC, 1234), Ok(()));
        assert_eq!(
            decode_based(&bytes, SEGMENT_MAGIC, 1),
            Err(HeaderError::Mismatch {
                expected: 1,
                found: 1234
            })
        );
        assert_eq!(
            decode_small(&bytes, TIME_INDEX_MAGIC),
            Err(HeaderError::BadMagic)
        );
        for bit in 0..SMALL_HEADER_LEN * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_based(&damaged, SEGMENT_MAGIC, 1234).is_err(),
                "bit {bit}"
            );
        }
        assert_eq!(
            decode_small(&[0u8; 32], SEGMENT_MAGIC),
            Err(HeaderError::BadMagic)
        );
    }

    #[test]
    fn index_header_round_trips_with_and_without_summary() {
        let open = IndexHeader {
            base_offset: 9,
            summary: None,
        };
        assert_eq!(decode_index(&encode_index(&open), 9), Ok(open));
        let sealed = IndexHeader {
            base_offset: 9,
            summary: Some(SegmentSummary {
                entry_count: 3,
                entries_crc: 0xdead_beef,
                log_end_position: 4096,
                next_offset: 77,
                max_timestamp: -5,
            }),
        };
        let bytes = encode_index(&sealed);
        assert_eq!(decode_index(&bytes, 9), Ok(sealed));
        for bit in 0..INDEX_HEADER_LEN * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert_ne!(decode_index(&damaged, 9), Ok(sealed), "bit {bit}");
        }
    }

    /// A summary whose checksum passes but whose fields no writer makes is refused.
    #[test]
    fn an_impossible_summary_with_a_valid_checksum_is_refused() {
        let summary = SegmentSummary {
            entry_count: 0,
            entries_crc: 0,
            log_end_position: 4096,
            next_offset: 77,
            max_timestamp: 0,
        };
        for bad in [
            SegmentSummary {
                next_offset: 8,
                ..summary
            },
            SegmentSummary {
                next_offset: 9 + u64::from(u32::MAX) + 1,
                ..summary
            },
            SegmentSummary {
                log_end_position: 31,
                ..summary
            },
        ] {
            let header = IndexHeader {
                base_offset: 9,
                summary: Some(bad),
            };
            assert_eq!(
                decode_index(&encode_index(&header), 9),
                Err(HeaderError::BadSummary),
                "{bad:?}"
            );
        }
    }
}
