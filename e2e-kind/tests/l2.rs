//! L2 mode on the full stack: metallb-controller hands out an IP from a pool advertised by
//! an L2Advertisement, every speaker elects the same node, and that node's responder
//! answers ARP and NDP on its LAN. The external router's namespace is the client on the
//! same bridge: its kernel neighbor table says which node answers.
//!
//! Runs on the test API server and on the real one. Needs root and FRR (the lab's nodes),
//! plus the control-plane assets for the real-API run; skips loudly without them outside
//! CI.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use metallb_e2e::objects::{self, ip_pool, Endpoint, METALLB_NS};
use metallb_e2e::{require_full_stack, ApiKind, Lab, LabOptions, Stack};
use metallb_speaker::l2::rank;
use metallb_testkit::envtest;
use serde_json::json;

const T: Duration = Duration::from_secs(30);
const NODES: usize = 3;

fn l2_lab(test: &str, name: &str, api: ApiKind) -> Option<Lab> {
    if !require_full_stack(test) {
        return None;
    }
    if api == ApiKind::Real {
        if let Err(why) = envtest::assets().expect("control-plane assets") {
            envtest::skip_or_fail(test, &why);
            return None;
        }
    }
    let mut o = LabOptions::new(name);
    o.stack = Stack::Full;
    o.api = api;
    o.nodes = NODES;
    Some(Lab::start(o).expect("lab"))
}

/// Node names in election order for a Service whose first IP is `ip` (all candidates
/// equal: no preferences).
fn election_order(ip: &str, names: &[String]) -> Vec<String> {
    let ip: IpAddr = ip.parse().expect("ip");
    let mut v = names.to_vec();
    v.sort_by_key(|n| rank(n, &ip));
    v
}

/// Waits until the only ServiceL2Status of Service `web` names `node` (the elected node
/// writes it; the others delete theirs).
fn wait_l2_status(lab: &Lab, node: &str) {
    wait_l2_status_of(lab, "web", node, &[]);
}

/// Waits until the only ServiceL2Status of `service` names `node` and lists `interfaces`
/// (only when the advertisements restrict them, as upstream).
fn wait_l2_status_of(lab: &Lab, service: &str, node: &str, interfaces: &[&str]) {
    metallb_netlab::wait_until(
        &format!("one ServiceL2Status for {service}, by {node}"),
        T,
        || {
            let objs = lab
                .list("metallb.io/v1beta1", "ServiceL2Status", Some(METALLB_NS))
                .unwrap_or_default();
            let mine: Vec<_> = objs
                .iter()
                .filter(|o| o["status"]["serviceName"] == service)
                .collect();
            let listed: Vec<&str> = (mine.first())
                .and_then(|o| o["status"]["interfaces"].as_array())
                .into_iter()
                .flatten()
                .filter_map(|i| i["name"].as_str())
                .collect();
            mine.len() == 1
                && mine[0]["status"]["node"] == node
                && mine[0]["status"]["serviceNamespace"] == objects::APP_NS
                && mine[0]["metadata"]["labels"]["metallb.io/node"] == node
                && listed == interfaces
        },
    )
    .unwrap_or_else(|e| {
        let objs = lab
            .list("metallb.io/v1beta1", "ServiceL2Status", Some(METALLB_NS))
            .unwrap_or_default();
        let seen: Vec<String> = (objs.iter())
            .map(|o| {
                format!(
                    "{} {} {}",
                    o["metadata"]["name"], o["metadata"]["labels"], o["status"]
                )
            })
            .collect();
        panic!("{e}; ServiceL2Status objects: {seen:#?}")
    });
}

/// The lab index of the node named `name`.
fn index_of(lab: &Lab, name: &str) -> usize {
    lab.nodes
        .iter()
        .find(|n| n.name == name)
        .expect("node")
        .index
}

/// Waits until the router's (unasked) entries for `ips` name `mac`, printing how long
/// after `start` (the `cause`) each moved.
fn wait_moved(lab: &Lab, ips: &[String], mac: &str, what: &str, cause: &str, start: Instant) {
    for ip in ips {
        lab.wait_ext_neighbor(ip, mac, T).unwrap();
        println!(
            "l2: {what}: {ip} moved to {mac} {:?} after {cause}",
            start.elapsed()
        );
    }
}

/// Waits for a core/v1 Event on Service `service` with `reason` whose message mentions
/// `node`.
fn wait_event(lab: &Lab, service: &str, reason: &str, node: &str) {
    metallb_netlab::wait_until(
        &format!("a {reason} event on {service} naming {node}"),
        T,
        || {
            let events = lab
                .list("v1", "Event", Some(objects::APP_NS))
                .unwrap_or_default();
            events.iter().any(|e| {
                e["reason"] == reason
                    && e["involvedObject"]["name"] == service
                    && e["involvedObject"]["kind"] == "Service"
                    && e["message"].as_str().is_some_and(|m| m.contains(node))
            })
        },
    )
    .unwrap();
}

fn scenario(lab: &mut Lab) {
    // the controller created the speakers' membership key, as upstream's does
    let (secret, _) = metallb_netlab::wait_until_some("the memberlist Secret", T, || {
        lab.get("v1", "Secret", Some(METALLB_NS), "metallb-memberlist")
            .ok()
            .flatten()
    })
    .unwrap();
    let key = secret["data"]["secretkey"].as_str().unwrap_or_default();
    assert!(key.len() >= 24, "a base64 key of 16 random bytes: {secret}");
    lab.apply(ip_pool(
        "lan",
        &["192.0.2.240-192.0.2.250", "2001:db8::240/124"],
    ))
    .unwrap();
    lab.apply(objects::l2_advertisement(
        "lan",
        json!({"ipAddressPools": ["lan"]}),
    ))
    .unwrap();
    lab.apply(objects::lb_service_dual("web")).unwrap();
    lab.apply(objects::endpoint_slice("web", &lab.endpoints_everywhere(1)))
        .unwrap();
    let ips = lab.wait_service_ips("web", 2, T).unwrap();
    let names: Vec<String> = lab.nodes.iter().map(|n| n.name.clone()).collect();
    let order = election_order(&ips[0], &names);
    let mac_of = |name: &str| {
        let n = lab.nodes.iter().find(|n| n.name == name).expect("node");
        n.lan_mac().expect("mac")
    };
    let (first, second) = (mac_of(&order[0]), mac_of(&order[1]));
    for ip in &ips {
        let took = lab.wait_ext_resolves(ip, &first, T).unwrap();
        println!(
            "l2: {ip} resolves to {} ({first}) {took:?} after its IP was seen",
            order[0]
        );
    }

    // upstream's event on the Service, from the node that took it over
    wait_event(lab, "web", "nodeAssigned", &order[0]);

    // The announcer's Node goes NotReady: every speaker elects the next in rank, which
    // announces; the client's entries move without it asking. (The kernel ignores a new
    // address for an entry updated in the last second: wait that out first.)
    std::thread::sleep(Duration::from_millis(1100));
    lab.set_ready("Node", None, &order[0], false).unwrap();
    for ip in &ips {
        let took = lab.wait_ext_neighbor(ip, &second, T).unwrap();
        println!(
            "l2: {ip} moved to {} {took:?} after its Node went NotReady",
            order[1]
        );
    }
    // back: it ranks first again and takes the IPs back
    std::thread::sleep(Duration::from_millis(1100));
    lab.set_ready("Node", None, &order[0], true).unwrap();
    for ip in &ips {
        lab.wait_ext_neighbor(ip, &first, T).unwrap();
    }

    // externalTrafficPolicy Local: only a node with a serving endpoint may announce; the
    // last in rank is the only one serving
    std::thread::sleep(Duration::from_millis(1100));
    let last = &order[NODES - 1];
    lab.patch(
        "v1",
        "Service",
        Some(objects::APP_NS),
        "web",
        json!({"spec": {"externalTrafficPolicy": "Local"}}),
    )
    .unwrap();
    lab.apply(objects::endpoint_slice(
        "web",
        &[Endpoint::new(last, "100.64.9.1", true)],
    ))
    .unwrap();
    let last_mac = mac_of(last);
    for ip in &ips {
        let took = lab.wait_ext_neighbor(ip, &last_mac, T).unwrap();
        println!("l2: ETP Local: {ip} moved to {last} (the serving node) {took:?}");
    }
    wait_l2_status(lab, last);

    // Graceful stop (a drain, a rollout): the announcer's speaker Pod is deleted, then its
    // process gets SIGTERM. The other speakers see the Pod go and elect the next node,
    // whose announcements move the client's entries.
    lab.patch(
        "v1",
        "Service",
        Some(objects::APP_NS),
        "web",
        json!({"spec": {"externalTrafficPolicy": "Cluster"}}),
    )
    .unwrap();
    lab.apply(objects::endpoint_slice("web", &lab.endpoints_everywhere(1)))
        .unwrap();
    for ip in &ips {
        lab.wait_ext_neighbor(ip, &first, T).unwrap();
    }
    let k = index_of(lab, &order[0]);

    // Abrupt loss, the speaker: SIGKILL. Its Pod and Node still look fine in the API (no
    // kubelet here; a real one takes its time too): only the membership sees it, and the
    // next in rank takes over.
    std::thread::sleep(Duration::from_millis(1100));
    let start = Instant::now();
    lab.crash_speaker(k).unwrap();
    wait_moved(lab, &ips, &second, "speaker killed", "the SIGKILL", start);
    // the new announcer deletes the dead node's ServiceL2Status (it cannot) and writes its own
    wait_l2_status(lab, &order[1]);
    // it restarts, rejoins, ranks first again and takes the IPs back
    std::thread::sleep(Duration::from_millis(1100));
    lab.restart_speaker(k).unwrap();
    for ip in &ips {
        lab.wait_ext_neighbor(ip, &first, T).unwrap();
    }

    // Abrupt loss, the network: the announcer's link goes down. The others declare it down
    // and take over; it believes it alone is alive (and answers nobody: its link is
    // down). When the link is back the partition heals: it takes its IPs back, and the
    // client's entries end on its MAC, not on a node that released them silently.
    std::thread::sleep(Duration::from_millis(1100));
    let start = Instant::now();
    lab.set_node_link(k, false).unwrap();
    wait_moved(lab, &ips, &second, "link cut", "the cut", start);
    std::thread::sleep(Duration::from_millis(1100));
    lab.set_node_link(k, true).unwrap();
    for ip in &ips {
        lab.wait_ext_neighbor(ip, &first, T).unwrap();
    }
    wait_l2_status(lab, &order[0]);

    // The same cut on a node that announces nothing: alone, it elects itself for every
    // IP, and when its link comes back it announces them all before it meets the others
    // again and releases them silently. The owner re-announces when it sees it back: the
    // client's entries must end (and stay) on the owner.
    let third = index_of(lab, &order[2]);
    lab.set_node_link(third, false).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let healed = Instant::now();
    lab.set_node_link(third, true).unwrap();
    // the speakers meet again (each side declared the other down: one announces, the
    // other tells it to rejoin) and the owner re-announces...
    for ip in &ips {
        lab.wait_ext_neighbor(ip, &first, Duration::from_secs(15))
            .unwrap_or_else(|e| {
                panic!("after the partition healed, {ip} is not on the owner {first}: {e}")
            });
        println!(
            "l2: healed partition: {ip} on the owner {} {:?} after the link came back",
            order[0],
            healed.elapsed()
        );
    }
    // ... and it stays there: the cut-off node released its IPs
    std::thread::sleep(Duration::from_secs(3));
    for ip in &ips {
        assert_eq!(
            lab.ext_neighbor(ip).as_deref(),
            Some(first.as_str()),
            "{ip} left the owner after the partition healed"
        );
    }

    std::thread::sleep(Duration::from_millis(1100));
    let start = Instant::now();
    lab.delete_pod(METALLB_NS, &format!("speaker-{}", order[0]))
        .unwrap();
    lab.stop_speaker(k).unwrap();
    let what = "the speaker Pod's deletion";
    wait_moved(lab, &ips, &second, "graceful stop", what, start);

    // An advertisement restricted to an interface no node has: the elected node cannot
    // answer and says so on the Service (upstream's announceFailed warning).
    lab.apply(ip_pool("nowhere", &["192.0.2.230/32"])).unwrap();
    lab.apply(objects::l2_advertisement(
        "nowhere",
        json!({"ipAddressPools": ["nowhere"], "interfaces": ["eth9"]}),
    ))
    .unwrap();
    let mut svc = objects::lb_service("nowhere", false);
    svc["metadata"]["annotations"] = json!({"metallb.io/address-pool": "nowhere"});
    lab.apply(svc).unwrap();
    lab.apply(objects::endpoint_slice(
        "nowhere",
        &lab.endpoints_everywhere(1),
    ))
    .unwrap();
    let ip = lab.wait_service_ips("nowhere", 1, T).unwrap()[0].clone();
    let live: Vec<String> = names.iter().filter(|n| **n != order[0]).cloned().collect();
    let elected = election_order(&ip, &live)[0].clone();
    wait_event(lab, "nowhere", "announceFailed", &elected);
    wait_l2_status_of(lab, "nowhere", &elected, &["eth9"]);
}

#[test]
fn l2_answers_and_moves_with_the_election() {
    let test = "l2_answers_and_moves_with_the_election";
    if let Some(mut lab) = l2_lab(test, "l2", ApiKind::Test) {
        scenario(&mut lab);
    }
}

#[test]
fn l2_answers_and_moves_with_the_election_on_the_real_api_server() {
    let test = "l2_answers_and_moves_with_the_election_on_the_real_api_server";
    if let Some(mut lab) = l2_lab(test, "l2real", ApiKind::Real) {
        scenario(&mut lab);
    }
}
