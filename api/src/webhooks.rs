//! The webhook registrations this project ships: what the API server is told to call.
//!
//! - `ValidatingWebhookConfiguration` for every `metallb.io` kind (served by
//!   metallb-controller) at upstream's paths, names and operations;
//! - `ValidatingWebhookConfiguration` for `FRRConfiguration` (served by frr-k8s's webhook);
//! - the BGPPeer CRD's `spec.conversion` (served by metallb-controller at `/convert`).
//!
//! The chart and the tests against the real API server build them from here, so what is
//! tested is what is installed. The endpoint is either a Service (in a cluster) or a URL
//! (the real API server in tests calls `https://127.0.0.1:PORT`).

use k8s_openapi::api::admissionregistration::v1 as adm;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

/// Upstream's paths of metallb-controller's webhooks.
pub const PATH_IPADDRESSPOOL: &str = "/validate-metallb-io-v1beta1-ipaddresspool";
pub const PATH_BGPPEER: &str = "/validate-metallb-io-v1beta2-bgppeer";
pub const PATH_BGPADVERTISEMENT: &str = "/validate-metallb-io-v1beta1-bgpadvertisement";
pub const PATH_L2ADVERTISEMENT: &str = "/validate-metallb-io-v1beta1-l2advertisement";
pub const PATH_COMMUNITY: &str = "/validate-metallb-io-v1beta1-community";
pub const PATH_BFDPROFILE: &str = "/validate-metallb-io-v1beta1-bfdprofile";
pub const PATH_CONVERT: &str = "/convert";
/// Upstream frr-k8s's path of the FRRConfiguration webhook.
pub const PATH_FRRCONFIGURATION: &str = "/validate-frrk8s-metallb-io-v1beta1-frrconfiguration";

/// Upstream's object names.
pub const METALLB_WEBHOOK_CONFIGURATION: &str = "metallb-webhook-configuration";
pub const FRRK8S_WEBHOOK_CONFIGURATION: &str = "frr-k8s-validating-webhook-configuration";

/// Where the API server reaches a webhook server.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// A base URL such as `https://127.0.0.1:9443` (paths are appended).
    Url(String),
    /// A Service in the cluster.
    Service {
        namespace: String,
        name: String,
        port: i32,
    },
}

/// An endpoint plus what the API server needs to trust and use it.
#[derive(Clone, Debug)]
pub struct Target {
    pub endpoint: Endpoint,
    /// PEM of the CA that signed the webhook server's certificate (`None`: the chart or
    /// a certificate controller injects it later).
    pub ca_bundle: Option<Vec<u8>>,
    /// `Fail` (upstream's default) or `Ignore`.
    pub failure_policy: String,
}

impl Target {
    /// A URL endpoint with `failurePolicy: Fail`.
    pub fn url(base: &str, ca_pem: &[u8]) -> Target {
        Target {
            endpoint: Endpoint::Url(base.trim_end_matches('/').to_string()),
            ca_bundle: Some(ca_pem.to_vec()),
            failure_policy: "Fail".into(),
        }
    }

    fn admission_client(&self, path: &str) -> adm::WebhookClientConfig {
        match &self.endpoint {
            Endpoint::Url(base) => adm::WebhookClientConfig {
                url: Some(format!("{base}{path}")),
                ca_bundle: self.ca_bundle.clone().map(ByteString),
                service: None,
            },
            Endpoint::Service {
                namespace,
                name,
                port,
            } => adm::WebhookClientConfig {
                url: None,
                ca_bundle: self.ca_bundle.clone().map(ByteString),
                service: Some(adm::ServiceReference {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    path: Some(path.to_string()),
                    port: Some(*port),
                }),
            },
        }
    }

    fn webhook(
        &self,
        name: &str,
        path: &str,
        group: &str,
        version: &str,
        resource: &str,
        operations: &[&str],
    ) -> adm::ValidatingWebhook {
        adm::ValidatingWebhook {
            name: name.to_string(),
            admission_review_versions: vec!["v1".into()],
            client_config: self.admission_client(path),
            failure_policy: Some(self.failure_policy.clone()),
            side_effects: "None".into(),
            rules: Some(vec![adm::RuleWithOperations {
                api_groups: Some(vec![group.into()]),
                api_versions: Some(vec![version.into()]),
                operations: Some(operations.iter().map(|o| o.to_string()).collect()),
                resources: Some(vec![resource.into()]),
                scope: None,
            }]),
            ..Default::default()
        }
    }
}

/// metallb-controller's validating webhooks (upstream's names, paths and operations).
pub fn metallb_validating(target: &Target) -> adm::ValidatingWebhookConfiguration {
    let cu: &[&str] = &["CREATE", "UPDATE"];
    let hooks = [
        (
            "ipaddresspoolvalidationwebhook.metallb.io",
            PATH_IPADDRESSPOOL,
            "v1beta1",
            "ipaddresspools",
            cu,
        ),
        (
            "bgppeervalidationwebhook.metallb.io",
            PATH_BGPPEER,
            "v1beta2",
            "bgppeers",
            cu,
        ),
        (
            "bgpadvertisementvalidationwebhook.metallb.io",
            PATH_BGPADVERTISEMENT,
            "v1beta1",
            "bgpadvertisements",
            cu,
        ),
        (
            "l2advertisementvalidationwebhook.metallb.io",
            PATH_L2ADVERTISEMENT,
            "v1beta1",
            "l2advertisements",
            cu,
        ),
        (
            "communityvalidationwebhook.metallb.io",
            PATH_COMMUNITY,
            "v1beta1",
            "communities",
            cu,
        ),
        (
            "bfdprofilevalidationwebhook.metallb.io",
            PATH_BFDPROFILE,
            "v1beta1",
            "bfdprofiles",
            &["CREATE", "DELETE"],
        ),
    ];
    adm::ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(METALLB_WEBHOOK_CONFIGURATION.into()),
            ..Default::default()
        },
        webhooks: Some(
            hooks
                .iter()
                .map(|(name, path, version, resource, ops)| {
                    target.webhook(name, path, "metallb.io", version, resource, ops)
                })
                .collect(),
        ),
    }
}

/// frr-k8s's FRRConfiguration validating webhook.
pub fn frrk8s_validating(target: &Target) -> adm::ValidatingWebhookConfiguration {
    adm::ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(FRRK8S_WEBHOOK_CONFIGURATION.into()),
            ..Default::default()
        },
        webhooks: Some(vec![target.webhook(
            "frrconfigurationsvalidationwebhook.metallb.io",
            PATH_FRRCONFIGURATION,
            "frrk8s.metallb.io",
            "v1beta1",
            "frrconfigurations",
            &["CREATE", "UPDATE"],
        )]),
    }
}

/// The BGPPeer CRD's `spec.conversion`: v1beta1 ↔ v1beta2 through metallb-controller.
pub fn bgppeer_conversion(target: &Target) -> ext::CustomResourceConversion {
    let client = match &target.endpoint {
        Endpoint::Url(base) => ext::WebhookClientConfig {
            url: Some(format!("{base}{PATH_CONVERT}")),
            ca_bundle: target.ca_bundle.clone().map(ByteString),
            service: None,
        },
        Endpoint::Service {
            namespace,
            name,
            port,
        } => ext::WebhookClientConfig {
            url: None,
            ca_bundle: target.ca_bundle.clone().map(ByteString),
            service: Some(ext::ServiceReference {
                namespace: namespace.clone(),
                name: name.clone(),
                path: Some(PATH_CONVERT.into()),
                port: Some(*port),
            }),
        },
    };
    ext::CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(ext::WebhookConversion {
            client_config: Some(client),
            conversion_review_versions: vec!["v1".into()],
        }),
    }
}
