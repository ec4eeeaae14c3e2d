//! Durability: the group sync (leader/follower), asynchronous `Fsync` waiters, the flusher's
//! work (sync, finalize, checkpoint) and checkpoints.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{
    DurableCallback, DurablePoint, PartitionLog, STATE_OPEN, STATE_POISONED, STATE_REMOVED,
    SyncState, restore,
};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::checkpoint::Checkpoint;
use crate::log::active::SealedSegment;
use crate::log::checkpoint::CheckpointFile;

impl PartitionLog {
    /// Blocks until every offset below `target` is durable, syncing as the group's leader if no
    /// sync is running.
    pub(crate) fn sync_to(&self, target: u64) -> Result<()> {
        self.sync_until(target, false)
    }

    /// As [`Self::sync_to`]; with `files`, also until no sealed or newly created segment file
    /// is left unsynced. A roll with no record after it (`delete_records` to the log end)
    /// leaves the durable offset where it was, but the durable point, and so the checkpoint,
    /// in the sealed segment: a checkpoint must not be left naming a segment about to be
    /// deleted, nor name a created one not yet durable.
    fn sync_until(&self, target: u64, files: bool) -> Result<()> {
        // Nothing past the end can become durable; waiting for it would never end.
        let target = target.min(self.next_offset());
        loop {
            {
                let mut st = self.sync.lock();
                loop {
                    if st.failure.is_some() {
                        drop(st);
                        return Err(self.poisoned_error());
                    }
                    let files_synced =
                        !files || st.unsynced_sealed.is_empty() && st.unsynced_created.is_empty();
                    if st.durable.next_offset >= target && files_synced {
                        return Ok(());
                    }
                    if !st.in_progress {
                        break;
                    }
                    self.sync_done.wait(&mut st);
                }
                st.in_progress = true;
            }
            if !self.lead_sync()? {
                return Err(ErrorKind::Closed.into());
            }
        }
    }

    /// Syncs everything appended so far; returns `false` if the partition is closed (nothing
    /// left to sync by this path).
    ///
    /// With no descriptor left to open the directory (`EMFILE`), nothing was synced and
    /// nothing is lost: the error is returned, the files stay listed for the next leader, and
    /// the partition is not poisoned (every other failure poisons it).
    fn lead_sync(&self) -> Result<bool> {
        let snapshot = {
            let writer = self.writer.lock();
            writer.as_ref().map(|active| {
                let mut st = self.sync.lock();
                let sealed = std::mem::take(&mut st.unsynced_sealed);
                let created = std::mem::take(&mut st.unsynced_created);
                let point = DurablePoint {
                    next_offset: active.next_offset(),
                    segment_base: active.base_offset(),
                    position: active.position(),
                };
                (point, Arc::clone(active.log_file()), sealed, created)
            })
        };
        let Some((point, active_log, sealed, created)) = snapshot else {
            let mut st = self.sync.lock();
            st.in_progress = false;
            self.sync_done.notify_all();
            return Ok(false);
        };
        // Sealed data first, then segments a roll created (their inode and, once, the
        // directory entry), then the active segment's data.
        let result = sealed
            .iter()
            .try_for_each(|s| s.log_file.sync_data())
            .and_then(|()| created.iter().try_for_each(|file| file.sync_all()))
            .and_then(|()| {
                if created.is_empty() {
                    Ok(())
                } else {
                    self.env.vfs.sync_dir(&self.dir)
                }
            })
            .and_then(|()| active_log.sync_data());
        let mut st = self.sync.lock();
        st.in_progress = false;
        let mut retry_later = None;
        match result {
            Ok(()) => {
                if point.next_offset >= st.durable.next_offset {
                    st.durable = point;
                }
                st.to_finalize.extend(sealed);
                self.durable_offset
                    .store(st.durable.next_offset, Ordering::SeqCst);
            }
            Err(e) if crate::vfs::is_out_of_descriptors(&e) => {
                restore(&mut st.unsynced_sealed, sealed);
                restore(&mut st.unsynced_created, created);
                retry_later = Some(Error::io("sync", &self.dir, e));
            }
            Err(e) => self.poison_locked(&mut st, e),
        }
        let failed = st.failure.is_some();
        self.sync_done.notify_all();
        drop(st);
        // Readers of durable records only wait for this, not for an append.
        self.watchers.notify();
        if failed {
            self.complete_waiters();
        }
        retry_later.map_or(Ok(true), Err)
    }

    pub(super) fn poison_locked(&self, st: &mut SyncState, e: io::Error) {
        if st.failure.is_none() {
            st.failure = Some(Arc::new(e));
        }
        self.state.store(STATE_POISONED, Ordering::Release);
    }

    /// Calls `callback` once every offset below `target` is durable (or with the error that
    /// prevents it). Returns the callback if too many are already waiting: the caller should
    /// then sync in its own thread ([`Self::sync_to`]).
    pub(crate) fn on_durable(
        self: &Arc<Self>,
        target: u64,
        callback: DurableCallback,
    ) -> std::result::Result<(), DurableCallback> {
        let mut st = self.sync.lock();
        if st.failure.is_some() {
            drop(st);
            callback(Err(self.poisoned_error()));
            return Ok(());
        }
        if st.durable.next_offset >= target {
            drop(st);
            callback(Ok(()));
            return Ok(());
        }
        if st.waiters.len() >= self.env.max_pending_async {
            return Err(callback);
        }
        st.waiters.push((target, callback));
        drop(st);
        self.env.flush_queue.request(self);
        Ok(())
    }

    /// Whether the flusher has work here: data or files to sync, segments to finalize,
    /// waiters, or a checkpoint behind the durable offset (`Fsync` sends sync in their own
    /// thread and write no checkpoint: the flusher's tick does, so recovery after a crash
    /// scans at most a flush interval of them).
    pub(crate) fn needs_flush(&self) -> bool {
        if self.state.load(Ordering::Acquire) == STATE_REMOVED {
            return false;
        }
        let st = self.sync.lock();
        st.durable.next_offset < self.next_offset()
            || st.durable.next_offset > self.checkpointed_offset.load(Ordering::Acquire)
            || !st.unsynced_sealed.is_empty()
            || !st.unsynced_created.is_empty()
            || !st.to_finalize.is_empty()
            || !st.waiters.is_empty()
    }

    /// The flusher's work: sync, complete the asynchronous sends waiting, then finalize and
    /// checkpoint ([`Self::sync_and_checkpoint`]). A failure poisons the partition and
    /// reaches every waiter.
    ///
    /// Sends that started waiting during the sync are served first: the checkpoint costs up
    /// to three more syncs (both index files and the checkpoint file), which they would
    /// otherwise wait behind. The partition is queued again instead, so the flusher comes
    /// back to it after the other partitions; under a steady stream of asynchronous sends
    /// the checkpoint is still written once per `checkpoint_interval`.
    pub(crate) fn flush_in_background(self: &Arc<Self>) {
        let result = self.sync_until(self.next_offset(), true).and_then(|()| {
            self.complete_waiters();
            let waiting = !self.sync.lock().waiters.is_empty();
            let overdue = self.checkpointed_at.lock().elapsed() >= self.env.checkpoint_interval;
            if waiting && !overdue {
                self.env.flush_queue.request(self);
                return Ok(());
            }
            self.finalize_and_checkpoint()
        });
        if let Err(e) = result {
            let e = e.into_io();
            // Out of descriptors: nothing was lost; the next tick tries again.
            if self.state.load(Ordering::Acquire) == STATE_OPEN
                && !crate::vfs::is_out_of_descriptors(&e)
            {
                self.poison_locked(&mut self.sync.lock(), e);
            }
            self.complete_waiters();
        }
    }

    /// Syncs everything appended so far, completes the asynchronous sends waiting for it,
    /// finalizes synced sealed segments and writes the checkpoint: afterwards a recovery
    /// would scan nothing.
    pub(crate) fn sync_and_checkpoint(&self) -> Result<()> {
        self.sync_until(self.next_offset(), true)?;
        self.complete_waiters();
        self.finalize_and_checkpoint()
    }

    /// Finalizes the synced sealed segments and writes a checkpoint at the durable point.
    fn finalize_and_checkpoint(&self) -> Result<()> {
        // One finalize-and-checkpoint at a time, so a checkpoint never passes a sealed
        // segment another thread is still finalizing.
        let mut checkpoint = self.checkpoint.lock();
        *self.checkpointed_at.lock() = Instant::now();
        let (durable, sealed) = {
            let mut st = self.sync.lock();
            (st.durable, std::mem::take(&mut st.to_finalize))
        };
        sealed
            .iter()
            .try_for_each(SealedSegment::finalize)
            .map_err(Error::from_io)?;
        self.unload(&sealed);
        self.write_checkpoint(&mut checkpoint, durable)
    }

    /// Lets finalized segments drop the three writable mappings (and file handles) they had
    /// as the active segment; the next read loads them read-only from their summary, with one
    /// mapping. Readers still holding the old view keep it alive until they let go.
    pub(super) fn unload(&self, finalized: &[SealedSegment]) {
        let segments = self.segments.read();
        for sealed in finalized {
            let base = sealed.view.base_offset;
            if let Ok(i) = segments.binary_search_by_key(&base, |s| s.base_offset) {
                if let Some(segment) = segments.get(i) {
                    segment.unload();
                }
            }
        }
    }

    pub(super) fn complete_waiters(&self) {
        let (ready, failure) = {
            let mut st = self.sync.lock();
            let durable = st.durable.next_offset;
            let failed = st.failure.is_some();
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut st.waiters)
                .into_iter()
                .partition(|(t, _)| failed || *t <= durable);
            st.waiters = waiting;
            (ready, failed)
        };
        for (_, callback) in ready {
            callback(if failure {
                Err(self.poisoned_error())
            } else {
                Ok(())
            });
        }
    }

    /// Writes a checkpoint at `durable` after syncing the index files it vouches for.
    pub(super) fn write_checkpoint(
        &self,
        checkpoint: &mut Option<CheckpointFile>,
        durable: DurablePoint,
    ) -> Result<()> {
        let Some(file) = checkpoint.as_mut() else {
            return Ok(());
        };
        let next = Checkpoint {
            sequence: 0,
            next_offset: durable.next_offset,
            segment_base: durable.segment_base,
            position: durable.position,
            log_start_offset: self.start_offset(),
        };
        if (Checkpoint {
            sequence: 0,
            ..file.last()
        }) == next
            || next.next_offset < file.last().next_offset
        {
            return Ok(());
        }
        let index_files = self
            .sync
            .lock()
            .active_index
            .as_ref()
            .filter(|(base, _)| *base == durable.segment_base)
            .map(|(_, files)| files.clone());
        for index in index_files.iter().flatten() {
            index.sync_data().ctx("sync", index.path())?;
        }
        file.write(next)?;
        self.checkpointed_offset
            .store(next.next_offset, Ordering::Release);
        Ok(())
    }
}
