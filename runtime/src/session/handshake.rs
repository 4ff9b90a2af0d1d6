//! The first exchange of a session: the client states the protocol version, the hash of its
//! plan and the HE backend; the server accepts or says why not, and both stop on a mismatch.

use super::{PeerMisbehaved, SessionError};
use crate::transport::{sanitize, Channel, Stream};
use crate::wire::Tag;

/// Version of the session protocol; bumped whenever a message changes.
pub const PROTOCOL_VERSION: u32 = 4;
const MAGIC: &[u8; 8] = b"C3DRUN\0\0";
/// Handshake frames are tiny: anything larger is refused before it is read.
const MAX_HELLO: usize = 1024;

fn hello(plan_hash: &[u8; 32], backend: &str) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    b.extend_from_slice(plan_hash);
    b.extend_from_slice(backend.as_bytes());
    b
}

/// Client side: returns once the server has accepted.
pub fn client<S: Stream>(
    ch: &mut Channel<S>,
    plan_hash: &[u8; 32],
    backend: &str,
) -> Result<(), SessionError> {
    ch.set_step("handshake");
    ch.send(Tag::Hello, &hello(plan_hash, backend))?;
    let (tag, body) = ch.recv_any()?;
    match Tag::from_u8(tag) {
        Some(Tag::Accept) if body.is_empty() => Ok(()),
        Some(Tag::Refuse) => Err(SessionError::Handshake(format!(
            "the server refused: {}",
            sanitize(&String::from_utf8_lossy(&body), 300)
        ))),
        _ => Err(PeerMisbehaved::HandshakeAnswer { tag }.into()),
    }
}

/// Server side: checks the client's hello against what this server runs; on a mismatch the
/// client is told why and the session ends with the same reason.
pub fn server<S: Stream>(
    ch: &mut Channel<S>,
    plan_hash: &[u8; 32],
    backend: &str,
) -> Result<(), SessionError> {
    ch.set_step("handshake");
    let max = crate::transport::DEFAULT_MAX_FRAME;
    ch.set_max_frame(MAX_HELLO);
    let got = ch.recv(Tag::Hello);
    ch.set_max_frame(max);
    let body = got.map_err(PeerMisbehaved::NoValidHello)?;
    let reason = if body.len() < 44 || &body[..8] != MAGIC {
        Some("not a c3d-run hello".to_string())
    } else {
        let version = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
        let hash: &[u8] = &body[12..44];
        // Peer text: escaped and cut before it reaches a log or the peer's terminal.
        let their_backend = sanitize(&String::from_utf8_lossy(&body[44..]), 40);
        if version != PROTOCOL_VERSION {
            Some(format!(
                "protocol version {version}; this server speaks version {PROTOCOL_VERSION}"
            ))
        } else if hash != plan_hash {
            Some(format!(
                "plan mismatch: the client's plan has hash {}, this server serves {}",
                c3d_ir::format::hex(hash.try_into().expect("32 bytes")),
                c3d_ir::format::hex(plan_hash)
            ))
        } else if their_backend != backend {
            Some(format!(
                "HE backend `{their_backend}`; this server runs `{backend}`"
            ))
        } else {
            None
        }
    };
    match reason {
        None => {
            ch.send(Tag::Accept, &[])?;
            Ok(())
        }
        Some(r) => {
            // Best effort: the client may already be gone.
            let _ = ch.send(Tag::Refuse, r.as_bytes());
            Err(SessionError::Handshake(r))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_in_the_handshake_is_escaped_on_both_sides() {
        let (mut c, mut s) = Channel::pair().unwrap();
        let hash = [7u8; 32];
        let mut body = hello(&hash, "fhe.rs");
        body.truncate(44);
        body.extend_from_slice("x\x1b[2J\x1b]0;owned\x07\n2026 fake log line".as_bytes());
        c.send(Tag::Hello, &body).unwrap();
        let e = server(&mut s, &hash, "fhe.rs").unwrap_err().to_string();
        assert!(!e.chars().any(|ch| ch.is_control()), "{e:?}");
        assert!(e.contains("\\u{1b}"), "{e}");
        // The refusal the client reads is escaped as well.
        let (tag, _) = c.recv_any().unwrap();
        assert_eq!(Tag::from_u8(tag), Some(Tag::Refuse));
        let (mut c2, mut s2) = Channel::pair().unwrap();
        s2.send(Tag::Refuse, b"\x1b[31mred\x1b[0m").unwrap();
        let e = client(&mut c2, &hash, "fhe.rs").unwrap_err().to_string();
        assert!(!e.chars().any(|ch| ch.is_control()), "{e:?}");
    }
}
