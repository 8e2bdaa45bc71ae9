//! Table tests for the announcement rules and the FRRConfiguration mapping.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Service};
use metallb_api::frrk8s::{FRRConfiguration, Neighbor, Router};
use metallb_api::metallb::{BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool};
use serde::de::DeserializeOwned;

use super::frrconfig::go_duration;
use super::*;

// ===== builders =====

fn yaml<T: DeserializeOwned>(s: &str) -> T {
    serde_yaml::from_str(s).unwrap_or_else(|e| panic!("bad test YAML: {e}\n{s}"))
}

fn mk_pool(name: &str, addresses: &[&str]) -> IPAddressPool {
    mk_pool_labels(name, addresses, "{}")
}

fn mk_pool_labels(name: &str, addresses: &[&str], labels: &str) -> IPAddressPool {
    yaml(&format!(
        "metadata: {{name: {name}, namespace: metallb-system, labels: {labels}}}\nspec: {{addresses: {addresses:?}}}"
    ))
}

fn mk_peer(name: &str, spec: &str) -> BGPPeer {
    yaml(&format!(
        "metadata: {{name: {name}, namespace: metallb-system}}\nspec: {spec}"
    ))
}

fn mk_ad(name: &str, spec: &str) -> BGPAdvertisement {
    yaml(&format!(
        "metadata: {{name: {name}, namespace: metallb-system}}\nspec: {spec}"
    ))
}

fn mk_bfd(name: &str, spec: &str) -> BFDProfile {
    yaml(&format!(
        "metadata: {{name: {name}, namespace: metallb-system}}\nspec: {spec}"
    ))
}

fn mk_community(name: &str, spec: &str) -> Community {
    yaml(&format!(
        "metadata: {{name: {name}, namespace: metallb-system}}\nspec: {spec}"
    ))
}

fn mk_svc(key: &str, ips: &[&str]) -> ServiceInfo {
    let (ns, name) = key.split_once('/').unwrap_or(("default", key));
    ServiceInfo {
        key: ServiceKey::new(ns, name),
        is_load_balancer: true,
        ingress_ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        ..Default::default()
    }
}

fn local(mut s: ServiceInfo) -> ServiceInfo {
    s.traffic_policy = TrafficPolicy::Local;
    s
}

fn eps_on(nodes: &[&str]) -> Endpoints {
    Endpoints {
        serving_nodes: nodes.iter().map(|n| n.to_string()).collect(),
        any_serving: !nodes.is_empty(),
    }
}

fn node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
    NodeInfo {
        name: name.to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("kubernetes.io/hostname".to_string(), name.to_string())])
            .collect(),
        network_unavailable: false,
    }
}

const PEER_A: &str = "{myASN: 64512, peerASN: 64513, peerAddress: 192.168.1.1}";

fn basic_config() -> MetalLbConfig {
    MetalLbConfig {
        pools: vec![mk_pool("pool-a", &["10.0.0.0/24", "fc00::/64"])],
        peers: vec![mk_peer("peer-a", PEER_A)],
        advertisements: vec![mk_ad("ad-a", "{}")],
        ..Default::default()
    }
}

fn target() -> FrrTarget {
    FrrTarget {
        frr_namespace: "metallb-system".into(),
        secrets_namespace: "metallb-system".into(),
    }
}

/// Decision for one service on `node-1`.
fn decide(
    config: &MetalLbConfig,
    n: &NodeInfo,
    svc: &ServiceInfo,
    eps: Option<&Endpoints>,
) -> ServiceAnnouncement {
    let cfg = NodeConfig::compile(config, n, &SpeakerOptions::default());
    announce_service(&cfg, svc, eps).expect("handled class")
}

/// The FRRConfiguration for `n` given services with endpoints; asserts it validates.
fn frr(
    config: &MetalLbConfig,
    n: &NodeInfo,
    svcs: &[(ServiceInfo, Endpoints)],
) -> FRRConfiguration {
    let cfg = NodeConfig::compile(config, n, &SpeakerOptions::default());
    let ann = NodeAnnouncements::compute(&cfg, svcs.iter().map(|(s, e)| (s, Some(e))));
    let out = build_frr_configuration(&cfg, &ann.routes, &target());
    if let Err(e) = out.validate() {
        panic!(
            "generated FRRConfiguration does not validate: {e}\n{}",
            serde_yaml::to_string(&out).unwrap_or_default()
        );
    }
    out
}

fn routers(c: &FRRConfiguration) -> &[Router] {
    c.spec.routers()
}

fn neighbor<'a>(c: &'a FRRConfiguration, addr: &str) -> &'a Neighbor {
    c.spec
        .routers()
        .iter()
        .flat_map(|r| r.neighbors.iter())
        .find(|n| n.peer() == addr)
        .unwrap_or_else(|| panic!("no neighbor {addr}"))
}

fn allowed(n: &Neighbor) -> Vec<String> {
    n.advertise_allowed()
        .map(|a| a.prefixes.clone())
        .unwrap_or_default()
}

// ===== does this node announce? =====

#[test]
fn reasons_table() {
    let config = basic_config();
    let n1 = node("node-1", &[]);
    let any = eps_on(&["node-2"]);
    let here = eps_on(&["node-1"]);
    let none = Endpoints::default();
    let mut not_lb = mk_svc("default/a", &["10.0.0.1"]);
    not_lb.is_load_balancer = false;
    let mut unavailable = n1.clone();
    unavailable.network_unavailable = true;
    let excluded = node(
        "node-1",
        &[(
            "node.kubernetes.io/exclude-from-external-load-balancers",
            "",
        )],
    );

    type Case<'a> = (
        &'a str,
        &'a NodeInfo,
        ServiceInfo,
        Option<&'a Endpoints>,
        Option<Reason>,
    );
    let cases: Vec<Case> = vec![
        (
            "cluster, endpoint elsewhere",
            &n1,
            mk_svc("a", &["10.0.0.1"]),
            Some(&any),
            None,
        ),
        (
            "cluster, no endpoints",
            &n1,
            mk_svc("a", &["10.0.0.1"]),
            None,
            Some(Reason::NoEndpoints),
        ),
        (
            "cluster, empty endpoints",
            &n1,
            mk_svc("a", &["10.0.0.1"]),
            Some(&none),
            Some(Reason::NoEndpoints),
        ),
        (
            "local, endpoint here",
            &n1,
            local(mk_svc("a", &["10.0.0.1"])),
            Some(&here),
            None,
        ),
        (
            "local, endpoint elsewhere",
            &n1,
            local(mk_svc("a", &["10.0.0.1"])),
            Some(&any),
            Some(Reason::NoLocalEndpoint),
        ),
        (
            "local, no endpoints",
            &n1,
            local(mk_svc("a", &["10.0.0.1"])),
            None,
            Some(Reason::NoLocalEndpoint),
        ),
        (
            "not a load balancer",
            &n1,
            not_lb,
            Some(&any),
            Some(Reason::NotLoadBalancer),
        ),
        (
            "no ingress IP",
            &n1,
            mk_svc("a", &[]),
            Some(&any),
            Some(Reason::NoIngressIP),
        ),
        (
            "IP outside pools",
            &n1,
            mk_svc("a", &["10.9.0.1"]),
            Some(&any),
            Some(Reason::IPNotInPool("10.9.0.1".parse().unwrap())),
        ),
        (
            "dual-stack, one IP outside pools",
            &n1,
            mk_svc("a", &["10.0.0.1", "fd00::1"]),
            Some(&any),
            Some(Reason::IPNotInPool("fd00::1".parse().unwrap())),
        ),
        (
            "network unavailable",
            &unavailable,
            mk_svc("a", &["10.0.0.1"]),
            Some(&any),
            Some(Reason::NodeNetworkUnavailable),
        ),
        (
            "excluded node",
            &excluded,
            mk_svc("a", &["10.0.0.1"]),
            Some(&any),
            Some(Reason::NodeExcluded),
        ),
        (
            "network unavailable wins over endpoints",
            &unavailable,
            local(mk_svc("a", &["10.0.0.1"])),
            None,
            Some(Reason::NodeNetworkUnavailable),
        ),
    ];
    for (name, n, svc, eps, want) in cases {
        let got = decide(&config, n, &svc, eps);
        assert_eq!(got.reason, want, "{name}");
        assert_eq!(got.is_announced(), want.is_none(), "{name}");
        if want.is_some() {
            assert!(got.ips.is_empty(), "{name}");
        }
    }
}

#[test]
fn endpoint_conditions_from_slices() {
    let slice: k8s_openapi::api::discovery::v1::EndpointSlice = yaml(
        r#"
metadata: {name: a-1, namespace: default, labels: {kubernetes.io/service-name: a}}
addressType: IPv4
endpoints:
- {addresses: [10.1.0.1], nodeName: node-1, conditions: {ready: false, serving: true, terminating: true}}
- {addresses: [10.1.0.2], nodeName: node-2, conditions: {ready: false, serving: false}}
- {addresses: [10.1.0.3], nodeName: node-3, conditions: {ready: false}}
- {addresses: [], nodeName: node-4, conditions: {ready: true}}
- {addresses: [10.1.0.5], nodeName: node-5}
"#,
    );
    let eps = Endpoints::from_slices([&slice]);
    assert_eq!(
        eps.serving_nodes
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["node-1", "node-5"]
    );
    let config = basic_config();
    let svc = local(mk_svc("a", &["10.0.0.1"]));
    for (n, announced) in [
        ("node-1", true),
        ("node-2", false),
        ("node-3", false),
        ("node-4", false),
        ("node-5", true),
    ] {
        assert_eq!(
            decide(&config, &node(n, &[]), &svc, Some(&eps)).is_announced(),
            announced,
            "{n}"
        );
    }
    assert_eq!(
        input::slice_service(&slice),
        Some(ServiceKey::new("default", "a"))
    );
}

#[test]
fn node_and_service_from_objects() {
    let n: Node = yaml(
        r#"
metadata: {name: node-1, labels: {kubernetes.io/hostname: node-1}}
status: {conditions: [{type: Ready, status: "True"}, {type: NetworkUnavailable, status: "True"}]}
"#,
    );
    let info = NodeInfo::from_node(&n);
    assert!(info.network_unavailable);
    assert_eq!(info.name, "node-1");
    let n: Node = yaml("metadata: {name: n}\nstatus: {conditions: [{type: NetworkUnavailable, status: \"False\"}]}");
    assert!(!NodeInfo::from_node(&n).network_unavailable);

    let s: Service = yaml(
        r#"
metadata: {name: web, namespace: prod, labels: {app: web}}
spec: {type: LoadBalancer, externalTrafficPolicy: Local, loadBalancerClass: ""}
status: {loadBalancer: {ingress: [{ip: 10.0.0.1}, {ip: 10.0.0.1}, {hostname: lb.example}, {ip: "fc00::1"}, {ip: bogus}]}}
"#,
    );
    let info = ServiceInfo::from_service(&s);
    assert_eq!(info.key.to_string(), "prod/web");
    assert!(info.is_load_balancer);
    assert_eq!(info.traffic_policy, TrafficPolicy::Local);
    assert_eq!(info.load_balancer_class, None);
    assert_eq!(
        info.ingress_ips,
        vec![
            "10.0.0.1".parse::<IpAddr>().unwrap(),
            "fc00::1".parse().unwrap()
        ]
    );
    assert_eq!(info.invalid_ingress, vec!["bogus".to_string()]);
}

#[test]
fn exclude_label_can_be_ignored() {
    let config = basic_config();
    let n = node(
        "node-1",
        &[(
            "node.kubernetes.io/exclude-from-external-load-balancers",
            "true",
        )],
    );
    let opts = SpeakerOptions {
        ignore_exclude_lb: true,
        ..Default::default()
    };
    let cfg = NodeConfig::compile(&config, &n, &opts);
    let a = announce_service(&cfg, &mk_svc("a", &["10.0.0.1"]), Some(&eps_on(&["x"]))).unwrap();
    assert!(a.is_announced());
}

#[test]
fn load_balancer_class_filter() {
    let config = basic_config();
    let n = node("node-1", &[]);
    let mut svc = mk_svc("a", &["10.0.0.1"]);
    svc.load_balancer_class = Some("other".into());
    let cfg = NodeConfig::compile(&config, &n, &SpeakerOptions::default());
    assert_eq!(
        announce_service(&cfg, &svc, None),
        None,
        "foreign class ignored"
    );
    let ours = SpeakerOptions {
        load_balancer_class: Some("other".into()),
        ..Default::default()
    };
    let cfg = NodeConfig::compile(&config, &n, &ours);
    assert!(announce_service(&cfg, &svc, Some(&eps_on(&["n"])))
        .unwrap()
        .is_announced());
    svc.load_balancer_class = None;
    assert_eq!(
        announce_service(&cfg, &svc, None),
        None,
        "classless ignored with --lb-class"
    );
}

// ===== selectors =====

#[test]
fn peer_node_selectors() {
    let mut config = basic_config();
    config.peers.push(mk_peer(
        "peer-zone-b",
        "{myASN: 64512, peerASN: 64514, peerAddress: 192.168.2.1, nodeSelectors: [{matchLabels: {zone: b}}]}",
    ));
    let svc = (mk_svc("a", &["10.0.0.1"]), eps_on(&["x"]));
    let a = frr(
        &config,
        &node("node-1", &[("zone", "a")]),
        std::slice::from_ref(&svc),
    );
    assert_eq!(routers(&a)[0].neighbors.len(), 1);
    let b = frr(
        &config,
        &node("node-2", &[("zone", "b")]),
        std::slice::from_ref(&svc),
    );
    assert_eq!(routers(&b)[0].neighbors.len(), 2);
    assert_eq!(allowed(neighbor(&b, "192.168.2.1")), ["10.0.0.1/32"]);
}

#[test]
fn advertisement_selectors() {
    let config = MetalLbConfig {
        pools: vec![
            mk_pool_labels("pool-a", &["10.0.0.0/24"], "{tier: gold}"),
            mk_pool("pool-b", &["10.0.1.0/24"]),
            mk_pool("pool-c", &["10.0.2.0/24"]),
        ],
        peers: vec![
            mk_peer("peer-a", PEER_A),
            mk_peer(
                "peer-b",
                "{myASN: 64512, peerASN: 64513, peerAddress: 192.168.1.2}",
            ),
        ],
        advertisements: vec![
            mk_ad(
                "by-label",
                "{ipAddressPoolSelectors: [{matchLabels: {tier: gold}}], peers: [peer-b]}",
            ),
            mk_ad(
                "by-name",
                "{ipAddressPools: [pool-b], nodeSelectors: [{matchLabels: {zone: a}}]}",
            ),
            mk_ad(
                "by-service",
                "{ipAddressPools: [pool-c], serviceSelectors: [{matchLabels: {app: web}}]}",
            ),
        ],
        ..Default::default()
    };
    let n_a = node("node-1", &[("zone", "a")]);
    let n_b = node("node-2", &[("zone", "b")]);
    let eps = eps_on(&["x"]);
    let gold = decide(&config, &n_a, &mk_svc("gold", &["10.0.0.5"]), Some(&eps));
    assert_eq!(gold.peers(), ["peer-b"], "ad peers limit the sessions");
    let b = mk_svc("b", &["10.0.1.5"]);
    assert!(decide(&config, &n_a, &b, Some(&eps)).is_announced());
    assert_eq!(
        decide(&config, &n_b, &b, Some(&eps)).reason,
        Some(Reason::NoAdvertisement)
    );
    let mut web = mk_svc("web", &["10.0.2.5"]);
    assert_eq!(
        decide(&config, &n_a, &web, Some(&eps)).reason,
        Some(Reason::NoMatchingAdvertisement)
    );
    web.labels.insert("app", "web");
    let w = decide(&config, &n_a, &web, Some(&eps));
    assert!(w.is_announced());
    assert_eq!(w.peers(), ["peer-a", "peer-b"]);
    assert_eq!(&*w.ips[0].pool, "pool-c");
    assert_eq!(&*w.ips[0].adverts[0].advertisement, "by-service");
}

// ===== what is advertised =====

#[test]
fn aggregation_v4_and_v6_collapse_services() {
    let mut config = basic_config();
    config.peers.push(mk_peer(
        "peer-v6",
        "{myASN: 64512, peerASN: 64513, peerAddress: 'fc00:f::1'}",
    ));
    config.advertisements = vec![
        mk_ad("agg", "{aggregationLength: 24, aggregationLengthV6: 64}"),
        mk_ad("hosts", "{localPref: 50}"),
    ];
    let eps = eps_on(&["x"]);
    let svcs = vec![
        (mk_svc("a", &["10.0.0.1", "fc00::1"]), eps.clone()),
        (mk_svc("b", &["10.0.0.2", "fc00::2"]), eps.clone()),
    ];
    let c = frr(&config, &node("node-1", &[]), &svcs);
    assert_eq!(routers(&c).len(), 1);
    assert_eq!(
        routers(&c)[0].prefixes,
        [
            "10.0.0.0/24",
            "10.0.0.1/32",
            "10.0.0.2/32",
            "fc00::/64",
            "fc00::1/128",
            "fc00::2/128"
        ]
    );
    assert_eq!(
        allowed(neighbor(&c, "192.168.1.1")),
        ["10.0.0.0/24", "10.0.0.1/32", "10.0.0.2/32"]
    );
    assert_eq!(
        allowed(neighbor(&c, "fc00:f::1")),
        ["fc00::/64", "fc00::1/128", "fc00::2/128"]
    );
    let lp = neighbor(&c, "192.168.1.1").with_local_pref();
    assert_eq!(lp.len(), 1);
    assert_eq!(lp[0].local_pref, Some(50));
    assert_eq!(lp[0].prefixes, ["10.0.0.1/32", "10.0.0.2/32"]);

    // The aggregate stays while any service in it is announced.
    let cfg = NodeConfig::compile(&config, &node("node-1", &[]), &SpeakerOptions::default());
    let mut ann = NodeAnnouncements::compute(&cfg, svcs.iter().map(|(s, e)| (s, Some(e))));
    assert!(ann.remove(&ServiceKey::new("default", "a")));
    let c = build_frr_configuration(&cfg, &ann.routes, &target());
    assert_eq!(
        allowed(neighbor(&c, "192.168.1.1")),
        ["10.0.0.0/24", "10.0.0.2/32"]
    );
    assert!(ann.remove(&ServiceKey::new("default", "b")));
    assert!(ann.routes.is_empty());
    let c = build_frr_configuration(&cfg, &ann.routes, &target());
    assert!(routers(&c)[0].prefixes.is_empty());
}

#[test]
fn aggregation_never_wider_than_the_pool_block() {
    let config = MetalLbConfig {
        // 10.0.0.100-10.0.0.255 = .100/30, .104/29, .112/28, .128/25
        pools: vec![mk_pool("range", &["10.0.0.100-10.0.0.255"])],
        peers: vec![mk_peer("peer-a", PEER_A)],
        advertisements: vec![mk_ad("agg", "{aggregationLength: 26}")],
        ..Default::default()
    };
    let eps = eps_on(&["x"]);
    let c = frr(
        &config,
        &node("node-1", &[]),
        &[
            (mk_svc("a", &["10.0.0.101"]), eps.clone()),
            (mk_svc("b", &["10.0.0.200"]), eps),
        ],
    );
    // Upstream would announce 10.0.0.64/26, which covers .64-.99 outside the pool.
    assert_eq!(
        allowed(neighbor(&c, "192.168.1.1")),
        ["10.0.0.100/30", "10.0.0.192/26"]
    );
}

#[test]
fn local_pref_conflict_is_reported_and_highest_wins() {
    let mut config = basic_config();
    config.advertisements = vec![
        mk_ad("low", "{localPref: 100, communities: ['65000:1']}"),
        mk_ad("high", "{localPref: 200, communities: ['65000:2']}"),
    ];
    let cfg = NodeConfig::compile(&config, &node("node-1", &[]), &SpeakerOptions::default());
    let svc = mk_svc("a", &["10.0.0.1"]);
    let eps = eps_on(&["x"]);
    let ann = NodeAnnouncements::compute(&cfg, [(&svc, Some(&eps))]);
    assert!(
        ann.services[&svc.key].is_announced(),
        "a conflict does not withdraw"
    );
    let conflicts = ann.routes.local_pref_conflicts();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].local_prefs, [100, 200]);
    assert_eq!(
        conflicts[0].to_string(),
        "conflicting localPref [100, 200] for prefix 10.0.0.1/32 to BGPPeer peer-a: using 200"
    );
    let c = build_frr_configuration(&cfg, &ann.routes, &target());
    c.validate().unwrap();
    let n = neighbor(&c, "192.168.1.1");
    assert_eq!(n.with_local_pref().len(), 1);
    assert_eq!(n.with_local_pref()[0].local_pref, Some(200));
    assert_eq!(n.with_community().len(), 2, "communities add up");
}

#[test]
fn communities_aliases_and_large() {
    let mut config = basic_config();
    config.communities = vec![mk_community(
        "aliases",
        "{communities: [{name: no-advertise, value: '65535:65282'}, {name: big, value: 'large:1:2:3'}]}",
    )];
    config.advertisements = vec![
        mk_ad("one", "{communities: [no-advertise, '100:200', big]}"),
        mk_ad(
            "two",
            "{communities: ['100:200', 'large:4:5:6'], aggregationLength: 24}",
        ),
    ];
    let c = frr(
        &config,
        &node("node-1", &[]),
        &[(mk_svc("a", &["10.0.0.1"]), eps_on(&["x"]))],
    );
    let wc: Vec<(String, Vec<String>)> = neighbor(&c, "192.168.1.1")
        .with_community()
        .iter()
        .map(|c| (c.community.clone().unwrap_or_default(), c.prefixes.clone()))
        .collect();
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        wc,
        vec![
            ("100:200".to_string(), v(&["10.0.0.0/24", "10.0.0.1/32"])),
            ("65535:65282".to_string(), v(&["10.0.0.1/32"])),
            ("large:1:2:3".to_string(), v(&["10.0.0.1/32"])),
            ("large:4:5:6".to_string(), v(&["10.0.0.0/24"])),
        ]
    );
    let cfg = NodeConfig::compile(&config, &node("node-1", &[]), &SpeakerOptions::default());
    let a = announce_service(&cfg, &mk_svc("a", &["10.0.0.1"]), Some(&eps_on(&["x"]))).unwrap();
    assert_eq!(
        a.ips[0].adverts[0]
            .communities
            .iter()
            .map(frrconfig::community_text)
            .collect::<Vec<_>>(),
        ["100:200", "65535:65282", "large:1:2:3"],
        "resolved, sorted, deduplicated"
    );
}

#[test]
fn unknown_alias_skips_the_advertisement() {
    let mut config = basic_config();
    config.advertisements = vec![mk_ad("bad", "{communities: [missing-alias]}")];
    let cfg = NodeConfig::compile(&config, &node("node-1", &[]), &SpeakerOptions::default());
    assert_eq!(cfg.issues.len(), 1);
    assert_eq!(cfg.issues[0].kind, "BGPAdvertisement");
    assert!(
        cfg.issues[0].to_string().contains("missing-alias"),
        "{}",
        cfg.issues[0]
    );
    let a = announce_service(&cfg, &mk_svc("a", &["10.0.0.1"]), Some(&eps_on(&["x"]))).unwrap();
    assert_eq!(a.reason, Some(Reason::NoAdvertisement));
}

#[test]
fn address_family_filtering() {
    let mut config = basic_config();
    config.peers = vec![
        mk_peer("v4", PEER_A),
        mk_peer("v6", "{myASN: 64512, peerASN: 64513, peerAddress: 'fc00:f::1'}"),
        mk_peer("dual", "{myASN: 64512, peerASN: 64513, peerAddress: 192.168.1.3, dualStackAddressFamily: true}"),
        mk_peer("unnumbered", "{myASN: 64512, peerASN: 64513, interface: eth1}"),
    ];
    let c = frr(
        &config,
        &node("node-1", &[]),
        &[(mk_svc("a", &["10.0.0.1", "fc00::1"]), eps_on(&["x"]))],
    );
    assert_eq!(allowed(neighbor(&c, "192.168.1.1")), ["10.0.0.1/32"]);
    assert_eq!(allowed(neighbor(&c, "fc00:f::1")), ["fc00::1/128"]);
    assert_eq!(
        allowed(neighbor(&c, "192.168.1.3")),
        ["10.0.0.1/32", "fc00::1/128"]
    );
    assert_eq!(
        neighbor(&c, "192.168.1.3").dual_stack_address_family,
        Some(true)
    );
    assert_eq!(
        allowed(neighbor(&c, "eth1")),
        ["10.0.0.1/32", "fc00::1/128"]
    );
    assert_eq!(neighbor(&c, "eth1").address, None);
}

// ===== neighbor fields =====

#[test]
fn neighbor_fields() {
    let config = MetalLbConfig {
        pools: vec![mk_pool("pool-a", &["10.0.0.0/24"])],
        bfd_profiles: vec![
            mk_bfd(
                "fast",
                "{receiveInterval: 50, transmitInterval: 50, detectMultiplier: 3}",
            ),
            mk_bfd("echo", "{echoMode: true, echoInterval: 30}"),
        ],
        peers: vec![
            mk_peer(
                "full",
                r#"{myASN: 64512, peerASN: 64600, peerAddress: 192.168.1.1, peerPort: 1179,
                holdTime: 90s, keepaliveTime: 30s, connectTime: 5s, ebgpMultiHop: true,
                bfdProfile: fast, enableGracefulRestart: true, disableMP: true,
                sourceAddress: 192.168.1.100, localASN: 65001, routerID: 10.10.10.10,
                password: s3cret}"#,
            ),
            mk_peer(
                "secret-default-ns",
                r#"{myASN: 64512, peerASN: 64601, peerAddress: 192.168.1.2,
                holdTime: 10s, passwordSecret: {name: bgp-auth}, routerID: 10.10.10.10}"#,
            ),
            mk_peer(
                "secret-own-ns",
                r#"{myASN: 64512, dynamicASN: external, peerAddress: 192.168.1.3,
                passwordSecret: {name: bgp-auth, namespace: other}, routerID: 10.10.10.10}"#,
            ),
            mk_peer(
                "ibgp-local-asn",
                r#"{myASN: 64512, dynamicASN: internal, peerAddress: 192.168.1.4,
                localASN: 65002, bfdProfile: missing, routerID: 10.10.10.10}"#,
            ),
        ],
        advertisements: vec![mk_ad("ad", "{}")],
        ..Default::default()
    };
    let n1 = node("node-1", &[]);
    let c = frr(&config, &n1, &[]);
    let r = &routers(&c)[0];
    assert_eq!(r.asn, 64512);
    assert_eq!(r.id.as_deref(), Some("10.10.10.10"));

    let full = neighbor(&c, "192.168.1.1");
    assert_eq!(full.asn, Some(64600));
    assert_eq!(full.port, Some(1179));
    assert_eq!(full.hold_time.as_ref().map(|d| d.0.as_str()), Some("1m30s"));
    assert_eq!(
        full.keepalive_time.as_ref().map(|d| d.0.as_str()),
        Some("30s")
    );
    assert_eq!(full.connect_time.as_ref().map(|d| d.0.as_str()), Some("5s"));
    assert_eq!(full.ebgp_multi_hop, Some(true));
    assert_eq!(full.bfd_profile.as_deref(), Some("fast"));
    assert_eq!(full.enable_graceful_restart, Some(true));
    assert_eq!(full.disable_mp, Some(true));
    assert_eq!(
        full.source_address.as_deref(),
        Some("192.168.1.100"),
        "sourceAddress honoured"
    );
    assert_eq!(full.local_asn, Some(65001), "localASN honoured");
    assert_eq!(full.password.as_deref(), Some("s3cret"));
    assert_eq!(full.password_secret, None);

    let d = neighbor(&c, "192.168.1.2");
    assert_eq!(d.password, None);
    let sr = d.password_secret.as_ref().unwrap();
    assert_eq!(
        (sr.name.as_deref(), sr.namespace.as_deref()),
        (Some("bgp-auth"), Some("metallb-system"))
    );
    assert_eq!(d.hold_time.as_ref().map(|d| d.0.as_str()), Some("10s"));
    assert_eq!(
        d.keepalive_time.as_ref().map(|d| d.0.as_str()),
        Some("3s"),
        "derived hold/3, whole seconds"
    );
    assert_eq!(d.port, Some(179), "port always explicit");
    assert_eq!(d.ebgp_multi_hop, None);

    let o = neighbor(&c, "192.168.1.3");
    assert_eq!(
        o.password_secret.as_ref().unwrap().namespace.as_deref(),
        Some("other")
    );
    assert_eq!(o.asn, None);
    assert_eq!(
        o.dynamic_asn,
        Some(metallb_api::frrk8s::DynamicAsnMode::External)
    );
    assert_eq!(o.hold_time, None);

    let i = neighbor(&c, "192.168.1.4");
    assert_eq!(
        i.dynamic_asn,
        Some(metallb_api::frrk8s::DynamicAsnMode::Internal)
    );
    assert_eq!(i.local_asn, None, "localASN dropped on iBGP");
    assert_eq!(i.bfd_profile, None, "missing profile dropped");
    let cfg = NodeConfig::compile(&config, &n1, &SpeakerOptions::default());
    let issues: Vec<String> = cfg.issues.iter().map(|i| i.to_string()).collect();
    assert_eq!(issues.len(), 2, "{issues:?}");
    assert!(issues.iter().any(|i| i.contains("localASN")), "{issues:?}");
    assert!(
        issues.iter().any(|i| i.contains("\"missing\"")),
        "{issues:?}"
    );

    let bfd = c.spec.bfd_profiles();
    assert_eq!(
        bfd.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["echo", "fast"]
    );
    assert_eq!(
        (bfd[0].echo_mode, bfd[0].passive_mode, bfd[0].echo_interval),
        (Some(true), Some(false), Some(30))
    );
    assert_eq!(
        (
            bfd[1].echo_mode,
            bfd[1].receive_interval,
            bfd[1].detect_multiplier
        ),
        (Some(false), Some(50), Some(3))
    );

    // Neighbors sorted by address.
    let addrs: Vec<&str> = r.neighbors.iter().map(|n| n.peer()).collect();
    assert_eq!(
        addrs,
        ["192.168.1.1", "192.168.1.2", "192.168.1.3", "192.168.1.4"]
    );
}

#[test]
fn router_per_vrf_and_incompatible_peers() {
    let config = MetalLbConfig {
        pools: vec![mk_pool("pool-a", &["10.0.0.0/24"])],
        peers: vec![
            mk_peer("a-default", PEER_A),
            mk_peer(
                "b-red",
                "{myASN: 64512, peerASN: 64513, peerAddress: 192.168.1.1, vrf: red}",
            ),
            mk_peer(
                "c-red-other-asn",
                "{myASN: 64999, peerASN: 64513, peerAddress: 192.168.9.9, vrf: red}",
            ),
            mk_peer(
                "d-duplicate",
                "{myASN: 64512, peerASN: 64700, peerAddress: 192.168.1.1}",
            ),
            mk_peer("e-invalid", "{myASN: 64512, peerAddress: 192.168.1.7}"),
            mk_peer(
                "f-multihop-ibgp",
                "{myASN: 64512, peerASN: 64512, peerAddress: 192.168.1.8, ebgpMultiHop: true}",
            ),
        ],
        advertisements: vec![mk_ad("ad", "{}")],
        ..Default::default()
    };
    let c = frr(
        &config,
        &node("node-1", &[]),
        &[(mk_svc("a", &["10.0.0.1"]), eps_on(&["x"]))],
    );
    let rs = routers(&c);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].vrf, None);
    assert_eq!(rs[1].vrf.as_deref(), Some("red"));
    assert_eq!(rs[0].neighbors.len(), 1);
    assert_eq!(rs[1].neighbors.len(), 1);
    assert_eq!(rs[0].neighbors[0].asn, Some(64513));
    assert_eq!(rs[1].prefixes, ["10.0.0.1/32"]);
    let cfg = NodeConfig::compile(&config, &node("node-1", &[]), &SpeakerOptions::default());
    let skipped: Vec<&str> = cfg.issues.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        skipped,
        [
            "metallb-system/c-red-other-asn",
            "metallb-system/d-duplicate",
            "metallb-system/e-invalid",
            "metallb-system/f-multihop-ibgp"
        ]
    );
}

// ===== determinism, incremental equivalence, change detection =====

fn many_services() -> Vec<(ServiceInfo, Endpoints)> {
    (0..40)
        .map(|i| {
            let mut s = mk_svc(
                &format!("ns{}/svc-{i}", i % 3),
                &[&format!("10.0.0.{}", i + 1)],
            );
            if i % 4 == 0 {
                s.ingress_ips
                    .push(format!("fc00::{:x}", i + 1).parse().unwrap());
            }
            if i % 5 == 0 {
                s = local(s);
            }
            (s, eps_on(&[if i % 2 == 0 { "node-1" } else { "node-2" }]))
        })
        .collect()
}

fn rich_config() -> MetalLbConfig {
    let mut config = basic_config();
    config.peers.push(mk_peer(
        "peer-v6",
        "{myASN: 64512, peerASN: 64513, peerAddress: 'fc00:f::1'}",
    ));
    config.advertisements = vec![
        mk_ad("hosts", "{localPref: 100, communities: ['65000:1']}"),
        mk_ad(
            "agg",
            "{aggregationLength: 28, aggregationLengthV6: 120, peers: [peer-a, peer-v6]}",
        ),
    ];
    config
}

#[test]
fn output_is_independent_of_input_order() {
    let config = rich_config();
    let n = node("node-1", &[]);
    let svcs = many_services();
    let a = serde_json::to_string(&frr(&config, &n, &svcs)).unwrap();
    let mut rev = svcs.clone();
    rev.reverse();
    let mut config_rev = config.clone();
    config_rev.peers.reverse();
    config_rev.advertisements.reverse();
    let b = serde_json::to_string(&frr(&config_rev, &n, &rev)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn incremental_matches_full_recompute() {
    let config = rich_config();
    let n = node("node-1", &[]);
    let cfg = NodeConfig::compile(&config, &n, &SpeakerOptions::default());
    let svcs = many_services();
    let mut inc = NodeAnnouncer::new(cfg.clone());
    for (s, e) in &svcs {
        inc.apply_endpoints(&s.key, e.clone());
        inc.apply_service(s.clone());
    }
    let full = NodeAnnouncements::compute(&cfg, svcs.iter().map(|(s, e)| (s, Some(e))));
    assert_eq!(inc.announcements(), &full);

    // A burst of changes.
    let mut state: BTreeMap<ServiceKey, (ServiceInfo, Endpoints)> = svcs
        .into_iter()
        .map(|(s, e)| (s.key.clone(), (s, e)))
        .collect();
    let keys: Vec<ServiceKey> = state.keys().cloned().collect();
    for (step, k) in keys.iter().enumerate() {
        match step % 4 {
            0 => {
                assert!(
                    inc.apply_endpoints(k, Endpoints::default())
                        || !full.services[k].is_announced()
                );
                state.get_mut(k).unwrap().1 = Endpoints::default();
            }
            1 => {
                inc.delete_service(k);
                state.remove(k);
            }
            2 => {
                let mut s = state[k].0.clone();
                s.ingress_ips = vec![format!("10.0.0.{}", 200 + step % 50).parse().unwrap()];
                inc.apply_service(s.clone());
                state.get_mut(k).unwrap().0 = s;
            }
            _ => {
                assert!(!inc.apply_endpoints(k, state[k].1.clone()), "no-op update");
            }
        }
        let full = NodeAnnouncements::compute(&cfg, state.values().map(|(s, e)| (s, Some(e))));
        assert_eq!(inc.announcements(), &full, "after step {step}");
        if step % 3 == 0 {
            // Patched cache == fresh build (checked every few steps so patches accumulate).
            let fresh = build_frr_configuration(&cfg, &full.routes, &target());
            assert_eq!(
                inc.frr_configuration(&target()),
                &fresh,
                "after step {step}"
            );
        }
    }
    let full_frr = build_frr_configuration(
        &cfg,
        &NodeAnnouncements::compute(&cfg, state.values().map(|(s, e)| (s, Some(e)))).routes,
        &target(),
    );
    assert_eq!(inc.frr_configuration(&target()), &full_frr);
    assert_eq!(inc.build_frr_configuration(&target()), full_frr);

    // Configuration change recomputes everything.
    let mut config2 = config.clone();
    config2.advertisements.truncate(1);
    let cfg2 = NodeConfig::compile(&config2, &n, &SpeakerOptions::default());
    assert!(inc.set_config(cfg2.clone()));
    assert!(!inc.set_config(cfg2.clone()));
    let full2 = NodeAnnouncements::compute(&cfg2, state.values().map(|(s, e)| (s, Some(e))));
    assert_eq!(inc.announcements(), &full2);
}

#[test]
fn spec_changed_ignores_apiserver_defaulting() {
    let config = rich_config();
    let n = node("node-1", &[]);
    let desired = frr(&config, &n, &many_services());
    // What the apiserver stores: schema defaults applied, round-tripped through JSON.
    let mut stored: FRRConfiguration =
        serde_json::from_value(serde_json::to_value(&desired).unwrap()).unwrap();
    stored.spec.apply_schema_defaults();
    stored.metadata.resource_version = Some("42".into());
    assert_ne!(stored.spec, desired.spec);
    assert!(!spec_changed(&stored.spec, &desired.spec));
    // Upstream-style empties.
    let mut upstreamish = stored.clone();
    upstreamish.spec.raw = Some(Default::default());
    if let Some(b) = upstreamish.spec.bgp.as_mut() {
        for nb in b.routers.iter_mut().flat_map(|r| r.neighbors.iter_mut()) {
            nb.password_secret = Some(Default::default());
            nb.to_receive = Some(yaml("{allowed: {mode: filtered}}"));
        }
    }
    assert!(!spec_changed(&upstreamish.spec, &desired.spec));
    // A real change.
    let mut svcs = many_services();
    svcs.pop();
    let fewer = frr(&config, &n, &svcs);
    assert!(spec_changed(&stored.spec, &fewer.spec));
}

#[test]
fn object_identity() {
    let c = frr(&basic_config(), &node("worker-7", &[]), &[]);
    assert_eq!(c.metadata.name.as_deref(), Some("metallb-worker-7"));
    assert_eq!(c.metadata.namespace.as_deref(), Some("metallb-system"));
    let sel = c
        .spec
        .node_selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .unwrap();
    assert_eq!(
        sel.get("kubernetes.io/hostname").map(String::as_str),
        Some("worker-7")
    );
    assert!(c.spec.raw.is_none());
    let n = neighbor(&c, "192.168.1.1");
    assert!(n.to_receive.is_none(), "MetalLB never asks to receive");
    assert_eq!(allowed(n), Vec::<String>::new());
}

#[test]
fn bgp_status_intents() {
    let mut config = basic_config();
    config.peers.push(mk_peer(
        "peer-b",
        "{myASN: 64512, peerASN: 64513, peerAddress: 192.168.1.2}",
    ));
    config.advertisements = vec![mk_ad(
        "only-b",
        "{peers: [peer-b], ipAddressPools: [pool-a]}",
    )];
    let n = node("node-1", &[]);
    let cfg = NodeConfig::compile(&config, &n, &SpeakerOptions::default());
    let a = mk_svc("a", &["10.0.0.1"]);
    let b = mk_svc("b", &["10.0.0.2"]);
    let eps = eps_on(&["x"]);
    let ann = NodeAnnouncements::compute(&cfg, [(&a, Some(&eps)), (&b, None)]);
    let intents = BgpStatusIntent::for_node("node-1", ann.bgp_status_intents());
    assert_eq!(intents.len(), 1, "b has no endpoints");
    assert_eq!(intents[0].items, ["peer-b"]);
    let obj: metallb_api::metallb::ServiceBGPStatus = intents[0].to_object("metallb-system");
    assert_eq!(obj.metadata.generate_name.as_deref(), Some("bgp-"));
    assert_eq!(
        obj.metadata.labels.as_ref().unwrap()["metallb.io/service-name"],
        "a"
    );
    assert_eq!(obj.status.as_ref().unwrap().node.as_deref(), Some("node-1"));
}

#[test]
fn go_durations() {
    use std::time::Duration as D;
    for (secs, text) in [
        (0, "0s"),
        (1, "1s"),
        (59, "59s"),
        (90, "1m30s"),
        (180, "3m0s"),
        (3600, "1h0m0s"),
        (3725, "1h2m5s"),
    ] {
        assert_eq!(go_duration(D::from_secs(secs)).0, text);
    }
    assert_eq!(go_duration(D::from_millis(3333)).0, "3s");
}

// ===== property: incremental state and patched FRRConfiguration equal a full rebuild =====

#[derive(Clone, Debug)]
enum Op {
    Service {
        i: u8,
        ip: u8,
        v6: bool,
        labelled: bool,
        local: bool,
    },
    Endpoints {
        i: u8,
        here: bool,
        elsewhere: bool,
    },
    Delete {
        i: u8,
    },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (0u8..8, 1u8..40, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(i, ip, v6, labelled, local)| Op::Service {
                i,
                ip,
                v6,
                labelled,
                local
            }
        ),
        (0u8..8, any::<bool>(), any::<bool>()).prop_map(|(i, here, elsewhere)| Op::Endpoints {
            i,
            here,
            elsewhere
        }),
        (0u8..8).prop_map(|i| Op::Delete { i }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn incremental_equals_rebuild(ops in proptest::collection::vec(op(), 1..60)) {
        let mut config = basic_config();
        config.peers.push(mk_peer("peer-b", "{myASN: 64512, peerASN: 64514, peerAddress: 192.168.1.2, dualStackAddressFamily: true}"));
        config.advertisements = vec![
            mk_ad("a", "{localPref: 100, communities: ['1:1']}"),
            mk_ad("b", "{localPref: 200, communities: ['2:2'], aggregationLength: 28, aggregationLengthV6: 124, peers: [peer-b]}"),
            mk_ad("c", "{communities: ['large:1:2:3'], serviceSelectors: [{matchLabels: {app: x}}]}"),
        ];
        let cfg = NodeConfig::compile(&config, &node("node-1", &[]), &SpeakerOptions::default());
        let mut inc = NodeAnnouncer::new(cfg.clone());
        let mut services: BTreeMap<u8, ServiceInfo> = BTreeMap::new();
        let mut endpoints: BTreeMap<u8, Endpoints> = BTreeMap::new();
        let key = |i: u8| ServiceKey::new("default", format!("s{i}"));
        let _ = inc.frr_configuration(&target());
        for (step, o) in ops.iter().enumerate() {
            match o.clone() {
                Op::Service { i, ip, v6, labelled, local: l } => {
                    let mut s = mk_svc(&format!("default/s{i}"), &[&format!("10.0.0.{ip}")]);
                    if v6 {
                        s.ingress_ips.push(format!("fc00::{ip}").parse().unwrap());
                    }
                    if labelled {
                        s.labels.insert("app", "x");
                    }
                    if l {
                        s = local(s);
                    }
                    services.insert(i, s.clone());
                    inc.apply_service(s);
                }
                Op::Endpoints { i, here, elsewhere } => {
                    let mut nodes = vec![];
                    if here { nodes.push("node-1"); }
                    if elsewhere { nodes.push("node-2"); }
                    endpoints.insert(i, eps_on(&nodes));
                    inc.apply_endpoints(&key(i), eps_on(&nodes));
                }
                Op::Delete { i } => {
                    services.remove(&i);
                    inc.delete_service(&key(i));
                }
            }
            let full = NodeAnnouncements::compute(
                &cfg,
                services.iter().map(|(i, s)| (s, endpoints.get(i))),
            );
            proptest::prop_assert_eq!(inc.announcements(), &full, "step {}", step);
            if step % 2 == 1 {
                let fresh = build_frr_configuration(&cfg, &full.routes, &target());
                proptest::prop_assert_eq!(inc.frr_configuration(&target()), &fresh, "step {}", step);
                proptest::prop_assert!(fresh.validate().is_ok());
                proptest::prop_assert!(!spec_changed(&fresh.spec, &inc.frr_configuration(&target()).spec));
            }
        }
    }
}
