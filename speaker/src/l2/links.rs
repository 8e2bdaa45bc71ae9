//! The node's interfaces, from rtnetlink, and which of them the responder answers on.
//!
//! Upstream's rules (`internal/layer2/announcer.go`): ARP on interfaces that are up,
//! broadcast-capable, not `NOARP` and not enslaved to a bond or bridge (the master answers);
//! NDP on interfaces that are up, not enslaved and have an IPv6 link-local address (the
//! source of our advertisements); never on interfaces matching the exclusion patterns
//! (upstream's `metallb-excludel2` defaults: container and overlay devices, loopback).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

use futures::TryStreamExt;
use regex::RegexSet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::Handle;

use super::packet::Mac;

/// Upstream's default `excludel2.yaml` patterns.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo$",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    "^nodelocaldns.*",
    "^lxc.*",
];

/// Upstream's `excludel2.yaml` (ConfigMap `metallb-excludel2`, mounted at `/etc/metallb`).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExcludeFile {
    #[serde(default)]
    announced_interfaces_to_exclude: Vec<String>,
}

/// The exclusion patterns of an `excludel2.yaml` text: its
/// `announcedInterfacesToExclude` list, each a valid regular expression.
pub fn parse_exclude_file(text: &str) -> Result<Vec<String>, String> {
    let f: ExcludeFile = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    for p in &f.announced_interfaces_to_exclude {
        regex::Regex::new(p).map_err(|e| format!("pattern {p:?}: {e}"))?;
    }
    Ok(f.announced_interfaces_to_exclude)
}

/// The patterns in force: `file`'s list when the file exists (upstream's ConfigMap,
/// edited by the user or not), else `flag`'s. Read once at start.
pub fn excludes(file: &std::path::Path, flag: &[String]) -> Result<(RegexSet, String), String> {
    let (patterns, from) = match std::fs::read_to_string(file) {
        Ok(text) => (
            parse_exclude_file(&text).map_err(|e| format!("{}: {e}", file.display()))?,
            file.display().to_string(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (flag.to_vec(), "--l2-exclude-interface".to_string())
        }
        Err(e) => return Err(format!("reading {}: {e}", file.display())),
    };
    let set = RegexSet::new(&patterns).map_err(|e| format!("{from}: {e}"))?;
    Ok((set, from))
}

/// The interfaces an L2Advertisement restricts a Service to, when none of them is one the
/// node answers on (`usable`): upstream's `announceFailed` case. `None` when it can
/// answer somewhere (or is not restricted).
pub fn none_usable(allowed: &super::Interfaces, usable: &BTreeSet<String>) -> Option<Vec<String>> {
    let listed = allowed.listed();
    (!listed.is_empty() && !listed.iter().any(|n| usable.contains(n))).then_some(listed)
}

/// One interface as the responder needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `None` for interfaces without a 6-byte hardware address (tunnels, loopback).
    pub mac: Option<Mac>,
    pub up: bool,
    pub broadcast: bool,
    pub noarp: bool,
    /// Enslaved to a bond or bridge.
    pub enslaved: bool,
    /// Its first IPv6 link-local address.
    pub link_local: Option<Ipv6Addr>,
}

impl Link {
    fn usable(&self, excludes: &RegexSet) -> bool {
        self.up && !self.enslaved && self.mac.is_some() && !excludes.is_match(&self.name)
    }

    /// ARP is answered here.
    pub fn arp(&self, excludes: &RegexSet) -> bool {
        self.usable(excludes) && self.broadcast && !self.noarp
    }

    /// NDP is answered here.
    pub fn ndp(&self, excludes: &RegexSet) -> bool {
        self.usable(excludes) && self.link_local.is_some()
    }
}

/// Parse a link message (pure: the fields we read).
pub fn link_from_message(msg: &LinkMessage) -> Option<Link> {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        broadcast: msg.header.flags.contains(LinkFlags::Broadcast),
        noarp: msg.header.flags.contains(LinkFlags::Noarp),
        enslaved: false,
        link_local: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) if a.len() == 6 && a.iter().any(|b| *b != 0) => {
                let mut m = [0; 6];
                m.copy_from_slice(a);
                link.mac = Some(m);
            }
            LinkAttribute::Controller(_) => link.enslaved = true,
            _ => {}
        }
    }
    (!link.name.is_empty()).then_some(link)
}

fn link_local_of(msg: &AddressMessage) -> Option<(u32, Ipv6Addr)> {
    msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(IpAddr::V6(ip)) if ip.is_unicast_link_local() => {
            Some((msg.header.index, *ip))
        }
        _ => None,
    })
}

/// Every interface of the namespace the handle's socket lives in.
pub async fn scan(handle: &Handle) -> Result<Vec<Link>, rtnetlink::Error> {
    let mut links: Vec<Link> = handle
        .link()
        .get()
        .execute()
        .try_filter_map(|m| async move { Ok(link_from_message(&m)) })
        .try_collect()
        .await?;
    let mut addrs = handle.address().get().execute();
    while let Some(msg) = addrs.try_next().await? {
        if let Some((index, ip)) = link_local_of(&msg) {
            if let Some(l) = links.iter_mut().find(|l| l.index == index) {
                l.link_local.get_or_insert(ip);
            }
        }
    }
    links.sort_by_key(|l| l.index);
    Ok(links)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str) -> Link {
        Link {
            index: 2,
            name: name.into(),
            mac: Some([2, 0, 0, 0, 0, 1]),
            up: true,
            broadcast: true,
            noarp: false,
            enslaved: false,
            link_local: Some("fe80::1".parse().unwrap()),
        }
    }

    #[test]
    fn upstream_interface_rules() {
        let ex = RegexSet::new(DEFAULT_EXCLUDES).unwrap();
        assert!(link("eth0").arp(&ex) && link("eth0").ndp(&ex));
        for name in [
            "lo",
            "veth1234",
            "docker0",
            "cali1",
            "flannel.1",
            "kube-ipvs0",
        ] {
            assert!(!link(name).arp(&ex) && !link(name).ndp(&ex), "{name}");
        }
        assert!(link("loopy").arp(&ex), "only exactly lo is excluded");
        let mut l = link("eth0");
        l.noarp = true;
        assert!(!l.arp(&ex) && l.ndp(&ex), "NOARP: NDP only");
        l = link("eth0");
        l.link_local = None;
        assert!(l.arp(&ex) && !l.ndp(&ex), "no link-local: ARP only");
        l = link("eth0");
        l.enslaved = true;
        assert!(
            !l.arp(&ex) && !l.ndp(&ex),
            "a bond member: its master answers"
        );
        l = link("eth0");
        l.up = false;
        assert!(!l.arp(&ex));
        l = link("eth0");
        l.mac = None;
        assert!(!l.arp(&ex) && !l.ndp(&ex));
    }

    #[test]
    fn upstreams_excludel2_file_is_read() {
        let text = "announcedInterfacesToExclude: [\"^docker.*\", \"^lo$\", \"^eth9$\"]\n";
        assert_eq!(
            parse_exclude_file(text).unwrap(),
            vec!["^docker.*", "^lo$", "^eth9$"]
        );
        // upstream's ConfigMap as shipped: every default pattern, in block style
        let shipped: String = std::iter::once("announcedInterfacesToExclude:\n".to_string())
            .chain(DEFAULT_EXCLUDES.iter().map(|p| format!("  - {p}\n")))
            .collect();
        assert_eq!(parse_exclude_file(&shipped).unwrap(), DEFAULT_EXCLUDES);
        assert!(parse_exclude_file("announcedInterfacesToExclude: [\"(\"]")
            .unwrap_err()
            .contains("pattern"));
        assert!(parse_exclude_file("announcedInterfacesToExclude: 7").is_err());
        assert!(parse_exclude_file("{}").unwrap().is_empty());
    }

    #[test]
    fn the_file_when_present_else_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("excludel2.yaml");
        let flag = vec!["^lo$".to_string()];
        let (set, from) = excludes(&file, &flag).unwrap();
        assert_eq!((set.len(), from.as_str()), (1, "--l2-exclude-interface"));
        // a user who removed ^dummy.* from the ConfigMap answers on dummy interfaces
        std::fs::write(
            &file,
            "announcedInterfacesToExclude: [\"^lo$\", \"^veth.*\"]",
        )
        .unwrap();
        let (set, from) = excludes(&file, &flag).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.is_match("veth0") && !set.is_match("dummy0"));
        assert!(from.ends_with("excludel2.yaml"));
        std::fs::write(&file, "announcedInterfacesToExclude: [\"[\"]").unwrap();
        assert!(excludes(&file, &flag)
            .unwrap_err()
            .contains("excludel2.yaml"));
    }

    #[test]
    fn restricted_to_interfaces_the_node_does_not_have_is_reported() {
        use super::super::Interfaces;
        let usable: BTreeSet<String> = ["eth0".to_string()].into();
        let only = |v: &[&str]| Interfaces::Only(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(none_usable(&Interfaces::All, &usable), None);
        assert_eq!(none_usable(&only(&["eth0", "eth1"]), &usable), None);
        assert_eq!(
            none_usable(&only(&["eth1", "bond0"]), &usable),
            Some(vec!["bond0".to_string(), "eth1".to_string()])
        );
    }
}
