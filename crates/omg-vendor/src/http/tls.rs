//! TLS: the certificate and key ([`TlsConfig`]) and a listener that runs each handshake in
//! a task of its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::listener::{accept_error, set_nodelay};

/// How long a client may take to complete its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The service's TLS settings: a certificate chain and its private key, TLS 1.2 and 1.3, ALPN
/// `http/1.1`, no client certificates. Cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

/// Why a certificate chain or private key cannot be used for TLS.
#[derive(Debug)]
pub enum TlsError {
    /// The certificate PEM holds no `CERTIFICATE` block, or a malformed one (the reason says
    /// which).
    Certificate(String),
    /// The key PEM holds no private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`),
    /// a malformed one, or one of an unsupported type (the reason says which).
    PrivateKey(String),
    /// The private key is not the key of the (first) certificate.
    KeyMismatch,
    /// The certificate is not a well-formed X.509 certificate, or rustls rejects the pair.
    Rejected(rustls::Error),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Certificate(e) => write!(f, "no usable PEM certificate: {e}"),
            TlsError::PrivateKey(e) => write!(f, "no usable PEM private key: {e}"),
            TlsError::KeyMismatch => {
                f.write_str("the private key does not belong to the certificate")
            }
            TlsError::Rejected(e) => write!(f, "the certificate and key are not usable: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl TlsConfig {
    /// Reads a certificate chain (PEM `CERTIFICATE` blocks, the server's own certificate
    /// first) and its private key (PEM PKCS#8, PKCS#1 or SEC1), and checks that they match.
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        if chain.is_empty() {
            return Err(TlsError::Certificate(
                "no -----BEGIN CERTIFICATE----- block found".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                TlsError::PrivateKey("no -----BEGIN ... PRIVATE KEY----- block found".into())
            }
            e => TlsError::PrivateKey(e.to_string()),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Rejected)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    TlsError::KeyMismatch
                }
                rustls::Error::General(reason) => TlsError::PrivateKey(reason),
                e => TlsError::Rejected(e),
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            server: Arc::new(config),
        })
    }
}

/// A TLS listener: accepts TCP connections and runs each handshake in a task of its own
/// (bounded by [`TLS_HANDSHAKE_TIMEOUT`]); only completed handshakes are handed on.
pub(super) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    /// Handshakes in progress; aborted when the listener is dropped.
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
    set_nodelay(&tcp);
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some((stream, peer)),
        // A failed or timed-out handshake concerns only that client: drop its connection.
        Ok(Err(_)) | Err(_) => None,
    }
}

impl TlsListener {
    /// Listens on `tcp` with the certificate and key of `tls`.
    pub(super) fn new(tcp: TcpListener, tls: TlsConfig) -> Self {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(tls.server),
            handshakes: JoinSet::new(),
        }
    }

    /// The next connection whose handshake completed, and its client's address.
    pub(super) async fn accept(&mut self) -> (TlsStream<TcpStream>, SocketAddr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        self.handshakes.spawn(handshake(self.acceptor.clone(), tcp, peer));
                    }
                    Err(e) => accept_error(e).await,
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }
}
