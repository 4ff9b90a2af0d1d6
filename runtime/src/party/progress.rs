//! Progress as an embedding program sees it: the session's step events, with how much of the
//! phase's estimated work is done and the bytes moved so far, so a display can show one bar
//! per phase with an ETA and rates.

use crate::he::Backend;
use crate::session::deadline::step_work;
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

/// Turns step events into [`Progress`]: cumulative work per phase, from the cost of each
/// step at the deadline rates (only their ratios matter here).
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
        let weights = |phase| match Schedule::new(plan, be) {
            Ok(s) => step_work(&s, &[], phase),
            Err(_) => vec![1.0; plan.layers.len().max(1)],
        };
        let split = |w: Vec<f64>| {
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
        let (b0, s0) = split(weights(Phase::Offline));
        let (b1, s1) = split(weights(Phase::Online));
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
