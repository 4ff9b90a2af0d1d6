//! Load and fault test of the server's accept loop (`c3d_runtime::service`), in process over
//! loopback TCP: honest clients at twice `max_clients`, together with hostile ones at every
//! protocol step (garbage, an oversize header, a wrong tag, a bad public key, idle and
//! trickling connections before the handshake, a stall after it, disconnects at byte counts
//! spread over both phases; `c3d_tests::faults`). Every honest result must equal the
//! plaintext simulation bit for bit, every hostile connection must end in an error of its own,
//! and the server must go on serving; a final honest client after all of them proves it still
//! does.

use c3d_ir::simulate;
use c3d_runtime::service::{self, Outcome, ServeOptions};
use c3d_runtime::session::Deadlines;
use c3d_runtime::transport::Channel;
use c3d_tests::faults::{honest, inject, Fault};
use c3d_tests::{compile_default, export, inputs, server_model};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn server_survives_hostile_clients_among_honest_ones() {
    let dir = tempfile::tempdir().unwrap();
    let c = compile_default(&export(dir.path(), "c3d-tiny", None, 11));
    let plan = c.plan.clone();
    let xs = inputs(&plan, 5, 99);
    let want: Vec<Vec<i64>> = xs
        .iter()
        .map(|x| simulate(&plan, &c.weights, x).unwrap().revealed.data)
        .collect();
    // Short limits so stalled peers are dropped in seconds; phases keep their sized deadline.
    let model = Arc::new(server_model(&c).with_deadlines(Deadlines {
        handshake: Some(Duration::from_secs(2)),
        phase: None,
    }));
    let max_clients = 2;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // Two idle connections first, as in the report that two of them starved honest clients.
    let mut faults = vec![Fault::IdleBeforeHello];
    faults.extend(Fault::all());
    let honest_n = 2 * max_clients;
    let total = faults.len() + honest_n + 1;
    let opts = ServeOptions {
        max_clients,
        sessions: Some(total),
        idle_timeout: Duration::from_secs(3),
        tls: None,
    };
    let outcomes: Arc<Mutex<Vec<(usize, bool, String)>>> = Arc::default();
    let sink = outcomes.clone();
    let server = {
        let model = model.clone();
        std::thread::spawn(move || {
            service::serve(
                model,
                listener,
                &opts,
                Arc::new(|_, _, _| {}),
                Arc::new(move |o: Outcome| {
                    let msg = o
                        .result
                        .as_ref()
                        .err()
                        .map_or(String::new(), |e| e.to_string());
                    sink.lock().unwrap().push((o.id, o.result.is_ok(), msg));
                }),
            )
        })
    };

    let t0 = Instant::now();
    std::thread::scope(|s| {
        let (plan, addr, xs) = (&plan, addr.as_str(), &xs);
        // Idle and trickling connections first: they take the slots the honest clients want.
        let (first, rest) = faults.split_at(3);
        let mut hostile: Vec<_> = first
            .iter()
            .map(|&f| s.spawn(move || inject(f, plan, addr, &xs[0])))
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let honest_handles: Vec<_> = (0..honest_n)
            .map(|k| {
                let x = &xs[k];
                s.spawn(move || {
                    let mut ch = Channel::connect(addr).unwrap();
                    honest(plan, &mut ch, x)
                })
            })
            .collect();
        hostile.extend(
            rest.iter()
                .map(|&f| s.spawn(move || inject(f, plan, addr, &xs[0]))),
        );
        for (k, h) in honest_handles.into_iter().enumerate() {
            let got = h
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("honest client {k}: {e}"));
            assert_eq!(
                got, want[k],
                "honest client {k} differs from the simulation"
            );
        }
        for (h, f) in hostile.into_iter().zip(&faults) {
            h.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("{}: {e}", f.name()));
        }
    });
    // After all of that, one more honest client is served.
    let mut ch = Channel::connect(addr.as_str()).unwrap();
    assert_eq!(honest(&plan, &mut ch, &xs[4]).unwrap(), want[4]);
    server.join().unwrap();
    let outcomes = outcomes.lock().unwrap();
    let ok = outcomes.iter().filter(|o| o.1).count();
    let failed: Vec<&String> = outcomes.iter().filter(|o| !o.1).map(|o| &o.2).collect();
    assert_eq!(
        outcomes.len(),
        total,
        "every connection ended and was reported"
    );
    assert_eq!(
        ok,
        honest_n + 1,
        "only the honest sessions succeed: {failed:?}"
    );
    assert_eq!(failed.len(), faults.len());
    let timeouts = failed
        .iter()
        .filter(|m| m.contains("deadline") || m.contains("within"))
        .count();
    let want_timeouts = faults.iter().filter(|f| f.times_out()).count();
    assert!(
        timeouts >= want_timeouts,
        "idle, trickling and stalled peers time out: {failed:?}"
    );
    // The crafted key and ciphertext are refused by name (they used to panic the server).
    assert!(
        failed
            .iter()
            .filter(|m| m.contains("power-basis form"))
            .count()
            >= 2,
        "{failed:?}"
    );
    assert!(
        !failed.iter().any(|m| m.contains("internal error")),
        "{failed:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(240),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn phase_deadlines_cover_a_real_session_and_an_override_cuts_it() {
    use c3d_runtime::he::fhers::FheRs;
    use c3d_runtime::session::deadline::phase_budget;
    use c3d_runtime::session::{ClientOptions, Phase, Schedule};
    let dir = tempfile::tempdir().unwrap();
    let c = compile_default(&export(dir.path(), "c3d-tiny", None, 12));
    let hash = c.plan.hash().unwrap();
    let model = server_model(&c);
    let x = inputs(&c.plan, 1, 3).remove(0);
    let (out, crep, _) = c3d_tests::run_secure(&c.plan, &hash, &model, &x, 1, 2);
    assert_eq!(
        out.revealed.data,
        simulate(&c.plan, &c.weights, &x).unwrap().revealed.data
    );
    // The sized deadlines leave at least 4x the time the phases really took here.
    let sched = Schedule::new(&c.plan, &FheRs::new(c.plan.fixed.p).unwrap()).unwrap();
    for (k, phase) in [Phase::Offline, Phase::Online].into_iter().enumerate() {
        let budget = phase_budget(&sched, &[], phase).as_secs_f64();
        let took = crep.phases[k].seconds;
        assert!(
            budget >= 4.0 * took,
            "{phase:?}: budget {budget} s, took {took} s"
        );
    }
    // A phase deadline too short for the work ends the session with a deadline error on
    // both sides.
    let short = Deadlines {
        handshake: None,
        phase: Some(Duration::from_millis(1)),
    };
    let model = server_model(&c).with_deadlines(short);
    let (mut a, mut b) = Channel::pair().unwrap();
    std::thread::scope(|s| {
        let srv = s.spawn(|| {
            let mut rng = rand::SeedableRng::seed_from_u64(1);
            c3d_runtime::session::serve::<_, _, rand_chacha::ChaCha20Rng>(
                &model,
                &mut a,
                &mut rng,
                &mut |_| {},
            )
        });
        let opts = ClientOptions {
            deadlines: short,
            ..Default::default()
        };
        let be = FheRs::new(c.plan.fixed.p).unwrap();
        let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(2);
        let r = c3d_runtime::session::client_offline(
            &c.plan,
            &hash,
            &be,
            &mut b,
            &opts,
            &mut rng,
            &mut |_| {},
        );
        let e = r.err().expect("a 1 ms phase cannot finish").to_string();
        assert!(e.contains("offline deadline passed"), "{e}");
        let se = srv
            .join()
            .unwrap()
            .expect_err("nor on the server")
            .to_string();
        // The server's own deadline, or the client's timeout abort if it came first.
        assert!(
            se.contains("offline deadline passed") || se.contains("it timed out"),
            "{se}"
        );
    });
}
