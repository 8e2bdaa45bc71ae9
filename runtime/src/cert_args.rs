//! The webhook-certificate flags, shared by the two binaries that serve webhooks
//! (`metallb-controller` and `frr-k8s`). Both take the same flags; only the environment
//! variables' prefix (`METALLB_`, `FRRK8S_`) and the default object names differ, which
//! clap's derive needs as literals: [`cert_args!`] declares each binary's struct, and
//! [`CertFlags`] holds the logic once.

use crate::certs::{unique_identity, CertSettings, WebhookTls};
use crate::tls_server::TlsFiles;

/// The webhook certificate settings as parsed, whatever the binary.
#[derive(Clone, Debug)]
pub struct CertFlags {
    pub disable_cert_rotation: bool,
    pub cert_service_name: String,
    pub cert_secret_name: String,
    pub webhook_configuration_name: Vec<String>,
    pub conversion_crd: Vec<String>,
    pub cert_lease_name: String,
}

impl CertFlags {
    /// How the webhook server gets its certificate: the files (`--disable-cert-rotation`),
    /// or self-managed in `namespace` by the replica `identity` names (made unique per
    /// process).
    pub fn tls(&self, namespace: &str, identity: &str, files: TlsFiles) -> WebhookTls {
        if self.disable_cert_rotation {
            return WebhookTls::Files(files);
        }
        let mut s = CertSettings::new(
            namespace,
            &self.cert_secret_name,
            &self.cert_service_name,
            &self.cert_lease_name,
            &unique_identity(identity),
        );
        let names = |v: &[String]| v.iter().filter(|n| !n.is_empty()).cloned().collect();
        s.webhook_configurations = names(&self.webhook_configuration_name);
        s.conversion_crds = names(&self.conversion_crd);
        WebhookTls::Rotate(Box::new(s))
    }
}

/// Declare a binary's certificate flags: `cert_args!(Name, "PREFIX", service, secret,
/// webhook configurations, conversion CRDs, lease)` (defaults; `""` for none), giving a
/// `clap::Args` struct with `flags() -> CertFlags`.
#[macro_export]
// rustfmt is not idempotent on the multi-line #[arg(...)] attributes inside this
// macro (each run indents them further, so `cargo fmt --check` never settles).
#[rustfmt::skip]
macro_rules! cert_args {
    ($name:ident, $prefix:literal, $service:literal, $secret:literal, $vwc:literal, $crds:literal, $lease:literal) => {
        /// The webhook certificate: self-managed (upstream's cert rotator) unless disabled.
        #[derive(Clone, Debug, clap::Args)]
        struct $name {
            /// Do not generate the webhook certificate: serve the certificate files
            /// (cert-manager or another issuer) instead.
            #[arg(long, env = concat!($prefix, "_DISABLE_CERT_ROTATION"))]
            disable_cert_rotation: bool,

            /// The webhook Service (the certificate's names: svc, svc.ns, svc.ns.svc,
            /// svc.ns.svc.cluster.local), in the component's namespace.
            #[arg(long, env = concat!($prefix, "_CERT_SERVICE_NAME"), default_value = $service)]
            cert_service_name: String,

            /// The Secret holding the CA and the serving certificate, in the component's
            /// namespace.
            #[arg(long, env = concat!($prefix, "_CERT_SECRET_NAME"), default_value = $secret)]
            cert_secret_name: String,

            /// The ValidatingWebhookConfiguration that gets the caBundle (repeatable or
            /// comma-separated).
            #[arg(
                long,
                env = concat!($prefix, "_WEBHOOK_CONFIGURATION_NAME"),
                value_delimiter = ',',
                default_value = $vwc
            )]
            webhook_configuration_name: Vec<String>,

            /// CRDs whose conversion webhook gets the caBundle (repeatable or
            /// comma-separated).
            #[arg(
                long,
                env = concat!($prefix, "_CONVERSION_CRDS"),
                value_delimiter = ',',
                default_value = $crds
            )]
            conversion_crd: Vec<String>,

            /// The Lease that elects the one replica writing the certificate, in the
            /// component's namespace.
            #[arg(long, env = concat!($prefix, "_CERT_LEASE_NAME"), default_value = $lease)]
            cert_lease_name: String,
        }

        impl $name {
            fn flags(&self) -> $crate::cert_args::CertFlags {
                $crate::cert_args::CertFlags {
                    disable_cert_rotation: self.disable_cert_rotation,
                    cert_service_name: self.cert_service_name.clone(),
                    cert_secret_name: self.cert_secret_name.clone(),
                    webhook_configuration_name: self.webhook_configuration_name.clone(),
                    conversion_crd: self.conversion_crd.clone(),
                    cert_lease_name: self.cert_lease_name.clone(),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    cert_args!(TestCertArgs, "TESTX", "svc", "secret", "vwc", "", "lease");

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        certs: TestCertArgs,
    }

    #[test]
    fn defaults_env_and_flags() {
        let c = Cli::try_parse_from(["x"]).unwrap().certs.flags();
        assert!(!c.disable_cert_rotation);
        assert_eq!(c.cert_service_name, "svc");
        assert_eq!(c.webhook_configuration_name, ["vwc"]);
        let files = crate::tls_server::TlsFiles {
            cert: "c".into(),
            key: "k".into(),
        };
        let crate::certs::WebhookTls::Rotate(s) = c.tls("ns", "pod-a", files.clone()) else {
            panic!("rotation is the default");
        };
        assert!(s.conversion_crds.is_empty(), "an empty default is no CRD");
        let c = Cli::try_parse_from(["x", "--disable-cert-rotation", "--conversion-crd=a,b"])
            .unwrap()
            .certs
            .flags();
        assert_eq!(c.conversion_crd, ["a", "b"]);
        assert!(matches!(
            c.tls("ns", "pod-a", files),
            crate::certs::WebhookTls::Files(_)
        ));
    }
}
