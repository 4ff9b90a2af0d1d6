//! c3d-run: the two-party runtime.
//!
//! ```text
//! c3d-run --role server plan.bin [--weights plan.bin.weights] [--listen ADDR]
//! c3d-run --role client plan.bin CLIP [--connect ADDR] [--output logits.npy] [--report r.json] [--top K]
//! ```

use c3d_ir::{Plan, Tensor};
use c3d_runtime::he::fhers::FheRs;
use c3d_runtime::session::{client, server, ClientOptions, Event, Report, ServerModel};
use c3d_runtime::transport::Channel;
use clap::{Parser, ValueEnum};
use miette::{miette, IntoDiagnostic, Result, WrapErr};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::io::IsTerminal;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which party this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Holds the weights; serves clients.
    Server,
    /// Holds the clip; learns the label.
    Client,
}

/// Secure inference on a video clip with a compiled 3D CNN plan, between two processes.
#[derive(Parser, Debug)]
#[command(name = "c3d-run", version)]
struct Args {
    /// server or client.
    #[arg(long, value_enum)]
    role: Role,
    /// The plan (from `c3dc compile`).
    plan: PathBuf,
    /// Client: the clip (.mp4 or any FFmpeg-readable video, or a float32 .npy of the input
    /// shape).
    clip: Option<PathBuf>,
    /// Server: the weights file (default: PLAN.weights).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Server: address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: String,
    /// Server: clients served at once; more wait for a free slot.
    #[arg(long, default_value_t = 4)]
    max_clients: usize,
    /// Server: stop after this many sessions (default: serve until stopped).
    #[arg(long)]
    sessions: Option<usize>,
    /// Seconds without a message from the peer before a session is dropped.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Client: server address.
    #[arg(long, default_value = "127.0.0.1:7878")]
    connect: String,
    /// Client: seconds to keep retrying the connection while the server starts.
    #[arg(long, default_value_t = 10)]
    connect_wait: u64,
    /// Client: write the model output (after client-side ops) as float32 .npy.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Write the time/bytes/memory report as JSON (server: one file per session, numbered).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Client: classes to print.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Client: directory for the spooled offline material (default: the system temp dir).
    #[arg(long)]
    spool: Option<PathBuf>,
    /// Client: most gigabytes of offline material to spool; garbled layers beyond it are
    /// garbled and evaluated in the online phase instead, chunk by chunk (0: every garbled
    /// layer; default: 90 % of the free space in the spool directory).
    #[arg(long, value_name = "GB")]
    spool_limit: Option<f64>,
    /// Server: memory ceiling of the process in MB. What the model takes is subtracted and the
    /// rest shared among --max-clients sessions; garbled layers whose kept material would not
    /// fit are streamed in the online phase (default: no ceiling).
    #[arg(long, value_name = "MB")]
    memory_limit: Option<f64>,
    /// Server: run the online linear layers on the GPU (needs a build with `--features cuda`;
    /// without a usable GPU they run on the CPU, with a message saying why).
    #[arg(long)]
    gpu: bool,
    /// Threads for parallel work (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Client: also write the preprocessed clip as float32 .npy (the input `c3dc simulate`
    /// takes, for comparing with the plaintext simulation).
    #[arg(long)]
    save_input: Option<PathBuf>,
    /// Client: run the offline phase fully before decoding the clip (by default the clip is
    /// decoded first, so a bad clip fails before any work).
    #[arg(long)]
    offline_first: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t.max(1))
            .build_global()
            .into_diagnostic()?;
    }
    // A weights file given as the plan is refused by name: the client must never hold weights.
    let head = std::fs::read(&args.plan)
        .map(|b| b.get(..8).map(|h| h.to_vec()))
        .unwrap_or_default();
    if head.as_deref() == Some(&c3d_ir::format::WEIGHTS_MAGIC[..]) {
        return Err(miette!(
            "{} is a weights file, not a plan; a client must not hold weights",
            args.plan.display()
        ));
    }
    let (plan, hash) = Plan::load(&args.plan).map_err(|e| miette!("{e}"))?;
    match args.role {
        Role::Server => run_server(&args, plan, hash),
        Role::Client => run_client(&args, plan, hash),
    }
}

/// Progress on stderr when it is a terminal: one line per layer, rewritten in place.
fn progress_printer(label: String) -> impl FnMut(&Event) {
    let tty = std::io::stderr().is_terminal();
    move |e: &Event| {
        if tty {
            let part = e.part.map_or(String::new(), |(d, n)| {
                format!(" {:>3}%", 100 * d / n.max(1))
            });
            eprint!(
                "\r\x1b[2K{label}{} {:>3}/{} {} ({}){part}",
                e.phase.name(),
                e.index + 1,
                e.total,
                e.name,
                e.protocol
            );
            if e.index + 1 == e.total && e.part.is_none() {
                eprintln!();
            }
        }
    }
}

fn write_report(path: &Path, r: &Report) -> Result<()> {
    let s = serde_json::to_vec_pretty(r).into_diagnostic()?;
    c3d_ir::format::write_atomic(path, &s).map_err(|e| miette!("{e}"))
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or("report".into(), |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or("json".into(), |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}-{n}.{ext}"))
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn run_server(args: &Args, plan: Plan, hash: [u8; 32]) -> Result<()> {
    if args.clip.is_some() {
        return Err(miette!("the server takes no clip"));
    }
    let wpath = args
        .weights
        .clone()
        .unwrap_or_else(|| c3d_ir::format::weights_path_for(&args.plan));
    let weights = plan.load_weights(&wpath).map_err(|e| miette!("{e}"))?;
    let (_, whash) = weights.to_bytes().map_err(|e| miette!("{e}"))?;
    let be = FheRs::new(plan.fixed.p).map_err(|e| miette!("{e}"))?;
    let name = plan.meta.name.clone();
    let mut model =
        ServerModel::new(plan, hash, &weights, whash, be).map_err(|e| miette!("{e}"))?;
    drop(weights);
    if let Some(limit) = args.memory_limit {
        if !(limit.is_finite() && limit > 0.0) {
            return Err(miette!(
                "--memory-limit must be a positive number of MB, not {limit}"
            ));
        }
        let limit = (limit * 1e6) as u64;
        let used = c3d_runtime::session::report::resident_memory();
        let per = limit.saturating_sub(used) / args.max_clients.max(1) as u64;
        if per == 0 {
            return Err(miette!(
                "--memory-limit {:.0} MB: the model alone takes {:.0} MB",
                mb(limit),
                mb(used)
            ));
        }
        eprintln!(
            "c3d-run server: model resident {:.0} MB; each of {} sessions may keep {:.0} MB of garbled material",
            mb(used),
            args.max_clients.max(1),
            mb(per)
        );
        model = model.with_keep_limit(per);
    }
    if args.gpu {
        model = with_gpu(model);
    }
    let model = Arc::new(model);
    let listener = TcpListener::bind(&args.listen)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "c3d-run server: `{name}` (plan {}) on {}",
        &c3d_ir::format::hex(&hash)[..16],
        listener.local_addr().into_diagnostic()?
    );
    let active = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    let mut served = 0usize;
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("c3d-run server: accept failed: {e}");
                continue;
            }
        };
        served += 1;
        while active.load(Ordering::SeqCst) >= args.max_clients.max(1) {
            std::thread::sleep(Duration::from_millis(20));
        }
        active.fetch_add(1, Ordering::SeqCst);
        let (model, active) = (model.clone(), active.clone());
        let report = args.report.as_ref().map(|p| numbered(p, served));
        let timeout = Duration::from_secs(args.timeout.max(1));
        let id = served;
        handles.push(std::thread::spawn(move || {
            let peer = stream
                .peer_addr()
                .map_or("?".into(), |a| a.to_string());
            let r = serve_one(&model, stream, timeout, id);
            match r {
                Ok(rep) => {
                    eprintln!(
                        "c3d-run server: session {id} ({peer}) done: offline {:.2} s, online {:.2} s, sent {:.1} MB, received {:.1} MB",
                        rep.phases.first().map_or(0.0, |p| p.seconds),
                        rep.phases.get(1).map_or(0.0, |p| p.seconds),
                        mb(rep.bytes_sent),
                        mb(rep.bytes_received)
                    );
                    if let Some(p) = report {
                        if let Err(e) = write_report(&p, &rep) {
                            eprintln!("c3d-run server: session {id}: report not written: {e}");
                        }
                    }
                }
                Err(e) => eprintln!("c3d-run server: session {id} ({peer}) ended: {e}"),
            }
            active.fetch_sub(1, Ordering::SeqCst);
        }));
        handles.retain(|h| !h.is_finished());
        if args.sessions.is_some_and(|n| served >= n) {
            break;
        }
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

#[cfg(feature = "cuda")]
fn with_gpu(model: ServerModel<FheRs>) -> ServerModel<FheRs> {
    match c3d_runtime::linear::gpu::Gpu::open() {
        Ok(g) => {
            eprintln!("c3d-run server: online linear layers on {}", g.name());
            model.with_gpu(g)
        }
        Err(e) => {
            eprintln!("c3d-run server: no usable GPU ({e}); online linear layers run on the CPU");
            model
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn with_gpu(model: ServerModel<FheRs>) -> ServerModel<FheRs> {
    eprintln!(
        "c3d-run server: this build has no GPU support (rebuild with --features cuda); online linear layers run on the CPU"
    );
    model
}

fn serve_one(
    model: &ServerModel<FheRs>,
    stream: TcpStream,
    timeout: Duration,
    id: usize,
) -> std::result::Result<Report, String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut ch = Channel::new(stream).map_err(|e| e.to_string())?;
    ch.set_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut rng = ChaCha20Rng::from_os_rng();
    let mut progress = progress_printer(format!("[session {id}] "));
    server::serve(model, &mut ch, &mut rng, &mut progress).map_err(|e| e.to_string())
}

fn connect(addr: &str, wait: u64) -> Result<Channel<TcpStream>> {
    let t0 = Instant::now();
    loop {
        match Channel::connect(addr) {
            Ok(c) => return Ok(c),
            Err(e) if t0.elapsed() >= Duration::from_secs(wait) => {
                return Err(miette!("cannot connect to the server at {addr}: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn run_client(args: &Args, plan: Plan, hash: [u8; 32]) -> Result<()> {
    let clip_path = args
        .clip
        .as_ref()
        .ok_or_else(|| miette!("the client needs a clip: c3d-run --role client PLAN CLIP"))?;
    let (inp, _) = plan.graph.io().map_err(|e| miette!("{e}"))?;
    let in_shape = plan.graph.node(inp).shape.clone();
    let load = || {
        c3d_runtime::video::load_clip(clip_path, &plan.meta.preprocess, &in_shape)
            .map_err(|e| miette!("{e}"))
    };
    let mut clip: Option<Tensor<f32>> = if args.offline_first {
        None
    } else {
        Some(load()?)
    };
    let spool_limit = match args.spool_limit {
        Some(g) if !(g.is_finite() && g >= 0.0) => {
            return Err(miette!(
                "--spool-limit must be a number of GB >= 0, not {g}"
            ))
        }
        g => g.map(|g| (g * 1e9) as u64),
    };
    if let Some(d) = &args.spool {
        if !d.is_dir() {
            return Err(miette!("--spool {}: not a directory", d.display()));
        }
    }
    let be = FheRs::new(plan.fixed.p).map_err(|e| miette!("{e}"))?;
    let mut ch = connect(&args.connect, args.connect_wait)?;
    ch.set_timeout(Some(Duration::from_secs(args.timeout.max(1))))
        .into_diagnostic()?;
    let mut rng = ChaCha20Rng::from_os_rng();
    let opts = ClientOptions {
        spool_dir: args.spool.clone(),
        spool_limit,
    };
    let mut progress = progress_printer(String::new());
    let t0 = Instant::now();
    let prep = client::offline(&plan, &hash, &be, &mut ch, &opts, &mut rng, &mut progress)
        .map_err(|e| miette!("offline phase: {e}"))?;
    let input = match clip.take() {
        Some(c) => c,
        None => load()?,
    };
    let (out, rep) = prep
        .online(&mut ch, &input, &mut progress)
        .map_err(|e| miette!("online phase: {e}"))?;
    let total = t0.elapsed().as_secs_f64();
    if let Some(p) = &args.output {
        write_npy(p, &out.output)?;
    }
    if let Some(p) = &args.save_input {
        write_npy(p, &input)?;
    }
    if let Some(p) = &args.report {
        write_report(p, &rep)?;
    }
    print_top(&plan, &out.output.data, args.top, "secure");
    println!(
        "time: setup {:.2} s, offline {:.2} s, online {:.2} s, total {total:.2} s",
        rep.setup_seconds,
        rep.phases.first().map_or(0.0, |p| p.seconds),
        rep.phases.get(1).map_or(0.0, |p| p.seconds),
    );
    let ph = |i: usize| rep.phases.get(i);
    println!(
        "bytes: offline {:.1} MB sent / {:.1} MB received, online {:.1} MB sent / {:.1} MB received; peak memory {:.0} MB",
        mb(ph(0).map_or(0, |p| p.bytes_sent)),
        mb(ph(0).map_or(0, |p| p.bytes_received)),
        mb(ph(1).map_or(0, |p| p.bytes_sent)),
        mb(ph(1).map_or(0, |p| p.bytes_received)),
        mb(rep.peak_memory)
    );
    if !rep.streamed_layers.is_empty() {
        println!(
            "streamed online (beyond the spool limit): {}; spooled {:.1} MB",
            rep.streamed_layers.join(", "),
            mb(rep.spooled_bytes)
        );
    }
    Ok(())
}

/// Prints the top-k classes of the model output (as percentages when it ends in softmax).
fn print_top(plan: &Plan, out: &[f32], k: usize, label: &str) {
    let softmax = plan
        .graph
        .io()
        .is_ok_and(|(_, o)| matches!(plan.graph.node(o).op, c3d_ir::Op::Softmax { .. }));
    let mut idx: Vec<usize> = (0..out.len()).collect();
    idx.sort_by(|&a, &b| out[b].total_cmp(&out[a]));
    println!("{label} top-{}:", k.min(out.len()));
    for &i in idx.iter().take(k) {
        let name = plan
            .meta
            .class_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("class {i}"));
        if softmax {
            println!("  {:>6.2}%  {name}", out[i] * 100.0);
        } else {
            println!("  {:>9.4}  {name}", out[i]);
        }
    }
}

fn write_npy(path: &Path, t: &Tensor<f32>) -> Result<()> {
    use ndarray_npy::WriteNpyExt;
    let a = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(t.shape.dims()), t.data.clone())
        .into_diagnostic()?;
    let mut buf = Vec::new();
    a.write_npy(&mut buf).into_diagnostic()?;
    c3d_ir::format::write_atomic(path, &buf).map_err(|e| miette!("{e}"))
}
