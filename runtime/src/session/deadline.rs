//! Deadlines: how long each phase of a session may take before the other party gives up on
//! it, so a peer that stalls or trickles bytes cannot hold a server slot (or a client) for
//! ever. The handshake has a fixed deadline; each phase's is sized from the schedule's work
//! (the same counts the cost model reports: HE products and ciphertexts, garbled bytes,
//! Beaver elements, online multiply-adds) at deliberately slow rates, times a safety factor,
//! plus a fixed allowance.

use super::report::Phase;
use super::schedule::{Schedule, StepKind};
use crate::transport::{Channel, Stream};
use std::time::{Duration, Instant};

/// Default deadline of the handshake (TLS and the session's hello), from the connection's
/// first byte.
pub const HANDSHAKE: Duration = Duration::from_secs(10);

/// Slowest rates a working party is assumed to reach on a small machine (about a tenth of
/// what the 2-core benchmark machine measures; docs/bench-runtime.md).
const HE_PRODUCT_S: f64 = 5e-3;
const HE_CIPHERTEXT_S: f64 = 20e-3;
const BYTES_PER_S: f64 = 20e6;
const MACS_PER_S: f64 = 20e6;
const BEAVER_ELEMENTS_PER_S: f64 = 1e6;
/// COTs an OT-compared layer expands and uses per second (a tenth of the measured rate, so
/// slow machines and debug builds are included).
const COTS_PER_S: f64 = 2e5;
/// Safety factor on the estimate, and the fixed allowance added to it.
const FACTOR: f64 = 4.0;
const ALLOWANCE: Duration = Duration::from_secs(60);

/// The deadlines a party applies to a session. The default is the client's: no handshake
/// deadline (a busy server queues connections, so the wait for its answer is bounded by the
/// idle time-out only), phases sized from the schedule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deadlines {
    /// From the first byte to the end of the handshake (None: only the idle time-out).
    pub handshake: Option<Duration>,
    /// Each phase's deadline (None: sized from the schedule by [`phase_budget`]).
    pub phase: Option<Duration>,
}

impl Deadlines {
    /// The server's defaults: [`HANDSHAKE`], phases sized from the schedule.
    pub fn server() -> Self {
        Deadlines {
            handshake: Some(HANDSHAKE),
            phase: None,
        }
    }

    /// The deadline of `phase` for this schedule, `streamed` the garbled steps run online.
    pub fn of(&self, sched: &Schedule, streamed: &[usize], phase: Phase) -> Duration {
        self.phase
            .unwrap_or_else(|| phase_budget(sched, streamed, phase))
    }

    /// Starts the handshake's deadline on `ch`, unless the caller already started one (the
    /// accept loop does, from the connection's first byte, to cover TLS too).
    pub fn arm_handshake<S: Stream>(&self, ch: &mut Channel<S>) {
        if let (Some(h), None) = (self.handshake, ch.deadline()) {
            ch.set_deadline(Some(Instant::now() + h), "handshake");
        }
    }

    /// Starts the deadline of `phase` on `ch`, from now.
    pub fn arm_phase<S: Stream>(
        &self,
        ch: &mut Channel<S>,
        sched: &Schedule,
        streamed: &[usize],
        phase: Phase,
    ) {
        let d = Instant::now() + self.of(sched, streamed, phase);
        ch.set_deadline(Some(d), phase.name());
    }
}

/// Seconds of work in `phase`: HE and garbled material offline (streamed layers online),
/// masked values, labels and multiply-adds online.
pub fn phase_budget(sched: &Schedule, streamed: &[usize], phase: Phase) -> Duration {
    let secs: f64 = step_work(sched, streamed, phase, &Rates::SLOW).iter().sum();
    ALLOWANCE + Duration::from_secs_f64((secs * FACTOR).min(1e7))
}

/// The rates a step's work is counted at.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    /// Seconds per HE plaintext-ciphertext product.
    pub he_product_s: f64,
    /// Seconds per ciphertext encrypted, sent, re-randomised or decrypted.
    pub he_ciphertext_s: f64,
    /// Bytes of garbled material produced and moved per second.
    pub bytes_per_s: f64,
    /// Online multiply-adds per second.
    pub macs_per_s: f64,
    /// Beaver elements per second.
    pub beaver_elements_per_s: f64,
    /// COTs expanded per second.
    pub cots_expanded_per_s: f64,
    /// COTs consumed by comparisons per second (0: counted in the expansion).
    pub cots_used_per_s: f64,
    /// COTs whose silent-OT rounds are prepared offline per second (0: counted in the
    /// expansion).
    pub cots_prepared_per_s: f64,
    /// COTs the offline phase expands ahead in all (None: either phase may have to expand
    /// them all, as a deadline must assume).
    pub expand_ahead_cots: Option<u64>,
}

impl Rates {
    /// The slowest rates a working party is assumed to reach: what deadlines are sized from.
    pub const SLOW: Rates = Rates {
        he_product_s: HE_PRODUCT_S,
        he_ciphertext_s: HE_CIPHERTEXT_S,
        bytes_per_s: BYTES_PER_S,
        macs_per_s: MACS_PER_S,
        beaver_elements_per_s: BEAVER_ELEMENTS_PER_S,
        cots_expanded_per_s: COTS_PER_S,
        cots_used_per_s: 0.0,
        cots_prepared_per_s: 0.0,
        expand_ahead_cots: None,
    };
}

/// Each step's work in `phase`, in seconds at `rates`: the budget's terms at
/// [`Rates::SLOW`], and the weights a progress display spreads a phase's time over.
pub fn step_work(sched: &Schedule, streamed: &[usize], phase: Phase, rates: &Rates) -> Vec<f64> {
    let r = rates;
    let mut ahead = r.expand_ahead_cots;
    let mut out = Vec::with_capacity(sched.steps.len());
    for (i, step) in sched.steps.iter().enumerate() {
        let online_only = streamed.binary_search(&i).is_ok();
        out.push(match (&step.kind, phase) {
            (StepKind::Linear { shape, packing, .. }, Phase::Offline) => {
                packing.products(shape) as f64 * r.he_product_s
                    + (packing.cts_in(shape) + packing.cts_out(shape)) as f64 * r.he_ciphertext_s
            }
            (StepKind::Linear { shape, .. }, Phase::Online) => {
                (shape.weight_len() as f64 * shape.output_len() as f64 / shape.c_out.max(1) as f64)
                    / r.macs_per_s
            }
            (StepKind::Garbled(l), ph) if (ph == Phase::Offline) != online_only => {
                l.spool_bytes() as f64 / r.bytes_per_s
            }
            // The online half of a layer prepared offline: labels, a few per wire.
            (StepKind::Garbled(_), _) => step.len as f64 * 64.0 * 64.0 / r.bytes_per_s,
            (StepKind::Square, _) => step.len as f64 / r.beaver_elements_per_s,
            // Offline the silent-OT rounds and the COTs expanded ahead, online the rest and
            // the comparisons.
            (StepKind::Compared(l), ph) => {
                let (f, rv) = l.cots();
                let n = f + rv;
                let early = match &mut ahead {
                    Some(a) => {
                        let e = n.min(*a);
                        *a -= e;
                        e
                    }
                    None => n,
                };
                let per = |n: u64, rate: f64| if rate > 0.0 { n as f64 / rate } else { 0.0 };
                let used = per(n, r.cots_used_per_s);
                match (ph, r.expand_ahead_cots) {
                    (_, None) => n as f64 / r.cots_expanded_per_s + used,
                    (Phase::Offline, Some(_)) => {
                        early as f64 / r.cots_expanded_per_s + per(n, r.cots_prepared_per_s)
                    }
                    (Phase::Online, Some(_)) => (n - early) as f64 / r.cots_expanded_per_s + used,
                }
            }
            _ => step.len as f64 * 8.0 / r.bytes_per_s,
        });
    }
    out
}
