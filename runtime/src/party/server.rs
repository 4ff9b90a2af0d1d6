//! The model owner's side: hold the weights, serve sessions on a listener.

use super::progress::{Progress, StepWeights};
use super::PartyError;
use crate::he::fhers::FheRs;
use crate::service::{self, Outcome, OutcomeSink, ProgressSink, ServeOptions};
use crate::session::{report::resident_memory, Deadlines, ServerModel, SessionError};
use crate::tls;
use c3d_ir::{Plan, Weights};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How one session ended: its number, the peer, and the server's report or the error.
pub type SessionOutcome = Outcome;

/// A progress callback for every session, with the session's number.
pub type SessionProgressFn = Arc<dyn Fn(usize, &Progress) + Send + Sync>;

/// TLS for the server.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Serve only clients with a certificate signed by this CA (PEM): mutual TLS.
    pub client_ca: Option<PathBuf>,
}

/// How a server takes and runs sessions.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Sessions served at once; more wait for a free slot.
    pub max_clients: usize,
    /// Stop after this many sessions (None: serve until stopped).
    pub sessions: Option<usize>,
    /// Longest wait for any one read or write.
    pub idle_timeout: Duration,
    /// Deadlines of the handshake and of each phase.
    pub deadlines: Deadlines,
    /// TLS 1.3 on every connection (None: plain TCP).
    pub tls: Option<ServerTls>,
    /// Allow plain TCP on a non-loopback listener.
    pub allow_plaintext: bool,
    /// Memory ceiling of the process in bytes: what the model takes is subtracted and the
    /// rest shared among `max_clients` sessions; garbled layers whose material would not fit
    /// are streamed online (None: 80 % of the memory available now).
    pub memory_limit: Option<u64>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_clients: 4,
            sessions: None,
            idle_timeout: Duration::from_secs(300),
            deadlines: Deadlines::server(),
            tls: None,
            allow_plaintext: false,
            memory_limit: None,
        }
    }
}

impl ServerConfig {
    /// Reads the TLS files and checks that plain TCP is not offered on a non-loopback
    /// `listen` address: what can be refused before a model is loaded.
    pub fn check(&self, listen: &str) -> Result<Option<Arc<rustls::ServerConfig>>, PartyError> {
        let tls = self.tls_config()?;
        self.check_listen(tls.is_some(), listen)?;
        Ok(tls)
    }

    /// The TLS configuration from the PEM files (None: plain TCP), and the session count.
    fn tls_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, PartyError> {
        if self.max_clients == 0 {
            return Err(PartyError::Config("max_clients must be at least 1".into()));
        }
        Ok(match &self.tls {
            Some(t) => Some(tls::server_config(&t.cert, &t.key, t.client_ca.as_deref())?),
            None => None,
        })
    }

    /// Plain TCP only on loopback, unless allowed.
    fn check_listen(&self, tls: bool, listen: &str) -> Result<(), PartyError> {
        if !tls && !self.allow_plaintext && !tls::is_loopback(listen) {
            return Err(PartyError::PlaintextServe(listen.to_string()));
        }
        Ok(())
    }
}

/// A loaded model, ready to serve.
pub struct Server {
    model: ServerModel<FheRs>,
    config: ServerConfig,
    /// The configuration's TLS, read once.
    tls: Option<Arc<rustls::ServerConfig>>,
    progress: Option<SessionProgressFn>,
    done: Option<OutcomeSink>,
    resident: u64,
    ceiling: u64,
    per_session: u64,
}

impl Server {
    /// Checks `weights` against `plan` (its salted commitment and bounds) and prepares the
    /// model, with the default configuration.
    pub fn new(plan: Plan, weights: &Weights) -> Result<Server, PartyError> {
        let hash = plan.hash()?;
        let be = FheRs::new(plan.fixed.p).map_err(SessionError::from)?;
        let model = ServerModel::new(plan, hash, weights, be)?;
        let mut s = Server {
            model,
            config: ServerConfig::default(),
            tls: None,
            progress: None,
            done: None,
            resident: 0,
            ceiling: 0,
            per_session: 0,
        };
        s.share_memory()?;
        Ok(s)
    }

    /// Reads a plan and its weights (default: PLAN.weights) and prepares the model.
    pub fn load(plan: &Path, weights: Option<&Path>) -> Result<Server, PartyError> {
        let (p, _) = Plan::load(plan)?;
        let wpath =
            weights.map_or_else(|| c3d_ir::format::weights_path_for(plan), Path::to_path_buf);
        let w = p.load_weights(&wpath)?;
        Server::new(p, &w)
    }

    /// Uses `config` (memory shares are recomputed from it).
    pub fn with_config(mut self, config: ServerConfig) -> Result<Server, PartyError> {
        self.tls = config.tls_config()?;
        self.model.set_deadlines(config.deadlines);
        self.config = config;
        self.share_memory()?;
        Ok(self)
    }

    /// Runs the online linear layers on the GPU (a build with the `cuda` feature and a usable
    /// device); returns the server and the device's name, or why there is none (the server
    /// then runs them on the CPU).
    #[cfg(feature = "cuda")]
    pub fn with_gpu(mut self) -> (Server, Result<String, PartyError>) {
        match crate::linear::gpu::Gpu::open() {
            Ok(g) => {
                let name = g.name().to_string();
                self.model.set_gpu(g);
                (self, Ok(name))
            }
            Err(e) => (
                self,
                Err(PartyError::Config(format!("no usable GPU ({e})"))),
            ),
        }
    }

    /// Calls `f` with the session's number at every step of every session.
    pub fn on_progress(mut self, f: impl Fn(usize, &Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Calls `f` once per connection with how it ended, from the session's thread.
    pub fn on_session(mut self, f: impl Fn(SessionOutcome) + Send + Sync + 'static) -> Self {
        self.done = Some(Arc::new(f));
        self
    }

    /// The model's name, from the plan.
    pub fn name(&self) -> &str {
        &self.model.plan.meta.name
    }

    /// The plan's hash.
    pub fn plan_hash(&self) -> [u8; 32] {
        self.model.plan_hash
    }

    /// Bytes: resident after loading the model, the ceiling, and what each session may keep.
    pub fn memory(&self) -> (u64, u64, u64) {
        (self.resident, self.ceiling, self.per_session)
    }

    fn share_memory(&mut self) -> Result<(), PartyError> {
        let used = resident_memory();
        let limit = match self.config.memory_limit {
            Some(l) => l,
            // Never unlimited: a share of what the machine has free now.
            None => {
                used + available_memory().ok_or_else(|| {
                    PartyError::Config(
                        "cannot read the available memory; give a memory limit".into(),
                    )
                })? / 5
                    * 4
            }
        };
        let per = limit.saturating_sub(used) / self.config.max_clients.max(1) as u64;
        if per == 0 {
            return Err(PartyError::Config(format!(
                "memory limit {:.0} MB: the model alone takes {:.0} MB",
                limit as f64 / 1e6,
                used as f64 / 1e6
            )));
        }
        self.model.set_keep_limit(per);
        (self.resident, self.ceiling, self.per_session) = (used, limit, per);
        Ok(())
    }

    /// Serves sessions on `listener` until `sessions` connections were taken (or for ever);
    /// returns when every session started has ended.
    pub fn serve(self, listener: TcpListener) -> Result<(), PartyError> {
        let addr = listener
            .local_addr()
            .map_err(|e| PartyError::Config(format!("the listener has no address: {e}")))?;
        self.config
            .check_listen(self.tls.is_some(), &addr.to_string())?;
        let opts = ServeOptions {
            max_clients: self.config.max_clients,
            sessions: self.config.sessions,
            idle_timeout: self.config.idle_timeout,
            tls: self.tls.clone(),
        };
        let user = self.progress.clone();
        let weights = Arc::new(StepWeights::of(&self.model.schedule));
        let progress: ProgressSink = Arc::new(move |id, e, meter| {
            if let Some(f) = &user {
                f(id, &weights.report(e, meter))
            }
        });
        let done: OutcomeSink = self.done.clone().unwrap_or_else(|| Arc::new(|_| {}));
        service::serve(Arc::new(self.model), listener, &opts, progress, done);
        Ok(())
    }
}

/// The memory available to this process now (Linux: MemAvailable), in bytes.
fn available_memory() -> Option<u64> {
    let m = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
