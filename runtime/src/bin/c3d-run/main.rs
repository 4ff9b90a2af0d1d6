//! c3d-run: the two-party runtime.
//!
//! ```text
//! c3d-run --role server plan.bin [--weights plan.bin.weights] [--listen ADDR]
//! c3d-run --role client plan.bin CLIP [--connect ADDR] [--output logits.npy] [--report r.json] [--top K]
//! ```

#![forbid(unsafe_code)]

mod bars;
mod summary;

use bars::Bars;
use c3d_ir::Tensor;
use c3d_runtime::party::{
    self, Client, ClientConfig, ClientTls, PartyError, Server, ServerConfig, ServerTls,
    SessionOutcome,
};
use c3d_runtime::session::{Deadlines, Report};
use clap::{Parser, ValueEnum};
use miette::{miette, IntoDiagnostic, Result, WrapErr};
use std::io::Write;
use std::net::TcpListener;
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
    /// Client: print one JSON object on stdout (top classes, time and bytes per phase, plan
    /// hash, protocols per layer) and nothing else there; the human lines go to stderr.
    #[arg(long)]
    json: bool,
    /// No progress bars.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t.max(1))
            .build_global()
            .into_diagnostic()?;
    }
    if args.json && args.role == Role::Server {
        return Err(miette!(
            "--json is for the client (the server writes --report files)"
        ));
    }
    // A bug triggered by the peer ends this run with an error, not an abort trace.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match args.role {
        Role::Server => run_server(&args),
        Role::Client => run_client(&args),
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

/// A library error as a diagnostic, with the CLI's flags as the help where one fits.
fn diag(e: PartyError) -> miette::Report {
    match e {
        PartyError::PlaintextServe(_) => miette!(
            help = "give --tls-cert, --tls-key (and --client-ca to authenticate clients), or --allow-plaintext on a network you trust",
            "{e}"
        ),
        PartyError::PlaintextConnect(_) => miette!(
            help = "give --tls-ca (and --tls-cert/--tls-key if the server wants a client certificate), or --allow-plaintext on a network you trust",
            "{e}"
        ),
        e => miette!("{e}"),
    }
}

fn server_config(args: &Args) -> Result<ServerConfig> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(ServerTls {
            cert: c.clone(),
            key: k.clone(),
            client_ca: args.client_ca.clone(),
        }),
        _ if args.client_ca.is_some() => {
            return Err(miette!(
                "--client-ca needs TLS: give --tls-cert and --tls-key too"
            ))
        }
        _ => None,
    };
    let memory_limit = match args.memory_limit {
        Some(l) if !(l.is_finite() && l > 0.0) => {
            return Err(miette!(
                "--memory-limit must be a positive number of MB, not {l}"
            ))
        }
        l => l.map(|l| (l * 1e6) as u64),
    };
    Ok(ServerConfig {
        max_clients: args.max_clients.max(1),
        sessions: args.sessions,
        idle_timeout: Duration::from_secs(args.timeout.max(1)),
        deadlines: Deadlines {
            handshake: Some(
                seconds("--handshake-timeout", args.handshake_timeout)?
                    .unwrap_or(c3d_runtime::session::deadline::HANDSHAKE),
            ),
            phase: seconds("--phase-timeout", args.phase_timeout)?,
        },
        tls,
        allow_plaintext: args.allow_plaintext,
        memory_limit,
    })
}

fn run_server(args: &Args) -> Result<()> {
    if args.clip.is_some() {
        return Err(miette!("the server takes no clip"));
    }
    // Flags, TLS files and the listening rule are checked before the model loads.
    let config = server_config(args)?;
    config.check(&args.listen).map_err(diag)?;
    let mut server = Server::load(&args.plan, args.weights.as_deref())
        .map_err(diag)?
        .with_config(config.clone())
        .map_err(diag)?;
    let (used, limit, per) = server.memory();
    eprintln!(
        "c3d-run server: model resident {:.0} MB, ceiling {:.0} MB; each of {} sessions may keep {:.0} MB of garbled material",
        mb(used),
        mb(limit),
        config.max_clients,
        mb(per)
    );
    if args.gpu {
        server = with_gpu(server);
    }
    let listener = TcpListener::bind(&args.listen)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "c3d-run server: `{}` (plan {}) on {}{}",
        server.name(),
        &c3d_ir::format::hex(&server.plan_hash())[..16],
        listener.local_addr().into_diagnostic()?,
        match (&config.tls, &args.client_ca) {
            (None, _) => " (plain TCP)",
            (Some(_), None) => " (TLS 1.3)",
            (Some(_), Some(_)) => " (TLS 1.3, client certificates required)",
        }
    );
    let bars = Arc::new(Bars::new(args.quiet));
    let report = args.report.clone();
    let (b1, b2) = (bars.clone(), bars);
    server
        .on_progress(move |id, p| b1.update(id, &format!("[session {id}] "), p))
        .on_session(move |o: SessionOutcome| {
            b2.finish(o.id);
            let SessionOutcome { id, peer, result } = o;
            match result {
                Ok(rep) => {
                    b2.println(&format!(
                        "c3d-run server: session {id} ({peer}) done: offline {:.2} s, online {:.2} s, sent {:.1} MB, received {:.1} MB",
                        rep.phases.first().map_or(0.0, |p| p.seconds),
                        rep.phases.get(1).map_or(0.0, |p| p.seconds),
                        mb(rep.bytes_sent),
                        mb(rep.bytes_received)
                    ));
                    if let Some(p) = &report {
                        if let Err(e) = write_report(&numbered(p, id), &rep) {
                            b2.println(&format!(
                                "c3d-run server: session {id}: report not written: {e}"
                            ));
                        }
                    }
                }
                Err(e) => b2.println(&format!("c3d-run server: session {id} ({peer}) ended: {e}")),
            }
        })
        .serve(listener)
        .map_err(diag)
}

#[cfg(feature = "cuda")]
fn with_gpu(server: Server) -> Server {
    match server.with_gpu() {
        (s, Ok(name)) => {
            eprintln!("c3d-run server: online linear layers on {name}");
            s
        }
        (s, Err(e)) => {
            eprintln!("c3d-run server: {e}; online linear layers run on the CPU");
            s
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn with_gpu(server: Server) -> Server {
    eprintln!(
        "c3d-run server: this build has no GPU support (rebuild with --features cuda); online linear layers run on the CPU"
    );
    server
}

fn client_config(args: &Args) -> Result<ClientConfig> {
    let tls = match &args.tls_ca {
        Some(ca) => Some(ClientTls {
            ca: ca.clone(),
            identity: args.tls_cert.clone().zip(args.tls_key.clone()),
            server_name: args.server_name.clone(),
        }),
        None if args.tls_cert.is_some() => {
            return Err(miette!(
                "--tls-cert on the client needs --tls-ca (the CA of the server's certificate)"
            ))
        }
        None => None,
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
    Ok(ClientConfig {
        tls,
        allow_plaintext: args.allow_plaintext,
        idle_timeout: Duration::from_secs(args.timeout.max(1)),
        connect_wait: Duration::from_secs(args.connect_wait),
        deadlines: Deadlines {
            handshake: seconds("--handshake-timeout", args.handshake_timeout)?,
            phase: seconds("--phase-timeout", args.phase_timeout)?,
        },
        spool_dir: args.spool.clone(),
        spool_limit,
    })
}

fn run_client(args: &Args) -> Result<()> {
    let clip_path = args
        .clip
        .as_ref()
        .ok_or_else(|| miette!("the client needs a clip: c3d-run --role client PLAN CLIP"))?;
    let plan = party::load_plan(&args.plan).map_err(diag)?;
    let (inp, _) = plan.graph.io().map_err(|e| miette!("{e}"))?;
    let in_shape = plan.graph.node(inp).shape.clone();
    let preprocess = plan.meta.preprocess.clone();
    let load = move || c3d_runtime::video::load_clip(clip_path, &preprocess, &in_shape);
    let clip: Option<Tensor<f32>> = if args.offline_first {
        None
    } else {
        Some(load().map_err(|e| miette!("{e}"))?)
    };
    let config = client_config(args)?;
    let bars = Arc::new(Bars::new(args.quiet));
    let b = bars.clone();
    let t0 = Instant::now();
    let client = Client::connect_with(&args.connect, plan.clone(), config)
        .map_err(diag)?
        .on_progress(move |p| b.update(0, "", p));
    let mut input = None;
    let pred = client
        .infer_deferred(|| {
            let c = match clip {
                Some(c) => c,
                None => load()?,
            };
            input = Some(c.clone());
            Ok(c)
        })
        .map_err(diag)?;
    bars.finish(0);
    let total = t0.elapsed().as_secs_f64();
    if let Some(p) = &args.output {
        write_npy(p, &pred.output)?;
    }
    if let (Some(p), Some(x)) = (&args.save_input, &input) {
        write_npy(p, x)?;
    }
    if let Some(p) = &args.report {
        write_report(p, &pred.report)?;
    }
    let text = summary::text(&pred, args.top, total);
    if args.json {
        let j = summary::json(&plan, &pred, args.top, total);
        eprint!("{text}");
        let s = serde_json::to_string_pretty(&j).into_diagnostic()?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{s}").into_diagnostic()?;
    } else {
        print!("{text}");
    }
    Ok(())
}

fn write_npy(path: &Path, t: &Tensor<f32>) -> Result<()> {
    use ndarray_npy::WriteNpyExt;
    let a = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(t.shape.dims()), t.data.clone())
        .into_diagnostic()?;
    let mut buf = Vec::new();
    a.write_npy(&mut buf).into_diagnostic()?;
    c3d_ir::format::write_atomic(path, &buf).map_err(|e| miette!("{e}"))
}
