//! The BFV backend over Microsoft SEAL 4.0 through `seal_fhe` (AGPL-3.0; feature `seal`).
//! SEAL draws its own encryption randomness from the OS; the `rng` arguments feed only the
//! flooding noise here. Ciphertexts are in coefficient form (SEAL's BFV default), so flooding
//! adds to c0's RNS residues directly through SEAL's C API.
//!
//! SEAL's own load (`is_valid_for`) checks that a ciphertext's parms_id names a data level of
//! the context, that its limb count, degree, buffer size, scale and correction factor match,
//! and that every residue is below its modulus; a public key must moreover be two NTT-form
//! polynomials at the key level. It leaves open the number of a ciphertext's polynomials (0 or
//! 2 to 16), NTT form (which BFV does not compute on) and which data level it is at: those are
//! checked here. So is the envelope SEAL reads first: it sizes its decompression buffer by
//! the size its header claims, without comparing it with the bytes it was given (a large claim
//! crashed it), and inflates whatever zstd stream follows (a small one can claim gigabytes).

use super::{
    check_flood, check_len, flood_residues, modulus_bits_of, switch_target_fits, Backend, CtLevel,
    Encoding, HeError, NoiseBudget, Result, DEGREE,
};
use rand::{CryptoRng, RngCore};
use seal_fhe::{
    BFVEncoder, BFVEvaluator, BfvEncryptionParametersBuilder, Ciphertext, CoefficientModulus,
    Context, Decryptor, Encryptor, Evaluator, FromBytes, KeyGenerator, Modulus, Plaintext,
    PublicKey, SecretKey, SecurityLevel, ToBytes,
};
use std::os::raw::{c_long, c_void};

// SEAL's own C export, linked in by seal_fhe, which wraps the getter but not the setter.
extern "C" {
    fn Ciphertext_GetDataAt1(thisptr: *mut c_void, index: u64, data: *mut u64) -> c_long;
    fn Ciphertext_SetDataAt(thisptr: *mut c_void, index: u64, value: u64) -> c_long;
}

/// Limb sizes: 218 bits in all (the 128-bit bound at N = 8192); SEAL keeps the last limb
/// for key switching (unused here: no relinearisation, no rotations), so it is small and
/// ciphertexts compute at the first four (about 199 bits).
const MODULI_BITS: [i32; 5] = [60, 60, 60, 20, 18];

/// SEAL's serialisation header (`seal::Serialization::SEALHeader`, little-endian): magic (2
/// bytes), header size (1), version major and minor (1 each), compression mode (1), reserved
/// (2), then the size of the whole serialisation (8).
const HEADER_LEN: usize = 16;
const SEAL_MAGIC: u16 = 0xA15E;
/// The only compression `seal_fhe` writes (`compr_mode_type::zstd`).
const COMPR_ZSTD: u8 = 2;
/// zstd's largest block (RFC 8878: Block_Maximum_Size is at most 128 KiB; libzstd refuses a
/// block that decompresses to more).
const ZSTD_BLOCK_MAX: u64 = 128 << 10;
/// Most bytes a ciphertext or public key may inflate to: twice the largest valid one (two
/// polynomials over every limb, the key level's), and one zstd block to spare.
const MAX_INFLATED: u64 = 2 * (2 * MODULI_BITS.len() * DEGREE * 8) as u64 + ZSTD_BLOCK_MAX;

/// Why bytes are no zstd stream whose inflated size can be bounded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ZstdError {
    #[error("truncated zstd stream")]
    Truncated,
    #[error("no compressed data")]
    Empty,
    #[error("not a zstd frame")]
    NotAFrame,
    #[error("zstd frame header with its reserved bit set")]
    ReservedBit,
    #[error("a zstd block of {0} bytes")]
    BlockSize(u64),
    #[error("a zstd block of the reserved type")]
    ReservedBlock,
}

/// An upper bound on what a zstd stream inflates to, read from its frame and block headers
/// (RFC 8878) without decompressing: a raw or RLE block's size, at most [`ZSTD_BLOCK_MAX`] for
/// a compressed one. Refuses anything but a sequence of well-formed zstd frames.
fn zstd_bound(mut b: &[u8]) -> std::result::Result<u64, ZstdError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> std::result::Result<&'a [u8], ZstdError> {
        if b.len() < n {
            return Err(ZstdError::Truncated);
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    if b.is_empty() {
        return Err(ZstdError::Empty);
    }
    let mut total = 0u64;
    while !b.is_empty() {
        let magic = take(&mut b, 4)?;
        if magic != [0x28, 0xb5, 0x2f, 0xfd] {
            return Err(ZstdError::NotAFrame);
        }
        let fhd = take(&mut b, 1)?[0];
        if fhd & 0x08 != 0 {
            return Err(ZstdError::ReservedBit);
        }
        let single_segment = fhd & 0x20 != 0;
        let window = usize::from(!single_segment);
        let dict_id = [0, 1, 2, 4][usize::from(fhd & 3)];
        let content_size = match fhd >> 6 {
            0 => usize::from(single_segment),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        take(&mut b, window + dict_id + content_size)?;
        loop {
            let h = take(&mut b, 3)?;
            let h = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
            let (last, kind, size) = (h & 1 != 0, (h >> 1) & 3, u64::from(h >> 3));
            if size > ZSTD_BLOCK_MAX {
                return Err(ZstdError::BlockSize(size));
            }
            let (inflated, stored) = match kind {
                0 => (size, size),
                1 => (size, 1),
                2 => (ZSTD_BLOCK_MAX, size),
                _ => return Err(ZstdError::ReservedBlock),
            };
            take(&mut b, stored as usize)?;
            total += inflated;
            if last {
                break;
            }
        }
        if fhd & 0x04 != 0 {
            take(&mut b, 4)?;
        }
    }
    Ok(total)
}

/// Checks SEAL's envelope before SEAL reads it: its header, a size equal to the bytes given (no
/// more than [`MAX_INFLATED`]), zstd compression, and a payload that cannot inflate past
/// [`MAX_INFLATED`].
fn check_envelope(bytes: &[u8], what: &str) -> Result<()> {
    let bad = |m: String| HeError::Malformed(format!("{what}: {m}"));
    if bytes.len() < HEADER_LEN {
        return Err(bad(format!(
            "{} bytes, fewer than SEAL's {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if bytes.len() as u64 > MAX_INFLATED {
        return Err(bad(format!(
            "{} bytes, more than any valid one inflates to",
            bytes.len()
        )));
    }
    let magic = u16::from_le_bytes([bytes[0], bytes[1]]);
    if magic != SEAL_MAGIC || usize::from(bytes[2]) != HEADER_LEN {
        return Err(bad("not a SEAL serialisation (magic or header size)".into()));
    }
    if bytes[3] != 4 {
        return Err(bad(format!("SEAL version {}, expected 4", bytes[3])));
    }
    if bytes[5] != COMPR_ZSTD {
        return Err(bad(format!(
            "compression mode {}, expected zstd ({COMPR_ZSTD})",
            bytes[5]
        )));
    }
    if bytes[6..8] != [0, 0] {
        return Err(bad("reserved header bytes are not zero".into()));
    }
    let size = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if size != bytes.len() as u64 {
        return Err(bad(format!(
            "SEAL's header claims {size} bytes, {} were sent",
            bytes.len()
        )));
    }
    let inflated = zstd_bound(&bytes[HEADER_LEN..]).map_err(|e| bad(e.to_string()))?;
    if inflated > MAX_INFLATED {
        return Err(bad(format!(
            "the zstd payload may inflate to {inflated} bytes, more than {MAX_INFLATED}"
        )));
    }
    Ok(())
}

/// BFV over SEAL for one plaintext modulus.
pub struct Seal {
    ctx: Context,
    eval: BFVEvaluator,
    encoder: BFVEncoder,
    p: u64,
    data_moduli: Vec<u64>,
    /// How many mod switches a flooded ciphertext takes before it is sent.
    switches: usize,
}

// The SEAL handles are used behind &self only for operations SEAL documents as thread-safe
// (evaluation, encoding); seal_fhe itself declares its types Send and Sync.
unsafe impl Send for Seal {}
unsafe impl Sync for Seal {}

/// The client's keys: SEAL encrypts with the public key, decrypts with the secret key.
pub struct SealKeys {
    encryptor: Encryptor,
    decryptor: Decryptor,
    pk: PublicKey,
    _sk: SecretKey,
}
unsafe impl Send for SealKeys {}
unsafe impl Sync for SealKeys {}

/// The key owner's public key on the server: an encryptor for encryptions of zero.
pub struct SealPk {
    encryptor: Encryptor,
}
// As for `Seal`: SEAL documents encryption with a shared encryptor as thread-safe.
unsafe impl Send for SealPk {}
unsafe impl Sync for SealPk {}

fn err<E: std::fmt::Debug>(e: E) -> HeError {
    HeError::Backend {
        backend: "SEAL",
        msg: format!("{e:?}"),
    }
}

impl Seal {
    /// Parameters for plaintext modulus `p` (SEAL allows at most 60 bits) at N = 8192.
    pub fn new(p: u64) -> Result<Self> {
        if p >= 1 << 60 {
            return Err(HeError::Params(format!(
                "SEAL plaintext moduli are at most 60 bits, p = {p} has {}",
                64 - p.leading_zeros()
            )));
        }
        let coeff = CoefficientModulus::create(DEGREE as u64, &MODULI_BITS).map_err(err)?;
        let all: Vec<u64> = coeff.iter().map(Modulus::value).collect();
        let params = BfvEncryptionParametersBuilder::new()
            .set_poly_modulus_degree(DEGREE as u64)
            .set_coefficient_modulus(coeff)
            .set_plain_modulus_u64(p)
            .build()
            .map_err(err)?;
        let ctx = Context::new(&params, true, SecurityLevel::TC128).map_err(err)?;
        let eval = BFVEvaluator::new(&ctx).map_err(err)?;
        let encoder = BFVEncoder::new(&ctx).map_err(err)?;
        let data_moduli = all[..all.len() - 1].to_vec();
        let mut switches = 0;
        for k in 1..data_moduli.len() {
            if switch_target_fits(modulus_bits_of(&data_moduli[..data_moduli.len() - k]), p) {
                switches = k;
            }
        }
        Ok(Seal {
            ctx,
            eval,
            encoder,
            p,
            data_moduli,
            switches,
        })
    }

    /// RNS limbs of a ciphertext at the level `at`.
    fn limbs_at(&self, at: CtLevel) -> usize {
        match at {
            CtLevel::Fresh => self.data_moduli.len(),
            CtLevel::Reply => self.data_moduli.len() - self.switches,
        }
    }

    /// Checks what SEAL leaves open: two polynomials, coefficient form, a data level. Returns
    /// the limb count, which names the level (SEAL checked it matches the parms_id, and each
    /// level of the chain drops one limb).
    fn check_ct(&self, ct: &Ciphertext) -> Result<usize> {
        let bad = |m: String| HeError::Malformed(format!("ciphertext: {m}"));
        if ct.num_polynomials() != 2 {
            return Err(bad(format!(
                "{} polynomials, expected 2",
                ct.num_polynomials()
            )));
        }
        if ct.is_ntt_form() {
            return Err(bad("in NTT form, expected coefficient form".into()));
        }
        let limbs = ct.coeff_modulus_size() as usize;
        if !(1..=self.data_moduli.len()).contains(&limbs) {
            return Err(bad(format!("{limbs} limbs, not a data level")));
        }
        Ok(limbs)
    }

    /// Reads a ciphertext whose limb count is one of `limbs`.
    fn read_ct(&self, bytes: &[u8], limbs: &[usize]) -> Result<Ciphertext> {
        check_envelope(bytes, "ciphertext")?;
        let ct = Ciphertext::from_bytes(&self.ctx, bytes)
            .map_err(|e| HeError::Malformed(format!("ciphertext: {e:?}")))?;
        let n = self.check_ct(&ct)?;
        if !limbs.contains(&n) {
            let top = self.data_moduli.len();
            let want: Vec<String> = limbs.iter().map(|l| (top - l).to_string()).collect();
            return Err(HeError::Malformed(format!(
                "ciphertext: at level {} ({n} limbs), expected level {}",
                top - n,
                want.join(" or ")
            )));
        }
        Ok(ct)
    }

    fn plaintext(&self, values: &[u64], enc: Encoding) -> Result<Plaintext> {
        check_len(values.len())?;
        match enc {
            Encoding::Coeff => {
                let mut pt = Plaintext::new().map_err(err)?;
                pt.resize(DEGREE);
                for (i, &v) in values.iter().enumerate() {
                    pt.set_coefficient(i, v % self.p);
                }
                Ok(pt)
            }
            Encoding::Slots => {
                let mut v = values.to_vec();
                v.resize(DEGREE, 0);
                self.encoder.encode_unsigned(&v).map_err(err)
            }
        }
    }
}

impl NoiseBudget for Seal {
    fn degree(&self) -> usize {
        DEGREE
    }

    fn plain_modulus(&self) -> u64 {
        self.p
    }

    fn modulus_bits(&self) -> u32 {
        modulus_bits_of(&self.data_moduli)
    }

    fn fresh_noise_bits(&self) -> u32 {
        // Public-key encryption: e0 + e u + e1 s with |e| <= 19 and ternary u, s: under
        // 2 N 19 + 19 < 2^19.
        19
    }
}

impl Backend for Seal {
    type Sk = SealKeys;
    type Ct = Ciphertext;
    type Pt = Plaintext;
    type Pk = SealPk;

    fn name(&self) -> &'static str {
        "SEAL"
    }

    fn keygen<R: RngCore + CryptoRng>(&self, _rng: &mut R) -> Result<SealKeys> {
        let kg = KeyGenerator::new(&self.ctx).map_err(err)?;
        let sk = kg.secret_key();
        let pk = kg.create_public_key();
        Ok(SealKeys {
            encryptor: Encryptor::with_public_and_secret_key(&self.ctx, &pk, &sk).map_err(err)?,
            decryptor: Decryptor::new(&self.ctx, &sk).map_err(err)?,
            pk,
            _sk: sk,
        })
    }

    fn public_key<R: RngCore + CryptoRng>(&self, sk: &SealKeys, _rng: &mut R) -> Result<Vec<u8>> {
        sk.pk.as_bytes().map_err(err)
    }

    fn read_public_key(&self, bytes: &[u8]) -> Result<SealPk> {
        // Past the envelope, SEAL's load checks all a public key needs (see the module's
        // notes).
        check_envelope(bytes, "public key")?;
        let pk = PublicKey::from_bytes(&self.ctx, bytes)
            .map_err(|e| HeError::Malformed(format!("public key: {e:?}")))?;
        Ok(SealPk {
            encryptor: Encryptor::with_public_key(&self.ctx, &pk).map_err(err)?,
        })
    }

    fn encrypt<R: RngCore + CryptoRng>(
        &self,
        sk: &SealKeys,
        values: &[u64],
        enc: Encoding,
        _rng: &mut R,
    ) -> Result<Ciphertext> {
        sk.encryptor
            .encrypt(&self.plaintext(values, enc)?)
            .map_err(err)
    }

    fn decrypt(&self, sk: &SealKeys, ct: &Ciphertext, enc: Encoding) -> Result<Vec<u64>> {
        self.check_ct(ct)?;
        let pt = sk.decryptor.decrypt(ct).map_err(err)?;
        match enc {
            Encoding::Coeff => {
                let mut v: Vec<u64> = (0..pt.len().min(DEGREE))
                    .map(|i| pt.get_coefficient(i))
                    .collect();
                v.resize(DEGREE, 0);
                Ok(v)
            }
            Encoding::Slots => self.encoder.decode_unsigned(&pt).map_err(err),
        }
    }

    fn prepare(&self, values: &[u64], enc: Encoding) -> Result<Plaintext> {
        // SEAL centres plaintext coefficients itself in multiply_plain.
        self.plaintext(values, enc)
    }

    fn mul_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        if self.check_ct(ct)? != self.data_moduli.len() {
            return Err(HeError::Params(
                "plaintext products run at the full modulus".into(),
            ));
        }
        self.eval.multiply_plain(ct, pt).map_err(err)
    }

    fn add_assign(&self, acc: &mut Ciphertext, ct: &Ciphertext) -> Result<()> {
        if self.check_ct(acc)? != self.check_ct(ct)? {
            return Err(HeError::Params(
                "adding ciphertexts of different levels".into(),
            ));
        }
        self.eval.add_inplace(acc, ct).map_err(err)
    }

    fn add_plain_assign(&self, ct: &mut Ciphertext, values: &[u64], enc: Encoding) -> Result<()> {
        self.check_ct(ct)?;
        let pt = self.plaintext(values, enc)?;
        self.eval.add_plain_inplace(ct, &pt).map_err(err)
    }

    fn flood<R: RngCore + CryptoRng>(
        &self,
        ct: &mut Ciphertext,
        bits: u32,
        pk: &SealPk,
        rng: &mut R,
    ) -> Result<()> {
        check_flood(bits, self.modulus_bits(), self.p)?;
        // Two coefficient-form polynomials at the top level, which the raw writes below rely on.
        if self.check_ct(ct)? != self.data_moduli.len() {
            return Err(HeError::Params(
                "flooding expects a ciphertext at the top level".into(),
            ));
        }
        let zero = pk
            .encryptor
            .encrypt(&self.plaintext(&[0], Encoding::Coeff)?)
            .map_err(err)?;
        self.eval.add_inplace(ct, &zero).map_err(err)?;
        let noise = flood_residues(bits, &self.data_moduli, rng)?;
        let h = ct.get_handle();
        // SEAL's layout is poly-major, then limb, then coefficient: poly 0's residues sit at
        // the same indices as the noise's.
        for (j, &q) in self.data_moduli.iter().enumerate() {
            for i in 0..DEGREE {
                let idx = j * DEGREE + i;
                let e = noise[idx];
                let idx = idx as u64;
                let mut v = 0u64;
                // SAFETY: `h` is a live SEAL ciphertext; idx < size * coeff_modulus_size * N
                // (checked above: poly 0, a data-level limb, i < N).
                unsafe {
                    if Ciphertext_GetDataAt1(h, idx, &mut v) != 0 {
                        return Err(err("reading a ciphertext coefficient"));
                    }
                    // Both below q < 2^62: one conditional subtraction, no division.
                    let sum = v + e;
                    let sum = sum - q * u64::from(sum >= q);
                    if Ciphertext_SetDataAt(h, idx, sum) != 0 {
                        return Err(err("writing a ciphertext coefficient"));
                    }
                }
            }
        }
        for _ in 0..self.switches {
            let next = self.eval.mod_switch_to_next(ct).map_err(err)?;
            *ct = next;
        }
        Ok(())
    }

    fn serialize(&self, ct: &Ciphertext) -> Result<Vec<u8>> {
        ct.as_bytes().map_err(err)
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<Ciphertext> {
        self.read_ct(
            bytes,
            &[self.limbs_at(CtLevel::Fresh), self.limbs_at(CtLevel::Reply)],
        )
    }

    fn deserialize_at(&self, bytes: &[u8], at: CtLevel) -> Result<Ciphertext> {
        self.read_ct(bytes, &[self.limbs_at(at)])
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance::{self, assert_malformed};
    use super::*;

    extern "C" {
        fn Ciphertext_SetIsNTTForm(thisptr: *mut c_void, is_ntt_form: bool) -> c_long;
    }

    #[test]
    fn conforms_at_delphis_prime() {
        conformance::check_all(&Seal::new(c3d_ir::fixed::DELPHI_PRIME).unwrap());
    }

    #[test]
    fn seal_ciphertexts_arrive_only_at_their_protocol_level() {
        conformance::check_wire(&Seal::new(c3d_ir::fixed::DELPHI_PRIME).unwrap());
    }

    #[test]
    fn random_mutations_of_seal_wire_bytes_never_panic() {
        conformance::fuzz_wire(&Seal::new(c3d_ir::fixed::DELPHI_PRIME).unwrap(), 240);
    }

    #[test]
    fn seal_refuses_ntt_form_and_three_polynomial_ciphertexts() {
        let be = Seal::new(c3d_ir::fixed::DELPHI_PRIME).unwrap();
        let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(7);
        let keys = be.keygen(&mut rng).unwrap();
        let pk = be
            .read_public_key(&be.public_key(&keys, &mut rng).unwrap())
            .unwrap();
        let ct = be
            .encrypt(&keys, &[1, 2, 3], Encoding::Coeff, &mut rng)
            .unwrap();
        let one = be.prepare(&[1], Encoding::Coeff).unwrap();
        // SEAL loads an NTT-form BFV ciphertext (its residues are in range) and refuses it
        // only at each operation; refused here at the door.
        let ntt = ct.clone();
        // SAFETY: a live SEAL ciphertext; only its form flag changes.
        assert_eq!(
            unsafe { Ciphertext_SetIsNTTForm(ntt.get_handle(), true) },
            0
        );
        let bytes = be.serialize(&ntt).unwrap();
        let msg = "ciphertext: in NTT form, expected coefficient form";
        assert_malformed(be.deserialize(&bytes), msg);
        assert_malformed(be.deserialize_at(&bytes, CtLevel::Fresh), msg);
        assert_malformed(be.mul_plain(&ntt, &one), msg);
        assert_malformed(be.add_assign(&mut ct.clone(), &ntt), msg);
        assert_malformed(
            be.add_plain_assign(&mut ntt.clone(), &[1], Encoding::Coeff),
            msg,
        );
        assert_malformed(be.flood(&mut ntt.clone(), 60, &pk, &mut rng), msg);
        assert_malformed(be.decrypt(&keys, &ntt, Encoding::Coeff), msg);
        // A product of two ciphertexts has three polynomials.
        let three = be.eval.multiply(&ct, &ct).unwrap();
        assert_eq!(three.num_polynomials(), 3);
        let msg = "ciphertext: 3 polynomials, expected 2";
        assert_malformed(be.deserialize(&be.serialize(&three).unwrap()), msg);
        assert_malformed(be.mul_plain(&three, &one), msg);
        assert_malformed(be.decrypt(&keys, &three, Encoding::Coeff), msg);
        // A ciphertext is not a public key (SEAL wants NTT form at the key level).
        assert_malformed(
            be.read_public_key(&be.serialize(&ct).unwrap()),
            "public key",
        );
    }

    /// SEAL's envelope around a zstd stream of `blocks` RLE blocks of 128 KiB of zeros, with
    /// the header of `honest`.
    fn zstd_bomb(honest: &[u8], blocks: u32) -> Vec<u8> {
        // Frame magic; no content size, a 128 KiB window.
        let mut z = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38];
        for i in 0..blocks {
            let h = u32::from(i + 1 == blocks) | 1 << 1 | (128 << 10) << 3;
            z.extend(&h.to_le_bytes()[..3]);
            z.push(0);
        }
        let mut b = honest[..8].to_vec();
        b.extend(((HEADER_LEN + z.len()) as u64).to_le_bytes());
        b.extend(z);
        b
    }

    #[test]
    fn seal_refuses_envelopes_it_would_crash_or_balloon_on() {
        let be = Seal::new(c3d_ir::fixed::DELPHI_PRIME).unwrap();
        let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(8);
        let keys = be.keygen(&mut rng).unwrap();
        let pk_bytes = be.public_key(&keys, &mut rng).unwrap();
        let ct = be
            .encrypt(&keys, &[1, 2, 3], Encoding::Coeff, &mut rng)
            .unwrap();
        let honest = be.serialize(&ct).unwrap();
        for b in [&honest, &pk_bytes] {
            let bound = zstd_bound(&b[HEADER_LEN..]).unwrap();
            assert!(bound <= MAX_INFLATED, "{bound} > {MAX_INFLATED}");
            assert_eq!(b[5], COMPR_ZSTD);
        }
        // A header claiming more bytes than were sent: SEAL allocated its decompression buffer
        // by the claim and crashed (SIGSEGV in SafeByteBuffer, found by the mutation test).
        let mut claim = honest.clone();
        claim[8..16].copy_from_slice(&274_878_356_620u64.to_le_bytes());
        let msg = format!("claims 274878356620 bytes, {} were sent", honest.len());
        assert_malformed(be.deserialize(&claim), &msg);
        let mut claim = pk_bytes.clone();
        claim[12] = 0x40;
        assert_malformed(
            be.read_public_key(&claim),
            "public key: SEAL's header claims",
        );
        // Other compression modes, another magic, stray reserved bytes, trailing bytes.
        for (at, v, needle) in [
            (5, 0, "compression mode 0, expected zstd"),
            (5, 1, "compression mode 1, expected zstd"),
            (0, 0, "not a SEAL serialisation"),
            (2, 17, "not a SEAL serialisation"),
            (3, 3, "SEAL version 3, expected 4"),
            (6, 1, "reserved header bytes"),
        ] {
            let mut b = honest.clone();
            b[at] = v;
            assert_malformed(be.deserialize(&b), needle);
        }
        let mut longer = honest.clone();
        longer.push(0);
        assert_malformed(be.deserialize(&longer), "were sent");
        let huge = vec![0; MAX_INFLATED as usize + 1];
        assert_malformed(be.deserialize(&huge), "more than any valid one");
        // A zstd stream of RLE blocks: 64 MiB of zeros from 2 KiB is refused unread; 512 KiB
        // passes the bound and SEAL refuses what it inflates to.
        assert_malformed(
            be.deserialize(&zstd_bomb(&honest, 512)),
            "may inflate to 67108864",
        );
        assert_malformed(
            be.read_public_key(&zstd_bomb(&honest, 512)),
            "may inflate to",
        );
        assert_malformed(be.deserialize(&zstd_bomb(&honest, 4)), "ciphertext: ");
        let mut cut = zstd_bomb(&honest, 4);
        cut.truncate(cut.len() - 1);
        let n = cut.len() as u64;
        cut[8..16].copy_from_slice(&n.to_le_bytes());
        assert_malformed(be.deserialize(&cut), "truncated zstd stream");
    }

    #[test]
    fn seal_runs_the_linear_protocol() {
        use crate::linear::{ConvShape, Packing};
        let be = std::sync::Arc::new(Seal::new(c3d_ir::fixed::DELPHI_PRIME).unwrap());
        let s = ConvShape {
            c_in: 5,
            c_out: 7,
            input: [4, 6, 5],
            kernel: [3, 3, 3],
            stride: [1, 2, 1],
            dilation: [1; 3],
            pad_begin: [1; 3],
            pad_end: [1; 3],
            depthwise: false,
        };
        let pk = Packing {
            tile: [3, 4, 2],
            c_t: 2,
            m_o: 3,
            degree: 8192,
        };
        crate::linear::protocol::tests::run_with(be.clone(), &s, Some(pk), 12, 21);
        crate::linear::protocol::tests::run_with(
            be,
            &ConvShape::fully_connected(200, 30),
            None,
            14,
            22,
        );
    }

    #[test]
    fn refuses_primes_above_60_bits() {
        let p = *c3d_ir::fixed::candidate_primes().last().unwrap();
        assert!(matches!(Seal::new(p), Err(HeError::Params(_))));
    }
}
