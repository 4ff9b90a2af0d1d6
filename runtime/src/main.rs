//! c3d-run: the two-party runtime.
//!
//! ```text
//! c3d-run --role server plan.bin [--weights plan.bin.weights] [--listen ADDR]
//! c3d-run --role client plan.bin CLIP [--connect ADDR] [--output logits.npy] [--report r.json] [--top K]
//! ```

#![forbid(unsafe_code)]

use c3d_ir::{Plan, Tensor};
use c3d_runtime::he::fhers::FheRs;
use c3d_runtime::service::{self, Outcome, OutcomeSink, ProgressSink, ServeOptions};
use c3d_runtime::session::{
    client_offline, client_online, ClientOptions, Deadlines, Event, Report, ServerModel,
};
use c3d_runtime::tls::{self, NetStream};
use c3d_runtime::transport::Channel;
use clap::{Parser, ValueEnum};
use miette::{miette, IntoDiagnostic, Result, WrapErr};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::io::IsTerminal;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
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
    /// Seconds from the connection to the end of the handshake (TLS and hello) before it is
    /// dropped (server default: 10; client default: only --timeout, as a busy server queues
    /// connections).
    #[arg(long, value_name = "S")]
    handshake_timeout: Option<f64>,
    /// Seconds each phase (offline, online) may take before the session is dropped (default:
    /// sized from the plan's work at slow rates, with a wide margin).
    #[arg(long, value_name = "S")]
    phase_timeout: Option<f64>,
    /// Server: TLS certificate chain (PEM); with --tls-key, sessions run over TLS 1.3.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Server or client: private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Server: serve only clients with a certificate signed by this CA (PEM): mutual TLS.
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// Client: the CA (PEM) that signed the server's certificate; connects over TLS 1.3.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Client: the name the server's certificate must carry (default: the host of
    /// --connect).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// Allow plain TCP on a non-loopback address (the protocol assumes a private,
    /// authenticated channel: use TLS there).
    #[arg(long)]
    allow_plaintext: bool,
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
    /// fit are streamed in the online phase (default: 80 % of the memory available when the
    /// server starts).
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
    // A bug triggered by the peer ends this run with an error, not an abort trace.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match args.role {
        Role::Server => run_server(&args, plan, hash),
        Role::Client => run_client(&args, plan, hash),
    }))
    .unwrap_or_else(|p| {
        Err(miette!(
            "internal error: {}",
            c3d_runtime::session::panic_text(&*p)
        ))
    })
}

/// Seconds from a flag, checked.
fn seconds(flag: &str, v: Option<f64>) -> Result<Option<Duration>> {
    match v {
        Some(s) if !(s.is_finite() && s > 0.0 && s < 1e9) => Err(miette!(
            "{flag} must be a positive number of seconds, not {s}"
        )),
        s => Ok(s.map(Duration::from_secs_f64)),
    }
}

/// The memory available to this process now (Linux: MemAvailable), in bytes.
fn available_memory() -> Option<u64> {
    let m = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// One progress line on stderr, rewritten in place (callers check it is a terminal).
fn print_progress(label: &str, e: &Event) {
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

/// Progress on stderr when it is a terminal: one line per layer, rewritten in place.
fn progress_printer(label: String) -> impl FnMut(&Event) {
    let tty = std::io::stderr().is_terminal();
    move |e: &Event| {
        if tty {
            print_progress(&label, e)
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
    // Flags, TLS files and the listening rule are checked before the model loads.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => {
            Some(tls::server_config(c, k, args.client_ca.as_deref()).map_err(|e| miette!("{e}"))?)
        }
        _ if args.client_ca.is_some() => {
            return Err(miette!(
                "--client-ca needs TLS: give --tls-cert and --tls-key too"
            ))
        }
        _ => None,
    };
    if tls.is_none() && !args.allow_plaintext && !tls::is_loopback(&args.listen) {
        return Err(miette!(
            help = "give --tls-cert, --tls-key (and --client-ca to authenticate clients), or --allow-plaintext on a network you trust",
            "refusing to serve plain TCP on {}, which is not a loopback address",
            args.listen
        ));
    }
    let deadlines = Deadlines {
        handshake: Some(
            seconds("--handshake-timeout", args.handshake_timeout)?
                .unwrap_or(c3d_runtime::session::deadline::HANDSHAKE),
        ),
        phase: seconds("--phase-timeout", args.phase_timeout)?,
    };
    let wpath = args
        .weights
        .clone()
        .unwrap_or_else(|| c3d_ir::format::weights_path_for(&args.plan));
    let weights = plan.load_weights(&wpath).map_err(|e| miette!("{e}"))?;
    let be = FheRs::new(plan.fixed.p).map_err(|e| miette!("{e}"))?;
    let name = plan.meta.name.clone();
    let mut model = ServerModel::new(plan, hash, &weights, be).map_err(|e| miette!("{e}"))?;
    drop(weights);
    let used = c3d_runtime::session::report::resident_memory();
    let limit = match args.memory_limit {
        Some(l) if !(l.is_finite() && l > 0.0) => {
            return Err(miette!(
                "--memory-limit must be a positive number of MB, not {l}"
            ))
        }
        Some(l) => (l * 1e6) as u64,
        // Never unlimited: a share of what the machine has free now.
        None => {
            used + available_memory().ok_or_else(|| {
                miette!("cannot read the available memory; give --memory-limit MB")
            })? / 5
                * 4
        }
    };
    let per = limit.saturating_sub(used) / args.max_clients.max(1) as u64;
    if per == 0 {
        return Err(miette!(
            "--memory-limit {:.0} MB: the model alone takes {:.0} MB",
            mb(limit),
            mb(used)
        ));
    }
    eprintln!(
        "c3d-run server: model resident {:.0} MB, ceiling {:.0} MB; each of {} sessions may keep {:.0} MB of garbled material",
        mb(used),
        mb(limit),
        args.max_clients.max(1),
        mb(per)
    );
    model = model.with_keep_limit(per);
    model = model.with_deadlines(deadlines);
    if args.gpu {
        model = with_gpu(model);
    }
    let model = Arc::new(model);
    let listener = TcpListener::bind(&args.listen)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "c3d-run server: `{name}` (plan {}) on {}{}",
        &c3d_ir::format::hex(&hash)[..16],
        listener.local_addr().into_diagnostic()?,
        match (&tls, &args.client_ca) {
            (None, _) => " (plain TCP)",
            (Some(_), None) => " (TLS 1.3)",
            (Some(_), Some(_)) => " (TLS 1.3, client certificates required)",
        }
    );
    let opts = ServeOptions {
        max_clients: args.max_clients.max(1),
        sessions: args.sessions,
        idle_timeout: Duration::from_secs(args.timeout.max(1)),
        tls,
    };
    let tty = std::io::stderr().is_terminal();
    let progress: ProgressSink = Arc::new(move |id, e: &Event| {
        if tty {
            print_progress(&format!("[session {id}] "), e)
        }
    });
    let report = args.report.clone();
    let done: OutcomeSink = Arc::new(move |o: Outcome| {
        let Outcome { id, peer, result } = o;
        match result {
            Ok(rep) => {
                eprintln!(
                    "c3d-run server: session {id} ({peer}) done: offline {:.2} s, online {:.2} s, sent {:.1} MB, received {:.1} MB",
                    rep.phases.first().map_or(0.0, |p| p.seconds),
                    rep.phases.get(1).map_or(0.0, |p| p.seconds),
                    mb(rep.bytes_sent),
                    mb(rep.bytes_received)
                );
                if let Some(p) = &report {
                    if let Err(e) = write_report(&numbered(p, id), &rep) {
                        eprintln!("c3d-run server: session {id}: report not written: {e}");
                    }
                }
            }
            Err(e) => eprintln!("c3d-run server: session {id} ({peer}) ended: {e}"),
        }
    });
    service::serve(model, listener, &opts, progress, done);
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

/// Connects (retrying while the server starts) and, with --tls-ca, runs the TLS handshake
/// within `handshake` (default: the idle time-out).
fn connect(args: &Args, handshake: Option<Duration>) -> Result<Channel<NetStream>> {
    let addr = &args.connect;
    let idle = Duration::from_secs(args.timeout.max(1));
    // Everything about TLS is settled before the first packet leaves.
    let tls = match &args.tls_ca {
        Some(ca) => {
            let identity = args.tls_cert.as_deref().zip(args.tls_key.as_deref());
            let cfg = tls::client_config(ca, identity).map_err(|e| miette!("{e}"))?;
            let host = match &args.server_name {
                Some(n) => n.clone(),
                None => host_of(addr),
            };
            Some((cfg, tls::server_name(&host).map_err(|e| miette!("{e}"))?))
        }
        None if args.tls_cert.is_some() => {
            return Err(miette!(
                "--tls-cert on the client needs --tls-ca (the CA of the server's certificate)"
            ))
        }
        None if !args.allow_plaintext && !tls::is_loopback(addr) => {
            return Err(miette!(
                help = "give --tls-ca (and --tls-cert/--tls-key if the server wants a client certificate), or --allow-plaintext on a network you trust",
                "refusing plain TCP to {addr}, which is not a loopback address"
            ))
        }
        None => None,
    };
    let t0 = Instant::now();
    let tcp = loop {
        match TcpStream::connect(addr) {
            Ok(c) => break c,
            Err(e) if t0.elapsed() >= Duration::from_secs(args.connect_wait) => {
                return Err(miette!("cannot connect to the server at {addr}: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    tcp.set_nodelay(true).into_diagnostic()?;
    let stream = match tls {
        Some((cfg, name)) => {
            NetStream::connect(cfg, name, tcp, Instant::now() + handshake.unwrap_or(idle))
                .map_err(|e| miette!("TLS with the server at {addr}: {e}"))?
        }
        None => NetStream::plain(tcp),
    };
    let mut ch = Channel::over(stream);
    ch.set_timeout(Some(idle)).into_diagnostic()?;
    Ok(ch)
}

/// The host part of host:port (brackets of an IPv6 literal removed).
fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
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
    let deadlines = Deadlines {
        handshake: seconds("--handshake-timeout", args.handshake_timeout)?,
        phase: seconds("--phase-timeout", args.phase_timeout)?,
    };
    let mut ch = connect(args, deadlines.handshake)?;
    let mut rng = ChaCha20Rng::from_os_rng();
    let opts = ClientOptions {
        spool_dir: args.spool.clone(),
        spool_limit,
        deadlines,
    };
    let mut progress = progress_printer(String::new());
    let t0 = Instant::now();
    let prep = client_offline(&plan, &hash, &be, &mut ch, &opts, &mut rng, &mut progress)
        .map_err(|e| miette!("offline phase: {e}"))?;
    let input = match clip.take() {
        Some(c) => c,
        None => load()?,
    };
    let (out, rep) = client_online(prep, &mut ch, &input, &mut progress)
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
