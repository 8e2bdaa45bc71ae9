//! The kinds the server knows (built-in and from CRDs) and the discovery documents.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult, Cause};

/// Group and plural resource name: the storage key of a kind (shared by all its versions).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// API group, empty for the core group.
    pub group: String,
    /// Plural resource name, e.g. `services`.
    pub resource: String,
}

/// One served (group, version, resource).
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group, empty for core.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Plural name (URL segment).
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Kind of the list.
    pub list_kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for discovery.
    pub short_names: Vec<String>,
    /// Categories for discovery.
    pub categories: Vec<String>,
    /// Whether `/status` is a subresource (main endpoint then ignores status).
    pub status_subresource: bool,
    /// `openAPIV3Schema` for custom resources.
    pub schema: Option<Value>,
    /// Defined by a CRD (unstructured semantics: no strategic merge patch).
    pub custom: bool,
    /// Name of the CRD that defines it.
    pub crd_name: Option<String>,
}

impl ResourceType {
    /// The storage key.
    pub fn gr(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            resource: self.plural.clone(),
        }
    }

    /// `apiVersion` string: `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether the server maintains `metadata.generation` for this kind.
    pub fn tracks_generation(&self) -> bool {
        self.custom || self.status_subresource
    }

    /// Whether status set on create is kept (only Nodes, among the kinds with a status
    /// subresource, keep it in a real server).
    pub fn keeps_status_on_create(&self) -> bool {
        !self.status_subresource || (self.group.is_empty() && self.plural == "nodes")
    }

    fn discovery_entries(&self) -> Vec<Value> {
        let verbs = [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        let mut out = vec![main];
        if self.status_subresource {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        out
    }
}

/// A built-in kind: (group, version, plural, kind, namespaced, status, short names).
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    bool,
    &'static [&'static str],
);

/// Built-in kinds.
const BUILTINS: &[Builtin] = &[
    ("", "v1", "namespaces", "Namespace", false, true, &["ns"]),
    ("", "v1", "nodes", "Node", false, true, &["no"]),
    ("", "v1", "services", "Service", true, true, &["svc"]),
    ("", "v1", "endpoints", "Endpoints", true, false, &["ep"]),
    ("", "v1", "pods", "Pod", true, true, &["po"]),
    ("", "v1", "secrets", "Secret", true, false, &[]),
    ("", "v1", "configmaps", "ConfigMap", true, false, &["cm"]),
    ("", "v1", "events", "Event", true, false, &["ev"]),
    (
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        false,
        &["sa"],
    ),
    (
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        false,
        &[],
    ),
    (
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        true,
        false,
        &["ev"],
    ),
    (
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        false,
        &[],
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        true,
        &["crd", "crds"],
    ),
];

/// All served kinds, by group, then version, then plural.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    groups: BTreeMap<String, BTreeMap<String, BTreeMap<String, ResourceType>>>,
}

/// Kubernetes version priority: GA > beta > alpha > other; higher numbers first.
pub fn version_priority(v: &str) -> (u8, u64, u64, String) {
    let parse = |s: &str| -> Option<(u64, u8, u64)> {
        let rest = s.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: u64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 3, 0));
        }
        let (kind, n) = if let Some(n) = tail.strip_prefix("beta") {
            (2, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, n)
        } else {
            return None;
        };
        Some((major, kind, n.parse().ok()?))
    };
    match parse(v) {
        // Sorting ascending on this key puts the preferred version first.
        Some((major, kind, minor)) => (3 - kind, u64::MAX - major, u64::MAX - minor, String::new()),
        None => (9, 0, 0, v.to_string()),
    }
}

impl Registry {
    /// A registry holding the built-in kinds.
    pub fn builtin() -> Self {
        let mut r = Registry::default();
        for (group, version, plural, kind, namespaced, status, short) in BUILTINS {
            r.insert(ResourceType {
                group: group.to_string(),
                version: version.to_string(),
                plural: plural.to_string(),
                singular: kind.to_lowercase(),
                kind: kind.to_string(),
                list_kind: format!("{kind}List"),
                namespaced: *namespaced,
                short_names: short.iter().map(|s| s.to_string()).collect(),
                categories: if matches!(*plural, "pods" | "services") {
                    vec!["all".to_string()]
                } else {
                    vec![]
                },
                status_subresource: *status,
                schema: None,
                custom: false,
                crd_name: None,
            });
        }
        r
    }

    fn insert(&mut self, rt: ResourceType) {
        self.groups
            .entry(rt.group.clone())
            .or_default()
            .entry(rt.version.clone())
            .or_default()
            .insert(rt.plural.clone(), rt);
    }

    /// Look a kind up by group, version and plural.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.groups.get(group)?.get(version)?.get(plural)
    }

    /// Any served version of a group/resource (the preferred one).
    pub fn any_version(&self, gr: &GroupResource) -> Option<&ResourceType> {
        let versions = self.groups.get(&gr.group)?;
        let mut vs: Vec<&String> = versions.keys().collect();
        vs.sort_by_key(|v| version_priority(v));
        vs.into_iter()
            .find_map(|v| versions.get(v).and_then(|m| m.get(&gr.resource)))
    }

    /// Whether a group/version is served.
    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| g.get(version).is_some_and(|v| !v.is_empty()))
    }

    /// Remove every kind defined by a CRD.
    pub fn remove_crd(&mut self, crd_name: &str) {
        for versions in self.groups.values_mut() {
            for kinds in versions.values_mut() {
                kinds.retain(|_, rt| rt.crd_name.as_deref() != Some(crd_name));
            }
            versions.retain(|_, kinds| !kinds.is_empty());
        }
        self.groups.retain(|_, v| !v.is_empty());
    }

    /// Register (or re-register) the kinds of a CRD. The CRD must have passed
    /// [`validate_crd`].
    pub fn add_crd(&mut self, crd: &Value) {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        self.remove_crd(name);
        for rt in crd_resource_types(crd) {
            self.insert(rt);
        }
    }

    /// `/api`.
    pub fn core_versions(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
        })
    }

    fn group_entry(&self, group: &str) -> Option<Value> {
        let versions = self.groups.get(group)?;
        let mut vs: Vec<&String> = versions.keys().collect();
        vs.sort_by_key(|v| version_priority(v));
        let list: Vec<Value> = vs
            .iter()
            .map(|v| json!({ "groupVersion": format!("{group}/{v}"), "version": v }))
            .collect();
        let preferred = list.first()?.clone();
        Some(json!({ "name": group, "versions": list, "preferredVersion": preferred }))
    }

    /// `/apis`.
    pub fn group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups
            .keys()
            .filter(|g| !g.is_empty())
            .filter_map(|g| self.group_entry(g))
            .collect();
        json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
    }

    /// `/apis/<group>`.
    pub fn group(&self, group: &str) -> Option<Value> {
        let mut g = self.group_entry(group)?;
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        Some(g)
    }

    /// Aggregated discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`): `core`
    /// selects the `/api` document (the legacy group only), else `/apis`.
    pub fn aggregated(&self, core: bool) -> Value {
        let items: Vec<Value> = self
            .groups
            .iter()
            .filter(|(g, _)| g.is_empty() == core)
            .map(|(group, versions)| {
                let mut vs: Vec<&String> = versions.keys().collect();
                vs.sort_by_key(|v| version_priority(v));
                let versions: Vec<Value> = vs
                    .into_iter()
                    .map(|v| {
                        let resources: Vec<Value> = versions[v]
                            .values()
                            .map(|rt| {
                                let kind = json!({ "group": rt.group, "version": rt.version, "kind": rt.kind });
                                let mut r = json!({
                                    "resource": rt.plural,
                                    "responseKind": kind,
                                    "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
                                    "singularResource": rt.singular,
                                    "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                                });
                                if !rt.short_names.is_empty() {
                                    r["shortNames"] = json!(rt.short_names);
                                }
                                if !rt.categories.is_empty() {
                                    r["categories"] = json!(rt.categories);
                                }
                                if rt.status_subresource {
                                    r["subresources"] = json!([{ "subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"] }]);
                                }
                                r
                            })
                            .collect();
                        json!({ "version": v, "resources": resources, "freshness": "Current" })
                    })
                    .collect();
                json!({ "metadata": { "name": group }, "versions": versions })
            })
            .collect();
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        })
    }

    /// `/api/v1` or `/apis/<group>/<version>`.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let kinds = self.groups.get(group)?.get(version)?;
        let resources: Vec<Value> = kinds
            .values()
            .flat_map(ResourceType::discovery_entries)
            .collect();
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }))
    }
}

/// The served kinds of a CRD (one per served version).
pub fn crd_resource_types(crd: &Value) -> Vec<ResourceType> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &crd["spec"];
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        out.push(ResourceType {
            group: spec["group"].as_str().unwrap_or_default().to_string(),
            version: v["name"].as_str().unwrap_or_default().to_string(),
            plural: names["plural"].as_str().unwrap_or_default().to_string(),
            singular: names["singular"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| kind.to_lowercase()),
            list_kind: names["listKind"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{kind}List")),
            kind: kind.clone(),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            short_names: strs(&names["shortNames"]),
            categories: strs(&names["categories"]),
            status_subresource: v["subresources"]["status"].is_object(),
            schema: v["schema"]["openAPIV3Schema"]
                .as_object()
                .map(|o| Value::Object(o.clone())),
            custom: true,
            crd_name: Some(name.to_string()),
        });
    }
    out
}

/// The checks a real server makes on a CRD that matter for serving it.
pub fn validate_crd(crd: &Value) -> ApiResult<()> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &crd["spec"];
    let mut causes = Vec::new();
    let mut req = |field: &str, ok: bool| {
        if !ok {
            causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: field.into(),
            });
        }
    };
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    req("spec.group", !group.is_empty());
    req("spec.names.plural", !plural.is_empty());
    req(
        "spec.names.kind",
        !spec["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
    );
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    req("spec.versions", !versions.is_empty());
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause {
            reason: "FieldValueInvalid".into(),
            message: format!(
                "Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
            ),
            field: "metadata.name".into(),
        });
    }
    if !versions.is_empty() {
        let storage = versions
            .iter()
            .filter(|v| v["storage"].as_bool() == Some(true))
            .count();
        if storage != 1 {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {:?}: must have exactly one version marked as storage version",
                    versions
                        .iter()
                        .filter(|v| v["storage"].as_bool() == Some(true))
                        .filter_map(|v| v["name"].as_str())
                        .collect::<Vec<_>>()
                ),
                field: "spec.versions".into(),
            });
        }
    }
    match spec["scope"].as_str() {
        Some("Namespaced") | Some("Cluster") => {}
        other => causes.push(Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: {}: supported values: \"Cluster\", \"Namespaced\"",
                other
                    .map(|s| format!("{s:?}"))
                    .unwrap_or_else(|| "\"\"".into())
            ),
            field: "spec.scope".into(),
        }),
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            name,
            causes,
        ))
    }
}

/// The status a real server's CRD controllers write once a CRD is accepted.
pub fn crd_status(crd: &Value, now: &str) -> Value {
    let spec = &crd["spec"];
    let mut names = spec["names"].clone();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    if names["singular"].is_null() {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names["listKind"].is_null() {
        names["listKind"] = json!(format!("{kind}List"));
    }
    let mut stored: Vec<String> = crd["status"]["storedVersions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["storage"].as_bool() == Some(true) {
            if let Some(n) = v["name"].as_str() {
                if !stored.iter().any(|s| s == n) {
                    stored.push(n.to_string());
                }
            }
        }
    }
    json!({
        "acceptedNames": names,
        "conditions": [
            { "type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
              "message": "no conflicts found", "lastTransitionTime": now },
            { "type": "Established", "status": "True", "reason": "InitialNamesAccepted",
              "message": "the initial names have been accepted", "lastTransitionTime": now },
        ],
        "storedVersions": stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        let mut v = vec!["v1alpha1", "v1beta1", "v2", "v1", "v1beta2", "foo"];
        v.sort_by_key(|v| version_priority(v));
        assert_eq!(v, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }
}
