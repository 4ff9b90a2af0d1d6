//! TLS 1.3 (rustls, ring provider) on the session channel: the semi-honest protocol assumes
//! private, authenticated channels, and a server on a network serves only the clients whose
//! certificates its operator's CA signed (mutual TLS).
//!
//! Both handshakes are completed here, under the caller's deadline, before the session's own
//! handshake: a client without an accepted certificate is refused before any HE or garbling
//! work.

use crate::transport::{Stream, Timed, TransportError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConnection, RootCertStore, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why TLS could not be set up from the operator's files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {what}")]
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// rustls refused the configuration (a key that does not match its certificate, say).
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_err(path: &Path, what: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

/// Reads every certificate of a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(path, format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(file_err(path, "no CERTIFICATE block in the file"));
    }
    Ok(certs)
}

/// Reads the private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| file_err(path, format!("no usable PEM private key ({e})")))
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for c in read_certs(path)? {
        store
            .add(c)
            .map_err(|e| file_err(path, format!("not a usable CA certificate ({e})")))?;
    }
    Ok(Arc::new(store))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's configuration: its certificate chain and key, and the CA whose client
/// certificates it accepts (None: any client, server authentication only).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let v =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
        None => builder.with_no_client_auth(),
    };
    let cfg = builder
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .map_err(|e| TlsError::Config(format!("{} / {}: {e}", cert.display(), key.display())))?;
    Ok(Arc::new(cfg))
}

/// The client's configuration: the CA it trusts for the server's certificate, and its own
/// certificate and key when the server asks for one.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca)?);
    let cfg = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(|e| {
                TlsError::Config(format!("{} / {}: {e}", cert.display(), key.display()))
            })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// A name for the server's certificate check: a DNS name or an IP address.
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_string())
        .map_err(|e| TlsError::Config(format!("`{name}` is not a valid server name ({e})")))
}

/// A session's connection: plain TCP, or TLS over TCP on either side.
pub enum NetStream {
    /// Plain TCP (loopback, or with `--allow-plaintext`).
    Plain(Timed<TcpStream>),
    /// The server's end of a TLS connection.
    Server(Box<StreamOwned<ServerConnection, Timed<TcpStream>>>),
    /// The client's end of a TLS connection.
    Client(Box<StreamOwned<ClientConnection, Timed<TcpStream>>>),
}

impl NetStream {
    /// Plain TCP.
    pub fn plain(tcp: TcpStream) -> Self {
        NetStream::Plain(Timed::new(tcp))
    }

    /// The TLS handshake as the server, finished before `deadline`: the client's certificate,
    /// when the configuration asks for one, is checked here.
    pub fn accept(
        cfg: Arc<rustls::ServerConfig>,
        tcp: TcpStream,
        deadline: Instant,
    ) -> Result<Self, TransportError> {
        let conn = ServerConnection::new(cfg).map_err(|e| TransportError::Tls(e.to_string()))?;
        let mut s = StreamOwned::new(conn, Timed::new(tcp));
        handshake(&mut s.conn, &mut s.sock, deadline)?;
        Ok(NetStream::Server(Box::new(s)))
    }

    /// The TLS handshake as the client, finished before `deadline`.
    pub fn connect(
        cfg: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
        tcp: TcpStream,
        deadline: Instant,
    ) -> Result<Self, TransportError> {
        let conn =
            ClientConnection::new(cfg, name).map_err(|e| TransportError::Tls(e.to_string()))?;
        let mut s = StreamOwned::new(conn, Timed::new(tcp));
        handshake(&mut s.conn, &mut s.sock, deadline)?;
        Ok(NetStream::Client(Box::new(s)))
    }

    /// Whether the channel is encrypted.
    pub fn is_tls(&self) -> bool {
        !matches!(self, NetStream::Plain(_))
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.tcp().peer_addr()
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            NetStream::Plain(t) => t.get_ref(),
            NetStream::Server(s) => s.sock.get_ref(),
            NetStream::Client(s) => s.sock.get_ref(),
        }
    }
}

fn handshake<D: rustls::SideData>(
    conn: &mut rustls::ConnectionCommon<D>,
    sock: &mut Timed<TcpStream>,
    deadline: Instant,
) -> Result<(), TransportError> {
    sock.set_limits(None, Some(deadline));
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(sock) {
            return Err(match e.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                    TransportError::Deadline("TLS handshake".into())
                }
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe => TransportError::Closed,
                _ => TransportError::Tls(e.to_string()),
            });
        }
    }
    // TLS 1.3 servers send session tickets after the handshake; a server that asked for a
    // client certificate has now checked it.
    while conn.wants_write() {
        conn.write_tls(sock)
            .map_err(|e| TransportError::Tls(e.to_string()))?;
    }
    Ok(())
}

impl Read for NetStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            NetStream::Plain(t) => t.read(buf),
            NetStream::Server(s) => s.read(buf),
            NetStream::Client(s) => s.read(buf),
        }
    }
}

impl Write for NetStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            NetStream::Plain(t) => t.write(buf),
            NetStream::Server(s) => s.write(buf),
            NetStream::Client(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            NetStream::Plain(t) => t.flush(),
            NetStream::Server(s) => s.flush(),
            NetStream::Client(s) => s.flush(),
        }
    }
}

impl Stream for NetStream {
    fn set_limits(&mut self, timeout: Option<Duration>, deadline: Option<Instant>) {
        match self {
            NetStream::Plain(t) => t.set_limits(timeout, deadline),
            NetStream::Server(s) => s.sock.set_limits(timeout, deadline),
            NetStream::Client(s) => s.sock.set_limits(timeout, deadline),
        }
    }
}

/// Whether `addr` (host:port) names only loopback addresses, where plain TCP is allowed by
/// default.
pub fn is_loopback(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    match addr.to_socket_addrs() {
        Ok(mut a) => {
            let v: Vec<_> = a.by_ref().collect();
            !v.is_empty() && v.iter().all(|s| s.ip().is_loopback())
        }
        Err(_) => false,
    }
}
