//! Per-service convergence (upstream `convergeBalancer`), as a pure function over the
//! allocator and the Service.
//!
//! 1. Not `LoadBalancer` → release and clear. Another `loadBalancerClass` → release in memory,
//!    leave the object alone.
//! 2. Invalid request (both the annotation and `spec.loadBalancerIP`, unparsable IP) →
//!    release, clear, `LoadBalancerFailed`.
//! 3. The Service already shows IPs: if the requested IPs changed, release; else re-`assign`
//!    them (idempotent). A changed pool annotation releases silently; any other failure (IP no
//!    longer in a pool, incompatible pool, sharing conflict) gives `ClearAssignment` and
//!    releases.
//! 4. Nothing held → allocate (requested IPs, then requested pool, then automatic); failure →
//!    clear and `AllocationFailed` with the allocator's reason.
//!
//! 5. PreferDualStack with a dual-stack cluster IP and one held family: the other family is
//!    added from the same pool when it has one (`IPAllocated` with both addresses); a
//!    pool with that family but no usable address gives `AdditionalAssignFailed` and the
//!    Service keeps the family it has.

use std::net::IpAddr;

use crate::slim::Service;
use kube::ResourceExt;
use metallb_api::metallb::annotations;

use crate::allocator::{AllocError, Allocator};
use crate::service::{intake, key, Intake};

/// What the Service should show: ingress IPs (primary family first) and the pool annotation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub ips: Vec<IpAddr>,
    pub pool: Option<String>,
}

impl Desired {
    pub fn cleared() -> Self {
        Desired::default()
    }
}

/// Event type.
pub use metallb_runtime::events::EventType as NoteType;

/// An event to emit on the Service (upstream reasons).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    pub type_: NoteType,
    pub reason: &'static str,
    pub message: String,
}

pub const REASON_IP_ALLOCATED: &str = "IPAllocated";
pub const REASON_ALLOCATION_FAILED: &str = "AllocationFailed";
pub const REASON_CLEAR_ASSIGNMENT: &str = "ClearAssignment";
pub const REASON_LOAD_BALANCER_FAILED: &str = "LoadBalancerFailed";
pub const REASON_DEPRECATED_ANNOTATION: &str = "deprecatedAnnotation";
pub const REASON_ADDITIONAL_ASSIGN_FAILED: &str = "AdditionalAssignFailed";

impl Note {
    pub fn warning(reason: &'static str, message: impl Into<String>) -> Note {
        Note {
            type_: NoteType::Warning,
            reason,
            message: message.into(),
        }
    }

    /// `Assigned IP ["192.0.2.1"]`, as upstream words it.
    pub fn allocated(ips: &[IpAddr]) -> Note {
        let list: Vec<String> = ips.iter().map(|i| format!("{:?}", i.to_string())).collect();
        Note {
            type_: NoteType::Normal,
            reason: REASON_IP_ALLOCATED,
            message: format!("Assigned IP [{}]", list.join(" ")),
        }
    }
}

/// The outcome for one Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Another controller's Service: never write to it.
    Ignore,
    /// Make the Service show `desired`; emit `notes` (subject to de-duplication).
    Converge {
        desired: Desired,
        notes: Vec<Note>,
        /// True when the Service wanted an address and got none: retried when addresses
        /// are freed.
        pending: bool,
    },
}

/// Converge one Service. `current` is what the Service shows in
/// `status.loadBalancer.ingress` (or what this controller last wrote, if the watch has not
/// caught up yet).
pub fn converge(
    alloc: &mut Allocator,
    svc: &Service,
    lb_class: Option<&str>,
    current: &[String],
) -> Decision {
    let key = key(svc);
    let req = match intake(svc, lb_class) {
        Intake::OtherClass => {
            alloc.unassign(&key);
            return Decision::Ignore;
        }
        Intake::NotLoadBalancer => {
            alloc.unassign(&key);
            return clear(Vec::new(), false);
        }
        Intake::Invalid(e) => {
            alloc.unassign(&key);
            let note = Note::warning(REASON_LOAD_BALANCER_FAILED, e.to_string());
            return clear(vec![note], true);
        }
        Intake::Request(req) => req,
    };
    let mut notes = Vec::new();
    let legacy = annotations::legacy_keys(svc.annotations());
    if !legacy.is_empty() {
        notes.push(Note::warning(
            REASON_DEPRECATED_ANNOTATION,
            format!(
                "service uses deprecated annotations ({}); use the {} prefix",
                legacy.join(", "),
                annotations::PREFIX
            ),
        ));
    }
    if !current.is_empty() {
        let parsed: Option<Vec<IpAddr>> = current.iter().map(|s| s.parse().ok()).collect();
        match parsed {
            None => {
                notes.push(Note::warning(
                    REASON_CLEAR_ASSIGNMENT,
                    format!(
                        "current IP [{}] not allowed by config: not an IP address, will attempt for new IP assignment",
                        current.join(" ")
                    ),
                ));
                alloc.unassign(&key);
            }
            Some(ips) if !req.requested_ips.is_empty() && !same_set(&ips, &req.requested_ips) => {
                alloc.unassign(&key);
            }
            Some(ips) => match alloc.assign(&req, &ips) {
                Ok(held) => {
                    // The reconciler emits IPAllocated for the new address list.
                    let a = match alloc.add_missing_family(&req) {
                        Ok(Some(more)) => more,
                        Ok(None) => held,
                        Err(e) => {
                            notes.push(Note::warning(
                                REASON_ADDITIONAL_ASSIGN_FAILED,
                                format!("Failed to assign additional IP to {key:?}: {e}"),
                            ));
                            held
                        }
                    };
                    return Decision::Converge {
                        desired: Desired {
                            ips: a.ips,
                            pool: Some(a.pool),
                        },
                        notes,
                        pending: false,
                    };
                }
                Err(AllocError::PoolMismatch { .. }) => {
                    alloc.unassign(&key);
                }
                Err(e) => {
                    notes.push(Note::warning(
                        REASON_CLEAR_ASSIGNMENT,
                        format!(
                            "current IP [{}] not allowed by config: {e}, will attempt for new IP assignment",
                            current.join(" ")
                        ),
                    ));
                    alloc.unassign(&key);
                }
            },
        }
    }
    match alloc.allocate(&req) {
        Ok(a) => Decision::Converge {
            desired: Desired {
                ips: a.ips,
                pool: Some(a.pool),
            },
            notes,
            pending: false,
        },
        Err(e) => {
            notes.push(Note::warning(
                REASON_ALLOCATION_FAILED,
                format!("Failed to allocate IP for {key:?}: {e}"),
            ));
            clear(notes, true)
        }
    }
}

fn clear(notes: Vec<Note>, pending: bool) -> Decision {
    Decision::Converge {
        desired: Desired::cleared(),
        notes,
        pending,
    }
}

fn same_set(a: &[IpAddr], b: &[IpAddr]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::Pool;
    use crate::service::tests::mk_svc;

    fn ips(d: &Decision) -> Vec<String> {
        match d {
            Decision::Converge { desired, .. } => {
                desired.ips.iter().map(|i| i.to_string()).collect()
            }
            Decision::Ignore => vec!["<ignored>".into()],
        }
    }

    #[test]
    fn keeps_current_ips_and_reports_clear_assignment() {
        let mut a = Allocator::new(vec![Pool::new("p", &["192.0.2.0/30"])]);
        let s = mk_svc("a");
        // Restart: the status shows .2; it is reclaimed, not reallocated to .0.
        let d = converge(&mut a, &s, None, &["192.0.2.2".into()]);
        assert_eq!(ips(&d), ["192.0.2.2"]);
        // Pool shrinks: .2 is gone, a new address with a ClearAssignment note.
        a.set_pools(vec![Pool::new("p", &["192.0.2.0/31"])]);
        let d = converge(&mut a, &s, None, &["192.0.2.2".into()]);
        assert_eq!(ips(&d), ["192.0.2.0"]);
        let Decision::Converge { notes, desired, .. } = d else {
            panic!()
        };
        assert_eq!(notes[0].reason, REASON_CLEAR_ASSIGNMENT);
        assert_eq!(desired.pool.as_deref(), Some("p"));
    }

    #[test]
    fn failures_clear_and_are_pending() {
        let mut a = Allocator::new(vec![]);
        let d = converge(&mut a, &mk_svc("a"), None, &[]);
        let Decision::Converge {
            desired,
            notes,
            pending,
        } = d
        else {
            panic!()
        };
        assert!(pending);
        assert_eq!(desired, Desired::cleared());
        assert_eq!(notes[0].reason, REASON_ALLOCATION_FAILED);
        assert_eq!(
            notes[0].message,
            "Failed to allocate IP for \"ns/a\": no IPAddressPool is configured"
        );
    }

    #[test]
    fn other_class_is_ignored_and_released() {
        let mut a = Allocator::new(vec![Pool::new("p", &["192.0.2.0/30"])]);
        let mut s = mk_svc("a");
        converge(&mut a, &s, None, &[]);
        assert!(a.assignment("ns/a").is_some());
        s.spec.as_mut().unwrap().load_balancer_class = Some("other".into());
        assert_eq!(converge(&mut a, &s, None, &[]), Decision::Ignore);
        assert!(a.assignment("ns/a").is_none());
    }

    #[test]
    fn prefer_dual_stack_gains_the_missing_family_from_its_pool() {
        let mut s = mk_svc("a");
        let spec = s.spec.as_mut().unwrap();
        spec.cluster_ips = Some(vec!["10.96.0.1".into(), "fd00::1".into()]);
        spec.ip_family_policy = Some("PreferDualStack".into());
        // v4-only pool: one family, no complaint.
        let mut a = Allocator::new(vec![Pool::new("p", &["192.0.2.0/30"])]);
        let d = converge(&mut a, &s, None, &[]);
        assert_eq!(ips(&d), ["192.0.2.0"]);
        let d = converge(&mut a, &s, None, &["192.0.2.0".into()]);
        assert_eq!(ips(&d), ["192.0.2.0"]);
        assert!(matches!(&d, Decision::Converge { notes, .. } if notes.is_empty()));
        // The pool gains IPv6: the held v4 stays, v6 is added, primary family first.
        a.set_pools(vec![Pool::new("p", &["192.0.2.0/30", "2001:db8::/126"])]);
        let d = converge(&mut a, &s, None, &["192.0.2.0".into()]);
        assert_eq!(ips(&d), ["192.0.2.0", "2001:db8::"]);
        // A v6-primary service holding v6 gets v4 added after it.
        let mut s6 = mk_svc("b");
        let spec = s6.spec.as_mut().unwrap();
        spec.cluster_ips = Some(vec!["fd00::2".into(), "10.96.0.2".into()]);
        spec.ip_family_policy = Some("PreferDualStack".into());
        let d = converge(&mut a, &s6, None, &["2001:db8::1".into()]);
        assert_eq!(ips(&d), ["2001:db8::1", "192.0.2.1"]);
        // No v6 left in the pool: the service keeps v4 and says why.
        a.set_pools(vec![Pool::new("p", &["192.0.2.0/30", "2001:db8::/127"])]);
        let mut s3 = mk_svc("c");
        let spec = s3.spec.as_mut().unwrap();
        spec.cluster_ips = Some(vec!["10.96.0.3".into(), "fd00::3".into()]);
        spec.ip_family_policy = Some("PreferDualStack".into());
        let d = converge(&mut a, &s3, None, &["192.0.2.2".into()]);
        assert_eq!(ips(&d), ["192.0.2.2"]);
        let Decision::Converge { notes, .. } = d else {
            panic!()
        };
        assert_eq!(notes[0].reason, REASON_ADDITIONAL_ASSIGN_FAILED);
        assert_eq!(
            notes[0].message,
            "Failed to assign additional IP to \"ns/c\": no available IPs in pool p"
        );
        // SingleStack never gains a family.
        let mut single = mk_svc("d");
        single.spec.as_mut().unwrap().cluster_ips =
            Some(vec!["10.96.0.4".into(), "fd00::4".into()]);
        let d = converge(&mut a, &single, None, &["192.0.2.3".into()]);
        assert_eq!(ips(&d), ["192.0.2.3"]);
    }

    #[test]
    fn allocated_note_text() {
        assert_eq!(
            Note::allocated(&["192.0.2.1".parse().unwrap()]).message,
            "Assigned IP [\"192.0.2.1\"]"
        );
    }
}
