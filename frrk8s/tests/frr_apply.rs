//! The FRR driver against real FRR: node FRR in one namespace, external FRR in another,
//! eBGP (or iBGP) over a veth with addresses from 192.0.2.0/24, advertised /32s from
//! 198.18.0.0/15. Needs root and FRR; prints `SKIPPED: ...` otherwise.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use frr_k8s::frr::status::parse_bgp_neighbors;
use frr_k8s::frr::{
    diff, normalize_with, Applier, ApplyError, BgpNeighborStatus, FrrConfig, FrrControl,
    FrrDefaults, Vtysh,
};
use metallb_netlab::{require_root_and_frr, veth, wait_until, FrrInstance, Netns};

const NODE_IP: &str = "192.0.2.11";
const EXT_IP: &str = "192.0.2.1";

/// What the node advertises.
#[derive(Clone)]
struct Spec {
    prefixes: Vec<u32>,
    community: Option<&'static str>,
    local_pref: Option<u32>,
    bfd_rx: u32,
    asn: u32,
    peer_asn: u32,
}

fn pfx(i: u32) -> String {
    format!("198.18.{}.{}/32", (i + 1) / 256, (i + 1) % 256)
}

/// frr-k8s layout with short allow-lists (chunks of <= 100 entries).
fn render(s: &Spec) -> String {
    let id = EXT_IP;
    let mut t = String::new();
    t.push_str("log stdout informational\nlog timestamp precision 3\nhostname node\n");
    t.push_str("ip nht resolve-via-default\nipv6 nht resolve-via-default\n");
    let mut rm = 1;
    if let Some(c) = s.community {
        let pl = format!("{id}-{c}-ip-community-prefixes");
        for (k, p) in s.prefixes.iter().enumerate() {
            writeln!(t, "ip prefix-list {pl} seq {} permit {}", k + 1, pfx(*p)).unwrap();
        }
        writeln!(t, "route-map {id}-out permit {rm}\n  match ip address prefix-list {pl}\n  set community {c} additive\n  on-match next").unwrap();
        rm += 1;
    }
    if let Some(lp) = s.local_pref {
        let pl = format!("{id}-{lp}-ip-localpref-prefixes");
        for (k, p) in s.prefixes.iter().enumerate() {
            writeln!(t, "ip prefix-list {pl} seq {} permit {}", k + 1, pfx(*p)).unwrap();
        }
        writeln!(t, "route-map {id}-out permit {rm}\n  match ip address prefix-list {pl}\n  set local-preference {lp}\n  on-match next").unwrap();
        rm += 1;
    }
    if s.prefixes.is_empty() {
        writeln!(t, "ip prefix-list {id}-allowed-ipv4-0 seq 1 deny any").unwrap();
        writeln!(
            t,
            "route-map {id}-out permit {rm}\n  match ip address prefix-list {id}-allowed-ipv4-0"
        )
        .unwrap();
        rm += 1;
    }
    for (chunk, ps) in s.prefixes.chunks(100).enumerate() {
        for (k, p) in ps.iter().enumerate() {
            writeln!(
                t,
                "ip prefix-list {id}-allowed-ipv4-{chunk} seq {} permit {}",
                k + 1,
                pfx(*p)
            )
            .unwrap();
        }
        writeln!(t, "route-map {id}-out permit {rm}\n  match ip address prefix-list {id}-allowed-ipv4-{chunk}").unwrap();
        rm += 1;
    }
    writeln!(t, "ip prefix-list {id}-inpl-ipv4 seq 1 deny any").unwrap();
    writeln!(
        t,
        "route-map {id}-in permit {rm}\n  match ip address prefix-list {id}-inpl-ipv4"
    )
    .unwrap();
    writeln!(
        t,
        "router bgp {}\n  bgp router-id {NODE_IP}\n  no bgp ebgp-requires-policy\n  no bgp network import-check\n  no bgp default ipv4-unicast\n  bgp graceful-restart preserve-fw-state",
        s.asn
    )
    .unwrap();
    writeln!(t, "  neighbor {EXT_IP} remote-as {}\n  neighbor {EXT_IP} timers connect 1\n  neighbor {EXT_IP} bfd\n  neighbor {EXT_IP} bfd profile p{}", s.peer_asn, s.bfd_rx).unwrap();
    writeln!(t, "  address-family ipv4 unicast\n    neighbor {EXT_IP} activate\n    neighbor {EXT_IP} route-map {id}-in in\n    neighbor {EXT_IP} route-map {id}-out out\n  exit-address-family").unwrap();
    if !s.prefixes.is_empty() {
        t.push_str("  address-family ipv4 unicast\n");
        for p in &s.prefixes {
            writeln!(t, "    network {}", pfx(*p)).unwrap();
        }
        t.push_str("  exit-address-family\n");
    }
    writeln!(t, "bfd\n  profile p{0}\n    receive-interval {0}\n    transmit-interval {0}\n    detect-multiplier 3", s.bfd_rx).unwrap();
    t
}

/// FRR's running config equals `desired`, up to the lines the running FRR leaves out as
/// its defaults (which depend on its version: see `FrrDefaults`).
fn assert_running_matches(frr: &FrrInstance, desired: &str) {
    let running = FrrConfig::parse(&frr.running_config().unwrap());
    let defaults = FrrDefaults::of(&running);
    let d = diff(
        &normalize_with(&running, defaults),
        &normalize_with(&FrrConfig::parse(desired), defaults),
    );
    assert!(d.is_empty(), "{:?}", d.lines);
}

struct Lab {
    node: FrrInstance,
    ext: FrrInstance,
    _node_ns: Netns,
    _ext_ns: Netns,
}

impl Lab {
    fn new(ibgp: bool) -> Lab {
        let node_ns = Netns::new("fan").unwrap();
        let ext_ns = Netns::new("fae").unwrap();
        veth(
            &node_ns,
            "eth0",
            &["192.0.2.11/24"],
            &ext_ns,
            "eth0",
            &["192.0.2.1/24"],
        )
        .unwrap();
        let node = FrrInstance::start(&node_ns, "frr defaults traditional\n").unwrap();
        let ext_asn = if ibgp { 64512 } else { 64513 };
        let ext = FrrInstance::start(
            &ext_ns,
            &format!(
                "router bgp {ext_asn}\n bgp router-id {EXT_IP}\n no bgp ebgp-requires-policy\n\
                 neighbor {NODE_IP} remote-as 64512\n neighbor {NODE_IP} timers connect 1\n\
                 neighbor {NODE_IP} bfd\nexit\n"
            ),
        )
        .unwrap();
        Lab {
            node,
            ext,
            _node_ns: node_ns,
            _ext_ns: ext_ns,
        }
    }

    fn applier(&self) -> Applier<Vtysh> {
        Applier::new(common::vtysh_for(&self.node))
    }

    /// The external router's view of the session with the node.
    fn ext_session(&self) -> BgpNeighborStatus {
        let v = self
            .ext
            .vtysh_json(&format!("show bgp neighbors {NODE_IP} json"))
            .unwrap();
        parse_bgp_neighbors(&v).into_iter().next().unwrap()
    }

    fn ext_routes(&self) -> BTreeSet<String> {
        let v = self.ext.vtysh_json("show bgp ipv4 unicast json").unwrap();
        v.get("routes")
            .and_then(|r| r.as_object())
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn wait_routes(&self, want: &BTreeSet<String>, what: &str) -> Duration {
        wait_until(what, Duration::from_secs(30), || &self.ext_routes() == want).unwrap()
    }

    fn wait_established(&self) {
        wait_until("session established", Duration::from_secs(30), || {
            self.ext_session().established
        })
        .unwrap();
    }

    /// The receive interval (ms) the node announces on ext's BFD session with it.
    fn ext_bfd_remote_receive_interval(&self) -> Option<u64> {
        let v = self.ext.vtysh_json("show bfd peers json").ok()?;
        v.as_array()?
            .iter()
            .find(|p| p.get("peer").and_then(|x| x.as_str()) == Some(NODE_IP))?
            .get("remote-receive-interval")?
            .as_u64()
    }

    /// Waits until ext's path for prefix `p` carries exactly the community `c`.
    fn wait_ext_community(&self, p: u32, c: &str, what: &str) {
        wait_until(what, Duration::from_secs(20), || {
            self.ext_path_attr(&pfx(p), "community")
                .and_then(|v| v.get("string").and_then(|x| x.as_str()).map(|x| x == c))
                .unwrap_or(false)
        })
        .unwrap();
    }

    fn ext_path_attr(&self, p: &str, attr: &str) -> Option<serde_json::Value> {
        let v = self
            .ext
            .vtysh_json(&format!("show bgp ipv4 unicast {p} json"))
            .ok()?;
        v.get("paths")?.get(0)?.get(attr).cloned()
    }
}

fn set(ps: &[u32]) -> BTreeSet<String> {
    ps.iter().map(|p| pfx(*p)).collect()
}

fn spec(prefixes: Vec<u32>) -> Spec {
    Spec {
        prefixes,
        community: None,
        local_pref: None,
        bfd_rx: 300,
        asn: 64512,
        peer_asn: 64513,
    }
}

/// Session identity as the external router sees it: equal before/after = no reset.
fn identity(s: &BgpNeighborStatus) -> (u64, u64) {
    (s.connections_established, s.connections_dropped)
}

#[test]
fn frr_changes_without_session_reset() {
    if !require_root_and_frr("frr_changes_without_session_reset") {
        return;
    }
    let lab = Lab::new(false);
    let mut a = lab.applier();
    let mut s = spec(vec![]);
    let r = a.apply(&render(&s)).unwrap();
    println!("initial apply: {r:?}");
    lab.wait_established();

    // first advertisement on an idle session
    s.prefixes = (0..10).collect();
    let t = Instant::now();
    let r = a.apply(&render(&s)).unwrap();
    lab.wait_routes(&set(&s.prefixes), "10 prefixes on ext");
    println!(
        "first advertisement: {} commands, apply {:?}, on ext after {:?}",
        r.commands,
        r.apply_time,
        t.elapsed()
    );
    std::thread::sleep(Duration::from_millis(500));
    let before = lab.ext_session();
    assert!(before.established);

    // add and remove prefixes
    s.prefixes = (5..20).collect();
    let t = Instant::now();
    let r = a.apply(&render(&s)).unwrap();
    lab.wait_routes(&set(&s.prefixes), "prefixes 5..20 on ext");
    println!(
        "add 10 / remove 5: {} commands, on ext after {:?}",
        r.commands,
        t.elapsed()
    );

    // community change: route-map only
    s.community = Some("64512:7");
    let t = Instant::now();
    let r = a.apply(&render(&s)).unwrap();
    lab.wait_ext_community(5, "64512:7", "community on ext");
    println!(
        "community set: {} commands, on ext after {:?}",
        r.commands,
        t.elapsed()
    );
    s.community = Some("64512:8");
    let r = a.apply(&render(&s)).unwrap();
    lab.wait_ext_community(5, "64512:8", "community changed on ext");
    println!("community changed: {} commands", r.commands);

    // BFD profile change
    s.bfd_rx = 200;
    let r = a.apply(&render(&s)).unwrap();
    println!("bfd profile change: {} commands", r.commands);
    let running = lab.node.running_config().unwrap();
    assert!(
        running.contains("neighbor 192.0.2.1 bfd profile p200"),
        "{running}"
    );
    assert!(!running.contains("profile p300"), "{running}");
    // the new intervals reached the peer (ext's BFD session with the node runs with them),
    // then 1.5 s (above BFD's 3 x 300 ms detection time) for a reset to show
    wait_until(
        "ext's BFD peer uses the new interval",
        Duration::from_secs(30),
        || lab.ext_bfd_remote_receive_interval() == Some(200),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));

    let after = lab.ext_session();
    assert!(after.established, "{after:?}");
    assert_eq!(
        identity(&before),
        identity(&after),
        "session was reset: {before:?} -> {after:?}"
    );
    assert!(after.uptime_msec > before.uptime_msec);
    assert_eq!(lab.ext_routes(), set(&s.prefixes));

    // no-op: zero commands
    let r = a.apply(&render(&s)).unwrap();
    assert_eq!(r.commands, 0);
    // running config matches the desired one
    assert_running_matches(&lab.node, &render(&s));
}

/// Does the verification an apply deferred (`ApplyOptions::defer_direct_verification`),
/// if any, and fails on a repair: the read-back is what proves the sockets' work.
fn no_repair_pending<C: FrrControl>(a: &mut Applier<C>, what: &str) {
    if let Some(v) = a.verify_pending() {
        let v = v.unwrap_or_else(|e| panic!("{what}: the deferred verification failed: {e}"));
        assert!(!v.repaired, "{what}: the sockets left a difference: {v:?}");
    }
}

/// Small changes (a prefix, a community) go over the daemons' sockets (`frr::vty`), not
/// through `vtysh -f`: FRR ends up running exactly the desired configuration (the applier's
/// verification reads it back through vtysh: no repair), the peer gets the change, and a
/// kind the sockets are not used for (BFD) still goes through vtysh.
#[test]
fn frr_small_changes_go_over_the_daemons_sockets() {
    if !require_root_and_frr("frr_small_changes_go_over_the_daemons_sockets") {
        return;
    }
    let lab = Lab::new(false);
    let mut a = lab.applier();
    let mut s = spec(vec![0, 1]);
    a.apply(&render(&s)).unwrap();
    lab.wait_established();
    lab.wait_routes(&set(&s.prefixes), "the first two prefixes on ext");

    let mut times = Vec::new();
    for (step, prefixes) in [vec![0, 1, 2], vec![0, 1, 2, 3], vec![0, 2, 3], vec![2, 3]]
        .into_iter()
        .enumerate()
    {
        s.prefixes = prefixes;
        let r = a.apply(&render(&s)).unwrap();
        assert!(r.direct, "step {step}: {r:?}");
        assert!(
            !r.repaired,
            "step {step}: the sockets left a difference: {r:?}"
        );
        no_repair_pending(&mut a, &format!("step {step}"));
        times.push(r.apply_time);
        lab.wait_routes(&set(&s.prefixes), &format!("step {step} on ext"));
    }
    println!("prefix changes over the daemons' sockets took {times:?}");

    // a route-map with a `set` only bgpd knows, inside a context zebra enters too
    s.community = Some("64512:7");
    let r = a.apply(&render(&s)).unwrap();
    assert!(r.direct && !r.repaired, "{r:?}");
    no_repair_pending(&mut a, "community set");
    lab.wait_ext_community(2, "64512:7", "community on ext");

    // and back: route-map entries renumbered (entered, emptied, removed)
    s.community = None;
    let r = a.apply(&render(&s)).unwrap();
    assert!(r.direct && !r.repaired, "{r:?}");
    no_repair_pending(&mut a, "community removed");
    wait_until("community gone on ext", Duration::from_secs(20), || {
        lab.ext_path_attr(&pfx(2), "community").is_none()
    })
    .unwrap();

    s.bfd_rx = 200;
    let r = a.apply(&render(&s)).unwrap();
    assert!(!r.direct && !r.repaired, "a BFD profile is vtysh's: {r:?}");

    // a line no daemon takes is rejected, and the last good configuration stays
    let bad = render(&s).replace(
        "ip prefix-list 192.0.2.1-allowed",
        "ip prefix-list 192.0.2.1-allowed-x seq 1 permit 198.18.0.0/33\nip prefix-list 192.0.2.1-allowed",
    );
    let err = a.apply(&bad).unwrap_err();
    assert!(matches!(err, ApplyError::Rejected { .. }), "{err:?}");
    assert_running_matches(&lab.node, &render(&s));
}

#[test]
fn frr_localpref_change_ibgp_without_reset() {
    if !require_root_and_frr("frr_localpref_change_ibgp_without_reset") {
        return;
    }
    let lab = Lab::new(true);
    let mut a = lab.applier();
    let mut s = spec((0..3).collect());
    s.peer_asn = 64512;
    s.local_pref = Some(150);
    a.apply(&render(&s)).unwrap();
    lab.wait_established();
    lab.wait_routes(&set(&s.prefixes), "3 prefixes");
    wait_until("local-pref 150", Duration::from_secs(20), || {
        lab.ext_path_attr(&pfx(0), "locPrf") == Some(serde_json::json!(150))
    })
    .unwrap();
    let before = lab.ext_session();
    s.local_pref = Some(250);
    let t = Instant::now();
    let r = a.apply(&render(&s)).unwrap();
    wait_until("local-pref 250", Duration::from_secs(20), || {
        lab.ext_path_attr(&pfx(0), "locPrf") == Some(serde_json::json!(250))
    })
    .unwrap();
    println!(
        "local-pref change: {} commands, on ext after {:?}",
        r.commands,
        t.elapsed()
    );
    let after = lab.ext_session();
    assert_eq!(identity(&before), identity(&after));
}

/// The lab with 20 prefixes applied and on the external router.
fn lab_with_20_prefixes() -> (Lab, Applier<Vtysh>, Spec) {
    let lab = Lab::new(false);
    let mut a = lab.applier();
    let s = spec((0..20).collect());
    a.apply(&render(&s)).unwrap();
    lab.wait_established();
    lab.wait_routes(&set(&s.prefixes), "20 prefixes");
    (lab, a, s)
}

#[test]
fn frr_restart_reapplies_last_good() {
    if !require_root_and_frr("frr_restart_reapplies_last_good") {
        return;
    }
    let (mut lab, mut a, s) = lab_with_20_prefixes();
    assert_eq!(a.reapply_if_restarted().unwrap(), None);

    // bgpd crashes and comes back empty
    lab.node.crash_daemon("bgpd");
    lab.node.start_missing(false).unwrap();
    let t = Instant::now();
    let r = a.reapply_if_restarted().unwrap().expect("restart detected");
    assert!(r.full_reapply);
    lab.wait_routes(&set(&s.prefixes), "20 prefixes after bgpd restart");
    println!(
        "bgpd restart: reapplied {} commands, routes back after {:?}",
        r.commands,
        t.elapsed()
    );

    // the whole stack restarts with an empty startup config
    lab.node.restart().unwrap();
    let r = wait_until_reapplied(&mut a);
    assert!(r.full_reapply);
    lab.wait_routes(&set(&s.prefixes), "20 prefixes after full restart");
    assert_eq!(a.reapply_if_restarted().unwrap(), None);
    assert_running_matches(&lab.node, &render(&s));
}

/// A restarted daemon writes its PID file before it opens its vty socket (and a crashed one
/// leaves its PID file behind): a restart check that runs in between must wait, not send
/// the configuration into the void and then "repair" it. The checks here run every 2 ms
/// from the crash until the re-apply, so they hit both windows.
#[test]
fn frr_restart_is_reapplied_once_the_daemon_serves() {
    if !require_root_and_frr("frr_restart_is_reapplied_once_the_daemon_serves") {
        return;
    }
    let (mut lab, mut a, s) = lab_with_20_prefixes();
    for round in 0..3 {
        lab.node.crash_daemon("bgpd");
        let (checks, outcome) = std::thread::scope(|scope| {
            let checker = scope.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut checks = 0;
                loop {
                    checks += 1;
                    match a.reapply_if_restarted() {
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(2))
                        }
                        other => return (checks, other),
                    }
                }
            });
            // the crash is seen before the new process starts
            std::thread::sleep(Duration::from_millis(50));
            lab.node.start_missing(false).unwrap();
            checker.join().unwrap()
        });
        let r = outcome
            .unwrap_or_else(|e| panic!("round {round}: a restart check failed: {e}"))
            .unwrap_or_else(|| panic!("round {round}: no re-apply after {checks} checks"));
        assert!(r.full_reapply, "round {round}: {r:?}");
        assert!(
            !r.repaired,
            "round {round}: the re-apply needed a repair (sent before bgpd served): {r:?}"
        );
        println!(
            "round {round}: re-applied after {checks} checks, {} commands",
            r.commands
        );
        lab.wait_routes(&set(&s.prefixes), "20 prefixes after bgpd restart");
        assert_running_matches(&lab.node, &render(&s));
    }
}

fn wait_until_reapplied(a: &mut Applier<Vtysh>) -> frr_k8s::frr::ApplyReport {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match a.reapply_if_restarted() {
            Ok(Some(r)) => return r,
            Ok(None) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => panic!("no reapply: {other:?}"),
        }
    }
}

#[test]
fn frr_bad_config_keeps_previous() {
    if !require_root_and_frr("frr_bad_config_keeps_previous") {
        return;
    }
    let lab = Lab::new(false);
    let mut a = lab.applier();
    let s = spec((0..5).collect());
    let good = render(&s);
    a.apply(&good).unwrap();
    lab.wait_established();
    lab.wait_routes(&set(&s.prefixes), "5 prefixes");
    let running_before = lab.node.running_config().unwrap();

    // syntax error: nothing is applied (the check runs for every batch here; by default it
    // only runs for batches of 20 commands or more, smaller ones are rolled back instead)
    a.options_mut().dry_run_min_commands = 0;
    let mut s2 = s.clone();
    s2.prefixes = (0..8).collect();
    let bad = render(&s2).replace(
        "  no bgp network import-check\n",
        "  no bgp network import-check\n  neighbor 192.0.2.1 bogus-option\n",
    );
    let e = a.apply(&bad).unwrap_err();
    assert!(
        matches!(e, ApplyError::Rejected { stage: "check", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("bogus-option"), "{e}");
    assert_eq!(a.last_good(), Some(good.as_str()));
    assert_eq!(lab.node.running_config().unwrap(), running_before);

    // semantic error (bgpd refuses): rolled back to the last good config
    let bad = render(&s2).replace(
        "    neighbor 192.0.2.1 activate\n",
        "    neighbor 192.0.2.1 activate\n    neighbor 192.0.2.77 activate\n",
    );
    let e = a.apply(&bad).unwrap_err();
    assert!(
        matches!(e, ApplyError::Rejected { stage: "apply", .. }),
        "{e}"
    );
    println!("semantic error reported: {e}");
    assert_running_matches(&lab.node, &good);
    // whatever the rejected batch announced before its rollback, ext ends with the last
    // good configuration's prefixes
    lab.wait_routes(&set(&s.prefixes), "the last good 5 prefixes on ext");
    assert!(a.last_error().is_some());

    // and the next good config applies normally
    a.apply(&render(&s2)).unwrap();
    lab.wait_routes(&set(&s2.prefixes), "8 prefixes");
    assert!(a.last_error().is_none());
}

/// Show commands running beside configuration batches (the status poll runs apart from the
/// FRR worker) take nothing from the batches: on FRR 10.3, a `vtysh -f` batch lost its
/// lines in mgmtd and zebra while another vtysh ran a show command (bgpd had them; `vtysh -f`
/// exited 0), and a line over mgmtd's socket failed with `could not lock running DS`,
/// within the first 13 of 40 rounds every time. The driver's gate runs a batch alone there.
#[test]
fn frr_show_commands_beside_batches_take_nothing_from_them() {
    if !require_root_and_frr("frr_show_commands_beside_batches_take_nothing_from_them") {
        return;
    }
    let lab = Lab::new(false);
    let c = common::vtysh_for(&lab.node);
    // a peer's first Service, the Service deleted (the route-map entry changes action), the
    // peer deleted: what the young e2e scenario does
    let with = "bgp as-path access-list frrk8s-originated seq 5 permit ^$\n\
        ip prefix-list frrk8s-any-ipv4 seq 5 permit 0.0.0.0/0 le 32\n\
        route-map T-out permit 1\n match as-path frrk8s-originated\n match ip address prefix-list frrk8s-any-ipv4\nexit\n\
        route-map T-out deny 2\nexit\nroute-map T-in deny 1\nexit\n\
        router bgp 64512\n no bgp ebgp-requires-policy\n neighbor 192.0.2.1 remote-as 64513\n\
         address-family ipv4 unicast\n  network 198.18.0.0/32\n  neighbor 192.0.2.1 activate\n\
          neighbor 192.0.2.1 route-map T-in in\n  neighbor 192.0.2.1 route-map T-out out\n\
         exit-address-family\nexit\n";
    let rest = "route-map T-out deny 1\nexit\nrouter bgp 64512\n address-family ipv4 unicast\n\
          no network 198.18.0.0/32\n exit-address-family\nexit\nno route-map T-out deny 2\n\
        no ip prefix-list frrk8s-any-ipv4\nno bgp as-path access-list frrk8s-originated seq 5 permit ^$\n";
    let none = "no route-map T-out deny 1\nno route-map T-in deny 1\nno router bgp 64512\n";
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let c = c.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = c.show_json("show bgp vrf all neighbors json");
                let _ = c.running_config();
            }
        })
    };
    let mut lost = None;
    for round in 0..40 {
        c.apply(with).unwrap();
        // half the rounds send the removal over the daemons' sockets, as a separate batch
        let removal = "no route-map T-out permit 1\n";
        match c.apply_direct(removal).filter(|_| round % 2 == 0) {
            Some(r) => r.unwrap_or_else(|e| panic!("round {round}: over the sockets: {e}")),
            None => c.apply(removal).unwrap(),
        }
        c.apply(rest).unwrap();
        let running = c.running_config().unwrap();
        let stale = [
            "frrk8s-any-ipv4",
            "T-out permit 1",
            "T-out deny 2",
            "frrk8s-originated",
        ];
        if stale.iter().any(|l| running.contains(l)) || !running.contains("route-map T-out deny 1")
        {
            lost = Some((round, running));
            break;
        }
        c.apply(none).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    poller.join().unwrap();
    if let Some((round, running)) = lost {
        let per_daemon: Vec<String> = ["zebra", "mgmtd", "bgpd"]
            .iter()
            .map(|d| {
                let o = lab
                    .node
                    .vtysh_command()
                    .args(["-d", d, "-c", "show running-config"])
                    .output();
                let t = o
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                let l: Vec<&str> = t
                    .lines()
                    .filter(|l| l.contains("prefix-list") || l.contains("route-map"))
                    .collect();
                format!("{d}: {l:?}")
            })
            .collect();
        panic!(
            "round {round}: the batch did not take:\n{running}\n{}",
            per_daemon.join("\n")
        );
    }
}
