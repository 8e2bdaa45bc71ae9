//! IP sharing rules (upstream `checkSharing` / `sharingOK`).
//!
//! An address may host several services only if every pair agrees: both carry the same
//! non-empty `metallb.io/allow-shared-ip` key, both have the same backend key (empty for
//! `externalTrafficPolicy: Cluster`, the serialized selector for `Local`, so Cluster and Local
//! never share), and no (protocol, port) pair is used twice.

use std::collections::BTreeSet;
use std::fmt;

/// Transport protocol of a service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

impl Protocol {
    /// Kubernetes spells these `TCP`, `UDP`, `SCTP`; an absent protocol means TCP.
    pub fn parse(s: Option<&str>) -> Protocol {
        match s {
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            _ => Protocol::Tcp,
        }
    }
}

/// What the sharing rules need to know about one service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharingProfile {
    /// The `allow-shared-ip` annotation value; `None` or empty means "never share".
    pub sharing_key: Option<String>,
    /// Empty for ETP Cluster; the canonical selector text for ETP Local.
    pub backend_key: String,
    pub ports: BTreeSet<(Protocol, u16)>,
}

/// Why two services cannot share an address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SharingConflict {
    #[error("{ip} is used by {other}, which does not allow sharing (no metallb.io/allow-shared-ip annotation)")]
    OtherNotShareable { ip: String, other: String },
    #[error("{ip} is used by {other}; this service does not allow sharing (no metallb.io/allow-shared-ip annotation)")]
    SelfNotShareable { ip: String, other: String },
    #[error("{ip} is used by {other} with sharing key {theirs:?}, this service has {ours:?}")]
    KeyMismatch {
        ip: String,
        other: String,
        ours: String,
        theirs: String,
    },
    #[error("{ip} is used by {other} with a different backend (externalTrafficPolicy Local services must select the same pods, and Local never shares with Cluster)")]
    BackendMismatch { ip: String, other: String },
    #[error("port {proto}/{port} is already in use on {ip} by {other}")]
    PortInUse {
        ip: String,
        other: String,
        proto: Protocol,
        port: u16,
    },
}

/// Check whether `ours` may join `other` (named `other_name`) on `ip`.
pub fn check(
    ip: &str,
    ours: &SharingProfile,
    other_name: &str,
    other: &SharingProfile,
) -> Result<(), SharingConflict> {
    let other_key = other.sharing_key.as_deref().unwrap_or("");
    let our_key = ours.sharing_key.as_deref().unwrap_or("");
    if other_key.is_empty() {
        return Err(SharingConflict::OtherNotShareable {
            ip: ip.into(),
            other: other_name.into(),
        });
    }
    if our_key.is_empty() {
        return Err(SharingConflict::SelfNotShareable {
            ip: ip.into(),
            other: other_name.into(),
        });
    }
    if our_key != other_key {
        return Err(SharingConflict::KeyMismatch {
            ip: ip.into(),
            other: other_name.into(),
            ours: our_key.into(),
            theirs: other_key.into(),
        });
    }
    if ours.backend_key != other.backend_key {
        return Err(SharingConflict::BackendMismatch {
            ip: ip.into(),
            other: other_name.into(),
        });
    }
    if let Some(&(proto, port)) = ours.ports.intersection(&other.ports).next() {
        return Err(SharingConflict::PortInUse {
            ip: ip.into(),
            other: other_name.into(),
            proto,
            port,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prof(key: Option<&str>, backend: &str, ports: &[(Protocol, u16)]) -> SharingProfile {
        SharingProfile {
            sharing_key: key.map(String::from),
            backend_key: backend.into(),
            ports: ports.iter().copied().collect(),
        }
    }

    #[test]
    fn sharing_rules() {
        let dns_tcp = prof(Some("k"), "", &[(Protocol::Tcp, 53)]);
        let dns_udp = prof(Some("k"), "", &[(Protocol::Udp, 53)]);
        assert_eq!(check("192.0.2.1", &dns_tcp, "ns/b", &dns_udp), Ok(()));
        assert!(matches!(
            check("192.0.2.1", &dns_tcp, "ns/b", &dns_tcp),
            Err(SharingConflict::PortInUse { port: 53, .. })
        ));
        assert!(matches!(
            check("192.0.2.1", &prof(Some("x"), "", &[]), "ns/b", &dns_udp),
            Err(SharingConflict::KeyMismatch { .. })
        ));
        assert!(matches!(
            check("192.0.2.1", &prof(None, "", &[]), "ns/b", &dns_udp),
            Err(SharingConflict::SelfNotShareable { .. })
        ));
        assert!(matches!(
            check("192.0.2.1", &dns_udp, "ns/b", &prof(None, "", &[])),
            Err(SharingConflict::OtherNotShareable { .. })
        ));
        assert!(matches!(
            check(
                "192.0.2.1",
                &prof(Some("k"), "app=a", &[]),
                "ns/b",
                &dns_udp
            ),
            Err(SharingConflict::BackendMismatch { .. })
        ));
        let msg = check("192.0.2.1", &dns_tcp, "ns/b", &dns_tcp)
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "port TCP/53 is already in use on 192.0.2.1 by ns/b");
    }
}
