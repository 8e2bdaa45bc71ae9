//! The seed demo: a LoadBalancer Service gets an IP from a pool and every node announces
//! it over BGP; an external router ends up with one ECMP route through all nodes.
//!
//! Runs as root on a machine with FRR (`demo.sh` at the repository root installs it and
//! builds the binaries). Everything it creates (network namespaces, FRR instances,
//! processes, temp dirs) is removed before it exits, also on failure.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use metallb_e2e::objects::{host_prefix, APP_NS, METALLB_NS};
use metallb_e2e::router::EXT_V4;
use metallb_e2e::{FrrQueries, Lab, LabOptions, Stack};

const NODES: usize = 3;
const POOL: &str = "198.18.0.0/24";
const T: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    if !metallb_netlab::is_root() {
        eprintln!(
            "demo: needs root (it creates network namespaces and runs FRR in them).\n\
             Run it as root, e.g. `sudo ./demo.sh`. Nothing was created."
        );
        return ExitCode::from(2);
    }
    if let Some(reason) = metallb_netlab::frr_unavailable_reason() {
        eprintln!(
            "demo: {reason}.\nInstall FRR first (`apt-get install -y frr frr-pythontools`; \
             demo.sh does it). Nothing was created."
        );
        return ExitCode::from(2);
    }
    let started = Instant::now();
    match run() {
        Ok(()) => {
            println!(
                "\nDone in {:.1} s: everything the demo created has been removed.",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\ndemo FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn run() -> anyhow::Result<()> {
    let mut opts = LabOptions::new("demo");
    opts.nodes = NODES;
    opts.stack = Stack::Full;
    println!("Building the lab ...");
    let lab = Lab::start(opts)?;
    let result = demo(&lab);
    if result.is_err() {
        lab.dump_logs(40);
    }
    println!("\nCleaning up (speakers withdraw, processes stop, namespaces go) ...");
    drop(lab);
    result
}

fn demo(lab: &Lab) -> anyhow::Result<()> {
    println!(
        "  {} Kubernetes nodes: network namespaces with their own FRR (AS 64512):",
        lab.nodes.len()
    );
    for n in &lab.nodes {
        println!(
            "    {:<6} {:<11} namespace {:<14} FRR pathspace {}",
            n.name,
            n.v4,
            n.netns.name(),
            n.frr.name()
        );
    }
    println!(
        "  external router: FRR, AS 64513, {EXT_V4}, namespace {} (the nodes' upstream)",
        lab.ext.pathspace()
    );
    println!(
        "  Kubernetes API: {} (in-memory test API server; kubeconfig {})",
        lab.api_url().unwrap_or_default(),
        lab.kubeconfig().display()
    );
    println!(
        "  running: metallb-controller and one metallb-speaker per node (pids {:?})",
        lab.process_pids()
            .iter()
            .filter_map(|(_, p)| *p)
            .collect::<Vec<_>>()
    );

    println!("\nStep 1: configure MetalLB (namespace {METALLB_NS})");
    lab.apply_seed_config(POOL)?;
    println!("  IPAddressPool    seed  addresses: [{POOL}]");
    println!("  BGPPeer          ext   myASN 64512, peerASN 64513, peerAddress {EXT_V4}");
    println!("  BGPAdvertisement seed  (every pool, every peer)");

    println!("\nStep 2: create Service {APP_NS}/web (type LoadBalancer, endpoints on every node)");
    let t = Instant::now();
    lab.create_service("web", false, &lab.endpoints_everywhere(1))?;
    let ip = lab.wait_service_ips("web", 1, T)?[0].clone();
    let assigned = t.elapsed();
    println!(
        "  the controller assigned {ip} from pool 'seed' ({} after creation)",
        ms(assigned)
    );

    let prefix = host_prefix(&ip);
    lab.wait_ext_nexthops(&prefix, &lab.all_node_v4(), T)?;
    let total = t.elapsed();
    let hops = lab.ext.nexthops(&prefix);
    println!(
        "\nStep 3: the external router learned {prefix} over BGP ({} after the Service was \
         created; includes the first BGP session set-up)",
        ms(total)
    );
    println!("  next hops (ECMP, one per node): {}", hops.join(", "));
    for p in lab.ext.bgp_paths(&prefix) {
        println!(
            "    path via {:<11} AS path {:<6} {}",
            p.nexthop,
            p.as_path,
            if p.bestpath {
                "best"
            } else if p.multipath {
                "multipath"
            } else {
                ""
            }
        );
    }
    println!("  the external router's kernel forwards it like this:");
    for line in lab.ext.kernel_route(&prefix).lines() {
        println!("    {}", line.trim_end());
    }

    println!("\nStep 4: a second Service, now that sessions are up");
    let t = Instant::now();
    lab.create_service("api", false, &lab.endpoints_everywhere(2))?;
    let ip2 = lab.wait_service_ips("api", 1, T)?[0].clone();
    lab.wait_ext_nexthops(&host_prefix(&ip2), &lab.all_node_v4(), T)?;
    println!(
        "  {APP_NS}/api got {ip2}; the external router routes it via all {} nodes {} after creation",
        lab.nodes.len(),
        ms(t.elapsed())
    );

    println!("\nStep 5: delete Service {APP_NS}/web");
    let t = Instant::now();
    lab.delete_service("web")?;
    lab.wait_ext_nexthops(&prefix, &[], T)?;
    println!(
        "  {prefix} was withdrawn from the external router {} after the delete",
        ms(t.elapsed())
    );
    let still = lab.ext.nexthops(&host_prefix(&ip2));
    anyhow::ensure!(
        still == lab.all_node_v4(),
        "{ip2} should still be routed via every node, got {still:?}"
    );
    println!(
        "  {ip2} ({APP_NS}/api) is still routed via {}",
        still.join(", ")
    );
    Ok(())
}
