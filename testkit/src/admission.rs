//! What a real server's registry strategies do to built-in kinds on write: Service
//! defaulting and cluster IP / node port allocation, Secret `stringData`, Namespace phase
//! and name label, Pod phase, name validation.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{json, Value};

use crate::error::Cause;
use crate::registry::ResourceType;

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

/// DNS-1123 subdomain (most object names).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// DNS-1123 label (namespace names).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Validate `metadata.name` as the real server does for this kind.
pub fn validate_name(rt: &ResourceType, name: &str) -> Option<Cause> {
    let builtin_core = rt.group.is_empty();
    let (ok, rule) = match (builtin_core, rt.plural.as_str()) {
        (true, "namespaces") => (is_dns_label(name), "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"),
        (true, "services") => (
            is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()),
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
        ),
        // Event names carry dots and timestamps; anything path-safe goes.
        (_, "events") => (!name.is_empty() && !name.contains('/') && name != "." && name != "..", "may not contain '/'"),
        _ => (is_dns_subdomain(name), "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
    };
    (!ok).then(|| {
        cause(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": {rule}"),
        )
    })
}

/// Allocation state for services: what every stored service uses. The store keeps one
/// instance up to date on every service write (rebuilding it for each write made creating
/// N services quadratic), and scans for free values start at a cursor.
#[derive(Debug, Default)]
pub struct Allocations {
    /// Cluster IPs in use.
    pub ips: BTreeSet<String>,
    /// Node ports in use.
    pub node_ports: BTreeSet<i64>,
    /// Offsets below these are known to be taken (lowered when something is freed).
    next_v4: u32,
    next_v6: u128,
    next_port: i64,
}

impl Allocations {
    /// Collect what the given services use.
    pub fn from_services<'a>(services: impl Iterator<Item = &'a Value>) -> Self {
        let mut a = Allocations::default();
        for s in services {
            a.record(s);
        }
        a
    }

    fn usage(s: &Value) -> (Vec<String>, Vec<i64>) {
        let ips = s["spec"]["clusterIPs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|ip| ip.as_str().map(String::from))
            .collect();
        let mut ports: Vec<i64> = s["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["nodePort"].as_i64())
            .collect();
        ports.extend(s["spec"]["healthCheckNodePort"].as_i64());
        (ips, ports)
    }

    /// Add what a stored service uses.
    pub fn record(&mut self, s: &Value) {
        let (ips, ports) = Self::usage(s);
        self.ips.extend(ips);
        self.node_ports.extend(ports);
    }

    /// Remove what a service used (it was deleted or is being rewritten).
    pub fn forget(&mut self, s: &Value) {
        let (ips, ports) = Self::usage(s);
        let v4_base = u32::from(Ipv4Addr::new(10, 96, 0, 0));
        let v6_base = u128::from("fd00:10:96::".parse::<Ipv6Addr>().expect("valid"));
        for ip in ips {
            self.ips.remove(&ip);
            // a freed value below a cursor moves the cursor back to it
            match ip.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(a)) => {
                    let off = u32::from(a).wrapping_sub(v4_base);
                    self.next_v4 = self.next_v4.min(off);
                }
                Ok(std::net::IpAddr::V6(a)) => {
                    let off = u128::from(a).wrapping_sub(v6_base);
                    self.next_v6 = self.next_v6.min(off);
                }
                Err(_) => {}
            }
        }
        for p in ports {
            self.node_ports.remove(&p);
            self.next_port = self.next_port.min(p);
        }
    }

    fn next_v4(&mut self) -> Option<String> {
        // 10.96.0.0/12, skipping the network address and .1 (the `kubernetes` service).
        let start = self.next_v4.max(10);
        let found = (start..(1 << 20)).find_map(|i| {
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i).to_string();
            self.ips.insert(ip.clone()).then_some((i, ip))
        });
        found.map(|(i, ip)| {
            self.next_v4 = i + 1;
            ip
        })
    }

    fn next_v6(&mut self) -> Option<String> {
        let base = u128::from("fd00:10:96::".parse::<Ipv6Addr>().expect("valid"));
        let start = self.next_v6.max(10);
        let found = (start..(1 << 20)).find_map(|i| {
            let ip = Ipv6Addr::from(base + i).to_string();
            self.ips.insert(ip.clone()).then_some((i, ip))
        });
        found.map(|(i, ip)| {
            self.next_v6 = i + 1;
            ip
        })
    }

    fn next_port(&mut self) -> Option<i64> {
        let start = self.next_port.max(30000);
        let p = (start..=32767).find(|p| self.node_ports.insert(*p))?;
        self.next_port = p + 1;
        Some(p)
    }
}

/// Service defaulting, allocation and the validation that matters to controllers.
pub fn admit_service(old: Option<&Value>, new: &mut Value, alloc: &mut Allocations) -> Vec<Cause> {
    let mut causes = Vec::new();
    if !new["spec"].is_object() {
        new["spec"] = json!({});
    }
    let old_spec = old.map(|o| o["spec"].clone()).unwrap_or(Value::Null);
    let spec = new["spec"].as_object_mut().expect("made an object");
    let ty = spec
        .entry("type")
        .or_insert_with(|| json!("ClusterIP"))
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !matches!(
        ty.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        causes.push(cause(
            "FieldValueNotSupported",
            "spec.type",
            format!("Unsupported value: \"{ty}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        ));
        return causes;
    }
    spec.entry("sessionAffinity")
        .or_insert_with(|| json!("None"));
    let external = ty == "ExternalName";
    if external {
        if spec
            .get("externalName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            causes.push(cause(
                "FieldValueRequired",
                "spec.externalName",
                "Required value".into(),
            ));
        }
        return causes;
    }
    spec.entry("internalTrafficPolicy")
        .or_insert_with(|| json!("Cluster"));
    let lb_or_np = ty == "LoadBalancer" || ty == "NodePort";
    if lb_or_np {
        spec.entry("externalTrafficPolicy")
            .or_insert_with(|| json!("Cluster"));
    } else {
        spec.remove("externalTrafficPolicy");
    }
    if ty == "LoadBalancer" {
        spec.entry("allocateLoadBalancerNodePorts")
            .or_insert_with(|| json!(true));
    }
    // Allocated values survive an update that does not mention them (patchAllocatedValues).
    for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        if spec.get(k).is_none_or(Value::is_null) {
            if let Some(v) = old_spec.get(k) {
                spec.insert(k.into(), v.clone());
            }
        }
    }
    let ports = spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    if ports.is_empty() && spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
        causes.push(cause(
            "FieldValueRequired",
            "spec.ports",
            "Required value".into(),
        ));
    }
    let want_node_ports = ty == "NodePort"
        || (ty == "LoadBalancer"
            && spec
                .get("allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false));
    let mut out_ports = Vec::new();
    for (i, mut p) in ports.into_iter().enumerate() {
        let port = p["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&port) {
            causes.push(cause(
                "FieldValueInvalid",
                &format!("spec.ports[{i}].port"),
                format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
            ));
        }
        if p["protocol"].is_null() {
            p["protocol"] = json!("TCP");
        }
        if p["targetPort"].is_null() {
            p["targetPort"] = json!(port);
        }
        if want_node_ports {
            if p["nodePort"].is_null() {
                let prev = old_spec["ports"].as_array().and_then(|a| {
                    a.iter()
                        .find(|o| o["port"] == p["port"] && o["protocol"] == p["protocol"])
                        .and_then(|o| o["nodePort"].as_i64())
                });
                match prev.or_else(|| alloc.next_port()) {
                    Some(n) => p["nodePort"] = json!(n),
                    None => causes.push(cause(
                        "FieldValueInvalid",
                        &format!("spec.ports[{i}].nodePort"),
                        "Invalid value: 0: range is full".into(),
                    )),
                }
            }
        } else if ty == "ClusterIP" {
            if let Some(m) = p.as_object_mut() {
                m.remove("nodePort");
            }
        }
        out_ports.push(p);
    }
    if !out_ports.is_empty() {
        spec.insert("ports".into(), Value::Array(out_ports));
    }
    // IP families and cluster IPs.
    let policy = spec
        .entry("ipFamilyPolicy")
        .or_insert_with(|| json!("SingleStack"))
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut families: Vec<String> = spec
        .get("ipFamilies")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if families.is_empty() {
        let first_ip = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or_default();
        families.push(
            if first_ip.contains(':') {
                "IPv6"
            } else {
                "IPv4"
            }
            .to_string(),
        );
    }
    if policy != "SingleStack" && families.len() == 1 {
        families.push(
            if families[0] == "IPv4" {
                "IPv6"
            } else {
                "IPv4"
            }
            .to_string(),
        );
    }
    if policy == "SingleStack" {
        families.truncate(1);
    }
    spec.insert("ipFamilies".into(), json!(families));
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if headless {
        spec.insert("clusterIPs".into(), json!(["None"]));
    } else {
        let mut ips: Vec<String> = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if ips.is_empty() {
            if let Some(ip) = spec.get("clusterIP").and_then(Value::as_str) {
                if !ip.is_empty() {
                    alloc.ips.insert(ip.to_string());
                    ips.push(ip.to_string());
                }
            }
        }
        for fam in families.iter().skip(ips.len()) {
            let ip = if fam == "IPv6" {
                alloc.next_v6()
            } else {
                alloc.next_v4()
            };
            if let Some(ip) = ip {
                ips.push(ip);
            }
        }
        if let Some(first) = ips.first() {
            spec.insert("clusterIP".into(), json!(first));
        }
        spec.insert("clusterIPs".into(), json!(ips));
    }
    if let Some(old_ip) = old_spec["clusterIP"].as_str() {
        if spec.get("clusterIP").and_then(Value::as_str) != Some(old_ip) && !old_ip.is_empty() {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.clusterIPs[0]",
                format!(
                    "Invalid value: {:?}: may not change once set",
                    spec["clusterIP"]
                ),
            ));
        }
    }
    if ty == "LoadBalancer"
        && spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
        && spec.get("healthCheckNodePort").is_none()
    {
        let hc = old_spec["healthCheckNodePort"]
            .as_i64()
            .or_else(|| alloc.next_port());
        if let Some(hc) = hc {
            spec.insert("healthCheckNodePort".into(), json!(hc));
        }
    }
    if new["status"].is_null() {
        new["status"] = json!({ "loadBalancer": {} });
    }
    causes
}

/// Secret: `stringData` is merged into `data` (base64) and dropped; `type` defaults to Opaque.
pub fn admit_secret(new: &mut Value) {
    use base64::Engine;
    if let Some(Value::Object(sd)) = new.as_object_mut().and_then(|m| m.remove("stringData")) {
        if !new["data"].is_object() {
            new["data"] = json!({});
        }
        for (k, v) in sd {
            let text = v.as_str().unwrap_or_default();
            new["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
    if new["type"].is_null() {
        new["type"] = json!("Opaque");
    }
}

/// Namespace: the name label, `spec.finalizers` and phase.
pub fn admit_namespace(old: Option<&Value>, new: &mut Value) {
    let name = new["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !new["metadata"]["labels"].is_object() {
        new["metadata"]["labels"] = json!({});
    }
    new["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
    if new["spec"]["finalizers"].is_null() {
        new["spec"]["finalizers"] = json!(["kubernetes"]);
    }
    if new["status"]["phase"].is_null() {
        new["status"]["phase"] = old
            .map(|o| o["status"]["phase"].clone())
            .filter(|p| !p.is_null())
            .unwrap_or(json!("Active"));
    }
}

/// Pod: phase `Pending` on create.
pub fn admit_pod(old: Option<&Value>, new: &mut Value) {
    if old.is_none() && new["status"]["phase"].is_null() {
        new["status"]["phase"] = json!("Pending");
    }
}
