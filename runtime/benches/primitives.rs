//! Throughput of the runtime's primitives on this machine: `cargo bench -p c3d-runtime`.
//! Prints a markdown table (operations per second, best of five runs).

use c3d_ir::fixed::DELPHI_PRIME;
use c3d_runtime::field::Field;
use c3d_runtime::transport::Channel;
use c3d_runtime::wire::Tag;
use rand::SeedableRng;
use std::hint::black_box;
use std::time::Instant;

fn best_of<F: FnMut()>(mut f: F) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let f = Field::new(DELPHI_PRIME).expect("prime");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let n = 1 << 20;
    let a = f.random_vec(&mut rng, n);
    let b = f.random_vec(&mut rng, n);
    let mut rows = Vec::new();
    let mut x = a.clone();
    let t = best_of(|| f.add_assign(black_box(&mut x), &b));
    rows.push(("field add (slice)", n as f64 / t));
    let t = best_of(|| f.mul_assign(black_box(&mut x), &b));
    rows.push(("field mul (slice, Montgomery)", n as f64 / t));
    let t = best_of(|| f.axpy(black_box(&mut x), 123_456_789, &b));
    rows.push(("field axpy (prepared scalar)", n as f64 / t));
    let t = best_of(|| {
        black_box(f.dot(&a, &b));
    });
    rows.push(("field dot (lazy u128)", n as f64 / t));
    let t = best_of(|| {
        black_box(f.random_vec(&mut rng, n));
    });
    rows.push(("uniform field elements (ChaCha20)", n as f64 / t));
    // Transport: u64 vectors through a Unix socket pair, both ends in this process.
    let (tx, mut rx) = Channel::pair().expect("pair");
    let mut tx = Some(tx);
    let payload = a.clone();
    let t = best_of(|| {
        let p = payload.clone();
        let mut c = tx.take().expect("sender is back");
        let h = std::thread::spawn(move || {
            c.send_u64s(Tag::Input, &p).expect("send");
            c
        });
        let mut sum = 0u64;
        rx.recv_u64s_with(Tag::Input, n, |c| sum = sum.wrapping_add(c[0]))
            .expect("recv");
        tx = Some(h.join().expect("sender"));
        black_box(sum);
    });
    rows.push(("transport u64 stream (socket pair)", n as f64 / t));
    // Garbling: a ReLU circuit at the plan's prime, garbled and evaluated many times.
    use c3d_runtime::gc::{halfgates, hash::Hasher, lockstep, pool_relu, Label, Tweak};
    let circ = pool_relu::pool_relu(DELPHI_PRIME, 12, 1, true);
    let ands = circ.and_count();
    let h = Hasher::default();
    let reps = 2000;
    let mut tables = Vec::with_capacity(ands * reps);
    let mut gbs = Vec::new();
    let t = best_of(|| {
        tables.clear();
        gbs.clear();
        for _ in 0..reps {
            gbs.push(halfgates::garble(&circ, &h, &mut rng, |tb| tables.push(tb)));
        }
    });
    rows.push((
        "AND gates garbled (ReLU circuits)",
        (ands * reps) as f64 / t,
    ));
    let gin: Vec<Vec<Label>> = gbs.iter().map(|g| g.encode_garbler(&[false; 41])).collect();
    let t = best_of(|| {
        let mut it = tables.iter();
        for (g, gl) in gbs.iter().zip(&gin) {
            let out = halfgates::evaluate(&circ, &h, gl, &g.evaluator_zero, || {
                *it.next().expect("tables")
            });
            black_box(out);
        }
    });
    rows.push((
        "AND gates evaluated (ReLU circuits)",
        (ands * reps) as f64 / t,
    ));
    // The same circuits, LOCKSTEP copies at a time (how the runtime garbles a layer).
    let k = lockstep::LOCKSTEP;
    let tweaks: Vec<Tweak> = (0..k as u128).map(|i| Tweak::new(i << 40)).collect();
    let mut rngs: Vec<rand_chacha::ChaCha20Rng> = (0..k as u64)
        .map(rand_chacha::ChaCha20Rng::seed_from_u64)
        .collect();
    let mut lt: Vec<Vec<halfgates::Table>> = vec![Vec::new(); k];
    let mut lgb = Vec::new();
    let t = best_of(|| {
        lt.iter_mut().for_each(|t| t.clear());
        lgb.clear();
        for _ in 0..reps / k {
            lgb = lockstep::garble_lockstep(&circ, &h, &tweaks, &mut rngs, |c, tb| lt[c].push(tb));
        }
    });
    rows.push((
        "AND gates garbled, 16 circuits in lockstep",
        (ands * (reps / k) * k) as f64 / t,
    ));
    let lg: Vec<Vec<Label>> = lgb.iter().map(|g| g.encode_garbler(&[false; 41])).collect();
    let gr: Vec<&[Label]> = lg.iter().map(|v| &v[..]).collect();
    let er: Vec<&[Label]> = lgb.iter().map(|g| &g.evaluator_zero[..]).collect();
    let t = best_of(|| {
        for _ in 0..reps / k {
            let mut at = vec![0usize; k];
            let out = lockstep::evaluate_lockstep(&circ, &h, &tweaks, &gr, &er, |c| {
                at[c] += 1;
                lt[c][(at[c] - 1) % lt[c].len()]
            });
            black_box(out);
        }
    });
    rows.push((
        "AND gates evaluated, 16 circuits in lockstep",
        (ands * (reps / k) * k) as f64 / t,
    ));
    // OT extension: chosen-message label OTs between two threads over a socket pair.
    use c3d_runtime::ot::{OtReceiver, OtSender};
    let (mut oa, mut ob) = Channel::pair().expect("pair");
    let t0 = Instant::now();
    let h = std::thread::spawn(move || {
        let mut r = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let s = OtSender::setup(&mut oa, &mut r).expect("base OT");
        (s, oa)
    });
    let mut orcv = OtReceiver::setup(&mut ob, &mut rng).expect("base OT");
    let (osnd, oa) = h.join().expect("sender");
    let base_s = t0.elapsed().as_secs_f64();
    let m = 1 << 20;
    let pairs: Vec<(u128, u128)> = (0..m as u128).map(|i| (i, !i)).collect();
    let choices: Vec<bool> = (0..m).map(|i| i % 3 == 0).collect();
    let mut snd = Some((osnd, oa));
    let t = best_of(|| {
        let (mut s, mut c) = snd.take().expect("sender is back");
        let p = pairs.clone();
        let h = std::thread::spawn(move || {
            s.send(&mut c, &p).expect("send");
            (s, c)
        });
        black_box(orcv.receive(&mut ob, &choices).expect("receive"));
        snd = Some(h.join().expect("sender"));
    });
    rows.push((
        "OT extension, chosen 128-bit messages (both sides)",
        m as f64 / t,
    ));
    // Silent COT: rounds of 2^21 with the default parameters, both sides on two threads.
    use c3d_runtime::ot::lpn_params::SilentParams;
    use c3d_runtime::ot::silent_cot::{SilentReceiver, SilentSender};
    let params = SilentParams::for_round(1 << 21).expect("default set");
    let (s, c) = snd.take().expect("sender is back");
    let mut srng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let mut silent_s = Some((
        SilentSender::new(params, &mut srng).expect("sender"),
        s,
        c,
        srng,
    ));
    let mut silent_r = SilentReceiver::new(params).expect("receiver");
    let before = ob.total();
    let mut rounds = 0u64;
    let t = best_of(|| {
        let (mut ss, mut s, mut c, mut r) = silent_s.take().expect("sender is back");
        let h = std::thread::spawn(move || {
            black_box(ss.round(&mut c, &mut s, &mut r).expect("sender round"));
            (ss, s, c, r)
        });
        black_box(
            silent_r
                .round(&mut ob, &mut orcv, &mut rng)
                .expect("receiver round"),
        );
        silent_s = Some(h.join().expect("sender"));
        rounds += 1;
    });
    let after = ob.total();
    let wire = (after.sent - before.sent) + (after.received - before.received);
    rows.push((
        "silent COT, rounds of 2^21 (GGM trees, ExConv7x24; both sides)",
        params.n as f64 / t,
    ));
    println!(
        "silent COT: {} bytes both ways per round of {} COTs, {:.2} bits per COT (IKNP: 128)",
        wire / rounds,
        params.n,
        (wire / rounds) as f64 * 8.0 / params.n as f64
    );
    println!(
        "128 base OTs (Chou-Orlandi, Ristretto): {:.1} ms",
        base_s * 1e3
    );
    println!(
        "ReLU at the 41-bit prime, t = 12: {ands} AND gates, {} bytes of tables, {} input labels\n",
        ands * 32,
        circ.garbler_inputs + circ.evaluator_inputs
    );
    println!("| primitive | million per second |\n| --- | --- |");
    for (name, per_s) in rows {
        println!("| {name} | {:.1} |", per_s / 1e6);
    }
}
