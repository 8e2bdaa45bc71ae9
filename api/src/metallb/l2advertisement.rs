//! `L2Advertisement` (`metallb.io/v1beta1`): announce pool addresses with ARP/NDP.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{check_duplicates, check_non_empty};
use super::ipaddresspool::IPAddressPool;
use crate::selector;
use crate::validation::{FieldErrors, FieldPath};

/// L2AdvertisementSpec defines the desired state of L2Advertisement.
// kube's repeated `printcolumn(type_ = ...)` trips this lint (false positive).
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    plural = "l2advertisements",
    singular = "l2advertisement",
    namespaced,
    status = "L2AdvertisementStatus",
    derive = "PartialEq",
    doc = "L2Advertisement allows to advertise the LoadBalancer IPs provided by the selected pools via L2.",
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
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 10
    )
)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
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

    /// A list of interfaces to announce from. The LB IP will be announced only from these interfaces.
    /// If the field is not set, we advertise from all the interfaces on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,

    /// ServiceSelectors limits the advertisement to the services of the selected pools that
    /// match any of these selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,

    /// PreferredNodeSelectors express a soft preference for the node that announces the
    /// service: the weights of every matching term (across every advertisement applying to the
    /// service) are summed, and the eligible node with the highest sum wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_node_selectors: Vec<PreferredNodeSelector>,
}

/// A weighted node preference for L2 leader election.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct PreferredNodeSelector {
    /// Weight associated with matching the corresponding preference, in the range 1-100.
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
    /// A node selector term, associated with the corresponding weight. An empty preference
    /// matches every node.
    pub preference: LabelSelector,
}

/// L2AdvertisementStatus defines the observed state of L2Advertisement (empty).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct L2AdvertisementStatus {}

impl L2AdvertisementSpec {
    /// Every problem with this advertisement on its own. Paths start at `spec.`.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let spec = FieldPath::new("spec");
        let mut errs = FieldErrors::new();
        let pp = spec.child("ipAddressPools");
        check_non_empty(&self.ip_address_pools, &pp, &mut errs);
        check_duplicates(&self.ip_address_pools, &pp, &mut errs);
        let ip = spec.child("interfaces");
        check_non_empty(&self.interfaces, &ip, &mut errs);
        check_duplicates(&self.interfaces, &ip, &mut errs);
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
        let pn = spec.child("preferredNodeSelectors");
        for (i, p) in self.preferred_node_selectors.iter().enumerate() {
            if !(1..=100).contains(&p.weight) {
                errs.invalid(
                    &pn.index(i).child("weight"),
                    p.weight,
                    "must be between 1 and 100",
                );
            }
            selector::validate(&p.preference, &pn.index(i).child("preference"), &mut errs);
        }
        errs.into_result()
    }

    /// The summed weight of the preferred-node terms that match a node with these labels.
    pub fn preference_weight(&self, labels: &BTreeMap<String, String>) -> i64 {
        self.preferred_node_selectors
            .iter()
            .filter(|p| selector::any_matches(std::slice::from_ref(&p.preference), labels))
            .map(|p| i64::from(p.weight))
            .sum()
    }
}

impl L2Advertisement {
    /// See [`L2AdvertisementSpec::validate`].
    pub fn validate(&self) -> Result<(), FieldErrors> {
        self.spec.validate()
    }

    /// Whether this advertisement applies to `pool` (by name, by selector, or to all pools
    /// when neither is given).
    pub fn selects_pool(&self, pool: &IPAddressPool) -> bool {
        super::bgpadvertisement::selects_pool(
            &self.spec.ip_address_pools,
            &self.spec.ip_address_pool_selectors,
            pool,
        )
    }

    /// Whether a node with these labels may announce (no selectors = every node).
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> bool {
        selector::any_matches(&self.spec.node_selectors, labels)
    }
}
