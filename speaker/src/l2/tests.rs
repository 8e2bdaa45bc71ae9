//! The election rules, one table of cases each, and the rendezvous properties.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use metallb_api::metallb::{IPAddressPool, L2Advertisement};
use serde::de::DeserializeOwned;

use super::*;
use crate::bgp::input::TrafficPolicy;
use crate::bgp::{Endpoints, NodeInfo, ServiceInfo, ServiceKey, SpeakerOptions};

fn yaml<T: DeserializeOwned>(s: &str) -> T {
    serde_yaml::from_str(s).unwrap_or_else(|e| panic!("bad test YAML: {e}\n{s}"))
}

fn pool(name: &str, addresses: &[&str]) -> IPAddressPool {
    yaml(&format!(
        "metadata: {{name: {name}, namespace: metallb-system}}\nspec: {{addresses: {addresses:?}}}"
    ))
}

fn ad(name: &str, spec: &str) -> L2Advertisement {
    yaml(&format!(
        "metadata: {{name: {name}, namespace: metallb-system}}\nspec: {spec}"
    ))
}

fn node(name: &str, labels: &[(&str, &str)]) -> L2Node {
    let mut info = NodeInfo::new(name);
    info.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    L2Node { info, alive: true }
}

fn nodes(names: &[&str]) -> Vec<L2Node> {
    names.iter().map(|n| node(n, &[])).collect()
}

fn svc(name: &str, ips: &[&str]) -> ServiceInfo {
    ServiceInfo {
        key: ServiceKey::new("default", name),
        is_load_balancer: true,
        ingress_ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        ..Default::default()
    }
}

fn serving(on: &[&str]) -> Endpoints {
    Endpoints {
        serving_nodes: on.iter().map(|n| n.to_string()).collect(),
        any_serving: true,
    }
}

fn config(ads: &[L2Advertisement]) -> L2Config {
    L2Config::compile(
        &[
            pool("l2", &["192.0.2.200-192.0.2.250", "2001:db8::200/120"]),
            pool("bgp-only", &["198.18.0.0/24"]),
        ],
        ads,
    )
}

fn winner(d: &Option<L2Decision>) -> Option<&str> {
    d.as_ref()
        .and_then(|d| d.winner.as_ref())
        .map(|w| w.node.as_str())
}

fn reason(d: &Option<L2Decision>) -> Option<L2Reason> {
    d.as_ref().and_then(|d| d.reason.clone())
}

const ALL: &str = "{ipAddressPools: [l2]}";

#[test]
fn the_rank_is_upstreams_sha256_of_node_hash_ip() {
    // sha256("node2#192.0.2.200"), computed independently (Python hashlib).
    let ip: IpAddr = "192.0.2.200".parse().unwrap();
    let hex: String = rank("node2", &ip)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hex,
        "9f4391046c89f88141efe2215b4d29485fe299bc97e414d1b0b53e246c292052"
    );
}

#[test]
fn lowest_hash_wins_and_only_its_loss_moves_the_ip() {
    // hashlib order for 192.0.2.200: node2 (9f..) < node3 (ad..) < node1 (cb..)
    let cfg = config(&[ad("a", ALL)]);
    let s = svc("web", &["192.0.2.200"]);
    let eps = serving(&["node1"]);
    let opts = SpeakerOptions::default();
    let d = decide(
        &cfg,
        &s,
        Some(&eps),
        &nodes(&["node1", "node2", "node3"]),
        &opts,
    );
    assert_eq!(winner(&d), Some("node2"));
    let w = d.as_ref().unwrap().for_node("node2").unwrap();
    assert_eq!(w.ips, vec!["192.0.2.200".parse::<IpAddr>().unwrap()]);
    assert_eq!(w.interfaces, Interfaces::All);
    assert_eq!(
        d.as_ref().unwrap().for_node("node1"),
        Err(L2Reason::NotElected)
    );
    // losing a node that does not announce changes nothing
    let d = decide(&cfg, &s, Some(&eps), &nodes(&["node2", "node3"]), &opts);
    assert_eq!(winner(&d), Some("node2"));
    // losing the announcer moves the IP to the next in rank
    let mut ns = nodes(&["node1", "node2", "node3"]);
    ns[1].alive = false;
    let d = decide(&cfg, &s, Some(&eps), &ns, &opts);
    assert_eq!(winner(&d), Some("node3"));
}

#[test]
fn node_checks_remove_candidates() {
    let cfg = config(&[ad("a", ALL)]);
    let s = svc("web", &["192.0.2.200"]);
    let eps = serving(&["node1"]);
    let opts = SpeakerOptions::default();
    let exclude = [(
        "node.kubernetes.io/exclude-from-external-load-balancers",
        "",
    )];

    let mut ns = vec![
        node("node1", &[]),
        node("node2", &exclude),
        node("node3", &[]),
    ];
    let d = decide(&cfg, &s, Some(&eps), &ns, &opts);
    assert_eq!(winner(&d), Some("node3"), "excluded node2 is skipped");
    let ignore = SpeakerOptions {
        ignore_exclude_lb: true,
        ..Default::default()
    };
    assert_eq!(
        winner(&decide(&cfg, &s, Some(&eps), &ns, &ignore)),
        Some("node2")
    );

    ns[2].info.network_unavailable = true;
    let d = decide(&cfg, &s, Some(&eps), &ns, &opts);
    assert_eq!(winner(&d), Some("node1"), "node3 NetworkUnavailable");

    ns[0].alive = false;
    let d = decide(&cfg, &s, Some(&eps), &ns, &opts);
    assert_eq!(reason(&d), Some(L2Reason::NoEligibleNode));
}

#[test]
fn node_selectors_interfaces_and_preferences() {
    let cfg = config(&[
        ad(
            "a",
            "{ipAddressPools: [l2], nodeSelectors: [{matchLabels: {l2: 'yes'}}], interfaces: [eth1]}",
        ),
        ad(
            "b",
            "{ipAddressPools: [l2], nodeSelectors: [{matchLabels: {zone: b}}], interfaces: [eth2]}",
        ),
    ]);
    let s = svc("web", &["192.0.2.200"]);
    let eps = serving(&["node1"]);
    let opts = SpeakerOptions::default();
    // node2 ranks first but no advertisement selects it
    let ns = vec![
        node("node1", &[("l2", "yes"), ("zone", "b")]),
        node("node2", &[]),
        node("node3", &[("zone", "b")]),
    ];
    let d = decide(&cfg, &s, Some(&eps), &ns, &opts);
    assert_eq!(winner(&d), Some("node3"));
    let only = |names: &[&str]| Interfaces::Only(names.iter().map(|s| s.to_string()).collect());
    assert_eq!(d.unwrap().winner.unwrap().interfaces, only(&["eth2"]));
    // node1 is selected by both: it answers on both ads' interfaces
    let d = decide(&cfg, &s, Some(&eps), &ns[..1], &opts);
    assert_eq!(
        d.unwrap().winner.unwrap().interfaces,
        only(&["eth1", "eth2"])
    );

    // preferences outweigh the hash: node1 (last in hash order) preferred
    let cfg = config(&[ad(
        "p",
        "{ipAddressPools: [l2], preferredNodeSelectors: [{weight: 10, preference: {matchLabels: {fast: 'true'}}}]}",
    )]);
    let ns = vec![
        node("node1", &[("fast", "true")]),
        node("node2", &[]),
        node("node3", &[]),
    ];
    assert_eq!(
        winner(&decide(&cfg, &s, Some(&eps), &ns, &opts)),
        Some("node1")
    );
}

#[test]
fn local_traffic_policy_elects_among_serving_nodes() {
    let cfg = config(&[ad("a", ALL)]);
    let mut s = svc("web", &["192.0.2.200"]);
    s.traffic_policy = TrafficPolicy::Local;
    let opts = SpeakerOptions::default();
    let ns = nodes(&["node1", "node2", "node3"]);
    let d = decide(&cfg, &s, Some(&serving(&["node1", "node3"])), &ns, &opts);
    assert_eq!(winner(&d), Some("node3"));
    let d = decide(&cfg, &s, Some(&serving(&["node1"])), &ns, &opts);
    assert_eq!(winner(&d), Some("node1"));
    // a serving endpoint without a node: nobody may announce with Local
    let none = Endpoints {
        serving_nodes: BTreeSet::new(),
        any_serving: true,
    };
    let d = decide(&cfg, &s, Some(&none), &ns, &opts);
    assert_eq!(reason(&d), Some(L2Reason::NoEligibleNode));
}

#[test]
fn service_level_reasons() {
    let opts = SpeakerOptions::default();
    let ns = nodes(&["node1", "node2"]);
    let eps = serving(&["node1"]);
    let cfg = config(&[ad(
        "a",
        "{ipAddressPools: [l2], serviceSelectors: [{matchLabels: {app: web}}]}",
    )]);

    let s = svc("web", &["192.0.2.200"]);
    assert_eq!(
        reason(&decide(&cfg, &s, Some(&eps), &ns, &opts)),
        Some(L2Reason::NoMatchingAdvertisement)
    );
    let mut labelled = s.clone();
    labelled.labels.insert("app", "web");
    assert!(winner(&decide(&cfg, &labelled, Some(&eps), &ns, &opts)).is_some());
    labelled.shares_ip = true;
    assert_eq!(
        reason(&decide(&cfg, &labelled, Some(&eps), &ns, &opts)),
        Some(L2Reason::SharedIPWithServiceSelector)
    );

    let cfg = config(&[ad("a", ALL)]);
    assert_eq!(
        reason(&decide(&cfg, &s, None, &ns, &opts)),
        Some(L2Reason::NoEndpoints)
    );
    assert_eq!(
        reason(&decide(
            &cfg,
            &svc("x", &["203.0.113.1"]),
            Some(&eps),
            &ns,
            &opts
        )),
        Some(L2Reason::IPNotInPool("203.0.113.1".parse().unwrap()))
    );
    // BGP-only pool, no IP yet, another class: not an L2 Service at all
    assert_eq!(
        decide(&cfg, &svc("b", &["198.18.0.1"]), Some(&eps), &ns, &opts),
        None
    );
    assert_eq!(decide(&cfg, &svc("n", &[]), Some(&eps), &ns, &opts), None);
    let mut classy = s.clone();
    classy.load_balancer_class = Some("other".into());
    assert_eq!(decide(&cfg, &classy, Some(&eps), &ns, &opts), None);
    // an invalid advertisement is skipped and reported
    let cfg = config(&[ad("bad", "{ipAddressPools: [l2, l2]}")]);
    assert_eq!(cfg.issues.len(), 1, "{:?}", cfg.issues);
    assert_eq!(decide(&cfg, &s, Some(&eps), &ns, &opts), None);
}

#[test]
fn dual_stack_ips_stay_together_and_node_ips_merges_interfaces() {
    let cfg = config(&[ad("a", ALL)]);
    let s = svc("web", &["192.0.2.200", "2001:db8::201"]);
    let d = decide(
        &cfg,
        &s,
        Some(&serving(&["node1"])),
        &nodes(&["node1", "node2", "node3"]),
        &SpeakerOptions::default(),
    )
    .unwrap();
    let w = d.winner.clone().unwrap();
    assert_eq!(w.node, "node2", "elected by the first IP");
    assert_eq!(w.ips.len(), 2);
    let only = |n: &str| Interfaces::Only([n.to_string()].into());
    let other = L2Decision {
        key: ServiceKey::new("default", "shared"),
        winner: Some(Winner {
            node: "node2".into(),
            ips: vec!["192.0.2.200".parse().unwrap()],
            interfaces: only("eth1"),
        }),
        reason: None,
    };
    let mine = node_ips([&d, &other], "node2");
    assert_eq!(mine.len(), 2);
    assert_eq!(
        mine[&"192.0.2.200".parse::<IpAddr>().unwrap()],
        Interfaces::All
    );
    assert!(node_ips([&d], "node1").is_empty());
}

#[test]
fn services_spread_and_a_lost_node_moves_only_its_own() {
    let cfg = L2Config::compile(
        &[pool("big", &["198.18.0.0/20"])],
        &[ad("a", "{ipAddressPools: [big]}")],
    );
    let names: Vec<String> = (0..4).map(|i| format!("worker-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let all = nodes(&refs);
    let opts = SpeakerOptions::default();
    let eps = serving(&[]);
    let services: Vec<ServiceInfo> = (0..1000)
        .map(|i| {
            svc(
                &format!("s{i}"),
                &[&format!("198.18.{}.{}", i / 250, i % 250 + 1)],
            )
        })
        .collect();
    let elect = |ns: &[L2Node]| -> BTreeMap<ServiceKey, String> {
        services
            .iter()
            .map(|s| {
                let d = decide(&cfg, s, Some(&eps), ns, &opts).unwrap();
                (s.key.clone(), d.winner.unwrap().node)
            })
            .collect()
    };
    let before = elect(&all);
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for n in before.values() {
        *per_node.entry(n).or_default() += 1;
    }
    // 250 expected per node; a hash far from uniform would leave one node outside this band
    for (n, count) in &per_node {
        assert!((150..=350).contains(count), "{n} announces {count} of 1000");
    }
    assert_eq!(per_node.len(), 4);
    let after = elect(&all[1..]);
    for (k, was) in &before {
        if was != "worker-0" {
            assert_eq!(&after[k], was, "{k} moved although its node stayed");
        } else {
            assert_ne!(after[k], "worker-0");
        }
    }
}

mod view {
    use super::*;
    use crate::l2::view::{L2View, SpeakerPod};
    use k8s_openapi::api::core::v1::Pod;

    fn pod(node: &str, extra: &str) -> Pod {
        yaml(&format!(
            "metadata: {{name: speaker-{node}, namespace: metallb-system{extra}}}\nspec: {{nodeName: {node}, containers: []}}"
        ))
    }

    fn elect(v: &mut L2View, s: &ServiceInfo) -> Option<String> {
        let eps = serving(&["node1"]);
        v.refresh(
            std::iter::once(&s.key),
            |_| Some((s, Some(eps.clone()))),
            &SpeakerOptions::default(),
        );
        v.decision(&s.key)
            .and_then(|d| d.winner.as_ref())
            .map(|w| w.node.clone())
    }

    #[test]
    fn speaker_pods_decide_liveness_once_known() {
        let mut v = L2View::default();
        v.set_config(config(&[ad("a", ALL)]));
        for n in nodes(&["node1", "node2", "node3"]) {
            v.apply_node(n);
        }
        let s = svc("web", &["192.0.2.200"]);
        // no speaker Pod known: Node readiness alone (node2 ranks first)
        assert_eq!(elect(&mut v, &s).as_deref(), Some("node2"));
        // speakers known on node1 and node3 only: node2 has none, it is no candidate
        for n in ["node1", "node3"] {
            v.set_speaker(&format!("speaker-{n}"), SpeakerPod::from_pod(&pod(n, "")));
        }
        assert_eq!(elect(&mut v, &s).as_deref(), Some("node3"));
        // node3's Pod is being deleted (a drain): handed over at once
        let deleting = pod("node3", ", deletionTimestamp: '2026-01-01T00:00:00Z'");
        let p = SpeakerPod::from_pod(&deleting).expect("scheduled");
        assert!(!p.alive);
        v.set_speaker("speaker-node3", Some(p));
        assert_eq!(elect(&mut v, &s).as_deref(), Some("node1"));
        // a Pod not ready is not alive; one without conditions yet is
        let not_ready: Pod = yaml(
            "metadata: {name: x}\nspec: {nodeName: node1, containers: []}\nstatus: {conditions: [{type: Ready, status: 'False'}]}",
        );
        assert!(!SpeakerPod::from_pod(&not_ready).unwrap().alive);
        assert!(SpeakerPod::from_pod(&pod("node1", "")).unwrap().alive);
        // an unscheduled Pod says nothing about a node
        let pending: Pod = yaml("metadata: {name: y}\nspec: {containers: []}");
        assert_eq!(SpeakerPod::from_pod(&pending), None);
        // re-list without node1's Pod: nobody left with a speaker
        v.retain_speakers(|n| n == "speaker-node3");
        assert_eq!(elect(&mut v, &s), None);
    }

    #[test]
    fn membership_only_removes_the_nodes_it_declared_down() {
        let mut v = L2View::default();
        v.set_config(config(&[ad("a", ALL)]));
        for n in nodes(&["node1", "node2", "node3"]) {
            v.apply_node(n);
        }
        for (n, ip) in [("node1", "192.0.2.11"), ("node2", "192.0.2.12")] {
            let p = pod(n, "");
            let mut p = SpeakerPod::from_pod(&p).unwrap();
            p.ip = Some(ip.parse().unwrap());
            v.set_speaker(&format!("speaker-{n}"), Some(p));
        }
        // node3's Pod has no IP yet: no peer, but still a candidate through its Pod
        v.set_speaker("speaker-node3", SpeakerPod::from_pod(&pod("node3", "")));
        let s = svc("web", &["192.0.2.200"]);
        assert_eq!(elect(&mut v, &s).as_deref(), Some("node2"));
        let peers = v.peers("node1");
        assert_eq!(
            peers.into_iter().collect::<Vec<_>>(),
            vec![("node2".to_string(), "192.0.2.12".parse().unwrap())]
        );
        // node2's speaker crashed: SWIM says down although its Pod still looks alive
        v.set_down(&["node2".to_string()].into());
        assert_eq!(elect(&mut v, &s).as_deref(), Some("node3"));
        // it rejoined
        v.set_down(&Default::default());
        assert_eq!(elect(&mut v, &s).as_deref(), Some("node2"));
    }

    #[test]
    fn a_speaker_pods_ip_is_its_membership_address() {
        let p: Pod = yaml(
            "metadata: {name: x}\nspec: {nodeName: node1, containers: []}\nstatus: {podIP: 2001:db8::5}",
        );
        let sp = SpeakerPod::from_pod(&p).unwrap();
        assert_eq!(sp.ip, Some("2001:db8::5".parse().unwrap()));
    }
}
