//! On-disk formats: bytes in, bytes out, no I/O.
//!
//! Every file wharf writes starts with an 8-byte magic and a `u16` format version
//! ([`FORMAT_VERSION`]); every integer is little-endian and fixed-width unless a layout says
//! varint. Each submodule documents its byte layout in a table. Decoders never panic and never
//! index out of bounds: damaged bytes give an error value.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod batch;
pub(crate) mod checkpoint;
pub(crate) mod cursor;
pub(crate) mod file_header;
pub(crate) mod index_entry;
pub(crate) mod message;
pub(crate) mod offset_commit;
pub(crate) mod record;
pub(crate) mod record_decode;
pub(crate) mod topic_meta;
pub(crate) mod varint;

/// The format version this build writes and reads, for every file kind. 2: batch format v2
/// (see [`batch`]); wharf 0.1 wrote 1, which this build refuses with
/// [`crate::ErrorKind::IncompatibleFormat`].
pub(crate) const FORMAT_VERSION: u16 = 2;
