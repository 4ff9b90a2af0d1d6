//! The server's side of a session: it holds the weights, answers the client's offline
//! requests, and online computes on masked values only.

use super::compared::{self, CotSupply, SupplyState};
use super::garbled::{self, ServerLayer};
use super::report::{Event, Phase, Recorder, Report, StepProtocol};
use super::schedule::{Schedule, StepKind};
use super::{check_field, field_of, handshake, local_step, placement, release, SessionError};
use crate::beaver::{self, Squares};
use crate::he::Backend;
use crate::linear;
use crate::ot::OtSender;
use crate::transport::{Channel, Stream};
use crate::wire::Tag;
use c3d_ir::{NodeId, Plan, Weights};
use rand::{CryptoRng, Rng, RngCore};
use std::collections::HashMap;
use std::time::Instant;

/// A model ready to serve: plan, schedule and the weights as field elements. Built once,
/// shared by all sessions.
pub struct ServerModel<B: Backend> {
    /// The plan.
    pub plan: Plan,
    /// Its hash (what clients must present).
    pub plan_hash: [u8; 32],
    /// The protocol steps.
    pub schedule: Schedule,
    /// The HE backend.
    pub backend: B,
    /// Weights and biases of each linear layer, as field elements, and the multiply-adds
    /// its online step performs (for the report; counted once here, not per session).
    weights: HashMap<NodeId, (Vec<u64>, Vec<u64>, u64)>,
    /// Most bytes of garbled material one session keeps between its phases; layers over it
    /// are streamed online.
    keep_limit: u64,
    /// Deadlines of the handshake and the phases.
    deadlines: super::Deadlines,
    /// The GPU for the online linear layers, if one was opened.
    #[cfg(feature = "cuda")]
    gpu: Option<std::sync::Arc<crate::linear::gpu::Gpu>>,
}

impl<B: Backend> ServerModel<B> {
    /// Checks the weights against the plan (the plan's salted commitment, recomputed from
    /// the weights and their salt by [`Plan::check_weights`]; their sizes and public bounds)
    /// and derives the schedule.
    pub fn new(
        plan: Plan,
        plan_hash: [u8; 32],
        weights: &Weights,
        backend: B,
    ) -> Result<Self, SessionError> {
        plan.validate()?;
        plan.check_weights(weights).map_err(SessionError::Weights)?;
        let schedule = Schedule::new(&plan, &backend)?;
        let fx = plan.fixed;
        let mut field_weights = HashMap::new();
        for step in &schedule.steps {
            if let StepKind::Linear {
                ref shape,
                weight_mag_bits,
                ..
            } = step.kind
            {
                let lw = &weights.layers[&step.node];
                if lw
                    .weight
                    .iter()
                    .any(|w| w.unsigned_abs() >= 1u64 << weight_mag_bits)
                {
                    return Err(SessionError::Input(format!(
                        "weights of `{}` exceed the plan's public bound of {weight_mag_bits} bits",
                        step.name
                    )));
                }
                let w: Vec<u64> = lw.weight.iter().map(|&v| fx.to_field(v)).collect();
                let b = lw.bias.iter().map(|&v| fx.to_field(v)).collect();
                let macs = linear::online::macs(shape, &w);
                field_weights.insert(step.node, (w, b, macs));
            }
        }
        Ok(ServerModel {
            plan,
            plan_hash,
            schedule,
            backend,
            weights: field_weights,
            keep_limit: u64::MAX,
            deadlines: super::Deadlines::server(),
            #[cfg(feature = "cuda")]
            gpu: None,
        })
    }

    /// Runs the online linear layers on `gpu` (a layer the GPU cannot run exactly falls back
    /// to the CPU).
    #[cfg(feature = "cuda")]
    pub fn with_gpu(mut self, gpu: crate::linear::gpu::Gpu) -> Self {
        self.set_gpu(gpu);
        self
    }

    /// [`ServerModel::with_gpu`] in place.
    #[cfg(feature = "cuda")]
    pub fn set_gpu(&mut self, gpu: crate::linear::gpu::Gpu) {
        self.gpu = Some(std::sync::Arc::new(gpu));
    }

    /// W x + b on the server's share: on the GPU when there is one and the layer fits its
    /// exact limbs, else on the CPU. Returns the result and where it ran.
    fn online_linear(
        &self,
        step: &super::schedule::Step,
        shape: &linear::ConvShape,
        x: &[u64],
        weight_mag_bits: u32,
    ) -> (Vec<u64>, StepProtocol) {
        let (w, b, _) = &self.weights[&step.node];
        let p = self.plan.fixed.p;
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            match g.apply(shape, x, w, b, p, weight_mag_bits) {
                Ok(y) => return (y, StepProtocol::HeLinearGpu),
                Err(e) => eprintln!("c3d-run server: `{}` runs on the CPU: {e}", step.name),
            }
        }
        let _ = weight_mag_bits;
        (
            linear::online::apply(shape, x, w, b, p),
            StepProtocol::HeLinear,
        )
    }

    /// Sets the deadlines every session gets.
    pub fn with_deadlines(mut self, d: super::Deadlines) -> Self {
        self.set_deadlines(d);
        self
    }

    /// [`ServerModel::with_deadlines`] in place.
    pub fn set_deadlines(&mut self, d: super::Deadlines) {
        self.deadlines = d;
    }

    /// The deadlines every session gets.
    pub fn deadlines(&self) -> super::Deadlines {
        self.deadlines
    }

    /// Caps the garbled material one session keeps in memory between its phases (bytes);
    /// clients stream the layers over it in the online phase.
    pub fn with_keep_limit(mut self, bytes: u64) -> Self {
        self.set_keep_limit(bytes);
        self
    }

    /// The weights of the linear layer at `node`, as field elements (layout C_out, C_in or
    /// 1, kd, kh, kw), if it has any.
    pub fn linear_weights(&self, node: NodeId) -> Option<&[u64]> {
        self.weights.get(&node).map(|(w, _, _)| &w[..])
    }

    /// [`ServerModel::with_keep_limit`] in place.
    pub fn set_keep_limit(&mut self, bytes: u64) {
        self.keep_limit = bytes;
    }
}

/// What the server keeps between the phases, one entry per step that needs one; entries are
/// moved out when used, so nothing is used twice.
enum Material {
    Linear(Vec<u64>),
    Garbled(ServerLayer),
    /// A garbled layer the client chose to stream in the online phase.
    Streamed,
    Square(Squares),
    /// The COTs of an OT-compared layer (boxed: far larger than the other variants).
    Compared(Box<CotSupply>),
}

/// What the server keeps between its phases for one client: the offline material of every
/// step, the OT state and the report so far. Consumed by [`server_online`].
pub struct ServerPrepared<'a, B: Backend> {
    model: &'a ServerModel<B>,
    rec: Recorder,
    mat: HashMap<NodeId, Material>,
    ot: OtSender,
    streamed: Vec<usize>,
}

/// Serves one client over `ch`: handshake, offline, online ([`server_offline`] then
/// [`server_online`]). Returns this side's report. On failure the client is told why (unless
/// it is gone).
pub fn serve<B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    model: &ServerModel<B>,
    ch: &mut Channel<S>,
    rng: &mut R,
    progress: &mut dyn FnMut(&Event),
) -> Result<Report, SessionError> {
    super::guarded(ch, |ch| {
        let prepared = offline_inner(model, ch, rng, progress)?;
        online_inner(prepared, ch, rng, progress)
    })
}

/// The handshake and the offline phase with one client: nothing here depends on its clip.
/// On failure the client is told why (unless it is gone).
pub fn server_offline<'a, B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    model: &'a ServerModel<B>,
    ch: &mut Channel<S>,
    rng: &mut R,
    progress: &mut dyn FnMut(&Event),
) -> Result<ServerPrepared<'a, B>, SessionError> {
    super::guarded(ch, |ch| offline_inner(model, ch, rng, progress))
}

/// The online phase with one client, once it has its clip: consumes the offline material and
/// returns this side's report. On failure the client is told why (unless it is gone).
pub fn server_online<B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    prepared: ServerPrepared<'_, B>,
    ch: &mut Channel<S>,
    rng: &mut R,
    progress: &mut dyn FnMut(&Event),
) -> Result<Report, SessionError> {
    super::guarded(ch, |ch| online_inner(prepared, ch, rng, progress))
}

fn offline_inner<'a, B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    model: &'a ServerModel<B>,
    ch: &mut Channel<S>,
    rng: &mut R,
    progress: &mut dyn FnMut(&Event),
) -> Result<ServerPrepared<'a, B>, SessionError> {
    let t0 = Instant::now();
    let (plan, sched, be) = (&model.plan, &model.schedule, &model.backend);
    let f = field_of(plan)?;
    let mut rec = Recorder::new(
        "server",
        &plan.meta.name,
        &c3d_ir::format::hex(&model.plan_hash),
        be.name(),
    );
    let dl = model.deadlines;
    dl.arm_handshake(ch);
    handshake::server(ch, &model.plan_hash, be.name())?;
    dl.arm_phase(ch, sched, &[], Phase::Offline);
    ch.set_step("setup");
    let key = be.read_public_key(&ch.recv(Tag::PublicKey)?)?;
    let mut ot = OtSender::setup(ch, rng)?;
    ch.send_u64s(Tag::KeepLimit, &[model.keep_limit])?;
    let streamed = placement::decode(
        &ch.recv(Tag::Streamed)?,
        &placement::garbled_costs(sched),
        model.keep_limit,
    )?;
    rec.set_streamed(
        streamed
            .iter()
            .map(|&i| sched.steps[i].name.clone())
            .collect(),
    );
    dl.arm_phase(ch, sched, &streamed, Phase::Offline);
    rec.setup_done(t0);

    // Offline.
    let total = sched.steps.len();
    let mut mat: HashMap<NodeId, Material> = HashMap::new();
    let mut supply = SupplyState::default();
    let mut ahead = compared::EXPAND_AHEAD_BYTES.min(model.keep_limit);
    rec.begin_phase(Phase::Offline);
    for (i, step) in sched.steps.iter().enumerate() {
        progress(&Event::start(Phase::Offline, i, total, step));
        rec.begin(ch, i, step);
        match &step.kind {
            StepKind::Input { .. } | StepKind::Local => {}
            StepKind::Linear {
                shape,
                packing,
                weight_mag_bits,
            } => {
                let (w, _, _) = &model.weights[&step.node];
                let (s, st) = linear::server_linear(
                    be,
                    ch,
                    shape,
                    packing,
                    *weight_mag_bits,
                    &sched.flood,
                    w,
                    &key,
                    rng,
                )?;
                rec.set_work(st.products as u64);
                mat.insert(step.node, Material::Linear(s));
            }
            StepKind::Garbled(_) if streamed.binary_search(&i).is_ok() => {
                rec.set_protocol(StepProtocol::GarbledStreamed);
                mat.insert(step.node, Material::Streamed);
            }
            StepKind::Garbled(layer) => {
                let mut tick =
                    |d, n| progress(&Event::start(Phase::Offline, i, total, step).part(d, n));
                let keep = garbled::server_offline(ch, &mut ot, layer, rng, &mut tick)?;
                mat.insert(step.node, Material::Garbled(keep));
            }
            StepKind::Square => {
                let sq = beaver::server_squares_ot(&f, ch, &mut ot, step.len, rng)?;
                mat.insert(step.node, Material::Square(sq));
            }
            StepKind::Compared(layer) => {
                let mut cots = compared::server_supply(ch, &mut ot, &mut supply, layer, rng)?;
                ahead -= cots.expand_ahead(ahead)?;
                mat.insert(step.node, Material::Compared(Box::new(cots)));
            }
        }
        rec.end(ch);
    }
    rec.end_phase();

    // Between the phases only the idle time-out applies (the client decodes its clip).
    ch.set_deadline(None, "");
    Ok(ServerPrepared {
        model,
        rec,
        mat,
        ot,
        streamed,
    })
}

fn online_inner<B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    prepared: ServerPrepared<'_, B>,
    ch: &mut Channel<S>,
    rng: &mut R,
    progress: &mut dyn FnMut(&Event),
) -> Result<Report, SessionError> {
    let ServerPrepared {
        model,
        mut rec,
        mut mat,
        mut ot,
        streamed,
    } = prepared;
    let (plan, sched) = (&model.plan, &model.schedule);
    let p = plan.fixed.p;
    let f = field_of(plan)?;
    let dl = model.deadlines;
    let total = sched.steps.len();
    // The client starts the online phase when it has its clip.
    ch.set_step("start-online");
    ch.recv(Tag::StartOnline)?;
    dl.arm_phase(ch, sched, &streamed, Phase::Online);

    rec.begin_phase(Phase::Online);
    let mut shares: HashMap<NodeId, Vec<u64>> = HashMap::new();
    let mut left = sched.uses.clone();
    for (i, step) in sched.steps.iter().enumerate() {
        progress(&Event::start(Phase::Online, i, total, step));
        rec.begin(ch, i, step);
        let out = {
            let ins: Vec<&[u64]> = step.inputs.iter().map(|n| &shares[n][..]).collect();
            match &step.kind {
                StepKind::Input { .. } => {
                    let v = ch.recv_u64s(Tag::Input, step.len)?;
                    check_field(p, &v, "masked input")?;
                    v
                }
                StepKind::Local => local_step(plan, step, &ins)?,
                StepKind::Linear {
                    shape,
                    weight_mag_bits,
                    ..
                } => {
                    let Some(Material::Linear(s)) = mat.remove(&step.node) else {
                        unreachable!("offline material of every linear step")
                    };
                    let (mut y, on) = model.online_linear(step, shape, ins[0], *weight_mag_bits);
                    rec.set_protocol(on);
                    rec.set_work(model.weights[&step.node].2);
                    f.add_assign(&mut y, &s);
                    y
                }
                StepKind::Garbled(layer) => {
                    let mut tick =
                        |d, n| progress(&Event::start(Phase::Online, i, total, step).part(d, n));
                    match mat.remove(&step.node) {
                        Some(Material::Garbled(keep)) => {
                            garbled::server_online(ch, layer, keep, ins[0], &mut tick)?
                        }
                        Some(Material::Streamed) => {
                            rec.set_protocol(StepProtocol::GarbledStreamed);
                            garbled::server_streamed(ch, &mut ot, layer, ins[0], rng, &mut tick)?
                        }
                        _ => unreachable!("offline material of every garbled step"),
                    }
                }
                StepKind::Compared(layer) => {
                    let Some(Material::Compared(mut cots)) = mat.remove(&step.node) else {
                        unreachable!("offline material of every compared step")
                    };
                    let mut tick =
                        |d, n| progress(&Event::start(Phase::Online, i, total, step).part(d, n));
                    compared::server_layer(ch, &mut cots, layer, ins[0], rng, &mut tick)?
                }
                StepKind::Square => {
                    let Some(Material::Square(sq)) = mat.remove(&step.node) else {
                        unreachable!("offline material of every square step")
                    };
                    let mut y = beaver::square(&f, ch, true, ins[0], sq)?;
                    // The client re-randomises its share to its fresh mask r: it sends c - r.
                    let d = ch.recv_u64s(Tag::Rerandomise, step.len)?;
                    check_field(p, &d, "re-randomised share")?;
                    f.add_assign(&mut y, &d);
                    y
                }
            }
        };
        release(&mut left, &mut shares, &step.inputs);
        shares.insert(step.node, out);
        rec.end(ch);
    }
    ch.set_step("reveal");
    ch.send_u64s(Tag::Reveal, &shares[&sched.reveal])?;
    rec.end_phase();
    Ok(rec.finish(ch))
}
