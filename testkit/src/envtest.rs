//! A real Kubernetes control plane for tests, in the role of controller-runtime's envtest:
//! etcd and kube-apiserver (and, on request, kube-controller-manager) started from a
//! directory of binaries on free loopback ports, with generated certificates and an admin
//! kubeconfig. It proves what the in-memory [`crate::TestApi`] cannot: CRD schemas and CEL
//! rules, admission and conversion webhooks the API server calls, RBAC with ServiceAccount
//! tokens, garbage collection.
//!
//! # Where the binaries come from
//!
//! [`ASSETS_ENV`] (`METALLB_K8S_ASSETS`) names a directory holding `etcd`,
//! `kube-apiserver` and `kube-controller-manager`, either plain executables or
//! xz-compressed (`etcd.xz`, ...; unpacked once into a cache directory with the `xz`
//! tool). `KUBEBUILDER_ASSETS` is read as a fallback. CI points it at `../shared/k8s/bin`.
//!
//! Without assets a test calls [`skip_or_fail`]: on a laptop it prints
//! `SKIPPED: <test>: <reason>` and passes; in CI (the `CI` environment variable is set) a
//! missing asset fails the test, because a skipped real-API test proves nothing.
//!
//! # Clean-up
//!
//! Every daemon runs under a small `sh` lifeline that holds a pipe from this process: when
//! the [`ControlPlane`] is dropped (also on panic) the pipes close and each lifeline stops
//! its daemon by PID (SIGTERM, then SIGKILL) and removes nothing else. If the test process
//! itself is killed, the pipes close all the same, so no etcd or kube-apiserver outlives
//! the test. The temporary directory (certificates, etcd data, logs) goes with the
//! [`ControlPlane`], or, when it is never dropped (a `static`, a killed process), a
//! janitor on the same kind of pipe removes it a few seconds after the process ends.

use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// The environment variable naming the directory of control-plane binaries.
pub const ASSETS_ENV: &str = "METALLB_K8S_ASSETS";
/// Read when [`ASSETS_ENV`] is not set (controller-runtime's name for the same thing).
pub const ASSETS_ENV_FALLBACK: &str = "KUBEBUILDER_ASSETS";

/// The service CIDRs the API server is started with: dual-stack, so that dual-stack
/// Services get both families as in a dual-stack cluster (the first IPv4 address is in
/// the serving certificate, as in a cluster).
pub const SERVICE_CIDR: &str = "10.96.0.0/16,fd00:10:96::/112";
const FIRST_SERVICE_IP: &str = "10.96.0.1";
/// The ServiceAccount token issuer and audience.
pub const SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// How long the control plane may take to become ready (about 7 s on an idle 2-core
/// machine; generous because CI machines are busy).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What to start.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Also start kube-controller-manager (garbage collection, namespace deletion,
    /// ServiceAccount token controller, EndpointSlices).
    pub controller_manager: bool,
    /// kube-controller-manager's `--controllers` (default `*`). Without a kubelet the
    /// node lifecycle controller marks every Node unreachable after 40 s and evicts its
    /// pods; tests with long-lived Node objects turn it off with
    /// `*,-node-lifecycle-controller`.
    pub controllers: Option<String>,
    /// Extra kube-apiserver flags (`--flag=value`).
    pub apiserver_args: Vec<String>,
}

/// The binaries of a control plane, unpacked and executable.
#[derive(Clone, Debug)]
pub struct Assets {
    pub etcd: PathBuf,
    pub apiserver: PathBuf,
    pub controller_manager: PathBuf,
}

/// Why real-API tests cannot run here, or `None` when the assets are there.
///
/// Errors (a named directory that lacks a binary, an `xz` that fails) are returned as
/// `Err`: a configured but broken asset directory is never a silent skip.
pub fn assets() -> anyhow::Result<Result<Assets, String>> {
    let dir = match std::env::var_os(ASSETS_ENV).or_else(|| std::env::var_os(ASSETS_ENV_FALLBACK)) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            return Ok(Err(format!(
                "{ASSETS_ENV} is not set (point it at a directory with etcd, kube-apiserver and \
                 kube-controller-manager, plain or .xz; this repository's CI uses \
                 ../shared/k8s/bin)"
            )))
        }
    };
    Ok(Ok(Assets {
        etcd: unpack(&dir, "etcd")?,
        apiserver: unpack(&dir, "kube-apiserver")?,
        controller_manager: unpack(&dir, "kube-controller-manager")?,
    }))
}

/// Handles "no assets": prints `SKIPPED` and returns `None` outside CI, panics in CI.
pub fn skip_or_fail(test: &str, reason: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0") {
        panic!("{test}: the real API server is required in CI: {reason}");
    }
    eprintln!("SKIPPED: {test}: {reason}");
}

/// Starts a control plane for `test`, or returns `None` (after [`skip_or_fail`]) when no
/// assets are configured. A failure to start is an error, never a skip.
pub async fn start_or_skip(test: &str, opts: Options) -> Option<ControlPlane> {
    match assets().unwrap_or_else(|e| panic!("{test}: control-plane assets: {e:#}")) {
        Ok(assets) => Some(
            ControlPlane::start(&assets, opts)
                .await
                .unwrap_or_else(|e| panic!("{test}: starting the control plane: {e:#}")),
        ),
        Err(reason) => {
            skip_or_fail(test, &reason);
            None
        }
    }
}

/// `dir/name` when executable, else `dir/name.xz` unpacked into the cache.
fn unpack(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let plain = dir.join(name);
    if plain
        .metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    {
        return Ok(plain);
    }
    let xz = dir.join(format!("{name}.xz"));
    let meta = xz
        .metadata()
        .with_context(|| format!("{}: neither {name} nor {name}.xz is there", dir.display()))?;
    // Keyed by size and modification time: new assets unpack again, old ones are reused.
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let cache = std::env::temp_dir().join("metallb-k8s-assets");
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let out = cache.join(format!("{name}-{}-{mtime}", meta.len()));
    if out.exists() {
        return Ok(out);
    }
    // Unpack to a unique name and rename: tests in parallel may unpack at once.
    let part = cache.join(format!(
        "{name}.{}.{}.part",
        std::process::id(),
        fastrand::u64(..)
    ));
    let file = std::fs::File::create(&part)?;
    let status = Command::new("xz")
        .arg("-dc")
        .arg(&xz)
        .stdout(file)
        .status()
        .context("running xz (install xz-utils)")?;
    if !status.success() {
        let _ = std::fs::remove_file(&part);
        bail!("xz -dc {} failed: {status}", xz.display());
    }
    std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&part, &out)?;
    Ok(out)
}

/// A running etcd + kube-apiserver (+ kube-controller-manager). Dropping it stops them.
pub struct ControlPlane {
    url: String,
    port: u16,
    dir: tempfile::TempDir,
    pki: Pki,
    kubeconfig_path: PathBuf,
    kubeconfig_yaml: String,
    client: kube::Client,
    // Dropped before `dir` (fields drop in order): the daemons stop, then their files go.
    daemons: Vec<Daemon>,
    janitor: Option<Janitor>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("url", &self.url)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Starts etcd, then kube-apiserver (then kube-controller-manager) and waits until the
    /// API server's `/readyz` answers `ok`.
    pub async fn start(assets: &Assets, opts: Options) -> anyhow::Result<ControlPlane> {
        // The ports are picked free and released for the daemon to bind: another process
        // (a test beside this one, any outgoing connection) can take one in between. Such
        // a start is made again on new ports, in a new directory.
        let mut attempt = 1;
        loop {
            match Self::start_once(assets, opts.clone()).await {
                Err(e) if attempt < START_ATTEMPTS && is_port_taken(&e) => {
                    eprintln!("envtest: a port was taken before its daemon bound it; starting again ({e:#})");
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    async fn start_once(assets: &Assets, opts: Options) -> anyhow::Result<ControlPlane> {
        let dir = tempfile::Builder::new()
            .prefix("metallb-envtest-")
            .tempdir()
            .context("creating the control plane's directory")?;
        let d = dir.path().to_path_buf();
        let janitor = Janitor::start(&d)?;
        let pki = tokio::task::spawn_blocking({
            let d = d.clone();
            move || Pki::generate(&d)
        })
        .await??;
        let mut daemons = Vec::new();

        let etcd_client = free_port()?;
        let etcd_peer = free_port()?;
        daemons.push(Daemon::start(
            "etcd",
            &assets.etcd,
            &[
                "--name=envtest".into(),
                format!("--data-dir={}", d.join("etcd").display()),
                format!("--listen-client-url=http://127.0.0.1:{etcd_client}"),
                format!("--listen-peer-url=http://127.0.0.1:{etcd_peer}"),
            ],
            &d,
        )?);
        wait_tcp(etcd_client, &mut daemons).await?;

        let port = free_port()?;
        let p = |name: &str| d.join("pki").join(name).display().to_string();
        let mut args = vec![
            format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            // No advertised address: the `kubernetes` Endpoints are not maintained (nothing
            // here runs in a pod network).
            "--endpoint-reconciler-type=none".into(),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--client-ca-file={}", p("ca.crt")),
            format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
            "--requestheader-allowed-names=front-proxy-client".into(),
            "--requestheader-username-headers=X-Remote-User".into(),
            "--requestheader-group-headers=X-Remote-Group".into(),
            "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
            format!("--proxy-client-cert-file={}", p("front-proxy-client.crt")),
            format!("--proxy-client-key-file={}", p("front-proxy-client.key")),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            format!("--service-account-issuer={SA_ISSUER}"),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            format!("--api-audiences={SA_ISSUER}"),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
        ];
        args.extend(opts.apiserver_args.iter().cloned());
        daemons.push(Daemon::start(
            "kube-apiserver",
            &assets.apiserver,
            &args,
            &d,
        )?);

        let url = format!("https://127.0.0.1:{port}");
        let kubeconfig_yaml = pki.kubeconfig(&url, "admin")?;
        let kubeconfig_path = d.join("admin.kubeconfig");
        std::fs::write(&kubeconfig_path, &kubeconfig_yaml)?;
        let client = crate::client_for(&kubeconfig_yaml).await?;
        wait_ready(&client, &mut daemons).await?;

        if opts.controller_manager {
            let kcm_config = d.join("kcm.kubeconfig");
            std::fs::write(
                &kcm_config,
                pki.kubeconfig(&url, "kube-controller-manager")?,
            )?;
            let kcm = kcm_config.display().to_string();
            let kcm_port = free_port()?;
            daemons.push(Daemon::start(
                "kube-controller-manager",
                &assets.controller_manager,
                &[
                    format!("--kubeconfig={kcm}"),
                    format!("--authentication-kubeconfig={kcm}"),
                    format!("--authorization-kubeconfig={kcm}"),
                    "--bind-address=127.0.0.1".into(),
                    format!("--secure-port={kcm_port}"),
                    "--leader-elect=false".into(),
                    "--use-service-account-credentials=true".into(),
                    format!("--service-account-private-key-file={}", p("sa.key")),
                    format!("--root-ca-file={}", p("ca.crt")),
                    format!("--cluster-signing-cert-file={}", p("ca.crt")),
                    format!("--cluster-signing-key-file={}", p("ca.key")),
                    format!("--service-cluster-ip-range={SERVICE_CIDR}"),
                    format!(
                        "--controllers={}",
                        opts.controllers.as_deref().unwrap_or("*")
                    ),
                ],
                &d,
            )?);
        }
        tracing::info!(%url, dir = %d.display(), "real control plane ready");
        Ok(ControlPlane {
            url,
            port,
            dir,
            pki,
            kubeconfig_path,
            kubeconfig_yaml,
            client,
            daemons,
            janitor: Some(janitor),
        })
    }

    /// An admin (`system:masters`) client.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The API server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin kubeconfig file (certificates embedded).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The admin kubeconfig text.
    pub fn kubeconfig_yaml(&self) -> &str {
        &self.kubeconfig_yaml
    }

    /// The cluster CA certificate (PEM): trusted by clients, and the CA of
    /// [`ControlPlane::serving_cert`].
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// The control plane's working directory (logs are `<name>.log` in it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A serving certificate and key signed by the cluster CA, for webhooks the API
    /// server calls: written as `<name>.crt` / `<name>.key` under the control plane's
    /// directory. Returns (cert path, key path).
    pub fn serving_cert(&self, name: &str, sans: &[&str]) -> anyhow::Result<(PathBuf, PathBuf)> {
        self.pki
            .issue(name, &format!("/CN={name}"), sans, "serverAuth")
    }

    /// A kubeconfig for a bearer token (a ServiceAccount's, for RBAC tests).
    pub fn token_kubeconfig(&self, token: &str) -> String {
        kubeconfig_text(&self.url, &self.pki.ca_pem, &format!("token: {token}"))
    }

    /// The last `lines` lines of a daemon's log (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`).
    pub fn log_tail(&self, daemon: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(format!("{daemon}.log")))
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Tell every lifeline at once, then wait for each: the daemons stop in parallel.
        for d in &mut self.daemons {
            drop(d.pipe.take());
        }
        self.daemons.clear();
        drop(self.janitor.take());
    }
}

/// Removes the control plane's directory once this process lets go of it, even when the
/// [`ControlPlane`] is never dropped (a `static` shared by a test binary's tests, or a
/// killed test process): `cat` returns when the pipe closes, then, once the lifelines
/// have stopped the daemons (they give them 5 s), the directory goes.
struct Janitor {
    child: Option<Child>,
    pipe: Option<ChildStdin>,
}

impl Janitor {
    fn start(dir: &Path) -> anyhow::Result<Janitor> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"cat >/dev/null; sleep 7; rm -rf -- "$0""#)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the clean-up helper")?;
        let pipe = child.stdin.take();
        Ok(Janitor {
            child: Some(child),
            pipe,
        })
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        drop(self.pipe.take());
        // Reaped in the background: it sleeps before it removes anything.
        if let Some(mut child) = self.child.take() {
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
    }
}

/// The API server's answer to one raw request: what a typed client hides (the status
/// code, the `Warning` headers, the `Status` body of a refusal).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub warnings: Vec<String>,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: serde_json::Value,
}

impl Answer {
    /// The `message` of a `Status` body ("" when absent).
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

/// Sends one request (`body` as JSON); panics only on a transport error.
pub async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Answer {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", "application/json")
        .body(kube::client::Body::from(
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        ))
        .expect("a valid request");
    let resp = client
        .send(req)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap_or("?").to_string())
        .collect();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Answer {
        status,
        warnings,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    }
}

/// Creates `crds` and waits until each is Established (served). Returns the API server's
/// warnings, each prefixed with the CRD's name: a CRD that installs with warnings is
/// still a defect, and the caller decides.
pub async fn install_crds(
    client: &kube::Client,
    crds: &[CustomResourceDefinition],
) -> anyhow::Result<Vec<String>> {
    let mut warnings = Vec::new();
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let req = http::Request::post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            .header("Content-Type", "application/json")
            .body(kube::client::Body::from(serde_json::to_vec(crd)?))?;
        let resp = client
            .send(req)
            .await
            .with_context(|| format!("creating CRD {name}"))?;
        let status = resp.status();
        warnings.extend(
            resp.headers()
                .get_all("warning")
                .iter()
                .map(|w| format!("{name}: {}", w.to_str().unwrap_or("?"))),
        );
        if !status.is_success() {
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await?
                .to_bytes();
            bail!(
                "CRD {name} rejected ({status}): {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let deadline = Instant::now() + READY_TIMEOUT;
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        loop {
            let got = api.get(&name).await?;
            let established = got
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "CRD {name} not Established after {READY_TIMEOUT:?}: {:?}",
                    got.status
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(warnings)
}

/// One daemon under its lifeline (see the module docs).
struct Daemon {
    name: &'static str,
    lifeline: Child,
    /// Closing it tells the lifeline to stop the daemon.
    pipe: Option<ChildStdin>,
    log: PathBuf,
}

/// The lifeline: starts `"$@"`, then waits for its stdin to close (or the daemon to exit),
/// and stops the daemon by its PID. `exec` of the daemon would lose the watch on stdin.
const LIFELINE: &str = r#"
"$@" </dev/null &
pid=$!
# stdin closes when the test drops the ControlPlane or dies. (A background job's stdin
# is /dev/null unless redirected explicitly, hence fd 3.)
exec 3<&0
( cat <&3 >/dev/null; kill -TERM "$pid" 2>/dev/null; sleep 5; kill -KILL "$pid" 2>/dev/null ) &
watcher=$!
wait "$pid"
rc=$?
kill "$watcher" 2>/dev/null
exit $rc
"#;

impl Daemon {
    fn start(
        name: &'static str,
        program: &Path,
        args: &[String],
        dir: &Path,
    ) -> anyhow::Result<Daemon> {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let mut lifeline = Command::new("sh")
            .arg("-c")
            .arg(LIFELINE)
            .arg(name)
            .arg(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .env_remove("KUBECONFIG")
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        let pipe = lifeline.stdin.take();
        Ok(Daemon {
            name,
            lifeline,
            pipe,
            log,
        })
    }

    /// `Some(reason)` when the daemon has exited.
    fn exited(&mut self) -> Option<String> {
        match self.lifeline.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{} exited ({status}); last log lines:\n{}",
                self.name,
                tail(&self.log, 30)
            )),
            _ => None,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Closing the pipe makes the lifeline SIGTERM the daemon (SIGKILL after 5 s).
        drop(self.pipe.take());
        let deadline = Instant::now() + Duration::from_secs(8);
        while Instant::now() < deadline {
            if matches!(self.lifeline.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.lifeline.kill();
        let _ = self.lifeline.wait();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// How many times [`ControlPlane::start`] tries when a port was taken.
const START_ATTEMPTS: u32 = 3;

/// Whether a start failed because a daemon could not bind its port.
fn is_port_taken(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("address already in use")
}

/// A free loopback port (bound, then released: the daemon binds it right after).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn check_alive(daemons: &mut [Daemon]) -> anyhow::Result<()> {
    for d in daemons.iter_mut() {
        if let Some(why) = d.exited() {
            bail!(why);
        }
    }
    Ok(())
}

async fn wait_tcp(port: u16, daemons: &mut [Daemon]) -> anyhow::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        check_alive(daemons)?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after {READY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_ready(client: &kube::Client, daemons: &mut [Daemon]) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        check_alive(daemons)?;
        let req = http::Request::get("/readyz").body(Vec::new())?;
        let last = match client.request_text(req).await {
            Ok(body) if body.trim() == "ok" => return Ok(()),
            Ok(body) => body,
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            bail!("kube-apiserver not ready after {READY_TIMEOUT:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The certificates of one control plane, made with the `openssl` tool (EC P-256 keys:
/// fast to generate, accepted by every component).
struct Pki {
    dir: PathBuf,
    ca_pem: String,
}

impl Pki {
    fn generate(root: &Path) -> anyhow::Result<Pki> {
        let dir = root.join("pki");
        std::fs::create_dir_all(&dir)?;
        let pki = Pki {
            dir: dir.clone(),
            ca_pem: String::new(),
        };
        pki.ca("ca", "/CN=metallb-envtest-ca")?;
        pki.ca("front-proxy-ca", "/CN=metallb-envtest-front-proxy-ca")?;
        pki.issue(
            "apiserver",
            "/CN=kube-apiserver",
            &[
                "IP:127.0.0.1",
                &format!("IP:{FIRST_SERVICE_IP}"),
                "DNS:localhost",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
            ],
            "serverAuth",
        )?;
        pki.issue(
            "admin",
            "/O=system:masters/CN=metallb-envtest-admin",
            &[],
            "clientAuth",
        )?;
        pki.issue(
            "kube-controller-manager",
            "/CN=system:kube-controller-manager",
            &[],
            "clientAuth",
        )?;
        pki.issue_by(
            "front-proxy-ca",
            "front-proxy-client",
            "/CN=front-proxy-client",
            &[],
            "clientAuth",
        )?;
        openssl(
            &dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "sa.key",
            ],
        )?;
        openssl(
            &dir,
            &["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"],
        )?;
        let ca_pem = std::fs::read_to_string(dir.join("ca.crt"))?;
        Ok(Pki { dir, ca_pem })
    }

    fn ca(&self, name: &str, subject: &str) -> anyhow::Result<()> {
        openssl(
            &self.dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                subject,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            ],
        )
    }

    fn issue(
        &self,
        name: &str,
        subject: &str,
        sans: &[&str],
        usage: &str,
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        self.issue_by("ca", name, subject, sans, usage)
    }

    /// A leaf certificate `<name>.crt`/`<name>.key` signed by the CA `<ca>`.
    fn issue_by(
        &self,
        ca: &str,
        name: &str,
        subject: &str,
        sans: &[&str],
        usage: &str,
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        let mut ext_text = format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
        );
        if !sans.is_empty() {
            ext_text.push_str(&format!("subjectAltName={}\n", sans.join(",")));
        }
        std::fs::write(self.dir.join(&ext), ext_text)?;
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        )?;
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{ca}.crt"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &crt,
            ],
        )?;
        Ok((self.dir.join(crt), self.dir.join(key)))
    }

    /// A kubeconfig for `url` authenticating with the client certificate `<user>`.
    fn kubeconfig(&self, url: &str, user: &str) -> anyhow::Result<String> {
        let b64 = |f: &str| -> anyhow::Result<String> {
            let bytes = std::fs::read(self.dir.join(f))?;
            Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
        };
        let auth = format!(
            "client-certificate-data: {}\n    client-key-data: {}",
            b64(&format!("{user}.crt"))?,
            b64(&format!("{user}.key"))?
        );
        Ok(kubeconfig_text(url, &self.ca_pem, &auth))
    }
}

fn kubeconfig_text(url: &str, ca_pem: &str, auth: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: {url}
    certificate-authority-data: {ca}
contexts:
- name: envtest
  context:
    cluster: envtest
    user: envtest
    namespace: default
current-context: envtest
users:
- name: envtest
  user:
    {auth}
preferences: {{}}
"
    )
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (install the openssl package)")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_that_lost_its_port_is_started_again_and_other_failures_are_not() {
        // what a start printed in CI when another process took etcd's port
        let taken = anyhow::anyhow!(
            "etcd exited (exit status: 1); last log lines:\n2026/12/07 17:25:31 start etcd: \
             listen tcp 127.0.0.1:36039: bind: address already in use"
        )
        .context("starting the control plane");
        assert!(is_port_taken(&taken));
        let other = anyhow::anyhow!(
            "kube-apiserver exited (exit status: 1); last log lines:\n\
             Error: invalid argument \"x\" for \"--authorization-mode\""
        );
        assert!(!is_port_taken(&other));
    }
}
