//! Record batches: the unit appended to a segment, checked as a whole by one CRC32C.
//!
//! A batch is a fixed header followed by its records. All integers little-endian.
//!
//! | position | size | field |
//! |---------:|-----:|-------|
//! | 0  | 4 | `crc`: CRC32C of bytes `[4, length)`: every other header field and the records |
//! | 4  | 4 | `length`: bytes of the whole batch, header included |
//! | 8  | 8 | `base_offset`: offset of the first record |
//! | 16 | 1 | `version`: 1 (0 is never valid, so zeroed space is never a batch) |
//! | 17 | 3 | `durable_lag` (24 bits): when the batch was written, every offset below `base_offset - durable_lag` was on stable storage; `0xFFFFFF`: no such claim |
//! | 20 | 4 | `record_count`: at least 1 |
//! | 24 | 8 | `first_timestamp`: ms since the epoch, of the first record |
//! | 32 | 8 | `max_timestamp`: largest record timestamp in the batch |
//! | 40 | … | records |
//!
//! The CRC covers every header field but itself, the base offset and length included, so a
//! batch copied to the wrong place, or a stale batch left in reused space, fails the check
//! against the offset the reader expects. It comes first so that the bytes it covers are
//! contiguous: one CRC pass per batch on the append path. A `length` of 0 marks the end of the
//! written part of a preallocated segment.
//!
//! The durable lag lets recovery tell damage from a torn write. A power loss can keep any
//! subset of the pages written since the last sync, so a torn batch may be followed by valid
//! ones: unsynced data, cut. But a valid batch whose claim covers a damaged one before it was
//! written after that one was synced: the damage hit data that was acknowledged as durable,
//! and is reported. The claim is taken from the durable offset as the writer last saw it, so
//! it never says more than was true (a stale view only says less).
//!
//! Each record (varints are LEB128, see [`super::varint`]):
//!
//! | field | encoding |
//! |-------|----------|
//! | `body_length` | varint: bytes of the record after this field |
//! | `timestamp_delta` | zigzag varint: record timestamp − `first_timestamp` |
//! | `key_length` | varint: 0 = no key, n + 1 = a key of n bytes |
//! | `key` | bytes |
//! | `value_length` | varint |
//! | `value` | bytes |
//! | `header_count` | varint |
//! | headers | per header: name length (varint), name (UTF-8), value length (varint), value |
//!
//! A record's offset is `base_offset` plus its index in the batch.

use std::ops::Range;

use super::cursor::{Reader, Writer};
use super::record::Record;
use super::varint;

/// Bytes of the fixed batch header.
pub(crate) const BATCH_HEADER_LEN: usize = 40;
/// The `durable_lag` of a batch that claims nothing (or lags 16 M records or more).
pub(crate) const NO_DURABLE_CLAIM: u32 = (1 << 24) - 1;
/// Batch format version.
pub(crate) const BATCH_VERSION: u8 = 1;

const CRC_LEN: usize = 4;
const LENGTH_POS: usize = CRC_LEN;
const BASE_OFFSET_POS: usize = LENGTH_POS + 4;
/// Position of the version byte in a batch header.
pub(crate) const VERSION_POS: usize = BASE_OFFSET_POS + 8;
const COUNT_POS: usize = VERSION_POS + 4;
const FIRST_TS_POS: usize = COUNT_POS + 4;
const MAX_TS_POS: usize = FIRST_TS_POS + 8;
const _: () = assert!(MAX_TS_POS + 8 == BATCH_HEADER_LEN);

/// The parsed fixed header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub base_offset: u64,
    pub length: u32,
    pub crc: u32,
    pub record_count: u32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    /// See the layout: at most [`NO_DURABLE_CLAIM`].
    pub durable_lag: u32,
}

impl BatchHeader {
    /// The offset after this batch's last record.
    pub(crate) fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count)
    }

    /// The offset below which everything was durable when this batch was written, if it
    /// says.
    pub(crate) fn durable_claim(&self) -> Option<u64> {
        if self.durable_lag == NO_DURABLE_CLAIM {
            return None;
        }
        self.base_offset.checked_sub(u64::from(self.durable_lag))
    }
}

/// The `durable_lag` of a batch at `base_offset` written while every offset below
/// `durable_offset` was durable.
pub(crate) fn durable_lag(base_offset: u64, durable_offset: u64) -> u32 {
    base_offset
        .checked_sub(durable_offset)
        .and_then(|lag| u32::try_from(lag).ok())
        .map_or(NO_DURABLE_CLAIM, |lag| lag.min(NO_DURABLE_CLAIM))
}

/// Why bytes are not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BatchError {
    /// Fewer bytes than the header or the stated length.
    Truncated,
    /// A zero length: the unwritten (preallocated) part of a segment.
    EndOfData,
    BadLength(u32),
    BadVersion(u8),
    BadRecordCount,
    BadCrc {
        stored: u32,
        computed: u32,
    },
    /// The batch is valid in itself but not the one expected here.
    UnexpectedOffset {
        expected: u64,
        found: u64,
    },
    BadRecord(&'static str),
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Truncated => write!(f, "batch is cut short"),
            BatchError::EndOfData => write!(f, "zeroed space where a batch was expected"),
            BatchError::BadLength(len) => write!(f, "impossible batch length {len}"),
            BatchError::BadVersion(v) => write!(f, "unknown batch version {v}"),
            BatchError::BadRecordCount => write!(f, "record count does not match the records"),
            BatchError::BadCrc { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            BatchError::UnexpectedOffset { expected, found } => {
                write!(
                    f,
                    "batch has base offset {found} where offset {expected} was expected"
                )
            }
            BatchError::BadRecord(what) => write!(f, "malformed record: {what}"),
        }
    }
}

/// Encoded length of `record` (its length prefix included) when its timestamp is
/// `timestamp_delta` from the batch's first timestamp.
pub(crate) fn record_len(record: &Record, timestamp_delta: i64) -> usize {
    let body = record_body_len(record, timestamp_delta);
    varint::encoded_len(body as u64) + body
}

fn record_body_len(record: &Record, timestamp_delta: i64) -> usize {
    let key_field = match &record.key {
        Some(key) => varint::encoded_len(key.len() as u64 + 1) + key.len(),
        None => 1,
    };
    let headers: usize = record
        .headers
        .iter()
        .map(|h| {
            varint::encoded_len(h.key.len() as u64)
                + h.key.len()
                + varint::encoded_len(h.value.len() as u64)
                + h.value.len()
        })
        .sum();
    varint::encoded_len(varint::zigzag(timestamp_delta))
        + key_field
        + varint::encoded_len(record.payload.len() as u64)
        + record.payload.len()
        + varint::encoded_len(record.headers.len() as u64)
        + headers
}

/// The largest batch a single record of `max_message_bytes` can produce.
pub(crate) fn max_batch_len_for_record(max_message_bytes: u32) -> u64 {
    BATCH_HEADER_LEN as u64 + u64::from(max_message_bytes)
}

/// Plans a batch: the timestamps each record gets and the total length.
#[derive(Debug, Clone)]
pub(crate) struct BatchPlan {
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub length: usize,
}

/// The timestamp `record` is stored with when appended at `now`.
#[inline]
pub(crate) fn effective_timestamp(record: &Record, now: i64) -> i64 {
    record
        .timestamp
        .map_or(now, crate::clock::Timestamp::as_millis)
}

/// Computes the length and timestamps of a batch of `records` appended at `now`.
#[cfg(test)]
pub(crate) fn plan_batch(records: &[&Record], now: i64) -> BatchPlan {
    plan_prefix(records, now, usize::MAX).1
}

/// Plans one batch holding the longest prefix of `records` that fits in `limit` bytes;
/// returns how many records it holds (0 if not even the first fits) and the plan.
pub(crate) fn plan_prefix(records: &[&Record], now: i64, limit: usize) -> (usize, BatchPlan) {
    let first_timestamp = records.first().map_or(now, |r| effective_timestamp(r, now));
    let mut plan = BatchPlan {
        first_timestamp,
        max_timestamp: first_timestamp,
        length: BATCH_HEADER_LEN,
    };
    for (i, record) in records.iter().enumerate() {
        let ts = effective_timestamp(record, now);
        let length = plan.length + record_len(record, ts.wrapping_sub(first_timestamp));
        if length > limit {
            return (i, plan);
        }
        plan.length = length;
        plan.max_timestamp = plan.max_timestamp.max(ts);
    }
    (records.len(), plan)
}

/// Encodes `records` as one batch into `dst`, which must be exactly `plan.length` bytes, with
/// `durable_lag` ([`durable_lag`]). Returns `false` (with `dst` in an unspecified state) only
/// if `dst` has the wrong size.
pub(crate) fn encode_batch(
    dst: &mut [u8],
    base_offset: u64,
    records: &[&Record],
    plan: &BatchPlan,
    now: i64,
    durable_lag: u32,
) -> bool {
    let Ok(length) = u32::try_from(plan.length) else {
        return false;
    };
    let Ok(count) = u32::try_from(records.len()) else {
        return false;
    };
    if dst.len() != plan.length || count == 0 {
        return false;
    }
    // The fixed header is built in a stack array (its bounds checks fold away) and copied once.
    let mut header = [0u8; BATCH_HEADER_LEN];
    let mut w = Writer::new(&mut header);
    w.skip(CRC_LEN);
    w.u32(length);
    w.u64(base_offset);
    w.u8(BATCH_VERSION);
    let lag = durable_lag.min(NO_DURABLE_CLAIM).to_le_bytes();
    w.bytes(lag.get(..3).unwrap_or_default());
    w.u32(count);
    w.i64(plan.first_timestamp);
    w.i64(plan.max_timestamp);
    let (head, body) = dst.split_at_mut(BATCH_HEADER_LEN.min(dst.len()));
    head.copy_from_slice(&header);
    let mut w = Writer::new(body);
    for record in records {
        let delta = effective_timestamp(record, now).wrapping_sub(plan.first_timestamp);
        encode_record(&mut w, record, delta);
    }
    if w.overflowed() || w.position() + BATCH_HEADER_LEN != plan.length {
        return false;
    }
    let crc = batch_crc(dst);
    match dst.get_mut(..CRC_LEN) {
        Some(slot) => {
            slot.copy_from_slice(&crc.to_le_bytes());
            true
        }
        None => false,
    }
}

fn encode_record(w: &mut Writer<'_>, record: &Record, timestamp_delta: i64) {
    w.varint(record_body_len(record, timestamp_delta) as u64);
    w.varint(varint::zigzag(timestamp_delta));
    match &record.key {
        Some(key) => {
            w.varint(key.len() as u64 + 1);
            w.bytes(key);
        }
        None => w.varint(0),
    }
    w.varint(record.payload.len() as u64);
    w.bytes(&record.payload);
    w.varint(record.headers.len() as u64);
    for header in &record.headers {
        w.varint(header.key.len() as u64);
        w.bytes(header.key.as_bytes());
        w.varint(header.value.len() as u64);
        w.bytes(&header.value);
    }
}

/// CRC32C of a whole batch (`batch.len()` = its length) after the CRC field.
#[inline]
pub(crate) fn batch_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(CRC_LEN..).unwrap_or_default())
}

/// Parses and checks the fixed header at the front of `bytes` (which may extend past the
/// batch). Does not check the CRC.
pub(crate) fn parse_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let mut r = Reader::new(bytes);
    let (Some(crc), Some(length), Some(base_offset)) = (r.u32(), r.u32(), r.u64()) else {
        return Err(BatchError::Truncated);
    };
    if length == 0 {
        return Err(BatchError::EndOfData);
    }
    let (Some(version), Some(lag), Some(record_count)) = (r.u8(), r.array::<3>(), r.u32()) else {
        return Err(BatchError::Truncated);
    };
    let (Some(first_timestamp), Some(max_timestamp)) = (r.i64(), r.i64()) else {
        return Err(BatchError::Truncated);
    };
    if version != BATCH_VERSION {
        return Err(BatchError::BadVersion(version));
    }
    if record_count == 0 {
        return Err(BatchError::BadRecordCount);
    }
    // Every record takes at least 5 bytes (length, delta, key, value length, header count).
    if u64::from(length) < BATCH_HEADER_LEN as u64 + 5 * u64::from(record_count) {
        return Err(BatchError::BadLength(length));
    }
    let [l0, l1, l2] = lag;
    Ok(BatchHeader {
        base_offset,
        length,
        crc,
        record_count,
        first_timestamp,
        max_timestamp,
        durable_lag: u32::from_le_bytes([l0, l1, l2, 0]),
    })
}

/// Checks the CRC of a batch whose header was already parsed from the front of `bytes`;
/// returns the batch's bytes.
#[inline]
pub(crate) fn verify_batch<'a>(
    bytes: &'a [u8],
    header: &BatchHeader,
) -> Result<&'a [u8], BatchError> {
    let batch = bytes
        .get(..header.length as usize)
        .ok_or(BatchError::Truncated)?;
    let computed = batch_crc(batch);
    if computed == header.crc {
        Ok(batch)
    } else {
        Err(BatchError::BadCrc {
            stored: header.crc,
            computed,
        })
    }
}

/// Parses the header at the front of `bytes`, checks that the batch is the one expected at
/// `expected_offset`, that it is complete within `bytes`, and that its CRC matches. Returns
/// the header and the batch's bytes.
pub(crate) fn check_batch(
    bytes: &[u8],
    expected_offset: u64,
) -> Result<(BatchHeader, &[u8]), BatchError> {
    let header = parse_header(bytes)?;
    let batch = bytes
        .get(..header.length as usize)
        .ok_or(BatchError::Truncated)?;
    let computed = batch_crc(batch);
    if computed != header.crc {
        return Err(BatchError::BadCrc {
            stored: header.crc,
            computed,
        });
    }
    if header.base_offset != expected_offset {
        return Err(BatchError::UnexpectedOffset {
            expected: expected_offset,
            found: header.base_offset,
        });
    }
    Ok((header, batch))
}

/// Where one record's parts lie, as byte ranges relative to the start of its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordSpan {
    /// Index of the record in its batch (offset − base offset).
    pub index: u32,
    pub timestamp: i64,
    pub key: Option<Range<u32>>,
    pub value: Range<u32>,
    /// The encoded headers (all of them, back to back).
    pub headers: Range<u32>,
    pub header_count: u32,
}

/// Decodes every record of a checked batch, calling `f` for each; checks the record structure
/// completely (lengths, count, UTF-8 header names), so accessors on the spans cannot fail.
pub(crate) fn decode_records(
    batch: &[u8],
    header: &BatchHeader,
    mut f: impl FnMut(RecordSpan),
) -> Result<(), BatchError> {
    if batch.len() < BATCH_HEADER_LEN || u32::try_from(batch.len()).is_err() {
        return Err(BatchError::Truncated);
    }
    let mut at = BATCH_HEADER_LEN;
    for index in 0..header.record_count {
        let (span, next) = decode_record(batch, at, index, header.first_timestamp)?;
        f(span);
        at = next;
    }
    if at != batch.len() {
        return Err(BatchError::BadRecordCount);
    }
    Ok(())
}

const SHORT: BatchError = BatchError::BadRecord("field runs past the record");

/// A forward cursor over `bytes[pos..end]` reading varints and skipping fields; positions stay
/// absolute within the batch. This is the hot loop of every read, so single-byte varints (all
/// lengths under 128) take a fast path.
struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
}

impl Fields<'_> {
    // `inline(always)`: the compiler kept this out of line; inlined into `decode_record`, a
    // probe polling 100 B records went from about 13 to 17.5 M/s (noisy machine; see the
    // consume benchmark for the criterion figure).
    #[expect(clippy::inline_always, reason = "measured on the read hot path")]
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, BatchError> {
        if self.pos < self.end {
            if let Some(&byte) = self.bytes.get(self.pos) {
                if byte < 0x80 {
                    self.pos += 1;
                    return Ok(u64::from(byte));
                }
            }
        }
        let rest = self.bytes.get(self.pos..self.end).ok_or(SHORT)?;
        let (value, len) = varint::decode(rest).ok_or(SHORT)?;
        self.pos += len;
        Ok(value)
    }

    /// Skips `len` bytes, returning their range.
    #[inline]
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a batch is at most u32::MAX bytes"
    )]
    fn take(&mut self, len: u64) -> Result<Range<u32>, BatchError> {
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .ok_or(SHORT)?;
        if end > self.end {
            return Err(SHORT);
        }
        self.pos = end;
        Ok(start as u32..end as u32)
    }
}

fn decode_record(
    batch: &[u8],
    at: usize,
    index: u32,
    first_ts: i64,
) -> Result<(RecordSpan, usize), BatchError> {
    let mut outer = Fields {
        bytes: batch,
        pos: at,
        end: batch.len(),
    };
    let body_len = outer.varint()?;
    let body = outer.take(body_len)?;
    let mut b = Fields {
        bytes: batch,
        pos: body.start as usize,
        end: body.end as usize,
    };
    let delta = varint::unzigzag(b.varint()?);
    let key = match b.varint()? {
        0 => None,
        n => Some(b.take(n - 1)?),
    };
    let value_len = b.varint()?;
    let value = b.take(value_len)?;
    let header_count = u32::try_from(b.varint()?).map_err(|_| SHORT)?;
    let headers_start = b.take(0)?.start;
    for _ in 0..header_count {
        let name_len = b.varint()?;
        let name = b.take(name_len)?;
        let name = batch
            .get(name.start as usize..name.end as usize)
            .ok_or(SHORT)?;
        std::str::from_utf8(name).map_err(|_| BatchError::BadRecord("header name is not UTF-8"))?;
        let value_len = b.varint()?;
        b.take(value_len)?;
    }
    if b.pos != b.end {
        return Err(BatchError::BadRecord("trailing bytes in record"));
    }
    let span = RecordSpan {
        index,
        timestamp: first_ts.wrapping_add(delta),
        key,
        value,
        headers: headers_start..body.end,
        header_count,
    };
    Ok((span, body.end as usize))
}

/// Iterates over encoded headers (as produced by [`decode_records`], which checked them).
#[derive(Debug, Clone)]
pub(crate) struct HeaderIter<'a> {
    reader: Reader<'a>,
    remaining: u32,
}

impl<'a> HeaderIter<'a> {
    pub(crate) fn new(encoded: &'a [u8], count: u32) -> Self {
        HeaderIter {
            reader: Reader::new(encoded),
            remaining: count,
        }
    }
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let name_len = usize::try_from(self.reader.varint()?).ok()?;
        let name = std::str::from_utf8(self.reader.bytes(name_len)?).ok()?;
        let value_len = usize::try_from(self.reader.varint()?).ok()?;
        let value = self.reader.bytes(value_len)?;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use proptest::prelude::*;

    fn encode(records: &[Record], base: u64, now: i64) -> Vec<u8> {
        let refs: Vec<&Record> = records.iter().collect();
        let plan = plan_batch(&refs, now);
        let mut buf = vec![0u8; plan.length];
        assert!(encode_batch(&mut buf, base, &refs, &plan, now, 7));
        buf
    }

    fn decode(batch: &[u8], base: u64) -> Vec<RecordSpan> {
        let (header, batch) = check_batch(batch, base).expect("valid batch");
        let mut spans = Vec::new();
        decode_records(batch, &header, |s| spans.push(s)).expect("valid records");
        spans
    }

    #[test]
    fn round_trips_key_value_headers_and_timestamps() {
        let records = vec![
            Record::new("t", "v1")
                .key("k1")
                .header("h", "x")
                .header("h2", ""),
            Record::new("t", "").timestamp(Timestamp::from_millis(5)),
            Record::new("t", vec![7u8; 300]),
        ];
        let batch = encode(&records, 42, 1_000);
        let header = parse_header(&batch).unwrap();
        assert_eq!(header.base_offset, 42);
        assert_eq!(header.record_count, 3);
        assert_eq!(header.first_timestamp, 1_000);
        assert_eq!(header.max_timestamp, 1_000);
        let spans = decode(&batch, 42);
        let slice = |r: &Range<u32>| &batch[r.start as usize..r.end as usize];
        assert_eq!(slice(spans[0].key.as_ref().unwrap()), b"k1");
        assert_eq!(slice(&spans[0].value), b"v1");
        let headers: Vec<_> =
            HeaderIter::new(slice(&spans[0].headers), spans[0].header_count).collect();
        assert_eq!(headers, vec![("h", &b"x"[..]), ("h2", &b""[..])]);
        assert_eq!(spans[1].timestamp, 5);
        assert_eq!(spans[1].key, None);
        assert_eq!(slice(&spans[2].value), &[7u8; 300][..]);
        assert_eq!(spans[2].index, 2);
    }

    #[test]
    fn zeros_are_end_of_data_not_a_batch() {
        assert_eq!(parse_header(&[0u8; 64]), Err(BatchError::EndOfData));
    }

    #[test]
    fn crc_covers_base_offset_and_length() {
        let batch = encode(&[Record::new("t", "payload")], 7, 1);
        // Expecting another offset is caught even though the batch is intact.
        assert_eq!(
            check_batch(&batch, 8).map(|_| ()),
            Err(BatchError::UnexpectedOffset {
                expected: 8,
                found: 7
            })
        );
        // Rewriting the base offset (a misplaced copy) breaks the CRC.
        let mut moved = batch.clone();
        moved[8..16].copy_from_slice(&8u64.to_le_bytes());
        assert!(matches!(
            check_batch(&moved, 8),
            Err(BatchError::BadCrc { .. })
        ));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let batch = encode(&[Record::new("t", "abc").key("k").header("n", "v")], 3, 99);
        for bit in 0..batch.len() * 8 {
            let mut damaged = batch.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                check_batch(&damaged, 3).is_err(),
                "flip of bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn truncation_is_reported() {
        let batch = encode(&[Record::new("t", "abc")], 0, 0);
        for len in 0..batch.len() {
            assert!(check_batch(&batch[..len], 0).is_err(), "cut at {len}");
        }
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(header) = parse_header(&bytes) {
                if let Some(batch) = bytes.get(..header.length as usize) {
                    let _ = decode_records(batch, &header, |_| {});
                }
            }
        }

        #[test]
        fn encoded_records_decode_to_what_was_written(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8),
            ts in proptest::collection::vec(any::<i64>(), 8),
        ) {
            let records: Vec<Record> = payloads.iter().zip(&ts)
                .map(|(p, t)| Record::new("t", p.clone()).timestamp(Timestamp::from_millis(*t)))
                .collect();
            let batch = encode(&records, 1, 0);
            let spans = decode(&batch, 1);
            prop_assert_eq!(spans.len(), records.len());
            for (span, (payload, t)) in spans.iter().zip(payloads.iter().zip(&ts)) {
                prop_assert_eq!(&batch[span.value.start as usize..span.value.end as usize], &payload[..]);
                prop_assert_eq!(span.timestamp, *t);
            }
        }
    }
}
