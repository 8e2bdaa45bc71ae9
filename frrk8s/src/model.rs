//! The merged, fully resolved per-node configuration: plain values, sorted containers, no
//! references back to the Kubernetes objects. [`crate::merge`] builds it, [`crate::render`]
//! turns it into FRR text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use metallb_api::community::BgpCommunity;
use metallb_api::frrk8s::{IpFamily, RemoteAsn};

/// Default BGP port (not rendered).
pub const DEFAULT_PORT: u16 = 179;
/// Default hold time in seconds.
pub const DEFAULT_HOLD_SECS: u64 = 180;
/// Default keepalive time in seconds.
pub const DEFAULT_KEEPALIVE_SECS: u64 = 60;
/// Connect time the API documents as default (used when comparing declarations).
pub const DEFAULT_CONNECT_SECS: u64 = 60;

/// Everything FRR on one node should run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeConfig {
    /// Routers keyed by VRF (`""` = default VRF).
    pub routers: BTreeMap<String, RouterConfig>,
    /// BFD profiles keyed by name.
    pub bfd_profiles: BTreeMap<String, BfdProfileConfig>,
    /// Raw snippets, ordered by (priority, namespace, name).
    pub raw: Vec<RawSnippet>,
}

/// One `router bgp` instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    pub asn: u32,
    /// `""` for the default VRF.
    pub vrf: String,
    pub router_id: Option<Ipv4Addr>,
    /// Prefixes originated with `network` statements (canonical, sorted, both families).
    pub prefixes: BTreeSet<IpNet>,
    /// Imported VRFs (`import vrf X`).
    pub imports: BTreeSet<String>,
    /// Neighbors keyed by [`NeighborConfig::id`].
    pub neighbors: BTreeMap<String, NeighborConfig>,
}

/// Who a neighbor is: an address or an interface (BGP unnumbered).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    Address(IpAddr),
    Interface(String),
}

impl fmt::Display for Peer {
    /// What FRR's `neighbor X ...` lines use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Address(a) => write!(f, "{a}"),
            Peer::Interface(i) => f.write_str(i),
        }
    }
}

/// A resolved BGP password. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Self {
        Password(s.into())
    }

    /// The cleartext, for the renderer only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One BGP session, merged from every declaration of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborConfig {
    /// Peer plus `-<vrf>` for non-default VRFs: the merge key and the prefix of every FRR
    /// object name generated for this neighbor.
    pub id: String,
    pub peer: Peer,
    pub remote_asn: RemoteAsn,
    /// Address families the session is activated in.
    pub family: IpFamily,
    /// Port to dial (179 = default, not rendered).
    pub port: u16,
    pub source_address: Option<String>,
    pub password: Option<Password>,
    /// Effective hold time in seconds (180 when never set).
    pub hold_secs: u64,
    /// Effective keepalive time in seconds (60 when never set).
    pub keepalive_secs: u64,
    /// Connect time in seconds, when some declaration set it explicitly.
    pub connect_secs: Option<u64>,
    pub ebgp_multihop: bool,
    pub bfd_profile: Option<String>,
    pub graceful_restart: bool,
    pub local_asn: Option<u32>,
    pub advertise: AdvertiseConfig,
    pub receive: ReceiveConfig,
}

impl NeighborConfig {
    /// The `timers KEEPALIVE HOLD` pair, when it differs from FRR's default in either value.
    pub fn timers(&self) -> Option<(u64, u64)> {
        if self.hold_secs == DEFAULT_HOLD_SECS && self.keepalive_secs == DEFAULT_KEEPALIVE_SECS {
            None
        } else {
            Some((self.keepalive_secs, self.hold_secs))
        }
    }

    /// Whether the session is activated in the IPv4 unicast address family.
    pub fn has_ipv4(&self) -> bool {
        matches!(self.family, IpFamily::IPv4 | IpFamily::DualStack)
    }

    /// Whether the session is activated in the IPv6 unicast address family.
    pub fn has_ipv6(&self) -> bool {
        matches!(self.family, IpFamily::IPv6 | IpFamily::DualStack)
    }
}

/// What we send to a neighbor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdvertiseConfig {
    /// Exactly the prefixes this neighbor may receive from us (both families).
    pub prefixes: BTreeSet<IpNet>,
    /// Local preference per prefix.
    pub local_pref: BTreeMap<IpNet, u32>,
    /// Communities (standard and large) per prefix; additive.
    pub communities: BTreeMap<IpNet, BTreeSet<BgpCommunity>>,
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<Ipv6Addr>,
}

/// What we accept from a neighbor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiveConfig {
    /// Everything.
    All,
    /// Only routes matching one of the filters (empty = nothing).
    Filtered(BTreeSet<PrefixFilter>),
}

impl Default for ReceiveConfig {
    fn default() -> Self {
        ReceiveConfig::Filtered(BTreeSet::new())
    }
}

/// `prefix [ge G] [le L]` (order of fields = sort order: family, prefix, le, ge).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrefixFilter {
    pub prefix: IpNet,
    pub le: Option<u8>,
    pub ge: Option<u8>,
}

/// A BFD profile (unset values are not rendered).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BfdProfileConfig {
    pub name: String,
    pub receive_interval: Option<u32>,
    pub transmit_interval: Option<u32>,
    pub detect_multiplier: Option<u32>,
    pub echo_interval: Option<u32>,
    pub echo_mode: bool,
    pub passive_mode: bool,
    pub minimum_ttl: Option<u32>,
}

/// A raw snippet and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSnippet {
    pub priority: i64,
    /// `namespace/name` of the FRRConfiguration.
    pub origin: String,
    pub config: String,
}
