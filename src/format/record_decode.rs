//! Reading the records of a batch (their layout is in [`super::batch`]): a full check of
//! every record's structure ([`decode_records`]), a cheap walk over the records of batches
//! already checked ([`index_records`]: body and value positions only), and the lazy decoding
//! of one checked record's other fields ([`record_head`], [`record_headers`]) that read
//! results run when such a field is asked for.
//!
//! Invariant: the lazy decoders and [`HeaderIter`] are only given records that passed
//! [`decode_records`]'s check in this process, in the same bytes, or that this process
//! encoded. They never panic on other
//! input (every access is bounds-checked), but what they return for it is unspecified.

use std::ops::Range;

use super::batch::{BatchError, BatchHeader, RecordLayout};
use super::cursor::Reader;
use super::varint;

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
    /// The record's body (everything after its `body_length`).
    pub body: Range<u32>,
}

/// Decodes every record of a CRC-checked batch, calling `f` for each; checks the record
/// structure completely (lengths, count, UTF-8 header names), so that lazy decoding of the
/// bodies later cannot meet a malformed record.
pub(crate) fn decode_records(
    batch: &[u8],
    header: &BatchHeader,
    mut f: impl FnMut(RecordSpan),
) -> Result<(), BatchError> {
    let mut at = records_start(batch, header)?;
    for index in 0..header.record_count {
        let body = record_body(batch, at)?;
        at = body.end as usize;
        f(check_record(batch, body, index, header)?);
    }
    if at != batch.len() {
        return Err(BatchError::BadRecordCount);
    }
    Ok(())
}

/// Calls `f(index, body, value)` for every record of `batch` (ranges within the batch). With
/// `checked` (the batch passed [`decode_records`] before, in this process, or this process
/// encoded it) only the lengths before the value are read: the hot path of every read of
/// data already seen. Otherwise every record is checked as by [`decode_records`].
#[inline]
pub(crate) fn index_records(
    batch: &[u8],
    header: &BatchHeader,
    checked: bool,
    mut f: impl FnMut(u32, Range<u32>, Range<u32>),
) -> Result<(), BatchError> {
    if !checked {
        return decode_records(batch, header, |span| f(span.index, span.body, span.value));
    }
    let layout = header.layout();
    let mut at = records_start(batch, header)?;
    if layout.no_keys() && layout.no_headers() {
        // Bare payloads (the common case): the value is the body after its timestamp delta.
        // Through `value_range`, a second read of 1,000,000 such records (batches of 1,000)
        // took 26.4-27.7 ms instead of the 20.4-21.9 of the old full decode; this loop, 19.5
        // (`cargo bench --bench read`, scan/100B_1M_read_10000).
        for index in 0..header.record_count {
            let body = record_body(batch, at)?;
            at = body.end as usize;
            let delta_len = match batch.get(body.start as usize) {
                Some(&byte) if byte < 0x80 => 1,
                _ => batch
                    .get(body.start as usize..at)
                    .and_then(varint::decode)
                    .map_or(0, |(_, len)| len),
            };
            let value_start = (body.start + Fields::offset(delta_len)).min(body.end);
            f(index, body.clone(), value_start..body.end);
        }
        if at != batch.len() {
            return Err(BatchError::BadRecordCount);
        }
        return Ok(());
    }
    for index in 0..header.record_count {
        let body = record_body(batch, at)?;
        at = body.end as usize;
        let bytes = batch
            .get(body.start as usize..body.end as usize)
            .unwrap_or_default();
        let value = value_range(bytes, layout);
        f(
            index,
            body.clone(),
            value.start + body.start..value.end + body.start,
        );
    }
    if at != batch.len() {
        return Err(BatchError::BadRecordCount);
    }
    Ok(())
}

fn records_start(batch: &[u8], header: &BatchHeader) -> Result<usize, BatchError> {
    let at = header.header_len as usize;
    if batch.len() < at || u32::try_from(batch.len()).is_err() {
        return Err(BatchError::Truncated);
    }
    Ok(at)
}

/// The body of the record at `at`: after its `body_length` varint, within the batch.
#[inline]
fn record_body(batch: &[u8], at: usize) -> Result<Range<u32>, BatchError> {
    let mut outer = Fields {
        bytes: batch,
        pos: at,
        end: batch.len(),
    };
    let body_len = outer.varint()?;
    outer.take(body_len)
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

/// Checks the body of the `index`-th record completely and says where its parts lie.
// `inline(always)`: out of line, `perf` put most of `decode_records`' samples on the load of
// the returned span right after the call; inlined, `decode_records`' share of a first read of
// single-send data halved (8.9% → 4.4% of the samples).
#[expect(clippy::inline_always, reason = "measured on the read hot path")]
#[inline(always)]
fn check_record(
    batch: &[u8],
    body: Range<u32>,
    index: u32,
    header: &BatchHeader,
) -> Result<RecordSpan, BatchError> {
    let layout = header.layout();
    let mut b = Fields {
        bytes: batch,
        pos: body.start as usize,
        end: body.end as usize,
    };
    let delta = varint::unzigzag(b.varint()?);
    let key = if layout.no_keys() {
        None
    } else {
        match b.varint()? {
            0 => None,
            n => Some(b.take(n - 1)?),
        }
    };
    let timestamp = header.first_timestamp.wrapping_add(delta);
    if layout.no_headers() {
        // The value is the rest of the body.
        let value = b.take(b.end.saturating_sub(b.pos) as u64)?;
        return Ok(RecordSpan {
            index,
            timestamp,
            key,
            value,
            headers: body.end..body.end,
            header_count: 0,
            body,
        });
    }
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
    Ok(RecordSpan {
        index,
        timestamp,
        key,
        value,
        headers: headers_start..body.end,
        header_count,
        body,
    })
}

/// Where the value of a checked record body lies, relative to the body (see the module's
/// invariant): what a read notes for every record, so that `payload()` is a slice.
#[inline]
pub(crate) fn value_range(body: &[u8], layout: RecordLayout) -> Range<u32> {
    let mut b = Fields {
        bytes: body,
        pos: 0,
        end: body.len(),
    };
    let end = Fields::offset(body.len());
    let head = b.varint().is_ok()
        && (layout.no_keys() || b.varint().and_then(|n| b.take(n.saturating_sub(1))).is_ok());
    if !head {
        return end..end;
    }
    if layout.no_headers() {
        return Fields::offset(b.pos)..end;
    }
    b.varint().and_then(|len| b.take(len)).unwrap_or(end..end)
}

/// The timestamp delta and key of a checked record, from `bytes` starting at its body.
#[inline]
pub(crate) fn record_head(bytes: &[u8], layout: RecordLayout) -> (i64, Option<Range<u32>>) {
    let mut b = Fields {
        bytes,
        pos: 0,
        end: bytes.len(),
    };
    let timestamp_delta = varint::unzigzag(b.varint().unwrap_or(0));
    let key = if layout.no_keys() {
        None
    } else {
        match b.varint().unwrap_or(0) {
            0 => None,
            n => b.take(n - 1).ok(),
        }
    };
    (timestamp_delta, key)
}

/// The header count and the encoded headers of a checked record, from `bytes` starting right
/// after its value: `(count, range of the headers relative to bytes)`.
pub(crate) fn record_headers(bytes: &[u8], layout: RecordLayout) -> (u32, Range<u32>) {
    if layout.no_headers() {
        return (0, 0..0);
    }
    let mut b = Fields {
        bytes,
        pos: 0,
        end: bytes.len(),
    };
    let Some(count) = b.varint().ok().and_then(|n| u32::try_from(n).ok()) else {
        return (0, 0..0);
    };
    let start = Fields::offset(b.pos);
    for _ in 0..count {
        let skipped = b.varint().and_then(|n| b.take(n)).is_ok()
            && b.varint().and_then(|n| b.take(n)).is_ok();
        if !skipped {
            return (0, 0..0);
        }
    }
    (count, start..Fields::offset(b.pos))
}

impl Fields<'_> {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "positions are within a batch or a read, at most u32::MAX bytes"
    )]
    fn offset(pos: usize) -> u32 {
        pos as u32
    }
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
    use crate::format::batch;
    use crate::format::record::{Header, RecordRef};
    use proptest::prelude::*;

    const SEGMENT_BASE: u64 = 500;

    fn built(records: &[RecordRef<'_>]) -> Vec<u8> {
        let now = 1_700_000_000_000;
        let plan = batch::plan_batch(records, now);
        let mut buf = vec![0u8; plan.length];
        assert!(batch::encode_batch(
            &mut buf,
            SEGMENT_BASE,
            SEGMENT_BASE,
            records,
            &plan,
            now,
            0
        ));
        buf
    }

    proptest! {
        /// The cheap walk finds the bodies the full check finds, and lazy decoding of each
        /// body gives the parts the full check located.
        #[test]
        fn lazy_decoding_agrees_with_the_full_check(
            records in proptest::collection::vec(
                (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                 proptest::collection::vec(any::<u8>(), 0..300),
                 proptest::collection::vec(("[a-z]{0,6}", proptest::collection::vec(any::<u8>(), 0..10)), 0..3),
                 -5_000i64..5_000),
                1..40),
        ) {
            let headers: Vec<Vec<Header>> = records
                .iter()
                .map(|(_, _, h, _)| {
                    h.iter()
                        .map(|(k, v)| Header { key: k.clone(), value: v.clone().into() })
                        .collect()
                })
                .collect();
            let refs: Vec<RecordRef<'_>> = records
                .iter()
                .zip(&headers)
                .map(|((key, payload, _, ts), headers)| RecordRef {
                    key: key.as_deref(),
                    payload,
                    headers,
                    timestamp: Some(Timestamp::from_millis(1_700_000_000_000 + ts)),
                })
                .collect();
            let bytes = built(&refs);
            let header = batch::parse_header(&bytes, SEGMENT_BASE).unwrap();
            let mut spans = Vec::new();
            decode_records(&bytes, &header, |s| spans.push(s)).unwrap();
            let mut walked = Vec::new();
            index_records(&bytes, &header, true, |i, body, value| walked.push((i, body, value)))
                .unwrap();
            prop_assert_eq!(walked.len(), spans.len());
            let layout = header.layout();
            for ((index, body, value), span) in walked.iter().zip(&spans) {
                prop_assert_eq!(*index, span.index);
                prop_assert_eq!(body, &span.body);
                prop_assert_eq!(value, &span.value);
                let (delta, key) = record_head(&bytes[body.start as usize..], layout);
                let shift = |r: Range<u32>| r.start + body.start..r.end + body.start;
                prop_assert_eq!(header.first_timestamp + delta, span.timestamp);
                prop_assert_eq!(key.map(shift), span.key.clone());
                let (count, headers) = record_headers(&bytes[value.end as usize..], layout);
                prop_assert_eq!(count, span.header_count);
                if count > 0 {
                    let at = value.end;
                    prop_assert_eq!(headers.start + at..headers.end + at, span.headers.clone());
                }
                let original = &refs[span.index as usize];
                prop_assert_eq!(&bytes[value.start as usize..value.end as usize], original.payload);
            }
        }

        /// Lazy decoding of arbitrary bytes (which the invariant rules out) never panics.
        #[test]
        fn lazy_decoding_of_arbitrary_bytes_never_panics(
            body in proptest::collection::vec(any::<u8>(), 0..64),
            no_keys: bool,
            no_headers: bool,
        ) {
            let layout = RecordLayout::with(no_keys, no_headers);
            let value = value_range(&body, layout);
            prop_assert!(value.start <= value.end && value.end as usize <= body.len());
            let (_, key) = record_head(&body, layout);
            prop_assert!(key.is_none_or(|k| k.start <= k.end && k.end as usize <= body.len()));
            let (count, headers) = record_headers(&body, layout);
            prop_assert!(headers.start <= headers.end && headers.end as usize <= body.len());
            let encoded = &body[headers.start as usize..headers.end as usize];
            let _ = HeaderIter::new(encoded, count).count();
        }
    }
}
