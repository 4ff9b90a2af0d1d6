//! c3d-soak: a `c3d-run` server process under load and attack. Each round runs honest clients
//! at twice `--max-clients` at once with one hostile connection of every kind
//! (`c3d_tests::faults`: idle, trickling, garbage, oversize, wrong tag, bad key, stalled,
//! disconnects at four points of the session). Every honest result is checked against the
//! plaintext simulation bit for bit; the server's peak resident memory is read from /proc
//! while it runs and compared with its ceiling. Writes a markdown table (`--doc`).
//!
//! ```text
//! c3d-soak [--model c3d-tiny] [--rounds 3] [--max-clients 2] [--memory-limit MB] [--doc docs/soak.md]
//! ```

#![forbid(unsafe_code)]

use c3d_ir::simulate;
use c3d_runtime::transport::Channel;
use c3d_tests::bench::sibling;
use c3d_tests::faults::{honest, inject, Fault};
use c3d_tests::{export, inputs};
use clap::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Soaks a c3d-run server with honest and hostile clients.
#[derive(Parser, Debug)]
#[command(name = "c3d-soak")]
struct Args {
    /// Model (a c3d-models variant).
    #[arg(long, default_value = "c3d-tiny")]
    model: String,
    /// Rounds of load.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The server's --max-clients.
    #[arg(long, default_value_t = 2)]
    max_clients: usize,
    /// The server's --memory-limit in MB.
    #[arg(long, default_value_t = 4000.0)]
    memory_limit: f64,
    /// Loopback port.
    #[arg(long, default_value_t = 7991)]
    port: u16,
    /// Work directory (plan, weights, server log).
    #[arg(long, default_value = "out/soak")]
    work: PathBuf,
    /// The date written in the table's heading (scripts/soak.sh passes today's).
    #[arg(long, default_value = "")]
    date: String,
    /// The markdown file written.
    #[arg(long, default_value = "docs/soak.md")]
    doc: PathBuf,
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(l.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("c3d-soak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.work).map_err(|e| e.to_string())?;
    let onnx = export(&args.work, &args.model, None, 7);
    let c = c3d_compiler::compile(&onnx, &Default::default(), |_| {}).map_err(|e| e.to_string())?;
    let plan_path = args.work.join(format!("{}.plan", args.model));
    c.plan.save(&plan_path).map_err(|e| e.to_string())?;
    c.weights
        .save(&c3d_ir::format::weights_path_for(&plan_path))
        .map_err(|e| e.to_string())?;
    let plan = c.plan.clone();
    let honest_n = 2 * args.max_clients;
    let xs = inputs(&plan, honest_n, 1234);
    let want: Vec<Vec<i64>> = xs
        .iter()
        .map(|x| simulate(&plan, &c.weights, x).map(|s| s.revealed.data))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let faults = Fault::all();
    // Every connection is a session to the server: the probe, each round's, the last check.
    let sessions = 1 + args.rounds * (honest_n + faults.len()) + 1;
    let addr = format!("127.0.0.1:{}", args.port);
    let log_path = args.work.join("server.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut server = Command::new(sibling("c3d-run")?)
        .args(["--role", "server"])
        .arg(&plan_path)
        .args(["--listen", &addr, "--sessions", &sessions.to_string()])
        .args(["--max-clients", &args.max_clients.to_string()])
        .args(["--memory-limit", &args.memory_limit.to_string()])
        .args(["--handshake-timeout", "3", "--timeout", "10"])
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = server.id();
    let peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(m) = peak_rss(pid) {
                    peak.fetch_max(m, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        if t0.elapsed() > Duration::from_secs(30) {
            return Err("the server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // fault name -> (tried, survived)
    let mut table: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut honest_ok, mut honest_tried) = (0usize, 0usize);
    for round in 0..args.rounds {
        let r0 = Instant::now();
        std::thread::scope(|s| {
            let (plan, addr, xs) = (&plan, addr.as_str(), &xs);
            let hostile: Vec<_> = faults
                .iter()
                .map(|&f| (f, s.spawn(move || inject(f, plan, addr, &xs[0]))))
                .collect();
            let good: Vec<_> = (0..honest_n)
                .map(|k| {
                    s.spawn(move || {
                        let mut ch = Channel::connect(addr).map_err(|e| e.to_string())?;
                        honest(plan, &mut ch, &xs[k])
                    })
                })
                .collect();
            for (k, h) in good.into_iter().enumerate() {
                honest_tried += 1;
                match h.join() {
                    Ok(Ok(v)) if v == want[k] => honest_ok += 1,
                    Ok(Ok(_)) => eprintln!("round {round}: honest client {k} differs"),
                    Ok(Err(e)) => eprintln!("round {round}: honest client {k} failed: {e}"),
                    Err(_) => eprintln!("round {round}: honest client {k} panicked"),
                }
            }
            for (f, h) in hostile {
                let e = table.entry(f.name()).or_default();
                e.0 += 1;
                match h.join() {
                    Ok(Ok(())) => e.1 += 1,
                    Ok(Err(m)) => eprintln!("round {round}: {}: {m}", f.name()),
                    Err(_) => eprintln!("round {round}: {} panicked", f.name()),
                }
            }
        });
        eprintln!(
            "c3d-soak: round {} of {} in {:.1} s",
            round + 1,
            args.rounds,
            r0.elapsed().as_secs_f64()
        );
    }
    // The server still serves after all of it.
    let mut ch = Channel::connect(addr.as_str()).map_err(|e| e.to_string())?;
    let last_ok = honest(&plan, &mut ch, &xs[0]).is_ok_and(|v| v == want[0]);
    let status = server.wait().map_err(|e| e.to_string())?;
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let peak = peak.load(Ordering::Relaxed);
    let ceiling = (args.memory_limit * 1e6) as u64;
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let (done, ended) = (log.matches(" done:").count(), log.matches("ended:").count());
    let survived = table.values().map(|v| v.1).sum::<usize>();
    let tried = table.values().map(|v| v.0).sum::<usize>();
    let mut md = format!(
        "# Soak: a c3d-run server under load and attack\n\n\
         `bash scripts/soak.sh` (`c3d-soak --model {} --rounds {} --max-clients {} --memory-limit {}`), \
         {}, {} cores. Each round: {} honest clients at once (twice --max-clients) and one \
         hostile connection of each kind below, all against one `c3d-run --role server` \
         process over loopback (handshake deadline 3 s, idle time-out 10 s).\n\n\
         | fault | injected | survived (server dropped it, kept serving) |\n| --- | --- | --- |\n",
        args.model,
        args.rounds,
        args.max_clients,
        args.memory_limit,
        args.date,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        honest_n
    );
    for (name, (t, s)) in &table {
        md.push_str(&format!("| {name} | {t} | {s} |\n"));
    }
    md.push_str(&format!(
        "| **all faults** | **{tried}** | **{survived}** |\n\n\
         - Honest sessions equal to the fixed-point simulation, bit for bit: **{honest_ok} of {honest_tried}**; \
         one more honest session after the last round: {}.\n\
         - Server log: {done} sessions done, {ended} ended with an error (the probe connection included); \
         exit code {}.\n\
         - Server peak resident memory {:.0} MB, ceiling (--memory-limit) {:.0} MB: {}.\n\
         - Wall time {:.1} s.\n",
        if last_ok { "served, equal" } else { "FAILED" },
        status.code().map_or("none (killed)".to_string(), |c| c.to_string()),
        peak as f64 / 1e6,
        ceiling as f64 / 1e6,
        if peak <= ceiling { "under" } else { "OVER" },
        t0.elapsed().as_secs_f64()
    ));
    c3d_ir::format::write_atomic(&args.doc, md.as_bytes()).map_err(|e| e.to_string())?;
    print!("{md}");
    let all_good = honest_ok == honest_tried
        && survived == tried
        && last_ok
        && status.success()
        && peak <= ceiling;
    if all_good {
        Ok(())
    } else {
        Err("the soak found failures (see the table)".into())
    }
}
