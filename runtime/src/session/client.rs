//! The client's side of a session: it holds the clip and the BFV secret key, prepares all
//! masks offline, and learns only the revealed logits.

use super::compared::{self, CotSupply, SupplyState};
use super::garbled;
use super::report::{Event, Phase, Recorder, Report, StepProtocol};
use super::schedule::{Schedule, StepKind};
use super::spool::Spool;
use super::{
    check_field, field_of, handshake, local_step, placement, release, PlanError, SessionError,
};
use crate::beaver::{self, Squares};
use crate::field::Field;
use crate::he::Backend;
use crate::linear;
use crate::ot::OtReceiver;
use crate::transport::{Channel, Stream};
use crate::wire::Tag;
use c3d_ir::op::OpClass;
use c3d_ir::{NodeId, Plan, Tensor};
use rand::{CryptoRng, Rng, RngCore};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// Client settings.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Where the offline material is spooled (the system temporary directory by default).
    pub spool_dir: Option<PathBuf>,
    /// Most bytes to spool; garbled layers that do not fit are streamed in the online phase
    /// (default: 90 % of the free space where the spool goes).
    pub spool_limit: Option<u64>,
    /// Deadlines of the handshake and the phases (a server that stalls is given up on).
    pub deadlines: super::Deadlines,
}

impl ClientOptions {
    /// The spool limit in bytes: the one set, or 90 % of the space free in the spool's
    /// directory.
    pub fn spool_limit(&self) -> Result<u64, SessionError> {
        if let Some(l) = self.spool_limit {
            return Ok(l);
        }
        let dir = self.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
        let free = fs4::available_space(&dir).map_err(|e| {
            std::io::Error::other(format!(
                "cannot tell the free space in {} ({e}); give a spool limit",
                dir.display()
            ))
        })?;
        Ok(free / 10 * 9)
    }
}

/// What the client learns.
#[derive(Clone, Debug)]
pub struct ClientOutcome {
    /// The revealed field values (centred), bit for bit what `c3dc simulate` reveals.
    pub revealed: Tensor<i64>,
    /// Their fractional bits.
    pub scale: u32,
    /// Their public divisor.
    pub divisor: u64,
    /// The model output (client-side ops such as softmax applied).
    pub output: Tensor<f32>,
}

/// The client's offline material for one later clip. Consumed by [`client_online`].
pub struct ClientPrepared<'a> {
    plan: &'a Plan,
    sched: Schedule,
    rec: Recorder,
    input_mask: Vec<u64>,
    squares: HashMap<NodeId, (Vec<u64>, Squares, Vec<u64>)>,
    /// Streamed garbled layers: the client's input share and output mask.
    streamed: HashMap<NodeId, (Vec<u64>, Vec<u64>)>,
    /// Their step indices, ascending.
    streamed_steps: Vec<usize>,
    /// OT-compared layers: the client's input share, output mask and COTs.
    compared: HashMap<NodeId, (Vec<u64>, Vec<u64>, CotSupply)>,
    deadlines: super::Deadlines,
    reveal_share: Vec<u64>,
    spool: Spool,
    ot: OtReceiver,
}

/// Connects the session and runs the offline phase: nothing here depends on the clip. On
/// failure the server is told why (unless it is gone).
pub fn client_offline<'a, B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    plan: &'a Plan,
    plan_hash: &[u8; 32],
    be: &'a B,
    ch: &mut Channel<S>,
    opts: &ClientOptions,
    rng: &mut R,
    progress: &mut dyn FnMut(&Event),
) -> Result<ClientPrepared<'a>, SessionError> {
    super::guarded(ch, |ch| {
        offline_inner(plan, plan_hash, be, ch, opts, rng, progress)
    })
}

fn offline_inner<'a, B: Backend, S: Stream, R: Rng + CryptoRng + RngCore>(
    plan: &'a Plan,
    plan_hash: &[u8; 32],
    be: &'a B,
    ch: &mut Channel<S>,
    opts: &ClientOptions,
    rng: &mut R,
    progress: &mut dyn FnMut(&Event),
) -> Result<ClientPrepared<'a>, SessionError> {
    let t0 = Instant::now();
    plan.validate()?;
    let sched = Schedule::new(plan, be)?;
    let f = field_of(plan)?;
    let mut rec = Recorder::new(
        "client",
        &plan.meta.name,
        &c3d_ir::format::hex(plan_hash),
        be.name(),
    );
    let dl = opts.deadlines;
    dl.arm_handshake(ch);
    handshake::client(ch, plan_hash, be.name())?;
    dl.arm_phase(ch, &sched, &[], Phase::Offline);
    ch.set_step("setup");
    let sk = be.keygen(rng)?;
    // The server re-randomises every ciphertext it returns with this key.
    ch.send(Tag::PublicKey, &be.public_key(&sk, rng)?)?;
    let mut ot = OtReceiver::setup(ch, rng)?;
    let mut spool = Spool::new(opts.spool_dir.as_deref())?;
    // Garbled layers that fit neither the spool nor the server's memory are streamed online.
    let keep_limit = ch.recv_u64s(Tag::KeepLimit, 1)?[0];
    let streamed = placement::choose_streamed(
        &placement::garbled_costs(&sched),
        opts.spool_limit()?,
        keep_limit,
    );
    ch.send(Tag::Streamed, &placement::encode(&streamed))?;
    dl.arm_phase(ch, &sched, &streamed, Phase::Offline);
    rec.set_streamed(
        streamed
            .iter()
            .map(|&i| sched.steps[i].name.clone())
            .collect(),
    );
    rec.setup_done(t0);

    rec.begin_phase(Phase::Offline);
    let total = sched.steps.len();
    // The client's share of every live tensor; all of them are known before the clip.
    let mut c: HashMap<NodeId, Vec<u64>> = HashMap::new();
    let mut left = sched.uses.clone();
    let mut input_mask = Vec::new();
    let mut squares = HashMap::new();
    let mut streamed_in = HashMap::new();
    let mut compared_in = HashMap::new();
    let mut supply = SupplyState::default();
    let mut ahead = compared::EXPAND_AHEAD_BYTES;
    for (i, step) in sched.steps.iter().enumerate() {
        progress(&Event::start(Phase::Offline, i, total, step));
        rec.begin(ch, i, step);
        let out = {
            let ins: Vec<&[u64]> = step.inputs.iter().map(|n| &c[n][..]).collect();
            match &step.kind {
                StepKind::Input { .. } => {
                    input_mask = f.random_vec(rng, step.len);
                    input_mask.clone()
                }
                StepKind::Local => local_step(plan, step, &ins)?,
                StepKind::Linear {
                    shape,
                    packing,
                    weight_mag_bits,
                } => {
                    linear::client_linear(
                        be,
                        ch,
                        &sk,
                        shape,
                        packing,
                        *weight_mag_bits,
                        &sched.flood,
                        ins[0],
                        rng,
                    )?
                    .0
                }
                StepKind::Garbled(_) if streamed.binary_search(&i).is_ok() => {
                    rec.set_protocol(StepProtocol::GarbledStreamed);
                    let r = f.random_vec(rng, step.len);
                    streamed_in.insert(step.node, (ins[0].to_vec(), r.clone()));
                    r
                }
                StepKind::Garbled(layer) => {
                    let r = f.random_vec(rng, step.len);
                    let mut tick =
                        |d, n| progress(&Event::start(Phase::Offline, i, total, step).part(d, n));
                    garbled::client_offline(ch, &mut ot, layer, ins[0], &r, &mut spool, &mut tick)?;
                    r
                }
                StepKind::Square => {
                    let sq = beaver::client_squares_ot(&f, ch, &mut ot, step.len, rng)?;
                    let r = f.random_vec(rng, step.len);
                    squares.insert(step.node, (ins[0].to_vec(), sq, r.clone()));
                    r
                }
                StepKind::Compared(layer) => {
                    let mut cots = compared::client_supply(ch, &mut ot, &mut supply, layer, rng)?;
                    ahead -= cots.expand_ahead(ahead)?;
                    let r = f.random_vec(rng, step.len);
                    compared_in.insert(step.node, (ins[0].to_vec(), r.clone(), cots));
                    r
                }
            }
        };
        release(&mut left, &mut c, &step.inputs);
        c.insert(step.node, out);
        rec.end(ch);
    }
    rec.end_phase();
    // Between the phases only the idle time-out applies (the clip may be decoded now).
    ch.set_deadline(None, "");
    rec.set_spooled(spool.len());
    let reveal_share = c
        .remove(&sched.reveal)
        .expect("the revealed node is a step");
    Ok(ClientPrepared {
        plan,
        sched,
        rec,
        input_mask,
        squares,
        streamed: streamed_in,
        streamed_steps: streamed,
        compared: compared_in,
        deadlines: opts.deadlines,
        reveal_share,
        spool,
        ot,
    })
}

/// The online phase on one clip (floats in the model's input shape). Consumes the offline
/// material. On failure the server is told why (unless it is gone).
pub fn client_online<S: Stream>(
    prepared: ClientPrepared<'_>,
    ch: &mut Channel<S>,
    input: &Tensor<f32>,
    progress: &mut dyn FnMut(&Event),
) -> Result<(ClientOutcome, Report), SessionError> {
    super::guarded(ch, |ch| prepared.online_inner(ch, input, progress))
}

impl ClientPrepared<'_> {
    /// Bytes of offline material spooled to disk.
    pub fn spooled_bytes(&self) -> u64 {
        self.spool.len()
    }

    fn online_inner<S: Stream>(
        mut self,
        ch: &mut Channel<S>,
        input: &Tensor<f32>,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<(ClientOutcome, Report), SessionError> {
        let plan = self.plan;
        let fx = plan.fixed;
        let p = fx.p;
        let f: Field = field_of(plan)?;
        let g = &plan.graph;
        let (inp, _) = g.io()?;
        if input.shape != g.node(inp).shape {
            return Err(SessionError::Input(format!(
                "clip tensor of shape {}, the model takes {}",
                input.shape,
                g.node(inp).shape
            )));
        }
        if let Some(v) = input.data.iter().find(|v| !v.is_finite()) {
            return Err(SessionError::Input(format!(
                "clip tensor holds a non-finite value ({v})"
            )));
        }
        self.deadlines
            .arm_phase(ch, &self.sched, &self.streamed_steps, Phase::Online);
        ch.set_step("start-online");
        ch.send(Tag::StartOnline, &[])?;
        self.rec.begin_phase(Phase::Online);
        let total = self.sched.steps.len();
        for (i, step) in self.sched.steps.iter().enumerate() {
            progress(&Event::start(Phase::Online, i, total, step));
            self.rec.begin(ch, i, step);
            match &step.kind {
                StepKind::Input { scale } => {
                    let x: Vec<u64> = input
                        .data
                        .iter()
                        .map(|&v| fx.to_field(fx.encode(v as f64, *scale)))
                        .collect();
                    let mut masked = x;
                    f.sub_assign(&mut masked, &self.input_mask);
                    ch.send_u64s(Tag::Input, &masked)?;
                }
                StepKind::Local | StepKind::Linear { .. } => {}
                StepKind::Garbled(layer) => {
                    let mut tick =
                        |d, n| progress(&Event::start(Phase::Online, i, total, step).part(d, n));
                    if let Some((c_in, r)) = self.streamed.remove(&step.node) {
                        self.rec.set_protocol(StepProtocol::GarbledStreamed);
                        garbled::client_streamed(ch, &mut self.ot, layer, &c_in, &r, &mut tick)?;
                    } else {
                        garbled::client_online(ch, layer, &mut self.spool, &mut tick)?;
                    }
                }
                StepKind::Compared(layer) => {
                    let (c_in, r, mut cots) = self
                        .compared
                        .remove(&step.node)
                        .expect("offline material of every compared step");
                    let mut tick =
                        |d, n| progress(&Event::start(Phase::Online, i, total, step).part(d, n));
                    compared::client_layer(ch, &mut cots, layer, &c_in, &r, &mut tick)?;
                }
                StepKind::Square => {
                    let (cx, sq, r) = self
                        .squares
                        .remove(&step.node)
                        .expect("offline material of every square step");
                    let mut y = beaver::square(&f, ch, false, &cx, sq)?;
                    f.sub_assign(&mut y, &r);
                    ch.send_u64s(Tag::Rerandomise, &y)?;
                }
            }
            self.rec.end(ch);
        }
        ch.set_step("reveal");
        let s = ch.recv_u64s(Tag::Reveal, self.reveal_share.len())?;
        check_field(p, &s, "revealed share")?;
        self.rec.end_phase();
        let revealed: Vec<i64> = f
            .reconstruct(&s, &self.reveal_share)
            .into_iter()
            .map(|v| fx.from_field(v))
            .collect();
        let out = client_tail(plan, &self.sched, revealed)?;
        Ok((out, self.rec.finish(ch)))
    }
}

/// Decodes the revealed values and runs the client-side ops (softmax, argmax) on them.
fn client_tail(
    plan: &Plan,
    sched: &Schedule,
    revealed: Vec<i64>,
) -> Result<ClientOutcome, SessionError> {
    let g = &plan.graph;
    let fx = plan.fixed;
    let shape = g.node(sched.reveal).shape.clone();
    let (scale, divisor) = (sched.reveal_scale, sched.reveal_divisor);
    let mut x = Tensor::new(
        shape.clone(),
        revealed
            .iter()
            .map(|&v| (fx.decode(v, scale) / divisor as f64) as f32)
            .collect(),
    );
    let order = g.topo_order()?;
    for id in order {
        let node = g.node(id);
        if node.op.class() == OpClass::ClientOutput {
            x = c3d_ir::eval_float::client_op(&node.op, &x, &node.shape).ok_or_else(|| {
                PlanError::Unsupported(format!("`{}` is not a client-side op", node.name))
            })?;
        }
    }
    Ok(ClientOutcome {
        revealed: Tensor::new(shape, revealed),
        scale,
        divisor,
        output: x,
    })
}
