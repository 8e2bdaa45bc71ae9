//! The speakers' membership key, as upstream: the controller creates the memberlist Secret
//! (key `secretkey`: 16 random bytes, base64) when it does not exist, owned by the
//! controller's Deployment so that an uninstall removes it. An existing Secret is never
//! touched: a user may supply their own key, and rotating it under running speakers would
//! split the membership.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};
use metallb_runtime::write::{ApiErrorExt, Backoff};
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The data key the speakers read (upstream's name).
pub const SECRET_KEY: &str = "secretkey";

/// The Secret to create: a fresh key, owned by `owner` when known.
pub fn new_secret(name: &str, namespace: &str, owner: Option<OwnerReference>) -> Secret {
    let mut raw = [0u8; 16];
    rand::make_rng::<rand::rngs::StdRng>().fill_bytes(&mut raw);
    let text = base64::engine::general_purpose::STANDARD.encode(raw);
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            SECRET_KEY.to_string(),
            ByteString(text.into_bytes()),
        )])),
        ..Default::default()
    }
}

/// The owner reference for the controller's Deployment (not a controller reference: the
/// Deployment controller must not adopt it).
pub fn deployment_owner(d: &Deployment) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: Deployment::api_version(&()).to_string(),
        kind: Deployment::kind(&()).to_string(),
        name: d.name_any(),
        uid: d.uid()?,
        ..Default::default()
    })
}

/// Create the Secret unless it exists, retrying until done or `stop` (the speakers wait
/// for it: their Pods mount it).
pub async fn ensure(
    client: Client,
    namespace: String,
    name: String,
    deployment: Option<String>,
    stop: CancellationToken,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let deployments: Api<Deployment> = Api::namespaced(client, &namespace);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let result = async {
            if secrets.get_metadata_opt(&name).await?.is_some() {
                return Ok(false);
            }
            let owner = match &deployment {
                Some(d) => match deployments.get_opt(d).await? {
                    Some(d) => deployment_owner(&d),
                    None => {
                        warn!(deployment = %d, "the controller's Deployment does not exist: the memberlist Secret gets no owner");
                        None
                    }
                },
                None => None,
            };
            let secret = new_secret(&name, &namespace, owner);
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => Ok(true),
                // another controller replica (or the user) was first
                Err(e) if e.is_already_exists() => Ok(false),
                Err(e) => Err(e),
            }
        }
        .await;
        match result {
            Ok(created) => {
                match created {
                    true => info!(secret = %name, "created the speakers' memberlist Secret"),
                    false => info!(secret = %name, "the speakers' memberlist Secret exists"),
                }
                return;
            }
            Err(e) => {
                let wait = backoff.failed();
                warn!(secret = %name, error = %e, retry_in = ?wait, "cannot ensure the memberlist Secret");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_sixteen_random_bytes_in_base64() {
        let a = new_secret("memberlist", "metallb-system", None);
        let b = new_secret("memberlist", "metallb-system", None);
        let key = |s: &Secret| s.data.as_ref().unwrap()[SECRET_KEY].0.clone();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key(&a))
            .unwrap();
        assert_eq!(raw.len(), 16);
        assert_ne!(key(&a), key(&b), "two keys differ");
        assert!(a.metadata.owner_references.is_none());
    }
}
