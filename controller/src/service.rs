//! Service intake: what the allocator needs to know about one `core/v1` Service.
//!
//! Pure functions over the Service object. [`intake`] decides whether a Service is ours and,
//! if so, turns it into a [`ServiceRequest`]: families from `spec.clusterIPs`, the family
//! policy, requested IPs (`metallb.io/loadBalancerIPs`, its legacy twin, or
//! `spec.loadBalancerIP`; the annotation and the spec field are mutually exclusive), the
//! requested pool, and the sharing profile (key, backend key, ports).

use std::net::IpAddr;

use crate::slim::Service;
use kube::ResourceExt;
use metallb_api::metallb::annotations;

use crate::allocator::{
    Family, FamilyPolicy, Protocol, ServiceKey, ServiceRequest, SharingProfile,
};

/// What to do with a Service.
#[derive(Clone, Debug, PartialEq)]
pub enum Intake {
    /// Not `type: LoadBalancer`: MetalLB state must be cleared.
    NotLoadBalancer,
    /// A LoadBalancer of another `loadBalancerClass`: not ours; release anything held in
    /// memory but never write to it.
    OtherClass,
    /// Ours, but the request cannot be honoured as written.
    Invalid(IntakeError),
    /// Ours: allocate.
    Request(ServiceRequest),
}

/// Why a LoadBalancer Service's own spec or annotations are unusable (event
/// `LoadBalancerFailed`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error(
        "service can not have both {} and spec.loadBalancerIP",
        annotations::LOAD_BALANCER_IPS
    )]
    BothRequested,
    #[error("{field}: {value:?} is not a valid IP address")]
    BadIp { field: String, value: String },
}

/// `namespace/name` of a Service.
pub fn key(svc: &Service) -> ServiceKey {
    format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())
}

/// Decide whether the Service is ours and build its allocation request. `lb_class` is the
/// controller's `--lb-class`: without it only Services with no class are handled.
pub fn intake(svc: &Service, lb_class: Option<&str>) -> Intake {
    let Some(spec) = &svc.spec else {
        return Intake::NotLoadBalancer;
    };
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return Intake::NotLoadBalancer;
    }
    if spec.load_balancer_class.as_deref() != lb_class {
        return Intake::OtherClass;
    }
    let annotations = svc.annotations();
    let requested_ips = match requested_ips(svc) {
        Ok(ips) => ips,
        Err(e) => return Intake::Invalid(e),
    };
    let requested_pool = annotations::get(annotations, "address-pool")
        .map(|(v, _)| v.trim().to_string())
        .filter(|v| !v.is_empty());
    let sharing_key = annotations::get(annotations, "allow-shared-ip")
        .map(|(v, _)| v.to_string())
        .filter(|v| !v.is_empty());
    let local = spec.external_traffic_policy.as_deref() == Some("Local");
    let backend_key = if local {
        selector_text(spec.selector.as_deref())
    } else {
        String::new()
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p.port).ok()?;
            Some((Protocol::parse(p.protocol.as_deref()), port))
        })
        .collect();
    let policy = match spec.ip_family_policy.as_deref() {
        Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
        _ => FamilyPolicy::SingleStack,
    };
    Intake::Request(ServiceRequest {
        key: key(svc),
        namespace: svc.namespace().unwrap_or_default(),
        labels: svc.labels().clone(),
        cluster_families: cluster_families(svc),
        policy,
        requested_ips,
        requested_pool,
        sharing: SharingProfile {
            sharing_key,
            backend_key,
            ports,
        },
    })
}

/// Families of `spec.clusterIPs` (or `spec.clusterIP`), primary first, deduplicated.
/// Headless (`None`) or unset cluster IPs give no family.
pub fn cluster_families(svc: &Service) -> Vec<Family> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let ips: Vec<&String> = match &spec.cluster_ips {
        Some(v) if !v.is_empty() => v.iter().collect(),
        _ => spec.cluster_ip.iter().collect(),
    };
    let mut out = Vec::new();
    for ip in ips {
        if let Ok(ip) = ip.parse::<IpAddr>() {
            let f = Family::of(&ip);
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

/// Requested IPs, from the annotation (current prefix wins over legacy) or
/// `spec.loadBalancerIP`; both at once is an error.
pub fn requested_ips(svc: &Service) -> Result<Vec<IpAddr>, IntakeError> {
    let from_spec = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_ip.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let from_annotation = annotations::get(svc.annotations(), "loadBalancerIPs")
        .map(|(v, src)| (v.trim(), src))
        .filter(|(v, _)| !v.is_empty());
    match (from_annotation, from_spec) {
        (Some(_), Some(_)) => Err(IntakeError::BothRequested),
        (Some((list, src)), None) => {
            let field = match src {
                annotations::Source::Current => annotations::LOAD_BALANCER_IPS,
                annotations::Source::Legacy => annotations::LEGACY_LOAD_BALANCER_IPS,
            };
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| parse_ip(field, s))
                .collect()
        }
        (None, Some(ip)) => Ok(vec![parse_ip("spec.loadBalancerIP", ip)?]),
        (None, None) => Ok(Vec::new()),
    }
}

fn parse_ip(field: &str, value: &str) -> Result<IpAddr, IntakeError> {
    value.parse().map_err(|_| IntakeError::BadIp {
        field: field.to_string(),
        value: value.to_string(),
    })
}

/// The canonical text of a Service selector: `k1=v1,k2=v2`, keys sorted. Two ETP=Local
/// services may share an IP only when these are equal.
pub fn selector_text(sel: Option<&[(String, String)]>) -> String {
    let mut pairs: Vec<String> = sel
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// The addresses in `status.loadBalancer.ingress[].ip`, as written (order kept).
pub fn ingress_ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| ing.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

/// Whether the status carries ingress entries that are not plain IPs (hostnames): then it
/// differs from anything MetalLB would write.
pub fn has_foreign_ingress(svc: &Service) -> bool {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|ing| ing.iter().any(|i| i.ip.is_none() || i.hostname.is_some()))
}

/// The current ingress IPs parsed; `None` when any entry does not parse.
pub fn parsed_ingress(svc: &Service) -> Option<Vec<IpAddr>> {
    ingress_ips(svc).iter().map(|s| s.parse().ok()).collect()
}

/// The `metallb.io/ip-allocated-from-pool` annotation, if present.
pub fn pool_annotation(svc: &Service) -> Option<&str> {
    svc.annotations()
        .get(annotations::IP_ALLOCATED_FROM_POOL)
        .map(String::as_str)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::slim::{ServicePort, ServiceSpec};

    pub(crate) fn mk_svc(name: &str) -> Service {
        Service {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                cluster_ips: Some(vec!["10.96.0.1".into()]),
                ports: Some(vec![ServicePort {
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn annotate(mut s: Service, k: &str, v: &str) -> Service {
        s.annotations_mut().insert(k.into(), v.into());
        s
    }

    #[test]
    fn types_and_classes() {
        let mut s = mk_svc("a");
        assert!(matches!(intake(&s, None), Intake::Request(_)));
        assert_eq!(intake(&s, Some("mine")), Intake::OtherClass);
        s.spec.as_mut().unwrap().load_balancer_class = Some("mine".into());
        assert!(matches!(intake(&s, Some("mine")), Intake::Request(_)));
        assert_eq!(intake(&s, None), Intake::OtherClass);
        s.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert_eq!(intake(&s, None), Intake::NotLoadBalancer);
    }

    #[test]
    fn requested_ips_sources_and_exclusivity() {
        let s = annotate(
            mk_svc("a"),
            annotations::LOAD_BALANCER_IPS,
            "192.0.2.1, 2001:db8::1",
        );
        assert_eq!(
            requested_ips(&s).unwrap(),
            vec![
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        let legacy = annotate(mk_svc("a"), annotations::LEGACY_LOAD_BALANCER_IPS, "x");
        assert_eq!(
            requested_ips(&legacy),
            Err(IntakeError::BadIp {
                field: annotations::LEGACY_LOAD_BALANCER_IPS.into(),
                value: "x".into()
            })
        );
        let mut both = s.clone();
        both.spec.as_mut().unwrap().load_balancer_ip = Some("192.0.2.9".into());
        assert_eq!(
            intake(&both, None),
            Intake::Invalid(IntakeError::BothRequested)
        );
        let mut spec_only = mk_svc("a");
        spec_only.spec.as_mut().unwrap().load_balancer_ip = Some("192.0.2.9".into());
        assert_eq!(
            requested_ips(&spec_only).unwrap(),
            vec!["192.0.2.9".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn sharing_profile_and_families() {
        let mut s = annotate(mk_svc("a"), annotations::ALLOW_SHARED_IP, "k");
        let spec = s.spec.as_mut().unwrap();
        spec.external_traffic_policy = Some("Local".into());
        spec.selector = Some(vec![
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]);
        spec.cluster_ips = Some(vec!["fd00::1".into(), "10.96.0.1".into()]);
        spec.ip_family_policy = Some("PreferDualStack".into());
        let Intake::Request(r) = intake(&s, None) else {
            panic!("ours")
        };
        assert_eq!(r.sharing.sharing_key.as_deref(), Some("k"));
        assert_eq!(r.sharing.backend_key, "a=1,b=2");
        assert_eq!(r.cluster_families, vec![Family::V6, Family::V4]);
        assert_eq!(r.policy, FamilyPolicy::PreferDualStack);
        assert!(r.sharing.ports.contains(&(Protocol::Tcp, 80)));
        assert_eq!(r.key, "ns/a");
    }
}
