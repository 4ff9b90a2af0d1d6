//! The two-party runtime (transport, field arithmetic, HE, garbled circuits, OT, Beaver
//! triples, offline and online phases). Not built yet.
