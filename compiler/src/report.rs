//! The JSON run report (`--report FILE`): wall time per phase and per layer, peak memory.

use serde::Serialize;

/// Wall time of one phase.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    /// Phase name.
    pub name: String,
    /// Seconds.
    pub seconds: f64,
}

/// Wall time of one layer.
#[derive(Clone, Debug, Serialize)]
pub struct LayerTime {
    /// Node name.
    pub name: String,
    /// Op name.
    pub op: String,
    /// Seconds.
    pub seconds: f64,
}

/// What one c3dc run reports.
#[derive(Debug, Default, Serialize)]
pub struct RunReport {
    /// The subcommand.
    pub command: String,
    /// Model name.
    pub model: String,
    /// Field prime.
    pub p: Option<u64>,
    /// Fractional bits (the top activation and weight scale).
    pub frac_bits: Option<u32>,
    /// Fewest fractional bits any activation carries.
    pub lowest_activation_bits: Option<u32>,
    /// Plan file size.
    pub plan_bytes: Option<u64>,
    /// Weights file size.
    pub weights_bytes: Option<u64>,
    /// Phases in order.
    pub phases: Vec<Phase>,
    /// Per-layer times (simulate).
    pub layers: Vec<LayerTime>,
    /// Peak resident memory of the process, bytes (Linux).
    pub peak_rss_bytes: Option<u64>,
}

impl RunReport {
    /// Records a phase.
    pub fn phase(&mut self, name: &str, seconds: f64) {
        self.phases.push(Phase {
            name: name.into(),
            seconds,
        });
    }
}

/// Peak resident set size of this process (VmHWM), where the OS tells it.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
