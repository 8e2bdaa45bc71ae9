//! Serving an axum router over HTTPS, as webhook servers do (the API server calls them):
//! HTTP/2 and HTTP/1.1 offered through ALPN, each TLS handshake in its own task (a slow or
//! stuck client cannot hold up others).
//!
//! The served certificate lives in a [`CertStore`] and can be swapped at runtime (rustls
//! asks the store at every handshake through [`ResolvesServerCert`]): either from PEM files,
//! reloaded when they change ([`watch_files`]: kubelet updates a mounted Secret in place, as
//! cert-manager renews it), or from the Secret that [`crate::certs`] keeps fresh.
//!
//! Shared by metallb-controller's webhooks and frr-k8s's FRRConfiguration webhook.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Certificate and key files for HTTPS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The certificate or key cannot be used.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The address cannot be bound.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// How often [`watch_files`] looks at the certificate files.
pub const FILE_RELOAD_PERIOD: Duration = Duration::from_secs(10);

/// The certificate a server presents, shared between the server (which reads it at every
/// handshake) and whatever keeps it fresh. Cheap to clone. Empty until a first certificate
/// is [`set`](CertStore::set): handshakes fail meanwhile.
#[derive(Clone)]
pub struct CertStore {
    current: Arc<RwLock<Option<Arc<CertifiedKey>>>>,
    /// Bumped at every change; lets waiters learn that a certificate arrived.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for CertStore {
    fn default() -> Self {
        CertStore {
            current: Arc::default(),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("has_cert", &self.has_cert())
            .finish_non_exhaustive()
    }
}

impl CertStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding the certificate and key from `files`.
    pub fn from_files(files: &TlsFiles) -> Result<Self, ServeError> {
        let store = Self::new();
        let cert = std::fs::read(&files.cert)
            .map_err(|e| ServeError::Tls(format!("{}: {e}", files.cert.display())))?;
        let key = std::fs::read(&files.key)
            .map_err(|e| ServeError::Tls(format!("{}: {e}", files.key.display())))?;
        store.set_pem(&cert, &key).map_err(|e| {
            ServeError::Tls(format!(
                "{} / {}: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
        Ok(store)
    }

    /// Serve `key` from now on (handshakes in progress keep the one they started with).
    pub fn set(&self, key: CertifiedKey) {
        *self.current.write().expect("cert store lock poisoned") = Some(Arc::new(key));
        self.changes.send_modify(|n| *n += 1);
    }

    /// Parse a PEM certificate chain and key and serve them; the store is unchanged when
    /// they cannot be used.
    pub fn set_pem(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), ServeError> {
        self.set(certified_key(cert_pem, key_pem)?);
        Ok(())
    }

    /// The certificate served now.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .expect("cert store lock poisoned")
            .clone()
    }

    pub fn has_cert(&self) -> bool {
        self.current().is_some()
    }

    /// Wait until the store holds a certificate.
    pub async fn wait_ready(&self) {
        let mut rx = self.changes.subscribe();
        while !self.has_cert() {
            if rx.changed().await.is_err() {
                // unreachable: the store holds the sender
                std::future::pending::<()>().await;
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain (leaf first) and its private key, from PEM; the key must match the
/// leaf.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServeError::Tls(format!("certificate: {e}")))?;
    if certs.is_empty() {
        return Err(ServeError::Tls("no certificate found".into()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| ServeError::Tls(format!("key: {e}")))?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| ServeError::Tls(e.to_string()))
}

/// A rustls server configuration that presents whatever `store` holds at each handshake
/// (ALPN: `h2`, then `http/1.1`).
pub fn tls_config_with(store: &CertStore) -> Result<rustls::ServerConfig, ServeError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(store.clone()));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Load a rustls server configuration from PEM files (ALPN: `h2`, then `http/1.1`). The
/// certificate is fixed; [`serve`] reloads changed files instead.
pub fn tls_config(files: &TlsFiles) -> Result<rustls::ServerConfig, ServeError> {
    tls_config_with(&CertStore::from_files(files)?)
}

/// Serve `router` on `addr` until `shutdown`: HTTPS with `tls`, plain HTTP without (tests
/// only). The files must hold a usable certificate and key now; they are read again every
/// [`FILE_RELOAD_PERIOD`] and a changed pair is served from then on (a pair that cannot be
/// used is logged and the previous one kept). Returns the bound address and the server
/// task.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    tls: Option<TlsFiles>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ServeError> {
    match tls {
        None => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let local = listener.local_addr()?;
            warn!(%local, "webhook server listening over plain HTTP (tests only)");
            let task = tokio::spawn(async move {
                let r = axum::serve(listener, router)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
                    .await;
                if let Err(e) = r {
                    warn!(error = %e, "webhook server failed");
                }
            });
            Ok((local, task))
        }
        Some(files) => {
            let store = CertStore::from_files(&files)?;
            tokio::spawn(watch_files(
                files,
                store.clone(),
                FILE_RELOAD_PERIOD,
                shutdown.clone(),
            ));
            serve_store(addr, router, store, shutdown).await
        }
    }
}

/// Serve `router` over HTTPS on `addr` until `shutdown`, presenting what `store` holds.
/// The address is bound at once (so that a taken port fails now), but connections are
/// accepted only once the store holds a certificate: until then they wait in the backlog.
/// (In a cluster the pod is not ready until then, so the Service sends none.)
pub async fn serve_store(
    addr: SocketAddr,
    router: Router,
    store: CertStore,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ServeError> {
    let cfg = tls_config_with(&store)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        tokio::select! {
            _ = store.wait_ready() => {}
            _ = shutdown.cancelled() => return,
        }
        info!(%local, "webhook server listening (HTTPS)");
        let tls = TlsListener::spawn(listener, tokio_rustls::TlsAcceptor::from(Arc::new(cfg)));
        let r = axum::serve(tls, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = r {
            warn!(error = %e, "webhook server failed");
        }
    });
    Ok((local, task))
}

/// What [`watch_files`] last loaded (or failed to load), to act on changes only.
#[derive(Debug, Default)]
pub struct FileState {
    last: Option<(Vec<u8>, Vec<u8>)>,
}

/// Read `files` and, when their content differs from what was last seen, serve them from
/// `store`. `Ok(true)`: a new certificate is served; `Ok(false)`: nothing changed; an error:
/// the files cannot be read or used (the store keeps the previous certificate; the same
/// content is not tried again).
pub fn reload_files(
    files: &TlsFiles,
    store: &CertStore,
    state: &mut FileState,
) -> Result<bool, ServeError> {
    let cert = std::fs::read(&files.cert)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", files.cert.display())))?;
    let key = std::fs::read(&files.key)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", files.key.display())))?;
    if state
        .last
        .as_ref()
        .is_some_and(|(c, k)| *c == cert && *k == key)
    {
        return Ok(false);
    }
    let parsed = certified_key(&cert, &key);
    state.last = Some((cert, key));
    store.set(parsed?);
    Ok(true)
}

/// Reload `files` into `store` every `period` until `shutdown` (see [`reload_files`]). The
/// first look only records the content (the caller loaded it already when the store holds
/// a certificate).
pub async fn watch_files(
    files: TlsFiles,
    store: CertStore,
    period: Duration,
    shutdown: CancellationToken,
) {
    let mut state = FileState::default();
    if store.has_cert() {
        if let (Ok(c), Ok(k)) = (std::fs::read(&files.cert), std::fs::read(&files.key)) {
            state.last = Some((c, k));
        }
    }
    loop {
        match reload_files(&files, &store, &mut state) {
            Ok(true) => {
                info!(cert = %files.cert.display(), "webhook certificate reloaded from its files")
            }
            Ok(false) => {}
            // Kubelet swaps a mounted Secret's files at once, but a reader may see the new
            // certificate with the old key: the next look sees both.
            Err(e) => {
                warn!(error = %e, "webhook certificate files not usable; still serving the previous certificate")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

type TlsStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// A listener that completes TLS handshakes in their own tasks (a slow client cannot hold
/// up others) and hands finished streams to axum.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Accept connections on `listener` and complete their handshakes with `acceptor`.
    pub fn spawn(listener: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "webhook accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => warn!(%peer, error = %e, "webhook TLS handshake failed"),
                        Err(_) => warn!(%peer, "webhook TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { rx, local, task }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // The accept loop owns the socket: stop it with the listener.
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task never ends while the listener lives; if it did, park.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{self, CertSettings, Decision, Reason};

    fn pair() -> (Vec<u8>, Vec<u8>) {
        let s = CertSettings::new("ns", "sec", "svc", "lease", "me");
        let d = certs::execute(
            &Decision::RegenerateAll(Reason::Missing(certs::CA_CERT)),
            None,
            &s,
            1_800_000_000,
        )
        .unwrap()
        .unwrap();
        (d[certs::TLS_CERT].clone(), d[certs::TLS_KEY].clone())
    }

    fn leaf(store: &CertStore) -> Vec<u8> {
        store.current().unwrap().cert[0].to_vec()
    }

    #[test]
    fn changed_files_are_served_and_bad_ones_ignored() {
        let dir = std::env::temp_dir().join(format!("tls-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        let (c1, k1) = pair();
        std::fs::write(&files.cert, &c1).unwrap();
        std::fs::write(&files.key, &k1).unwrap();
        let store = CertStore::from_files(&files).unwrap();
        let first = leaf(&store);
        let mut state = FileState::default();
        // the first look loads (the same content)
        assert!(reload_files(&files, &store, &mut state).unwrap());
        assert!(!reload_files(&files, &store, &mut state).unwrap());
        // renewed by the issuer
        let (c2, k2) = pair();
        std::fs::write(&files.cert, &c2).unwrap();
        std::fs::write(&files.key, &k2).unwrap();
        assert!(reload_files(&files, &store, &mut state).unwrap());
        let second = leaf(&store);
        assert_ne!(first, second);
        // half-written (new certificate, old key): refused, the previous one stays
        let (c3, _) = pair();
        std::fs::write(&files.cert, &c3).unwrap();
        assert!(reload_files(&files, &store, &mut state).is_err());
        assert_eq!(leaf(&store), second);
        // ...and not retried until the content changes
        assert!(!reload_files(&files, &store, &mut state).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn store_waits_for_a_first_certificate() {
        let store = CertStore::new();
        assert!(!store.has_cert());
        let waiter = tokio::spawn({
            let s = store.clone();
            async move { s.wait_ready().await }
        });
        let (c, k) = pair();
        store.set_pem(&c, &k).unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(store.set_pem(b"garbage", &k).is_err());
        assert!(store.has_cert());
    }
}
