//! The withdrawal audit: finds prefixes FRR keeps advertising after their `network` line
//! was removed, and repairs them.
//!
//! FRR 8.4.4 can lose a withdrawal. When a `network` line is removed while a neighbor's
//! session is in its first second (the initial table announcement of its update-group has
//! not run yet), the prefix stays in that neighbor's adj-out and on the peer, with no
//! timeout, although the node's own RIB no longer has it. The lab reproducer behind this
//! module (two nodes, one external FRR router; the node config frr-k8s renders; the removal
//! batch frr-k8s sends) saw it only for removals 700–950 ms after Established, in about one
//! run of six, and in the e2e suite as a Service deleted right after its sessions came up.
//! On the node the state is visible and unambiguous: `advertised-routes` for the neighbor
//! lists the prefix while `show bgp ... <prefix> json` is empty.
//!
//! So after every batch that removes `network` lines, the driver schedules audit rounds
//! ([`ROUNDS`] after the removal). A round looks only at sessions that came up shortly
//! before the removal or since ([`YOUNG`]): the race needs one, and in steady state there
//! is none, so the audit costs nothing. For those it reads the adj-out, and for a withdrawn
//! prefix still listed there it confirms the RIB lacks it before repairing it by
//! originating the prefix again for a moment ([`repair_batches`]; no session reset).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde_json::Value;

use super::config::FrrConfig;
use super::control::{ControlError, FrrControl};
use super::originated::{originated, router_vrf, Afi, Originated};
use super::status::{read_bgp_status, BgpNeighborStatus};

/// When audit rounds run, after the removal. The first runs once FRR's initial
/// announcement of a just-established neighbor (about 1 s after Established) is certainly
/// over; the second catches a session that came up in the meantime.
pub const ROUNDS: [Duration; 2] = [Duration::from_millis(2500), Duration::from_millis(6000)];

/// Sessions established at most this long before the removal are audited.
pub const YOUNG: Duration = Duration::from_secs(10);

/// One audit round waiting for its time.
#[derive(Clone, Debug)]
struct Round {
    due: Instant,
    withdrawn_at: Instant,
    prefixes: BTreeSet<Originated>,
}

/// What one due round must check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DueAudit {
    /// The earliest removal among the merged rounds.
    pub withdrawn_at: Option<Instant>,
    pub prefixes: BTreeSet<Originated>,
}

/// Pending audit rounds.
#[derive(Debug, Default)]
pub struct Audits {
    rounds: Vec<Round>,
}

impl Audits {
    /// `prefixes` stopped being originated at `now`: schedule a round after each of
    /// `delays` ([`ROUNDS`] by default).
    pub fn schedule(&mut self, now: Instant, delays: &[Duration], prefixes: &BTreeSet<Originated>) {
        if prefixes.is_empty() {
            return;
        }
        for &delay in delays {
            self.rounds.push(Round {
                due: now + delay,
                withdrawn_at: now,
                prefixes: prefixes.clone(),
            });
        }
    }

    /// When the next round is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.rounds.iter().map(|r| r.due).min()
    }

    /// Removes the rounds due at `now`, merged into one check.
    pub fn take_due(&mut self, now: Instant) -> DueAudit {
        let mut out = DueAudit::default();
        self.rounds.retain(|r| {
            if r.due > now {
                return true;
            }
            out.withdrawn_at = Some(
                out.withdrawn_at
                    .map_or(r.withdrawn_at, |w| w.min(r.withdrawn_at)),
            );
            out.prefixes.extend(r.prefixes.iter().cloned());
            false
        });
        out
    }
}

/// One neighbor's adj-out to read, for one address family.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Suspect {
    pub peer: String,
    pub vrf: String,
    pub afi: Afi,
}

fn vrf_words(vrf: &str) -> String {
    if vrf.is_empty() {
        String::new()
    } else {
        format!(" vrf {vrf}")
    }
}

impl Suspect {
    /// The neighbor's adj-out.
    pub fn advertised_command(&self) -> String {
        format!(
            "show bgp{} {} unicast neighbors {} advertised-routes json",
            vrf_words(&self.vrf),
            self.afi.word(),
            self.peer
        )
    }

    /// The node's RIB entry of `prefix` in this neighbor's VRF.
    pub fn rib_command(&self, prefix: &IpNet) -> String {
        format!(
            "show bgp{} {} unicast {} json",
            vrf_words(&self.vrf),
            self.afi.word(),
            prefix
        )
    }
}

/// The two batches that repair stale `prefixes` of one VRF and family: originate them
/// again, then stop. Re-originating makes bgpd process each prefix anew; its policy
/// towards the stale neighbor no longer permits the prefix (the allow-list entry went with
/// the `network` line), so bgpd withdraws what that neighbor's adj-out holds, and the
/// removal that follows finds nothing left to withdraw. Measured on FRR 8.4.4: an
/// outbound soft clear (`clear bgp ... soft out`) and an inbound+outbound one leave the
/// prefix on the peer, since they only re-send what the adj-out lists; this works; a hard
/// clear works too but resets the session. A peer whose policy does permit the prefix
/// (a user's `mode: all`) sees it announced and withdrawn again, once.
pub fn repair_batches(router_header: &str, afi: Afi, prefixes: &[IpNet]) -> (String, String) {
    let batch = |no: &str| {
        let mut b = format!("{router_header}\n address-family {} unicast\n", afi.word());
        for p in prefixes {
            b.push_str(&format!("  {no}network {p}\n"));
        }
        b.push_str(" exit-address-family\nexit\n");
        b
    };
    (batch(""), batch("no "))
}

/// The `router bgp` header of `vrf` in `cfg`.
pub fn router_header<'a>(cfg: &'a FrrConfig, vrf: &str) -> Option<&'a str> {
    cfg.routers()
        .find(|r| router_vrf(&r.header) == vrf)
        .map(|r| r.header.as_str())
}

/// The sessions to audit for `due`, `since` after its earliest removal: established, in a
/// VRF and family of a withdrawn prefix, and up since at most [`YOUNG`] before the removal.
pub fn suspects(neighbors: &[BgpNeighborStatus], due: &DueAudit, since: Duration) -> Vec<Suspect> {
    let young = (since + YOUNG).as_millis();
    let families: BTreeSet<(&str, Afi)> = due
        .prefixes
        .iter()
        .map(|o| (o.vrf.as_str(), Afi::of(&o.prefix)))
        .collect();
    let mut out: Vec<Suspect> = neighbors
        .iter()
        .filter(|n| n.established && u128::from(n.uptime_msec) <= young)
        .flat_map(|n| {
            families
                .iter()
                .filter(|(vrf, _)| *vrf == n.vrf)
                .map(|(vrf, afi)| Suspect {
                    peer: n.peer.clone(),
                    vrf: vrf.to_string(),
                    afi: *afi,
                })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The prefixes of an `advertised-routes json` answer.
pub fn advertised(v: &Value) -> BTreeSet<IpNet> {
    v.get("advertisedRoutes")
        .and_then(Value::as_object)
        .map(|routes| {
            routes
                .keys()
                .filter_map(|k| k.parse::<IpNet>().ok())
                .map(|p| p.trunc())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a `show bgp ... <prefix> json` answer has no path for the prefix.
pub fn rib_lacks(v: &Value) -> bool {
    v.get("paths")
        .and_then(Value::as_array)
        .is_none_or(|p| p.is_empty())
}

/// Withdrawn prefixes of `suspect`'s VRF and family that its adj-out still lists and that
/// the current configuration does not originate again. Candidates only: the RIB decides.
pub fn candidates(
    suspect: &Suspect,
    adj_out: &BTreeSet<IpNet>,
    due: &DueAudit,
    originated_now: &BTreeSet<Originated>,
) -> Vec<IpNet> {
    due.prefixes
        .iter()
        .filter(|o| o.vrf == suspect.vrf && Afi::of(&o.prefix) == suspect.afi)
        .filter(|o| adj_out.contains(&o.prefix) && !originated_now.contains(o))
        .map(|o| o.prefix)
        .collect()
}

/// What one audit round found: the neighbors still advertising withdrawn prefixes, with
/// the batches that repair them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Adj-outs read.
    pub checked: usize,
    /// Neighbors to repair, with the prefixes found stale.
    pub repaired: Vec<(Suspect, Vec<IpNet>)>,
    /// Per repair: originate the stale prefixes again, then (after [`REPAIR_GAP`]) remove
    /// them; the caller runs them (see [`repair`]).
    pub batches: Vec<(String, String)>,
}

/// How long bgpd gets to process the re-originated prefixes before they are removed
/// again (its route processing runs asynchronously to the configuration commands).
pub const REPAIR_GAP: Duration = Duration::from_millis(300);

/// Reads one due round from FRR, `since` after its earliest removal, with `applied` the
/// configuration FRR runs (a prefix it originates again is not stale; its router headers
/// are needed for the repair). Changes nothing: the repairs are in the report.
pub fn find(
    control: &impl FrrControl,
    due: &DueAudit,
    since: Duration,
    applied: &FrrConfig,
) -> Result<AuditReport, ControlError> {
    let mut report = AuditReport::default();
    if due.prefixes.is_empty() {
        return Ok(report);
    }
    let originated_now = originated(applied);
    let neighbors = read_bgp_status(control)?;
    for suspect in suspects(&neighbors, due, since) {
        let adj_out = advertised(&control.show_json(&suspect.advertised_command())?);
        report.checked += 1;
        let mut stale = Vec::new();
        for p in candidates(&suspect, &adj_out, due, &originated_now) {
            if rib_lacks(&control.show_json(&suspect.rib_command(&p))?) {
                stale.push(p);
            }
        }
        if stale.is_empty() {
            continue;
        }
        let Some(header) = router_header(applied, &suspect.vrf) else {
            // the router itself went: its sessions are closed, nothing stays advertised
            continue;
        };
        report
            .batches
            .push(repair_batches(header, suspect.afi, &stale));
        report.repaired.push((suspect, stale));
    }
    Ok(report)
}

/// Runs a report's repairs: each batch pair with [`REPAIR_GAP`] between its halves, on
/// tokio's clock. `apply` runs one batch (off the async threads: vtysh blocks). On an
/// error the caller must stop trusting its view of FRR's configuration: a repair may
/// have stopped half-way.
pub async fn repair<F, Fut>(report: &AuditReport, mut apply: F) -> Result<(), ControlError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), ControlError>>,
{
    for (add, remove) in &report.batches {
        apply(add.clone()).await?;
        tokio::time::sleep(REPAIR_GAP).await;
        apply(remove.clone()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frr::originated::withdrawn;
    use serde_json::json;

    /// The repair's two halves run REPAIR_GAP apart on tokio's clock (paused here: the
    /// test takes no time), in order, and an error stops it.
    #[tokio::test(start_paused = true)]
    async fn repairs_wait_the_gap_on_tokios_clock() {
        let report = AuditReport {
            batches: vec![
                ("add-1".into(), "remove-1".into()),
                ("add-2".into(), "remove-2".into()),
            ],
            ..Default::default()
        };
        let start = tokio::time::Instant::now();
        let log = std::sync::Mutex::new(Vec::new());
        repair(&report, |b| {
            log.lock().unwrap().push((b, start.elapsed()));
            async { Ok(()) }
        })
        .await
        .unwrap();
        let log = log.into_inner().unwrap();
        let names: Vec<&str> = log.iter().map(|(b, _)| b.as_str()).collect();
        assert_eq!(names, ["add-1", "remove-1", "add-2", "remove-2"]);
        assert_eq!(log[1].1 - log[0].1, REPAIR_GAP);
        assert_eq!(log[3].1, REPAIR_GAP * 2);

        let mut calls = 0;
        let r = repair(&report, |_| {
            calls += 1;
            async { Err(ControlError::Unavailable("down".into())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1, "nothing after a failed half");
    }

    fn cfg(text: &str) -> FrrConfig {
        FrrConfig::parse(text)
    }

    const TWO: &str = "router bgp 64512\n address-family ipv4 unicast\n  network 198.18.0.1/32\n  network 198.18.0.2/32\n exit-address-family\n address-family ipv6 unicast\n  network 2001:db8::1/128\n exit-address-family\nexit\nrouter bgp 64512 vrf red\n address-family ipv4 unicast\n  network 198.18.0.1/32\n exit-address-family\nexit\n";
    const ONE: &str = "router bgp 64512\n address-family ipv4 unicast\n  network 198.18.0.2/32\n exit-address-family\nexit\nrouter bgp 64512 vrf red\n address-family ipv4 unicast\n  network 198.18.0.1/32\n exit-address-family\nexit\n";

    fn o(vrf: &str, p: &str) -> Originated {
        Originated {
            vrf: vrf.into(),
            prefix: p.parse().unwrap(),
        }
    }

    #[test]
    fn withdrawn_prefixes_per_vrf() {
        assert_eq!(originated(&cfg(TWO)).len(), 4);
        let w = withdrawn(&cfg(TWO), &cfg(ONE));
        assert_eq!(
            w,
            [o("", "198.18.0.1/32"), o("", "2001:db8::1/128")]
                .into_iter()
                .collect()
        );
        assert!(withdrawn(&cfg(ONE), &cfg(TWO)).is_empty());
    }

    #[test]
    fn rounds_are_due_in_order_and_merged() {
        let t0 = Instant::now();
        let mut a = Audits::default();
        a.schedule(t0, &ROUNDS, &BTreeSet::new());
        assert_eq!(a.next_due(), None);
        a.schedule(t0, &ROUNDS, &[o("", "198.18.0.1/32")].into_iter().collect());
        a.schedule(
            t0 + Duration::from_millis(100),
            &ROUNDS,
            &[o("", "198.18.0.2/32")].into_iter().collect(),
        );
        assert_eq!(a.next_due(), Some(t0 + ROUNDS[0]));
        assert!(a.take_due(t0 + Duration::from_secs(1)).prefixes.is_empty());
        let due = a.take_due(t0 + ROUNDS[0] + Duration::from_millis(100));
        assert_eq!(due.withdrawn_at, Some(t0));
        assert_eq!(due.prefixes.len(), 2);
        assert_eq!(a.next_due(), Some(t0 + ROUNDS[1]));
        a.take_due(t0 + Duration::from_secs(60));
        assert_eq!(a.next_due(), None);
    }

    fn neighbor(peer: &str, vrf: &str, established: bool, uptime_msec: u64) -> BgpNeighborStatus {
        BgpNeighborStatus {
            peer: peer.into(),
            vrf: vrf.into(),
            established,
            uptime_msec,
            ..Default::default()
        }
    }

    #[test]
    fn only_young_sessions_of_the_family_are_suspects() {
        let due = DueAudit {
            withdrawn_at: None,
            prefixes: [o("", "198.18.0.1/32")].into_iter().collect(),
        };
        let since = Duration::from_millis(2500);
        let n = [
            neighbor("192.0.2.1", "", true, 3_400), // up 0.9 s before the removal
            neighbor("192.0.2.2", "", true, 600_000), // mature
            neighbor("192.0.2.3", "", false, 100),  // not established
            neighbor("192.0.2.4", "red", true, 1_000), // other VRF
        ];
        let s = suspects(&n, &due, since);
        assert_eq!(
            s,
            vec![Suspect {
                peer: "192.0.2.1".into(),
                vrf: String::new(),
                afi: Afi::Ipv4
            }]
        );
        assert_eq!(
            s[0].advertised_command(),
            "show bgp ipv4 unicast neighbors 192.0.2.1 advertised-routes json"
        );
        let red = Suspect {
            peer: "192.0.2.4".into(),
            vrf: "red".into(),
            afi: Afi::Ipv6,
        };
        assert_eq!(
            red.rib_command(&"2001:db8::1/128".parse().unwrap()),
            "show bgp vrf red ipv6 unicast 2001:db8::1/128 json"
        );
    }

    #[test]
    fn repair_originates_again_then_stops() {
        let ps: Vec<IpNet> = vec!["2001:db8::1/128".parse().unwrap()];
        let (add, remove) = repair_batches("router bgp 64512 vrf red", Afi::Ipv6, &ps);
        assert_eq!(
            add,
            "router bgp 64512 vrf red\n address-family ipv6 unicast\n  network 2001:db8::1/128\n exit-address-family\nexit\n"
        );
        assert!(remove.contains("  no network 2001:db8::1/128\n"));
        assert_eq!(
            router_header(&cfg(TWO), "red"),
            Some("router bgp 64512 vrf red")
        );
        assert_eq!(router_header(&cfg(TWO), ""), Some("router bgp 64512"));
        assert_eq!(router_header(&cfg(TWO), "blue"), None);
    }

    #[test]
    fn candidates_are_withdrawn_listed_and_not_readded() {
        // As FRR 8.4.4 answered in the lab while the route was stale.
        let adj = advertised(&json!({
            "bgpTableVersion": 2, "localAS": 64512,
            "advertisedRoutes": {
                "198.18.0.0/32": {"addrPrefix": "198.18.0.0", "prefixLen": 32, "network": "198.18.0.0/32"},
                "198.18.0.7/32": {"addrPrefix": "198.18.0.7", "prefixLen": 32, "network": "198.18.0.7/32"}
            },
            "totalPrefixCounter": 2
        }));
        assert_eq!(adj.len(), 2);
        let due = DueAudit {
            withdrawn_at: None,
            prefixes: [
                o("", "198.18.0.0/32"),
                o("", "198.18.0.7/32"),
                o("", "198.18.0.9/32"),
            ]
            .into_iter()
            .collect(),
        };
        let s = Suspect {
            peer: "192.0.2.1".into(),
            vrf: String::new(),
            afi: Afi::Ipv4,
        };
        let now: BTreeSet<Originated> = [o("", "198.18.0.7/32")].into_iter().collect();
        assert_eq!(
            candidates(&s, &adj, &due, &now),
            vec!["198.18.0.0/32".parse::<IpNet>().unwrap()]
        );
        assert!(advertised(&json!({})).is_empty());
        assert!(rib_lacks(&json!({})));
        assert!(!rib_lacks(
            &json!({"prefix": "198.18.0.0/32", "paths": [{"valid": true}]})
        ));
    }
}
