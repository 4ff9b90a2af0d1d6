//! Versioned binary files for plans and weights.
//!
//! Layout (little endian): magic (8 bytes) | format version (u32) | reserved (u32, zero) |
//! payload length (u64) | SHA-256 of the payload (32 bytes) | payload (postcard).
//! The payload hash of a plan is the plan's identity (both parties compare it). The plan
//! records a salted commitment to the weights ([`Weights::commitment`]), not their payload
//! hash: the salt stays in the weights file. Weights files are written readable by their owner
//! only (mode 0600 on unix).

use crate::error::{IrError, Result};
use crate::plan::{Plan, Weights};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// Magic of a plan file.
pub const PLAN_MAGIC: [u8; 8] = *b"C3DPLAN\0";
/// Magic of a weights file.
pub const WEIGHTS_MAGIC: [u8; 8] = *b"C3DWGHT\0";
/// The format version this build writes and reads (plans and weights alike). 5: whole-bit
/// bounds and headroom, the weights' salt, and the salted commitment in the plan.
pub const FORMAT_VERSION: u32 = 6;
/// Domain separator of the weights commitment (what precedes the salt under SHA-256).
pub const WEIGHTS_COMMITMENT_DOMAIN: &[u8] = b"c3d-weights-commitment-v1\0";
const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 32;

/// A 32-byte SHA-256 digest.
pub type Hash = [u8; 32];

/// Lower-case hex of a hash.
pub fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn encode<T: Serialize>(magic: [u8; 8], what: &'static str, value: &T) -> Result<(Vec<u8>, Hash)> {
    let payload = postcard::to_stdvec(value).map_err(|e| IrError::Format {
        what,
        msg: format!("cannot encode: {e}"),
    })?;
    let hash: Hash = Sha256::digest(&payload).into();
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&magic);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&hash);
    out.extend_from_slice(&payload);
    Ok((out, hash))
}

fn decode<T: DeserializeOwned>(
    magic: [u8; 8],
    what: &'static str,
    bytes: &[u8],
) -> Result<(T, Hash)> {
    let bad = |msg: String| IrError::Format { what, msg };
    if bytes.len() >= 8 && bytes[..8] != magic {
        let other = if magic == PLAN_MAGIC && bytes[..8] == WEIGHTS_MAGIC {
            " (this is a weights file, not a plan)"
        } else if magic == WEIGHTS_MAGIC && bytes[..8] == PLAN_MAGIC {
            " (this is a plan, not a weights file)"
        } else {
            ""
        };
        return Err(bad(format!("not a {what} file: bad magic{other}")));
    }
    if bytes.len() < HEADER_LEN {
        return Err(bad(format!(
            "file is {} bytes, shorter than the {HEADER_LEN}-byte header (truncated?)",
            bytes.len()
        )));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version < FORMAT_VERSION {
        return Err(bad(format!(
            "format version {version} is older than this build's {FORMAT_VERSION}: recompile \
             the model with `c3dc compile` (it writes the plan and its weights anew)"
        )));
    }
    if version > FORMAT_VERSION {
        return Err(bad(format!(
            "format version {version} is newer than this build's {FORMAT_VERSION}: use the \
             build that wrote it, or recompile the model with this one"
        )));
    }
    let len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != len {
        return Err(bad(format!(
            "header announces {len} payload bytes, file has {} (truncated or padded)",
            payload.len()
        )));
    }
    let stored: Hash = bytes[24..56].try_into().expect("32 bytes");
    let hash: Hash = Sha256::digest(payload).into();
    if hash != stored {
        return Err(bad("content hash mismatch: the file is corrupted".into()));
    }
    let value = postcard::from_bytes(payload).map_err(|e| bad(format!("cannot decode: {e}")))?;
    Ok((value, hash))
}

/// Writes bytes so that the destination is either the old file or the complete new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_as(path, bytes, false)
}

/// [`write_atomic`] for secrets (the weights file): the file is created readable and writable
/// by its owner only (mode 0600 on unix, before a byte is written), whatever the file it
/// replaces allowed.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_as(path, bytes, true)
}

/// Opens the temporary file: a fresh one (never one left behind or planted there), with mode
/// 0600 when `private`.
fn create_tmp(tmp: &Path, private: bool) -> std::io::Result<std::fs::File> {
    let open = || {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(if private { 0o600 } else { 0o666 });
        }
        #[cfg(not(unix))]
        let _ = private;
        o.open(tmp)
    };
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(tmp)?;
            open()
        }
        r => r,
    }
}

fn write_atomic_as(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let io = |source| IrError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = create_tmp(&tmp, private)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| IrError::Io {
        path: path.display().to_string(),
        source,
    })
}

impl Plan {
    /// Serializes the plan; returns the bytes and the plan hash.
    pub fn to_bytes(&self) -> Result<(Vec<u8>, Hash)> {
        encode(PLAN_MAGIC, "plan", self)
    }

    /// Reads and fully validates a plan; returns it with its hash.
    pub fn from_bytes(bytes: &[u8]) -> Result<(Plan, Hash)> {
        let (plan, hash): (Plan, Hash) = decode(PLAN_MAGIC, "plan", bytes)?;
        plan.validate()?;
        Ok((plan, hash))
    }

    /// The plan's hash (SHA-256 of its payload).
    pub fn hash(&self) -> Result<Hash> {
        Ok(self.to_bytes()?.1)
    }

    /// Writes the plan file atomically.
    pub fn save(&self, path: &Path) -> Result<Hash> {
        let (bytes, hash) = self.to_bytes()?;
        write_atomic(path, &bytes)?;
        Ok(hash)
    }

    /// Reads a plan file.
    pub fn load(path: &Path) -> Result<(Plan, Hash)> {
        Self::from_bytes(&read(path)?)
    }

    /// Reads the weights file that belongs to this plan and checks it
    /// ([`Plan::check_weights`]: the salted commitment, one tensor of the right size per
    /// weighted layer).
    pub fn load_weights(&self, path: &Path) -> Result<Weights> {
        let (w, _) = Weights::from_bytes(&read(path)?)?;
        self.check_weights(&w).map_err(|e| match e {
            IrError::Weights(m) => IrError::Weights(format!("{}: {m}", path.display())),
            e => e,
        })?;
        Ok(w)
    }

    /// Checks weights against the plan: their commitment (salt included) must equal the
    /// plan's `weights_hash`, and every weighted layer must have values of the right sizes in
    /// the field's centred range. What a server runs before serving a plan.
    pub fn check_weights(&self, weights: &Weights) -> Result<()> {
        let c = weights.commitment()?;
        if c != self.weights_hash {
            return Err(IrError::Weights(format!(
                "commitment {} does not match the plan's {} (weights of another compilation, \
                 or weights or salt altered since)",
                &hex(&c)[..16],
                &hex(&self.weights_hash)[..16]
            )));
        }
        weights.check_against(&self.graph, &self.fixed)
    }
}

impl Weights {
    /// Serializes the weights; returns the bytes and their payload hash.
    pub fn to_bytes(&self) -> Result<(Vec<u8>, Hash)> {
        encode(WEIGHTS_MAGIC, "weights", self)
    }

    /// Reads weights (format checks only; see [`Plan::load_weights`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<(Weights, Hash)> {
        decode(WEIGHTS_MAGIC, "weights", bytes)
    }

    /// Writes the weights file atomically, readable by its owner only ([`write_private`]).
    pub fn save(&self, path: &Path) -> Result<Hash> {
        let (bytes, hash) = self.to_bytes()?;
        write_private(path, &bytes)?;
        Ok(hash)
    }

    /// The commitment a plan records to these weights: SHA-256 of
    /// [`WEIGHTS_COMMITMENT_DOMAIN`], then the 32-byte salt, then the postcard encoding of
    /// the layers (as in the weights file). Hiding without the salt, binding by collision
    /// resistance.
    pub fn commitment(&self) -> Result<Hash> {
        let mut h = Sha256::new();
        h.update(WEIGHTS_COMMITMENT_DOMAIN);
        h.update(self.salt);
        {
            // postcard writes byte by byte: buffer them into the hash in blocks.
            let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut h);
            postcard::to_io(&self.layers, &mut w).map_err(|e| IrError::Format {
                what: "weights",
                msg: format!("cannot encode: {e}"),
            })?;
            w.flush().map_err(|e| IrError::Format {
                what: "weights",
                msg: format!("cannot hash: {e}"),
            })?;
        }
        Ok(h.finalize().into())
    }
}

/// The conventional weights path beside a plan: `plan.bin` -> `plan.bin.weights`.
pub fn weights_path_for(plan: &Path) -> std::path::PathBuf {
    let mut s = plan.as_os_str().to_owned();
    s.push(".weights");
    s.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::NodeId;
    use crate::plan::LayerWeights;

    fn weights(salt: u8) -> Weights {
        let mut w = Weights {
            salt: [salt; 32],
            ..Default::default()
        };
        w.layers.insert(
            NodeId::new(1),
            LayerWeights {
                weight: vec![3, -5, 700, 0],
                bias: vec![-1],
            },
        );
        w
    }

    /// A fresh directory under the system temp dir (no tempfile in this crate).
    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("c3d-ir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn commitment_is_salted_and_binds_weights_and_salt() {
        let w = weights(7);
        let (bytes, payload_hash) = w.to_bytes().unwrap();
        let c = w.commitment().unwrap();
        // Not the payload hash, nor a hash of the weights alone: without the salt nobody can
        // recompute it from a guessed weights file.
        assert_ne!(c, payload_hash);
        let payload = &bytes[HEADER_LEN..];
        assert_ne!(c, <[u8; 32]>::from(Sha256::digest(payload)));
        let layers = postcard::to_stdvec(&w.layers).unwrap();
        assert_ne!(c, <[u8; 32]>::from(Sha256::digest(&layers)));
        // Exactly SHA-256(domain || salt || layers).
        let mut h = Sha256::new();
        h.update(WEIGHTS_COMMITMENT_DOMAIN);
        h.update([7u8; 32]);
        h.update(&layers);
        assert_eq!(c, <[u8; 32]>::from(h.finalize()));
        // One weight, or one bit of the salt, changes it.
        let mut other = w.clone();
        other.layers.get_mut(&NodeId::new(1)).unwrap().weight[2] += 1;
        assert_ne!(other.commitment().unwrap(), c);
        let mut resalted = w.clone();
        resalted.salt[31] ^= 1;
        assert_ne!(resalted.commitment().unwrap(), c);
        // The salt travels in the weights file.
        assert_eq!(Weights::from_bytes(&bytes).unwrap().0, w);
    }

    #[test]
    fn old_formats_are_refused_with_a_recompile_hint() {
        let (mut bytes, _) = weights(1).to_bytes().unwrap();
        bytes[8..12].copy_from_slice(&4u32.to_le_bytes());
        let e = Weights::from_bytes(&bytes).unwrap_err().to_string();
        assert!(
            e.contains("format version 4 is older than this build's 6")
                && e.contains("recompile the model with `c3dc compile`"),
            "{e}"
        );
        // The same for a plan (the header is refused before the payload is decoded).
        bytes[..8].copy_from_slice(&PLAN_MAGIC);
        let e = Plan::from_bytes(&bytes).unwrap_err().to_string();
        assert!(
            e.starts_with("plan: format version 4 is older") && e.contains("recompile"),
            "{e}"
        );
        bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
        let e = Plan::from_bytes(&bytes).unwrap_err().to_string();
        assert!(e.contains("format version 7 is newer"), "{e}");
        assert_eq!(FORMAT_VERSION, 6);
    }

    #[cfg(unix)]
    #[test]
    fn weights_files_are_written_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("mode");
        let path = d.join("plan.bin.weights");
        // A world-readable file already there is replaced by a private one.
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = weights(3);
        w.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "weights file mode {mode:o}");
        assert_eq!(
            Weights::from_bytes(&std::fs::read(&path).unwrap())
                .unwrap()
                .0,
            w
        );
        // A stale temporary file of this process (say, another's, planted world-readable)
        // is not reused.
        let tmp = d.join(format!(".plan.bin.weights.{}.tmp", std::process::id()));
        std::fs::write(&tmp, b"planted").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
        w.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "weights file mode {mode:o}");
        assert!(!tmp.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
