//! A consumer group's offsets file: a small header, then an append-only log of *commit
//! records*, each with its own CRC and a sequence number one above the previous record's.
//! Appending one record per commit call makes a batch commit one small write; replaying the
//! records in order (later entries win per partition) gives the group's committed offsets.
//!
//! File layout:
//!
//! | position | size | field |
//! |---------:|-----:|-------|
//! | 0  | 32   | small header ([`super::file_header`], magic `WHARFOFS`); its `value` is the sequence number of the file's first record |
//! | 32 | ..   | commit records, back to back |
//!
//! Commit record:
//!
//! | position | size | field |
//! |---------:|-----:|-------|
//! | 0  | 4 | CRC32C of bytes `[4, len)`: every field but itself |
//! | 4  | 4 | `len`: bytes of the whole record, at least [`RECORD_HEADER_LEN`] |
//! | 8  | 8 | `sequence`: the previous record's plus one |
//! | 16 | 4 | `entry_count` |
//! | 20 | 4 | `flags`: bit 0 = *snapshot* (the entries replace the whole state); other bits 0 |
//! | 24 | .. | `entry_count` entries |
//!
//! Entry:
//!
//! | position | size | field |
//! |---------:|-----:|-------|
//! | 0      | 2 | `topic_len` |
//! | 2      | `topic_len` | topic name, UTF-8 |
//! | 2 + t  | 4 | partition |
//! | 6 + t  | 8 | incarnation of the topic the offset was committed against ([`super::topic_meta`]), never 0 |
//! | 14 + t | 8 | committed offset (the next offset the group reads) |
//!
//! Decoding ([`decode_records`]) stops at the first record that fails a check (length, CRC,
//! sequence, flags, entries filling exactly `len`, no incarnation 0) and says why it stopped:
//! - [`Stop::Clean`]: the end of the bytes, or only zeros after the last record;
//! - [`Stop::TornTail`]: invalid bytes with no valid record after them, what an interrupted
//!   append leaves;
//! - [`Stop::Corrupt`]: invalid bytes *followed* by a valid record with a later sequence
//!   number, which no interrupted append can produce. Records after the damage are not
//!   returned: without the damaged record they would describe a state that never existed.
//!
//! A CRC32C catches every single-bit error and every burst up to 32 bits, so damage yields a
//! prefix of the records written, never a changed value. Decoding never panics and never
//! allocates more than the input's size justifies.

use super::cursor::{Reader, Writer};
use super::file_header::{self, SMALL_HEADER_LEN};

/// Magic of offsets files.
pub(crate) const OFFSETS_MAGIC: [u8; 8] = *b"WHARFOFS";

const CRC_POS: usize = 0;
const LEN_POS: usize = CRC_POS + 4;
const SEQUENCE_POS: usize = LEN_POS + 4;
const ENTRY_COUNT_POS: usize = SEQUENCE_POS + 8;
const FLAGS_POS: usize = ENTRY_COUNT_POS + 4;
/// Bytes of a record before its entries; also the smallest valid `len`.
pub(crate) const RECORD_HEADER_LEN: usize = FLAGS_POS + 4;
/// Bytes of an entry besides its topic name: its length, partition, incarnation, offset.
pub(crate) const ENTRY_FIXED_LEN: usize = 2 + 4 + 8 + 8;
const _: () = assert!(RECORD_HEADER_LEN == 24);
const _: () = assert!(ENTRY_FIXED_LEN == 22);
const _: () = assert!(SMALL_HEADER_LEN == 32);

/// Flag: the record's entries replace the whole state instead of updating it.
const FLAG_SNAPSHOT: u32 = 1;
const KNOWN_FLAGS: u32 = FLAG_SNAPSHOT;

/// One committed offset of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitEntry {
    pub topic: String,
    pub partition: u32,
    /// The incarnation of the topic the offset was committed against (never 0).
    pub incarnation: u64,
    pub offset: u64,
}

/// An entry to encode: topic, partition, incarnation (not 0), offset.
pub(crate) type EntryRef<'a> = (&'a str, u32, u64, u64);

/// One decoded commit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitRecord {
    pub sequence: u64,
    /// The entries are the whole state: every partition not listed has no committed offset.
    pub snapshot: bool,
    pub entries: Vec<CommitEntry>,
}

/// Why a record could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EncodeError {
    /// A topic name longer than a `u16` can count.
    TopicTooLong { len: usize },
    /// More entries than one record (at most 4 GiB) holds.
    RecordTooLarge { len: usize },
    /// An incarnation of 0, which no topic has.
    ZeroIncarnation,
}

/// Why the bytes at a position are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// The record (or its header) runs past the end of the bytes.
    Truncated,
    /// `len` is smaller than a record header.
    BadLength(u32),
    BadChecksum,
    /// A valid record, but not the next one.
    BadSequence {
        expected: u64,
        found: u64,
    },
    /// Flag bits this version does not know.
    BadFlags(u32),
    /// The entries do not fill `len` exactly, a topic is not UTF-8, or an incarnation is 0.
    BadEntries,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Truncated => write!(f, "the record is cut short"),
            RecordError::BadLength(len) => write!(f, "impossible record length {len}"),
            RecordError::BadChecksum => write!(f, "record checksum mismatch"),
            RecordError::BadSequence { expected, found } => {
                write!(f, "record sequence {found} where {expected} was expected")
            }
            RecordError::BadFlags(flags) => write!(f, "unknown record flags {flags:#x}"),
            RecordError::BadEntries => write!(f, "record entries do not match its length"),
        }
    }
}

/// Where and why decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// End of the bytes, or nothing but zeros after the last valid record.
    Clean,
    /// An invalid record with no valid record after it.
    TornTail { error: RecordError },
    /// An invalid record followed by a valid one at byte position `next_valid`.
    Corrupt {
        error: RecordError,
        next_valid: usize,
    },
}

/// The valid records of an offsets file, in order, and where they end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub records: Vec<CommitRecord>,
    /// Bytes taken by `records`: where decoding stopped.
    pub valid_len: usize,
    pub stop: Stop,
}

/// Encodes the header of an offsets file whose first record has `first_sequence`.
pub(crate) fn encode_header(first_sequence: u64) -> [u8; SMALL_HEADER_LEN] {
    file_header::encode_small(OFFSETS_MAGIC, first_sequence)
}

/// Encodes one record. Entries are `(topic, partition, incarnation, offset)`.
pub(crate) fn encode_record(
    sequence: u64,
    snapshot: bool,
    entries: &[EntryRef<'_>],
) -> Result<Vec<u8>, EncodeError> {
    let mut len = RECORD_HEADER_LEN;
    for (topic, _, incarnation, _) in entries {
        if u16::try_from(topic.len()).is_err() {
            return Err(EncodeError::TopicTooLong { len: topic.len() });
        }
        if *incarnation == 0 {
            return Err(EncodeError::ZeroIncarnation);
        }
        len = len.saturating_add(ENTRY_FIXED_LEN + topic.len());
    }
    let too_large = EncodeError::RecordTooLarge { len };
    let len_field = u32::try_from(len).map_err(|_| too_large)?;
    let count = u32::try_from(entries.len()).map_err(|_| too_large)?;
    let mut out = vec![0u8; len];
    let mut w = Writer::new(&mut out);
    w.skip(LEN_POS);
    w.u32(len_field);
    w.u64(sequence);
    w.u32(count);
    w.u32(if snapshot { FLAG_SNAPSHOT } else { 0 });
    for (topic, partition, incarnation, offset) in entries {
        w.u16(u16::try_from(topic.len()).unwrap_or(u16::MAX));
        w.bytes(topic.as_bytes());
        w.u32(*partition);
        w.u64(*incarnation);
        w.u64(*offset);
    }
    assert!(
        !w.overflowed() && w.position() == len,
        "offset commit record sized wrongly"
    );
    let crc = crc32c::crc32c(out.get(LEN_POS..).unwrap_or_default());
    if let Some(slot) = out.get_mut(CRC_POS..LEN_POS) {
        slot.copy_from_slice(&crc.to_le_bytes());
    }
    Ok(out)
}

/// Decodes the records of an offsets file: `bytes` are the bytes after the header. With
/// `first_sequence` (from a valid header) the first record must carry it; without (the header
/// is damaged) the first valid record sets it.
pub(crate) fn decode_records(bytes: &[u8], first_sequence: Option<u64>) -> Decoded {
    let mut records = Vec::new();
    let mut at = 0;
    let mut expected = first_sequence;
    let error = loop {
        if at >= bytes.len() {
            return Decoded {
                records,
                valid_len: at,
                stop: Stop::Clean,
            };
        }
        match decode_record_at(bytes, at) {
            Ok((record, len)) if expected.is_none_or(|e| e == record.sequence) => {
                expected = Some(record.sequence.wrapping_add(1));
                at += len;
                records.push(record);
            }
            Ok((record, _)) => {
                break RecordError::BadSequence {
                    expected: expected.unwrap_or_default(),
                    found: record.sequence,
                };
            }
            Err(error) => break error,
        }
    };
    Decoded {
        records,
        valid_len: at,
        stop: classify_stop(bytes, at, expected, error),
    }
}

/// Tells a torn tail from zeroed space and from corruption, for an invalid record at `at`.
fn classify_stop(bytes: &[u8], at: usize, expected: Option<u64>, error: RecordError) -> Stop {
    let rest = bytes.get(at..).unwrap_or_default();
    if rest.iter().all(|&b| b == 0) {
        return Stop::Clean;
    }
    match find_next_valid(bytes, at, expected) {
        Some(next_valid) => Stop::Corrupt { error, next_valid },
        None => Stop::TornTail { error },
    }
}

/// The first position at or after `from` holding a valid record whose sequence is `expected`
/// or later (any sequence if `expected` is unknown). Sequences further ahead than the bytes
/// left could hold records are not candidates, so a random match is even less likely than
/// the CRC alone makes it; the cheap length and sequence checks run before the CRC.
fn find_next_valid(bytes: &[u8], from: usize, expected: Option<u64>) -> Option<usize> {
    let left = bytes.len().saturating_sub(from);
    let max_gap = u64::try_from(left / RECORD_HEADER_LEN).unwrap_or(u64::MAX);
    let last_start = bytes.len().checked_sub(RECORD_HEADER_LEN)?;
    (from..=last_start).find(|&at| {
        let Some(candidate) = bytes.get(at..) else {
            return false;
        };
        let mut r = Reader::new(candidate);
        let (Some(_crc), Some(len), Some(sequence)) = (r.u32(), r.u32(), r.u64()) else {
            return false;
        };
        let fits = usize::try_from(len)
            .is_ok_and(|len| len >= RECORD_HEADER_LEN && len <= candidate.len());
        fits && expected.is_none_or(|e| sequence.wrapping_sub(e) <= max_gap)
            && decode_record_at(bytes, at).is_ok()
    })
}

/// Decodes the record starting at `at`; returns it and its length. Checks everything but
/// the sequence number.
fn decode_record_at(bytes: &[u8], at: usize) -> Result<(CommitRecord, usize), RecordError> {
    let rest = bytes.get(at..).ok_or(RecordError::Truncated)?;
    let mut r = Reader::new(rest);
    let (Some(stored_crc), Some(len_field)) = (r.u32(), r.u32()) else {
        return Err(RecordError::Truncated);
    };
    let len = usize::try_from(len_field).map_err(|_| RecordError::BadLength(len_field))?;
    if len < RECORD_HEADER_LEN {
        return Err(RecordError::BadLength(len_field));
    }
    let record = rest.get(..len).ok_or(RecordError::Truncated)?;
    let covered = record.get(LEN_POS..).ok_or(RecordError::Truncated)?;
    if crc32c::crc32c(covered) != stored_crc {
        return Err(RecordError::BadChecksum);
    }
    let mut r = Reader::new(record.get(SEQUENCE_POS..).ok_or(RecordError::Truncated)?);
    let (Some(sequence), Some(count), Some(flags)) = (r.u64(), r.u32(), r.u32()) else {
        return Err(RecordError::Truncated);
    };
    if flags & !KNOWN_FLAGS != 0 {
        return Err(RecordError::BadFlags(flags));
    }
    let entries =
        decode_entries(&mut r, count, len - RECORD_HEADER_LEN).ok_or(RecordError::BadEntries)?;
    let record = CommitRecord {
        sequence,
        snapshot: flags & FLAG_SNAPSHOT != 0,
        entries,
    };
    Ok((record, len))
}

/// Reads `count` entries that must fill the rest of `r` (`body_len` bytes) exactly.
fn decode_entries(r: &mut Reader<'_>, count: u32, body_len: usize) -> Option<Vec<CommitEntry>> {
    let count = usize::try_from(count).ok()?;
    if count > body_len / ENTRY_FIXED_LEN {
        return None;
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let topic_len = usize::from(r.u16()?);
        let topic = std::str::from_utf8(r.bytes(topic_len)?).ok()?.to_owned();
        let partition = r.u32()?;
        let incarnation = r.u64().filter(|&i| i != 0)?;
        let offset = r.u64()?;
        entries.push(CommitEntry {
            topic,
            partition,
            incarnation,
            offset,
        });
    }
    // Nothing may follow the last entry.
    r.u8().is_none().then_some(entries)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(sequence: u64, snapshot: bool, entries: &[EntryRef<'_>]) -> CommitRecord {
        CommitRecord {
            sequence,
            snapshot,
            entries: entries
                .iter()
                .map(|&(topic, partition, incarnation, offset)| CommitEntry {
                    topic: topic.to_owned(),
                    partition,
                    incarnation,
                    offset,
                })
                .collect(),
        }
    }

    /// Whether a record is a snapshot, and its entries.
    type Spec<'a> = (bool, &'a [EntryRef<'a>]);

    /// Four records with sequences 7..=10, concatenated, and their decoded form.
    fn sample() -> (Vec<u8>, Vec<CommitRecord>, Vec<usize>) {
        let specs: [Spec<'_>; 4] = [
            (false, &[("orders", 0, 7, 10), ("orders", 1, 7, 20)]),
            (false, &[("orders", 0, 7, 15)]),
            (true, &[("payments", 3, u64::MAX, 1), ("orders", 1, 7, 25)]),
            (
                false,
                &[
                    ("pay", 0, 1, 99),
                    ("orders", 0, 8, 16),
                    ("é", 4, 1 << 40, 0),
                ],
            ),
        ];
        let mut bytes = Vec::new();
        let mut records = Vec::new();
        let mut ends = Vec::new();
        for (i, (snapshot, entries)) in specs.into_iter().enumerate() {
            let sequence = 7 + i as u64;
            bytes.extend(encode_record(sequence, snapshot, entries).unwrap());
            records.push(record(sequence, snapshot, entries));
            ends.push(bytes.len());
        }
        (bytes, records, ends)
    }

    #[test]
    fn records_round_trip() {
        let (bytes, records, ends) = sample();
        let decoded = decode_records(&bytes, Some(7));
        assert_eq!(decoded.records, records);
        assert_eq!(decoded.valid_len, bytes.len());
        assert_eq!(decoded.stop, Stop::Clean);
        // Without a header the first record sets the sequence.
        assert_eq!(decode_records(&bytes, None).records, records);
        assert_eq!(*ends.last().unwrap(), bytes.len());
        let empty = encode_record(0, true, &[]).unwrap();
        assert_eq!(empty.len(), RECORD_HEADER_LEN);
        assert_eq!(
            decode_records(&empty, Some(0)).records,
            [record(0, true, &[])]
        );
    }

    #[test]
    fn header_carries_the_first_sequence() {
        let header = encode_header(42);
        assert_eq!(file_header::decode_small(&header, OFFSETS_MAGIC), Ok(42));
    }

    #[test]
    fn encode_rejects_what_the_format_cannot_hold() {
        let long = "x".repeat(usize::from(u16::MAX) + 1);
        assert_eq!(
            encode_record(1, false, &[(&long, 0, 1, 0)]),
            Err(EncodeError::TopicTooLong { len: long.len() })
        );
        assert_eq!(
            encode_record(1, false, &[("t", 0, 0, 5)]),
            Err(EncodeError::ZeroIncarnation)
        );
    }

    #[test]
    fn zeroed_space_after_the_records_is_a_clean_end() {
        let (mut bytes, records, _) = sample();
        let len = bytes.len();
        bytes.resize(len + 100, 0);
        let decoded = decode_records(&bytes, Some(7));
        assert_eq!(decoded.records, records);
        assert_eq!(decoded.valid_len, len);
        assert_eq!(decoded.stop, Stop::Clean);
    }

    #[test]
    fn every_truncation_of_the_last_record_is_a_torn_tail() {
        let (bytes, records, ends) = sample();
        for cut in ends[2]..bytes.len() {
            let decoded = decode_records(&bytes[..cut], Some(7));
            assert_eq!(decoded.records, records[..3], "cut {cut}");
            assert_eq!(decoded.valid_len, ends[2]);
            let expected = if cut == ends[2] {
                Stop::Clean
            } else {
                Stop::TornTail {
                    error: RecordError::Truncated,
                }
            };
            assert_eq!(decoded.stop, expected, "cut {cut}");
        }
    }

    #[test]
    fn damage_before_a_valid_record_is_corruption() {
        let (mut bytes, records, ends) = sample();
        bytes[ends[0] + 30] ^= 0x01;
        let decoded = decode_records(&bytes, Some(7));
        assert_eq!(decoded.records, records[..1]);
        assert_eq!(decoded.valid_len, ends[0]);
        assert_eq!(
            decoded.stop,
            Stop::Corrupt {
                error: RecordError::BadChecksum,
                next_valid: ends[1]
            }
        );
    }

    #[test]
    fn a_hole_of_zeros_before_a_valid_record_is_corruption() {
        let (mut bytes, records, ends) = sample();
        bytes[ends[1]..ends[2]].fill(0);
        let decoded = decode_records(&bytes, Some(7));
        assert_eq!(decoded.records, records[..2]);
        assert!(matches!(decoded.stop, Stop::Corrupt { next_valid, .. } if next_valid == ends[2]));
    }

    #[test]
    fn a_valid_record_out_of_sequence_is_rejected() {
        let (bytes, records, ends) = sample();
        let decoded = decode_records(&bytes, Some(6));
        assert!(decoded.records.is_empty());
        assert_eq!(
            decoded.stop,
            Stop::Corrupt {
                error: RecordError::BadSequence {
                    expected: 6,
                    found: 7
                },
                next_valid: 0
            }
        );
        // A stale record (an earlier sequence) after the last one is a torn tail.
        let mut stale = bytes.clone();
        stale.extend_from_slice(&bytes[..ends[0]]);
        let decoded = decode_records(&stale, Some(7));
        assert_eq!(decoded.records, records);
        assert!(matches!(decoded.stop, Stop::TornTail { .. }));
    }

    #[test]
    fn unknown_flags_and_bad_entries_are_rejected_even_with_a_valid_crc() {
        let mut bytes = encode_record(1, false, &[("t", 0, 3, 5)]).unwrap();
        bytes[FLAGS_POS] = 0x80;
        let crc = crc32c::crc32c(&bytes[LEN_POS..]);
        bytes[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_record_at(&bytes, 0).unwrap_err(),
            RecordError::BadFlags(0x80)
        );
        let mut bytes = encode_record(1, false, &[("t", 0, 3, 5)]).unwrap();
        bytes[ENTRY_COUNT_POS] = 2;
        let crc = crc32c::crc32c(&bytes[LEN_POS..]);
        bytes[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_record_at(&bytes, 0).unwrap_err(),
            RecordError::BadEntries
        );
        // An incarnation of 0 (topic `t`: 2 + 1 bytes, then the partition).
        let mut bytes = encode_record(1, false, &[("t", 0, 3, 5)]).unwrap();
        let incarnation = RECORD_HEADER_LEN + 2 + 1 + 4;
        assert_eq!(bytes[incarnation..incarnation + 8], 3u64.to_le_bytes());
        bytes[incarnation] = 0;
        let crc = crc32c::crc32c(&bytes[LEN_POS..]);
        bytes[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_record_at(&bytes, 0).unwrap_err(),
            RecordError::BadEntries
        );
    }

    /// Every single-bit flip of a small file gives a prefix of the true records (never a
    /// changed value); a flip before the last record is reported as corruption.
    #[test]
    fn every_bit_flip_yields_a_prefix_and_is_detected() {
        let (body, records, ends) = sample();
        let mut file = encode_header(7).to_vec();
        file.extend_from_slice(&body);
        for bit in 0..file.len() * 8 {
            let mut damaged = file.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let first = file_header::decode_small(&damaged, OFFSETS_MAGIC).ok();
            let decoded = decode_records(&damaged[SMALL_HEADER_LEN..], first);
            let n = decoded.records.len();
            assert_eq!(decoded.records, records[..n], "bit {bit}");
            let pos = bit / 8;
            if pos < SMALL_HEADER_LEN {
                assert_eq!(first, None, "bit {bit}");
                assert_eq!(n, records.len(), "bit {bit}");
                continue;
            }
            let hit = ends
                .iter()
                .position(|&end| pos - SMALL_HEADER_LEN < end)
                .unwrap();
            assert_eq!(n, hit, "bit {bit}");
            if hit + 1 < records.len() {
                assert!(
                    matches!(decoded.stop, Stop::Corrupt { next_valid, .. } if next_valid == ends[hit]),
                    "bit {bit}: {:?}",
                    decoded.stop
                );
            } else {
                assert_ne!(decoded.stop, Stop::Clean, "bit {bit}");
            }
        }
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            first in proptest::option::of(any::<u64>()),
        ) {
            let decoded = decode_records(&bytes, first);
            prop_assert!(decoded.valid_len <= bytes.len());
        }

        #[test]
        fn damaged_valid_files_never_panic(
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let (mut bytes, records, _) = sample();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            bytes.truncate(cut.index(bytes.len() + 1));
            let decoded = decode_records(&bytes, Some(7));
            let n = decoded.records.len();
            prop_assert_eq!(&decoded.records[..], &records[..n]);
        }
    }
}
