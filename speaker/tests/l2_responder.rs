//! The L2 responder in network namespaces: a client on a bridge with two "nodes", each
//! running a responder in its own namespace. The client's kernel neighbor table (no tool
//! of ours) says which node answers for the Service IPs, over ARP and over NDP, and how
//! fast a takeover moves it.
//!
//! ```text
//!   l2a (node1) eth0 ──┐
//!                      ├── br0  l2c (client) 192.0.2.1/24 2001:db8::1/64
//!   l2b (node2) eth0 ──┘
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metallb_netlab::{skip_or_fail, veth, which, Netns};
use metallb_speaker::l2::links::DEFAULT_EXCLUDES;
use metallb_speaker::l2::responder::{run, Counters, IpLabel, Settings, Wanted};
use metallb_speaker::l2::Interfaces;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use regex::RegexSet;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const V4: &str = "192.0.2.200";
const V6: &str = "2001:db8::200";

fn netns_path(ns: &Netns) -> PathBuf {
    PathBuf::from("/run/netns").join(ns.name())
}

fn mac_of(ns: &Netns, dev: &str) -> String {
    ns.run(&["cat", &format!("/sys/class/net/{dev}/address")])
        .expect("mac")
        .trim()
        .to_string()
}

/// The client kernel's neighbor entry for `ip` on br0 (its MAC), if it has a usable one.
fn neighbor(client: &Netns, ip: &str) -> Option<String> {
    let out = client.ip(&["neigh", "show", "to", ip, "dev", "br0"]).ok()?;
    let mut words = out.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_string)
}

/// Make the client's kernel resolve `ip`: a UDP datagram from inside its namespace.
fn poke(client: &Netns, ip: &str) {
    let path = netns_path(client);
    let ip: IpAddr = ip.parse().expect("ip");
    std::thread::spawn(move || {
        metallb_rawsock::enter_netns(&path).expect("enter client netns");
        let any: IpAddr = match ip {
            IpAddr::V4(_) => "0.0.0.0".parse().unwrap(),
            IpAddr::V6(_) => "::".parse().unwrap(),
        };
        let s = UdpSocket::bind((any, 0)).expect("udp");
        let _ = s.send_to(b"who", (ip, 9));
    })
    .join()
    .expect("poke thread");
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// The client asks for `ip` until its kernel's entry says `mac`; how long that took.
async fn resolves(client: &Netns, ip: &str, mac: &str, timeout: Duration) -> Duration {
    wait_for(&format!("{ip} resolves to {mac}"), timeout, || {
        if neighbor(client, ip).as_deref() == Some(mac) {
            return true;
        }
        poke(client, ip);
        false
    })
    .await
}

/// A counter summed over the two Service IPs.
fn total(f: &Family<IpLabel, Counter>) -> u64 {
    [V4, V6]
        .iter()
        .map(|ip| f.get_or_create(&IpLabel { ip: ip.to_string() }).get())
        .sum()
}

/// Waits (5 s at most) until the client's entries for both Service IPs name `mac`.
async fn entries_on(client: &Netns, mac: &str, what: &str) -> Duration {
    wait_for(what, Duration::from_secs(5), || {
        [V4, V6]
            .iter()
            .all(|ip| neighbor(client, ip).as_deref() == Some(mac))
    })
    .await
}

fn wanted(ips: &[&str]) -> Wanted {
    Wanted {
        ips: Arc::new(
            ips.iter()
                .map(|ip| (ip.parse().unwrap(), Interfaces::All))
                .collect::<BTreeMap<_, _>>(),
        ),
        reannounce: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_arp_and_ndp_and_a_takeover_moves_the_neighbor_entry() {
    const TEST: &str = "answers_arp_and_ndp_and_a_takeover_moves_the_neighbor_entry";
    if !metallb_netlab::is_root() || which("ip").is_none() {
        skip_or_fail(
            TEST,
            "needs root and iproute2 (network namespaces, raw sockets)",
        );
        return;
    }
    let client = Netns::new("l2c").expect("netns");
    let nodes = [
        Netns::new("l2a").expect("netns"),
        Netns::new("l2b").expect("netns"),
    ];
    for ns in [&client, &nodes[0], &nodes[1]] {
        // no duplicate address detection: addresses (and link-locals) usable at once
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0")
            .expect("sysctl");
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0")
            .expect("sysctl");
    }
    client
        .ip(&["link", "add", "br0", "type", "bridge"])
        .expect("bridge");
    client.set_link("br0", true).expect("br0 up");
    client.add_addr("br0", "192.0.2.1/24").expect("addr");
    client.add_addr("br0", "2001:db8::1/64").expect("addr");
    for (i, node) in nodes.iter().enumerate() {
        let port = format!("p{i}");
        veth(
            node,
            "eth0",
            &[&format!("192.0.2.1{i}/24"), &format!("2001:db8::1{i}/64")],
            &client,
            &port,
            &[],
        )
        .expect("veth");
        client
            .ip(&["link", "set", &port, "master", "br0"])
            .expect("port");
    }
    let macs = [mac_of(&nodes[0], "eth0"), mac_of(&nodes[1], "eth0")];

    let stop = CancellationToken::new();
    let (tx1, rx1) = watch::channel(wanted(&[V4, V6]));
    let (tx2, rx2) = watch::channel(wanted(&[]));
    let counters = [Arc::new(Counters::default()), Arc::new(Counters::default())];
    let mut responders = Vec::new();
    let mut links = Vec::new();
    for (i, rx) in [rx1, rx2].into_iter().enumerate() {
        let (links_tx, links_rx) = watch::channel(None);
        links.push(links_rx);
        let settings = Settings {
            excludes: RegexSet::new(DEFAULT_EXCLUDES).expect("regex"),
            rescan: Duration::from_secs(10),
            netns: Some(netns_path(&nodes[i])),
        };
        responders.push(tokio::spawn(run(
            settings,
            rx,
            links_tx,
            counters[i].clone(),
            stop.clone(),
        )));
    }

    // node1 answers both families; the client asks until its kernel has an entry
    for ip in [V4, V6] {
        let took = resolves(&client, ip, &macs[0], Duration::from_secs(10)).await;
        println!("{ip}: first answer after {took:?} (responder start included)");
    }
    // the responder reports where it answers: eth0 (lo is excluded)
    for l in &links {
        let names: Vec<String> = l
            .borrow()
            .as_deref()
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        assert_eq!(names, ["eth0"]);
    }
    // (the first entries may be completed by node1's takeover announcements rather than
    // by replies: the replies are checked on node2 below, outside that race)
    let silent = |c: &Counters| total(&c.responses_sent) + total(&c.gratuitous_sent);
    assert_eq!(silent(&counters[1]), 0, "node2 stays silent");

    // The kernel ignores a new link-layer address for an entry updated less than
    // `locktime` (1 s) ago: wait that out, as a real takeover would.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // takeover: node1 releases, node2 announces; the client does not ask
    tx1.send(wanted(&[])).expect("send");
    tx2.send(wanted(&[V4, V6])).expect("send");
    let took = entries_on(&client, &macs[1], "both entries move to node2").await;
    println!("takeover: the client's neighbor entries moved after {took:?}");
    assert!(total(&counters[1].gratuitous_sent) >= 2);

    // and node2 answers new questions: flush the client's entries and ask again
    client.ip(&["neigh", "flush", "dev", "br0"]).expect("flush");
    let before = total(&counters[0].responses_sent);
    let replies = total(&counters[1].responses_sent);
    for ip in [V4, V6] {
        resolves(&client, ip, &macs[1], Duration::from_secs(5)).await;
    }
    assert_eq!(
        total(&counters[0].responses_sent),
        before,
        "node1 released the IPs: it answers no more"
    );
    assert!(
        total(&counters[1].responses_sent) >= replies + 2,
        "node2 answered the client's ARP request and neighbor solicitation"
    );

    // A partition heals: node1 was cut off, believed it alone was alive and announced
    // both IPs (the client's entries went to it), then it meets node2 again and releases
    // them silently. node2 never stopped owning them: re-announcing is what wins the
    // client back (without it, the entries would keep node1's MAC until they expire).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    tx1.send(wanted(&[V4, V6])).expect("send");
    entries_on(&client, &macs[0], "both entries move to node1").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    tx1.send(wanted(&[])).expect("send");
    let gratuitous = total(&counters[1].gratuitous_sent);
    tx2.send_modify(|w| w.reannounce += 1);
    let took = entries_on(&client, &macs[1], "both entries back on node2").await;
    println!("re-announce after a healed partition: entries back on node2 after {took:?}");
    assert!(total(&counters[1].gratuitous_sent) >= gratuitous + 2);

    stop.cancel();
    for r in responders {
        r.await.expect("join").expect("responder ends cleanly");
    }
}
