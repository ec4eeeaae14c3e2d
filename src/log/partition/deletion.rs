//! Deleting old segments: retention, `delete_records`, and the sizes retention counts.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{PartitionLog, Removed, STATE_OPEN};
use crate::config::Retention;
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::checkpoint::Checkpoint;
use crate::log::segment::{Segment, SegmentStats};

impl PartitionLog {
    /// Whether the partition's segments hold more than `bytes` bytes of log data.
    pub(crate) fn holds_more_than(&self, bytes: u64) -> Result<bool> {
        let segments: Vec<Arc<Segment>> = self.segments.read().clone();
        let Some((last, sealed)) = segments.split_last() else {
            return Ok(false);
        };
        let mut total = self.view_of(last, u64::MAX)?.end_position();
        for (i, segment) in sealed.iter().enumerate() {
            let next_base = segments.get(i + 1).map_or(u64::MAX, |s| s.base_offset);
            total += self.sealed_stats(segment, next_base)?.bytes;
            if total > bytes {
                return Ok(true);
            }
        }
        Ok(total > bytes)
    }

    /// Applies `retention` at `now` (ms since the epoch): deletes the oldest sealed segments
    /// past its limits. `consumed`: with consumer-aware retention, the offset every group it
    /// waits for has committed up to (age and size delete only below it; the hard size limit
    /// deletes anyway and counts what it dropped above it).
    pub(crate) fn apply_retention(
        self: &Arc<Self>,
        now: i64,
        retention: &Retention,
        consumed: Option<u64>,
    ) -> Result<Removed> {
        if self.env.read_only || self.state.load(Ordering::Acquire) != STATE_OPEN {
            return Ok(Removed::default());
        }
        let segments: Vec<Arc<Segment>> = self.segments.read().clone();
        let Some((last, sealed)) = segments.split_last() else {
            return Ok(Removed::default());
        };
        let mut sizes = Vec::with_capacity(sealed.len());
        for (i, segment) in sealed.iter().enumerate() {
            let next_base = segments.get(i + 1).map_or(u64::MAX, |s| s.base_offset);
            sizes.push(self.sealed_stats(segment, next_base)?);
        }
        let active_bytes = self.view_of(last, u64::MAX)?.end_position();
        let mut total = sizes.iter().map(|s| s.bytes).sum::<u64>() + active_bytes;
        let max_age = retention
            .max_age
            .map(|age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let start = self.start_offset();
        let mut keep_from = None;
        let mut unconsumed = 0;
        for (i, (segment, stats)) in sealed.iter().zip(&sizes).enumerate() {
            let next_base = segments.get(i + 1).map_or(u64::MAX, |s| s.base_offset);
            let over = |max: Option<u64>| max.is_some_and(|max| total > max);
            let expired = max_age.is_some_and(|age| now.saturating_sub(stats.max_timestamp) > age);
            let soft = over(retention.max_bytes) || expired;
            let consumed_past = consumed.is_none_or(|c| c >= next_base);
            if over(retention.hard_max_bytes) {
                if let Some(c) = consumed {
                    unconsumed += next_base.saturating_sub(c.max(segment.base_offset).max(start));
                }
            } else if !(soft && consumed_past) {
                break;
            }
            total = total.saturating_sub(stats.bytes);
            keep_from = Some(next_base);
        }
        let Some(new_start) = keep_from else {
            if !self.leftovers.lock().is_empty() {
                let _checkpoint = self.checkpoint.lock();
                self.remove_files(Vec::new())?;
            }
            return Ok(Removed::default());
        };
        let mut removed = self.delete_before(new_start)?;
        removed.unconsumed = unconsumed;
        Ok(removed)
    }

    /// Moves the log start to `offset` (at most the log end) and deletes the segments wholly
    /// below it (Kafka's `DeleteRecords`). If that is the whole log, the active segment is
    /// sealed first so that its space goes too.
    ///
    /// Crash safety: the new log start is made durable in the checkpoint first (with the
    /// data: the checkpoint's own segment is never one deleted), then the segments leave the
    /// list readers search, then their files are unlinked and the directory synced. A crash
    /// in between leaves files wholly below the durable log start, which recovery deletes.
    /// Readers already holding a segment's view keep reading it: the mapping outlives the
    /// unlinked file until they let go.
    pub(crate) fn delete_records(self: &Arc<Self>, offset: u64) -> Result<Removed> {
        if self.env.read_only {
            return Err(self.read_only_error());
        }
        let offset = offset.min(self.next_offset());
        {
            let mut guard = self.writer.lock();
            if let Some(active) = guard.as_mut() {
                if offset == active.next_offset() && !active.is_empty() {
                    // Past the quota if need be: the old segment goes right after. On a
                    // genuinely full disk it stays (its records unreadable below the start)
                    // and only the sealed segments go.
                    match self.roll(active, true) {
                        Err(e) if !matches!(e.kind(), ErrorKind::Full { .. }) => return Err(e),
                        _ => {}
                    }
                }
            }
        }
        self.delete_before(offset)
    }

    fn delete_before(&self, offset: u64) -> Result<Removed> {
        // The checkpoint must point into a segment that stays: sync (and checkpoint) first.
        self.sync_and_checkpoint()?;
        let mut checkpoint = self.checkpoint.lock();
        // Files an earlier deletion failed to unlink: they are below the start already.
        self.remove_files(Vec::new())?;
        if offset <= self.start_offset() {
            return Ok(Removed::default());
        }
        self.start_offset.store(offset, Ordering::Release);
        if let Some(file) = checkpoint.as_mut() {
            let last = file.last();
            file.write(Checkpoint {
                log_start_offset: offset,
                ..last
            })?;
        }
        let doomed: Vec<Arc<Segment>> = {
            let mut segments = self.segments.write();
            let keep = segments
                .windows(2)
                .take_while(|pair| pair[1].base_offset <= offset)
                .count();
            segments.drain(..keep).collect()
        };
        let mut removed = Removed::default();
        let vfs = self.env.vfs.as_ref();
        let mut paths = Vec::with_capacity(doomed.len() * 3);
        for segment in &doomed {
            segment.unload();
            removed.bytes += match segment.stats() {
                Some(stats) => stats.bytes,
                None => vfs
                    .open(&segment.paths.log, crate::vfs::OpenMode::Read)
                    .and_then(|file| file.len())
                    .unwrap_or(0),
            };
            removed.segments += 1;
            let p = &segment.paths;
            paths.extend([p.log.clone(), p.index.clone(), p.time_index.clone()]);
        }
        self.remove_files(paths)?;
        // Held until the files are gone: a concurrent deletion (retention's thread and
        // `enforce_retention`, say) returns only once the space is free.
        drop(checkpoint);
        Ok(removed)
    }

    /// Unlinks `paths` and the files earlier calls failed to unlink, then syncs the directory.
    /// A file that cannot be unlinked now is tried again by the next deletion (and at the
    /// latest by the next open, which deletes every segment below the log start).
    fn remove_files(&self, mut paths: Vec<PathBuf>) -> Result<()> {
        let mut leftovers = self.leftovers.lock();
        paths.append(&mut leftovers);
        if paths.is_empty() {
            return Ok(());
        }
        let vfs = self.env.vfs.as_ref();
        let mut first_error = None;
        for path in paths {
            match vfs.remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    first_error.get_or_insert_with(|| Error::io("delete", &path, e));
                    leftovers.push(path);
                }
                _ => {}
            }
        }
        let synced = vfs.sync_dir(&self.dir).ctx("sync", &self.dir);
        first_error.map_or(synced, Err)
    }

    /// Size and newest timestamp of a sealed segment, read once (a sealed segment never
    /// changes).
    fn sealed_stats(&self, segment: &Arc<Segment>, next_base: u64) -> Result<SegmentStats> {
        if let Some(stats) = segment.stats() {
            return Ok(stats);
        }
        let view = self.view_of(segment, next_base)?;
        let stats = SegmentStats {
            bytes: view.end_position(),
            max_timestamp: view.max_timestamp(),
        };
        segment.set_stats(stats);
        Ok(stats)
    }
}
