//! Versioned binary files for plans and weights.
//!
//! Layout (little endian): magic (8 bytes) | format version (u32) | reserved (u32, zero) |
//! payload length (u64) | SHA-256 of the payload (32 bytes) | payload (postcard).
//! The payload hash of a plan is the plan's identity (both parties compare it); the weights
//! payload hash is recorded inside the plan.

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
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 4;
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
    if version != FORMAT_VERSION {
        return Err(bad(format!(
            "format version {version}; this build reads version {FORMAT_VERSION}"
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
        let mut f = std::fs::File::create(&tmp)?;
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

    /// Reads the weights file that belongs to this plan and checks it: hash equal to the
    /// plan's record, one tensor of the right size per weighted layer.
    pub fn load_weights(&self, path: &Path) -> Result<Weights> {
        let (w, hash) = Weights::from_bytes(&read(path)?)?;
        if hash != self.weights_hash {
            return Err(IrError::Weights(format!(
                "{}: hash {} does not match the plan's {} (weights of another compilation?)",
                path.display(),
                &hex(&hash)[..16],
                &hex(&self.weights_hash)[..16]
            )));
        }
        w.check_against(&self.graph, &self.fixed)?;
        Ok(w)
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

    /// Writes the weights file atomically.
    pub fn save(&self, path: &Path) -> Result<Hash> {
        let (bytes, hash) = self.to_bytes()?;
        write_atomic(path, &bytes)?;
        Ok(hash)
    }
}

/// The conventional weights path beside a plan: `plan.bin` -> `plan.bin.weights`.
pub fn weights_path_for(plan: &Path) -> std::path::PathBuf {
    let mut s = plan.as_os_str().to_owned();
    s.push(".weights");
    s.into()
}
