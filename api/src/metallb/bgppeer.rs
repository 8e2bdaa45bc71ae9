//! `BGPPeer` (`metallb.io/v1beta2`, the storage version): one BGP session per selected node.

use std::net::IpAddr;
use std::time::Duration as StdDuration;

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::non_empty;
use crate::duration::Duration;
use crate::selector;
use crate::validation::{FieldErrors, FieldPath};

/// The default BGP port.
pub const DEFAULT_PEER_PORT: u16 = 179;

/// BGPPeerSpec defines the desired state of Peer.
// kube's repeated `printcolumn(type_ = ...)` trips this lint (false positive).
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta2",
    kind = "BGPPeer",
    plural = "bgppeers",
    singular = "bgppeer",
    namespaced,
    status = "BGPPeerStatus",
    derive = "PartialEq",
    doc = "BGPPeer is the Schema for the peers API.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "ASN", type_ = "string", json_path = ".spec.myASN"),
    printcolumn(name = "Peer ASN", type_ = "string", json_path = ".spec.peerASN"),
    printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
    printcolumn(
        name = "Multi Hops",
        type_ = "string",
        json_path = ".spec.ebgpMultiHop"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// AS number to use for the local end of the session.
    #[serde(rename = "myASN")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub my_asn: u32,

    /// AS number to expect from the remote end of the session.
    /// ASN and DynamicASN are mutually exclusive and one of them must be specified.
    #[serde(rename = "peerASN", default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub peer_asn: Option<u32>,

    /// DynamicASN detects the AS number to use for the remote end of the session
    /// without explicitly setting it via the ASN field. Limited to:
    /// internal - if the neighbor's ASN is different than MyASN connection is denied.
    /// external - if the neighbor's ASN is the same as MyASN the connection is denied.
    /// ASN and DynamicASN are mutually exclusive and one of them must be specified.
    #[serde(
        rename = "dynamicASN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dynamic_asn: Option<DynamicASNMode>,

    /// AS number to use for the local end of the session when it differs from myASN
    /// (`local-as ... no-prepend replace-as`).
    #[serde(rename = "localASN", default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub local_asn: Option<u32>,

    /// Address to dial when establishing the session.
    /// PeerAddress and Interface are mutually exclusive and one of them must be specified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,

    /// Interface is the node interface over which the unnumbered BGP peering will
    /// be established. No API validation takes place as that string value
    /// represents an interface name on the host.
    /// PeerAddress and Interface are mutually exclusive and one of them must be specified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,

    /// Source address to use when establishing the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,

    /// Port to dial when establishing the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535), extend("default" = 179))]
    pub peer_port: Option<u16>,

    /// Requested BGP hold time, per RFC4271.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<Duration>,

    /// Requested BGP keepalive time, per RFC4271.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<Duration>,

    /// Requested BGP connect time, controls how long BGP waits between connection attempts to a neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "message": "connect time should be between 1 seconds to 65535",
            "rule": "duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535"
        },
        {
            "message": "connect time should contain a whole number of seconds",
            "rule": "duration(self).getMilliseconds() % 1000 == 0"
        }
    ]))]
    pub connect_time: Option<Duration>,

    /// BGP router ID to advertise to the peer
    #[serde(rename = "routerID", default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,

    /// Only connect to this peer on nodes that match one of these
    /// selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// Authentication password for routers enforcing TCP MD5 authenticated sessions
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,

    /// passwordSecret is name of the authentication secret for BGP Peer.
    /// the secret must be of type "kubernetes.io/basic-auth", and created in the
    /// same namespace as the MetalLB deployment (or the namespace named here). The password
    /// is stored in the secret as the key "password".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretReference>,

    /// The name of the BFD Profile to be used for the BFD session associated to the BGP session. If not set, the BFD session won't be set up.
    #[serde(
        rename = "bfdProfile",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bfd_profile: Option<String>,

    /// EnableGracefulRestart allows BGP peer to continue to forward data packets
    /// along known routes while the routing protocol information is being
    /// restored. This field is immutable because it requires restart of the BGP
    /// session. Supported for FRR mode only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "message": "EnableGracefulRestart cannot be changed after creation",
            "rule": "self == oldSelf"
        }
    ]))]
    pub enable_graceful_restart: Option<bool>,

    /// To set if the BGPPeer is multi-hops away. Needed for FRR mode only.
    #[serde(
        rename = "ebgpMultiHop",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ebgp_multi_hop: Option<bool>,

    /// To set if we want to peer with the BGPPeer using an interface belonging to
    /// a host vrf
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,

    /// To set if we want to disable MP BGP that will separate IPv4 and IPv6 route exchanges into distinct BGP sessions.
    /// Deprecated: per-family sessions are the default.
    #[serde(rename = "disableMP", default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub disable_mp: Option<bool>,

    /// To set if we want to enable the neighbor not only for the ipfamily related to its session,
    /// but also the other one. This allows to advertise/receive IPv4 prefixes over IPv6 sessions and vice versa.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub dual_stack_address_family: Option<bool>,
}

/// How the remote ASN is detected when `peerASN` is not given.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DynamicASNMode {
    /// The neighbor's ASN must equal myASN (iBGP).
    Internal,
    /// The neighbor's ASN must differ from myASN (eBGP).
    External,
}

impl DynamicASNMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            DynamicASNMode::Internal => "internal",
            DynamicASNMode::External => "external",
        }
    }
}

/// BGPPeerStatus defines the observed state of Peer (empty).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BGPPeerStatus {}

/// Hold and keepalive times after defaulting (one derived from the other when only one is given).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub hold: StdDuration,
    pub keepalive: StdDuration,
}

impl BGPPeerSpec {
    /// `peerASN`, treating `0` as unset like upstream.
    pub fn peer_asn(&self) -> Option<u32> {
        self.peer_asn.filter(|a| *a != 0)
    }

    /// Effective port (default 179; `0` means default).
    pub fn peer_port(&self) -> u16 {
        match self.peer_port {
            None | Some(0) => DEFAULT_PEER_PORT,
            Some(p) => p,
        }
    }

    pub fn peer_address(&self) -> Option<&str> {
        non_empty(&self.peer_address)
    }

    pub fn interface(&self) -> Option<&str> {
        non_empty(&self.interface)
    }

    pub fn source_address(&self) -> Option<&str> {
        non_empty(&self.source_address)
    }

    pub fn router_id(&self) -> Option<&str> {
        non_empty(&self.router_id)
    }

    pub fn password(&self) -> Option<&str> {
        non_empty(&self.password)
    }

    pub fn bfd_profile(&self) -> Option<&str> {
        non_empty(&self.bfd_profile)
    }

    pub fn vrf(&self) -> Option<&str> {
        non_empty(&self.vrf)
    }

    /// The secret reference when it names a secret (`{}` is treated as unset, as Go writes it).
    pub fn password_secret(&self) -> Option<&SecretReference> {
        self.password_secret
            .as_ref()
            .filter(|s| s.name.as_deref().is_some_and(|n| !n.is_empty()))
    }

    pub fn ebgp_multi_hop(&self) -> bool {
        self.ebgp_multi_hop.unwrap_or(false)
    }

    pub fn enable_graceful_restart(&self) -> bool {
        self.enable_graceful_restart.unwrap_or(false)
    }

    pub fn disable_mp(&self) -> bool {
        self.disable_mp.unwrap_or(false)
    }

    pub fn dual_stack_address_family(&self) -> bool {
        self.dual_stack_address_family.unwrap_or(false)
    }

    /// `localASN`, treating `0` as unset.
    pub fn local_asn(&self) -> Option<u32> {
        self.local_asn.filter(|a| *a != 0)
    }

    /// Whether the session is iBGP (peer ASN equals my ASN, or dynamic `internal`).
    pub fn is_ibgp(&self) -> bool {
        match (self.peer_asn(), self.dynamic_asn) {
            (Some(a), _) => a == self.my_asn,
            (None, Some(DynamicASNMode::Internal)) => true,
            _ => false,
        }
    }

    /// Effective timers: `None` when neither is set; otherwise the missing one is derived
    /// (keepalive = hold/3, hold = 3×keepalive). Assumes [`Self::validate`] passed; unparsable
    /// values give `None`.
    pub fn timers(&self) -> Option<Timers> {
        let hold = self.hold_time.as_ref().map(|d| d.parse().ok());
        let ka = self.keepalive_time.as_ref().map(|d| d.parse().ok());
        match (hold, ka) {
            (None, None) => None,
            (Some(h), Some(k)) => Some(Timers {
                hold: h?,
                keepalive: k?,
            }),
            (Some(h), None) => {
                let h = h?;
                Some(Timers {
                    hold: h,
                    keepalive: h / 3,
                })
            }
            (None, Some(k)) => {
                let k = k?;
                Some(Timers {
                    hold: k * 3,
                    keepalive: k,
                })
            }
        }
    }

    /// Parsed `connectTime`, if set and valid.
    pub fn connect_time(&self) -> Option<StdDuration> {
        self.connect_time.as_ref().and_then(|d| d.parse().ok())
    }

    /// Every problem with this peer on its own. Paths start at `spec.`.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let spec = FieldPath::new("spec");
        let mut errs = FieldErrors::new();

        if self.my_asn == 0 {
            errs.invalid(
                &spec.child("myASN"),
                0,
                "is not a valid local ASN: myASN is required and must be non-zero",
            );
        }
        match (self.peer_asn(), self.dynamic_asn) {
            (None, None) => errs.problem(
                &spec.child("peerASN"),
                "either peerASN or dynamicASN must be set",
            ),
            (Some(_), Some(d)) => errs.invalid(
                &spec.child("dynamicASN"),
                d.as_str(),
                "is not allowed: peerASN and dynamicASN are mutually exclusive",
            ),
            _ => {}
        }
        if self.local_asn == Some(0) {
            errs.invalid(
                &spec.child("localASN"),
                0,
                "must be between 1 and 4294967295",
            );
        }

        match (self.peer_address(), self.interface()) {
            (None, None) => errs.problem(
                &spec.child("peerAddress"),
                "either peerAddress or interface must be set",
            ),
            (Some(_), Some(i)) => errs.invalid(
                &spec.child("interface"),
                i,
                "is not allowed: peerAddress and interface are mutually exclusive",
            ),
            _ => {}
        }
        if let Some(a) = self.peer_address() {
            if a.parse::<IpAddr>().is_err() {
                errs.invalid(&spec.child("peerAddress"), a, "is not a valid IP address");
            }
        }
        if let Some(a) = self.source_address() {
            if a.parse::<IpAddr>().is_err() {
                errs.invalid(&spec.child("sourceAddress"), a, "is not a valid IP address");
            }
        }
        if let Some(a) = self.router_id() {
            if a.parse::<std::net::Ipv4Addr>().is_err() {
                errs.invalid(&spec.child("routerID"), a, "is not a valid IPv4 address");
            }
        }
        if self.peer_port == Some(0) {
            errs.invalid(&spec.child("peerPort"), 0, "must be between 1 and 65535");
        }

        self.validate_timers(&spec, &mut errs);

        if let Some(ct) = &self.connect_time {
            let p = spec.child("connectTime");
            match ct.parse() {
                Err(_) => errs.invalid(&p, ct, "is not a valid duration"),
                Ok(d) => {
                    if d.subsec_nanos() != 0 {
                        errs.invalid(&p, ct, "must be a whole number of seconds");
                    } else if !(1..=65535).contains(&d.as_secs()) {
                        errs.invalid(&p, ct, "must be between 1s and 65535s");
                    }
                }
            }
        }

        if self.password().is_some() && self.password_secret().is_some() {
            errs.problem(
                &spec.child("passwordSecret"),
                "password and passwordSecret are mutually exclusive",
            );
        }
        if let Some(s) = &self.password_secret {
            let named = s.name.as_deref().is_some_and(|n| !n.is_empty());
            if !named && s.namespace.as_deref().is_some_and(|n| !n.is_empty()) {
                errs.problem(
                    &spec.child("passwordSecret").child("name"),
                    "is required when passwordSecret.namespace is set",
                );
            }
        }

        if self.ebgp_multi_hop() && self.is_ibgp() {
            errs.problem(
                &spec.child("ebgpMultiHop"),
                "invalid ebgp-multihop parameter set for an ibgp peer",
            );
        }

        selector::validate_list(
            &self.node_selectors,
            &spec.child("nodeSelectors"),
            &mut errs,
        );
        errs.into_result()
    }

    fn validate_timers(&self, spec: &FieldPath, errs: &mut FieldErrors) {
        let hp = spec.child("holdTime");
        let kp = spec.child("keepaliveTime");
        let mut parse = |d: &Option<Duration>, p: &FieldPath| -> Option<Option<StdDuration>> {
            match d {
                None => Some(None),
                Some(d) => match d.parse() {
                    Err(_) => {
                        errs.invalid(p, d, "is not a valid duration");
                        None
                    }
                    Ok(v) if v.subsec_nanos() != 0 => {
                        errs.invalid(p, d, "must be a whole number of seconds");
                        None
                    }
                    Ok(v) => Some(Some(v)),
                },
            }
        };
        let (Some(hold), Some(ka)) = (
            parse(&self.hold_time, &hp),
            parse(&self.keepalive_time, &kp),
        ) else {
            return;
        };
        let (hold, ka, hold_is_derived) = match (hold, ka) {
            (None, None) => return,
            (Some(h), Some(k)) => (h, k, false),
            (Some(h), None) => (h, h / 3, false),
            (None, Some(k)) => (k * 3, k, true),
        };
        let secs = hold.as_secs();
        if secs != 0 && secs < 3 {
            if hold_is_derived {
                errs.invalid(
                    &kp,
                    self.keepalive_time
                        .as_ref()
                        .map(|d| d.0.as_str())
                        .unwrap_or(""),
                    format!("implies a hold time of {secs}s: hold time must be 0 or at least 3s"),
                );
            } else {
                errs.invalid(
                    &hp,
                    self.hold_time.as_ref().map(|d| d.0.as_str()).unwrap_or(""),
                    "must be 0 or at least 3s",
                );
            }
        }
        if ka > hold {
            if let (Some(k), Some(h)) = (&self.keepalive_time, &self.hold_time) {
                errs.invalid(&kp, k, format!("must not be greater than holdTime {h}"));
            }
        }
    }
}

impl BGPPeer {
    /// See [`BGPPeerSpec::validate`].
    pub fn validate(&self) -> Result<(), FieldErrors> {
        self.spec.validate()
    }

    /// Whether this peer runs on a node with these labels (no selectors = every node).
    pub fn selects_node(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        selector::any_matches(&self.spec.node_selectors, labels)
    }

    /// Effective port (default 179).
    pub fn peer_port(&self) -> u16 {
        self.spec.peer_port()
    }
}
