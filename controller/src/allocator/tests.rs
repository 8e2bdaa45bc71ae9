use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

fn svc(key: &str) -> ServiceRequest {
    let (ns, _) = key.split_once('/').unwrap();
    ServiceRequest {
        key: key.into(),
        namespace: ns.into(),
        cluster_families: vec![Family::V4],
        ..Default::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn shared(mut s: ServiceRequest, key: &str, ports: &[(Protocol, u16)]) -> ServiceRequest {
    s.sharing = SharingProfile {
        sharing_key: Some(key.into()),
        backend_key: String::new(),
        ports: ports.iter().copied().collect(),
    };
    s
}

#[test]
fn first_fit_in_address_order_and_reuse_after_release() {
    let mut a = Allocator::new(vec![Pool::new("p", &["192.0.2.0/30", "198.18.0.0/31"])]);
    let got: Vec<IpAddr> = (0..6)
        .map(|i| a.allocate(&svc(&format!("ns/s{i}"))).unwrap().ips[0])
        .collect();
    assert_eq!(
        got,
        [
            "192.0.2.0",
            "192.0.2.1",
            "192.0.2.2",
            "192.0.2.3",
            "198.18.0.0",
            "198.18.0.1"
        ]
        .map(ip)
    );
    assert_eq!(a.allocate(&svc("ns/s6")), Err(AllocError::NoAvailableIps));
    a.unassign("ns/s1");
    assert_eq!(
        a.allocate(&svc("ns/s6")).unwrap().ips,
        vec![ip("192.0.2.1")]
    );
    // allocate is idempotent for a holder
    assert_eq!(
        a.allocate(&svc("ns/s6")).unwrap().ips,
        vec![ip("192.0.2.1")]
    );
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let mut p = Pool::new("p", &["192.0.2.255/32", "198.18.1.0/31"]);
    p.avoid_buggy_ips = true;
    let mut a = Allocator::new(vec![p]);
    assert_eq!(
        a.allocate(&svc("ns/a")).unwrap().ips,
        vec![ip("198.18.1.1")]
    );
    assert_eq!(a.allocate(&svc("ns/b")), Err(AllocError::NoAvailableIps));
    // turning avoidBuggyIPs on evicts holders of .0/.255 addresses
    let mut a = Allocator::new(vec![Pool::new("p", &["192.0.2.0/30"])]);
    a.allocate(&svc("ns/a")).unwrap();
    a.allocate(&svc("ns/b")).unwrap();
    let mut p = Pool::new("p", &["192.0.2.0/30"]);
    p.avoid_buggy_ips = true;
    assert_eq!(a.set_pools(vec![p]), vec!["ns/a".to_string()]);
    assert_eq!(a.assignment("ns/b").unwrap().ips, vec![ip("192.0.2.1")]);
}

#[test]
fn pinned_pools_by_priority_then_name_then_open_pools() {
    let pinned = |name: &str, cidr: &str, prio: i32, nss: &[&str]| {
        let mut p = Pool::new(name, &[cidr]);
        p.allocation = Some(ServiceAllocation {
            priority: prio,
            namespaces: nss.iter().map(|s| s.to_string()).collect(),
            restricts_namespaces: !nss.is_empty(),
            service_selectors: vec![],
        });
        p
    };
    let mut a = Allocator::new(vec![
        Pool::new("a-open", &["198.18.0.0/32"]),
        pinned("z-low", "192.0.2.10/32", 0, &["team"]),
        pinned("m-prio2", "192.0.2.20/32", 2, &["team"]),
        pinned("b-prio1", "192.0.2.30/32", 1, &["team"]),
        pinned("c-prio1", "192.0.2.40/32", 1, &["other"]),
    ]);
    let order: Vec<String> = (0..4)
        .map(|i| a.allocate(&svc(&format!("team/s{i}"))).unwrap().pool)
        .collect();
    assert_eq!(order, ["b-prio1", "m-prio2", "z-low", "a-open"]);
    // a service outside the pinned namespaces only sees open pools
    assert_eq!(a.allocate(&svc("else/x")), Err(AllocError::NoAvailableIps));
    // explicit pool request still honours serviceAllocation
    let mut s = svc("else/y");
    s.requested_pool = Some("c-prio1".into());
    assert_eq!(
        a.allocate(&s),
        Err(AllocError::PoolIncompatible("c-prio1".into()))
    );
    s.requested_pool = Some("nope".into());
    assert_eq!(a.allocate(&s), Err(AllocError::UnknownPool("nope".into())));
}

#[test]
fn auto_assign_false_only_by_request() {
    let mut p = Pool::new("manual", &["192.0.2.0/31"]);
    p.auto_assign = false;
    let mut a = Allocator::new(vec![p]);
    assert_eq!(a.allocate(&svc("ns/a")), Err(AllocError::NoEligiblePool));
    let mut s = svc("ns/a");
    s.requested_pool = Some("manual".into());
    assert_eq!(a.allocate(&s).unwrap().ips, vec![ip("192.0.2.0")]);
    let mut s = svc("ns/b");
    s.requested_ips = vec![ip("192.0.2.1")];
    assert_eq!(a.allocate(&s).unwrap().pool, "manual");
}

#[test]
fn requested_ips_are_checked() {
    let mut a = Allocator::new(vec![
        Pool::new("p", &["192.0.2.0/29"]),
        Pool::new("q", &["2001:db8::/125"]),
    ]);
    let mut s = svc("ns/a");
    s.requested_ips = vec![ip("198.18.0.1")];
    assert_eq!(
        a.allocate(&s),
        Err(AllocError::NotInAnyPool(ip("198.18.0.1")))
    );
    s.requested_ips = vec![ip("2001:db8::1")];
    assert!(matches!(
        a.allocate(&s),
        Err(AllocError::FamilyMismatch { .. })
    ));
    s.requested_ips = vec![ip("192.0.2.5")];
    s.requested_pool = Some("q".into());
    assert!(matches!(
        a.allocate(&s),
        Err(AllocError::PoolMismatch { .. })
    ));
    s.requested_pool = None;
    assert_eq!(a.allocate(&s).unwrap().ips, vec![ip("192.0.2.5")]);
    let mut t = svc("ns/b");
    t.requested_ips = vec![ip("192.0.2.5")];
    assert!(matches!(
        a.allocate(&t),
        Err(AllocError::Sharing(
            SharingConflict::OtherNotShareable { .. }
        ))
    ));
}

#[test]
fn sharing_by_request_and_by_auto_allocation() {
    let mut a = Allocator::new(vec![Pool::new("p", &["192.0.2.0/29"])]);
    let dns_tcp = shared(svc("ns/dns-tcp"), "dns", &[(Protocol::Tcp, 53)]);
    let dns_udp = shared(svc("ns/dns-udp"), "dns", &[(Protocol::Udp, 53)]);
    let first = a.allocate(&svc("ns/plain")).unwrap().ips[0];
    let t = a.allocate(&dns_tcp).unwrap().ips[0];
    assert_ne!(t, first);
    // auto allocation puts the compatible service on the same address
    assert_eq!(a.allocate(&dns_udp).unwrap().ips[0], t);
    assert_eq!(a.users_of(&t), vec!["ns/dns-tcp", "ns/dns-udp"]);
    assert_eq!(
        a.pool_stats("p").unwrap().assigned_ipv4,
        2,
        "a shared address counts once"
    );
    // a third with a clashing port does not join
    let clash = shared(svc("ns/dns-tcp2"), "dns", &[(Protocol::Tcp, 53)]);
    assert_ne!(a.allocate(&clash).unwrap().ips[0], t);
    let mut req = shared(svc("ns/dns-tcp3"), "dns", &[(Protocol::Tcp, 53)]);
    req.requested_ips = vec![t];
    let err = a.allocate(&req).unwrap_err().to_string();
    assert!(
        err.contains("port TCP/53 is already in use on 192.0.2.1"),
        "{err}"
    );
}

#[test]
fn dual_stack_policies() {
    let mut a = Allocator::new(vec![
        Pool::new("v4only", &["192.0.2.0/32"]),
        Pool::new("zdual", &["198.18.0.0/32", "2001:db8::/128"]),
    ]);
    let mut s = svc("ns/dual");
    s.cluster_families = vec![Family::V6, Family::V4];
    s.policy = FamilyPolicy::RequireDualStack;
    assert_eq!(
        a.allocate(&s).unwrap(),
        Assignment {
            pool: "zdual".into(),
            ips: vec![ip("2001:db8::"), ip("198.18.0.0")]
        }
    );
    let mut p = svc("ns/prefer");
    p.cluster_families = vec![Family::V4, Family::V6];
    p.policy = FamilyPolicy::PreferDualStack;
    // no pool has both families free any more: falls back to the primary family
    assert_eq!(
        a.allocate(&p).unwrap(),
        Assignment {
            pool: "v4only".into(),
            ips: vec![ip("192.0.2.0")]
        }
    );
    let mut r = svc("ns/req1");
    r.policy = FamilyPolicy::RequireDualStack;
    assert_eq!(a.allocate(&r), Err(AllocError::NotEnoughClusterIps(1)));
    let mut none = svc("ns/none");
    none.cluster_families.clear();
    assert_eq!(a.allocate(&none), Err(AllocError::NoClusterIp));
}

#[test]
fn pool_changes_rehome_or_evict() {
    let mut a = Allocator::new(vec![Pool::new("old", &["192.0.2.0/29"])]);
    a.allocate(&svc("ns/a")).unwrap();
    a.allocate(&svc("ns/b")).unwrap();
    // same addresses now in a pool with another name: re-homed, nothing evicted
    assert!(a
        .set_pools(vec![Pool::new("new", &["192.0.2.0/29"])])
        .is_empty());
    assert_eq!(a.assignment("ns/a").unwrap().pool, "new");
    // shrink: the holder of .1 is evicted and can be reallocated inside the new range
    assert_eq!(
        a.set_pools(vec![Pool::new("new", &["192.0.2.0/32", "192.0.2.4/30"])]),
        vec!["ns/b".to_string()]
    );
    assert_eq!(a.allocate(&svc("ns/b")).unwrap().ips, vec![ip("192.0.2.4")]);
    // all pools deleted: everything evicted
    assert_eq!(a.set_pools(vec![]).len(), 2);
    assert_eq!(a.allocate(&svc("ns/b")), Err(AllocError::NoPools));
}

#[test]
fn pool_stats_per_family() {
    let mut a = Allocator::new(vec![Pool::new("p", &["192.0.2.0/30", "2001:db8::/126"])]);
    let mut s = svc("ns/d");
    s.cluster_families = vec![Family::V4, Family::V6];
    s.policy = FamilyPolicy::RequireDualStack;
    a.allocate(&s).unwrap();
    a.allocate(&svc("ns/e")).unwrap();
    assert_eq!(
        a.pool_stats("p").unwrap(),
        PoolStats {
            assigned_ipv4: 2,
            assigned_ipv6: 1,
            available_ipv4: 2,
            available_ipv6: 3
        }
    );
    assert_eq!(a.pool_stats("nope"), None);
}

// ---------- properties ----------

#[derive(Clone, Debug)]
struct Case {
    pools: Vec<Pool>,
    services: Vec<ServiceRequest>,
}

fn arb_case() -> impl Strategy<Value = Case> {
    let pool = (
        0u8..4,
        0u8..4,
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0i32..3),
    )
        .prop_map(|(a, len, auto, buggy, prio)| (a, len, auto, buggy, prio));
    let service = (
        0u8..3,
        prop::option::of(0u8..2),
        prop::collection::btree_set((0u8..2, 0u16..3), 0..3),
        any::<bool>(),
        prop::option::of(0u8..40),
    );
    (
        prop::collection::vec(pool, 1..5),
        prop::collection::vec(service, 1..40),
    )
        .prop_map(|(pools, services)| {
            let pools = pools
                .into_iter()
                .enumerate()
                .map(|(i, (a, len, auto, buggy, prio))| {
                    // disjoint blocks of 198.18.i.0, sizes 1..8 addresses, plus a v6 block
                    let v4 = format!("198.18.{}.{}/{}", i, a * 64, 32 - len.min(3));
                    let v6 = format!("2001:db8:{i}::/126");
                    let mut p = Pool::new(&format!("pool{i}"), &[v4.as_str(), v6.as_str()]);
                    p.auto_assign = auto || i == 0;
                    p.avoid_buggy_ips = buggy;
                    p.allocation = prio.map(|prio| ServiceAllocation {
                        priority: prio,
                        ..Default::default()
                    });
                    p
                })
                .collect();
            let services = services
                .into_iter()
                .enumerate()
                .map(|(i, (ns, key, ports, dual, req))| {
                    let mut s = svc(&format!("ns{ns}/svc{i:02}"));
                    if dual {
                        s.cluster_families = vec![Family::V4, Family::V6];
                        s.policy = FamilyPolicy::PreferDualStack;
                    }
                    s.sharing = SharingProfile {
                        sharing_key: key.map(|k| format!("k{k}")),
                        backend_key: String::new(),
                        ports: ports
                            .into_iter()
                            .map(|(p, n)| {
                                (if p == 0 { Protocol::Tcp } else { Protocol::Udp }, 80 + n)
                            })
                            .collect(),
                    };
                    if let Some(r) = req {
                        s.requested_ips = vec![ip(&format!("198.18.{}.{}", r % 4, r / 4))];
                    }
                    s
                })
                .collect();
            Case { pools, services }
        })
}

fn check_invariants(a: &Allocator, case: &Case) {
    let by_key: BTreeMap<&str, &ServiceRequest> =
        case.services.iter().map(|s| (s.key.as_str(), s)).collect();
    let assignments = a.assignments();
    for (key, asg) in &assignments {
        let pool = case
            .pools
            .iter()
            .find(|p| p.name == asg.pool)
            .expect("assigned pool exists");
        let s = by_key[key.as_str()];
        assert!(
            pool.compatible(&s.namespace, &s.labels),
            "{key} got incompatible pool {}",
            pool.name
        );
        for ip in &asg.ips {
            assert!(pool.contains(ip), "{key}: {ip} not inside {}", pool.name);
        }
        let fams: BTreeSet<Family> = asg.ips.iter().map(Family::of).collect();
        assert_eq!(
            fams.len(),
            asg.ips.len(),
            "{key}: two addresses of one family"
        );
    }
    // no two services that may not share hold the same address
    let mut holders: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
    for (key, asg) in &assignments {
        for ip in &asg.ips {
            holders.entry(*ip).or_default().push(key);
        }
    }
    for (ip, keys) in holders {
        for (i, k1) in keys.iter().enumerate() {
            for k2 in &keys[i + 1..] {
                let r = sharing::check(
                    &ip.to_string(),
                    &by_key[k1].sharing,
                    k2,
                    &by_key[k2].sharing,
                );
                assert!(r.is_ok(), "{k1} and {k2} share {ip}: {r:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold(case in arb_case()) {
        let mut a = Allocator::new(case.pools.clone());
        a.allocate_batch(&case.services);
        check_invariants(&a, &case);
    }

    #[test]
    fn input_order_does_not_matter(case in arb_case(), seed in any::<u64>()) {
        let mut a = Allocator::new(case.pools.clone());
        let r1 = a.allocate_batch(&case.services);
        let mut shuffled = case.services.clone();
        // deterministic shuffle from the seed
        let n = shuffled.len();
        let mut x = seed | 1;
        for i in (1..n).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut pools = case.pools.clone();
        pools.reverse();
        let mut b = Allocator::new(pools);
        let r2 = b.allocate_batch(&shuffled);
        prop_assert_eq!(r1, r2);
        prop_assert_eq!(a.assignments(), b.assignments());
    }

    #[test]
    fn rebuilding_from_statuses_changes_nothing(case in arb_case()) {
        let mut a = Allocator::new(case.pools.clone());
        a.allocate_batch(&case.services);
        let before = a.assignments();
        // a restarted controller: reload every existing assignment first, then run again
        let mut b = Allocator::new(case.pools.clone());
        for s in &case.services {
            if let Some(asg) = before.get(&s.key) {
                prop_assert_eq!(&b.assign(s, &asg.ips).expect("existing assignment reloads"), asg);
            }
        }
        b.allocate_batch(&case.services);
        // services that had nothing may still get nothing or something, but nobody moves
        for (k, asg) in &before {
            prop_assert_eq!(b.assignment(k), Some(asg));
        }
        prop_assert_eq!(b.assignments(), before);
    }
}
