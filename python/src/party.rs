//! `serve` and `infer`: the two parties of a secure inference (`c3d-run --role server` and
//! `--role client`), over `c3d_runtime::party`, with the GIL released while they run.

use crate::convert::{array, input_shape, to_py, Clip};
use crate::{error, guarded};
use c3d_ir::format::hex;
use c3d_runtime::party::{
    self, Client, ClientConfig, ClientTls, PartyError, Server, ServerConfig, ServerTls,
    SessionOutcome,
};
use c3d_runtime::session::Deadlines;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Serve secure inferences of a plan (the model owner's side); blocks until done.
///
/// Loads `plan_path` and its weights (`weights`, default `plan_path + ".weights"`), listens on
/// `address` (host:port) and runs up to `max_clients` sessions at once, each isolated from
/// the others' failures. Returns after `sessions` connections have been served (with
/// `sessions=None` it serves until the process ends: run it in a thread or a process).
///
/// Returns one entry per session, in the order they were accepted: the server's report as a
/// dict (time, bytes and memory per phase and per layer, plus `session` and `peer`), or a
/// string saying why that session failed. Plain TCP is served on loopback addresses only,
/// unless `allow_plaintext=True`; `tls_cert` and `tls_key` (PEM) serve TLS 1.3, and
/// `client_ca` also requires client certificates signed by it. `timeout` is the longest wait
/// in seconds for any one message. The GIL is released while serving. Raises `C3dError` when
/// the plan, weights, TLS files or address are unusable.
#[pyfunction]
#[pyo3(signature = (
    plan_path, address = String::from("127.0.0.1:7878"), *, weights = None, sessions = None,
    max_clients = 4, tls_cert = None, tls_key = None, client_ca = None,
    allow_plaintext = false, timeout = 300.0
), text_signature = "(plan_path, address='127.0.0.1:7878', *, weights=None, sessions=None, max_clients=4, tls_cert=None, tls_key=None, client_ca=None, allow_plaintext=False, timeout=300.0)")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn serve<'py>(
    py: Python<'py>,
    plan_path: PathBuf,
    address: String,
    weights: Option<PathBuf>,
    sessions: Option<usize>,
    max_clients: usize,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    allow_plaintext: bool,
    timeout: f64,
) -> PyResult<Bound<'py, PyList>> {
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls {
            cert,
            key,
            client_ca,
        }),
        (None, None) if client_ca.is_some() => {
            return Err(error("client_ca needs TLS: give tls_cert and tls_key too"))
        }
        (None, None) => None,
        _ => return Err(error("tls_cert and tls_key go together: give both")),
    };
    let config = ServerConfig {
        max_clients,
        sessions,
        idle_timeout: seconds("timeout", timeout)?,
        tls,
        allow_plaintext,
        ..ServerConfig::default()
    };
    let outcomes = py.detach(|| {
        guarded(|| {
            // What can be refused before the model loads is refused first, as `c3d-run` does.
            config.check(&address).map_err(party_error)?;
            let server = Server::load(&plan_path, weights.as_deref())
                .map_err(party_error)?
                .with_config(config)
                .map_err(party_error)?;
            let listener = TcpListener::bind(&address)
                .map_err(|e| error(format!("cannot listen on {address}: {e}")))?;
            let done: Arc<Mutex<Vec<SessionOutcome>>> = Arc::default();
            let sink = done.clone();
            server
                .on_session(move |o| sink.lock().unwrap_or_else(|p| p.into_inner()).push(o))
                .serve(listener)
                .map_err(party_error)?;
            let mut all = std::mem::take(&mut *done.lock().unwrap_or_else(|p| p.into_inner()));
            all.sort_by_key(|o| o.id);
            Ok(all)
        })
    })?;
    let list = PyList::empty(py);
    for o in outcomes {
        match o.result {
            Ok(report) => {
                let d = to_py(py, &report)?;
                d.set_item("session", o.id)?;
                d.set_item("peer", &o.peer)?;
                list.append(d)?;
            }
            Err(e) => list.append(format!("session {} ({}): {e}", o.id, o.peer))?,
        }
    }
    Ok(list)
}

/// Run one secure inference against a server (the video owner's side); blocks until done.
///
/// `clip` is a float32 numpy array of the model's input shape (already preprocessed) or a
/// path to a clip (a video, decoded and preprocessed as the plan says, or a float32 .npy).
/// `plan_path` is the public plan only: a weights file there is refused. The server learns
/// nothing about the clip; the client learns the output and nothing about the weights.
///
/// Returns a dict: `top` (the `top` best classes, each `{index, label, probability}`;
/// `probability` is the logit when the model has no softmax), `softmax`, `output` (the model
/// output as a float32 numpy array, equal to `simulate`'s), `report` (time, bytes each way
/// and memory per phase and per layer) and `plan_hash`. Plain TCP is used for loopback
/// addresses only, unless `allow_plaintext=True`; `tls_ca` (PEM) connects over TLS 1.3 to a
/// server whose certificate names `server_name` (default: the host of `address`), and
/// `tls_cert`/`tls_key` give a client certificate. The connection is retried for
/// `connect_wait` seconds while the server starts; `timeout` is the longest wait for any one
/// message. The GIL is released while the session runs. Raises `C3dError` with the runtime's
/// message.
#[pyfunction]
#[pyo3(signature = (
    plan_path, clip, address = String::from("127.0.0.1:7878"), *, top = 5, tls_ca = None,
    tls_cert = None, tls_key = None, server_name = None, allow_plaintext = false,
    connect_wait = 10.0, timeout = 300.0
), text_signature = "(plan_path, clip, address='127.0.0.1:7878', *, top=5, tls_ca=None, tls_cert=None, tls_key=None, server_name=None, allow_plaintext=False, connect_wait=10.0, timeout=300.0)")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn infer<'py>(
    py: Python<'py>,
    plan_path: PathBuf,
    clip: Bound<'py, PyAny>,
    address: String,
    top: usize,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    server_name: Option<String>,
    allow_plaintext: bool,
    connect_wait: f64,
    timeout: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let plan = party::load_plan(&plan_path).map_err(party_error)?;
    let hash = plan.hash().map_err(error)?;
    let shape = input_shape(&plan)?;
    let clip = Clip::from_py(&clip, &shape)?;
    let tls = match tls_ca {
        Some(ca) => Some(ClientTls {
            ca,
            identity: match (tls_cert, tls_key) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => return Err(error("tls_cert and tls_key go together: give both")),
            },
            server_name,
        }),
        None if tls_cert.is_some() || tls_key.is_some() => {
            return Err(error(
                "tls_cert on the client needs tls_ca (the CA of the server's certificate)",
            ))
        }
        None => None,
    };
    if !(connect_wait.is_finite() && (0.0..1e9).contains(&connect_wait)) {
        return Err(error(format!(
            "connect_wait={connect_wait}: expected a number of seconds >= 0"
        )));
    }
    let config = ClientConfig {
        tls,
        allow_plaintext,
        idle_timeout: seconds("timeout", timeout)?,
        connect_wait: Duration::from_secs_f64(connect_wait),
        deadlines: Deadlines::default(),
        ..ClientConfig::default()
    };
    let pred = py.detach(|| {
        guarded(|| {
            // The clip is decoded before connecting: a bad one fails before any work.
            let x = clip.load(&plan, &shape)?;
            Client::connect_with(&address, plan, config)
                .map_err(party_error)?
                .infer(&x)
                .map_err(party_error)
        })
    })?;
    let d = PyDict::new(py);
    let best: Vec<_> = pred.top.iter().take(top).collect();
    d.set_item("top", to_py(py, &best)?)?;
    d.set_item("softmax", pred.softmax)?;
    d.set_item("output", array(py, &pred.output)?)?;
    d.set_item("report", to_py(py, &pred.report)?)?;
    d.set_item("plan_hash", hex(&hash))?;
    Ok(d)
}

/// A runtime error as `C3dError`: the runtime's message, with this API's keywords as the way
/// out where the CLI names its flags.
fn party_error(e: PartyError) -> PyErr {
    match e {
        PartyError::PlaintextServe(_) => error(format!(
            "{e} (give tls_cert and tls_key, or allow_plaintext=True on a network you trust)"
        )),
        PartyError::PlaintextConnect(_) => error(format!(
            "{e} (give tls_ca, or allow_plaintext=True on a network you trust)"
        )),
        e => error(e),
    }
}

/// A positive number of seconds, checked.
fn seconds(name: &str, s: f64) -> PyResult<Duration> {
    if s.is_finite() && s > 0.0 && s < 1e9 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(error(format!(
            "{name}={s}: expected a positive number of seconds"
        )))
    }
}
