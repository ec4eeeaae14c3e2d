//! Record batches: the unit appended to a segment, checked as a whole by one CRC32C.
//!
//! A batch is a header followed by its records. Fixed-width integers are little-endian;
//! varints are LEB128 (see [`super::varint`]), zigzag where a field can be negative.
//!
//! | position | size | field |
//! |---------:|-----:|-------|
//! | 0  | 4 | `crc`: CRC32C of bytes `[4, length)`: every other header field and the records |
//! | 4  | 4 | `length`: bytes of the whole batch, header included |
//! | 8  | 4 | `offset_delta`: offset of the first record − the segment's base offset |
//! | 12 | 1 | `version`: 2 (0 is never valid, so zeroed space is never a batch; 1 was wharf 0.1's) |
//! | 13 | 1 | `attributes`, see below |
//! | 14 | 3 | `durable_lag` (24 bits): when the batch was written, every offset below `base_offset - durable_lag` was on stable storage; `0xFFFFFF`: no such claim |
//! | 17 | varint | `record_count − 1` |
//! | … | zigzag varint | `first_timestamp`: ms since the epoch, of the first record |
//! | … | varint | `max_timestamp − first_timestamp` (wrapping, as u64): the largest record timestamp |
//! | … | varint ×3 | only with the `producer` attribute: `producer_id`, `producer_epoch` (≤ u16), `base_sequence` (≤ u32): the idempotent producer's stamp of the first record |
//! | … | … | records |
//!
//! Attributes (bits of byte 13):
//!
//! | bits | meaning |
//! |-----:|---------|
//! | 0-2 | compression codec of the records section: 0 none (the only one this version writes or reads) |
//! | 3 | `transactional`: the records belong to a transaction (not written by this version) |
//! | 4 | `control`: the batch holds a transaction marker, not user records (not written by this version) |
//! | 5 | `producer`: the producer stamp fields are present |
//! | 6 | `no_keys`: no record has a key; records omit the key field |
//! | 7 | `no_headers`: no record has headers; records omit the value length and header count |
//!
//! A reader that finds a codec, `transactional` or `control` it does not support refuses the
//! batch ([`BatchError::Unsupported`]) rather than deliver what it cannot interpret.
//!
//! The CRC covers every header field but itself, the offset and length included, so a batch
//! copied to the wrong place, or a stale batch left in reused space, fails the check against
//! the offset the reader expects. It comes first so that the bytes it covers are contiguous:
//! one CRC pass per batch on the append path. A `length` of 0 marks the end of the written
//! part of a preallocated segment. The offset is stored relative to the segment (which
//! names its base offset in its file name and header): a segment never holds more records
//! than bytes, and segments are smaller than 2 GiB, so it fits 32 bits.
//!
//! The durable lag lets recovery tell damage from a torn write. A power loss can keep any
//! subset of the pages written since the last sync, so a torn batch may be followed by valid
//! ones: unsynced data, cut. But a valid batch whose claim covers a damaged one before it was
//! written after that one was synced: the damage hit data that was acknowledged as durable,
//! and is reported. The claim is taken from the durable offset as the writer last saw it, so
//! it never says more than was true (a stale view only says less).
//!
//! Each record:
//!
//! | field | encoding |
//! |-------|----------|
//! | `body_length` | varint: bytes of the record after this field |
//! | `timestamp_delta` | zigzag varint: record timestamp − `first_timestamp` |
//! | `key_length` | absent with `no_keys`; else varint: 0 = no key, n + 1 = a key of n bytes |
//! | `key` | bytes |
//! | `value_length` | absent with `no_headers` (the value is the rest of the body); else varint |
//! | `value` | bytes |
//! | `header_count` | absent with `no_headers`; else varint |
//! | headers | per header: name length (varint), name (UTF-8), value length (varint), value |
//!
//! A record's offset is `base_offset` plus its index in the batch.
//!
//! What a record costs: a keyless 100 B record without headers takes 102 B in a batch of
//! many (2 B of framing), and a batch of one such record 127 B (a 25 B header at today's
//! timestamps, whose zigzag varint takes 6 bytes).

use super::cursor::{Reader, Writer};
use super::record::RecordRef;
use super::varint;

/// Bytes of the fixed part of a batch header (before its varints).
const FIXED_HEADER_LEN: usize = 17;
/// Fewest bytes a batch header takes (every varint one byte).
pub(crate) const MIN_HEADER_LEN: usize = FIXED_HEADER_LEN + 3;
/// Most bytes a batch header takes (every varint at its longest).
pub(crate) const MAX_HEADER_LEN: usize = FIXED_HEADER_LEN + 5 + 10 + 10 + 10 + 3 + 5;
/// Fewest bytes a record takes inside a batch (a body length and a timestamp delta).
const MIN_RECORD_LEN: usize = 2;
/// Fewest bytes a batch takes.
pub(crate) const MIN_BATCH_LEN: usize = MIN_HEADER_LEN + MIN_RECORD_LEN;
/// The `durable_lag` of a batch that claims nothing (or lags 16 M records or more).
pub(crate) const NO_DURABLE_CLAIM: u32 = (1 << 24) - 1;
/// Batch format version.
pub(crate) const BATCH_VERSION: u8 = 2;

const CRC_LEN: usize = 4;
const LENGTH_POS: usize = CRC_LEN;
const OFFSET_DELTA_POS: usize = LENGTH_POS + 4;
/// Position of the version byte in a batch header.
pub(crate) const VERSION_POS: usize = OFFSET_DELTA_POS + 4;
const _: () = assert!(VERSION_POS + 1 + 1 + 3 == FIXED_HEADER_LEN);

/// The attribute bits (see the module docs).
mod attr {
    pub const CODEC_MASK: u8 = 0b0000_0111;
    pub const TRANSACTIONAL: u8 = 1 << 3;
    pub const CONTROL: u8 = 1 << 4;
    pub const PRODUCER: u8 = 1 << 5;
    pub const NO_KEYS: u8 = 1 << 6;
    pub const NO_HEADERS: u8 = 1 << 7;
}

/// An idempotent producer's stamp on a batch: who wrote it, and the sequence number of its
/// first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerStamp {
    pub producer_id: u64,
    pub producer_epoch: u16,
    pub base_sequence: u32,
}

/// How the records of a batch are laid out: which optional record fields they all omit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RecordLayout {
    no_keys: bool,
    no_headers: bool,
}

impl RecordLayout {
    /// The most compact layout that holds every one of `records`.
    pub(crate) fn for_records(records: &[RecordRef<'_>]) -> Self {
        RecordLayout {
            no_keys: records.iter().all(|r| r.key.is_none()),
            no_headers: records.iter().all(|r| r.headers.is_empty()),
        }
    }

    /// The layout with every field: what `Record::encoded_len` measures.
    const FULL: RecordLayout = RecordLayout {
        no_keys: false,
        no_headers: false,
    };

    fn bits(self) -> u8 {
        (if self.no_keys { attr::NO_KEYS } else { 0 })
            | (if self.no_headers { attr::NO_HEADERS } else { 0 })
    }

    /// Whether no record has a key (records omit the key field).
    #[inline]
    pub(crate) fn no_keys(self) -> bool {
        self.no_keys
    }

    /// Whether no record has headers (records omit the value length and header count).
    #[inline]
    pub(crate) fn no_headers(self) -> bool {
        self.no_headers
    }

    /// A layout with the given omissions.
    #[cfg(test)]
    pub(crate) fn with(no_keys: bool, no_headers: bool) -> Self {
        RecordLayout {
            no_keys,
            no_headers,
        }
    }

    fn from_bits(attributes: u8) -> Self {
        RecordLayout {
            no_keys: attributes & attr::NO_KEYS != 0,
            no_headers: attributes & attr::NO_HEADERS != 0,
        }
    }
}

/// The parsed header of a batch.
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
    /// Bytes of the header: the records start here.
    pub header_len: u32,
    /// The idempotent producer's stamp, if the batch has one.
    pub producer: Option<ProducerStamp>,
    layout: RecordLayout,
}

impl BatchHeader {
    /// How the batch's records are laid out.
    #[inline]
    pub(crate) fn layout(&self) -> RecordLayout {
        self.layout
    }

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
    BadHeader(&'static str),
    /// A valid batch using a feature this version does not read.
    Unsupported(&'static str),
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Truncated => write!(f, "batch is cut short"),
            BatchError::EndOfData => write!(f, "zeroed space where a batch was expected"),
            BatchError::BadLength(len) => write!(f, "impossible batch length {len}"),
            BatchError::BadVersion(1) => write!(
                f,
                "batch format 1 (wharf 0.1) is not read by this version, which reads format {BATCH_VERSION}"
            ),
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
            BatchError::BadHeader(what) => write!(f, "malformed batch header: {what}"),
            BatchError::Unsupported(what) => {
                write!(f, "the batch uses {what}, which this version does not read")
            }
        }
    }
}

/// Encoded length of `record` in the full layout (every field present; its length prefix
/// included) when its timestamp is `timestamp_delta` from the batch's first timestamp: an
/// upper bound of its length in any batch.
pub(crate) fn record_len(record: &RecordRef<'_>, timestamp_delta: i64) -> usize {
    record_len_in(record, timestamp_delta, RecordLayout::FULL)
}

fn record_len_in(record: &RecordRef<'_>, timestamp_delta: i64, layout: RecordLayout) -> usize {
    let body = record_body_len(record, timestamp_delta, layout);
    varint::encoded_len(body as u64) + body
}

fn record_body_len(record: &RecordRef<'_>, timestamp_delta: i64, layout: RecordLayout) -> usize {
    let key_field = match &record.key {
        _ if layout.no_keys => 0,
        Some(key) => varint::encoded_len(key.len() as u64 + 1) + key.len(),
        None => 1,
    };
    let framing = if layout.no_headers {
        0
    } else {
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
        varint::encoded_len(record.payload.len() as u64)
            + varint::encoded_len(record.headers.len() as u64)
            + headers
    };
    varint::encoded_len(varint::zigzag(timestamp_delta))
        + key_field
        + record.payload.len()
        + framing
}

/// The largest batch a single record of `max_message_bytes` can produce.
pub(crate) fn max_batch_len_for_record(max_message_bytes: u32) -> u64 {
    MAX_HEADER_LEN as u64 + u64::from(max_message_bytes)
}

/// Plans a batch: the timestamps each record gets, its layout and the total length.
#[derive(Debug, Clone)]
pub(crate) struct BatchPlan {
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub length: usize,
    layout: RecordLayout,
    producer: Option<ProducerStamp>,
}

impl BatchPlan {
    /// Header length of a batch of `record_count` records with this plan's timestamps.
    fn header_len(&self, record_count: usize) -> usize {
        header_len(
            record_count,
            self.first_timestamp,
            self.max_timestamp,
            self.producer.as_ref(),
        )
    }
}

#[cfg(test)]
impl BatchPlan {
    /// This plan with the producer stamp `stamp` (its length grows by the stamp's).
    fn stamped(mut self, stamp: ProducerStamp, record_count: usize) -> Self {
        let before = self.header_len(record_count);
        self.producer = Some(stamp);
        self.length += self.header_len(record_count) - before;
        self
    }
}

/// `max − first` as stored in a batch header (max ≥ first; the bits as they are otherwise,
/// undone by `wrapping_add_unsigned`).
fn timestamp_spread(first: i64, max: i64) -> u64 {
    u64::from_le_bytes(max.wrapping_sub(first).to_le_bytes())
}

/// Bytes of the header of a batch with these fields.
fn header_len(
    record_count: usize,
    first_timestamp: i64,
    max_timestamp: i64,
    producer: Option<&ProducerStamp>,
) -> usize {
    let producer = producer.map_or(0, |p| {
        varint::encoded_len(p.producer_id)
            + varint::encoded_len(u64::from(p.producer_epoch))
            + varint::encoded_len(u64::from(p.base_sequence))
    });
    FIXED_HEADER_LEN
        + varint::encoded_len(record_count.saturating_sub(1) as u64)
        + varint::encoded_len(varint::zigzag(first_timestamp))
        + varint::encoded_len(timestamp_spread(first_timestamp, max_timestamp))
        + producer
}

/// The timestamp `record` is stored with when appended at `now`.
#[inline]
pub(crate) fn effective_timestamp(record: &RecordRef<'_>, now: i64) -> i64 {
    record
        .timestamp
        .map_or(now, crate::clock::Timestamp::as_millis)
}

/// Computes the length and timestamps of a batch of `records` appended at `now`.
#[cfg(test)]
pub(crate) fn plan_batch(records: &[RecordRef<'_>], now: i64) -> BatchPlan {
    plan_prefix(records, now, usize::MAX).1
}

/// Plans one batch holding the longest prefix of `records` that fits in `limit` bytes;
/// returns how many records it holds (0 if not even the first fits) and the plan. The
/// layout is the one all of `records` fit (so every prefix fits it too).
pub(crate) fn plan_prefix(records: &[RecordRef<'_>], now: i64, limit: usize) -> (usize, BatchPlan) {
    let first_timestamp = records.first().map_or(now, |r| effective_timestamp(r, now));
    let mut plan = BatchPlan {
        first_timestamp,
        max_timestamp: first_timestamp,
        length: 0,
        layout: RecordLayout::for_records(records),
        producer: None,
    };
    let mut body = 0usize;
    for (i, record) in records.iter().enumerate() {
        let ts = effective_timestamp(record, now);
        let record_len = record_len_in(record, ts.wrapping_sub(first_timestamp), plan.layout);
        let max_timestamp = plan.max_timestamp.max(ts);
        let header_len = header_len(i + 1, first_timestamp, max_timestamp, None);
        let length = header_len + body + record_len;
        if length > limit {
            if i == 0 {
                plan.length = plan.header_len(1);
            }
            return (i, plan);
        }
        body += record_len;
        plan.length = length;
        plan.max_timestamp = max_timestamp;
    }
    (records.len(), plan)
}

/// Encodes `records` as one batch into `dst`, which must be exactly `plan.length` bytes, at
/// `base_offset` in the segment starting at `segment_base`, with `durable_lag`
/// ([`durable_lag`]). Returns `false` (with `dst` in an unspecified state) only if `dst` has
/// the wrong size or the offset does not fit the segment.
pub(crate) fn encode_batch(
    dst: &mut [u8],
    segment_base: u64,
    base_offset: u64,
    records: &[RecordRef<'_>],
    plan: &BatchPlan,
    now: i64,
    durable_lag: u32,
) -> bool {
    let fields = HeaderFields {
        segment_base,
        base_offset,
        record_count: records.len(),
        first_timestamp: plan.first_timestamp,
        max_timestamp: plan.max_timestamp,
        layout: plan.layout,
        producer: plan.producer,
        durable_lag,
    };
    let Some(mut w) = write_header(dst, &fields) else {
        return false;
    };
    for record in records {
        let delta = effective_timestamp(record, now).wrapping_sub(plan.first_timestamp);
        encode_record(&mut w, record, delta, plan.layout);
    }
    if w.overflowed() || w.position() != plan.length {
        return false;
    }
    seal(dst)
}

/// What a batch header says.
struct HeaderFields {
    segment_base: u64,
    base_offset: u64,
    record_count: usize,
    first_timestamp: i64,
    max_timestamp: i64,
    layout: RecordLayout,
    producer: Option<ProducerStamp>,
    durable_lag: u32,
}

/// Writes the header `fields` describe at the front of `dst` (the whole batch, so its length
/// is `dst.len()`); returns a writer positioned after it, or `None` if a field does not fit.
fn write_header<'a>(dst: &'a mut [u8], fields: &HeaderFields) -> Option<Writer<'a>> {
    let length = u32::try_from(dst.len()).ok()?;
    let offset_delta = fields
        .base_offset
        .checked_sub(fields.segment_base)
        .and_then(|d| u32::try_from(d).ok())?;
    let count = u64::try_from(fields.record_count).ok()?.checked_sub(1)?;
    // Built in a stack array, whose bounds checks fold away, and copied once: on every
    // append's path (writing field by field into the mapping cost about 280 instructions per
    // batch, the array and one copy about a third of that).
    let mut header = [0u8; MAX_HEADER_LEN];
    let mut w = Writer::new(&mut header);
    w.skip(CRC_LEN);
    w.u32(length);
    w.u32(offset_delta);
    w.u8(BATCH_VERSION);
    let producer_bit = if fields.producer.is_some() {
        attr::PRODUCER
    } else {
        0
    };
    w.u8(fields.layout.bits() | producer_bit);
    let lag = fields.durable_lag.min(NO_DURABLE_CLAIM).to_le_bytes();
    w.bytes(lag.get(..3).unwrap_or_default());
    w.varint(count);
    w.varint(varint::zigzag(fields.first_timestamp));
    w.varint(timestamp_spread(
        fields.first_timestamp,
        fields.max_timestamp,
    ));
    if let Some(p) = fields.producer {
        w.varint(p.producer_id);
        w.varint(u64::from(p.producer_epoch));
        w.varint(u64::from(p.base_sequence));
    }
    if w.overflowed() {
        return None;
    }
    let header_len = w.position();
    let mut out = Writer::new(dst);
    out.bytes(header.get(..header_len)?);
    (!out.overflowed()).then_some(out)
}

/// Computes the CRC of the batch that fills `dst` and writes it in; `false` if `dst` is too
/// short to be a batch.
fn seal(dst: &mut [u8]) -> bool {
    let crc = batch_crc(dst);
    match dst.get_mut(..CRC_LEN) {
        Some(slot) => {
            slot.copy_from_slice(&crc.to_le_bytes());
            true
        }
        None => false,
    }
}

/// A batch being filled one record at a time (a producer's accumulator): its records are
/// encoded as they come, so appending it is one header, one copy and one CRC. The layout is
/// the first record's (no key, no headers, or both); a record that needs another layout is
/// refused, and the caller starts another batch.
#[derive(Debug)]
pub(crate) struct BatchBuilder {
    body: Vec<u8>,
    record_count: usize,
    first_timestamp: i64,
    max_timestamp: i64,
    layout: RecordLayout,
}

impl BatchBuilder {
    /// An empty batch for records like `first`, with room for `capacity` bytes of records.
    pub(crate) fn new(first: &RecordRef<'_>, now: i64, capacity: usize) -> Self {
        let first_timestamp = effective_timestamp(first, now);
        BatchBuilder {
            body: Vec::with_capacity(capacity),
            record_count: 0,
            first_timestamp,
            max_timestamp: first_timestamp,
            layout: RecordLayout::for_records(&[*first]),
        }
    }

    /// Encodes `record` at the end of the batch if it fits the batch's layout and keeps the
    /// batch within `limit` bytes (a first record always fits); its index in the batch.
    pub(crate) fn push(&mut self, record: &RecordRef<'_>, now: i64, limit: usize) -> Option<usize> {
        let compatible = (record.key.is_none() || !self.layout.no_keys)
            && (record.headers.is_empty() || !self.layout.no_headers);
        if !compatible {
            return None;
        }
        let ts = effective_timestamp(record, now);
        let delta = ts.wrapping_sub(self.first_timestamp);
        // The limit is checked against the longest header, not this batch's exact one: one
        // length computation per record instead of two, for at most 60 bytes left unused.
        if self.layout.no_keys && self.layout.no_headers {
            // The common case, a bare payload, is written without a length pass or zeroing:
            // body length, timestamp delta, payload.
            let mut delta_bytes = [0u8; varint::MAX_LEN];
            let delta_len = varint::encode(varint::zigzag(delta), &mut delta_bytes);
            let body = delta_len + record.payload.len();
            let mut body_len_bytes = [0u8; varint::MAX_LEN];
            let body_len_len = varint::encode(body as u64, &mut body_len_bytes);
            let len = body_len_len + body;
            if self.record_count > 0 && MAX_HEADER_LEN + self.body.len() + len > limit {
                return None;
            }
            self.body
                .extend_from_slice(body_len_bytes.get(..body_len_len).unwrap_or_default());
            self.body
                .extend_from_slice(delta_bytes.get(..delta_len).unwrap_or_default());
            self.body.extend_from_slice(record.payload);
        } else {
            let len = record_len_in(record, delta, self.layout);
            if self.record_count > 0 && MAX_HEADER_LEN + self.body.len() + len > limit {
                return None;
            }
            let at = self.body.len();
            self.body.resize(at + len, 0);
            let mut w = Writer::new(self.body.get_mut(at..).unwrap_or_default());
            encode_record(&mut w, record, delta, self.layout);
        }
        self.max_timestamp = self.max_timestamp.max(ts);
        self.record_count += 1;
        Some(self.record_count - 1)
    }

    pub(crate) fn record_count(&self) -> usize {
        self.record_count
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// The timestamp of the batch's first record.
    pub(crate) fn first_timestamp(&self) -> i64 {
        self.first_timestamp
    }

    /// Bytes of the whole batch.
    pub(crate) fn len(&self) -> usize {
        header_len(
            self.record_count,
            self.first_timestamp,
            self.max_timestamp,
            None,
        ) + self.body.len()
    }
}

/// A batch to append: records to encode with their plan, or a batch already built.
#[derive(Clone, Copy)]
pub(crate) enum BatchSource<'a> {
    Records {
        records: &'a [RecordRef<'a>],
        plan: &'a BatchPlan,
        now: i64,
    },
    Built(&'a BatchBuilder),
}

impl BatchSource<'_> {
    /// Bytes of the batch.
    pub(crate) fn len(&self) -> usize {
        match self {
            BatchSource::Records { plan, .. } => plan.length,
            BatchSource::Built(b) => b.len(),
        }
    }

    pub(crate) fn record_count(&self) -> usize {
        match self {
            BatchSource::Records { records, .. } => records.len(),
            BatchSource::Built(b) => b.record_count,
        }
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        match self {
            BatchSource::Records { plan, .. } => plan.max_timestamp,
            BatchSource::Built(b) => b.max_timestamp,
        }
    }

    /// Encodes the batch into `dst` (exactly [`Self::len`] bytes) at `base_offset` of the
    /// segment starting at `segment_base`; `false` if it does not fit.
    pub(crate) fn encode(
        &self,
        dst: &mut [u8],
        segment_base: u64,
        base_offset: u64,
        durable_lag: u32,
    ) -> bool {
        match *self {
            BatchSource::Records { records, plan, now } => encode_batch(
                dst,
                segment_base,
                base_offset,
                records,
                plan,
                now,
                durable_lag,
            ),
            BatchSource::Built(b) => {
                if dst.len() != b.len() || b.is_empty() {
                    return false;
                }
                let fields = HeaderFields {
                    segment_base,
                    base_offset,
                    record_count: b.record_count,
                    first_timestamp: b.first_timestamp,
                    max_timestamp: b.max_timestamp,
                    layout: b.layout,
                    producer: None,
                    durable_lag,
                };
                let Some(mut w) = write_header(dst, &fields) else {
                    return false;
                };
                w.bytes(&b.body);
                !w.overflowed() && w.position() == dst.len() && seal(dst)
            }
        }
    }
}

fn encode_record(
    w: &mut Writer<'_>,
    record: &RecordRef<'_>,
    timestamp_delta: i64,
    layout: RecordLayout,
) {
    w.varint(record_body_len(record, timestamp_delta, layout) as u64);
    w.varint(varint::zigzag(timestamp_delta));
    if !layout.no_keys {
        match &record.key {
            Some(key) => {
                w.varint(key.len() as u64 + 1);
                w.bytes(key);
            }
            None => w.varint(0),
        }
    }
    if layout.no_headers {
        w.bytes(record.payload);
        return;
    }
    w.varint(record.payload.len() as u64);
    w.bytes(record.payload);
    w.varint(record.headers.len() as u64);
    for header in record.headers {
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

/// Parses and checks the header at the front of `bytes` (which may extend past the batch)
/// of a batch in the segment starting at `segment_base`. Does not check the CRC.
pub(crate) fn parse_header(bytes: &[u8], segment_base: u64) -> Result<BatchHeader, BatchError> {
    // Every read walks a header per batch (one per record for single sends): the fixed part
    // is taken in one bounds check and destructured, and the varints take a fast path for
    // one-byte values (see `Reader::varint_fast`).
    let Some(fixed) = bytes.first_chunk::<FIXED_HEADER_LEN>() else {
        let zero_length =
            bytes.len() >= VERSION_POS && bytes.get(LENGTH_POS..OFFSET_DELTA_POS) == Some(&[0; 4]);
        return Err(if zero_length {
            BatchError::EndOfData
        } else {
            BatchError::Truncated
        });
    };
    let [
        c0,
        c1,
        c2,
        c3,
        l0,
        l1,
        l2,
        l3,
        o0,
        o1,
        o2,
        o3,
        version,
        attributes,
        g0,
        g1,
        g2,
    ] = *fixed;
    let (crc, length) = (
        u32::from_le_bytes([c0, c1, c2, c3]),
        u32::from_le_bytes([l0, l1, l2, l3]),
    );
    let offset_delta = u32::from_le_bytes([o0, o1, o2, o3]);
    if length == 0 {
        return Err(BatchError::EndOfData);
    }
    if version != BATCH_VERSION {
        return Err(BatchError::BadVersion(version));
    }
    let lag = [g0, g1, g2];
    let mut r = Reader::new(bytes);
    r.skip(FIXED_HEADER_LEN);
    let (Some(count_minus_one), Some(first_timestamp), Some(max_delta)) =
        (r.varint_fast(), r.varint_fast(), r.varint_fast())
    else {
        return Err(BatchError::Truncated);
    };
    let producer = if attributes & attr::PRODUCER == 0 {
        None
    } else {
        Some(parse_producer(&mut r)?)
    };
    if attributes & attr::CODEC_MASK != 0 {
        return Err(BatchError::Unsupported("a compression codec"));
    }
    if attributes & (attr::TRANSACTIONAL | attr::CONTROL) != 0 {
        return Err(BatchError::Unsupported("transactions"));
    }
    let record_count = u32::try_from(count_minus_one)
        .ok()
        .and_then(|c| c.checked_add(1))
        .ok_or(BatchError::BadRecordCount)?;
    let header_len = r.position();
    let min_len = header_len as u64 + MIN_RECORD_LEN as u64 * u64::from(record_count);
    if u64::from(length) < min_len {
        return Err(BatchError::BadLength(length));
    }
    let base_offset = segment_base
        .checked_add(u64::from(offset_delta))
        .ok_or(BatchError::BadHeader("offset past the largest offset"))?;
    let first_timestamp = varint::unzigzag(first_timestamp);
    Ok(BatchHeader {
        base_offset,
        length,
        crc,
        record_count,
        first_timestamp,
        max_timestamp: first_timestamp.wrapping_add_unsigned(max_delta),
        durable_lag: {
            let [l0, l1, l2] = lag;
            u32::from_le_bytes([l0, l1, l2, 0])
        },
        #[expect(
            clippy::cast_possible_truncation,
            reason = "at most MAX_HEADER_LEN, checked against the u32 length above"
        )]
        header_len: header_len as u32,
        producer,
        layout: RecordLayout::from_bits(attributes),
    })
}

/// The producer stamp fields of a batch header.
fn parse_producer(r: &mut Reader<'_>) -> Result<ProducerStamp, BatchError> {
    let (Some(producer_id), Some(epoch), Some(sequence)) = (r.varint(), r.varint(), r.varint())
    else {
        return Err(BatchError::Truncated);
    };
    let (Ok(producer_epoch), Ok(base_sequence)) = (u16::try_from(epoch), u32::try_from(sequence))
    else {
        return Err(BatchError::BadHeader("producer stamp out of range"));
    };
    Ok(ProducerStamp {
        producer_id,
        producer_epoch,
        base_sequence,
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

/// Parses the header at the front of `bytes` (a batch of the segment starting at
/// `segment_base`), checks that the batch is the one expected at `expected_offset`, that it
/// is complete within `bytes`, and that its CRC matches. Returns the header and the batch's
/// bytes.
pub(crate) fn check_batch(
    bytes: &[u8],
    segment_base: u64,
    expected_offset: u64,
) -> Result<(BatchHeader, &[u8]), BatchError> {
    let header = parse_header(bytes, segment_base)?;
    let batch = verify_batch(bytes, &header)?;
    if header.base_offset != expected_offset {
        return Err(BatchError::UnexpectedOffset {
            expected: expected_offset,
            found: header.base_offset,
        });
    }
    Ok((header, batch))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::format::record::Record;
    use crate::format::record_decode::{HeaderIter, RecordSpan, decode_records};
    use proptest::prelude::*;
    use std::ops::Range;

    /// The base offset of the segment the test batches are in.
    const SEGMENT_BASE: u64 = 1_000_000;

    fn encode(records: &[Record], base: u64, now: i64) -> Vec<u8> {
        let refs: Vec<RecordRef<'_>> = records.iter().map(Record::view).collect();
        let plan = plan_batch(&refs, now);
        let mut buf = vec![0u8; plan.length];
        assert!(encode_batch(
            &mut buf,
            SEGMENT_BASE,
            base,
            &refs,
            &plan,
            now,
            7
        ));
        buf
    }

    fn decode(batch: &[u8], base: u64) -> Vec<RecordSpan> {
        let (header, batch) = check_batch(batch, SEGMENT_BASE, base).expect("valid batch");
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
        let batch = encode(&records, SEGMENT_BASE + 42, 1_000);
        let header = parse_header(&batch, SEGMENT_BASE).unwrap();
        assert_eq!(header.base_offset, SEGMENT_BASE + 42);
        assert_eq!(header.record_count, 3);
        assert_eq!(header.first_timestamp, 1_000);
        assert_eq!(header.max_timestamp, 1_000);
        let spans = decode(&batch, SEGMENT_BASE + 42);
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
        assert_eq!(parse_header(&[0u8; 64], 0), Err(BatchError::EndOfData));
    }

    #[test]
    fn crc_covers_base_offset_and_length() {
        let batch = encode(&[Record::new("t", "payload")], SEGMENT_BASE + 7, 1);
        // Expecting another offset is caught even though the batch is intact.
        assert_eq!(
            check_batch(&batch, SEGMENT_BASE, SEGMENT_BASE + 8).map(|_| ()),
            Err(BatchError::UnexpectedOffset {
                expected: SEGMENT_BASE + 8,
                found: SEGMENT_BASE + 7
            })
        );
        // Rewriting the base offset (a misplaced copy) breaks the CRC.
        let mut moved = batch.clone();
        moved[8..12].copy_from_slice(&8u32.to_le_bytes());
        assert!(matches!(
            check_batch(&moved, SEGMENT_BASE, SEGMENT_BASE + 8),
            Err(BatchError::BadCrc { .. })
        ));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let batch = encode(
            &[Record::new("t", "abc").key("k").header("n", "v")],
            SEGMENT_BASE + 3,
            99,
        );
        for bit in 0..batch.len() * 8 {
            let mut damaged = batch.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                check_batch(&damaged, SEGMENT_BASE, SEGMENT_BASE + 3).is_err(),
                "flip of bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn truncation_is_reported() {
        let batch = encode(&[Record::new("t", "abc")], SEGMENT_BASE, 0);
        for len in 0..batch.len() {
            assert!(
                check_batch(&batch[..len], SEGMENT_BASE, SEGMENT_BASE).is_err(),
                "cut at {len}"
            );
        }
    }

    /// Milliseconds since the epoch in late 2026: today's timestamps, for the size figures.
    const NOW: i64 = 1_796_000_000_000;

    #[test]
    fn a_keyless_record_costs_two_bytes_in_a_batch_and_a_single_one_at_most_32() {
        let one = encode(&[Record::new("t", vec![1u8; 100])], SEGMENT_BASE, NOW);
        assert!(
            one.len() - 100 <= 32,
            "single-record overhead {}",
            one.len() - 100
        );
        assert_eq!(one.len(), 127);
        let many: Vec<Record> = (0..1000)
            .map(|_| Record::new("t", vec![1u8; 100]))
            .collect();
        let batch = encode(&many, SEGMENT_BASE, NOW);
        // Two bytes of framing per record: its body length and its timestamp delta.
        assert!(
            batch.len() <= MAX_HEADER_LEN + 1000 * 102,
            "{} bytes",
            batch.len()
        );
        assert_eq!(decode(&batch, SEGMENT_BASE).len(), 1000);
        // Keys and headers cost their fields, and only in batches that have some.
        let keyed = encode(
            &[Record::new("t", vec![1u8; 100]).key("k")],
            SEGMENT_BASE,
            NOW,
        );
        assert_eq!(keyed.len(), one.len() + 2);
    }

    #[test]
    fn mixed_batches_keep_what_each_record_has() {
        let records = vec![
            Record::new("t", "a"),
            Record::new("t", "b").key("kb"),
            Record::new("t", "c").header("h", "v"),
            Record::new("t", ""),
        ];
        let batch = encode(&records, SEGMENT_BASE + 5, NOW);
        let spans = decode(&batch, SEGMENT_BASE + 5);
        let slice = |r: &Range<u32>| &batch[r.start as usize..r.end as usize];
        assert_eq!(spans[0].key, None);
        assert_eq!(slice(&spans[0].value), b"a");
        assert_eq!(slice(spans[1].key.as_ref().unwrap()), b"kb");
        assert_eq!(spans[2].header_count, 1);
        let headers: Vec<_> = HeaderIter::new(slice(&spans[2].headers), 1).collect();
        assert_eq!(headers, vec![("h", &b"v"[..])]);
        assert_eq!(slice(&spans[3].value), b"");
        assert!(spans.iter().all(|s| s.timestamp == NOW));
    }

    #[test]
    fn a_producer_stamp_round_trips() {
        let records = [Record::new("t", "x"), Record::new("t", "y")];
        let refs: Vec<RecordRef<'_>> = records.iter().map(Record::view).collect();
        let stamp = ProducerStamp {
            producer_id: u64::MAX - 3,
            producer_epoch: 7,
            base_sequence: 41,
        };
        let plan = plan_batch(&refs, NOW).stamped(stamp, refs.len());
        let mut buf = vec![0u8; plan.length];
        assert!(encode_batch(
            &mut buf,
            SEGMENT_BASE,
            SEGMENT_BASE,
            &refs,
            &plan,
            NOW,
            0
        ));
        let (header, batch) = check_batch(&buf, SEGMENT_BASE, SEGMENT_BASE).unwrap();
        assert_eq!(header.producer, Some(stamp));
        let mut values = Vec::new();
        decode_records(batch, &header, |s| values.push(s.value)).unwrap();
        assert_eq!(values.len(), 2);
    }

    /// Rewrites byte `at` of `batch` with `f` and fixes up the CRC, as a writer would have.
    fn rewritten(batch: &[u8], at: usize, f: impl Fn(u8) -> u8) -> Vec<u8> {
        let mut out = batch.to_vec();
        out[at] = f(out[at]);
        let crc = batch_crc(&out);
        out[..4].copy_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn format_1_and_features_this_version_does_not_read_are_refused_clearly() {
        let batch = encode(&[Record::new("t", "x")], SEGMENT_BASE, NOW);
        let old = rewritten(&batch, VERSION_POS, |_| 1);
        let err = check_batch(&old, SEGMENT_BASE, SEGMENT_BASE).unwrap_err();
        assert_eq!(err, BatchError::BadVersion(1));
        assert!(err.to_string().contains("format 1"), "{err}");
        for (bits, what) in [
            (1, "a compression codec"),
            (attr::TRANSACTIONAL, "transactions"),
            (attr::CONTROL, "transactions"),
        ] {
            let marked = rewritten(&batch, VERSION_POS + 1, |a| a | bits);
            assert_eq!(
                check_batch(&marked, SEGMENT_BASE, SEGMENT_BASE).map(|_| ()),
                Err(BatchError::Unsupported(what))
            );
        }
    }

    #[test]
    fn every_single_bit_flip_of_a_compact_batch_is_detected() {
        let records = [Record::new("t", "abc"), Record::new("t", "defg")];
        let batch = encode(&records, SEGMENT_BASE + 9, NOW);
        for bit in 0..batch.len() * 8 {
            let mut damaged = batch.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                check_batch(&damaged, SEGMENT_BASE, SEGMENT_BASE + 9).is_err(),
                "flip of bit {bit} went unnoticed"
            );
        }
    }

    /// Builds a batch of `records` one push at a time, as a producer's accumulator does.
    fn built(records: &[Record], base: u64) -> Option<Vec<u8>> {
        let mut builder = BatchBuilder::new(&records[0].view(), NOW, 1 << 20);
        for r in records {
            builder.push(&r.view(), NOW, 1 << 20)?;
        }
        let mut buf = vec![0u8; builder.len()];
        assert!(BatchSource::Built(&builder).encode(&mut buf, SEGMENT_BASE, base, 3));
        Some(buf)
    }

    #[test]
    fn a_built_batch_is_the_batch_encode_writes() {
        let bare: Vec<Record> = (0..50u8)
            .map(|i| Record::new("t", vec![i; i as usize]))
            .collect();
        let keyed: Vec<Record> = (0..5u8)
            .map(|i| Record::new("t", vec![i; 3]).key(vec![i]).header("h", "v"))
            .collect();
        for records in [&bare, &keyed] {
            let refs: Vec<RecordRef<'_>> = records.iter().map(Record::view).collect();
            let plan = plan_batch(&refs, NOW);
            let mut encoded = vec![0u8; plan.length];
            assert!(encode_batch(
                &mut encoded,
                SEGMENT_BASE,
                SEGMENT_BASE + 4,
                &refs,
                &plan,
                NOW,
                3
            ));
            assert_eq!(built(records, SEGMENT_BASE + 4).unwrap(), encoded);
        }
        // A keyed record does not join a batch of keyless ones.
        let mixed = [Record::new("t", "a"), Record::new("t", "b").key("k")];
        assert_eq!(built(&mixed, SEGMENT_BASE), None);
        // The limit holds, counting the longest header.
        let mut builder = BatchBuilder::new(&bare[10].view(), NOW, 100);
        let mut pushed = 0;
        while builder.push(&bare[10].view(), NOW, 100).is_some() {
            pushed += 1;
        }
        assert!(
            pushed >= 1 && builder.len() <= 100,
            "{pushed} records, {} bytes",
            builder.len()
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(header) = parse_header(&bytes, 0) {
                if let Some(batch) = bytes.get(..header.length as usize) {
                    let _ = decode_records(batch, &header, |_| {});
                }
            }
        }

        #[test]
        fn decoding_arbitrary_checksummed_bytes_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 24..200)) {
            if let Ok(header) = parse_header(&bytes, u64::MAX - 5) {
                if let Some(len) = (header.length as usize).checked_sub(0).filter(|&l| l <= bytes.len() && l >= 4) {
                    let crc = batch_crc(&bytes[..len]);
                    bytes[..4].copy_from_slice(&crc.to_le_bytes());
                    if let Ok((header, batch)) = check_batch(&bytes, u64::MAX - 5, header.base_offset) {
                        let _ = decode_records(batch, &header, |_| {});
                    }
                }
            }
        }

        #[test]
        fn records_with_keys_and_headers_decode_to_what_was_written(
            parts in proptest::collection::vec(
                (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
                 proptest::collection::vec(any::<u8>(), 0..40),
                 proptest::collection::vec(("[a-z]{0,4}", proptest::collection::vec(any::<u8>(), 0..4)), 0..3)),
                1..8),
        ) {
            let records: Vec<Record> = parts.iter().map(|(key, value, headers)| {
                let mut r = Record::new("t", value.clone());
                if let Some(k) = key { r = r.key(k.clone()); }
                for (n, v) in headers { r = r.header(n.clone(), v.clone()); }
                r
            }).collect();
            let batch = encode(&records, SEGMENT_BASE, NOW);
            let spans = decode(&batch, SEGMENT_BASE);
            let slice = |r: &Range<u32>| &batch[r.start as usize..r.end as usize];
            prop_assert_eq!(spans.len(), records.len());
            for (span, (key, value, headers)) in spans.iter().zip(&parts) {
                prop_assert_eq!(span.key.as_ref().map(|k| slice(k).to_vec()), key.clone());
                prop_assert_eq!(slice(&span.value), &value[..]);
                let got: Vec<(String, Vec<u8>)> = HeaderIter::new(slice(&span.headers), span.header_count)
                    .map(|(n, v)| (n.to_string(), v.to_vec())).collect();
                prop_assert_eq!(&got, headers);
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
            let batch = encode(&records, SEGMENT_BASE + 1, 0);
            let spans = decode(&batch, SEGMENT_BASE + 1);
            prop_assert_eq!(spans.len(), records.len());
            for (span, (payload, t)) in spans.iter().zip(payloads.iter().zip(&ts)) {
                prop_assert_eq!(&batch[span.value.start as usize..span.value.end as usize], &payload[..]);
                prop_assert_eq!(span.timestamp, *t);
            }
        }
    }
}
