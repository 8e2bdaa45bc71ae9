//! An in-memory Kubernetes API server over plain HTTP, for tests, the netns lab and the
//! local demo (testing ladder level 3 in `DESIGN.md`).
//!
//! The product talks to it through an ordinary kubeconfig and never knows it is not a real
//! cluster: discovery, list/watch with resourceVersions, bookmarks and 410 Expired, create
//! with `generateName`, update with optimistic concurrency, merge / JSON / strategic merge
//! patch, server-side apply with managed fields and conflicts, the status subresource,
//! `metadata.generation`, finalizers and deletionTimestamp, owner-reference garbage
//! collection, `metav1.Status` errors, and CustomResourceDefinitions that register their
//! kinds when created. Every CRD of `metallb-api` is registered at start-up.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use k8s_openapi::api::core::v1::Service;
//! let api = metallb_testkit::start().await?;
//! let services: kube::Api<Service> = kube::Api::namespaced(api.client(), "default");
//! let kubernetes = services.get("kubernetes").await?;
//! # let _ = kubernetes; Ok(()) }
//! ```
//!
//! # Deliberate simplifications
//!
//! - Plain HTTP, no authentication or authorization (kube's client accepts `http://`
//!   servers in a kubeconfig).
//! - Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<g>`, `/apis/<g>/<v>`, and
//!   aggregated discovery (`apidiscovery.k8s.io/v2`) on `/api` and `/apis`. No `/openapi/*`
//!   (kubectl needs `--validate=false`), no Table output (kubectl prints plain lists).
//! - Only `fieldValidation=Strict` changes decoding; `Warn` and `Ignore` both prune.
//! - CRD schemas: structural validation, pruning and defaulting are implemented (see
//!   [`schema`]); CEL rules (`x-kubernetes-validations`) are **not** evaluated. Multi-version
//!   CRDs use the `None` conversion strategy: only `apiVersion` changes between versions.
//! - Strategic merge patch is merge patch plus merging lists by a known key (see [`patch`]).
//! - Server-side apply tracks ownership per leaf field; list-type `map` / `set` come from
//!   the CRD schema for custom kinds and from a fixed table for built-in kinds.
//! - core/v1 and events.k8s.io/v1 Events are stored separately (a real server shares one
//!   store and converts).
//! - Garbage collection of dependents happens synchronously when the last owner is
//!   deleted; `propagationPolicy` is ignored (always background). Deleting a namespace
//!   deletes its content at once (objects with finalizers stay until released).
//! - List pagination (`limit`/`continue`) returns the first page's resourceVersion on every
//!   page, but later pages show the current state rather than a snapshot.
//! - The standard namespaces and the `default/kubernetes` Service exist at start-up, as in
//!   a real cluster; Services get cluster IPs from 10.96.0.0/12 (IPv6: fd00:10:96::/108)
//!   and node ports from 30000-32767.

pub mod admission;
pub mod envtest;
pub mod error;
pub mod handlers;
pub mod patch;
pub mod procstat;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod store;
pub mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tokio::sync::oneshot;

pub use error::ApiError;
pub use store::Store;

/// How to start the server.
#[derive(Debug)]
pub struct Options {
    /// Address to bind (default `127.0.0.1:0`, a free port). Ignored when `listener` is set.
    pub listen: SocketAddr,
    /// An already bound listener (for example one bound inside a network namespace).
    pub listener: Option<std::net::TcpListener>,
    /// CRDs registered at start-up (default: `metallb_api::crds::all()`).
    pub crds: Vec<CustomResourceDefinition>,
    /// Number of events kept for watches; older resourceVersions get 410 Expired.
    pub history: usize,
    /// Bookmark period for watches that allow bookmarks.
    pub bookmark_interval: Duration,
    /// Where to write the kubeconfig (default: a file in a temporary directory owned by
    /// the [`TestApi`]).
    pub kubeconfig_out: Option<PathBuf>,
    /// Namespace of the kubeconfig context.
    pub namespace: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            listener: None,
            crds: metallb_api::crds::all(),
            history: 10_000,
            bookmark_interval: Duration::from_secs(5),
            kubeconfig_out: None,
            namespace: "default".into(),
        }
    }
}

/// A running server. Dropping it stops the server and ends every open watch.
pub struct TestApi {
    store: Arc<Store>,
    addr: SocketAddr,
    url: String,
    kubeconfig_path: PathBuf,
    kubeconfig_yaml: String,
    client: kube::Client,
    /// The handlers, for clients served in process.
    router: axum::Router,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

/// Start a server on a free loopback port with the project's CRDs.
pub async fn start() -> anyhow::Result<TestApi> {
    start_with(Options::default()).await
}

/// The kubeconfig text for a server URL.
pub fn kubeconfig_yaml(url: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: testkit
  cluster:
    server: {url}
contexts:
- name: testkit
  context:
    cluster: testkit
    user: testkit
    namespace: {namespace}
current-context: testkit
users:
- name: testkit
  user:
    token: testkit
preferences: {{}}
"
    )
}

/// Start a server with explicit options.
pub async fn start_with(opts: Options) -> anyhow::Result<TestApi> {
    let listener = match opts.listener {
        Some(l) => {
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)?
        }
        None => tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("binding {}", opts.listen))?,
    };
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let store = Store::new(opts.history);
    let crd_rt = store
        .resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .context("CRD kind is built in")?;
    let ctx = store::WriteCtx {
        field_manager: "metallb-testkit".into(),
        ..Default::default()
    };
    for crd in &opts.crds {
        let mut v = serde_json::to_value(crd)?;
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        store
            .create(&crd_rt, None, v, &ctx)
            .map_err(|e| anyhow::anyhow!("registering CRD {:?}: {e}", crd.metadata.name))?;
    }
    let state = Arc::new(handlers::AppState {
        store: store.clone(),
        server_address: addr.to_string(),
        bookmark_interval: opts.bookmark_interval,
    });
    let app = handlers::router(state);
    let router = app.clone();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "test API server stopped");
        }
    });
    let (dir, kubeconfig_path) = match opts.kubeconfig_out {
        Some(p) => (None, p),
        None => {
            let dir = tempfile::tempdir()?;
            let p = dir.path().join("kubeconfig");
            (Some(dir), p)
        }
    };
    let yaml = kubeconfig_yaml(&url, &opts.namespace);
    if let Some(parent) = kubeconfig_path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    std::fs::write(&kubeconfig_path, &yaml)
        .with_context(|| format!("writing {}", kubeconfig_path.display()))?;
    let client = client_for(&yaml).await?;
    tracing::info!(%url, kubeconfig = %kubeconfig_path.display(), "test API server listening");
    Ok(TestApi {
        store,
        addr,
        url,
        kubeconfig_path,
        kubeconfig_yaml: yaml,
        client,
        router,
        shutdown: Some(tx),
        task: Some(task),
        _dir: dir,
    })
}

/// A `kube::Client` for a kubeconfig text.
pub async fn client_for(kubeconfig_yaml: &str) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig_yaml)?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    Ok(kube::Client::try_from(config)?)
}

impl std::fmt::Debug for TestApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApi")
            .field("url", &self.url)
            .field("kubeconfig_path", &self.kubeconfig_path)
            .finish_non_exhaustive()
    }
}

/// Picks requests (method, path) to fail with a status code instead of serving them.
pub type Fault = Arc<dyn Fn(&http::Method, &str) -> Option<http::StatusCode> + Send + Sync>;

impl TestApi {
    /// A client whose requests are served in process, without a socket: its I/O never
    /// waits on the operating system, so it can run on a paused tokio clock (retry and
    /// backoff timings tested exactly). Requests `fault` picks are answered with an API
    /// Status of the code it returns, as a failing API server would.
    pub fn in_process_client(&self, fault: Fault) -> kube::Client {
        use tower::ServiceExt as _;
        let router = self.router.clone();
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let router = router.clone();
            let fault = fault.clone();
            async move {
                if let Some(code) = fault(req.method(), req.uri().path()) {
                    let status = serde_json::json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "message": "failed by the test",
                        "reason": "InternalError", "code": code.as_u16(),
                    });
                    let resp = http::Response::builder()
                        .status(code)
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(axum::body::Body::from(status.to_string()))
                        .expect("a valid response");
                    return Ok(resp);
                }
                router.oneshot(req.map(axum::body::Body::new)).await
            }
        });
        kube::Client::new(service, "default")
    }

    /// A client for this server (cheap to clone).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Path of the kubeconfig file.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The kubeconfig text.
    pub fn kubeconfig_yaml(&self) -> &str {
        &self.kubeconfig_yaml
    }

    /// The store behind the server (direct access for test set-up and assertions).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store.current_rv()
    }

    /// Forget the watch history: any watch from an earlier resourceVersion gets 410
    /// Expired. Open watches continue.
    pub fn compact(&self) {
        self.store.compact();
    }

    /// Compact and end every open watch with a 410 Expired error event, forcing watchers
    /// to re-list.
    pub fn expire_watches(&self) {
        self.store.expire_watches();
    }

    /// Stop the server and wait until it has stopped.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    fn stop(&mut self) {
        self.store.shutdown();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.stop();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
