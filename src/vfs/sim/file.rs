//! Open files and mappings of a [`super::SimVfs`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::disk::{Ino, State, err, to_usize};
use super::image::{Buffer, Event};
use crate::vfs::{RawMap, VfsFile};

/// An open file of a [`SimVfs`].
pub(super) struct SimFile {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) ino: Ino,
    pub(super) path: PathBuf,
    pub(super) writable: bool,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("ino", &self.ino)
            .finish_non_exhaustive()
    }
}

impl SimFile {
    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(err(io::ErrorKind::PermissionDenied, "opened read-only"))
        }
    }
}

impl VfsFile for SimFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn len(&self) -> io::Result<u64> {
        let mut st = self.state.lock();
        st.check_alive()?;
        Ok(st.file(self.ino)?.len)
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let mut st = self.state.lock();
        st.check_alive()?;
        let f = st.file(self.ino)?;
        if pos >= f.len {
            return Ok(0);
        }
        let n = to_usize((f.len - pos).min(buf.len() as u64));
        let map = f.buf.map.lock();
        buf[..n].copy_from_slice(&map[to_usize(pos)..to_usize(pos) + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut st = self.state.lock();
        st.count_op()?;
        let end = pos + buf.len() as u64;
        st.reserve(self.ino, end)?;
        let len = st.file(self.ino)?.len;
        st.set_volatile_len(self.ino, len.max(end))?;
        let f = st.file(self.ino)?;
        f.buf.map.lock()[to_usize(pos)..to_usize(end)].copy_from_slice(buf);
        f.events.push(Event::Write {
            pos,
            data: buf.to_vec(),
        });
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut st = self.state.lock();
        st.count_op()?;
        let old = st.file(self.ino)?.len;
        if len > old {
            st.reserve(self.ino, len)?;
        } else {
            let f = st.file(self.ino)?;
            let freed = f.reserved.saturating_sub(len);
            f.reserved -= freed;
            st.used -= freed;
        }
        st.set_volatile_len(self.ino, len)?;
        st.file(self.ino)?.events.push(Event::Resize(len));
        Ok(())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut st = self.state.lock();
        st.count_op()?;
        st.reserve(self.ino, len)?;
        if len > st.file(self.ino)?.len {
            st.set_volatile_len(self.ino, len)?;
            st.file(self.ino)?.events.push(Event::Resize(len));
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.state.lock().sync_file(self.ino, &self.path)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.state.lock().sync_file(self.ino, &self.path)
    }

    fn map(&self, len: usize, writable: bool) -> io::Result<Box<dyn RawMap>> {
        if writable {
            self.check_writable()?;
        }
        let mut st = self.state.lock();
        st.check_alive()?;
        st.ensure_capacity(self.ino, len as u64)?;
        let f = st.file(self.ino)?;
        let token = Arc::new(());
        if writable {
            f.maybe_mapped_dirt = true;
            f.writable_maps.push(Arc::downgrade(&token));
        }
        Ok(Box::new(SimMap {
            buf: Arc::clone(&f.buf),
            len,
            _token: token,
        }))
    }
}

/// A mapping of a [`SimFile`]: the file's buffer (invariant 2).
pub(super) struct SimMap {
    pub(super) buf: Arc<Buffer>,
    pub(super) len: usize,
    pub(super) _token: Arc<()>,
}

impl fmt::Debug for SimMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimMap")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl RawMap for SimMap {
    fn as_mut_ptr(&self) -> *mut u8 {
        self.buf.map.lock().as_mut_ptr()
    }

    fn len(&self) -> usize {
        self.len
    }
}
