//! Fixed-width packing of bits and small integers into frames: the OT-based layers send bits
//! and 41-bit field elements, which would cost 8 to 64 times more as bytes or u64s.

/// Packs `v`, `width` bits each (1..=64), little-endian bit order.
pub fn pack(v: &[u64], width: u32) -> Vec<u8> {
    assert!((1..=64).contains(&width), "width 1..=64");
    let mut out = Vec::with_capacity(packed_len(v.len(), width));
    let mask = u64::MAX >> (64 - width);
    // Bits not yet written, low first; at most 7 + 64 of them.
    let (mut acc, mut n) = (0u128, 0u32);
    for &x in v {
        acc |= u128::from(x & mask) << n;
        n += width;
        while n >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            n -= 8;
        }
    }
    if n > 0 {
        out.push(acc as u8);
    }
    out
}

/// Unpacks `n` values of `width` bits; `None` unless `b` is exactly their packed length.
pub fn unpack(b: &[u8], n: usize, width: u32) -> Option<Vec<u64>> {
    assert!((1..=64).contains(&width), "width 1..=64");
    if b.len() != packed_len(n, width) {
        return None;
    }
    let mask = u64::MAX >> (64 - width);
    let mut out = Vec::with_capacity(n);
    let (mut acc, mut have) = (0u128, 0u32);
    let mut bytes = b.iter();
    for _ in 0..n {
        while have < width {
            acc |= u128::from(*bytes.next().unwrap_or(&0)) << have;
            have += 8;
        }
        out.push(acc as u64 & mask);
        acc >>= width;
        have -= width;
    }
    Some(out)
}

/// Packs bits, eight to a byte.
pub fn pack_bits(v: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; v.len().div_ceil(8)];
    for (i, &b) in v.iter().enumerate() {
        out[i >> 3] |= (b as u8) << (i & 7);
    }
    out
}

/// Unpacks `n` bits; `None` unless `b` is exactly their packed length.
pub fn unpack_bits(b: &[u8], n: usize) -> Option<Vec<bool>> {
    (b.len() == n.div_ceil(8)).then(|| (0..n).map(|i| (b[i >> 3] >> (i & 7)) & 1 == 1).collect())
}

/// The packed length of `n` values of `width` bits.
pub fn packed_len(n: usize, width: u32) -> usize {
    (n * width as usize).div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_and_refuses_a_wrong_length() {
        for width in [1u32, 4, 41, 64] {
            let top = u64::MAX >> (64 - width);
            let v: Vec<u64> = (0..77u64)
                .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & top)
                .collect();
            let b = pack(&v, width);
            assert_eq!(b.len(), packed_len(77, width));
            assert_eq!(unpack(&b, 77, width).unwrap(), v);
            assert!(unpack(&b[1..], 77, width).is_none());
        }
        let bits: Vec<bool> = (0..13).map(|i| i % 3 == 0).collect();
        assert_eq!(unpack_bits(&pack_bits(&bits), 13).unwrap(), bits);
        assert!(unpack_bits(&pack_bits(&bits), 17).is_none());
    }
}
