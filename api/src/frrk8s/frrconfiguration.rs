//! `FRRConfiguration` (`frrk8s.metallb.io/v1beta1`): a fragment of FRR configuration.
//!
//! Wire-exact with upstream frr-k8s: every JSON name (including the lowercase
//! `sourceaddress`, `withLocalPref`, `withCommunity`, `dynamicASN`, `localASN`, `disableMP`),
//! every optional field kept optional so that decoding and re-encoding a manifest loses and
//! adds nothing. Go's `omitempty` semantics apply when *reading* values: an empty string, a
//! zero number or `false` means "not set"; the accessors on each type implement that, and the
//! effective defaults (port 179, hold 180 s, keepalive 60 s, connect 60 s, mode `filtered`).
//!
//! Deliberate deviations from upstream (see the README's compatibility section):
//! - `port` is allowed up to 65535 (upstream's CRD caps it at 16384);
//! - `passwordSecret.namespace` is honoured by the node daemon (upstream ignores it);
//! - `asn` fields carry `format: int64` so the full 32-bit range is accepted.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration as StdDuration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::{Duration, ParseDurationError};

use super::schema;

/// Default BGP port.
pub const DEFAULT_PORT: u16 = 179;
/// Default BGP hold time (FRR and upstream default).
pub const DEFAULT_HOLD_TIME: StdDuration = StdDuration::from_secs(180);
/// Default BGP keepalive time.
pub const DEFAULT_KEEPALIVE_TIME: StdDuration = StdDuration::from_secs(60);
/// Default BGP connect (retry) time, FRR's default.
pub const DEFAULT_CONNECT_TIME: StdDuration = StdDuration::from_secs(60);

/// FRRConfigurationSpec defines the desired state of FRRConfiguration.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "frrk8s.metallb.io",
    version = "v1beta1",
    kind = "FRRConfiguration",
    plural = "frrconfigurations",
    singular = "frrconfiguration",
    namespaced,
    status = "FRRConfigurationStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "FRRConfiguration is a piece of FRR configuration."
)]
#[serde(rename_all = "camelCase")]
pub struct FRRConfigurationSpec {
    /// BGP is the configuration related to the BGP protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpConfig>,

    /// Raw is a snippet of raw frr configuration that gets appended to the
    /// one rendered translating the type safe API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawConfig>,

    /// NodeSelector limits the nodes that will attempt to apply this config.
    /// When specified, the configuration will be considered only on nodes
    /// whose labels match the specified selectors.
    /// When it is not specified all nodes will attempt to apply this config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
}

/// FRRConfigurationStatus defines the observed state of FRRConfiguration (empty, as upstream).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FRRConfigurationStatus {}

/// RawConfig is a snippet of raw frr configuration that gets appended to the
/// rendered configuration.
///
/// WARNING: The RawConfig feature is UNSUPPORTED and intended ONLY FOR EXPERIMENTATION.
/// It should not be used in production environments. This feature is provided as-is without any
/// guarantees of stability, compatibility, or support. Use at your own risk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawConfig {
    /// Priority is the order with this configuration is appended to the
    /// bottom of the rendered configuration. A higher value means the
    /// raw config is appended later in the configuration file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,

    /// Config is a raw FRR configuration to be appended to the configuration
    /// rendered via the k8s api.
    #[serde(default, rename = "rawConfig", skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// BGPConfig is the configuration related to the BGP protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpConfig {
    /// Routers is the list of routers we want FRR to configure (one per VRF).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub routers: Vec<Router>,

    /// BFDProfiles is the list of bfd profiles to be used when configuring the neighbors.
    #[serde(default, rename = "bfdProfiles", skip_serializing_if = "Vec::is_empty")]
    pub bfd_profiles: Vec<BfdProfile>,
}

/// Router represent a neighbor router we want FRR to connect to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Router {
    /// ASN is the AS number to use for the local end of the session.
    #[schemars(schema_with = "schema::asn")]
    pub asn: u32,

    /// ID is the BGP router ID
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,

    /// VRF is the host vrf used to establish sessions from this router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,

    /// Neighbors is the list of neighbors we want to establish BGP sessions with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbors: Vec<Neighbor>,

    /// Prefixes is the list of prefixes we want to advertise from this router instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,

    /// Imports is the list of imported VRFs we want for this router / vrf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<Import>,

    /// EVPN is the EVPN configuration for this router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evpn: Option<EvpnConfig>,
}

/// Import represents the possible imported VRFs to a given router.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Import {
    /// Vrf is the vrf we want to import from
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,
}

/// Neighbor represents a BGP Neighbor we want FRR to connect to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Neighbor {
    /// ASN is the AS number to use for the local end of the session.
    /// ASN and DynamicASN are mutually exclusive and one of them must be specified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::asn")]
    pub asn: Option<u32>,

    /// DynamicASN detects the AS number to use for the local end of the session
    /// without explicitly setting it via the ASN field. Limited to:
    /// internal - if the neighbor's ASN is different than the router's the connection is denied.
    /// external - if the neighbor's ASN is the same as the router's the connection is denied.
    /// ASN and DynamicASN are mutually exclusive and one of them must be specified.
    #[serde(
        default,
        rename = "dynamicASN",
        skip_serializing_if = "Option::is_none"
    )]
    pub dynamic_asn: Option<DynamicAsnMode>,

    /// LocalASN is the AS number the router presents to this neighbor instead of the
    /// router's ASN (`local-as N no-prepend replace-as`). Not supported for iBGP sessions.
    #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::local_asn")]
    pub local_asn: Option<u32>,

    /// SourceAddress is the IPv4 or IPv6 source address to use for the BGP
    /// session to this neighbour, may be specified as either an IP address
    /// directly or as an interface name
    #[serde(
        default,
        rename = "sourceaddress",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_address: Option<String>,

    /// Address is the IP address to establish the session with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,

    /// Interface is the node interface over which the unnumbered BGP peering will
    /// be established. No API validation takes place as that string value
    /// represents an interface name on the host and if user provides an invalid
    /// value, only the actual BGP session will not be established.
    /// Address and Interface are mutually exclusive and one of them must be specified.
    /// Note: when enabling unnumbered, the neighbor will be enabled for both
    /// IPv4 and IPv6 address families.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,

    /// Port is the port to dial when establishing the session.
    /// Defaults to 179.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::port")]
    pub port: Option<u16>,

    /// Password to be used for establishing the BGP session.
    /// Password and PasswordSecret are mutually exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,

    /// PasswordSecret is name of the authentication secret for the neighbor.
    /// the secret must be of type "kubernetes.io/basic-auth", and created in the
    /// same namespace as the frr-k8s daemon. The password is stored in the
    /// secret as the key "password".
    /// Password and PasswordSecret are mutually exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretReference>,

    /// HoldTime is the requested BGP hold time, per RFC4271.
    /// Defaults to 180s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<Duration>,

    /// KeepaliveTime is the requested BGP keepalive time, per RFC4271.
    /// Defaults to 60s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<Duration>,

    /// Requested BGP connect time, controls how long BGP waits between connection attempts to a neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::connect_time")]
    pub connect_time: Option<Duration>,

    /// EBGPMultiHop indicates if the BGPPeer is multi-hops away.
    #[serde(
        default,
        rename = "ebgpMultiHop",
        skip_serializing_if = "Option::is_none"
    )]
    pub ebgp_multi_hop: Option<bool>,

    /// BFDProfile is the name of the BFD Profile to be used for the BFD session associated
    /// to the BGP session. If not set, the BFD session won't be set up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_profile: Option<String>,

    /// EnableGracefulRestart allows BGP peer to continue to forward data packets along
    /// known routes while the routing protocol information is being restored. If
    /// the session is already established, the configuration will have effect
    /// after reconnecting to the peer
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_graceful_restart: Option<bool>,

    /// ToAdvertise represents the list of prefixes to advertise to the given neighbor
    /// and the associated properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_advertise: Option<Advertise>,

    /// ToReceive represents the list of prefixes to receive from the given neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_receive: Option<Receive>,

    /// DisableMP is no longer used and has no effect.
    /// Use DualStackAddressFamily instead to enable the neighbor for both IPv4 and IPv6 address families.
    ///
    /// Deprecated: This field is ignored. Use DualStackAddressFamily instead.
    #[serde(default, rename = "disableMP", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub disable_mp: Option<bool>,

    /// To set if we want to enable the neighbor not only for the ipfamily related to its session,
    /// but also the other one. This allows to advertise/receive IPv4 prefixes over IPv6 sessions and vice versa.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub dual_stack_address_family: Option<bool>,

    /// AddressFamilies specifies which address families to activate this neighbor for.
    /// Supported values: "unicast" (IPv4/IPv6 unicast based on neighbor IP), "evpn" (L2VPN EVPN).
    /// Defaults to "unicast" when not specified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2), extend("default" = ["unicast"]))]
    pub address_families: Vec<AddressFamily>,
}

/// SecretReference represents a Secret Reference. It has enough information to retrieve secret
/// in any namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct SecretReference {
    /// name is unique within a namespace to reference a secret resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// namespace defines the space within which the secret name must be unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Advertise represents a list of prefixes to advertise to the given neighbor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Advertise {
    /// Allowed is is the list of prefixes allowed to be propagated to
    /// this neighbor. They must match the prefixes defined in the router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<AllowedOutPrefixes>,

    /// NextHop sets the next hop of the advertised prefixes, per address family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<NextHop>,

    /// PrefixesWithLocalPref is a list of prefixes that are associated to a local
    /// preference when being advertised. The prefixes associated to a given local pref
    /// must be in the prefixes allowed to be advertised.
    #[serde(
        default,
        rename = "withLocalPref",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub with_local_pref: Vec<LocalPrefPrefixes>,

    /// PrefixesWithCommunity is a list of prefixes that are associated to a
    /// bgp community when being advertised. The prefixes associated to a given local pref
    /// must be in the prefixes allowed to be advertised.
    #[serde(
        default,
        rename = "withCommunity",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub with_community: Vec<CommunityPrefixes>,
}

/// NextHop is the next hop to set on prefixes advertised to a neighbor, per address family.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NextHop {
    /// IPv4 is the next hop for IPv4 prefixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,

    /// IPv6 is the (global) next hop for IPv6 prefixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
}

/// Receive represents a list of prefixes to receive from the given neighbor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Receive {
    /// Allowed is the list of prefixes allowed to be received from
    /// this neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<AllowedInPrefixes>,
}

/// PrefixSelector is a filter of prefixes to receive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct PrefixSelector {
    /// Prefix is the CIDR to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "cidr"))]
    pub prefix: Option<String>,

    /// The prefix length modifier. This selector accepts any matching prefix with length
    /// less or equal the given value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::prefix_len")]
    pub le: Option<u32>,

    /// The prefix length modifier. This selector accepts any matching prefix with length
    /// greater or equal the given value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::prefix_len")]
    pub ge: Option<u32>,
}

/// AllowedInPrefixes is the list of prefixes accepted from a neighbor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AllowedInPrefixes {
    /// Prefixes is the list of prefix selectors allowed in "filtered" mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<PrefixSelector>,

    /// Mode is the mode to use when handling the prefixes.
    /// When set to "filtered", only the prefixes in the given list will be allowed.
    /// When set to "all", all the prefixes configured on the router will be allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "filtered"))]
    pub mode: Option<AllowMode>,
}

/// AllowedOutPrefixes is the list of prefixes advertised to a neighbor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AllowedOutPrefixes {
    /// Prefixes is the list of prefixes allowed in "filtered" mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,

    /// Mode is the mode to use when handling the prefixes.
    /// When set to "filtered", only the prefixes in the given list will be allowed.
    /// When set to "all", all the prefixes configured on the router will be allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "filtered"))]
    pub mode: Option<AllowMode>,
}

/// LocalPrefPrefixes is a list of prefixes associated to a local preference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalPrefPrefixes {
    /// Prefixes is the list of prefixes associated to the local preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1), extend("format" = "cidr"))]
    pub prefixes: Vec<String>,

    /// LocalPref is the local preference associated to the prefixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::uint32")]
    pub local_pref: Option<u32>,
}

/// CommunityPrefixes is a list of prefixes associated to a community.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommunityPrefixes {
    /// Prefixes is the list of prefixes associated to the community.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1), extend("format" = "cidr"))]
    pub prefixes: Vec<String>,

    /// Community is the community associated to the prefixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community: Option<String>,
}

/// BFDProfile is the configuration related to the BFD protocol associated
/// to a BGP session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BfdProfile {
    /// The name of the BFD Profile to be referenced in other parts
    /// of the configuration.
    pub name: String,

    /// The minimum interval that this system is capable of
    /// receiving control packets in milliseconds.
    /// Defaults to 300ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::bfd_interval")]
    pub receive_interval: Option<u32>,

    /// The minimum transmission interval (less jitter)
    /// that this system wants to use to send BFD control packets in
    /// milliseconds. Defaults to 300ms
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::bfd_interval")]
    pub transmit_interval: Option<u32>,

    /// Configures the detection multiplier to determine
    /// packet loss. The remote transmission interval will be multiplied
    /// by this value to determine the connection loss detection timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::bfd_multiplier")]
    pub detect_multiplier: Option<u32>,

    /// Configures the minimal echo receive transmission
    /// interval that this system is capable of handling in milliseconds.
    /// Defaults to 50ms
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::bfd_interval")]
    pub echo_interval: Option<u32>,

    /// Enables or disables the echo transmission mode.
    /// This mode is disabled by default, and not supported on multi
    /// hops setups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mode: Option<bool>,

    /// Mark session as passive: a passive session will not
    /// attempt to start the connection and will wait for control packets
    /// from peer before it begins replying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,

    /// For multi hop sessions only: configure the minimum
    /// expected TTL for an incoming BFD control packet.
    #[serde(
        default,
        rename = "minimumTtl",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::bfd_ttl")]
    pub minimum_ttl: Option<u32>,
}

/// AllowMode selects whether every prefix or only a listed subset is allowed.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AllowMode {
    /// Every prefix (of the router, for advertisements; any prefix, for receiving).
    All,
    /// Only the listed prefixes.
    #[default]
    Filtered,
}

/// DynamicASNMode is the kind of peer AS detected without a number.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DynamicAsnMode {
    /// The neighbor must be in the router's AS (`remote-as internal`).
    Internal,
    /// The neighbor must be in another AS (`remote-as external`).
    External,
}

/// Address family a neighbor is activated for.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    /// IPv4/IPv6 unicast, depending on the neighbor's family.
    Unicast,
    /// L2VPN EVPN.
    Evpn,
}

// ---------------------------------------------------------------------------------------------
// EVPN

/// EVPNConfig contains EVPN-specific configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvpnConfig {
    /// AdvertiseVNIs controls how VNIs are advertised to EVPN neighbors.
    /// - "Disabled": No VNI advertisements
    /// - "All": Advertise all VNIs (enables advertise-all-vni)
    ///
    /// Note: Can only be provided for router instances with EVPN neighbors.
    #[serde(
        default,
        rename = "advertiseVNIs",
        skip_serializing_if = "Option::is_none"
    )]
    pub advertise_vnis: Option<VniAdvertisement>,

    /// AdvertiseSVI enables advertising the SVI IP/MAC as a type-2 route.
    #[serde(
        default,
        rename = "advertiseSVI",
        skip_serializing_if = "Option::is_none"
    )]
    pub advertise_svi: Option<bool>,

    /// L2VNIs contains configuration for Layer 2 VNIs (MAC-VRF).
    /// Note: Can only be provided for router instances with EVPN neighbors.
    #[serde(default, rename = "l2vnis", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub l2_vnis: Vec<L2Vni>,

    /// L3VNI contains configuration for the Layer 3 VNI (IP-VRF).
    /// Note: Can only be provided for router instances with no neighbors.
    #[serde(default, rename = "l3vni", skip_serializing_if = "Option::is_none")]
    pub l3_vni: Option<L3Vni>,
}

/// VNIAdvertisement defines how VNIs are advertised in EVPN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum VniAdvertisement {
    /// No VNI advertisement.
    #[default]
    Disabled,
    /// Advertise all VNIs (`advertise-all-vni`).
    All,
}

/// L2VNI represents a Layer 2 VNI configuration (MAC-VRF).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct L2Vni {
    /// VNI is the VXLAN Network Identifier (1-16777215).
    #[schemars(schema_with = "schema::vni")]
    pub vni: u32,

    /// RD is the route distinguisher for this VNI.
    /// Format: A.B.C.D:MN|EF:OPQR|GHJK:MN (e.g., "65000:100" or "192.0.2.1:100")
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::route_distinguisher")]
    pub rd: Option<String>,

    /// ImportRTs is the list of route targets to import.
    /// Format: A.B.C.D:MN|EF:OPQR|GHJK:MN|*:MN|*:OPQR (e.g., "65000:100", "192.0.2.1:100", "*:100")
    #[serde(default, rename = "importRTs", skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::import_rts")]
    pub import_rts: Vec<String>,

    /// ExportRTs is the list of route targets to export.
    /// Format: A.B.C.D:MN|EF:OPQR|GHJK:MN (e.g., "65000:100", "192.0.2.1:100")
    #[serde(default, rename = "exportRTs", skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::export_rts")]
    pub export_rts: Vec<String>,
}

/// L3VNI represents a Layer 3 VNI configuration (IP-VRF).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["advertisePrefixes", "vni"]))]
pub struct L3Vni {
    /// VNI is the VXLAN Network Identifier (1-16777215).
    #[schemars(schema_with = "schema::vni")]
    pub vni: u32,

    /// RD is the route distinguisher for this VNI.
    /// Format: A.B.C.D:MN|EF:OPQR|GHJK:MN (e.g., "65000:100" or "192.0.2.1:100")
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::route_distinguisher")]
    pub rd: Option<String>,

    /// ImportRTs is the list of route targets to import.
    /// Format: A.B.C.D:MN|EF:OPQR|GHJK:MN|*:MN|*:OPQR (e.g., "65000:100", "192.0.2.1:100", "*:100")
    #[serde(default, rename = "importRTs", skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::import_rts")]
    pub import_rts: Vec<String>,

    /// ExportRTs is the list of route targets to export.
    /// Format: A.B.C.D:MN|EF:OPQR|GHJK:MN (e.g., "65000:100", "192.0.2.1:100")
    #[serde(default, rename = "exportRTs", skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::export_rts")]
    pub export_rts: Vec<String>,

    /// AdvertisePrefixes controls which prefixes to advertise as EVPN type-5 routes.
    /// - "unicast": advertise the unicast prefixes of the router
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::advertise_prefixes")]
    pub advertise_prefixes: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Accessors and small pure helpers (used by validation, merge and render).

/// A string field that Go treats as unset when empty.
pub(crate) fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// IP family of a neighbor session, as upstream computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    IPv4,
    IPv6,
    /// Activated in both unicast address families (dualStackAddressFamily or unnumbered).
    DualStack,
}

impl IpFamily {
    /// `ipv4`, `ipv6` or `dual`, as used in upstream's prefix-list names.
    pub fn as_str(&self) -> &'static str {
        match self {
            IpFamily::IPv4 => "ipv4",
            IpFamily::IPv6 => "ipv6",
            IpFamily::DualStack => "dual",
        }
    }

    /// Whether a session of this family can carry a prefix/next hop of `ip`'s family.
    pub fn carries(&self, ip: &IpAddr) -> bool {
        match self {
            IpFamily::DualStack => true,
            IpFamily::IPv4 => ip.is_ipv4(),
            IpFamily::IPv6 => ip.is_ipv6(),
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The remote AS of a neighbor: a number or `internal`/`external`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RemoteAsn {
    Number(u32),
    Internal,
    External,
}

impl fmt::Display for RemoteAsn {
    /// FRR's `remote-as` argument: `64512`, `internal`, `external`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteAsn::Number(n) => write!(f, "{n}"),
            RemoteAsn::Internal => f.write_str("internal"),
            RemoteAsn::External => f.write_str("external"),
        }
    }
}

impl fmt::Display for AllowMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AllowMode::All => "all",
            AllowMode::Filtered => "filtered",
        })
    }
}

impl fmt::Display for DynamicAsnMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DynamicAsnMode::Internal => "internal",
            DynamicAsnMode::External => "external",
        })
    }
}

impl FRRConfiguration {
    /// The routers of `spec.bgp` (empty when unset).
    pub fn routers(&self) -> &[Router] {
        self.spec.routers()
    }

    /// The BFD profiles of `spec.bgp` (empty when unset).
    pub fn bfd_profiles(&self) -> &[BfdProfile] {
        self.spec.bfd_profiles()
    }
}

impl FRRConfigurationSpec {
    /// The routers of `bgp` (empty when unset).
    pub fn routers(&self) -> &[Router] {
        self.bgp
            .as_ref()
            .map(|b| b.routers.as_slice())
            .unwrap_or(&[])
    }

    /// The BFD profiles of `bgp` (empty when unset).
    pub fn bfd_profiles(&self) -> &[BfdProfile] {
        self.bgp
            .as_ref()
            .map(|b| b.bfd_profiles.as_slice())
            .unwrap_or(&[])
    }

    /// The raw snippet, if non-empty.
    pub fn raw_config(&self) -> Option<&str> {
        self.raw.as_ref().and_then(|r| non_empty(&r.config))
    }

    /// The raw snippet's priority (0 when unset).
    pub fn raw_priority(&self) -> i64 {
        self.raw.as_ref().and_then(|r| r.priority).unwrap_or(0)
    }

    /// Fill in the defaults the CRD schema declares, as the apiserver would on create
    /// (`mode: filtered`, `disableMP: false`, `dualStackAddressFamily: false`,
    /// `addressFamilies: [unicast]`). Use it before comparing a desired object with one read
    /// back from the cluster.
    pub fn apply_schema_defaults(&mut self) {
        let Some(bgp) = self.bgp.as_mut() else {
            return;
        };
        for r in &mut bgp.routers {
            for n in &mut r.neighbors {
                n.disable_mp.get_or_insert(false);
                n.dual_stack_address_family.get_or_insert(false);
                if n.address_families.is_empty() {
                    n.address_families.push(AddressFamily::Unicast);
                }
                if let Some(a) = n.to_advertise.as_mut().and_then(|a| a.allowed.as_mut()) {
                    a.mode.get_or_insert(AllowMode::Filtered);
                }
                if let Some(a) = n.to_receive.as_mut().and_then(|a| a.allowed.as_mut()) {
                    a.mode.get_or_insert(AllowMode::Filtered);
                }
            }
        }
    }
}

impl Router {
    /// The VRF name, `""` for the default VRF.
    pub fn vrf_name(&self) -> &str {
        non_empty(&self.vrf).unwrap_or("")
    }

    /// The router id, if set and non-empty.
    pub fn router_id(&self) -> Option<&str> {
        non_empty(&self.id)
    }

    /// Names of the imported VRFs (empty names skipped).
    pub fn import_vrfs(&self) -> impl Iterator<Item = &str> {
        self.imports.iter().filter_map(|i| non_empty(&i.vrf))
    }

    /// Upstream's router label in messages: `<asn>-<vrf>`.
    pub fn display_name(&self) -> String {
        format!("{}-{}", self.asn, self.vrf_name())
    }
}

impl Neighbor {
    /// The neighbor's address, if set and non-empty (not parsed).
    pub fn address_str(&self) -> Option<&str> {
        non_empty(&self.address)
    }

    /// The neighbor's address parsed as an IP, if set and valid.
    pub fn address_ip(&self) -> Option<IpAddr> {
        self.address_str().and_then(|a| a.parse().ok())
    }

    /// The interface for unnumbered peering, if set and non-empty.
    pub fn interface_name(&self) -> Option<&str> {
        non_empty(&self.interface)
    }

    /// Address or interface: what FRR's `neighbor X ...` lines use.
    pub fn peer(&self) -> &str {
        self.address_str()
            .or_else(|| self.interface_name())
            .unwrap_or("")
    }

    /// The neighbor's key in merges and in FRR object names: address (or interface), plus
    /// `-<vrf>` when `vrf` is non-empty.
    pub fn id(&self, vrf: &str) -> String {
        if vrf.is_empty() {
            self.peer().to_string()
        } else {
            format!("{}-{}", self.peer(), vrf)
        }
    }

    /// Upstream's name in messages: `<asn|internal|external>@<address|interface>`.
    pub fn display_name(&self) -> String {
        let asn = match self.remote_asn() {
            Some(a) => a.to_string(),
            None => "0".to_string(),
        };
        format!("{asn}@{}", self.peer())
    }

    /// The remote AS: the number when `asn` is non-zero, else the dynamic mode.
    pub fn remote_asn(&self) -> Option<RemoteAsn> {
        match (self.asn.filter(|a| *a != 0), self.dynamic_asn) {
            (Some(n), _) => Some(RemoteAsn::Number(n)),
            (None, Some(DynamicAsnMode::Internal)) => Some(RemoteAsn::Internal),
            (None, Some(DynamicAsnMode::External)) => Some(RemoteAsn::External),
            (None, None) => None,
        }
    }

    /// Whether this is an iBGP session for a router with AS `router_asn`.
    pub fn is_ibgp(&self, router_asn: u32) -> bool {
        match self.remote_asn() {
            Some(RemoteAsn::Number(n)) => n == router_asn,
            Some(RemoteAsn::Internal) => true,
            _ => false,
        }
    }

    /// The `localASN`, when set and non-zero.
    pub fn local_asn_value(&self) -> Option<u32> {
        self.local_asn.filter(|a| *a != 0)
    }

    /// Port to dial (179 when unset).
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// Hold time (180 s when unset).
    pub fn effective_hold_time(&self) -> Result<StdDuration, ParseDurationError> {
        self.hold_time
            .as_ref()
            .map_or(Ok(DEFAULT_HOLD_TIME), Duration::parse)
    }

    /// Keepalive time (60 s when unset).
    pub fn effective_keepalive_time(&self) -> Result<StdDuration, ParseDurationError> {
        self.keepalive_time
            .as_ref()
            .map_or(Ok(DEFAULT_KEEPALIVE_TIME), Duration::parse)
    }

    /// Connect time (60 s when unset).
    pub fn effective_connect_time(&self) -> Result<StdDuration, ParseDurationError> {
        self.connect_time
            .as_ref()
            .map_or(Ok(DEFAULT_CONNECT_TIME), Duration::parse)
    }

    /// `ebgpMultiHop`, false when unset.
    pub fn ebgp_multi_hop(&self) -> bool {
        self.ebgp_multi_hop.unwrap_or(false)
    }

    /// `enableGracefulRestart`, false when unset.
    pub fn graceful_restart(&self) -> bool {
        self.enable_graceful_restart.unwrap_or(false)
    }

    /// `dualStackAddressFamily`, false when unset.
    pub fn dual_stack(&self) -> bool {
        self.dual_stack_address_family.unwrap_or(false)
    }

    /// The BFD profile name, if set and non-empty.
    pub fn bfd_profile_name(&self) -> Option<&str> {
        non_empty(&self.bfd_profile)
    }

    /// The cleartext password, if set and non-empty.
    pub fn password_value(&self) -> Option<&str> {
        non_empty(&self.password)
    }

    /// The password secret reference, if it names a secret.
    pub fn password_secret_ref(&self) -> Option<&SecretReference> {
        self.password_secret
            .as_ref()
            .filter(|s| non_empty(&s.name).is_some())
    }

    /// The `sourceaddress`, if set and non-empty.
    pub fn source_address_value(&self) -> Option<&str> {
        non_empty(&self.source_address)
    }

    /// Session IP family: dual-stack for unnumbered or `dualStackAddressFamily`, else the
    /// address's family; `None` when the address is missing or invalid.
    pub fn ip_family(&self) -> Option<IpFamily> {
        if self.interface_name().is_some() || self.dual_stack() {
            return Some(IpFamily::DualStack);
        }
        self.address_ip().map(|ip| match ip {
            IpAddr::V4(_) => IpFamily::IPv4,
            IpAddr::V6(_) => IpFamily::IPv6,
        })
    }

    /// Address families to activate (`[unicast]` when unset), deduplicated, in order.
    pub fn effective_address_families(&self) -> Vec<AddressFamily> {
        if self.address_families.is_empty() {
            return vec![AddressFamily::Unicast];
        }
        let mut v = Vec::new();
        for f in &self.address_families {
            if !v.contains(f) {
                v.push(*f);
            }
        }
        v
    }

    /// `toAdvertise.allowed`, if present.
    pub fn advertise_allowed(&self) -> Option<&AllowedOutPrefixes> {
        self.to_advertise.as_ref().and_then(|a| a.allowed.as_ref())
    }

    /// `toReceive.allowed`, if present.
    pub fn receive_allowed(&self) -> Option<&AllowedInPrefixes> {
        self.to_receive.as_ref().and_then(|r| r.allowed.as_ref())
    }

    /// `toAdvertise.withLocalPref` (empty when unset).
    pub fn with_local_pref(&self) -> &[LocalPrefPrefixes] {
        self.to_advertise
            .as_ref()
            .map(|a| a.with_local_pref.as_slice())
            .unwrap_or(&[])
    }

    /// `toAdvertise.withCommunity` (empty when unset).
    pub fn with_community(&self) -> &[CommunityPrefixes] {
        self.to_advertise
            .as_ref()
            .map(|a| a.with_community.as_slice())
            .unwrap_or(&[])
    }

    /// `toAdvertise.nextHop`, if present.
    pub fn next_hop(&self) -> Option<&NextHop> {
        self.to_advertise.as_ref().and_then(|a| a.next_hop.as_ref())
    }
}

impl AllowedOutPrefixes {
    /// The mode, `filtered` when unset.
    pub fn effective_mode(&self) -> AllowMode {
        self.mode.unwrap_or_default()
    }
}

impl AllowedInPrefixes {
    /// The mode, `filtered` when unset.
    pub fn effective_mode(&self) -> AllowMode {
        self.mode.unwrap_or_default()
    }
}

impl LocalPrefPrefixes {
    /// The local preference (0 when unset, as upstream).
    pub fn local_pref_value(&self) -> u32 {
        self.local_pref.unwrap_or(0)
    }
}

impl SecretReference {
    /// The secret's name, if non-empty.
    pub fn name_value(&self) -> Option<&str> {
        non_empty(&self.name)
    }

    /// The secret's namespace, if non-empty. Unlike upstream we honour it; an empty
    /// namespace means the daemon's namespace.
    pub fn namespace_value(&self) -> Option<&str> {
        non_empty(&self.namespace)
    }
}
