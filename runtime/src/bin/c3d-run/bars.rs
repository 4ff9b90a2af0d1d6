//! Progress bars on stderr: one per phase (per session on the server) across all layers, with
//! elapsed time, an ETA from the cost model's per-layer work, the current layer, and bytes
//! per second each way. Hidden when stderr is not a terminal or with --quiet.

use c3d_runtime::party::Progress;
use c3d_runtime::session::Phase;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

/// Positions on a bar: the phase's work fraction in thousandths.
const STEPS: u64 = 1000;

/// One phase's bar and where its byte counters started.
struct PhaseBar {
    bar: ProgressBar,
    t0: Instant,
    sent0: u64,
    received0: u64,
}

/// The bars of one process.
pub struct Bars {
    multi: MultiProgress,
    live: Mutex<HashMap<(usize, u8), PhaseBar>>,
    enabled: bool,
}

impl Bars {
    /// Bars on stderr, drawn only on a terminal and unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        let enabled = !quiet && std::io::stderr().is_terminal();
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            live: Mutex::new(HashMap::new()),
            enabled,
        }
    }

    /// Updates session `id`'s bar for the event's phase (`label` prefixes it).
    pub fn update(&self, id: usize, label: &str, p: &Progress) {
        if !self.enabled {
            return;
        }
        let e = p.event;
        let k = match e.phase {
            Phase::Offline => 0u8,
            Phase::Online => 1,
        };
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        // The online phase starts where the offline one ended.
        if k == 1 {
            if let Some(b) = live.remove(&(id, 0)) {
                b.bar.finish();
            }
        }
        let b = live.entry((id, k)).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(STEPS));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {bar:28.cyan/blue} {percent:>3}% ETA {eta:>4} {msg}",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{label}{:<7}", e.phase.name()));
            PhaseBar {
                bar,
                t0: Instant::now(),
                sent0: p.sent,
                received0: p.received,
            }
        });
        let secs = b.t0.elapsed().as_secs_f64().max(1e-3);
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs / 1e6;
        b.bar.set_position((p.done * STEPS as f64) as u64);
        let part = e.part.map_or(String::new(), |(d, n)| {
            format!(" {:>3}%", 100 * d / n.max(1))
        });
        b.bar.set_message(format!(
            "{}/{} {} ({}){part}  up {:.1} MB/s, down {:.1} MB/s",
            e.index + 1,
            e.total,
            e.name,
            e.protocol,
            rate(p.sent, b.sent0),
            rate(p.received, b.received0),
        ));
    }

    /// Ends session `id`'s bars.
    pub fn finish(&self, id: usize) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        for k in 0..2u8 {
            if let Some(b) = live.remove(&(id, k)) {
                b.bar.set_position(STEPS);
                b.bar.finish();
            }
        }
    }

    /// Prints a line above the bars (or plainly when there are none).
    pub fn println(&self, line: &str) {
        if self.enabled {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }
}
