//! The one registry of wire messages: every frame's tag byte, who sends it and when.
//!
//! Ranges: 0x01..=0x07 session set-up (handshake, keys, placement), 0x30..=0x3F oblivious
//! transfer, 0x40..=0x4F the offline linear protocol, 0x50..=0x5F Beaver material,
//! 0x60..=0x6F the online session, 0x70..=0x7F garbled layers, 0x80..=0x8F layers by OT-based
//! comparisons (their order within a layer says who sends), 0xFD..=0xFE the transport's
//! own frames. The byte values are the protocol: changing one breaks recorded sessions and
//! peers of other builds (bump [`crate::session::handshake::PROTOCOL_VERSION`] if you must).

/// The tag of a frame (the byte after its length).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tag {
    /// Client to server, first frame: magic, protocol version, plan hash, HE backend.
    Hello = 0x01,
    /// Server to client: the hello matches what the server runs (empty payload).
    Accept = 0x02,
    /// Server to client: the hello does not match; the payload says why (text).
    Refuse = 0x03,
    /// Client to server: the client has its clip, the online phase starts (empty payload).
    StartOnline = 0x04,
    /// Client to server, set-up: the BFV public key the server floods replies with.
    PublicKey = 0x05,
    /// Server to client, set-up: the most bytes of garbled material it keeps per session.
    KeepLimit = 0x06,
    /// Client to server, set-up: the garbled steps it streams online (u32 each).
    Streamed = 0x07,
    /// Base-OT sender to receiver: the sender's point A.
    OtBaseA = 0x30,
    /// Base-OT receiver to sender: the receiver's points B_i.
    OtBaseB = 0x31,
    /// OT-extension receiver to sender: one chunk's extension matrix u.
    IknpU = 0x32,
    /// OT-extension sender to receiver: one chunk's encrypted message pairs.
    IknpY = 0x33,
    /// Silent-OT sender to receiver, offline: one round's GGM tree messages (per tree, h masked
    /// level pairs and the correction, 16-byte blocks).
    SilentPprf = 0x34,
    /// Client to server, offline linear layer: one input ciphertext of a tile.
    LinearIn = 0x40,
    /// Server to client, offline linear layer: one flooded output ciphertext of a tile.
    LinearOut = 0x41,
    /// Client to server, Beaver triples or squares: encryptions of the client's a (and b).
    BeaverA = 0x50,
    /// Server to client, Beaver triples or squares: the flooded encrypted product share.
    BeaverC = 0x51,
    /// Both ways, Beaver multiplication online: a party's shares of the masked openings.
    BeaverOpen = 0x52,
    /// Client to server, online: the masked input x - r.
    Input = 0x60,
    /// Server to client, online, last frame: the server's share of the revealed tensor.
    Reveal = 0x61,
    /// Client to server, online after a Beaver square: its share minus its fresh mask.
    Rerandomise = 0x62,
    /// Server to client, garbled layer: the garbled tables (offline; online for a layer the
    /// client streams).
    GcTables = 0x70,
    /// Server to client, garbled layer online: the garbler's input labels.
    GcGarblerLabels = 0x71,
    /// Client to server, garbled layer online: the output labels the client decoded to.
    GcOutputLabels = 0x72,
    /// OT-based layer online, the chooser to the COT sender: choice-fix bits (d = b xor c) of
    /// the COTs it chooses on (client to server on the forward COTs, server to client on the
    /// reverse ones).
    CmpChoiceFix = 0x80,
    /// Server to client, OT-based layer online: the masked tables of 1-out-of-2^m OTs (the
    /// millionaire's leaves, the end of DReLU and of truncation).
    CmpTables = 0x81,
    /// Either party, OT-based layer online: its openings of a batch of AND gates (the client's
    /// first, then the server's).
    CmpAndOpen = 0x82,
    /// Either party, OT-based layer online: the corrections of additive COTs in F_p (the
    /// multiplexer; the server's on the forward COTs, then the client's on the reverse ones).
    CmpCorrection = 0x83,
    /// Either party, last frame: it gives up, and says why (an abort code, u16).
    Abort = 0xFD,
    /// Either party: a chunk of a streamed vector, after the stream's header frame.
    Chunk = 0xFE,
}

impl Tag {
    /// Every tag, in byte order.
    pub const ALL: [Tag; 29] = [
        Tag::Hello,
        Tag::Accept,
        Tag::Refuse,
        Tag::StartOnline,
        Tag::PublicKey,
        Tag::KeepLimit,
        Tag::Streamed,
        Tag::OtBaseA,
        Tag::OtBaseB,
        Tag::IknpU,
        Tag::IknpY,
        Tag::SilentPprf,
        Tag::LinearIn,
        Tag::LinearOut,
        Tag::BeaverA,
        Tag::BeaverC,
        Tag::BeaverOpen,
        Tag::Input,
        Tag::Reveal,
        Tag::Rerandomise,
        Tag::GcTables,
        Tag::GcGarblerLabels,
        Tag::GcOutputLabels,
        Tag::CmpChoiceFix,
        Tag::CmpTables,
        Tag::CmpAndOpen,
        Tag::CmpCorrection,
        Tag::Abort,
        Tag::Chunk,
    ];

    /// The tag of a byte, if it is one.
    pub fn from_u8(b: u8) -> Option<Tag> {
        Tag::ALL.iter().copied().find(|t| *t as u8 == b)
    }
}

impl From<Tag> for u8 {
    fn from(t: Tag) -> u8 {
        t as u8
    }
}

/// A byte that is no tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:#04x} is not a message tag")]
pub struct UnknownTag(pub u8);

impl TryFrom<u8> for Tag {
    type Error = UnknownTag;

    fn try_from(b: u8) -> Result<Tag, UnknownTag> {
        Tag::from_u8(b).ok_or(UnknownTag(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_distinct_and_round_trip() {
        let bytes: std::collections::BTreeSet<u8> = Tag::ALL.iter().map(|&t| t as u8).collect();
        assert_eq!(bytes.len(), Tag::ALL.len(), "two tags share a byte");
        for t in Tag::ALL {
            assert_eq!(Tag::from_u8(t as u8), Some(t));
            assert_eq!(Tag::try_from(u8::from(t)), Ok(t));
        }
        let unknown = (0..=255u8).filter(|b| Tag::from_u8(*b).is_none()).count();
        assert_eq!(unknown, 256 - Tag::ALL.len());
        assert_eq!(Tag::try_from(0x00), Err(UnknownTag(0x00)));
    }

    #[test]
    fn byte_values_are_the_recorded_ones() {
        // Recorded sessions (tests/tests/fuzz_messages.rs) and older peers depend on these.
        let want: [(Tag, u8); 9] = [
            (Tag::Hello, 0x01),
            (Tag::Streamed, 0x07),
            (Tag::OtBaseA, 0x30),
            (Tag::LinearIn, 0x40),
            (Tag::BeaverOpen, 0x52),
            (Tag::Rerandomise, 0x62),
            (Tag::GcOutputLabels, 0x72),
            (Tag::CmpChoiceFix, 0x80),
            (Tag::Chunk, 0xFE),
        ];
        for (t, b) in want {
            assert_eq!(t as u8, b, "{t:?}");
        }
        assert!(Tag::ALL.windows(2).all(|w| (w[0] as u8) < (w[1] as u8)));
    }
}
