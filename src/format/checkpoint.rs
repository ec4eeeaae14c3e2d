//! The partition checkpoint: how far a partition's log is known to be durable, so recovery
//! scans only what comes after. Written in place into one of two slots (A/B) in turn, each
//! with its own CRC, so a torn write damages at most the slot being written and the other
//! still holds the previous checkpoint.
//!
//! File layout: a small header ([`super::file_header`], magic `WHARFCKP`), then two slots.
//!
//! | position | size | field |
//! |---------:|-----:|-------|
//! | 0   | 32 | small header |
//! | 32  | 64 | slot 0 |
//! | 96  | 64 | slot 1 |
//!
//! Slot:
//!
//! | position | size | field |
//! |---------:|-----:|-------|
//! | 0  | 8  | `sequence`: incremented by each write; the valid slot with the larger one wins |
//! | 8  | 8  | `next_offset`: every offset below it is durable |
//! | 16 | 8  | `segment_base`: base offset of the segment holding `next_offset` |
//! | 24 | 8  | `position`: byte position in that segment where the record at `next_offset` goes |
//! | 32 | 8  | `log_start_offset`: first offset not deleted by retention |
//! | 40 | 20 | reserved, 0 |
//! | 60 | 4  | CRC32C of bytes `[0, 60)` |
//!
//! Slot `sequence % 2` is the one a sequence number is written to. A slot is valid if its CRC
//! matches and `segment_base <= next_offset` and `position >= 32` (the segment header's end):
//! a checksum-valid slot that breaks these is damaged too.

use super::cursor::{Reader, Writer};
use super::file_header::SMALL_HEADER_LEN;

/// Magic of checkpoint files.
pub(crate) const CHECKPOINT_MAGIC: [u8; 8] = *b"WHARFCKP";
/// Bytes of one slot.
pub(crate) const SLOT_LEN: usize = 64;
/// Bytes of a whole checkpoint file.
pub(crate) const CHECKPOINT_FILE_LEN: usize = SMALL_HEADER_LEN + 2 * SLOT_LEN;
const SLOT_CRC_POS: usize = 60;

/// The durable point of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Checkpoint {
    pub sequence: u64,
    pub next_offset: u64,
    pub segment_base: u64,
    pub position: u64,
    pub log_start_offset: u64,
}

/// Byte position of the slot that `sequence` is written to.
pub(crate) fn slot_position(sequence: u64) -> usize {
    SMALL_HEADER_LEN + (sequence % 2) as usize * SLOT_LEN
}

/// Encodes one slot.
pub(crate) fn encode_slot(cp: &Checkpoint) -> [u8; SLOT_LEN] {
    let mut out = [0u8; SLOT_LEN];
    let mut w = Writer::new(&mut out);
    w.u64(cp.sequence);
    w.u64(cp.next_offset);
    w.u64(cp.segment_base);
    w.u64(cp.position);
    w.u64(cp.log_start_offset);
    let crc = crc32c::crc32c(out.get(..SLOT_CRC_POS).unwrap_or_default());
    if let Some(slot) = out.get_mut(SLOT_CRC_POS..) {
        slot.copy_from_slice(&crc.to_le_bytes());
    }
    out
}

/// Decodes one slot; `None` if its CRC fails, or if it passes but describes a durable point
/// no writer makes (`next_offset` below `segment_base`, or `position` inside the segment
/// file's header): such a slot is damaged too, whatever its checksum says.
pub(crate) fn decode_slot(bytes: &[u8]) -> Option<Checkpoint> {
    let slot = bytes.get(..SLOT_LEN)?;
    let stored = Reader::new(slot.get(SLOT_CRC_POS..)?).u32()?;
    if crc32c::crc32c(slot.get(..SLOT_CRC_POS)?) != stored {
        return None;
    }
    let mut r = Reader::new(slot);
    let cp = Checkpoint {
        sequence: r.u64()?,
        next_offset: r.u64()?,
        segment_base: r.u64()?,
        position: r.u64()?,
        log_start_offset: r.u64()?,
    };
    let possible = cp.next_offset >= cp.segment_base
        && cp.position >= super::file_header::SEGMENT_HEADER_LEN as u64;
    possible.then_some(cp)
}

/// The newest valid slot of a checkpoint file's bytes (after the header), and whether the
/// other slot was damaged.
pub(crate) fn newest(slots: &[u8]) -> Option<Checkpoint> {
    let a = slots.get(..SLOT_LEN).and_then(decode_slot);
    let b = slots.get(SLOT_LEN..2 * SLOT_LEN).and_then(decode_slot);
    match (a, b) {
        (Some(a), Some(b)) => Some(if a.sequence >= b.sequence { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_with_a_valid_checksum_but_impossible_fields_is_damaged() {
        let good = Checkpoint {
            sequence: 3,
            next_offset: 10,
            segment_base: 10,
            position: 32,
            log_start_offset: 0,
        };
        assert_eq!(decode_slot(&encode_slot(&good)), Some(good));
        for bad in [
            Checkpoint {
                next_offset: 9,
                ..good
            },
            Checkpoint {
                position: 31,
                ..good
            },
        ] {
            assert_eq!(decode_slot(&encode_slot(&bad)), None, "{bad:?}");
        }
    }

    fn cp(sequence: u64) -> Checkpoint {
        Checkpoint {
            sequence,
            next_offset: sequence * 10,
            segment_base: 0,
            position: 99,
            log_start_offset: 0,
        }
    }

    #[test]
    fn newest_valid_slot_wins_and_a_torn_slot_falls_back() {
        let mut slots = [0u8; 2 * SLOT_LEN];
        assert_eq!(newest(&slots), None);
        slots[..SLOT_LEN].copy_from_slice(&encode_slot(&cp(2)));
        slots[SLOT_LEN..].copy_from_slice(&encode_slot(&cp(3)));
        assert_eq!(newest(&slots), Some(cp(3)));
        slots[SLOT_LEN + 5] ^= 0x10;
        assert_eq!(newest(&slots), Some(cp(2)));
    }

    #[test]
    fn every_bit_flip_of_a_slot_is_rejected() {
        let slot = encode_slot(&cp(7));
        for bit in 0..SLOT_LEN * 8 {
            let mut damaged = slot;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode_slot(&damaged), None, "bit {bit}");
        }
    }
}
