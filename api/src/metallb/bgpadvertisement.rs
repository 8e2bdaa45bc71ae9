//! `BGPAdvertisement` (`metallb.io/v1beta1`): how and to whom pool addresses are announced
//! over BGP.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{check_duplicates, check_non_empty};
use super::ipaddresspool::IPAddressPool;
use crate::community::BgpCommunity;
use crate::selector;
use crate::validation::{FieldErrors, FieldPath};

/// Default IPv4 aggregation length (no aggregation).
pub const DEFAULT_AGGREGATION_LENGTH: u8 = 32;
/// Default IPv6 aggregation length (no aggregation).
pub const DEFAULT_AGGREGATION_LENGTH_V6: u8 = 128;

/// BGPAdvertisementSpec defines the desired state of BGPAdvertisement.
// kube's repeated `printcolumn(type_ = ...)` trips this lint (false positive).
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    plural = "bgpadvertisements",
    singular = "bgpadvertisement",
    namespaced,
    status = "BGPAdvertisementStatus",
    derive = "PartialEq",
    doc = "BGPAdvertisement allows to advertise the IPs coming from the selected IPAddressPools via BGP, setting the parameters of the BGP Advertisement.",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(
        name = "IPAddressPool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors"
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 10
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "message": "serviceSelectors and aggregationLength are mutually exclusive: serviceSelectors require aggregationLength 32 and aggregationLengthV6 128",
        "rule": "!has(self.serviceSelectors) || size(self.serviceSelectors) == 0 || ((!has(self.aggregationLength) || self.aggregationLength == 32) && (!has(self.aggregationLengthV6) || self.aggregationLengthV6 == 128))"
    }
]))]
pub struct BGPAdvertisementSpec {
    /// The aggregation-length advertisement option lets you “roll up” the /32s into a larger prefix.
    /// Defaults to 32. Works for IPv4 addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 32))]
    pub aggregation_length: Option<i32>,

    /// The aggregation-length advertisement option lets you “roll up” the /128s into a larger prefix.
    /// Defaults to 128. Works for IPv6 addresses.
    #[serde(
        rename = "aggregationLengthV6",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("default" = 128))]
    pub aggregation_length_v6: Option<i32>,

    /// The BGP LOCAL_PREF attribute which is used by BGP best path algorithm,
    /// Path with higher localpref is preferred over one with lower localpref.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub local_pref: Option<u32>,

    /// The BGP communities to be associated with the announcement. Each item can be a
    /// standard community of the form 1234:1234, a large community of the form
    /// large:1234:1234:1234 or the name of an alias defined in the Community CRD.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,

    /// The list of IPAddressPools to advertise via this advertisement, selected by name.
    #[serde(
        rename = "ipAddressPools",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_address_pools: Vec<String>,

    /// A selector for the IPAddressPools which would get advertised via this advertisement.
    /// If no IPAddressPool is selected by this or by the list, the advertisement is applied to all the IPAddressPools.
    #[serde(
        rename = "ipAddressPoolSelectors",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_address_pool_selectors: Vec<LabelSelector>,

    /// NodeSelectors allows to limit the nodes to announce as next hops for the LoadBalancer IP. When empty, all the nodes are announced as next hops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// Peers limits the bgppeer to advertise the ips of the selected pools to.
    /// When empty, the loadbalancer IP is announced to all the BGPPeers configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,

    /// ServiceSelectors limits the advertisement to the services of the selected pools that
    /// match any of these selectors. Only allowed with the default aggregation lengths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// BGPAdvertisementStatus defines the observed state of BGPAdvertisement (empty).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BGPAdvertisementStatus {}

impl BGPAdvertisementSpec {
    /// Effective IPv4 aggregation length (default 32). Out-of-range values are clamped; they
    /// are rejected by [`Self::validate`].
    pub fn aggregation_length(&self) -> u8 {
        self.aggregation_length
            .map(|l| l.clamp(0, 32) as u8)
            .unwrap_or(DEFAULT_AGGREGATION_LENGTH)
    }

    /// Effective IPv6 aggregation length (default 128).
    pub fn aggregation_length_v6(&self) -> u8 {
        self.aggregation_length_v6
            .map(|l| l.clamp(0, 128) as u8)
            .unwrap_or(DEFAULT_AGGREGATION_LENGTH_V6)
    }

    /// Effective LOCAL_PREF; 0 means "not set".
    pub fn local_pref(&self) -> u32 {
        self.local_pref.unwrap_or(0)
    }

    /// Every problem with this advertisement on its own. Paths start at `spec.`.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let spec = FieldPath::new("spec");
        let mut errs = FieldErrors::new();
        if let Some(l) = self.aggregation_length {
            if !(1..=32).contains(&l) {
                errs.invalid(
                    &spec.child("aggregationLength"),
                    l,
                    "must be between 1 and 32",
                );
            }
        }
        if let Some(l) = self.aggregation_length_v6 {
            if !(1..=128).contains(&l) {
                errs.invalid(
                    &spec.child("aggregationLengthV6"),
                    l,
                    "must be between 1 and 128",
                );
            }
        }
        if !self.service_selectors.is_empty()
            && (self.aggregation_length() != DEFAULT_AGGREGATION_LENGTH
                || self.aggregation_length_v6() != DEFAULT_AGGREGATION_LENGTH_V6)
        {
            errs.problem(
                &spec.child("serviceSelectors"),
                "serviceSelectors and aggregationLength are mutually exclusive: serviceSelectors require aggregationLength 32 and aggregationLengthV6 128",
            );
        }
        let cp = spec.child("communities");
        for (i, c) in self.communities.iter().enumerate() {
            if BgpCommunity::could_be_alias(c) {
                if c.trim().is_empty() {
                    errs.invalid(&cp.index(i), c, "must not be empty");
                }
                continue;
            }
            if let Err(e) = BgpCommunity::parse(c) {
                errs.invalid(&cp.index(i), c, community_message(&e));
            }
        }
        check_duplicates(&self.communities, &cp, &mut errs);
        let pp = spec.child("ipAddressPools");
        check_non_empty(&self.ip_address_pools, &pp, &mut errs);
        check_duplicates(&self.ip_address_pools, &pp, &mut errs);
        let peers = spec.child("peers");
        check_non_empty(&self.peers, &peers, &mut errs);
        check_duplicates(&self.peers, &peers, &mut errs);
        selector::validate_list(
            &self.ip_address_pool_selectors,
            &spec.child("ipAddressPoolSelectors"),
            &mut errs,
        );
        selector::validate_list(
            &self.node_selectors,
            &spec.child("nodeSelectors"),
            &mut errs,
        );
        selector::validate_list(
            &self.service_selectors,
            &spec.child("serviceSelectors"),
            &mut errs,
        );
        errs.into_result()
    }

    /// The communities with aliases resolved (an alias wins over a literal of the same text,
    /// like upstream), sorted and de-duplicated. Unknown aliases and invalid values are
    /// reported with their path.
    pub fn resolved_communities(
        &self,
        aliases: &BTreeMap<String, BgpCommunity>,
    ) -> Result<Vec<BgpCommunity>, FieldErrors> {
        let cp = FieldPath::new("spec").child("communities");
        let mut errs = FieldErrors::new();
        let mut out = BTreeSet::new();
        for (i, c) in self.communities.iter().enumerate() {
            if let Some(v) = aliases.get(c) {
                out.insert(*v);
            } else if BgpCommunity::could_be_alias(c) {
                errs.invalid(
                    &cp.index(i),
                    c,
                    "is neither a valid community nor the name of a Community alias",
                );
            } else {
                match BgpCommunity::parse(c) {
                    Ok(v) => {
                        out.insert(v);
                    }
                    Err(e) => errs.invalid(&cp.index(i), c, community_message(&e)),
                }
            }
        }
        errs.into_result().map(|()| out.into_iter().collect())
    }
}

/// The message part of a community error (the value is rendered by the field error).
pub(crate) fn community_message(_e: &crate::community::CommunityError) -> &'static str {
    "is not a valid community: expected \"A:B\" with A and B in 0-65535 or \"large:A:B:C\" with 32-bit numbers"
}

impl BGPAdvertisement {
    /// See [`BGPAdvertisementSpec::validate`].
    pub fn validate(&self) -> Result<(), FieldErrors> {
        self.spec.validate()
    }

    /// See [`BGPAdvertisementSpec::resolved_communities`].
    pub fn resolved_communities(
        &self,
        aliases: &BTreeMap<String, BgpCommunity>,
    ) -> Result<Vec<BgpCommunity>, FieldErrors> {
        self.spec.resolved_communities(aliases)
    }

    /// Effective IPv4 aggregation length (default 32).
    pub fn aggregation_length(&self) -> u8 {
        self.spec.aggregation_length()
    }

    /// Effective IPv6 aggregation length (default 128).
    pub fn aggregation_length_v6(&self) -> u8 {
        self.spec.aggregation_length_v6()
    }

    /// Whether this advertisement applies to `pool`: named in `ipAddressPools`, or matched by
    /// one of `ipAddressPoolSelectors`; when both are empty it applies to every pool.
    pub fn selects_pool(&self, pool: &IPAddressPool) -> bool {
        selects_pool(
            &self.spec.ip_address_pools,
            &self.spec.ip_address_pool_selectors,
            pool,
        )
    }

    /// Whether a node with these labels may announce (no selectors = every node).
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> bool {
        selector::any_matches(&self.spec.node_selectors, labels)
    }

    /// Whether this advertisement targets the BGPPeer named `peer` (no list = every peer).
    pub fn selects_peer(&self, peer: &str) -> bool {
        self.spec.peers.is_empty() || self.spec.peers.iter().any(|p| p == peer)
    }
}

/// Shared pool-selection rule of BGP and L2 advertisements.
pub(crate) fn selects_pool(
    names: &[String],
    selectors: &[LabelSelector],
    pool: &IPAddressPool,
) -> bool {
    if names.is_empty() && selectors.is_empty() {
        return true;
    }
    let name = pool.name_any();
    if names.contains(&name) {
        return true;
    }
    let labels = pool.labels();
    !selectors.is_empty()
        && selectors
            .iter()
            .any(|s| selector::any_matches(std::slice::from_ref(s), labels))
}
