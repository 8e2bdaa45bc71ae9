//! The FRRConfiguration validating webhook (upstream's
//! `internal/webhooks/frrconfiguration_webhook.go`), at upstream's path
//! ([`PATH_FRRCONFIGURATION`]), for CREATE and UPDATE.
//!
//! A candidate object is admitted when the node daemon would merge it completely on every
//! node it selects:
//!
//! 1. its `nodeSelector` must parse ("resource contains an invalid NodeSelector");
//! 2. its own validation must pass (every problem with its field path);
//! 3. for each Node it selects, the existing FRRConfigurations selecting that node (minus
//!    the candidate's previous version) plus the candidate go through [`merge()`], the very
//!    function the node daemon runs; a problem the candidate brings is denied with
//!    `resource is invalid for node <node>`. Conflicts name both objects.
//!
//! If it selects no node, steps 1 and 2 and the merge of the object with itself run.
//! Objects and Nodes are read live from the API (uncached, as upstream).
//!
//! As upstream, `passwordSecret` references are not resolved (a Secret may be created
//! after the object that uses it), so a missing Secret never blocks.
//!
//! Where this differs from upstream:
//! - the existing objects considered are those of the candidate's namespace, the set one
//!   daemon merges (upstream lists every namespace although its daemon reads only its own);
//!   the candidate's previous version is recognised by namespace and name (upstream: name);
//! - problems other objects already had before the request never block it (upstream denies
//!   every change on a node while any object there is broken); the candidate is denied only
//!   for problems it brings;
//! - the candidate's own validation runs even when it selects no node;
//! - what the daemon does not support yet (EVPN) is denied, since the daemon would skip it.
//!
//! Warnings: `disableMP` is deprecated ([`DISABLE_MP_WARNING`]); on UPDATE, a changed
//! `enableGracefulRestart` only takes effect when the session restarts
//! ([`GRACEFUL_RESTART_WARNING`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::DynamicObject;
use kube::Client;
use metallb_api::frrk8s::FRRConfiguration;
use metallb_api::selector::Selector;
use metallb_api::validation::{object_ref, FieldPath};
use metallb_runtime::tls_server::{self, ServeError, TlsFiles};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::merge::ObjectIssue;
use crate::{merge, NoSecrets};

pub use metallb_api::webhooks::PATH_FRRCONFIGURATION;

/// Returned when a neighbor sets `disableMP`.
pub const DISABLE_MP_WARNING: &str =
    "disableMP is deprecated, is ignored and will be removed in a future release";
/// Returned on UPDATE when a neighbor's `enableGracefulRestart` changed.
pub const GRACEFUL_RESTART_WARNING: &str =
    "Graceful restart configuration changed, it will be available on the next restart";
/// Denial of an object whose `nodeSelector` does not parse.
pub const INVALID_NODE_SELECTOR: &str = "resource contains an invalid NodeSelector";

/// A Node as the webhook sees it: its name and labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeLabels {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl NodeLabels {
    pub fn new(name: &str, labels: &[(&str, &str)]) -> Self {
        NodeLabels {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

// === the decision (pure) ===

/// Pure core of the webhook: `Ok(warnings)` to admit `candidate`, `Err(message)` to deny.
///
/// `old` is the object being replaced (UPDATE), `existing` the FRRConfigurations in the
/// cluster (any namespace; the candidate's previous version among them is ignored),
/// `nodes` every Node.
pub fn check(
    candidate: &FRRConfiguration,
    old: Option<&FRRConfiguration>,
    existing: &[FRRConfiguration],
    nodes: &[NodeLabels],
) -> Result<Vec<String>, String> {
    let selector =
        node_selector(candidate).map_err(|errors| format!("{errors}\n{INVALID_NODE_SELECTOR}"))?;
    let warnings = warnings(candidate, old);
    let name = object_ref(&candidate.metadata);
    if let Err(errors) = candidate.validate() {
        return Err(format!("FRRConfiguration {name}: {errors}"));
    }

    let namespace = candidate.metadata.namespace.as_deref().unwrap_or("");
    // Folded last by the merge (no creationTimestamp): a conflict is reported on the
    // candidate, and what the other objects merge into is what the daemon has today.
    let mut cand = for_merge(candidate);
    cand.metadata.creation_timestamp = None;
    let others: Vec<(FRRConfiguration, Selector)> = existing
        .iter()
        .filter(|c| {
            c.metadata.namespace.as_deref().unwrap_or("") == namespace
                && object_ref(&c.metadata) != name
        })
        // an object with an invalid selector selects no node (the daemon skips it)
        .filter_map(|c| Some((for_merge(c), node_selector(c).ok()?)))
        .collect();

    let mut matching: Vec<&NodeLabels> = nodes
        .iter()
        .filter(|n| selector.matches(&n.labels))
        .collect();
    matching.sort_by(|a, b| a.name.cmp(&b.name));
    if matching.is_empty() {
        let alone = merge(&[&cand], &NoSecrets, namespace).errors;
        return match alone.0.as_slice() {
            [] => Ok(warnings),
            issues => Err(describe(issues.iter())),
        };
    }
    // Nodes selected by the same objects get the same answer: merge once per set.
    let mut seen: BTreeSet<Vec<usize>> = BTreeSet::new();
    for node in matching {
        let set: Vec<usize> = others
            .iter()
            .enumerate()
            .filter(|(_, (_, sel))| sel.matches(&node.labels))
            .map(|(i, _)| i)
            .collect();
        if !seen.insert(set.clone()) {
            continue;
        }
        let mut selected: Vec<&FRRConfiguration> = set.iter().map(|i| &others[*i].0).collect();
        let before_candidate = selected.len();
        selected.push(&cand);
        let after = merge(&selected, &NoSecrets, namespace).errors;
        if after.is_empty() {
            continue;
        }
        // Problems of other objects count only when the candidate caused them.
        let before = if after.iter().any(|i| i.object != name) {
            merge(&selected[..before_candidate], &NoSecrets, namespace).errors
        } else {
            Default::default()
        };
        let new: Vec<&ObjectIssue> = after
            .iter()
            .filter(|i| i.object == name || !before.0.contains(i))
            .collect();
        if !new.is_empty() {
            return Err(format!(
                "{}\nresource is invalid for node {}",
                describe(new.into_iter()),
                node.name
            ));
        }
    }
    Ok(warnings)
}

/// The warnings for `candidate` replacing `old` (`None` on CREATE).
pub fn warnings(candidate: &FRRConfiguration, old: Option<&FRRConfiguration>) -> Vec<String> {
    let mut out = Vec::new();
    if candidate
        .routers()
        .iter()
        .any(|r| r.neighbors.iter().any(|n| n.disable_mp == Some(true)))
    {
        out.push(DISABLE_MP_WARNING.to_string());
    }
    if old.is_some_and(|old| graceful_restart_changed(old, candidate)) {
        out.push(GRACEFUL_RESTART_WARNING.to_string());
    }
    out
}

/// Whether a neighbor present in both (same VRF, peer and remote AS) changed its
/// `enableGracefulRestart`.
fn graceful_restart_changed(old: &FRRConfiguration, new: &FRRConfiguration) -> bool {
    let key = |vrf: &str, n: &metallb_api::frrk8s::Neighbor| {
        (
            vrf.to_string(),
            n.peer().to_string(),
            n.remote_asn().map(|a| a.to_string()),
        )
    };
    let before: BTreeMap<_, bool> = old
        .routers()
        .iter()
        .flat_map(|r| {
            r.neighbors
                .iter()
                .map(|n| (key(r.vrf_name(), n), n.graceful_restart()))
        })
        .collect();
    new.routers().iter().any(|r| {
        r.neighbors.iter().any(|n| {
            before
                .get(&key(r.vrf_name(), n))
                .is_some_and(|gr| *gr != n.graceful_restart())
        })
    })
}

/// The object's `nodeSelector` (unset selects every node).
fn node_selector(cfg: &FRRConfiguration) -> Result<Selector, metallb_api::FieldErrors> {
    match &cfg.spec.node_selector {
        None => Ok(Selector::everything()),
        Some(sel) => Selector::parse(sel, &FieldPath::new("spec").child("nodeSelector")),
    }
}

/// A copy for the merge with `passwordSecret` references removed: Secrets are not read.
fn for_merge(cfg: &FRRConfiguration) -> FRRConfiguration {
    let mut c = cfg.clone();
    if let Some(bgp) = c.spec.bgp.as_mut() {
        for r in &mut bgp.routers {
            for n in &mut r.neighbors {
                n.password_secret = None;
            }
        }
    }
    c
}

/// One line per object: `FRRConfiguration ns/name: problem; problem`.
fn describe<'a>(issues: impl Iterator<Item = &'a ObjectIssue>) -> String {
    issues
        .map(|i| {
            let errors: Vec<String> = i.errors.iter().map(ToString::to_string).collect();
            format!("FRRConfiguration {}: {}", i.object, errors.join("; "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// === the server ===

#[derive(Clone)]
struct WebhookState {
    client: Client,
}

/// The webhook router: [`PATH_FRRCONFIGURATION`] and `GET /healthz`.
pub fn router(client: Client) -> Router {
    Router::new()
        .route(PATH_FRRCONFIGURATION, post(validate))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .with_state(WebhookState { client })
}

/// Serve [`router`] on `addr` until `shutdown` (HTTPS with `tls`; plain HTTP without, for
/// tests only). Returns the bound address and the server task.
pub async fn serve(
    addr: SocketAddr,
    client: Client,
    tls: Option<TlsFiles>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ServeError> {
    tls_server::serve(addr, router(client), tls, shutdown).await
}

async fn validate(
    State(st): State<WebhookState>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return Json(AdmissionResponse::invalid(e.to_string()).into_review()),
    };
    let resp = AdmissionResponse::from(&req);
    let resp = match admit(&st.client, &req).await {
        Ok(warnings) => {
            let mut resp = resp;
            if !warnings.is_empty() {
                resp.warnings = Some(warnings);
            }
            resp
        }
        Err(message) => {
            info!(namespace = ?req.namespace, name = %req.name, %message, "FRRConfiguration denied");
            resp.deny(message)
        }
    };
    Json(resp.into_review())
}

/// `Ok(warnings)` to allow, `Err(message)` to deny.
async fn admit(
    client: &Client,
    req: &AdmissionRequest<DynamicObject>,
) -> Result<Vec<String>, String> {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Ok(Vec::new());
    }
    let obj = req.object.as_ref().ok_or("request has no object")?;
    let mut candidate: FRRConfiguration = decode(obj)?;
    if candidate.metadata.namespace.is_none() {
        candidate.metadata.namespace = req.namespace.clone();
    }
    let old = match (&req.operation, &req.old_object) {
        (Operation::Update, Some(o)) => decode(o).ok(),
        _ => None,
    };
    // A bad selector is denied without reading anything.
    node_selector(&candidate).map_err(|errors| format!("{errors}\n{INVALID_NODE_SELECTOR}"))?;
    let namespace = candidate.metadata.namespace.clone().unwrap_or_default();
    let lp = ListParams::default();
    let configs_api = Api::<FRRConfiguration>::namespaced(client.clone(), &namespace);
    let nodes_api = Api::<Node>::all(client.clone());
    // Node labels only: metadata lists are a fraction of full Node objects.
    let (configs, nodes) = futures::try_join!(
        async {
            configs_api
                .list(&lp)
                .await
                .map_err(|e| format!("failed to get existing FRRConfiguration objects: {e}"))
        },
        async {
            nodes_api
                .list_metadata(&lp)
                .await
                .map_err(|e| format!("failed to get existing Node objects: {e}"))
        },
    )?;
    let nodes: Vec<NodeLabels> = nodes
        .items
        .into_iter()
        .map(|n| NodeLabels {
            name: n.metadata.name.unwrap_or_default(),
            labels: n.metadata.labels.unwrap_or_default(),
        })
        .collect();
    check(&candidate, old.as_ref(), &configs.items, &nodes)
}

fn decode(obj: &DynamicObject) -> Result<FRRConfiguration, String> {
    let v = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    serde_json::from_value(v).map_err(|e| format!("failed to decode FRRConfiguration: {e}"))
}

#[cfg(test)]
mod tests;
