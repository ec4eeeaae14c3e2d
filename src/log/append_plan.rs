//! Planning an append before a byte of it is written: how its records split into batches,
//! which batches go into the active segment and which into the segments it rolls into, and
//! where each segment's data ends.
//!
//! The partition reserves everything the plan needs first (the quota, the allocation of the
//! active segment up to its planned end, the files of every new segment), and only then
//! writes. So an append that finds no space writes nothing, whatever number of segments it
//! spans (see [`super::PartitionLog::append`]).
//!
//! Invariants of a plan: the batches cover the records in order, each exactly once; each
//! batch holds at least one record and fits `max_batch_bytes`; a segment's batches end at or
//! below `segment_bytes`; every segment after the first holds at least one batch.

use std::ops::Range;

use crate::format::batch::{self, BatchPlan};
use crate::format::file_header::SEGMENT_HEADER_LEN;
use crate::format::record::RecordRef;

/// One batch of a planned append.
#[derive(Debug)]
pub(crate) struct PlannedBatch {
    /// Which of the append's records it holds.
    pub records: Range<usize>,
    pub plan: BatchPlan,
}

/// The part of a planned append that goes into one segment.
#[derive(Debug)]
pub(crate) struct PlannedSegment {
    pub batches: Vec<PlannedBatch>,
    /// The byte position after its last batch.
    pub end: u64,
}

impl PlannedSegment {
    /// Records it holds.
    pub(crate) fn record_count(&self) -> u64 {
        self.batches.iter().map(|b| b.records.len() as u64).sum()
    }
}

/// A record that does not fit even an empty segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DoesNotFit;

/// Plans appending `records` at `now` to an active segment whose data ends at
/// `active_position` (`active_is_empty`: it holds no batch). The first segment of the result
/// is the active one (it may get no batch, when not even the first record fits what is left
/// of it); each further one is a segment to roll into.
pub(crate) fn plan_append(
    records: &[RecordRef<'_>],
    now: i64,
    active_position: u64,
    active_is_empty: bool,
    segment_bytes: u64,
    max_batch_bytes: usize,
) -> Result<Vec<PlannedSegment>, DoesNotFit> {
    let mut segments = vec![PlannedSegment {
        batches: Vec::new(),
        end: active_position,
    }];
    let mut empty = active_is_empty;
    let mut next = 0;
    while next < records.len() {
        let Some(segment) = segments.last_mut() else {
            break;
        };
        let room = usize::try_from(segment_bytes.saturating_sub(segment.end)).unwrap_or(usize::MAX);
        let rest = records.get(next..).unwrap_or_default();
        let (take, plan) = batch::plan_prefix(rest, now, room.min(max_batch_bytes));
        if take == 0 {
            if empty {
                return Err(DoesNotFit);
            }
            segments.push(PlannedSegment {
                batches: Vec::new(),
                end: SEGMENT_HEADER_LEN as u64,
            });
            empty = true;
            continue;
        }
        segment.end += plan.length as u64;
        segment.batches.push(PlannedBatch {
            records: next..next + take,
            plan,
        });
        next += take;
        empty = false;
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record::Record;

    fn records(count: usize, size: usize) -> Vec<Record> {
        (0..count)
            .map(|i| Record::new("t", vec![u8::try_from(i % 251).unwrap_or(0); size]))
            .collect()
    }

    /// Every record is planned exactly once, in order; batches and segments respect their
    /// limits; only the first segment may be empty.
    fn check(plan: &[PlannedSegment], count: usize, segment_bytes: u64, max_batch: usize) {
        let mut next = 0;
        for (i, segment) in plan.iter().enumerate() {
            assert!(
                i == 0 || !segment.batches.is_empty(),
                "segment {i} is empty"
            );
            assert!(
                segment.end <= segment_bytes,
                "segment {i} ends past the segment"
            );
            for batch in &segment.batches {
                assert_eq!(batch.records.start, next);
                assert!(!batch.records.is_empty());
                assert!(batch.plan.length <= max_batch);
                next = batch.records.end;
            }
        }
        assert_eq!(next, count);
    }

    #[test]
    fn a_plan_covers_every_record_once_within_the_limits() {
        for (count, size, segment_bytes, max_batch, position) in [
            (1, 100, 4_096, 1 << 20, 32),
            (1_000, 100, 4_096, 1 << 20, 32),
            (1_000, 100, 4_096, 1_000, 4_000),
            (50, 3_000, 8_192, 1 << 20, 8_000),
            (10, 10, 1 << 20, 1 << 20, 32),
        ] {
            let owned = records(count, size);
            let refs: Vec<RecordRef<'_>> = owned.iter().map(Record::view).collect();
            let plan = plan_append(&refs, 0, position, position == 32, segment_bytes, max_batch)
                .expect("fits");
            check(&plan, count, segment_bytes, max_batch);
        }
    }

    #[test]
    fn a_full_active_segment_gets_no_batch_and_the_rest_rolls() {
        let owned = records(3, 100);
        let refs: Vec<RecordRef<'_>> = owned.iter().map(Record::view).collect();
        let plan = plan_append(&refs, 0, 4_090, false, 4_096, 1 << 20).expect("fits");
        assert!(plan[0].batches.is_empty());
        assert_eq!(plan[0].end, 4_090);
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[1].record_count(), 3);
    }

    #[test]
    fn a_record_larger_than_an_empty_segment_does_not_fit() {
        let owned = records(1, 5_000);
        let refs: Vec<RecordRef<'_>> = owned.iter().map(Record::view).collect();
        assert_eq!(
            plan_append(&refs, 0, 32, true, 4_096, 1 << 20).unwrap_err(),
            DoesNotFit
        );
        assert_eq!(
            plan_append(&refs, 0, 100, false, 4_096, 1 << 20).unwrap_err(),
            DoesNotFit,
            "it does not fit the segment rolled into either"
        );
    }
}
