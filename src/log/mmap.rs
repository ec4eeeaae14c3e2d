//! Shared mappings with one writer and many lock-free readers. The only module with `unsafe`.
//!
//! A [`SharedMap`] wraps a mapping obtained through the I/O seam ([`crate::vfs::RawMap`]) and a
//! *published* length. A single [`MapWriter`] may write only at or above the published length;
//! readers may read only below it. Publishing is a release store and reading the published
//! length an acquire load, so every byte a reader sees below it was fully written first.
//!
//! Why a mapping: an append is then a `memcpy` into the page cache with no system call, which
//! the append benchmark measures at several times the speed of one `pwrite` per record (see
//! `benches/append.rs`, group `backend`). Chronicle Queue and RocketMQ's CommitLog write the
//! same way.
//!
//! Invariants that make the `unsafe` below sound:
//! 1. At most one `MapWriter` exists per map (checked at creation), and it hands out one
//!    mutable slice at a time (`&mut self`), always at or above the published length.
//! 2. Readers form slices only below the published length, which never decreases.
//! 3. Wharf never shrinks a file below a position still reachable through a live mapping: a
//!    segment is trimmed only to its published end, after its writer is gone.
//! 4. No other process writes or truncates the files: the data directory lock keeps other
//!    Wharf instances out. A foreign program truncating a mapped file raises SIGBUS, as with
//!    any memory-mapped store; the crate docs say so.
//! 5. A mapping stays valid until its `SharedMap` drops, which waits for every `Bytes` handed
//!    out (each holds an `Arc`), so deleting a segment never invalidates a reader.
#![expect(unsafe_code, reason = "dereferences the pointers of a memory mapping")]

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;

use crate::vfs::RawMap;

/// A mapping plus the length readers may see.
#[derive(Debug)]
pub(crate) struct SharedMap {
    raw: Box<dyn RawMap>,
    published: AtomicUsize,
    has_writer: AtomicBool,
}

impl SharedMap {
    /// A map whose first `published` bytes are readable. A writer may be attached later.
    pub(crate) fn new(raw: Box<dyn RawMap>, published: usize) -> Arc<Self> {
        let published = published.min(raw.len());
        Arc::new(SharedMap {
            raw,
            published: AtomicUsize::new(published),
            has_writer: AtomicBool::new(false),
        })
    }

    /// A map that never gets a writer (read-only mappings).
    pub(crate) fn new_read_only(raw: Box<dyn RawMap>, published: usize) -> Arc<Self> {
        let map = SharedMap::new(raw, published);
        map.has_writer.store(true, Ordering::Relaxed);
        map
    }

    /// Bytes of the mapping.
    pub(crate) fn len(&self) -> usize {
        self.raw.len()
    }

    /// The readable length.
    #[inline]
    pub(crate) fn published(&self) -> usize {
        self.published.load(Ordering::Acquire)
    }

    /// Calls `f` with the published bytes from `start` on (empty if `start` is past them).
    #[inline]
    pub(crate) fn read_from<R>(&self, start: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        let end = self.published();
        let start = start.min(end);
        // SAFETY: `[start, end)` lies below the published length (acquire load), which the
        // writer never touches again (invariant 1) and which is within the mapping (published
        // <= len); the mapping lives as long as `self` (invariant 5).
        let slice =
            unsafe { std::slice::from_raw_parts(self.raw.as_mut_ptr().add(start), end - start) };
        f(slice)
    }

    /// Faults `[start, start + len)` in for writing ahead of the writer (a hint; contents do
    /// not change).
    pub(crate) fn populate(&self, start: usize, len: usize) -> std::io::Result<()> {
        let len = len.min(self.len().saturating_sub(start));
        if len == 0 {
            return Ok(());
        }
        self.raw.populate_write(start, len)
    }

    /// A zero-copy `Bytes` of the published bytes in `range`, keeping the mapping alive.
    pub(crate) fn bytes(self: &Arc<Self>, range: Range<usize>) -> Option<Bytes> {
        if range.start > range.end || range.end > self.published() {
            return None;
        }
        Some(Bytes::from_owner(MapSlice {
            map: Arc::clone(self),
            range,
        }))
    }
}

/// The owner behind a `Bytes` made by [`SharedMap::bytes`].
struct MapSlice {
    map: Arc<SharedMap>,
    range: Range<usize>,
}

impl AsRef<[u8]> for MapSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `range` was checked to be published when the slice was made; published bytes
        // never change again (invariant 1) and the mapping lives as long as `self.map`.
        unsafe {
            std::slice::from_raw_parts(
                self.map.raw.as_mut_ptr().add(self.range.start),
                self.range.len(),
            )
        }
    }
}

/// The one writer of a [`SharedMap`].
#[derive(Debug)]
pub(crate) struct MapWriter {
    map: Arc<SharedMap>,
}

impl MapWriter {
    /// Attaches the writer; `None` if the map already has one or is read-only.
    pub(crate) fn new(map: &Arc<SharedMap>) -> Option<MapWriter> {
        if map.has_writer.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(MapWriter {
            map: Arc::clone(map),
        })
    }

    /// The map written to.
    pub(crate) fn map(&self) -> &Arc<SharedMap> {
        &self.map
    }

    /// The unpublished bytes `[start, start + len)`, to fill before publishing; `None` if the
    /// range starts below the published length or runs past the mapping.
    #[inline]
    pub(crate) fn unpublished_mut(&mut self, start: usize, len: usize) -> Option<&mut [u8]> {
        let end = start.checked_add(len)?;
        if start < self.map.published.load(Ordering::Relaxed) || end > self.map.len() {
            return None;
        }
        // SAFETY: the range lies at or above the published length, which no reader touches
        // (invariant 2), and within the mapping; this writer is the only one (invariant 1) and
        // `&mut self` ties the slice's lifetime to this call's borrow, so no two mutable slices
        // coexist.
        Some(unsafe { std::slice::from_raw_parts_mut(self.map.raw.as_mut_ptr().add(start), len) })
    }

    /// Copies `data` to `start` (at or above the published length); `false` if out of range.
    #[inline]
    pub(crate) fn write(&mut self, start: usize, data: &[u8]) -> bool {
        match self.unpublished_mut(start, data.len()) {
            Some(dst) => {
                dst.copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    /// Makes `[0, end)` readable. `end` must not be below the current published length.
    #[inline]
    pub(crate) fn publish(&mut self, end: usize) {
        debug_assert!(end >= self.map.published.load(Ordering::Relaxed));
        debug_assert!(end <= self.map.len());
        self.map
            .published
            .store(end.min(self.map.len()), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heap buffer standing in for a mapping.
    #[derive(Debug)]
    struct HeapMap(Box<[std::cell::UnsafeCell<u8>]>);
    // SAFETY: test-only; access is coordinated by SharedMap's published length.
    unsafe impl Sync for HeapMap {}

    impl RawMap for HeapMap {
        fn as_mut_ptr(&self) -> *mut u8 {
            self.0.as_ptr().cast_mut().cast()
        }
        fn len(&self) -> usize {
            self.0.len()
        }
    }

    fn heap(len: usize) -> Box<dyn RawMap> {
        Box::new(HeapMap(
            (0..len).map(|_| std::cell::UnsafeCell::new(0)).collect(),
        ))
    }

    #[test]
    fn readers_see_only_published_bytes() {
        let map = SharedMap::new(heap(16), 0);
        let mut writer = MapWriter::new(&map).expect("first writer");
        assert!(MapWriter::new(&map).is_none(), "only one writer");
        assert!(writer.write(0, b"hello"));
        assert!(map.read_from(0, <[u8]>::is_empty), "not yet published");
        writer.publish(5);
        assert_eq!(map.read_from(0, <[u8]>::to_vec), b"hello".to_vec());
        assert!(!writer.write(2, b"x"), "published bytes are immutable");
        assert!(!writer.write(14, b"xyz"), "past the mapping");
        let bytes = map.bytes(1..4).expect("published");
        drop(writer);
        drop(map);
        assert_eq!(&bytes[..], b"ell", "Bytes keeps the mapping alive");
    }

    #[test]
    fn read_only_maps_refuse_writers() {
        let map = SharedMap::new_read_only(heap(8), 8);
        assert!(MapWriter::new(&map).is_none());
        assert!(map.bytes(0..9).is_none());
    }
}
