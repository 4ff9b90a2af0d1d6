//! What a session measured: per phase and per layer, wall time, bytes each way and round
//! trips; peak memory of the process. Serialised as the `--report` JSON.

use super::schedule::{Step, StepKind};
use crate::transport::{Channel, Stream};
use serde::Serialize;
use std::time::Instant;

/// The two phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the clip is known.
    Offline,
    /// With the clip.
    Online,
}

impl Phase {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Offline => "offline",
            Phase::Online => "online",
        }
    }
}

/// How a step ran, as the reports name it (the JSON strings are the serde names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum StepProtocol {
    /// The client's masked input.
    #[serde(rename = "input")]
    Input,
    /// A public-coefficient step each party runs on its own share.
    #[serde(rename = "local")]
    Local,
    /// A linear layer: HE offline, plaintext arithmetic online on the CPU.
    #[serde(rename = "he-linear")]
    HeLinear,
    /// A linear layer whose online arithmetic ran on the GPU.
    #[serde(rename = "he-linear-gpu")]
    HeLinearGpu,
    /// A garbled layer prepared offline.
    #[serde(rename = "garbled")]
    Garbled,
    /// A garbled layer streamed in the online phase.
    #[serde(rename = "garbled-streamed")]
    GarbledStreamed,
    /// x^2 with Beaver square pairs.
    #[serde(rename = "beaver-square")]
    BeaverSquare,
    /// Comparisons by OT on silent-OT correlations.
    #[serde(rename = "ot-comparison")]
    OtComparison,
}

impl StepProtocol {
    /// How a step of the schedule runs, before the run refines it (GPU, streamed).
    pub fn of(step: &Step) -> Self {
        match step.kind {
            StepKind::Input { .. } => StepProtocol::Input,
            StepKind::Local => StepProtocol::Local,
            StepKind::Linear { .. } => StepProtocol::HeLinear,
            StepKind::Garbled(_) => StepProtocol::Garbled,
            StepKind::Square => StepProtocol::BeaverSquare,
            StepKind::Compared(_) => StepProtocol::OtComparison,
        }
    }

    /// The name in reports and progress lines.
    pub fn as_str(self) -> &'static str {
        match self {
            StepProtocol::Input => "input",
            StepProtocol::Local => "local",
            StepProtocol::HeLinear => "he-linear",
            StepProtocol::HeLinearGpu => "he-linear-gpu",
            StepProtocol::Garbled => "garbled",
            StepProtocol::GarbledStreamed => "garbled-streamed",
            StepProtocol::BeaverSquare => "beaver-square",
            StepProtocol::OtComparison => "ot-comparison",
        }
    }
}

impl std::fmt::Display for StepProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A progress event: step `index` of `total` in `phase` is starting.
#[derive(Clone, Debug)]
pub struct Event<'a> {
    /// Phase.
    pub phase: Phase,
    /// Step index (0-based).
    pub index: usize,
    /// Steps in the phase.
    pub total: usize,
    /// Layer name.
    pub name: &'a str,
    /// Protocol of the step.
    pub protocol: StepProtocol,
    /// Chunks of the step done so far, of how many (long garbled layers report these).
    pub part: Option<(usize, usize)>,
}

impl<'a> Event<'a> {
    /// Step `index` of `total` in `phase` is starting.
    pub fn start(phase: Phase, index: usize, total: usize, step: &'a Step) -> Self {
        Event {
            phase,
            index,
            total,
            name: &step.name,
            protocol: StepProtocol::of(step),
            part: None,
        }
    }

    /// The same event, `done` chunks of `of` into the step.
    pub fn part(mut self, done: usize, of: usize) -> Self {
        self.part = Some((done, of));
        self
    }
}

/// One layer in one phase.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    /// Phase.
    pub phase: Phase,
    /// Layer (node) name.
    pub layer: String,
    /// How it ran.
    pub protocol: StepProtocol,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Bytes this party sent.
    pub bytes_sent: u64,
    /// Bytes this party received.
    pub bytes_received: u64,
    /// Round trips.
    pub rounds: u64,
    /// The server's arithmetic on a linear layer: HE plaintext products offline, plaintext
    /// multiply-adds online (zero weights skipped; 0 elsewhere and on the client).
    pub work: u64,
}

/// One phase in total.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// Phase.
    pub phase: Phase,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Bytes this party sent.
    pub bytes_sent: u64,
    /// Bytes this party received.
    pub bytes_received: u64,
    /// Round trips.
    pub rounds: u64,
    /// Peak resident memory of the process at the end of the phase (bytes; 0 where unknown).
    pub peak_memory: u64,
}

/// A whole session, from one party's side.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// "server" or "client".
    pub role: String,
    /// Model name.
    pub model: String,
    /// Plan hash (hex).
    pub plan_hash: String,
    /// HE backend.
    pub backend: String,
    /// Set-up (handshake, base OTs, keys): seconds.
    pub setup_seconds: f64,
    /// Per phase.
    pub phases: Vec<PhaseReport>,
    /// Per layer and phase.
    pub layers: Vec<LayerReport>,
    /// Bytes sent over the whole session.
    pub bytes_sent: u64,
    /// Bytes received over the whole session.
    pub bytes_received: u64,
    /// Peak resident memory of the process (bytes; 0 where unknown).
    pub peak_memory: u64,
    /// Garbled layers streamed in the online phase instead of prepared offline.
    pub streamed_layers: Vec<String>,
    /// Bytes of offline material the client spooled to disk (0 on the server).
    pub spooled_bytes: u64,
}

/// Peak resident set size of this process (Linux `VmHWM`), 0 elsewhere.
pub fn peak_memory() -> u64 {
    proc_status_kb("VmHWM:")
}

/// Resident set size of this process now (Linux `VmRSS`), 0 elsewhere.
pub fn resident_memory() -> u64 {
    proc_status_kb("VmRSS:")
}

fn proc_status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Records steps and phases as they run.
pub struct Recorder {
    report: Report,
    phase: Option<(Phase, Instant, usize)>,
    step: Option<(String, String, StepProtocol, Instant)>,
    work: u64,
}

impl Recorder {
    /// A recorder for one party.
    pub fn new(role: &str, model: &str, plan_hash: &str, backend: &str) -> Self {
        Recorder {
            report: Report {
                role: role.into(),
                model: model.into(),
                plan_hash: plan_hash.into(),
                backend: backend.into(),
                ..Report::default()
            },
            phase: None,
            step: None,
            work: 0,
        }
    }

    /// Marks the end of set-up.
    pub fn setup_done(&mut self, started: Instant) {
        self.report.setup_seconds = started.elapsed().as_secs_f64();
    }

    /// Starts a phase.
    pub fn begin_phase(&mut self, phase: Phase) {
        self.phase = Some((phase, Instant::now(), self.report.layers.len()));
    }

    /// Starts a step: its traffic is counted under its own key.
    pub fn begin<S: Stream>(&mut self, ch: &mut Channel<S>, index: usize, step: &Step) {
        let phase = self.phase.map_or(Phase::Offline, |p| p.0);
        let key = format!("{}/{index}", phase.name());
        ch.set_step(&key);
        self.step = Some((
            key,
            step.name.clone(),
            StepProtocol::of(step),
            Instant::now(),
        ));
    }

    /// Names the current step's protocol (a streamed garbled layer, say).
    pub fn set_protocol(&mut self, protocol: StepProtocol) {
        if let Some(s) = self.step.as_mut() {
            s.2 = protocol;
        }
    }

    /// Records the layers streamed in the online phase.
    pub fn set_streamed(&mut self, names: Vec<String>) {
        self.report.streamed_layers = names;
    }

    /// Records the bytes spooled to disk.
    pub fn set_spooled(&mut self, bytes: u64) {
        self.report.spooled_bytes = bytes;
    }

    /// Records the current step's arithmetic (see [`LayerReport::work`]).
    pub fn set_work(&mut self, n: u64) {
        self.work = n;
    }

    /// Ends the current step.
    pub fn end<S: Stream>(&mut self, ch: &mut Channel<S>) {
        let Some((key, name, protocol, t0)) = self.step.take() else {
            return;
        };
        let st = ch.stats().get(&key).copied().unwrap_or_default();
        self.report.layers.push(LayerReport {
            phase: self.phase.map_or(Phase::Offline, |p| p.0),
            layer: name,
            protocol,
            seconds: t0.elapsed().as_secs_f64(),
            bytes_sent: st.sent,
            bytes_received: st.received,
            rounds: st.rounds,
            work: std::mem::take(&mut self.work),
        });
        ch.set_step("between-steps");
    }

    /// Ends the current phase.
    pub fn end_phase(&mut self) {
        let Some((phase, t0, first)) = self.phase.take() else {
            return;
        };
        let ls = &self.report.layers[first..];
        self.report.phases.push(PhaseReport {
            phase,
            seconds: t0.elapsed().as_secs_f64(),
            bytes_sent: ls.iter().map(|l| l.bytes_sent).sum(),
            bytes_received: ls.iter().map(|l| l.bytes_received).sum(),
            rounds: ls.iter().map(|l| l.rounds).sum(),
            peak_memory: peak_memory(),
        });
    }

    /// The finished report, with the channel's totals.
    pub fn finish<S: Stream>(mut self, ch: &Channel<S>) -> Report {
        let t = ch.total();
        self.report.bytes_sent = t.sent;
        self.report.bytes_received = t.received;
        self.report.peak_memory = peak_memory();
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::StepProtocol;

    #[test]
    fn step_protocols_serialise_to_their_report_names() {
        use StepProtocol::*;
        for p in [
            Input,
            Local,
            HeLinear,
            HeLinearGpu,
            Garbled,
            GarbledStreamed,
            BeaverSquare,
            OtComparison,
        ] {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()), "{p:?}");
        }
        assert_eq!(StepProtocol::GarbledStreamed.as_str(), "garbled-streamed");
    }
}
