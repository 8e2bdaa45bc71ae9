//! Validating admission webhooks for every `metallb.io` kind and the BGPPeer conversion
//! webhook, at upstream's paths.
//!
//! Each validation lists the current objects through the API (uncached, like upstream),
//! substitutes the candidate and runs `metallb-api`'s rules. A request is denied when the
//! candidate itself has problems, or when it introduces problems on other objects (a new pool
//! overlapping an existing one is reported naming both, whichever sorts first). Problems that
//! already existed before the request do not block unrelated changes. As upstream, fields
//! that could only produce transient errors are blanked first (a peer's `bfdProfile`, an
//! advertisement's community aliases), so objects may be created in any order.
//!
//! Deviation: upstream skips all other validation of a BGPPeer created with `disableMP: true`
//! (it only returns the deprecation warning); here the warning is returned *and* the peer is
//! validated.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};
use kube::core::{DynamicObject, Status};
use kube::{Client, Resource, ResourceExt};
use metallb_api::metallb::config::{ConfigObjects, NodeLabels};
use metallb_api::metallb::{
    bgppeer_v1beta1, BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool,
    L2Advertisement,
};
use metallb_api::validation::{object_ref, FieldError, ObjectError};
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::Error;

pub use metallb_api::webhooks::{
    PATH_BFDPROFILE, PATH_BGPADVERTISEMENT, PATH_BGPPEER, PATH_COMMUNITY, PATH_CONVERT,
    PATH_IPADDRESSPOOL, PATH_L2ADVERTISEMENT,
};

/// Warning returned for `disableMP`.
pub const DISABLE_MP_WARNING: &str =
    "disableMP is deprecated and will be removed in a future release: per-family sessions are the default";

#[derive(Clone)]
struct WebhookState {
    client: Client,
    namespace: Arc<str>,
}

/// The webhook router (serve it with [`serve`], or call it directly in tests).
pub fn router(client: Client, namespace: &str) -> Router {
    let st = WebhookState {
        client,
        namespace: namespace.into(),
    };
    Router::new()
        .route(PATH_IPADDRESSPOOL, post(validate::<IPAddressPool>))
        .route(PATH_BGPPEER, post(validate::<BGPPeer>))
        .route(PATH_BGPADVERTISEMENT, post(validate::<BGPAdvertisement>))
        .route(PATH_L2ADVERTISEMENT, post(validate::<L2Advertisement>))
        .route(PATH_COMMUNITY, post(validate::<Community>))
        .route(PATH_BFDPROFILE, post(validate::<BFDProfile>))
        .route(PATH_CONVERT, post(convert))
        .with_state(st)
}

// === validation ===

/// A kind that takes part in the configuration.
trait ConfigKind: Resource + Clone + serde::de::DeserializeOwned + Send + Sync + 'static {
    const KIND: &'static str;
    fn slot(cfg: &mut ConfigObjects) -> &mut Vec<Self>;
    /// Warnings for an accepted object.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// Extra checks for DELETE (default: allowed).
    fn check_delete(_name: &str, _cfg: &ConfigObjects) -> Result<(), String> {
        Ok(())
    }
}

impl ConfigKind for IPAddressPool {
    const KIND: &'static str = "IPAddressPool";
    fn slot(cfg: &mut ConfigObjects) -> &mut Vec<Self> {
        &mut cfg.pools
    }
}

impl ConfigKind for BGPPeer {
    const KIND: &'static str = "BGPPeer";
    fn slot(cfg: &mut ConfigObjects) -> &mut Vec<Self> {
        &mut cfg.peers
    }
    fn warnings(&self) -> Vec<String> {
        if self.spec.disable_mp() {
            vec![DISABLE_MP_WARNING.to_string()]
        } else {
            Vec::new()
        }
    }
}

impl ConfigKind for BGPAdvertisement {
    const KIND: &'static str = "BGPAdvertisement";
    fn slot(cfg: &mut ConfigObjects) -> &mut Vec<Self> {
        &mut cfg.bgp_advertisements
    }
}

impl ConfigKind for L2Advertisement {
    const KIND: &'static str = "L2Advertisement";
    fn slot(cfg: &mut ConfigObjects) -> &mut Vec<Self> {
        &mut cfg.l2_advertisements
    }
}

impl ConfigKind for Community {
    const KIND: &'static str = "Community";
    fn slot(cfg: &mut ConfigObjects) -> &mut Vec<Self> {
        &mut cfg.communities
    }
}

impl ConfigKind for BFDProfile {
    const KIND: &'static str = "BFDProfile";
    fn slot(cfg: &mut ConfigObjects) -> &mut Vec<Self> {
        &mut cfg.bfd_profiles
    }
    fn check_delete(name: &str, cfg: &ConfigObjects) -> Result<(), String> {
        let mut users: Vec<String> = cfg
            .peers
            .iter()
            .filter(|p| p.spec.bfd_profile() == Some(name))
            .map(|p| p.name_any())
            .collect();
        users.sort();
        match users.first() {
            Some(peer) => Err(format!(
                "failed to delete BFDProfile {name}, used by BGPPeer {peer}"
            )),
            None => Ok(()),
        }
    }
}

async fn validate<K: ConfigKind>(
    State(st): State<WebhookState>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return Json(AdmissionResponse::invalid(e.to_string()).into_review()),
    };
    let resp = AdmissionResponse::from(&req);
    let resp = match admit::<K>(&st, &req).await {
        Ok(warnings) => {
            let mut resp = resp;
            if !warnings.is_empty() {
                resp.warnings = Some(warnings);
            }
            resp
        }
        Err(message) => {
            info!(kind = K::KIND, name = %req.name, %message, "admission denied");
            resp.deny(message)
        }
    };
    Json(resp.into_review())
}

/// `Ok(warnings)` to allow, `Err(message)` to deny.
async fn admit<K: ConfigKind>(
    st: &WebhookState,
    req: &AdmissionRequest<DynamicObject>,
) -> Result<Vec<String>, String> {
    match req.operation {
        Operation::Create | Operation::Update => {
            let obj = req.object.as_ref().ok_or("request has no object")?;
            let ns = req
                .namespace
                .clone()
                .or_else(|| obj.namespace())
                .unwrap_or_default();
            if req.operation == Operation::Create && ns != *st.namespace {
                return Err(format!(
                    "resource must be created in {} namespace",
                    st.namespace
                ));
            }
            let mut candidate: K = decode(obj)?;
            if candidate.meta().namespace.is_none() {
                candidate.meta_mut().namespace = Some(ns);
            }
            let current = list_config(&st.client, &st.namespace)
                .await
                .map_err(|e| format!("failed to list existing configuration: {e}"))?;
            check_candidate(&current, candidate.clone())?;
            Ok(candidate.warnings())
        }
        Operation::Delete => {
            let current = list_config(&st.client, &st.namespace)
                .await
                .map_err(|e| format!("failed to list existing configuration: {e}"))?;
            K::check_delete(&req.name, &current).map(|()| Vec::new())
        }
        Operation::Connect => Ok(Vec::new()),
    }
}

fn decode<K: ConfigKind>(obj: &DynamicObject) -> Result<K, String> {
    let v = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    serde_json::from_value(v).map_err(|e| format!("failed to decode {}: {e}", K::KIND))
}

/// Pure core of validation: deny if the candidate has problems, or adds problems to others.
fn check_candidate<K: ConfigKind>(current: &ConfigObjects, candidate: K) -> Result<(), String> {
    let before = strip_transient(current.clone());
    let mut after = before.clone();
    let name = object_ref(candidate.meta());
    let slot = K::slot(&mut after);
    slot.retain(|o| object_ref(o.meta()) != name);
    slot.push(candidate);
    let after = strip_transient(after);
    let errs = new_errors(&before.validate(), &after.validate(), K::KIND, &name);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// Problems of `after` that concern the candidate, or that other objects did not have
/// `before`.
fn new_errors(
    before: &[ObjectError],
    after: &[ObjectError],
    kind: &str,
    name: &str,
) -> Vec<ObjectError> {
    let mut out = Vec::new();
    for e in after {
        if e.kind == kind && e.name == name {
            out.push(e.clone());
            continue;
        }
        let old: Vec<&FieldError> = before
            .iter()
            .filter(|b| b.kind == e.kind && b.name == e.name)
            .flat_map(|b| b.errors.iter())
            .collect();
        let fresh: Vec<FieldError> = e
            .errors
            .iter()
            .filter(|f| !old.contains(f))
            .cloned()
            .collect();
        if !fresh.is_empty() {
            out.push(ObjectError {
                kind: e.kind,
                name: e.name.clone(),
                errors: metallb_api::FieldErrors(fresh),
            });
        }
    }
    out
}

/// Blank fields that can only produce transient errors (objects created in any order).
fn strip_transient(mut cfg: ConfigObjects) -> ConfigObjects {
    for p in &mut cfg.peers {
        p.spec.bfd_profile = None;
    }
    for ad in &mut cfg.bgp_advertisements {
        ad.spec.communities.retain(|c| c.contains(':'));
    }
    cfg
}

/// Every configuration object in the namespace, plus node labels (uncached).
async fn list_config(client: &Client, ns: &str) -> Result<ConfigObjects, kube::Error> {
    let lp = ListParams::default();
    let pools_api = Api::<IPAddressPool>::namespaced(client.clone(), ns);
    let peers_api = Api::<BGPPeer>::namespaced(client.clone(), ns);
    let bgp_ads_api = Api::<BGPAdvertisement>::namespaced(client.clone(), ns);
    let l2_ads_api = Api::<L2Advertisement>::namespaced(client.clone(), ns);
    let bfd_api = Api::<BFDProfile>::namespaced(client.clone(), ns);
    let communities_api = Api::<Community>::namespaced(client.clone(), ns);
    let (pools, peers, bgp_ads, l2_ads, bfd, communities) = futures::try_join!(
        pools_api.list(&lp),
        peers_api.list(&lp),
        bgp_ads_api.list(&lp),
        l2_ads_api.list(&lp),
        bfd_api.list(&lp),
        communities_api.list(&lp),
    )?;
    // Node labels only refine the peer/advertisement overlap rules; without access to
    // Nodes every pair is treated as sharing a node (the strict reading).
    let nodes: Vec<NodeLabels> = match Api::<Node>::all(client.clone()).list(&lp).await {
        Ok(l) => l.items.into_iter().map(|n| n.labels().clone()).collect(),
        Err(e) => {
            warn!(error = %e, "cannot list Nodes for validation");
            Vec::new()
        }
    };
    Ok(ConfigObjects {
        pools: pools.items,
        peers: peers.items,
        bgp_advertisements: bgp_ads.items,
        l2_advertisements: l2_ads.items,
        bfd_profiles: bfd.items,
        communities: communities.items,
        nodes,
    })
}

// === conversion ===

async fn convert(Json(review): Json<ConversionReview>) -> Json<ConversionReview> {
    Json(convert_review(review))
}

/// BGPPeer v1beta1 ↔ v1beta2 (pure).
pub fn convert_review(review: ConversionReview) -> ConversionReview {
    let req = match ConversionRequest::from_review(review) {
        Ok(r) => r,
        Err(e) => {
            return ConversionResponse::invalid(Status::failure(&e.to_string(), "BadRequest"))
                .into_review()
        }
    };
    let desired = req.desired_api_version.clone();
    let converted: Result<Vec<serde_json::Value>, _> = req
        .objects
        .iter()
        .map(|o| bgppeer_v1beta1::convert_object(o, &desired))
        .collect();
    let resp = ConversionResponse::for_request(req);
    match converted {
        Ok(objs) => resp.success(objs),
        Err(e) => resp.failure(Status::failure(&e.to_string(), "ConversionFailed")),
    }
    .into_review()
}

// === serving ===

pub use metallb_runtime::tls_server::TlsFiles;

impl From<metallb_runtime::tls_server::ServeError> for Error {
    fn from(e: metallb_runtime::tls_server::ServeError) -> Self {
        use metallb_runtime::tls_server::ServeError;
        match e {
            ServeError::Tls(m) => Error::Tls(m),
            ServeError::Io(e) => Error::Io(e),
        }
    }
}

/// Load a rustls server configuration from PEM files (see
/// [`metallb_runtime::tls_server::tls_config`]).
pub fn tls_config(files: &TlsFiles) -> Result<rustls::ServerConfig, Error> {
    Ok(metallb_runtime::tls_server::tls_config(files)?)
}

/// Serve `router` on `addr` until `shutdown`: HTTPS with `tls`, plain HTTP without (tests
/// only). Returns the bound address. See [`metallb_runtime::tls_server::serve`].
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    tls: Option<TlsFiles>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), Error> {
    Ok(metallb_runtime::tls_server::serve(addr, router, tls, shutdown).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pools::tests_support::mk_pool;

    #[test]
    fn overlapping_new_pool_is_denied_naming_both() {
        let current = ConfigObjects {
            pools: vec![mk_pool("b", &["192.0.2.0/24"])],
            ..Default::default()
        };
        // "a" sorts first, so the overlap is reported on "b": still denied.
        let err = check_candidate(&current, mk_pool("a", &["192.0.2.128/25"])).unwrap_err();
        assert!(err.contains("metallb-system/a"), "{err}");
        assert!(err.contains("metallb-system/b"), "{err}");
        assert!(check_candidate(&current, mk_pool("c", &["198.18.0.0/24"])).is_ok());
        // An update of b itself does not conflict with its old version.
        assert!(check_candidate(&current, mk_pool("b", &["192.0.2.0/25"])).is_ok());
    }

    #[test]
    fn pre_existing_problems_do_not_block_unrelated_objects() {
        let current = ConfigObjects {
            pools: vec![
                mk_pool("x", &["10.0.0.0/24"]),
                mk_pool("y", &["10.0.0.0/25"]),
            ],
            ..Default::default()
        };
        assert!(check_candidate(&current, mk_pool("z", &["198.18.0.0/24"])).is_ok());
        assert!(check_candidate(&current, mk_pool("w", &["nope"])).is_err());
    }
}
