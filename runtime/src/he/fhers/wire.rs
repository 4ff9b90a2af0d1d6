//! Just enough of the protobuf wire format to check fhe.rs's messages before the crate decodes
//! them. Stricter than protobuf: only varint and length-delimited fields, so that a message
//! passing the checks means to the crate what it means here.

use super::super::DEGREE;

/// A field's value.
pub(super) enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Why bytes are no protobuf message this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum WireError {
    #[error("truncated varint")]
    TruncatedVarint,
    #[error("varint beyond 64 bits")]
    VarintOverflow,
    #[error("varint longer than 10 bytes")]
    VarintTooLong,
    #[error("field {num} of {len} bytes, only {left} left")]
    FieldOverrun { num: u64, len: u64, left: usize },
    #[error("field {num} of wire type {wire_type}")]
    WireType { num: u64, wire_type: u64 },
}

/// Why polynomial `i` of a message is refused (fhe-math's `Rq` message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum PolyError {
    #[error("polynomial {i}: {source}")]
    Wire { i: usize, source: WireError },
    #[error("polynomial {i}: field {num} repeated, mistyped or out of range")]
    BadField { i: usize, num: u64 },
    #[error("polynomial {i}: unexpected field {num}")]
    UnexpectedField { i: usize, num: u64 },
    #[error("polynomial {i} is in {form} form, expected NTT")]
    WrongForm { i: usize, form: &'static str },
    #[error("polynomial {i} has representation {r} (unknown), expected NTT")]
    UnknownForm { i: usize, r: u64 },
    #[error("polynomial {i} has degree {degree}, expected {DEGREE}")]
    Degree { i: usize, degree: u64 },
    #[error("polynomial {i} has {got} bytes of residues, expected {want}")]
    ResidueBytes { i: usize, got: usize, want: usize },
    #[error("polynomial {i} has {got} residues mod limb {limb}, expected {DEGREE}")]
    ResidueCount { i: usize, got: usize, limb: usize },
    #[error("polynomial {i}: residue {k} mod limb {limb} is {x}, not below the modulus {q}")]
    ResidueRange {
        i: usize,
        k: usize,
        limb: usize,
        x: u64,
        q: u64,
    },
}

fn varint(b: &mut &[u8]) -> Result<u64, WireError> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) = b.split_first().ok_or(WireError::TruncatedVarint)?;
        *b = rest;
        if i == 9 && byte > 1 {
            return Err(WireError::VarintOverflow);
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(WireError::VarintTooLong)
}

/// The fields of a message in order, as (number, value).
pub(super) fn fields(mut b: &[u8]) -> Result<Vec<(u64, Value<'_>)>, WireError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let (num, wire_type) = (key >> 3, key & 7);
        let value = match wire_type {
            0 => Value::Varint(varint(&mut b)?),
            2 => {
                let len = varint(&mut b)?;
                if len > b.len() as u64 {
                    return Err(WireError::FieldOverrun {
                        num,
                        len,
                        left: b.len(),
                    });
                }
                let (payload, rest) = b.split_at(len as usize);
                b = rest;
                Value::Bytes(payload)
            }
            wire_type => return Err(WireError::WireType { num, wire_type }),
        };
        out.push((num, value));
    }
    Ok(out)
}

/// Checks the wire form of polynomial `i` (fhe-math's `Rq` message: enum representation = 1,
/// uint32 degree = 2, bytes coefficients = 3 as power-basis residues packed limb by limb,
/// bool allow_variable_time = 4): NTT representation, degree N, the exact byte count for
/// `ctx`'s moduli, and every residue below its modulus.
pub(super) fn check_poly(
    bytes: &[u8],
    ctx: &fhe_math::rq::Context,
    i: usize,
) -> Result<(), PolyError> {
    let (mut repr, mut degree, mut coeffs, mut vt) = (None, None, None, None);
    let fields = fields(bytes).map_err(|source| PolyError::Wire { i, source })?;
    for (num, value) in fields {
        match (num, value) {
            (1, Value::Varint(r)) if repr.is_none() => repr = Some(r),
            (2, Value::Varint(d)) if degree.is_none() => degree = Some(d),
            (3, Value::Bytes(c)) if coeffs.is_none() => coeffs = Some(c),
            (4, Value::Varint(b)) if vt.is_none() && b <= 1 => vt = Some(b),
            (num @ 1..=4, _) => return Err(PolyError::BadField { i, num }),
            (num, _) => return Err(PolyError::UnexpectedField { i, num }),
        }
    }
    match repr.unwrap_or(0) {
        2 => {}
        1 => {
            return Err(PolyError::WrongForm {
                i,
                form: "power-basis",
            })
        }
        3 => {
            return Err(PolyError::WrongForm {
                i,
                form: "NTT-Shoup",
            })
        }
        r => return Err(PolyError::UnknownForm { i, r }),
    }
    let degree = degree.unwrap_or(0);
    if degree != DEGREE as u64 {
        return Err(PolyError::Degree { i, degree });
    }
    // The crate packs each limb's residues in as many bits as q - 1 needs.
    let widths: Vec<usize> = ctx
        .moduli()
        .iter()
        .map(|&q| (DEGREE * (64 - (q - 1).leading_zeros() as usize)).div_ceil(8))
        .collect();
    let coeffs = coeffs.unwrap_or(&[]);
    let want: usize = widths.iter().sum();
    if coeffs.len() != want {
        return Err(PolyError::ResidueBytes {
            i,
            got: coeffs.len(),
            want,
        });
    }
    let mut rest = coeffs;
    for (limb, ((op, &q), &w)) in ctx
        .moduli_operators()
        .iter()
        .zip(ctx.moduli())
        .zip(&widths)
        .enumerate()
    {
        let (bytes, r) = rest.split_at(w);
        rest = r;
        let v = op.deserialize_vec(bytes);
        if v.len() != DEGREE {
            return Err(PolyError::ResidueCount {
                i,
                got: v.len(),
                limb,
            });
        }
        if let Some((k, &x)) = v.iter().enumerate().find(|(_, &x)| x >= q) {
            return Err(PolyError::ResidueRange { i, k, limb, x, q });
        }
    }
    Ok(())
}

/// Appends `values` to `out`, each in its low `bits` bits, least significant bit first, as
/// one stream (`bits` <= 64; the last byte padded with zero bits).
pub(super) struct BitWriter {
    out: Vec<u8>,
    acc: u128,
    n: u32,
}

impl BitWriter {
    pub(super) fn with_capacity(bytes: usize) -> Self {
        BitWriter {
            out: Vec::with_capacity(bytes),
            acc: 0,
            n: 0,
        }
    }

    pub(super) fn put(&mut self, v: u64, bits: u32) {
        debug_assert!(bits == 64 || v >> bits == 0);
        self.acc |= (v as u128) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// Reads what [`BitWriter`] wrote, given the widths; the caller checks the total length
/// first ([`BitReader::bytes_for`]), and [`BitReader::done`] that the padding is zero.
pub(super) struct BitReader<'a> {
    bytes: &'a [u8],
    at: usize,
    acc: u128,
    n: u32,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            at: 0,
            acc: 0,
            n: 0,
        }
    }

    /// Bytes of a stream of `bits` bits.
    pub(super) fn bytes_for(bits: usize) -> usize {
        bits.div_ceil(8)
    }

    /// The next value of `bits` bits, or None past the end.
    pub(super) fn get(&mut self, bits: u32) -> Option<u64> {
        while self.n < bits {
            let &b = self.bytes.get(self.at)?;
            self.at += 1;
            self.acc |= (b as u128) << self.n;
            self.n += 8;
        }
        let mask = if bits == 64 {
            u64::MAX as u128
        } else {
            (1u128 << bits) - 1
        };
        let v = (self.acc & mask) as u64;
        self.acc >>= bits;
        self.n -= bits;
        Some(v)
    }

    /// Whether every byte was read and the padding bits are zero.
    pub(super) fn done(&self) -> bool {
        self.at == self.bytes.len() && self.acc == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_are_read_strictly() {
        assert_eq!(varint(&mut &[0x96, 0x01][..]), Ok(150));
        assert_eq!(varint(&mut &[0x80][..]), Err(WireError::TruncatedVarint));
        assert_eq!(varint(&mut &[0xff; 10][..]), Err(WireError::VarintOverflow));
        assert!(matches!(
            fields(&[0x0a, 0x05, 1]),
            Err(WireError::FieldOverrun {
                num: 1,
                len: 5,
                left: 1
            })
        ));
        assert_eq!(
            fields(&[0x0b]).err().map(|e| e.to_string()).as_deref(),
            Some("field 1 of wire type 3")
        );
    }

    #[test]
    fn bit_streams_round_trip_and_check_their_padding() {
        let widths = [62u32, 1, 64, 13, 52, 7];
        let vals: Vec<(u64, u32)> = (0..600u64)
            .map(|i| {
                let w = widths[i as usize % widths.len()];
                let v = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                (if w == 64 { v } else { v & ((1 << w) - 1) }, w)
            })
            .collect();
        let mut wr = BitWriter::with_capacity(0);
        for &(v, w) in &vals {
            wr.put(v, w);
        }
        let bytes = wr.finish();
        let total: usize = vals.iter().map(|&(_, w)| w as usize).sum();
        assert_eq!(bytes.len(), BitReader::bytes_for(total));
        let mut rd = BitReader::new(&bytes);
        for &(v, w) in &vals {
            assert_eq!(rd.get(w), Some(v));
        }
        assert!(rd.done());
        // A set padding bit, an extra byte and a short stream are all noticed.
        let mut b = bytes.clone();
        *b.last_mut().unwrap() |= 0x80;
        assert_ne!(total % 8, 0, "the stream must end in padding");
        let mut rd = BitReader::new(&b);
        for &(_, w) in &vals {
            rd.get(w).unwrap();
        }
        assert!(!rd.done());
        let mut b = bytes.clone();
        b.push(0);
        let mut rd = BitReader::new(&b);
        for &(_, w) in &vals {
            rd.get(w).unwrap();
        }
        assert!(!rd.done());
        let mut rd = BitReader::new(&bytes[..bytes.len() - 8]);
        assert!(vals.iter().any(|&(_, w)| rd.get(w).is_none()));
    }
}
