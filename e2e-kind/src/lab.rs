//! The lab: node namespaces with FRR on one LAN, external routers, the test API with Node
//! objects, and the product processes (controller, one speaker per node).
//!
//! ```text
//!   root netns: test API (127.0.0.1:port), metallb-controller, metallb-speaker × N
//!               (each speaker drives its node's FRR over vtysh -N <pathspace>)
//!   ext   netns: FRR (AS 64513), br0 192.0.2.1/24 2001:db8::1/64, lo 198.19.255.1/32
//!   nodeK netns: FRR (AS 64512), eth0 192.0.2.1K/24 2001:db8::1K/64  ── veth ── br0
//!   bird  netns: BIRD 2 (AS 64514), eth0 192.0.2.2/24              ── veth ── br0
//! ```
//!
//! With `node_vrf` (e.g. `red`), each node's `eth0` is in that VRF: enslaved to a kernel VRF
//! device, or, where the kernel has no VRF support, in a second namespace `e2r...` that the
//! node's FRR uses through its netns VRF backend ([`VrfBackend`]).
//!
//! Teardown happens in `Drop` (also on panic): product processes (SIGTERM by PID, then
//! SIGKILL), the API, FRR and BIRD daemons (by PID), then the namespaces and temp dirs.
//! On a panic the tail of every log is printed first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use kube::Api;
use metallb_netlab::{veth, wait_until_some, BirdInstance, FrrBuild, FrrInstance, Netns};
use metallb_testkit::envtest::{self, ControlPlane};
use serde_json::{json, Value};

use crate::bins;
use crate::objects::{self, APP_NS, FRRK8S_NS, METALLB_NS};
use crate::process::{tail, Managed};
use crate::router::{
    bird_config, ext_config, node_v4, node_v6, ExtOptions, FrrQueries, Pathspace, BIRD_V4,
    EXT_LOOPBACK, EXT_V4, EXT_V6,
};

/// Labs in one process run one at a time: they share CPU with the timing measurements,
/// and FRR start-up is CPU-bound.
static LAB_LOCK: Mutex<()> = Mutex::new(());

/// Which product processes the lab runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// metallb-controller + one all-in-one metallb-speaker per node.
    Full,
    /// Only the standalone frr-k8s per node (FRRConfigurations written by the test).
    FrrK8s,
    /// No product process (the test drives FRR itself).
    Nothing,
}

impl Stack {
    /// `FrrK8s` with `E2E_STACK=frr-k8s`, else `Full`.
    pub fn auto() -> Stack {
        match std::env::var("E2E_STACK").as_deref() {
            Ok("frr-k8s") => Stack::FrrK8s,
            _ => Stack::Full,
        }
    }
}

/// How a node's VRF (`LabOptions::node_vrf`) is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VrfBackend {
    /// A kernel VRF device (`ip link add red type vrf table 10`) enslaving `eth0`: what a
    /// real node has. Needs a kernel with `CONFIG_NET_VRF`.
    Kernel,
    /// FRR's netns VRF backend (`zebra --vrfwnetns`): `eth0` lives in a second namespace
    /// that the node's FRR sees as VRF `red` (see [`FrrInstance::start_netns_vrfs`]). Not
    /// kernel VRFs: the stand-in where the kernel has none. The product renders and
    /// applies the same `router bgp ASN vrf red`; FRR shows one extra stanza
    /// (`vrf red` / `netns /run/netns/red`) in its running configuration.
    Netns,
}

impl VrfBackend {
    /// `Kernel` when VRF devices can be created here, else `Netns`.
    pub fn auto() -> VrfBackend {
        if crate::vrf_unsupported_reason().is_none() {
            VrfBackend::Kernel
        } else {
            VrfBackend::Netns
        }
    }
}

/// Which Kubernetes API server the lab runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiKind {
    /// The in-memory test API server (`metallb-testkit`): fast, no CEL, no webhooks.
    Test,
    /// A real etcd + kube-apiserver + kube-controller-manager from `METALLB_K8S_ASSETS`
    /// (`metallb_testkit::envtest`): CRD schemas and CEL, real watch semantics, the real
    /// garbage collector.
    Real,
}

impl ApiKind {
    /// `E2E_API=real|test`; otherwise `Real` when control-plane assets are configured
    /// (always in CI), else `Test`.
    pub fn auto() -> ApiKind {
        match std::env::var("E2E_API").as_deref() {
            Ok("real") => ApiKind::Real,
            Ok("test") => ApiKind::Test,
            _ if matches!(envtest::assets(), Ok(Ok(_))) => ApiKind::Real,
            _ if std::env::var_os("CI").is_some() => ApiKind::Real,
            _ => ApiKind::Test,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ApiKind::Test => "test API server",
            ApiKind::Real => "kube-apiserver",
        }
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// Scenario name (logs, messages).
    pub name: String,
    pub nodes: usize,
    pub ext: ExtOptions,
    /// Also start BIRD (AS 64514, 192.0.2.2) as a second external router.
    pub bird: bool,
    pub stack: Stack,
    /// Put every node's `eth0` into this VRF (the BGPPeer then needs `vrf: NAME`).
    pub node_vrf: Option<String>,
    /// How `node_vrf` is made; `None`: [`VrfBackend::auto`].
    pub vrf_backend: Option<VrfBackend>,
    /// Extra arguments for every speaker (or frr-k8s) process.
    pub speaker_args: Vec<String>,
    /// Which API server ([`ApiKind::auto`] by default).
    pub api: ApiKind,
    /// Which FRR the nodes run: `E2E_FRR_NODES`, else `NETLAB_FRR`, else the host's
    /// (`host`/`8.4`, or `10` for the FRR 10 tree; see [`FrrBuild::from_name`]).
    pub frr_nodes: FrrBuild,
    /// Which FRR the external router runs: `E2E_FRR_EXT`, else `NETLAB_FRR`, else the
    /// host's. Different from `frr_nodes` for the mixed pairs (node on 10, router on 8.4).
    pub frr_ext: FrrBuild,
    /// The lab fails a test after which a node's FRR driver logged that FRR rejected a
    /// batch, that its running configuration still differed after a repair, or (unless
    /// this is set) that the read-back after an apply needed a repair ([`Lab::frr_trouble`]):
    /// a scenario can reach its routes through the fallback and still hide a driver fault.
    /// Set only where a scenario provokes repairs on purpose, with the reason beside it.
    pub frr_repairs_expected: bool,
}

impl LabOptions {
    pub fn new(name: &str) -> Self {
        LabOptions {
            name: name.to_string(),
            nodes: 2,
            ext: ExtOptions::default(),
            bird: false,
            stack: Stack::auto(),
            node_vrf: None,
            vrf_backend: None,
            speaker_args: Vec::new(),
            api: ApiKind::auto(),
            frr_nodes: frr_build_from_env("E2E_FRR_NODES"),
            frr_ext: frr_build_from_env("E2E_FRR_EXT"),
            frr_repairs_expected: false,
        }
    }
}

/// The flags that point a speaker's (or frr-k8s's) FRR driver at `frr` when it does not run
/// the host's FRR: its vtysh through chroot, its PID files and a batch directory inside
/// the tree. None for the host's FRR (the defaults and `--frr-pathspace` do).
pub fn frr_driver_args(frr: &FrrInstance) -> Vec<String> {
    match frr.build() {
        FrrBuild::Host => Vec::new(),
        build @ FrrBuild::Tree(_) => {
            let (batch_dir, seen_as) = frr.scratch_dir();
            let vtysh = build
                .vtysh_words()
                .iter()
                .map(|w| shlex::try_quote(w).map(|q| q.into_owned()))
                .collect::<Result<Vec<_>, _>>()
                .expect("no NUL in the vtysh command")
                .join(" ");
            vec![
                format!("--vtysh={vtysh}"),
                format!("--frr-run-dir={}", build.run_base().display()),
                format!("--vtysh-batch-dir={}", batch_dir.display()),
                format!("--vtysh-batch-dir-seen-as={}", seen_as.display()),
            ]
        }
    }
}

/// The FRR build named by `var` (or `NETLAB_FRR`); a bad name is a test setup error.
fn frr_build_from_env(var: &str) -> FrrBuild {
    FrrBuild::from_env_var(var).unwrap_or_else(|e| panic!("{var}: {e}"))
}

/// One node: its namespace, its FRR and its addresses. Fields drop in order (FRR, then
/// the namespace).
#[derive(Debug)]
pub struct LabNode {
    /// 1-based.
    pub index: usize,
    /// The Kubernetes node name (`node1`, ...).
    pub name: String,
    pub v4: String,
    pub v6: String,
    pub frr: FrrInstance,
    pub netns: Netns,
    /// With [`VrfBackend::Netns`]: the namespace that is the node's VRF (holds `eth0`).
    pub vrf_netns: Option<Netns>,
}

impl LabNode {
    /// The namespace holding the node's LAN interface `eth0` (bridged to the external
    /// router's `br0`): the VRF's with the netns VRF backend, the node's otherwise.
    pub fn lan_netns(&self) -> &Netns {
        self.vrf_netns.as_ref().unwrap_or(&self.netns)
    }

    /// The MAC address of the node's `eth0` (what an L2 client resolves a Service IP to
    /// when this node announces it).
    pub fn lan_mac(&self) -> anyhow::Result<String> {
        let out = self
            .lan_netns()
            .run(&["cat", "/sys/class/net/eth0/address"])?;
        Ok(out.trim().to_string())
    }
}

/// The main external router.
#[derive(Debug)]
pub struct ExtRouter {
    /// `None` with an existing cluster (the router is then reached by pathspace only).
    pub frr: Option<FrrInstance>,
    pub netns: Option<Netns>,
    pathspace: String,
}

impl ExtRouter {
    pub fn pathspace(&self) -> &str {
        &self.pathspace
    }

    /// `ip -n EXT route show PREFIX`.
    pub fn kernel_route(&self, prefix: &str) -> String {
        match &self.netns {
            Some(ns) => {
                let fam = if prefix.contains(':') { "-6" } else { "-4" };
                ns.ip(&[fam, "route", "show", prefix]).unwrap_or_default()
            }
            None => String::new(),
        }
    }

    /// The next hops of `prefix` (IPv4) in the router's kernel table, where its zebra
    /// installs what it forwards; `None` without the router's namespace. Read with `ip`
    /// (~2 ms of CPU) rather than vtysh (~60 ms), so that a test polling it every 10 ms does
    /// not take a core from what it measures.
    pub fn fib_v4_nexthops(&self, prefix: &str) -> Option<Vec<String>> {
        let ns = self.netns.as_ref()?;
        Some(vias(
            &ns.ip(&["-4", "route", "show", prefix]).unwrap_or_default(),
        ))
    }

    /// How many IPv4 routes of the router's kernel table have at least `nexthops` next
    /// hops (one `ip` call, cheap at 10,000 routes where `show bgp ... json` takes
    /// seconds); `None` without a namespace.
    pub fn fib_v4_routes_via(&self, nexthops: usize) -> Option<usize> {
        let ns = self.netns.as_ref()?;
        let out = ns.ip(&["-4", "route", "show"]).unwrap_or_default();
        Some(
            route_blocks(&out)
                .filter(|b| vias(b).len() >= nexthops)
                .count(),
        )
    }

    /// Sum of `connectionsDropped` / `connectionsEstablished` over all neighbors.
    pub fn session_counters(&self) -> (u64, u64) {
        self.neighbors()
            .values()
            .fold((0, 0), |(d, e), n| (d + n.dropped, e + n.established))
    }
}

impl FrrQueries for ExtRouter {
    fn query_json(&self, cmd: &str) -> Option<Value> {
        match &self.frr {
            Some(f) => f.vtysh_json(cmd).ok(),
            None => Pathspace(self.pathspace.clone()).query_json(cmd),
        }
    }
}

/// The routes of `ip route show` output, each with its indented `nexthop` lines.
fn route_blocks(out: &str) -> impl Iterator<Item = String> + '_ {
    let mut blocks: Vec<String> = Vec::new();
    for line in out.lines() {
        match blocks.last_mut() {
            Some(b) if line.starts_with(char::is_whitespace) => {
                b.push('\n');
                b.push_str(line);
            }
            _ => blocks.push(line.to_string()),
        }
    }
    blocks.into_iter()
}

/// The `via` addresses of `ip route show` output, sorted and unique.
fn vias(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// BIRD as a second external router.
#[derive(Debug)]
pub struct BirdRouter {
    pub bird: BirdInstance,
    pub netns: Netns,
}

impl BirdRouter {
    /// Next hops BIRD learned for `prefix` (every path), sorted.
    pub fn nexthops(&self, prefix: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .bird
            .routes()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.prefix == prefix)
            .filter_map(|r| r.via)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Next hops in BIRD's namespace kernel table (`merge paths on`).
    pub fn kernel_nexthops(&self, prefix: &str) -> Vec<String> {
        vias(
            &self
                .netns
                .ip(&["route", "show", prefix])
                .unwrap_or_default(),
        )
    }
}

/// Where the lab's Kubernetes API comes from.
enum Backend {
    /// The in-process test API (ours).
    Test(Box<metallb_testkit::TestApi>),
    /// A real control plane (child processes of this test).
    Real(Box<ControlPlane>),
    /// `E2E_KUBECONFIG`: an existing cluster; nothing is created but the test's objects.
    Existing,
}

/// A running lab. See the module documentation.
pub struct Lab {
    // Drop order: processes, API, BIRD, external router, nodes, logs, lock (declaration
    // order; `Drop for Lab` stops the processes and the API explicitly first).
    controller: Option<Managed>,
    speakers: Vec<Option<Managed>>,
    backend: Option<Backend>,
    resources: Mutex<HashMap<(String, String), (ApiResource, ApiCapabilities)>>,
    client: kube::Client,
    kubeconfig: PathBuf,
    /// Per component ("controller", "speaker", "frr-k8s"): a kubeconfig with the token of
    /// the chart's ServiceAccount for it (real API server); absent: the admin kubeconfig.
    component_kubeconfigs: HashMap<&'static str, PathBuf>,
    rt: tokio::runtime::Runtime,
    pub bird: Option<BirdRouter>,
    pub ext: ExtRouter,
    pub nodes: Vec<LabNode>,
    opts: LabOptions,
    logs: tempfile::TempDir,
    _lock: MutexGuard<'static, ()>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("name", &self.opts.name)
            .field("nodes", &self.nodes.len())
            .field("logs", &self.logs.path())
            .finish()
    }
}

impl Lab {
    /// Builds the whole lab and starts the product processes. Needs root and FRR (check
    /// with [`crate::require_lab`] first).
    pub fn start(opts: LabOptions) -> anyhow::Result<Lab> {
        let lock = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let logs = tempfile::Builder::new()
            .prefix(&format!("metallb-e2e-{}-", opts.name))
            .tempdir()
            .context("creating the log dir")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("tokio runtime")?;

        if let Ok(kc) = std::env::var("E2E_KUBECONFIG") {
            return Self::start_existing(opts, PathBuf::from(kc), rt, logs, lock);
        }

        // ---- topology ----
        let ext_ns = Netns::new("e2x").context("creating the ext namespace")?;
        ext_ns.ip(&["link", "add", "br0", "type", "bridge"])?;
        ext_ns.ip(&[
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        ext_ns.set_link("br0", true)?;
        ext_ns.add_addr("br0", &format!("{EXT_V4}/24"))?;
        ext_ns.add_addr("br0", &format!("{EXT_V6}/64"))?;
        ext_ns.add_addr("lo", &format!("{EXT_LOOPBACK}/32"))?;

        let vrf_backend = opts
            .node_vrf
            .as_ref()
            .map(|_| opts.vrf_backend.unwrap_or_else(VrfBackend::auto));
        let mut node_ns = Vec::new();
        for k in 1..=opts.nodes {
            let ns = Netns::new("e2n").with_context(|| format!("creating node{k} namespace"))?;
            // with the netns VRF backend, eth0 lives in the VRF's own namespace
            let vrf_ns = match vrf_backend {
                Some(VrfBackend::Netns) => Some(
                    Netns::new("e2r").with_context(|| format!("creating node{k} VRF namespace"))?,
                ),
                _ => None,
            };
            let port = format!("p{k}");
            veth(
                vrf_ns.as_ref().unwrap_or(&ns),
                "eth0",
                &[&format!("{}/24", node_v4(k)), &format!("{}/64", node_v6(k))],
                &ext_ns,
                &port,
                &[],
            )?;
            ext_ns.ip(&["link", "set", &port, "master", "br0"])?;
            match (&opts.node_vrf, vrf_backend) {
                (Some(vrf), Some(VrfBackend::Kernel)) => {
                    ns.ip(&["link", "add", vrf, "type", "vrf", "table", "10"])?;
                    ns.set_link(vrf, true)?;
                    ns.ip(&["link", "set", "eth0", "master", vrf])?;
                }
                (Some(_), _) => {}
                (None, _) if opts.ext.multihop => {
                    ns.ip(&["route", "add", &format!("{EXT_LOOPBACK}/32"), "via", EXT_V4])?;
                }
                (None, _) => {}
            }
            node_ns.push((ns, vrf_ns));
        }

        // ---- routers ----
        // a log dir the frr user can write to
        let frr_logs = logs.path().join("frr");
        std::fs::create_dir_all(&frr_logs)?;
        metallb_netlab::run_checked(&["chown", "frr:frr", &frr_logs.display().to_string()])?;
        let ext_log = frr_logs.join("ext.log");
        let ext_frr = FrrInstance::start_on(
            &opts.frr_ext,
            &ext_ns,
            &ext_config(&opts.ext, opts.nodes, &ext_log.display().to_string()),
        )
        .context("starting the external router's FRR")?;
        let pathspace = ext_frr.name().to_string();
        let ext = ExtRouter {
            frr: Some(ext_frr),
            netns: Some(ext_ns),
            pathspace,
        };

        let mut nodes = Vec::new();
        for (i, (ns, vrf_ns)) in node_ns.into_iter().enumerate() {
            let k = i + 1;
            let startup = "frr defaults traditional\n";
            let frr = match (&vrf_ns, &opts.node_vrf) {
                (Some(v), Some(vrf)) => {
                    FrrInstance::start_netns_vrfs_on(&opts.frr_nodes, &ns, startup, &[(vrf, v)])
                }
                _ => FrrInstance::start_on(&opts.frr_nodes, &ns, startup),
            }
            .with_context(|| format!("starting node{k}'s FRR"))?;
            nodes.push(LabNode {
                index: k,
                name: format!("node{k}"),
                v4: node_v4(k),
                v6: node_v6(k),
                frr,
                netns: ns,
                vrf_netns: vrf_ns,
            });
        }

        let bird = if opts.bird {
            let ns = Netns::new("e2b")?;
            let ext_ns = ext.netns.as_ref().expect("ext netns");
            veth(&ns, "eth0", &[&format!("{BIRD_V4}/24")], ext_ns, "pb", &[])?;
            ext_ns.ip(&["link", "set", "pb", "master", "br0"])?;
            let log = logs.path().join("bird.log");
            let bird = BirdInstance::start(
                &ns,
                &bird_config(opts.nodes, opts.ext.node_asn, &log.display().to_string()),
            )
            .context("starting BIRD")?;
            Some(BirdRouter { bird, netns: ns })
        } else {
            None
        };

        // ---- API ----
        eprintln!(
            "e2e lab {}: Kubernetes API = {}; nodes on {}, router on {}",
            opts.name,
            opts.api.name(),
            opts.frr_nodes.label(),
            opts.frr_ext.label(),
        );
        let kubeconfig = logs.path().join("kubeconfig");
        let (backend, client) = match opts.api {
            ApiKind::Test => {
                let api = rt.block_on(metallb_testkit::start_with(metallb_testkit::Options {
                    kubeconfig_out: Some(kubeconfig.clone()),
                    ..Default::default()
                }))?;
                let client = api.client();
                (Backend::Test(Box::new(api)), client)
            }
            ApiKind::Real => {
                let cp = rt.block_on(start_control_plane(logs.path()))?;
                std::fs::write(&kubeconfig, cp.kubeconfig_yaml())?;
                let client = cp.client();
                (Backend::Real(Box::new(cp)), client)
            }
        };
        let mut lab = Lab {
            controller: None,
            speakers: Vec::new(),
            backend: Some(backend),
            resources: Mutex::new(HashMap::new()),
            client,
            kubeconfig,
            component_kubeconfigs: HashMap::new(),
            rt,
            bird,
            ext,
            nodes,
            opts,
            logs,
            _lock: lock,
        };
        for ns in [METALLB_NS, FRRK8S_NS] {
            lab.apply(objects::namespace(ns))?;
        }
        for n in &lab.nodes {
            lab.apply(objects::node(&n.name))?;
            lab.patch_status(
                "v1",
                "Node",
                None,
                &n.name,
                objects::node_status(&n.name, &[n.v4.clone(), n.v6.clone()]),
            )?;
        }
        // The pods the product processes stand for: owners of the objects they write (as
        // in a cluster, the garbage collector removes those when the pod goes). They stay
        // Pending: there is no kubelet.
        if lab.opts.stack != Stack::Nothing {
            for ns in [METALLB_NS, FRRK8S_NS] {
                lab.apply(objects::service_account(POD_SERVICE_ACCOUNT, ns))?;
            }
            for n in &lab.nodes {
                let (name, ns) = lab.pod_of(n);
                let mut pod = objects::pod(&name, ns, &n.name, POD_SERVICE_ACCOUNT);
                // the chart's component label: speakers find each other's pods by it
                pod["metadata"]["labels"]["app.kubernetes.io/component"] = "speaker".into();
                lab.apply(pod)?;
                // hostNetwork: the Pod's IP is the node's, where its membership listens
                let ips = serde_json::json!({"status": {
                    "podIP": n.v4, "podIPs": [{"ip": n.v4}],
                }});
                lab.patch_status("v1", "Pod", Some(ns), &name, ips)?;
            }
            if lab.opts.stack == Stack::Full {
                let node = lab
                    .nodes
                    .first()
                    .map(|n| n.name.clone())
                    .unwrap_or_default();
                lab.apply(objects::pod(
                    CONTROLLER_POD,
                    METALLB_NS,
                    &node,
                    POD_SERVICE_ACCOUNT,
                ))?;
            }
        }
        // FRR's netns VRF backend prints `vrf red` / ` netns /run/netns/red` in its running
        // configuration; frr-k8s leaves such FRR-owned lines alone (frr/diff.rs), so no
        // workaround is needed here and the VRF scenario checks reloads succeed.
        if lab.opts.stack != Stack::Nothing {
            lab.use_chart_service_accounts()?;
        }
        lab.start_processes()?;
        Ok(lab)
    }

    /// On the real API server: installs the chart's ServiceAccounts and RBAC and gives
    /// each product process a token of its ServiceAccount instead of admin credentials, so
    /// that a permission the chart lacks fails the scenario (and shows in the audit log,
    /// [`Lab::audit_log`]).
    fn use_chart_service_accounts(&mut self) -> anyhow::Result<()> {
        let Some(Backend::Real(cp)) = &self.backend else {
            return Ok(());
        };
        if let Some(why) = crate::chart::unavailable() {
            metallb_testkit::envtest::skip_or_fail(
                &format!("{}: the chart's RBAC", self.opts.name),
                &format!("{why}; the product runs with admin credentials"),
            );
            return Ok(());
        }
        let (values, accounts) = match self.opts.stack {
            Stack::FrrK8s => (
                serde_json::json!({"controller": {"enabled": false}, "speaker": {"enabled": false},
                                   "frrk8s": {"enabled": true, "namespace": FRRK8S_NS}}),
                vec![("frr-k8s", "metallb-frr-k8s", FRRK8S_NS)],
            ),
            _ => (
                serde_json::json!({"frrk8s": {"namespace": FRRK8S_NS}}),
                vec![
                    ("controller", "metallb-controller", METALLB_NS),
                    ("speaker", "metallb-speaker", METALLB_NS),
                ],
            ),
        };
        let objs = crate::chart::render_release(&[values], "metallb", METALLB_NS)?;
        let rbac: Vec<Value> = objs
            .into_iter()
            .filter(|o| {
                matches!(
                    o["kind"].as_str(),
                    Some(
                        "ServiceAccount"
                            | "ClusterRole"
                            | "ClusterRoleBinding"
                            | "Role"
                            | "RoleBinding"
                    )
                )
            })
            .collect();
        let client = self.client.clone();
        self.rt
            .block_on(crate::chart::apply_all(&client, &rbac))
            .context("installing the chart's RBAC")?;
        for (component, sa, ns) in accounts {
            let token = self
                .rt
                .block_on(service_account_token(&client, ns, sa))
                .with_context(|| format!("a token for ServiceAccount {ns}/{sa}"))?;
            let path = self.logs.path().join(format!("{component}.kubeconfig"));
            std::fs::write(&path, cp.token_kubeconfig(&token))?;
            self.component_kubeconfigs.insert(component, path);
        }
        Ok(())
    }

    /// The kube-apiserver's audit log (real API server), one JSON event per line.
    pub fn audit_log(&self) -> Option<PathBuf> {
        matches!(self.backend, Some(Backend::Real(_))).then(|| self.logs.path().join(AUDIT_LOG))
    }

    /// The kubeconfig with the chart ServiceAccount's token for `component` ("controller",
    /// "speaker", "frr-k8s"), when the lab runs them so.
    pub fn component_kubeconfig(&self, component: &str) -> Option<&Path> {
        self.component_kubeconfigs
            .get(component)
            .map(PathBuf::as_path)
    }

    /// The lab's log directory.
    pub fn log_path(&self) -> &Path {
        self.logs.path()
    }

    /// The kubeconfig `component` runs with.
    fn kubeconfig_of(&self, component: &str) -> String {
        self.component_kubeconfigs
            .get(component)
            .unwrap_or(&self.kubeconfig)
            .display()
            .to_string()
    }

    /// `E2E_KUBECONFIG` path: an existing cluster (kind). The nodes, their FRR and the
    /// product are already running there; the external router must be an FRR this host
    /// can reach with `vtysh -N $E2E_EXT_PATHSPACE` (e.g. one attached to kind's network).
    /// Node-level operations (link cuts, FRR restarts) are unavailable in this mode.
    fn start_existing(
        opts: LabOptions,
        kubeconfig: PathBuf,
        rt: tokio::runtime::Runtime,
        logs: tempfile::TempDir,
        lock: MutexGuard<'static, ()>,
    ) -> anyhow::Result<Lab> {
        let pathspace = std::env::var("E2E_EXT_PATHSPACE")
            .context("E2E_KUBECONFIG needs E2E_EXT_PATHSPACE (the external FRR's pathspace)")?;
        let text = std::fs::read_to_string(&kubeconfig)
            .with_context(|| format!("reading {}", kubeconfig.display()))?;
        let client = rt.block_on(metallb_testkit::client_for(&text))?;
        let lab = Lab {
            controller: None,
            speakers: Vec::new(),
            backend: Some(Backend::Existing),
            resources: Mutex::new(HashMap::new()),
            client,
            kubeconfig,
            component_kubeconfigs: HashMap::new(),
            rt,
            bird: None,
            ext: ExtRouter {
                frr: None,
                netns: None,
                pathspace,
            },
            nodes: Vec::new(),
            opts,
            logs,
            _lock: lock,
        };
        Ok(lab)
    }

    /// The test API's URL (`None` with an existing cluster).
    pub fn api_url(&self) -> Option<String> {
        match &self.backend {
            Some(Backend::Test(api)) => Some(api.url().to_string()),
            Some(Backend::Real(cp)) => Some(cp.url().to_string()),
            _ => None,
        }
    }

    /// `true` when running against an existing cluster (`E2E_KUBECONFIG`).
    pub fn is_existing_cluster(&self) -> bool {
        matches!(self.backend, Some(Backend::Existing))
    }

    /// The pod (name, namespace) that node `n`'s product process runs as.
    pub fn pod_of(&self, n: &LabNode) -> (String, &'static str) {
        match self.opts.stack {
            Stack::FrrK8s => (format!("frr-k8s-{}", n.name), FRRK8S_NS),
            _ => (format!("speaker-{}", n.name), METALLB_NS),
        }
    }

    /// Which API server this lab runs (`None` for an existing cluster).
    pub fn api_kind(&self) -> Option<ApiKind> {
        match self.backend {
            Some(Backend::Test(_)) => Some(ApiKind::Test),
            Some(Backend::Real(_)) => Some(ApiKind::Real),
            _ => None,
        }
    }

    pub fn options(&self) -> &LabOptions {
        &self.opts
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn log_dir(&self) -> &Path {
        self.logs.path()
    }

    /// The external FRR's log file.
    pub fn ext_log_path(&self) -> PathBuf {
        self.logs.path().join("frr").join("ext.log")
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Spawns a task on the lab's runtime (multi-threaded: it runs between calls too); it
    /// ends with the lab.
    pub fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f);
    }

    /// Runs a future on the lab's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn node(&self, k: usize) -> &LabNode {
        &self.nodes[k - 1]
    }

    pub fn node_mut(&mut self, k: usize) -> &mut LabNode {
        &mut self.nodes[k - 1]
    }

    /// Every node's IPv4 address, sorted (the expected ECMP next-hop set).
    pub fn all_node_v4(&self) -> Vec<String> {
        let mut v: Vec<String> = self.nodes.iter().map(|n| n.v4.clone()).collect();
        v.sort();
        v
    }

    // ---------------------------------------------------------------- processes

    fn start_processes(&mut self) -> anyhow::Result<()> {
        let kc = self.kubeconfig_of("controller");
        let speaker_kc = self.kubeconfig_of("speaker");
        let frrk8s_kc = self.kubeconfig_of("frr-k8s");
        match self.opts.stack {
            Stack::Nothing => {}
            Stack::Full => {
                let bin = bins::ensure("metallb-controller")?;
                let args = vec![
                    "--kubeconfig".into(),
                    kc.clone(),
                    "--namespace".into(),
                    METALLB_NS.into(),
                    "--webhook-mode".into(),
                    "disabled".into(),
                    "--admin-addr".into(),
                    "127.0.0.1:0".into(),
                    "--pod-name".into(),
                    CONTROLLER_POD.into(),
                    // as the chart sets them: the controller creates the speakers'
                    // memberlist Secret (no Deployment here: it gets no owner)
                    "--ml-secret-name".into(),
                    "metallb-memberlist".into(),
                    "--deployment".into(),
                    "metallb-controller".into(),
                ];
                self.controller = Some(Managed::start(
                    "controller",
                    &bin,
                    args,
                    self.logs.path().join("controller.log"),
                )?);
                let bin = bins::ensure("metallb-speaker")?;
                // The speakers' membership runs on each node's LAN address, authenticated
                // with one key as the chart's memberlist Secret provides it. Not with a
                // VRF on eth0: the address is not reachable from the default VRF there.
                let ml_key = self.logs.path().join("ml-secretkey");
                std::fs::write(&ml_key, "bWV0YWxsYi1yczplMmU=")?;
                let membership = self.opts.node_vrf.is_none();
                for n in &self.nodes {
                    let mut args = vec![
                        "--kubeconfig".into(),
                        speaker_kc.clone(),
                        "--node-name".into(),
                        n.name.clone(),
                        "--namespace".into(),
                        METALLB_NS.into(),
                        "--frr-pathspace".into(),
                        n.frr.name().to_string(),
                        "--admin-addr".into(),
                        "127.0.0.1:0".into(),
                        "--pod-name".into(),
                        self.pod_of(n).0,
                        // where the speaker writes metallb-<node> and its frr-k8s reads
                        "--frrk8s-namespace".into(),
                        FRRK8S_NS.into(),
                        // L2 answers inside the node's namespace, on the eth0 bridged to the
                        // external router's br0 (never on the host's own interfaces)
                        "--l2-netns".into(),
                        format!("/run/netns/{}", n.lan_netns().name()),
                    ];
                    if membership {
                        args.extend([
                            "--ml-bind-addr".into(),
                            n.v4.clone(),
                            "--ml-secret-key-path".into(),
                            ml_key.display().to_string(),
                        ]);
                    }
                    args.extend(frr_driver_args(&n.frr));
                    args.extend(self.opts.speaker_args.iter().cloned());
                    self.speakers.push(Some(Managed::start(
                        &format!("speaker-{}", n.name),
                        &bin,
                        args,
                        self.logs.path().join(format!("speaker-{}.log", n.name)),
                    )?));
                }
            }
            Stack::FrrK8s => {
                let bin = bins::ensure("frr-k8s")?;
                for n in &self.nodes {
                    let mut args = vec![
                        "--kubeconfig".into(),
                        frrk8s_kc.clone(),
                        "--node-name".into(),
                        n.name.clone(),
                        "--namespace".into(),
                        FRRK8S_NS.into(),
                        "--frr-pathspace".into(),
                        n.frr.name().to_string(),
                        "--admin-addr".into(),
                        "127.0.0.1:0".into(),
                        "--poll-interval-ms".into(),
                        "250".into(),
                        "--pod-name".into(),
                        self.pod_of(n).0,
                    ];
                    args.extend(frr_driver_args(&n.frr));
                    args.extend(self.opts.speaker_args.iter().cloned());
                    self.speakers.push(Some(Managed::start(
                        &format!("frr-k8s-{}", n.name),
                        &bin,
                        args,
                        self.logs.path().join(format!("frr-k8s-{}.log", n.name)),
                    )?));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        self.check_processes()
    }

    /// Name and PID of every running product process (controller, speakers).
    pub fn product_pids(&self) -> Vec<(String, u32)> {
        (self.controller.iter())
            .chain(self.speakers.iter().flatten())
            .filter_map(|m| Some((m.name().to_string(), m.pid()?)))
            .collect()
    }

    /// Fails when a product process has exited.
    pub fn check_processes(&mut self) -> anyhow::Result<()> {
        let mut dead = Vec::new();
        for m in self
            .controller
            .iter_mut()
            .chain(self.speakers.iter_mut().flatten())
        {
            if !m.is_running() {
                dead.push(format!(
                    "{} exited; log tail:\n{}",
                    m.name(),
                    m.log_tail(30)
                ));
            }
        }
        if dead.is_empty() {
            Ok(())
        } else {
            bail!("{}", dead.join("\n"))
        }
    }

    /// Restarts the controller (SIGTERM, wait, start).
    pub fn restart_controller(&mut self) -> anyhow::Result<()> {
        self.controller
            .as_mut()
            .context("no controller in this lab")?
            .restart()
    }

    /// Kills the controller with SIGKILL and does not start it again.
    pub fn crash_controller(&mut self) -> anyhow::Result<()> {
        self.controller
            .as_mut()
            .context("no controller in this lab")?
            .crash();
        Ok(())
    }

    /// Kills node `k`'s speaker (or frr-k8s) with SIGKILL and does not start it again: it
    /// gets no chance to clean up what it wrote.
    pub fn crash_speaker(&mut self, k: usize) -> anyhow::Result<()> {
        self.speakers
            .get_mut(k - 1)
            .and_then(Option::as_mut)
            .context("no speaker for that node")?
            .crash();
        Ok(())
    }

    /// Stops node `k`'s speaker (or frr-k8s) gracefully (SIGTERM, then SIGKILL after the
    /// grace period) and does not start it again.
    pub fn stop_speaker(&mut self, k: usize) -> anyhow::Result<()> {
        self.speakers
            .get_mut(k - 1)
            .and_then(Option::as_mut)
            .context("no speaker for that node")?
            .stop();
        Ok(())
    }

    /// Restarts node `k`'s speaker (or frr-k8s).
    pub fn restart_speaker(&mut self, k: usize) -> anyhow::Result<()> {
        self.speakers
            .get_mut(k - 1)
            .and_then(Option::as_mut)
            .context("no speaker for that node")?
            .restart()
    }

    /// Restarts node `k`'s FRR (all daemons; it comes back with the empty startup config,
    /// and the speaker must notice and apply its configuration again).
    pub fn restart_node_frr(&mut self, k: usize) -> anyhow::Result<()> {
        self.node_mut(k).frr.restart().map_err(anyhow::Error::from)
    }

    /// Sets node `k`'s LAN link down or up (inside its namespace).
    pub fn set_node_link(&self, k: usize, up: bool) -> anyhow::Result<()> {
        let n = self.node(k);
        n.lan_netns()
            .set_link("eth0", up)
            .map_err(anyhow::Error::from)
    }

    /// How the nodes' VRF was made (`None` without `node_vrf`).
    pub fn vrf_backend(&self) -> Option<VrfBackend> {
        self.opts.node_vrf.as_ref()?;
        Some(match self.nodes.first() {
            Some(n) if n.vrf_netns.is_some() => VrfBackend::Netns,
            _ => VrfBackend::Kernel,
        })
    }

    /// PIDs of the product processes (for reports).
    pub fn process_pids(&self) -> Vec<(String, Option<u32>)> {
        self.controller
            .iter()
            .chain(self.speakers.iter().flatten())
            .map(|m| (m.name().to_string(), m.pid()))
            .collect()
    }

    /// Lines of the product processes' logs (speakers, frr-k8s) saying that FRR rejected
    /// a batch or that a read-back after an apply (at once or deferred) needed a repair,
    /// each with its process.
    pub fn frr_trouble(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in self.speakers.iter().flatten() {
            let text = std::fs::read_to_string(m.log_path()).unwrap_or_default();
            for line in text.lines().map(strip_ansi) {
                if is_frr_trouble(&line, self.opts.frr_repairs_expected) {
                    out.push(format!("{}: {line}", m.name()));
                }
            }
        }
        out
    }

    /// Prints the tail of every log (processes, external FRR, BIRD).
    pub fn dump_logs(&self, lines: usize) {
        eprintln!(
            "===== e2e lab {:?}: logs in {} =====",
            self.opts.name,
            self.logs.path().display()
        );
        for m in self.controller.iter().chain(self.speakers.iter().flatten()) {
            eprintln!("----- {} ({}) -----", m.name(), m.log_path().display());
            eprintln!("{}", m.log_tail(lines));
        }
        if self.ext.frr.is_some() {
            let p = self.ext_log_path();
            eprintln!("----- external FRR ({}) -----", p.display());
            eprintln!("{}", tail(&p, lines));
        }
        if self.bird.is_some() {
            let p = self.logs.path().join("bird.log");
            eprintln!("----- BIRD -----\n{}", tail(&p, lines));
        }
        for n in &self.nodes {
            if let Ok(rc) = n.frr.running_config() {
                eprintln!("----- {} running-config -----\n{rc}", n.name);
            }
        }
    }

    // ---------------------------------------------------------------- Kubernetes

    fn resource(
        &self,
        api_version: &str,
        kind: &str,
    ) -> anyhow::Result<(ApiResource, ApiCapabilities)> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(r) = self
            .resources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(r.clone());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let r = self
            .rt
            .block_on(kube::discovery::pinned_kind(&self.client, &gvk))
            .with_context(|| format!("discovering {api_version} {kind}"))?;
        self.resources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, r.clone());
        Ok(r)
    }

    fn dyn_api(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
    ) -> anyhow::Result<Api<DynamicObject>> {
        let (ar, caps) = self.resource(api_version, kind)?;
        Ok(match caps.scope {
            Scope::Namespaced => {
                Api::namespaced_with(self.client.clone(), ns.unwrap_or(APP_NS), &ar)
            }
            Scope::Cluster => Api::all_with(self.client.clone(), &ar),
        })
    }

    /// Server-side applies one object (created when missing); returns what the server
    /// stored.
    pub fn apply(&self, obj: Value) -> anyhow::Result<Value> {
        let (av, kind, ns, name) = ident(&obj)?;
        let api = self.dyn_api(&av, &kind, ns.as_deref())?;
        let pp = PatchParams::apply("metallb-e2e").force();
        let out = self
            .rt
            .block_on(api.patch(&name, &pp, &Patch::Apply(&obj)))
            .with_context(|| format!("applying {kind} {}{name}", ns_prefix(&ns)))?;
        Ok(serde_json::to_value(out)?)
    }

    /// Applies every document of a multi-document YAML text.
    pub fn apply_yaml(&self, text: &str) -> anyhow::Result<()> {
        for doc in text.split("\n---") {
            if doc.trim().is_empty() {
                continue;
            }
            let v: Value = serde_yaml::from_str(doc).context("parsing YAML")?;
            if !v.is_null() {
                self.apply(v)?;
            }
        }
        Ok(())
    }

    /// Merge-patches the status subresource.
    pub fn patch_status(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        patch: Value,
    ) -> anyhow::Result<()> {
        let api = self.dyn_api(api_version, kind, ns)?;
        self.rt
            .block_on(api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)))
            .with_context(|| format!("patching the status of {kind} {name}"))?;
        Ok(())
    }

    /// Merge-patches an object.
    pub fn patch(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        patch: Value,
    ) -> anyhow::Result<Value> {
        let api = self.dyn_api(api_version, kind, ns)?;
        let out = self
            .rt
            .block_on(api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)))
            .with_context(|| format!("patching {kind} {name}"))?;
        Ok(serde_json::to_value(out)?)
    }

    /// Reads an object; `None` when it does not exist.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> anyhow::Result<Option<Value>> {
        let api = self.dyn_api(api_version, kind, ns)?;
        let out = self
            .rt
            .block_on(api.get_opt(name))
            .with_context(|| format!("reading {kind} {name}"))?;
        Ok(out.map(serde_json::to_value).transpose()?)
    }

    /// Lists objects (all namespaces when `ns` is `None` for namespaced kinds).
    pub fn list(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
    ) -> anyhow::Result<Vec<Value>> {
        let (ar, caps) = self.resource(api_version, kind)?;
        let api: Api<DynamicObject> = match (caps.scope, ns) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        };
        let out = self
            .rt
            .block_on(api.list(&Default::default()))
            .with_context(|| format!("listing {kind}"))?;
        out.items
            .into_iter()
            .map(|o| serde_json::to_value(o).map_err(anyhow::Error::from))
            .collect()
    }

    /// Deletes an object (no error when it does not exist).
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> anyhow::Result<()> {
        self.delete_with(api_version, kind, ns, name, &DeleteParams::default())
    }

    /// Deletes a stand-in pod at once (grace period 0): without a kubelet nothing would
    /// ever confirm a graceful pod deletion.
    pub fn delete_pod(&self, ns: &str, name: &str) -> anyhow::Result<()> {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        self.delete_with("v1", "Pod", Some(ns), name, &dp)
    }

    fn delete_with(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        dp: &DeleteParams,
    ) -> anyhow::Result<()> {
        let api = self.dyn_api(api_version, kind, ns)?;
        match self.rt.block_on(api.delete(name, dp)) {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(anyhow::Error::from(e).context(format!("deleting {kind} {name}"))),
        }
    }

    /// The Service's load-balancer IPs (`status.loadBalancer.ingress`).
    pub fn service_ips(&self, name: &str) -> Vec<String> {
        self.get("v1", "Service", Some(APP_NS), name)
            .ok()
            .flatten()
            .map(|s| objects::ingress_ips(&s))
            .unwrap_or_default()
    }

    /// Waits until the Service has `count` load-balancer IPs.
    pub fn wait_service_ips(
        &self,
        name: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<String>> {
        let (ips, _) = wait_until_some(
            &format!("Service {APP_NS}/{name} to get {count} load-balancer IP(s)"),
            timeout,
            || {
                let ips = self.service_ips(name);
                (ips.len() >= count).then_some(ips)
            },
        )?;
        Ok(ips)
    }

    /// Creates a LoadBalancer Service and its EndpointSlice.
    pub fn create_service(
        &self,
        name: &str,
        local: bool,
        endpoints: &[objects::Endpoint],
    ) -> anyhow::Result<()> {
        self.apply(objects::lb_service(name, local))?;
        self.apply(objects::endpoint_slice(name, endpoints))?;
        Ok(())
    }

    /// Creates LoadBalancer Services `names` (Cluster traffic policy, no NodePorts: the
    /// API server's NodePort range holds 2,768, and MetalLB needs none), each with an
    /// EndpointSlice of `endpoints`, `in_flight` at a time: what a deployment tool does, and
    /// ~30x faster than one after the other on the real API server.
    pub fn create_services_at_once(
        &self,
        names: &[String],
        endpoints: &[objects::Endpoint],
        in_flight: usize,
    ) -> anyhow::Result<()> {
        self.create_typed_services_at_once("LoadBalancer", names, endpoints, in_flight)
    }

    /// [`Lab::create_services_at_once`] with Services of `service_type` (`ClusterIP`: what
    /// the product does not act on, to measure the API server's own pace).
    pub fn create_typed_services_at_once(
        &self,
        service_type: &str,
        names: &[String],
        endpoints: &[objects::Endpoint],
        in_flight: usize,
    ) -> anyhow::Result<()> {
        use futures::TryStreamExt as _;
        use k8s_openapi::api::core::v1::Service;
        use k8s_openapi::api::discovery::v1::EndpointSlice;
        use kube::api::PostParams;
        let services: Api<Service> = Api::namespaced(self.client.clone(), APP_NS);
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), APP_NS);
        self.rt.block_on(
            futures::stream::iter(names.iter().map(Ok::<_, anyhow::Error>))
                .try_for_each_concurrent(in_flight.max(1), |name| {
                    let (services, slices) = (services.clone(), slices.clone());
                    async move {
                        let mut svc = objects::lb_service(name, false);
                        svc["spec"]["type"] = service_type.into();
                        match service_type {
                            "LoadBalancer" => {
                                svc["spec"]["allocateLoadBalancerNodePorts"] = false.into()
                            }
                            _ => {
                                let spec = svc["spec"].as_object_mut().expect("a spec");
                                spec.remove("externalTrafficPolicy");
                            }
                        }
                        let svc: Service = serde_json::from_value(svc)?;
                        let slice: EndpointSlice =
                            serde_json::from_value(objects::endpoint_slice(name, endpoints))?;
                        let pp = PostParams::default();
                        services
                            .create(&pp, &svc)
                            .await
                            .with_context(|| format!("creating Service {name}"))?;
                        slices
                            .create(&pp, &slice)
                            .await
                            .with_context(|| format!("creating the EndpointSlice of {name}"))?;
                        Ok(())
                    }
                }),
        )
    }

    /// Endpoints on every node, all serving.
    pub fn endpoints_everywhere(&self, service_index: u8) -> Vec<objects::Endpoint> {
        self.nodes
            .iter()
            .map(|n| {
                objects::Endpoint::new(
                    &n.name,
                    &format!("100.64.{}.{}", n.index, service_index.max(1)),
                    true,
                )
            })
            .collect()
    }

    // ---------------------------------------------------------------- L2 client

    /// The external router's namespace: on the nodes' LAN (its `br0`), the L2 client.
    fn l2_client(&self) -> anyhow::Result<&Netns> {
        self.ext
            .netns
            .as_ref()
            .context("no external router namespace (existing cluster)")
    }

    /// Runs `ip ARGS` in the L2 client's namespace (the external router's), e.g. a route
    /// that puts a larger Service range on `br0`.
    pub fn ext_ip(&self, args: &[&str]) -> anyhow::Result<String> {
        Ok(self.l2_client()?.ip(args)?)
    }

    /// The external router's kernel neighbor entry for `ip` on `br0`: the MAC it resolved,
    /// if it has one.
    pub fn ext_neighbor(&self, ip: &str) -> Option<String> {
        let out = self
            .l2_client()
            .ok()?
            .ip(&["neigh", "show", "to", ip, "dev", "br0"])
            .ok()?;
        let mut words = out.split_whitespace();
        words.find(|w| *w == "lladdr")?;
        words.next().map(str::to_string)
    }

    /// Make the external router's kernel resolve `ip` (ARP or NDP): a UDP datagram sent
    /// from inside its namespace.
    pub fn ext_resolve(&self, ip: &str) -> anyhow::Result<()> {
        let path = std::path::PathBuf::from("/run/netns").join(self.l2_client()?.name());
        let ip: std::net::IpAddr = ip.parse().context("not an IP")?;
        std::thread::spawn(move || -> anyhow::Result<()> {
            metallb_rawsock::enter_netns(&path)?;
            let any: std::net::IpAddr = match ip {
                std::net::IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                std::net::IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
            };
            let s = std::net::UdpSocket::bind((any, 0))?;
            // an unanswered resolution makes the send fail or vanish: only the neighbor
            // table counts
            let _ = s.send_to(b"resolve", (ip, 9));
            Ok(())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("resolver thread panicked"))?
    }

    /// Sets the `Ready` condition of a Node (`ns` `None`) or Pod (what a kubelet would
    /// report; the lab has none), replacing its conditions.
    pub fn set_ready(
        &self,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        ready: bool,
    ) -> anyhow::Result<()> {
        let status = if ready { "True" } else { "False" };
        self.patch_status(
            "v1",
            kind,
            ns,
            name,
            serde_json::json!({"status": {"conditions": [{
                // fields Node and Pod conditions both have
                "type": "Ready", "status": status, "reason": "E2E",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }]}}),
        )
    }

    /// Asks until the external router resolves `ip` to `mac`; how long that took.
    pub fn wait_ext_resolves(
        &self,
        ip: &str,
        mac: &str,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        self.wait_ext_entry(ip, mac, timeout, true)
    }

    /// Waits, without asking, until the external router's entry for `ip` says `mac` (a
    /// takeover's gratuitous announcements moved it); how long that took.
    pub fn wait_ext_neighbor(
        &self,
        ip: &str,
        mac: &str,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        self.wait_ext_entry(ip, mac, timeout, false)
    }

    fn wait_ext_entry(
        &self,
        ip: &str,
        mac: &str,
        timeout: Duration,
        ask: bool,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if self.ext_neighbor(ip).as_deref() == Some(mac) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                anyhow::bail!(
                    "the router's entry for {ip} is not {mac} after {timeout:?} (entry: {:?}, asked: {ask})",
                    self.ext_neighbor(ip)
                );
            }
            if ask {
                self.ext_resolve(ip)?;
                std::thread::sleep(Duration::from_millis(20));
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Deletes a Service and its EndpointSlice.
    pub fn delete_service(&self, name: &str) -> anyhow::Result<()> {
        self.delete("v1", "Service", Some(APP_NS), name)?;
        self.delete(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            Some(APP_NS),
            &format!("{name}-e2e"),
        )
    }

    /// The seed configuration: pool `name` with `range`, a BGPPeer to the external router
    /// and a BGPAdvertisement for every pool.
    pub fn apply_seed_config(&self, range: &str) -> anyhow::Result<()> {
        self.apply(objects::ip_pool("seed", &[range]))?;
        self.apply(objects::bgp_peer(
            "ext",
            self.opts.ext.node_asn,
            self.opts.ext.asn,
            self.opts.ext.peer_address(),
            json!({}),
        ))?;
        self.apply(objects::bgp_advertisement("seed", json!({})))?;
        Ok(())
    }

    // ---------------------------------------------------------------- routing waits

    /// Waits until the external router forwards `prefix` to exactly `expected` (sorted);
    /// returns the time it took. An empty `expected` waits for the route to be gone.
    pub fn wait_ext_nexthops(
        &self,
        prefix: &str,
        expected: &[String],
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        // IPv4: the router's kernel table (cheap to read); IPv6: its BGP multipath set (the
        // kernel shows link-local next hops)
        let read = || match is_v6_prefix(prefix) {
            false => {
                (self.ext.fib_v4_nexthops(prefix)).unwrap_or_else(|| self.ext.nexthops(prefix))
            }
            true => self.ext.nexthops(prefix),
        };
        wait_nexthops("the external router", read, prefix, expected, timeout)
    }

    /// [`Lab::wait_ext_nexthops`] for BIRD (IPv4), read from its namespace's kernel table.
    pub fn wait_bird_nexthops(
        &self,
        prefix: &str,
        expected: &[String],
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let bird = self.bird.as_ref().context("the lab has no BIRD")?;
        let read = || bird.kernel_nexthops(prefix);
        wait_nexthops("BIRD", read, prefix, expected, timeout)
    }
}

/// Polls `read` every 10 ms until it returns `expected` (in any order).
fn wait_nexthops(
    router: &str,
    read: impl Fn() -> Vec<String>,
    prefix: &str,
    expected: &[String],
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let mut want = expected.to_vec();
    want.sort();
    let start = Instant::now();
    let last = loop {
        let now = read();
        if now == want {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            break now;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    bail!("after {timeout:?} {router} forwards {prefix} to {last:?}, expected {want:?}")
}

fn is_v6_prefix(prefix: &str) -> bool {
    prefix.contains(':')
}

/// The ServiceAccount of the lab's stand-in pods.
const POD_SERVICE_ACCOUNT: &str = "metallb-e2e";
/// The controller's stand-in pod (in the MetalLB namespace).
pub const CONTROLLER_POD: &str = "controller";

/// File name of the API server's audit log in the lab's log directory.
const AUDIT_LOG: &str = "audit.log";

/// Every request of a ServiceAccount, at Metadata level (who, verb, resource, name,
/// response code): what the least-privilege test compares with the chart's grants.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: [system:serviceaccounts]
  - level: None
";

/// A real control plane with every CRD installed. kube-controller-manager runs for the
/// garbage collector, without the node lifecycle controller: there is no kubelet, so it
/// would mark every Node unreachable after 40 s and evict the stand-in pods.
async fn start_control_plane(logs: &Path) -> anyhow::Result<ControlPlane> {
    let assets = envtest::assets()?.map_err(|why| anyhow::anyhow!("the real API server: {why}"))?;
    let policy = logs.join("audit-policy.yaml");
    std::fs::write(&policy, AUDIT_POLICY)?;
    let cp = ControlPlane::start(
        &assets,
        envtest::Options {
            controller_manager: true,
            controllers: Some("*,-node-lifecycle-controller".into()),
            apiserver_args: vec![
                format!("--audit-policy-file={}", policy.display()),
                format!("--audit-log-path={}", logs.join(AUDIT_LOG).display()),
                "--audit-log-format=json".into(),
                "--audit-log-mode=blocking".into(),
            ],
        },
    )
    .await?;
    let warnings = envtest::install_crds(&cp.client(), &metallb_api::crds::all()).await?;
    if !warnings.is_empty() {
        bail!("the CRDs installed with warnings: {warnings:?}");
    }
    Ok(cp)
}

/// A bound token for `ns/sa` (TokenRequest), valid for a day.
async fn service_account_token(
    client: &kube::Client,
    ns: &str,
    sa: &str,
) -> anyhow::Result<String> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), ns);
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![envtest::SA_ISSUER.to_string()],
            expiration_seconds: Some(86_400),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = api
        .create_token_request(sa, &kube::api::PostParams::default(), &req)
        .await?;
    out.status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .context("the API server returned no token")
}

fn ns_prefix(ns: &Option<String>) -> String {
    ns.as_ref().map(|n| format!("{n}/")).unwrap_or_default()
}

/// apiVersion, kind, namespace, name of a manifest.
fn ident(obj: &Value) -> anyhow::Result<(String, String, Option<String>, String)> {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).map(str::to_string);
    Ok((
        s("/apiVersion").context("manifest without apiVersion")?,
        s("/kind").context("manifest without kind")?,
        s("/metadata/namespace"),
        s("/metadata/name").context("manifest without metadata.name")?,
    ))
}

impl Drop for Lab {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking {
            self.dump_logs(80);
        }
        let trouble = match panicking {
            true => Vec::new(),
            false => self.frr_trouble(),
        };
        // kept on request, passed or failed (timelines: every process logs with timestamps)
        if std::env::var_os("E2E_KEEP_LOGS").is_some() {
            self.logs.disable_cleanup(true);
            eprintln!("e2e: logs kept in {}", self.logs.path().display());
        }
        // product processes first (a speaker withdraws on SIGTERM while FRR still runs)
        for m in self.speakers.iter_mut().flatten() {
            m.stop();
        }
        if let Some(c) = self.controller.as_mut() {
            c.stop();
        }
        match self.backend.take() {
            Some(Backend::Test(api)) => self.rt.block_on(api.shutdown()),
            Some(Backend::Real(cp)) => drop(cp),
            _ => {}
        }
        // the rest (BIRD, external FRR, node FRRs, namespaces, temp dirs) drops in field
        // order, also when this panics
        assert!(
            trouble.is_empty(),
            "e2e lab {:?}: FRR rejected a batch or an apply needed a repair:\n{}",
            self.opts.name,
            trouble.join("\n")
        );
    }
}

/// Whether a product log line (colour codes stripped) says that FRR rejected a batch, that
/// its running configuration still differed after a repair, or (unless `repairs_expected`)
/// that the driver repaired it (its warning before every repair, at an apply or a deferred
/// verification).
fn is_frr_trouble(line: &str, repairs_expected: bool) -> bool {
    (line.contains(frr_k8s::frr::apply::LOG_REPAIRING) && !repairs_expected)
        || line.contains(frr_k8s::node::LOG_REJECTED)
        || line.contains(frr_k8s::node::LOG_STILL_DIFFERS)
}

/// `line` without terminal colour codes (the product logs with them when asked).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, up to a final letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_stripped() {
        let line = "\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m applied \u{1b}[3mrepaired\u{1b}[0m\u{1b}[2m=\u{1b}[0mtrue";
        assert_eq!(strip_ansi(line), "2026  INFO applied repaired=true");
    }

    #[test]
    fn the_drivers_warnings_are_trouble_and_an_expected_repair_is_not() {
        let repair = format!(
            "2026-12-07T12:49:00.865677Z  WARN frr_k8s::frr::apply: {} differs=[\"no ip prefix-list a\"]",
            frr_k8s::frr::apply::LOG_REPAIRING
        );
        let rejected = format!(
            "2026-12-07T13:08:52.594652Z  WARN frr_k8s::node: {} error=configuration rejected",
            frr_k8s::node::LOG_REJECTED
        );
        let unconverged = format!("WARN frr_k8s::node: {}", frr_k8s::node::LOG_STILL_DIFFERS);
        for line in [&repair, &rejected, &unconverged] {
            assert!(is_frr_trouble(line, false), "{line}");
        }
        assert!(!is_frr_trouble(&repair, true));
        assert!(is_frr_trouble(&rejected, true) && is_frr_trouble(&unconverged, true));
        let applied = "INFO frr_k8s::node: FRR configuration applied commands=5 repaired=false";
        assert!(!is_frr_trouble(applied, false));
    }

    #[test]
    fn routes_of_ip_route_show_with_their_next_hops() {
        let out = "198.18.0.1 nhid 12 proto bgp metric 20 \n\
                   \tnexthop via 192.0.2.11 dev eth1 weight 1 \n\
                   \tnexthop via 192.0.2.12 dev eth1 weight 1 \n\
                   198.18.0.2 nhid 13 via 192.0.2.11 dev eth1 proto bgp metric 20 \n\
                   192.0.2.0/24 dev eth1 proto kernel scope link src 192.0.2.1 \n";
        let blocks: Vec<String> = route_blocks(out).collect();
        assert_eq!(blocks.len(), 3, "{blocks:?}");
        let via: Vec<usize> = blocks.iter().map(|b| vias(b).len()).collect();
        assert_eq!(via, vec![2, 1, 0]);
    }
}
