//! Bounds-checked little-endian readers and writers over byte slices.

/// Reads fixed-width little-endian integers; every read is checked and returns `None` past the
/// end.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(len)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N).and_then(|b| b.try_into().ok())
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }

    /// Skips `len` bytes (or to the end).
    pub(crate) fn skip(&mut self, len: usize) {
        self.pos = self.pos.saturating_add(len).min(self.buf.len());
    }

    /// As [`Self::varint`], with the one-byte case inlined: for hot decoders.
    #[inline]
    pub(crate) fn varint_fast(&mut self) -> Option<u64> {
        if let Some(&byte) = self.buf.get(self.pos) {
            if byte < 0x80 {
                self.pos += 1;
                return Some(u64::from(byte));
            }
        }
        self.varint()
    }

    pub(crate) fn varint(&mut self) -> Option<u64> {
        let rest = self.buf.get(self.pos..)?;
        let (value, len) = super::varint::decode(rest)?;
        self.pos += len;
        Some(value)
    }
}

/// Writes into a slice sized beforehand. Writing past the end sets `overflowed` instead of
/// panicking; callers check it once (an overflow is a sizing bug, never a data error).
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    overflowed: bool,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer {
            buf,
            pos: 0,
            overflowed: false,
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    pub(crate) fn bytes(&mut self, src: &[u8]) {
        let end = self.pos + src.len();
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => {
                dst.copy_from_slice(src);
                self.pos = end;
            }
            None => self.overflowed = true,
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }

    pub(crate) fn varint(&mut self, v: u64) {
        let mut tmp = [0u8; super::varint::MAX_LEN];
        let len = super::varint::encode(v, &mut tmp);
        match tmp.get(..len) {
            Some(encoded) => self.bytes(encoded),
            None => self.overflowed = true,
        }
    }

    /// Skips `len` bytes (left as they are, to be filled later).
    pub(crate) fn skip(&mut self, len: usize) {
        if self.pos + len <= self.buf.len() {
            self.pos += len;
        } else {
            self.overflowed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_stops_at_the_end() {
        let mut r = Reader::new(&[1, 0, 2]);
        assert_eq!(r.u16(), Some(1));
        assert_eq!(r.u16(), None);
        assert_eq!(r.u8(), Some(2));
        assert_eq!(r.u8(), None);
        assert_eq!(r.bytes(usize::MAX), None);
    }

    #[test]
    fn writer_flags_overflow_instead_of_panicking() {
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        w.u16(0x0201);
        assert!(!w.overflowed());
        w.u16(7);
        assert!(w.overflowed());
        assert_eq!(buf, [1, 2, 0]);
    }
}
