//! The video owner's side: connect to a server, run one session on a clip, learn the output.

use super::progress::{Progress, ProgressFn, StepWeights};
use super::{ranked, PartyError, Prediction};
use crate::he::fhers::FheRs;
use crate::session::{client_offline, client_online, ClientOptions, Deadlines, Event};
use crate::tls::{self, NetStream};
use crate::transport::{Channel, Meter, Metered};
use c3d_ir::{Plan, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// TLS for the client: the CA of the server's certificate, and optionally a client identity.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// PEM file of the CA that signed the server's certificate.
    pub ca: PathBuf,
    /// The client's certificate chain and key (PEM), for servers that require one.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// The name the server's certificate must carry (default: the host of the address).
    pub server_name: Option<String>,
}

/// How a client connects and runs.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// TLS 1.3 (None: plain TCP, allowed only to loopback unless `allow_plaintext`).
    pub tls: Option<ClientTls>,
    /// Allow plain TCP to a non-loopback address.
    pub allow_plaintext: bool,
    /// Longest wait for any one read or write.
    pub idle_timeout: Duration,
    /// How long to keep retrying the connection while the server starts.
    pub connect_wait: Duration,
    /// Deadlines of the handshake and of each phase (None: the idle time-out / sized from the
    /// plan's work).
    pub deadlines: Deadlines,
    /// Directory for the spooled offline material (None: the system temp dir).
    pub spool_dir: Option<PathBuf>,
    /// Most bytes of offline material to spool (None: 90 % of the free space there).
    pub spool_limit: Option<u64>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            tls: None,
            allow_plaintext: false,
            idle_timeout: Duration::from_secs(300),
            connect_wait: Duration::from_secs(10),
            deadlines: Deadlines::default(),
            spool_dir: None,
            spool_limit: None,
        }
    }
}

/// A connection to a server, ready for one secure inference.
pub struct Client {
    plan: Plan,
    hash: [u8; 32],
    backend: FheRs,
    channel: Channel<Metered<NetStream>>,
    meter: Meter,
    config: ClientConfig,
    progress: Option<ProgressFn>,
}

impl Client {
    /// Connects to the server at `addr` (host:port) with the default configuration: plain TCP,
    /// which is refused unless `addr` is a loopback address.
    pub fn connect(addr: &str, plan: Plan) -> Result<Client, PartyError> {
        Client::connect_with(addr, plan, ClientConfig::default())
    }

    /// Connects with `config`; everything about TLS is settled before the first packet.
    pub fn connect_with(
        addr: &str,
        plan: Plan,
        config: ClientConfig,
    ) -> Result<Client, PartyError> {
        if let Some(d) = &config.spool_dir {
            if !d.is_dir() {
                return Err(PartyError::Config(format!(
                    "spool directory {}: not a directory",
                    d.display()
                )));
            }
        }
        let hash = plan.hash()?;
        let backend = FheRs::new(plan.fixed.p).map_err(crate::session::SessionError::from)?;
        let tls = match &config.tls {
            Some(t) => {
                let identity = t.identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
                let cfg = tls::client_config(&t.ca, identity)?;
                let host = t.server_name.clone().unwrap_or_else(|| host_of(addr));
                Some((cfg, tls::server_name(&host)?))
            }
            None if !config.allow_plaintext && !tls::is_loopback(addr) => {
                return Err(PartyError::PlaintextConnect(addr.to_string()))
            }
            None => None,
        };
        let t0 = Instant::now();
        let tcp = loop {
            match TcpStream::connect(addr) {
                Ok(c) => break c,
                Err(e) if t0.elapsed() >= config.connect_wait => {
                    return Err(PartyError::Connect {
                        addr: addr.to_string(),
                        source: e,
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let io = |e: std::io::Error| PartyError::Connect {
            addr: addr.to_string(),
            source: e,
        };
        tcp.set_nodelay(true).map_err(io)?;
        let handshake = config.deadlines.handshake.unwrap_or(config.idle_timeout);
        let stream = match tls {
            Some((cfg, name)) => NetStream::connect(cfg, name, tcp, Instant::now() + handshake)
                .map_err(|e| PartyError::Config(format!("TLS with the server at {addr}: {e}")))?,
            None => NetStream::plain(tcp),
        };
        let meter = Meter::default();
        let mut channel = Channel::over(Metered::new(stream, meter.clone()));
        channel
            .set_timeout(Some(config.idle_timeout))
            .map_err(crate::session::SessionError::from)?;
        Ok(Client {
            plan,
            hash,
            backend,
            channel,
            meter,
            config,
            progress: None,
        })
    }

    /// Calls `f` at every step of both phases.
    pub fn on_progress(mut self, f: impl FnMut(&Progress) + Send + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// The plan this client runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Runs the session on `clip` (floats in the model's input shape, preprocessed as the
    /// plan says: see `video::load_clip`).
    pub fn infer(self, clip: &Tensor<f32>) -> Result<Prediction, PartyError> {
        self.infer_deferred(|| Ok(clip.clone()))
    }

    /// Runs the offline phase, then asks `clip` for the input: work that needs no clip is done
    /// before the clip is read or decoded.
    pub fn infer_deferred(
        mut self,
        clip: impl FnOnce() -> Result<Tensor<f32>, PartyError>,
    ) -> Result<Prediction, PartyError> {
        let work = StepWeights::new(&self.plan, &self.backend);
        let mut user = self.progress.take();
        let meter = self.meter.clone();
        let mut progress = |e: &Event| {
            if let Some(f) = user.as_mut() {
                f(&work.report(e, &meter))
            }
        };
        let mut rng = ChaCha20Rng::from_os_rng();
        let opts = ClientOptions {
            spool_dir: self.config.spool_dir.clone(),
            spool_limit: self.config.spool_limit,
            deadlines: self.config.deadlines,
        };
        let ch = &mut self.channel;
        let prep = client_offline(
            &self.plan,
            &self.hash,
            &self.backend,
            ch,
            &opts,
            &mut rng,
            &mut progress,
        )
        .map_err(|e| PartyError::Offline(Box::new(e)))?;
        let input = clip()?;
        let (out, report) = client_online(prep, ch, &input, &mut progress)
            .map_err(|e| PartyError::Online(Box::new(e)))?;
        let (top, softmax) = ranked(&self.plan, &out.output.data);
        Ok(Prediction {
            output: out.output,
            top,
            softmax,
            report,
        })
    }
}

/// The host part of host:port (brackets of an IPv6 literal removed).
fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}
