//! `metallb-speaker`: the all-in-one node process. The MetalLB speaker (BGP via frr-k8s)
//! and, unless `--external-frr-k8s`, the frr-k8s node component that drives this node's
//! FRR, in one process with one admin server.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use frr_k8s::args::FrrArgs;
use frr_k8s::metrics::FrrMetrics;
use metallb_runtime::start::start;
use metallb_runtime::{AdminArgs, ClientArgs, LogArgs, RuntimeArgs};
use metallb_speaker::allinone::{self, FrrComponent};
use metallb_speaker::bgp::SpeakerOptions;
use metallb_speaker::l2::links::{self, DEFAULT_EXCLUDES};
use metallb_speaker::l2::responder;
use metallb_speaker::members::args::MembersArgs;
use metallb_speaker::metrics::SpeakerMetrics;
use metallb_speaker::shell;

/// Announce this node's LoadBalancer IPs over BGP through frr-k8s.
#[derive(Debug, Parser)]
#[command(name = "metallb-speaker", version)]
struct Args {
    /// This node's name (set from the downward API in the DaemonSet).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,

    /// MetalLB's namespace (configuration objects, ServiceBGPStatus, ConfigurationState).
    #[arg(long, env = "METALLB_NAMESPACE", default_value = "metallb-system")]
    namespace: String,

    /// Namespace of the FRRConfigurations (frr-k8s's); default: --namespace, since the
    /// all-in-one runs both.
    #[arg(long, env = "FRRK8S_NAMESPACE")]
    frrk8s_namespace: Option<String>,

    /// Handle only Services of this load-balancer class (default: only Services without
    /// one).
    #[arg(long, env = "METALLB_LB_CLASS")]
    lb_class: Option<String>,

    /// Announce even from nodes labelled
    /// node.kubernetes.io/exclude-from-external-load-balancers.
    #[arg(long, env = "METALLB_IGNORE_EXCLUDE_LB")]
    ignore_exclude_lb: bool,

    /// The speaker's pod name: owner of its ServiceBGPStatus and ConfigurationState objects,
    /// and of the embedded frr-k8s component's BGPSessionState objects.
    #[arg(long, env = "METALLB_POD_NAME")]
    pod_name: Option<String>,

    /// Do not run the embedded frr-k8s component: only write FRRConfigurations for an
    /// frr-k8s deployed separately.
    #[arg(long, env = "METALLB_EXTERNAL_FRRK8S")]
    external_frr_k8s: bool,

    /// Withdraw every announcement of this node on SIGTERM (and wait until FRR applied it),
    /// unless graceful restart is configured on its sessions. Off by default: a restart
    /// (an upgrade, a rollout) leaves FRR announcing, and the new process takes over with
    /// no FRR command when nothing changed. Turn it on where stopping means leaving: the
    /// node is being excluded, MetalLB is being uninstalled.
    #[arg(long, env = "METALLB_WITHDRAW_ON_SHUTDOWN")]
    withdraw_on_shutdown: bool,

    /// Longest wait on SIGTERM for FRR to apply the withdrawal, in milliseconds.
    #[arg(long, env = "METALLB_SHUTDOWN_WITHDRAW_MS", default_value_t = 5000)]
    shutdown_withdraw_ms: u64,

    /// With the embedded frr-k8s (it takes this node's configuration in process): the
    /// shortest time between two writes of the metallb-<node> FRRConfiguration while
    /// changes keep coming, in milliseconds. A lone change is written at once; during a
    /// burst (1,000 Services created) the object, which then only shows what FRR already
    /// has, is rewritten at this pace instead of back to back. 0: write every change. With
    /// --external-frr-k8s every change is written at once (frr-k8s reads the object).
    #[arg(
        long,
        env = "METALLB_FRR_CONFIG_WRITE_INTERVAL_MS",
        default_value_t = 1000
    )]
    frr_config_write_interval_ms: u64,

    /// Interfaces never answered on in L2 mode: regular expressions, repeatable or
    /// comma-separated (default: upstream's metallb-excludel2 list: container, overlay and
    /// virtual devices, loopback).
    #[arg(
        long = "l2-exclude-interface",
        env = "METALLB_L2_EXCLUDE_INTERFACES",
        value_delimiter = ',',
        default_values = DEFAULT_EXCLUDES
    )]
    l2_exclude_interfaces: Vec<String>,
    /// Upstream's `excludel2.yaml` (the chart mounts the `<release>-excludel2` ConfigMap
    /// here): when it exists, its `announcedInterfacesToExclude` list is used instead of
    /// --l2-exclude-interface. Read at start.
    #[arg(
        long,
        env = "METALLB_L2_EXCLUDE_FILE",
        default_value = "/etc/metallb/excludel2.yaml"
    )]
    l2_exclude_file: PathBuf,
    /// Answer ARP/NDP and run the membership inside this network namespace (a path such as
    /// /run/netns/NAME) instead of the process's own: labs that run several nodes on one
    /// host.
    #[arg(long, env = "METALLB_L2_NETNS")]
    l2_netns: Option<PathBuf>,
    /// Label selector of the speaker Pods in --namespace: a node is an L2 candidate only
    /// while its speaker Pod runs and is not being deleted (a drain or rollout hands its
    /// IPs over before the speaker exits). Empty: Node readiness alone.
    #[arg(
        long,
        env = "METALLB_SPEAKER_POD_SELECTOR",
        default_value = "app.kubernetes.io/component=speaker"
    )]
    speaker_pod_selector: String,
    /// Do not answer ARP/NDP on this node (L2 decisions are still made; no IP is
    /// announced over L2 from here).
    #[arg(long, env = "METALLB_DISABLE_L2")]
    disable_l2: bool,
    /// Speaker membership (L2 failover on an abrupt node loss).
    #[command(flatten)]
    members: MembersArgs,
    /// The embedded frr-k8s component's FRR (unless --external-frr-k8s).
    #[command(flatten)]
    frr: FrrArgs,

    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

impl Args {
    async fn run(self) -> anyhow::Result<()> {
        let Args {
            node_name,
            namespace,
            frrk8s_namespace,
            lb_class,
            ignore_exclude_lb,
            pod_name,
            frr: frr_args,
            external_frr_k8s,
            shutdown_withdraw_ms,
            withdraw_on_shutdown,
            frr_config_write_interval_ms,
            l2_exclude_interfaces,
            l2_exclude_file,
            l2_netns,
            disable_l2,
            speaker_pod_selector,
            members,
            client,
            log,
            admin,
            runtime: _,
        } = self;
        let (excludes, excludes_from) = links::excludes(&l2_exclude_file, &l2_exclude_interfaces)
            .map_err(anyhow::Error::msg)?;
        let process = start(&log, &client, &admin, |r| {
            (SpeakerMetrics::register(r), FrrMetrics::register(r))
        })
        .await?;
        let (speaker_metrics, frr_metrics) = process.metrics;
        tracing::info!(from = %excludes_from, patterns = excludes.len(), "L2 interface exclusions");

        let frr_namespace = frrk8s_namespace.unwrap_or_else(|| namespace.clone());
        let mut settings = shell::Settings::new(&node_name, &namespace, &frr_namespace);
        settings.options = SpeakerOptions {
            load_balancer_class: lb_class.filter(|c| !c.is_empty()),
            ignore_exclude_lb,
        };
        settings.pod_name = pod_name;
        settings.withdraw_on_shutdown = withdraw_on_shutdown;
        settings.frr_write_interval = Duration::from_millis(frr_config_write_interval_ms);
        settings.speaker_pods = Some(speaker_pod_selector).filter(|s| !s.is_empty());
        settings.members = members.settings(&node_name, l2_netns.clone())?;
        settings.l2 = (!disable_l2).then(|| responder::Settings {
            excludes,
            rescan: Duration::from_secs(10),
            netns: l2_netns,
        });

        let frr = (!external_frr_k8s).then(|| FrrComponent {
            settings: frr_args.settings(&node_name, &frr_namespace),
            control: frr_args.control(),
            metrics: frr_metrics,
        });
        // the admin server keeps answering until the withdrawal is done
        allinone::run(
            process.client,
            settings,
            frr,
            process.readiness,
            speaker_metrics,
            process.shutdown,
            Duration::from_millis(shutdown_withdraw_ms),
        )
        .await
        .map(|_| ())
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.runtime.check_args {
        println!("{args:#?}");
        return Ok(());
    }
    args.runtime.clone().block_on(args.run())?
}
