//! Which garbled layers are prepared offline and which are streamed in the online phase.
//!
//! A layer prepared offline costs the client its tables and labels on disk (the spool) and
//! the server a few bytes per output wire in memory until the online phase; full C3D's
//! garbled material is about 230 GB, more than most disks hold. So the client, knowing its
//! spool limit and the server's limit on kept material, keeps the largest layers that fit
//! (first fit, largest first, which keeps the most bytes out of the online phase) and streams
//! the rest: a streamed layer is garbled, sent and evaluated chunk by chunk online, and never
//! held whole by either party.

use super::schedule::{Schedule, StepKind};
use super::{PeerMisbehaved, SessionError};

/// What a garbled layer costs when prepared offline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfflineCost {
    /// Step index in the schedule.
    pub step: usize,
    /// Bytes on the client's disk.
    pub spool: u64,
    /// Bytes in the server's memory.
    pub keep: u64,
}

/// The offline cost of every garbled step.
pub fn garbled_costs(sched: &Schedule) -> Vec<OfflineCost> {
    sched
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.kind {
            StepKind::Garbled(l) => Some(OfflineCost {
                step: i,
                spool: l.spool_bytes(),
                keep: l.keep_bytes(),
            }),
            _ => None,
        })
        .collect()
}

/// The steps to stream (ascending), given the client's spool limit and the server's limit on
/// kept material, both in bytes.
pub fn choose_streamed(costs: &[OfflineCost], spool_limit: u64, keep_limit: u64) -> Vec<usize> {
    let mut order: Vec<&OfflineCost> = costs.iter().collect();
    order.sort_by_key(|c| (std::cmp::Reverse(c.spool), c.step));
    let (mut spool, mut keep) = (0u64, 0u64);
    let mut streamed = Vec::new();
    for c in order {
        if spool + c.spool <= spool_limit && keep + c.keep <= keep_limit {
            spool += c.spool;
            keep += c.keep;
        } else {
            streamed.push(c.step);
        }
    }
    streamed.sort_unstable();
    streamed
}

/// Encodes the streamed steps for the wire (u32 each, little-endian).
pub fn encode(streamed: &[usize]) -> Vec<u8> {
    streamed
        .iter()
        .flat_map(|&s| (s as u32).to_le_bytes())
        .collect()
}

/// Decodes and checks the client's choice: garbled steps only, ascending, and what is left
/// offline within the server's limit.
pub fn decode(
    b: &[u8],
    costs: &[OfflineCost],
    keep_limit: u64,
) -> Result<Vec<usize>, SessionError> {
    if !b.len().is_multiple_of(4) {
        return Err(PeerMisbehaved::StreamedListRagged { len: b.len() }.into());
    }
    let steps: Vec<usize> = b
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as usize)
        .collect();
    if steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(PeerMisbehaved::StreamedListUnordered.into());
    }
    if let Some(&step) = steps.iter().find(|&&s| !costs.iter().any(|c| c.step == s)) {
        return Err(PeerMisbehaved::StreamedNotGarbled { step }.into());
    }
    let keep: u64 = costs
        .iter()
        .filter(|c| steps.binary_search(&c.step).is_err())
        .map(|c| c.keep)
        .sum();
    if keep > keep_limit {
        return Err(PeerMisbehaved::KeepsTooMuch {
            keep,
            limit: keep_limit,
        }
        .into());
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(step: usize, spool: u64, keep: u64) -> OfflineCost {
        OfflineCost { step, spool, keep }
    }

    #[test]
    fn largest_that_fit_stay_offline() {
        let costs = [c(1, 50, 5), c(3, 120, 12), c(5, 30, 3), c(7, 10, 1)];
        assert_eq!(
            choose_streamed(&costs, u64::MAX, u64::MAX),
            Vec::<usize>::new()
        );
        assert_eq!(choose_streamed(&costs, 0, u64::MAX), vec![1, 3, 5, 7]);
        // 120 does not fit in 100; then 50, 30, 10 do.
        assert_eq!(choose_streamed(&costs, 100, u64::MAX), vec![3]);
        // The server's limit binds too: 12 + 5 > 15, 12 + 3 fits, 15 + 1 does not.
        assert_eq!(choose_streamed(&costs, u64::MAX, 15), vec![1, 7]);
    }

    #[test]
    fn wire_round_trip_and_checks() {
        let costs = [c(1, 50, 5), c(3, 120, 12)];
        assert_eq!(decode(&encode(&[3]), &costs, 5).unwrap(), vec![3]);
        assert!(decode(&encode(&[3]), &costs, 4).is_err(), "over the limit");
        assert!(decode(&encode(&[2]), &costs, 100).is_err(), "not garbled");
        assert!(
            decode(&encode(&[3, 1]), &costs, 100).is_err(),
            "not ascending"
        );
        assert!(decode(&[1, 2, 3], &costs, 100).is_err(), "ragged");
    }
}
