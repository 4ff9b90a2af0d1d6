//! Progress as an embedding program sees it: the session's step events, with how much of the
//! phase's estimated work is done and the bytes moved so far, so a display can show one bar
//! per phase with an ETA and rates.

use crate::he::Backend;
use crate::session::compared::EXPAND_AHEAD_BYTES;
use crate::session::deadline::{step_work, Rates};
use crate::session::{Event, Phase, Schedule};
use crate::transport::Meter;
use c3d_ir::Plan;

/// One progress report.
pub struct Progress<'a> {
    /// The step event (phase, step, protocol, chunk).
    pub event: &'a Event<'a>,
    /// Fraction of the phase's estimated work done before this event, in [0, 1].
    pub done: f64,
    /// Bytes this party has sent over the connection so far.
    pub sent: u64,
    /// Bytes this party has received so far.
    pub received: u64,
}

/// A progress callback.
pub type ProgressFn = Box<dyn FnMut(&Progress) + Send>;

/// The rates progress is estimated at: fitted by `examples/progress_fit.rs` to a c3d-small
/// session with OT comparisons on the 2-core benchmark machine, release build, both parties
/// on it, and the HE rates again to a full C3D session after the HE speed-ups of issue 19
/// (docs/embedding.md gives the fits); the garbled, Beaver and online multiply-add rates are
/// rounder guesses (those steps take under 1 % of such a run). Only the ratios matter.
pub const TYPICAL: Rates = Rates {
    he_product_s: HE_PRODUCT_S,
    he_ciphertext_s: HE_CIPHERTEXT_S,
    bytes_per_s: 300e6,
    macs_per_s: 2e9,
    beaver_elements_per_s: 10e6,
    cots_expanded_per_s: COTS_EXPANDED_PER_S,
    cots_used_per_s: COTS_USED_PER_S,
    cots_prepared_per_s: COTS_PREPARED_PER_S,
    // About 16 bytes per expanded COT.
    expand_ahead_cots: Some(EXPAND_AHEAD_BYTES / 16),
};

const HE_PRODUCT_S: f64 = 1.13e-4;
const HE_CIPHERTEXT_S: f64 = 4.0e-3;
const COTS_EXPANDED_PER_S: f64 = 7.7e6;
const COTS_USED_PER_S: f64 = 7.0e6;
const COTS_PREPARED_PER_S: f64 = 2.3e7;

/// Turns step events into [`Progress`]: cumulative work per phase, from the cost of each
/// step at [`TYPICAL`] rates.
pub(crate) struct StepWeights {
    /// Per phase (offline, online): the work done before each step, normalised to 1.
    before: [Vec<f64>; 2],
    /// Per phase: each step's share.
    share: [Vec<f64>; 2],
}

impl StepWeights {
    /// The weights of `plan`'s steps; a plan the schedule refuses gets even weights (the
    /// session itself then reports why it cannot run).
    pub(crate) fn new<B: Backend>(plan: &Plan, be: &B) -> Self {
        match Schedule::new(plan, be) {
            Ok(s) => Self::of(&s),
            Err(_) => {
                let even = vec![1.0; plan.layers.len().max(1)];
                Self::from_work([even.clone(), even])
            }
        }
    }

    /// The weights of a schedule's steps.
    pub(crate) fn of(sched: &Schedule) -> Self {
        Self::from_work([
            step_work(sched, &[], Phase::Offline, &TYPICAL),
            step_work(sched, &[], Phase::Online, &TYPICAL),
        ])
    }

    /// Per phase, each step's work normalised to shares and running sums.
    fn from_work(work: [Vec<f64>; 2]) -> Self {
        let split = |w: &[f64]| {
            let total: f64 = w.iter().sum::<f64>().max(f64::MIN_POSITIVE);
            let share: Vec<f64> = w.iter().map(|x| x / total).collect();
            let before = share
                .iter()
                .scan(0.0, |acc, s| {
                    let b = *acc;
                    *acc += s;
                    Some(b)
                })
                .collect();
            (before, share)
        };
        let (b0, s0) = split(&work[0]);
        let (b1, s1) = split(&work[1]);
        StepWeights {
            before: [b0, b1],
            share: [s0, s1],
        }
    }

    /// The progress an event stands for.
    pub(crate) fn report<'a>(&self, e: &'a Event<'a>, meter: &Meter) -> Progress<'a> {
        let k = match e.phase {
            Phase::Offline => 0,
            Phase::Online => 1,
        };
        let before = self.before[k].get(e.index).copied().unwrap_or(1.0);
        let share = self.share[k].get(e.index).copied().unwrap_or(0.0);
        let within = e.part.map_or(0.0, |(d, n)| d as f64 / n.max(1) as f64);
        Progress {
            event: e,
            done: (before + share * within).clamp(0.0, 1.0),
            sent: meter.sent(),
            received: meter.received(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::he::fhers::FheRs;
    use crate::session::schedule::Step;

    fn motion_plan() -> Plan {
        let onnx = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/motion/c3d-motion.onnx"
        );
        c3d_compiler::compile(onnx.as_ref(), &Default::default(), |_| {})
            .unwrap()
            .plan
    }

    #[test]
    fn progress_rises_from_zero_to_one_through_each_phase() {
        let plan = motion_plan();
        let be = FheRs::new(plan.fixed.p).unwrap();
        let sched = Schedule::new(&plan, &be).unwrap();
        let w = StepWeights::new(&plan, &be);
        let meter = Meter::default();
        for phase in [Phase::Offline, Phase::Online] {
            let steps: &[Step] = &sched.steps;
            let n = steps.len();
            let mut last = 0.0;
            for (i, s) in steps.iter().enumerate() {
                let e = Event::start(phase, i, n, s);
                let at = w.report(&e, &meter).done;
                assert!(at >= last, "{phase:?} step {i}: {at} < {last}");
                if i == 0 {
                    assert_eq!(at, 0.0);
                }
                // Chunks inside a step move the bar within the step's share.
                let half = w.report(&e.clone().part(1, 2), &meter).done;
                let next = w.report(&e.clone().part(2, 2), &meter).done;
                assert!(at <= half && half <= next, "{at} {half} {next}");
                last = next;
            }
            assert!((last - 1.0).abs() < 1e-9, "{phase:?} ends at {last}");
        }
    }

    #[test]
    fn the_expand_ahead_budget_moves_work_from_the_online_to_the_offline_phase() {
        let plan = motion_plan();
        let be = FheRs::new(plan.fixed.p).unwrap();
        let sched = Schedule::new(&plan, &be).unwrap();
        let total = |phase, ahead| -> f64 {
            let r = Rates {
                expand_ahead_cots: ahead,
                ..TYPICAL
            };
            step_work(&sched, &[], phase, &r).iter().sum()
        };
        let cots: u64 = sched
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                crate::session::schedule::StepKind::Compared(l) => Some(l.cots().0 + l.cots().1),
                _ => None,
            })
            .sum();
        assert!(cots > 0, "the motion plan compares by OT");
        // Every COT expanded once, in one phase or the other.
        let moved = |ahead| total(Phase::Offline, Some(ahead)) - total(Phase::Offline, Some(0));
        let back = |ahead| total(Phase::Online, Some(0)) - total(Phase::Online, Some(ahead));
        for ahead in [cots / 3, cots, 2 * cots] {
            let want = ahead.min(cots) as f64 / TYPICAL.cots_expanded_per_s;
            assert!((moved(ahead) - want).abs() < 1e-9 * want.max(1.0));
            assert!((back(ahead) - want).abs() < 1e-9 * want.max(1.0));
        }
    }
}
