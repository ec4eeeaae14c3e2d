//! Unsigned LEB128 varints (7 bits per byte, low group first, high bit = more follows) and
//! zigzag for signed values. A `u64` takes 1 to [`MAX_LEN`] bytes.

/// Longest encoding of a `u64`.
pub(crate) const MAX_LEN: usize = 10;

/// Bytes needed to encode `v`.
#[inline]
pub(crate) const fn encoded_len(v: u64) -> usize {
    // 1 byte for 0..=127, one more per 7 further significant bits.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Encodes `v` into `dst` and returns the length. `dst` of [`MAX_LEN`] bytes always suffices.
#[inline]
#[expect(
    clippy::cast_possible_truncation,
    reason = "each byte takes the low 7 bits"
)]
pub(crate) fn encode(mut v: u64, dst: &mut [u8; MAX_LEN]) -> usize {
    let mut len = 0;
    for slot in dst.iter_mut() {
        len += 1;
        if v < 0x80 {
            *slot = v as u8;
            break;
        }
        *slot = (v as u8) | 0x80;
        v >>= 7;
    }
    len
}

/// Decodes a varint from the front of `src`; `None` if it is truncated, longer than
/// [`MAX_LEN`] bytes or overflows a `u64`.
#[inline]
pub(crate) fn decode(src: &[u8]) -> Option<(u64, usize)> {
    if let Some(&byte) = src.first() {
        if byte < 0x80 {
            return Some((u64::from(byte), 1));
        }
    }
    // With eight bytes at hand (all but the last fields of a batch) a varint of up to 8 bytes
    // (56 bits: every length and today's timestamps) is decoded without a loop: find the
    // first byte without the continuation bit, keep the bytes up to it, and squeeze out the
    // continuation bits in three shift-and-mask steps. Batch headers carry a 6-byte
    // timestamp, and every read parses one header per batch.
    if let Some(chunk) = src.first_chunk::<8>() {
        let word = u64::from_le_bytes(*chunk);
        let stops = !word & 0x8080_8080_8080_8080;
        if stops != 0 {
            // All bits up to the lowest stop bit: exactly the varint's bytes.
            let mask = stops ^ (stops - 1);
            let x = word & mask & 0x7f7f_7f7f_7f7f_7f7f;
            let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
            let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
            let x = (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4);
            return Some((x, (stops.trailing_zeros() as usize + 1) / 8));
        }
    }
    let mut value: u64 = 0;
    for (i, &byte) in src.iter().take(MAX_LEN).enumerate() {
        let group = u64::from(byte & 0x7f);
        if i == MAX_LEN - 1 && byte > 1 {
            return None; // the 10th byte may only carry the top bit of a u64
        }
        value |= group << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Maps signed to unsigned so small magnitudes stay short: 0, -1, 1, -2 → 0, 1, 2, 3.
#[inline]
#[expect(clippy::cast_sign_loss, reason = "zigzag reinterprets the bits")]
pub(crate) const fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
#[expect(clippy::cast_possible_wrap, reason = "zigzag reinterprets the bits")]
pub(crate) const fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let mut buf = [0u8; MAX_LEN];
        assert_eq!(encode(0, &mut buf), 1);
        assert_eq!(buf[0], 0);
        assert_eq!(encode(300, &mut buf), 2);
        assert_eq!(&buf[..2], &[0xac, 0x02]);
        assert_eq!(encode(u64::MAX, &mut buf), MAX_LEN);
        assert_eq!(encoded_len(0), 1);
        assert_eq!(encoded_len(127), 1);
        assert_eq!(encoded_len(128), 2);
        assert_eq!(encoded_len(u64::MAX), MAX_LEN);
    }

    #[test]
    fn rejects_truncated_and_overlong() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0x80]), None);
        assert_eq!(decode(&[0xff; 11]), None);
        // 10 bytes whose last carries more than the top bit would overflow.
        let mut overflow = [0xffu8; 10];
        overflow[9] = 0x02;
        assert_eq!(decode(&overflow), None);
    }

    proptest! {
        #[test]
        fn round_trips(v: u64) {
            let mut buf = [0u8; MAX_LEN];
            let len = encode(v, &mut buf);
            prop_assert_eq!(len, encoded_len(v));
            prop_assert_eq!(decode(&buf[..len]), Some((v, len)));
        }

        /// Followed by other bytes (as inside a batch), which takes the 8-byte fast path.
        #[test]
        fn round_trips_followed_by_other_bytes(v: u64, tail: [u8; 10]) {
            let mut buf = [0u8; MAX_LEN];
            let len = encode(v, &mut buf);
            let mut bytes = buf[..len].to_vec();
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(decode(&bytes), Some((v, len)));
        }

        /// Any bytes decode as a plain byte-at-a-time LEB128 decoder says.
        #[test]
        fn agrees_with_a_byte_at_a_time_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let reference = || {
                let mut value = 0u64;
                for (i, &byte) in bytes.iter().take(MAX_LEN).enumerate() {
                    if i == MAX_LEN - 1 && byte > 1 {
                        return None;
                    }
                    value |= u64::from(byte & 0x7f) << (7 * i);
                    if byte & 0x80 == 0 {
                        return Some((value, i + 1));
                    }
                }
                None
            };
            prop_assert_eq!(decode(&bytes), reference());
        }

        #[test]
        fn zigzag_round_trips(v: i64) {
            prop_assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
