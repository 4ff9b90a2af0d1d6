//! Offline HE cost of every C3D linear layer on each BFV backend:
//! `cargo bench -p c3d-runtime --bench he_layers [--features seal]`.
//!
//! Per-operation times are measured (one thread, averaged), then each layer's packing gives
//! the operation counts; the layer time is the sum (one thread). A small layer is also run
//! end to end over a socket pair to check the model against a real run.

use c3d_ir::fixed::DELPHI_PRIME;
use c3d_runtime::he::{fhers::FheRs, Backend, Encoding, FloodBudget};
use c3d_runtime::linear::{client_linear, server_linear, ConvShape, Packing};
use c3d_runtime::transport::Channel;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::sync::Arc;
use std::time::Instant;

/// Public weight bound assumed (the compiler's weight scales stay below 2^16).
const WEIGHT_BITS: u32 = 16;

/// Flooded replies per session assumed: 2^16, more than full C3D returns.
const SESSION: FloodBudget = FloodBudget::new(1 << 16);

fn conv(c_in: usize, c_out: usize, dhw: [usize; 3]) -> ConvShape {
    ConvShape::same_3x3x3(c_in, c_out, dhw)
}

fn c3d_layers() -> Vec<(&'static str, ConvShape)> {
    vec![
        ("conv1a", conv(3, 64, [16, 112, 112])),
        ("conv2a", conv(64, 128, [16, 56, 56])),
        ("conv3a", conv(128, 256, [8, 28, 28])),
        ("conv3b", conv(256, 256, [8, 28, 28])),
        ("conv4a", conv(256, 512, [4, 14, 14])),
        ("conv4b", conv(512, 512, [4, 14, 14])),
        ("conv5a", conv(512, 512, [2, 7, 7])),
        ("conv5b", conv(512, 512, [2, 7, 7])),
        ("fc6", ConvShape::fully_connected(8192, 4096)),
        ("fc7", ConvShape::fully_connected(4096, 4096)),
        ("fc8 (101)", ConvShape::fully_connected(4096, 101)),
    ]
}

/// Seconds per operation.
struct OpCosts {
    encrypt: f64,
    prepare: f64,
    mul: f64,
    add: f64,
    dot: f64,
    finish: f64,
    decrypt: f64,
    bytes_in: usize,
    bytes_out: usize,
}

fn time<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn op_costs<B: Backend>(be: &B) -> OpCosts {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let p = be.plain_modulus();
    let n = be.degree();
    let sk = be.keygen(&mut rng).expect("keygen");
    let key = be
        .read_public_key(&be.public_key(&sk, &mut rng).expect("pk"))
        .expect("pk");
    let v: Vec<u64> = (0..n).map(|_| rng.random_range(0..p)).collect();
    let w: Vec<u64> = (0..n).map(|i| if i % 7 == 0 { 5 } else { 0 }).collect();
    let ct = be.encrypt(&sk, &v, Encoding::Coeff, &mut rng).expect("enc");
    let bytes_in = be.serialize(&ct).expect("ser").len();
    let pt = be.prepare(&w, Encoding::Coeff).expect("prep");
    let reps = 20;
    let encrypt = time(reps, || {
        let c = be.encrypt(&sk, &v, Encoding::Coeff, &mut rng).expect("enc");
        std::hint::black_box(be.serialize(&c).expect("ser"));
    });
    let mut acc = be.mul_plain(&ct, &pt).expect("mul");
    let mul = time(reps * 5, || {
        std::hint::black_box(be.mul_plain(&ct, &pt).expect("mul"));
    });
    let prod = acc.clone();
    let add = time(reps * 5, || be.add_assign(&mut acc, &prod).expect("add"));
    let prepare = time(reps, || {
        std::hint::black_box(be.prepare(&w, Encoding::Coeff).expect("prep"));
    });
    // A product in the matrix the server multiplies (8 tiles by 16 blocks by 4 groups), per
    // product: one group's kernels against a batch of tiles.
    let pts: Vec<B::Pt> = (0..16)
        .map(|_| be.prepare(&w, Encoding::Coeff).expect("prep"))
        .collect();
    let cols: Vec<Vec<Option<&B::Pt>>> = (0..4).map(|_| pts.iter().map(Some).collect()).collect();
    let rows: Vec<Vec<&B::Ct>> = (0..8).map(|_| vec![&ct; 16]).collect();
    let dot = time(reps / 4, || {
        std::hint::black_box(be.dot_matrix(&rows, &cols).expect("dot"));
    }) / 512.0;
    let mut out = acc.clone();
    let finish = time(reps, || {
        let mut c = acc.clone();
        be.finish(&mut c, &v, 100, &key, &mut rng).expect("finish");
        std::hint::black_box(be.serialize(&c).expect("ser"));
        out = c;
    });
    let bytes_out = be.serialize(&out).expect("ser").len();
    let decrypt = time(reps, || {
        let c = be
            .deserialize(&be.serialize(&out).expect("ser"))
            .expect("de");
        std::hint::black_box(be.decrypt(&sk, &c, Encoding::Coeff).expect("dec"));
    });
    OpCosts {
        encrypt,
        prepare,
        mul,
        add,
        dot,
        finish,
        decrypt,
        bytes_in,
        bytes_out,
    }
}

fn model(c: &OpCosts, s: &ConvShape, pk: &Packing) -> f64 {
    let products = pk.products(s) as f64;
    products * c.dot
        + pk.kernel_preparations(s) as f64 * c.prepare
        + pk.cts_in(s) as f64 * c.encrypt
        + pk.cts_out(s) as f64 * (c.finish + c.decrypt)
}

fn bench<B: Backend + 'static>(be: Arc<B>) {
    // One thread, as the per-operation figures say.
    let c = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool")
        .install(|| op_costs(be.as_ref()));
    println!(
        "\n### {} (N = {}, {}-bit q, p = Delphi's 41-bit prime, {WEIGHT_BITS}-bit weights)\n",
        be.name(),
        be.degree(),
        be.modulus_bits()
    );
    println!(
        "per operation, one thread: encrypt+serialize {:.2} ms, prepare a kernel {:.3} ms, plaintext multiply {:.3} ms, \
         add {:.3} ms, product in a dot of 8 x 16 x 4 {:.4} ms, mask+flood+switch+serialize {:.2} ms, deserialize+decrypt {:.2} ms; \
         ciphertext {} kB in, {} kB out\n",
        c.encrypt * 1e3, c.prepare * 1e3, c.mul * 1e3, c.add * 1e3, c.dot * 1e3, c.finish * 1e3, c.decrypt * 1e3,
        c.bytes_in / 1000, c.bytes_out / 1000
    );
    println!("| layer | tile (D,H,W) x C_t x M_o | products | kernels prepared | cts in | cts out | MB in | MB out | model s (1 thread) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut total = (0.0, 0.0, 0.0);
    for (name, s) in c3d_layers() {
        let pk = Packing::choose(&s, be.as_ref(), WEIGHT_BITS, &SESSION).expect("packing");
        let mb_in = (pk.cts_in(&s) * c.bytes_in) as f64 / 1e6;
        let mb_out = (pk.cts_out(&s) * c.bytes_out) as f64 / 1e6;
        let secs = model(&c, &s, &pk);
        total = (total.0 + mb_in, total.1 + mb_out, total.2 + secs);
        println!(
            "| {name} | {:?} x {} x {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} |",
            pk.tile,
            pk.c_t,
            pk.m_o,
            pk.products(&s),
            pk.kernel_preparations(&s),
            pk.cts_in(&s),
            pk.cts_out(&s),
            mb_in,
            mb_out,
            secs
        );
    }
    println!(
        "| total | | | | | | {:.0} | {:.0} | {:.0} |",
        total.0, total.1, total.2
    );

    // The model against a real run: conv 64 -> 64 at 2x14x14, both sides over a socket pair.
    let s = conv(64, 64, [2, 14, 14]);
    let pk = Packing::choose(&s, be.as_ref(), WEIGHT_BITS, &SESSION).expect("packing");
    let (secs, st) = end_to_end(be.clone(), &s, &pk);
    println!(
        "\ncheck: conv 64->64 at 2x14x14 end to end over a socket pair (both parties, {} threads): {:.2} s; \
         model (one thread) {:.2} s; {} products, {} + {} ciphertexts, {:.1} + {:.1} MB",
        rayon::current_num_threads(),
        secs,
        model(&c, &s, &pk),
        st.products,
        st.cts_in,
        st.cts_out,
        st.bytes_in as f64 / 1e6,
        st.bytes_out as f64 / 1e6
    );
    if std::env::args().any(|a| a == "--full") {
        println!(
            "\nevery layer end to end over a socket pair, both parties in one process ({} threads):\n",
            rayon::current_num_threads()
        );
        println!("| layer | seconds | model s (1 thread) | MB in | MB out |");
        println!("| --- | --- | --- | --- | --- |");
        let mut tot = (0.0, 0.0, 0.0, 0.0);
        for (name, s) in c3d_layers() {
            let pk = Packing::choose(&s, be.as_ref(), WEIGHT_BITS, &SESSION).expect("packing");
            let (secs, st) = end_to_end(be.clone(), &s, &pk);
            let (i, o) = (st.bytes_in as f64 / 1e6, st.bytes_out as f64 / 1e6);
            let m = model(&c, &s, &pk);
            println!("| {name} | {secs:.1} | {m:.1} | {i:.0} | {o:.0} |");
            tot = (tot.0 + secs, tot.1 + m, tot.2 + i, tot.3 + o);
        }
        println!(
            "| total | {:.1} | {:.1} | {:.0} | {:.0} |",
            tot.0, tot.1, tot.2, tot.3
        );
    }
}

/// Both sides of one layer over a socket pair, random mask and weights: seconds and the
/// server's statistics.
fn end_to_end<B: Backend + 'static>(
    be: Arc<B>,
    s: &ConvShape,
    pk: &Packing,
) -> (f64, c3d_runtime::linear::LinearStats) {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let w: Vec<u64> = (0..s.weight_len())
        .map(|_| rng.random_range(0..1u64 << 10))
        .collect();
    end_to_end_with(be, s, pk, WEIGHT_BITS, &SESSION, w)
}

/// [`end_to_end`] with given weights, weight bound and session flooding.
fn end_to_end_with<B: Backend + 'static>(
    be: Arc<B>,
    s: &ConvShape,
    pk: &Packing,
    wbits: u32,
    flood: &FloodBudget,
    w: Vec<u64>,
) -> (f64, c3d_runtime::linear::LinearStats) {
    let p = be.plain_modulus();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let r: Vec<u64> = (0..s.input_len()).map(|_| rng.random_range(0..p)).collect();
    let (mut a, mut b) = Channel::pair().expect("pair");
    let sk = be.keygen(&mut rng).expect("keygen");
    let key = be
        .read_public_key(&be.public_key(&sk, &mut rng).expect("pk"))
        .expect("pk");
    let t = Instant::now();
    let (be2, s2, pk2, flood2) = (be.clone(), s.clone(), pk.clone(), *flood);
    let h = std::thread::spawn(move || {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        server_linear(
            be2.as_ref(),
            &mut a,
            &s2,
            &pk2,
            wbits,
            &flood2,
            &w,
            &key,
            &mut rng,
        )
        .expect("server")
    });
    client_linear(be.as_ref(), &mut b, &sk, s, pk, wbits, flood, &r, &mut rng).expect("client");
    let (_, st) = h.join().expect("server");
    (t.elapsed().as_secs_f64(), st)
}

/// `--plan PLAN`: every HE layer of a compiled plan (its shapes, packings, public weight
/// bounds, session flooding and the weights of `PLAN.weights`) end to end over a socket pair,
/// both parties in this process: the offline HE phase of the plan without the rest.
fn plan_layers(path: &str) {
    use c3d_runtime::session::schedule::StepKind;
    let plan_path = std::path::Path::new(path);
    let (plan, hash) = c3d_ir::Plan::load(plan_path).expect("plan");
    let weights = plan
        .load_weights(&c3d_ir::format::weights_path_for(plan_path))
        .expect("weights");
    let be = Arc::new(FheRs::new(plan.fixed.p).expect("params"));
    let model = c3d_runtime::session::server::ServerModel::new(
        plan.clone(),
        hash,
        &weights,
        FheRs::new(plan.fixed.p).expect("params"),
    )
    .expect("model");
    let flood = model.schedule.flood;
    println!(
        "\n{path}: every HE layer end to end over a socket pair, both parties in one process ({} threads), \
         {} flooded replies per session\n",
        rayon::current_num_threads(),
        flood.replies()
    );
    println!(
        "| layer | seconds | products | dense products | kernels prepared | cts in | cts out | MB in | MB out | cost model s (1 core) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut tot = (0.0, 0, 0, 0, 0, 0.0, 0.0);
    for step in &model.schedule.steps {
        let StepKind::Linear {
            shape,
            packing,
            weight_mag_bits,
        } = &step.kind
        else {
            continue;
        };
        let w = model.linear_weights(step.node).expect("weights").to_vec();
        let (secs, st) = end_to_end_with(be.clone(), shape, packing, *weight_mag_bits, &flood, w);
        let name = &plan.graph.node(step.node).name;
        let (i, o) = (st.bytes_in as f64 / 1e6, st.bytes_out as f64 / 1e6);
        println!(
            "| {name} | {secs:.1} | {} | {} | {} | {} | {} | {i:.0} | {o:.0} | {:.1} |",
            st.products,
            packing.products(shape),
            packing.kernel_preparations(shape),
            st.cts_in,
            st.cts_out,
            packing.cost(shape)
        );
        tot = (
            tot.0 + secs,
            tot.1 + st.products,
            tot.2 + packing.products(shape),
            tot.3 + st.cts_in,
            tot.4 + st.cts_out,
            tot.5 + i,
            tot.6 + o,
        );
    }
    println!(
        "| total | {:.1} | {} | {} | | {} | {} | {:.0} | {:.0} | |",
        tot.0, tot.1, tot.2, tot.3, tot.4, tot.5, tot.6
    );
}

/// Milliseconds of one thread per slot rotation (column rotation by 1, fhe.rs's Galois key at
/// the full modulus, N = 8192), and the serialised key's bytes: what the slot packings'
/// estimates take (`c3d_ir::he_slots::COST_ROTATE_US`).
fn rotation_cost() -> (f64, usize) {
    use fhe::bfv::{
        BfvParametersBuilder, Ciphertext, Encoding as E, EvaluationKeyBuilder, Plaintext, SecretKey,
    };
    use fhe_traits::{FheEncoder, FheEncrypter, Serialize};
    let par = BfvParametersBuilder::new()
        .set_degree(8192)
        .set_plaintext_modulus(DELPHI_PRIME)
        .set_moduli_sizes(c3d_ir::HeModel::limb_bits(DELPHI_PRIME))
        .build_arc()
        .expect("params");
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let sk = SecretKey::random(&par, &mut rng);
    let ek = EvaluationKeyBuilder::new(&sk)
        .expect("builder")
        .enable_column_rotation(1)
        .expect("rotation")
        .build(&mut rng)
        .expect("key");
    let v: Vec<u64> = (0..8192u64).collect();
    let pt = Plaintext::try_encode(&v, E::simd(), &par).expect("encode");
    let ct: Ciphertext = sk.try_encrypt(&pt, &mut rng).expect("encrypt");
    let secs = time(20, || {
        std::hint::black_box(ek.rotates_columns_by(&ct, 1).expect("rotate"));
    });
    (secs * 1e3, ek.to_bytes().len())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--plan") {
        for path in args[i + 1..].iter().take_while(|a| !a.starts_with("--")) {
            plan_layers(path);
        }
        return;
    }
    let (rot_ms, key_bytes) = rotation_cost();
    println!(
        "fhe.rs slot rotation (key switch), one thread: {rot_ms:.2} ms; one Galois key {} kB",
        key_bytes / 1000
    );
    bench(Arc::new(FheRs::new(DELPHI_PRIME).expect("params")));
    #[cfg(feature = "seal")]
    bench(Arc::new(
        c3d_runtime::he::seal::Seal::new(DELPHI_PRIME).expect("params"),
    ));
}
