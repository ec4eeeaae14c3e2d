//! File contents as the simulator keeps them: [`Image`]s (bytes with implicit zeros), the
//! [`Event`]s since a sync, and the [`Buffer`] holding a file's volatile bytes.

use std::fmt;
use std::io;
use std::sync::Arc;

use memmap2::{MmapMut, MmapOptions};
use parking_lot::Mutex;

use super::PAGE_BYTES;
use super::disk::to_usize;

/// The file contents a sync or crash works with: bytes, then zeros up to `len`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Image {
    pub(super) bytes: Vec<u8>,
    pub(super) len: u64,
}

impl Image {
    pub(super) fn write(&mut self, pos: u64, data: &[u8]) {
        let end = pos + data.len() as u64;
        let (start, stop) = (to_usize(pos), to_usize(end));
        if self.bytes.len() < stop {
            self.bytes.resize(stop, 0);
        }
        self.bytes[start..stop].copy_from_slice(data);
        self.len = self.len.max(end);
    }

    pub(super) fn resize(&mut self, len: u64) {
        if (self.bytes.len() as u64) > len {
            self.bytes.truncate(to_usize(len));
        }
        self.len = len;
    }

    /// Whether bytes `[start, start + other.len())` equal `other`.
    pub(super) fn range_eq(&self, start: u64, other: &[u8]) -> bool {
        let start = to_usize(start);
        let stored = self.bytes.len().saturating_sub(start).min(other.len());
        let (head, tail) = other.split_at(stored);
        self.bytes.get(start..start + stored) == Some(head) && is_zero(tail)
    }

    /// Equal contents and length, whatever the stored zeros.
    pub(super) fn same_as(&self, other: &Image) -> bool {
        self.len == other.len && trimmed(&self.bytes) == trimmed(&other.bytes)
    }

    pub(super) fn trim(&mut self) {
        let keep = trimmed(&self.bytes).len();
        self.bytes.truncate(keep);
    }
}

pub(super) fn trimmed(bytes: &[u8]) -> &[u8] {
    let mut end = bytes.len();
    while end > 0 {
        let start = end.saturating_sub(to_usize(PAGE_BYTES));
        if is_zero(&bytes[start..end]) {
            end = start;
        } else {
            let last = bytes[start..end].iter().rposition(|&b| b != 0).unwrap_or(0);
            return &bytes[..=start + last];
        }
    }
    &[]
}

/// Whether `bytes` are all zero (compared a page at a time: a `memcmp`, fast even unoptimized).
pub(super) fn is_zero(bytes: &[u8]) -> bool {
    const ZEROS: [u8; 4096] = [0; 4096];
    const _: () = assert!(ZEROS.len() as u64 == PAGE_BYTES);
    bytes.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// A change to a file's contents since its last sync.
#[derive(Debug, Clone)]
pub(super) enum Event {
    Write { pos: u64, data: Vec<u8> },
    Resize(u64),
}

pub(super) fn replay_all(image: &mut Image, events: &[Event]) {
    for event in events {
        match event {
            Event::Write { pos, data } => image.write(*pos, data),
            Event::Resize(len) => image.resize(*len),
        }
    }
}

/// The volatile bytes of a file (invariant 1 of the module docs).
pub(super) struct Buffer {
    pub(super) map: Mutex<MmapMut>,
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("capacity", &self.map.lock().len())
            .finish()
    }
}

impl Buffer {
    pub(super) fn new(capacity: u64) -> io::Result<Arc<Buffer>> {
        let capacity = capacity.max(PAGE_BYTES).div_ceil(PAGE_BYTES) * PAGE_BYTES;
        let map = MmapOptions::new()
            .len(to_usize(capacity))
            .no_reserve_swap()
            .map_anon()?;
        Ok(Arc::new(Buffer {
            map: Mutex::new(map),
        }))
    }

    pub(super) fn capacity(&self) -> u64 {
        self.map.lock().len() as u64
    }

    /// The bytes `[0, len)` as an image.
    pub(super) fn image(&self, len: u64) -> Image {
        let map = self.map.lock();
        let mut bytes = trimmed(&map[..to_usize(len)]).to_vec();
        bytes.shrink_to_fit();
        Image { bytes, len }
    }
}

/// Copies `image`'s bytes at `pos` into `out` (zeros past the stored bytes).
pub(super) fn read_image(image: &Image, pos: u64, out: &mut [u8]) {
    out.fill(0);
    let start = to_usize(pos);
    if let Some(stored) = image.bytes.get(start..) {
        let n = stored.len().min(out.len());
        out[..n].copy_from_slice(&stored[..n]);
    }
}
