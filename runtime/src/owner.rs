//! The component's own Pod as owner of the objects it writes, so that the garbage
//! collector removes them with the pod (as upstream: speaker ServiceBGPStatus and
//! ConfigurationState, frr-k8s BGPSessionState, the controller's ConfigurationState).

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Api, Client};

/// The owner reference for `pod` (as controller-runtime's `SetOwnerReference`: no
/// `controller`, no `blockOwnerDeletion`); `None` without a uid.
pub fn pod_owner_reference(pod: &Pod) -> Option<OwnerReference> {
    let uid = pod.metadata.uid.clone().filter(|u| !u.is_empty())?;
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid,
        ..Default::default()
    })
}

/// Reads Pod `namespace/name` and returns its owner reference; `Ok(None)` when the pod
/// does not exist or has no uid (then objects get no owner).
pub async fn pod_owner(
    client: &Client,
    namespace: &str,
    name: &str,
) -> kube::Result<Option<OwnerReference>> {
    let pod = Api::<Pod>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?;
    Ok(pod.as_ref().and_then(pod_owner_reference))
}

/// `true` when `owners` already holds `owner` (compared by uid).
pub fn is_owned_by(owners: Option<&[OwnerReference]>, owner: &OwnerReference) -> bool {
    owners
        .unwrap_or_default()
        .iter()
        .any(|o| o.uid == owner.uid)
}
