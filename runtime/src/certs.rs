//! Self-managed webhook certificates, as upstream's cert rotator
//! (open-policy-agent/cert-controller) manages them: the process creates a CA and a serving
//! certificate, keeps them in a Secret, renews them before they expire and writes the CA
//! into the `caBundle` of its ValidatingWebhookConfigurations and of the conversion webhook
//! of its CRDs. cert-manager (or any other issuer) is the alternative: rotation off, the
//! certificate comes from mounted files ([`WebhookTls::Files`]).
//!
//! * One writer. With several replicas only the holder of a Lease
//!   (`coordination.k8s.io/v1`, in the Secret's namespace) writes the Secret and the
//!   caBundles ([`LeaseElector`]). Every replica watches the Secret and serves what it holds
//!   ([`CertStore`]), so all of them answer the API server with the leader's certificate
//!   within seconds, without a volume mount.
//! * Decisions are pure: [`plan`] looks at the Secret's data and says keep, renew the
//!   serving certificate (same CA: the caBundle stays valid) or regenerate everything, and
//!   why; [`lease_action`] says what to do with the Lease.
//! * Lifetimes: CA 10 years, serving certificate 1 year; either is replaced when less than
//!   a third of its own lifetime remains (about 4 months for the serving certificate, 3.3
//!   years for the CA), checked every [`CertSettings::check_period`]. Both are backdated by
//!   an hour against clock skew. Keys are ECDSA P-256 (rustls and the API server accept it).
//!
//! The Secret (type `kubernetes.io/tls` when this creates it; an existing Secret keeps its
//! type, which is immutable): `tls.crt` (serving certificate), `tls.key` (its key, PKCS#8),
//! `ca.crt` (the CA, also the caBundle), `ca.key` (the CA's key, to renew the serving
//! certificate under the same CA) — upstream's layout.
//!
//! RBAC: secrets `get`, `list`, `watch`, `patch` (resourceNames: the Secret; list/watch
//! use a `metadata.name` field selector, which resourceNames authorizes) and `create` (no
//! resourceNames possible; only needed when the Secret does not exist); leases
//! (coordination.k8s.io) `get`, `update` (resourceNames: the Lease) and `create`;
//! validatingwebhookconfigurations `get`, `patch` (resourceNames); customresourcedefinitions
//! `get`, `patch` (resourceNames: the conversion CRDs). Writes carry the resourceVersion
//! read, so a concurrent change makes them fail and the next round reads again.

use crate::write::ApiErrorExt as _;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::Client;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::admin::Readiness;
use crate::tls_server::{self, CertStore, ServeError, TlsFiles};

/// Secret key of the serving certificate.
pub const TLS_CERT: &str = "tls.crt";
/// Secret key of the serving certificate's private key.
pub const TLS_KEY: &str = "tls.key";
/// Secret key of the CA certificate (the caBundle).
pub const CA_CERT: &str = "ca.crt";
/// Secret key of the CA's private key.
pub const CA_KEY: &str = "ca.key";

const DAY: Duration = Duration::from_secs(24 * 3600);
/// Backdating of `notBefore`, against clocks that lag.
const BACKDATE: Duration = Duration::from_secs(3600);

/// What the rotator manages and how.
#[derive(Clone, Debug)]
pub struct CertSettings {
    /// Namespace of the Secret and of the Lease.
    pub namespace: String,
    pub secret_name: String,
    /// The webhook Service: the certificate's names are `svc`, `svc.ns`, `svc.ns.svc` and
    /// `svc.ns.svc.cluster.local`.
    pub service_name: String,
    pub service_namespace: String,
    /// More names (DNS names or IP addresses), e.g. for webhooks registered by URL.
    pub extra_sans: Vec<String>,
    /// ValidatingWebhookConfigurations whose every webhook gets the CA as caBundle.
    pub webhook_configurations: Vec<String>,
    /// CRDs whose `spec.conversion.webhook.clientConfig.caBundle` gets the CA.
    pub conversion_crds: Vec<String>,
    pub lease_name: String,
    /// This replica's Lease holder identity; unique among the replicas.
    pub identity: String,
    pub ca_validity: Duration,
    pub cert_validity: Duration,
    /// How often the leader looks at the Secret and the caBundles when all is in place
    /// (sooner after a change of the Secret, and every lease renewal while something is
    /// missing).
    pub check_period: Duration,
    /// `leaseDurationSeconds`: a Lease not renewed for that long can be taken over.
    pub lease_duration: Duration,
    /// How often the Lease is renewed (and tried by the others).
    pub lease_renew_period: Duration,
}

impl CertSettings {
    /// Defaults: CA 10 years, serving certificate 1 year, checks every 30 s, a Lease of
    /// 15 s renewed every 5 s. Service and Lease in `namespace`.
    pub fn new(
        namespace: &str,
        secret_name: &str,
        service_name: &str,
        lease_name: &str,
        identity: &str,
    ) -> Self {
        CertSettings {
            namespace: namespace.to_string(),
            secret_name: secret_name.to_string(),
            service_name: service_name.to_string(),
            service_namespace: namespace.to_string(),
            extra_sans: Vec::new(),
            webhook_configurations: Vec::new(),
            conversion_crds: Vec::new(),
            lease_name: lease_name.to_string(),
            identity: identity.to_string(),
            ca_validity: 3650 * DAY,
            cert_validity: 365 * DAY,
            check_period: Duration::from_secs(30),
            lease_duration: Duration::from_secs(15),
            lease_renew_period: Duration::from_secs(5),
        }
    }

    /// The serving certificate's subject alternative names, normalized (see [`norm_san`]).
    pub fn sans(&self) -> Vec<String> {
        let (svc, ns) = (&self.service_name, &self.service_namespace);
        let mut v: Vec<String> = [
            svc.clone(),
            format!("{svc}.{ns}"),
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
        ]
        .into_iter()
        .chain(self.extra_sans.iter().cloned())
        .filter(|s| !s.is_empty())
        .map(|s| norm_san(&s))
        .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// A holder identity unique to this process: `base` (the pod name) and a random suffix, as
/// client-go's leader election does, so that two processes never share one by mistake.
pub fn unique_identity(base: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{base}_{:08x}", h.finish() as u32)
}

/// A name as compared: IP addresses in canonical form, DNS names in lower case.
pub fn norm_san(s: &str) -> String {
    match s.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => s.to_ascii_lowercase(),
    }
}

// ================================================================================
// Planning (pure)
// ================================================================================

/// What to do with the Secret's certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Valid, not expiring, the right names, signed by the CA.
    Keep,
    /// A new serving certificate from the existing CA (the caBundle stays valid).
    RenewServing(Reason),
    /// A new CA and a new serving certificate.
    RegenerateAll(Reason),
}

/// Why the certificates are replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No Secret, or it lacks this key.
    Missing(&'static str),
    /// This key holds no usable certificate or key.
    Unparsable { key: &'static str, error: String },
    /// The certificate and the key under these keys do not belong together.
    KeyMismatch(&'static str),
    /// Less than a third of the CA's lifetime remains (or it is not a CA).
    CaExpiring { not_after: i64 },
    /// Less than a third of the serving certificate's lifetime remains.
    ServingExpiring { not_after: i64 },
    /// The serving certificate was not issued by the CA in the Secret.
    NotIssuedByCa,
    /// The serving certificate's names are not the wanted ones.
    SansChanged {
        have: Vec<String>,
        want: Vec<String>,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Missing(k) => write!(f, "{k} missing"),
            Reason::Unparsable { key, error } => write!(f, "{key} unusable: {error}"),
            Reason::KeyMismatch(k) => write!(f, "{k} does not match its certificate"),
            Reason::CaExpiring { not_after } => {
                write!(f, "CA expires soon (notAfter {not_after}, unix seconds)")
            }
            Reason::ServingExpiring { not_after } => write!(
                f,
                "serving certificate expires soon (notAfter {not_after}, unix seconds)"
            ),
            Reason::NotIssuedByCa => write!(f, "serving certificate not issued by the CA"),
            Reason::SansChanged { have, want } => {
                write!(f, "names changed: have {have:?}, want {want:?}")
            }
        }
    }
}

/// Whether less than a third of the lifetime `[not_before, not_after]` remains at `now`
/// (unix seconds).
pub fn expiring(not_before: i64, not_after: i64, now: i64) -> bool {
    let life = (not_after - not_before).max(0);
    not_after - now < life / 3
}

fn pem_cert_der(pem: &[u8]) -> Result<Vec<u8>, String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    CertificateDer::from_pem_slice(pem)
        .map(|d| d.to_vec())
        .map_err(|e| e.to_string())
}

fn parse_cert(
    data: &BTreeMap<String, Vec<u8>>,
    key: &'static str,
) -> Result<Vec<u8>, Option<Reason>> {
    let pem = data.get(key).ok_or(Some(Reason::Missing(key)))?;
    let der = pem_cert_der(pem).map_err(|error| Some(Reason::Unparsable { key, error }))?;
    x509_parser::parse_x509_certificate(&der).map_err(|e| {
        Some(Reason::Unparsable {
            key,
            error: e.to_string(),
        })
    })?;
    Ok(der)
}

fn parse_key(
    data: &BTreeMap<String, Vec<u8>>,
    key: &'static str,
) -> Result<rcgen::KeyPair, Reason> {
    let pem = data.get(key).ok_or(Reason::Missing(key))?;
    let text = std::str::from_utf8(pem).map_err(|e| Reason::Unparsable {
        key,
        error: e.to_string(),
    })?;
    rcgen::KeyPair::from_pem(text).map_err(|e| Reason::Unparsable {
        key,
        error: e.to_string(),
    })
}

/// The names of a certificate (DNS names and IP addresses), normalized and sorted.
fn cert_sans(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let mut v: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(norm_san(d)),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => Some(IpAddr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                    16 => Some(IpAddr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    v.sort();
    v.dedup();
    v
}

/// What to do with a Secret holding `data` (None: no Secret), for a serving certificate
/// with names `sans` (normalized, sorted: [`CertSettings::sans`]), at `now` (unix seconds).
pub fn plan(data: Option<&BTreeMap<String, Vec<u8>>>, sans: &[String], now: i64) -> Decision {
    use rcgen::PublicKeyData;
    let empty = BTreeMap::new();
    let data = data.unwrap_or(&empty);
    // The CA first: without a usable one, everything is new.
    let ca_der = match parse_cert(data, CA_CERT) {
        Ok(d) => d,
        Err(r) => return Decision::RegenerateAll(r.unwrap_or(Reason::Missing(CA_CERT))),
    };
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).expect("parsed above");
    let ca_key = match parse_key(data, CA_KEY) {
        Ok(k) => k,
        Err(r) => return Decision::RegenerateAll(r),
    };
    if ca.public_key().raw != ca_key.subject_public_key_info().as_slice() {
        return Decision::RegenerateAll(Reason::KeyMismatch(CA_KEY));
    }
    let (nb, na) = (
        ca.validity().not_before.timestamp(),
        ca.validity().not_after.timestamp(),
    );
    if !ca.is_ca() || expiring(nb, na, now) {
        return Decision::RegenerateAll(Reason::CaExpiring { not_after: na });
    }
    // Then the serving certificate.
    let der = match parse_cert(data, TLS_CERT) {
        Ok(d) => d,
        Err(r) => return Decision::RenewServing(r.unwrap_or(Reason::Missing(TLS_CERT))),
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parsed above");
    let key = match parse_key(data, TLS_KEY) {
        Ok(k) => k,
        Err(r) => return Decision::RenewServing(r),
    };
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Decision::RenewServing(Reason::KeyMismatch(TLS_KEY));
    }
    if cert.verify_signature(Some(ca.public_key())).is_err() {
        return Decision::RenewServing(Reason::NotIssuedByCa);
    }
    let have = cert_sans(&cert);
    if have != sans {
        return Decision::RenewServing(Reason::SansChanged {
            have,
            want: sans.to_vec(),
        });
    }
    let (nb, na) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    if expiring(nb, na, now) {
        return Decision::RenewServing(Reason::ServingExpiring { not_after: na });
    }
    Decision::Keep
}

// ================================================================================
// Generation
// ================================================================================

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
#[error("certificate generation: {0}")]
pub struct GenError(String);

impl From<rcgen::Error> for GenError {
    fn from(e: rcgen::Error) -> Self {
        GenError(e.to_string())
    }
}

fn odt(unix: i64) -> Result<time::OffsetDateTime, GenError> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|e| GenError(e.to_string()))
}

/// A new self-signed CA valid from `now` (backdated) for `validity`: (certificate PEM,
/// key PEM).
pub fn generate_ca(
    common_name: &str,
    now: i64,
    validity: Duration,
) -> Result<(String, String), GenError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = odt(now - BACKDATE.as_secs() as i64)?;
    params.not_after = odt(now + validity.as_secs() as i64)?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A new serving certificate for `sans` (DNS names or IP addresses), issued by the CA
/// (`ca_cert_pem`, `ca_key_pem`), valid from `now` (backdated) for `validity`: (certificate
/// PEM, key PEM).
pub fn issue_serving(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    sans: &[String],
    now: i64,
    validity: Duration,
) -> Result<(String, String), GenError> {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(sans.to_vec())?;
    if let Some(cn) = sans.iter().find(|s| s.parse::<IpAddr>().is_err()) {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = odt(now - BACKDATE.as_secs() as i64)?;
    params.not_after = odt(now + validity.as_secs() as i64)?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Carry out `decision` on the Secret's `data`: the data to write, or None for
/// [`Decision::Keep`]. Keys other than the four managed ones are kept.
pub fn execute(
    decision: &Decision,
    data: Option<&BTreeMap<String, Vec<u8>>>,
    settings: &CertSettings,
    now: i64,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, GenError> {
    let mut out = data.cloned().unwrap_or_default();
    let (ca_cert, ca_key) = match decision {
        Decision::Keep => return Ok(None),
        Decision::RegenerateAll(_) => {
            let cn = format!("{}.{} CA", settings.secret_name, settings.namespace);
            generate_ca(&cn, now, settings.ca_validity)?
        }
        Decision::RenewServing(_) => {
            let text = |k: &str| {
                out.get(k)
                    .and_then(|b| String::from_utf8(b.clone()).ok())
                    .ok_or_else(|| GenError(format!("{k} missing")))
            };
            (text(CA_CERT)?, text(CA_KEY)?)
        }
    };
    let (cert, key) = issue_serving(
        &ca_cert,
        &ca_key,
        &settings.sans(),
        now,
        settings.cert_validity,
    )?;
    out.insert(CA_CERT.into(), ca_cert.into_bytes());
    out.insert(CA_KEY.into(), ca_key.into_bytes());
    out.insert(TLS_CERT.into(), cert.into_bytes());
    out.insert(TLS_KEY.into(), key.into_bytes());
    Ok(Some(out))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

// ================================================================================
// The Lease
// ================================================================================

/// What to do with the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseAction {
    /// No Lease yet: create it, held by us.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free, or its holder stopped renewing: take it over.
    TakeOver,
    /// Someone else holds it.
    Wait { holder: String },
}

/// The last Lease record seen and when (by our clock), as client-go judges expiry: a
/// record that has not changed for its duration is expired, whatever the clocks of the
/// nodes say.
#[derive(Clone, Debug, Default)]
pub struct LeaseObservation {
    record: Option<(String, Option<String>)>,
    since: Option<Instant>,
}

/// What to do with `lease` (None: absent) as `identity`, at `now`, given what was seen
/// before (updated). `default_duration` applies when the Lease says none.
pub fn lease_action(
    lease: Option<&LeaseSpec>,
    identity: &str,
    seen: &mut LeaseObservation,
    now: Instant,
    default_duration: Duration,
) -> LeaseAction {
    let Some(spec) = lease else {
        return LeaseAction::Create;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == identity {
        return LeaseAction::Renew;
    }
    if holder.is_empty() {
        return LeaseAction::TakeOver;
    }
    let record = (
        holder.clone(),
        spec.renew_time.as_ref().map(|t| format!("{:?}", t.0)),
    );
    if seen.record.as_ref() != Some(&record) || seen.since.is_none() {
        seen.record = Some(record);
        seen.since = Some(now);
    }
    let duration = spec
        .lease_duration_seconds
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s as u64))
        .unwrap_or(default_duration);
    match seen.since {
        Some(since) if now.saturating_duration_since(since) >= duration => LeaseAction::TakeOver,
        _ => LeaseAction::Wait { holder },
    }
}

/// Acquires and renews a Lease (get, then create or replace with the resourceVersion read,
/// so that two candidates never both win). Written here rather than taken from a crate:
/// `kube-leader-election` (the maintained one) is built on kube 4, this workspace on
/// kube 5, and the loop is small.
pub struct LeaseElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    seen: LeaseObservation,
    /// When we last acquired or renewed it (our clock).
    renewed: Option<Instant>,
}

impl std::fmt::Debug for LeaseElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseElector")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

fn micro_now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl LeaseElector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        LeaseElector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
            seen: LeaseObservation::default(),
            renewed: None,
        }
    }

    /// Whether we hold the Lease: renewed within two thirds of its duration (client-go's
    /// renew deadline), so that we stop writing before another can take it over.
    pub fn is_leader(&self) -> bool {
        self.renewed
            .is_some_and(|t| t.elapsed() < self.duration * 2 / 3)
    }

    /// One round: acquire or renew if we can. Returns whether we hold the Lease now.
    pub async fn try_acquire_or_renew(&mut self) -> bool {
        match self.round().await {
            Ok(true) => {
                self.renewed = Some(Instant::now());
            }
            Ok(false) => self.renewed = None,
            Err(e) => debug!(lease = %self.name, error = %e, "lease round failed"),
        }
        self.is_leader()
    }

    async fn round(&mut self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let action = lease_action(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            &mut self.seen,
            Instant::now(),
            self.duration,
        );
        let secs = self.duration.as_secs().max(1) as i32;
        match (action, current) {
            (LeaseAction::Wait { .. }, _) => Ok(false),
            (LeaseAction::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(secs),
                        acquire_time: Some(micro_now()),
                        renew_time: Some(micro_now()),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => {
                        info!(lease = %self.name, identity = %self.identity, "webhook certificate lease acquired (created)");
                        Ok(true)
                    }
                    // another replica created it first
                    Err(e) if e.is_already_exists() || e.is_conflict() => Ok(false),
                    Err(e) => Err(e),
                }
            }
            (action, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                if action == LeaseAction::TakeOver {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(micro_now());
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(secs);
                spec.renew_time = Some(micro_now());
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => {
                        if action == LeaseAction::TakeOver {
                            info!(lease = %self.name, identity = %self.identity, "webhook certificate lease acquired");
                        }
                        Ok(true)
                    }
                    // another replica renewed or took it since we read it
                    Err(e) if e.is_conflict() => Ok(false),
                    Err(e) => Err(e),
                }
            }
            (_, None) => Ok(false),
        }
    }

    /// Give the Lease up (on shutdown) so that another replica takes it at once.
    /// Only a Lease that still names us is released (the write carries the resourceVersion
    /// read).
    pub async fn release(&mut self) {
        self.renewed = None;
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(micro_now());
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!(lease = %self.name, "webhook certificate lease released"),
            Err(e) => debug!(lease = %self.name, error = %e, "releasing the lease failed"),
        }
    }
}

// ================================================================================
// The rotator
// ================================================================================

/// Keeps the webhook certificate in the Secret fresh (when it holds the Lease) and serves
/// the Secret's certificate from a [`CertStore`] (always).
pub struct CertRotator {
    client: Client,
    settings: CertSettings,
    store: CertStore,
}

impl std::fmt::Debug for CertRotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertRotator")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Whether every target of an injection was found and holds the CA.
type AllInPlace = bool;

impl CertRotator {
    pub fn new(client: Client, settings: CertSettings, store: CertStore) -> Self {
        CertRotator {
            client,
            settings,
            store,
        }
    }

    /// The store the server reads.
    pub fn store(&self) -> &CertStore {
        &self.store
    }

    /// Run until `shutdown`; then give the Lease up if held.
    pub async fn run(self, shutdown: CancellationToken) {
        let kick = Arc::new(Notify::new());
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let watch = tokio::spawn(watch_secret(
            secrets,
            self.settings.secret_name.clone(),
            self.store.clone(),
            kick.clone(),
            shutdown.clone(),
        ));
        let s = &self.settings;
        let mut elector = LeaseElector::new(
            self.client.clone(),
            &s.namespace,
            &s.lease_name,
            &s.identity,
            s.lease_duration,
        );
        let mut was_leader = false;
        let mut next_check = Instant::now();
        let mut kicked = false;
        loop {
            let leader = elector.try_acquire_or_renew().await;
            if leader && (!was_leader || kicked || Instant::now() >= next_check) {
                let wait = match self.reconcile().await {
                    Ok(true) => s.check_period,
                    Ok(false) => s.lease_renew_period,
                    Err(e) => {
                        warn!(error = %e, secret = %s.secret_name, "webhook certificate check failed; retrying");
                        s.lease_renew_period
                    }
                };
                next_check = Instant::now() + wait;
            }
            if leader != was_leader && !leader {
                info!(identity = %s.identity, "no longer the webhook certificate writer");
            }
            was_leader = leader;
            kicked = false;
            tokio::select! {
                _ = tokio::time::sleep(s.lease_renew_period) => {}
                _ = kick.notified() => kicked = true,
                _ = shutdown.cancelled() => break,
            }
        }
        elector.release().await;
        watch.abort();
    }

    /// One check by the leader: the Secret (renewed or regenerated as [`plan`] says), the
    /// served certificate, the caBundles. `Ok(false)`: a webhook configuration or CRD is not
    /// there yet.
    pub async fn reconcile(&self) -> anyhow::Result<AllInPlace> {
        let s = &self.settings;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &s.namespace);
        let existing = secrets.get_opt(&s.secret_name).await?;
        let data = existing.as_ref().map(secret_data);
        let now = unix_now();
        let decision = plan(data.as_ref(), &s.sans(), now);
        let data = match execute(&decision, data.as_ref(), s, now)? {
            None => data.unwrap_or_default(),
            Some(new) => {
                let reason = match &decision {
                    Decision::RenewServing(r) => format!("serving certificate renewed: {r}"),
                    Decision::RegenerateAll(r) => {
                        format!("CA and serving certificate regenerated: {r}")
                    }
                    Decision::Keep => String::new(),
                };
                let bytes = new
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.clone())))
                    .collect();
                match existing {
                    Some(secret) => {
                        // A merge patch carrying the resourceVersion read: the API server
                        // refuses it (409) when the Secret changed meanwhile, and the next
                        // round reads again. (`patch` is the verb the chart grants.)
                        let patch = serde_json::json!({
                            "metadata": {"resourceVersion": secret.metadata.resource_version},
                            "data": bytes,
                        });
                        secrets
                            .patch(
                                &s.secret_name,
                                &PatchParams::default(),
                                &Patch::Merge(&patch),
                            )
                            .await?;
                    }
                    None => {
                        let secret = Secret {
                            metadata: ObjectMeta {
                                name: Some(s.secret_name.clone()),
                                namespace: Some(s.namespace.clone()),
                                ..Default::default()
                            },
                            type_: Some("kubernetes.io/tls".into()),
                            data: Some(bytes),
                            ..Default::default()
                        };
                        secrets.create(&PostParams::default(), &secret).await?;
                    }
                }
                info!(secret = %s.secret_name, namespace = %s.namespace, "webhook certificate written: {reason}");
                new
            }
        };
        load_into_store(&self.store, &data);
        let ca = data.get(CA_CERT).cloned().unwrap_or_default();
        let mut all = true;
        for name in &s.webhook_configurations {
            all &= inject_webhook_configuration(&self.client, name, &ca).await?;
        }
        for name in &s.conversion_crds {
            let service = (s.service_name.as_str(), s.service_namespace.as_str());
            all &= inject_crd_conversion(&self.client, name, &ca, Some(service)).await?;
        }
        Ok(all)
    }
}

/// Serve the certificate of `data` unless it is already served.
fn load_into_store(store: &CertStore, data: &BTreeMap<String, Vec<u8>>) -> bool {
    let (Some(cert), Some(key)) = (data.get(TLS_CERT), data.get(TLS_KEY)) else {
        return false;
    };
    let Ok(der) = pem_cert_der(cert) else {
        return false;
    };
    if store
        .current()
        .is_some_and(|c| c.cert.first().is_some_and(|d| d.as_ref() == der.as_slice()))
    {
        return false;
    }
    match store.set_pem(cert, key) {
        Ok(()) => {
            info!("serving the webhook certificate from the Secret");
            true
        }
        Err(e) => {
            warn!(error = %e, "the webhook Secret's certificate is not usable");
            false
        }
    }
}

/// Every replica: serve the Secret's certificate as it changes; wake the rotator on every
/// change (a deleted Secret is rewritten at once by the leader).
async fn watch_secret(
    api: Api<Secret>,
    name: String,
    store: CertStore,
    kick: Arc<Notify>,
    shutdown: CancellationToken,
) {
    use kube::runtime::WatchStreamExt;
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher::watcher(api, cfg).default_backoff();
    futures::pin_mut!(stream);
    loop {
        let ev = tokio::select! {
            ev = stream.next() => ev,
            _ = shutdown.cancelled() => return,
        };
        match ev {
            Some(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))) => {
                load_into_store(&store, &secret_data(&s));
                kick.notify_one();
            }
            Some(Ok(watcher::Event::Delete(_))) => {
                debug!(secret = %name, "webhook Secret deleted");
                kick.notify_one();
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => debug!(secret = %name, error = %e, "watching the webhook Secret"),
            None => return,
        }
    }
}

fn same_bundle(have: Option<&ByteString>, ca: &[u8]) -> bool {
    have.is_some_and(|b| b.0 == ca)
}

/// Set `caBundle` of every webhook of a ValidatingWebhookConfiguration (no write when all
/// hold it already). `Ok(false)`: no such configuration (yet).
pub async fn inject_webhook_configuration(
    client: &Client,
    name: &str,
    ca: &[u8],
) -> Result<bool, kube::Error> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let Some(mut vwc) = api.get_opt(name).await? else {
        debug!(%name, "ValidatingWebhookConfiguration not found (yet)");
        return Ok(false);
    };
    let mut changed = false;
    for w in vwc.webhooks.iter_mut().flatten() {
        if !same_bundle(w.client_config.ca_bundle.as_ref(), ca) {
            w.client_config.ca_bundle = Some(ByteString(ca.to_vec()));
            changed = true;
        }
    }
    if changed {
        // A merge patch of the whole list (merge patches replace lists) carrying the
        // resourceVersion read: a concurrent change makes it fail (409), and the next round
        // reads again.
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": vwc.metadata.resource_version},
            "webhooks": vwc.webhooks,
        });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        info!(%name, "caBundle written into the ValidatingWebhookConfiguration");
    }
    Ok(true)
}

/// Set `spec.conversion.webhook.clientConfig.caBundle` of a CRD (no write when it holds it
/// already; nothing when the CRD converts without a webhook). `Ok(false)`: no such CRD (yet).
///
/// With `service` (name, namespace), a conversion that goes through a Service is also
/// pointed at that one: the generated CRD names `metallb-system/metallb-webhook-service`,
/// and Helm never templates files in a chart's `crds/`, so an installation under another
/// namespace or release name would otherwise convert through a Service that does not exist.
pub async fn inject_crd_conversion(
    client: &Client,
    name: &str,
    ca: &[u8],
    service: Option<(&str, &str)>,
) -> Result<bool, kube::Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let Some(crd) = api.get_opt(name).await? else {
        debug!(%name, "CRD not found (yet)");
        return Ok(false);
    };
    let Some(conv) = crd.spec.conversion.as_ref() else {
        return Ok(true);
    };
    let Some(webhook) = conv.webhook.as_ref().filter(|_| conv.strategy == "Webhook") else {
        debug!(%name, "CRD has no conversion webhook: no caBundle to write");
        return Ok(true);
    };
    let have = webhook
        .client_config
        .as_ref()
        .and_then(|c| c.ca_bundle.as_ref());
    let moved = match (
        service,
        webhook
            .client_config
            .as_ref()
            .and_then(|c| c.service.as_ref()),
    ) {
        (Some((svc, ns)), Some(have)) => (have.name.as_str(), have.namespace.as_str()) != (svc, ns),
        _ => false,
    };
    if !same_bundle(have, ca) || moved {
        let bundle = serde_json::to_value(ByteString(ca.to_vec())).unwrap_or_default();
        let mut client_config = serde_json::json!({"caBundle": bundle});
        if let (true, Some((svc, ns))) = (moved, service) {
            client_config["service"] = serde_json::json!({"name": svc, "namespace": ns});
        }
        let patch = serde_json::json!({"spec": {"conversion": {"webhook": {"clientConfig": client_config}}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        info!(%name, moved, "caBundle written into the CRD's conversion webhook");
    }
    Ok(true)
}

// ================================================================================
// Wiring for the binaries
// ================================================================================

/// Where a webhook server's certificate comes from.
#[derive(Clone, Debug)]
pub enum WebhookTls {
    /// Plain HTTP (tests only: the API server requires HTTPS).
    InsecureHttp,
    /// PEM files from another issuer (cert-manager), reloaded when they change.
    Files(TlsFiles),
    /// Self-managed: the [`CertRotator`] with these settings.
    Rotate(Box<CertSettings>),
}

/// Serve `router` on `addr` with the certificate from `tls` until `shutdown`. With
/// rotation, the rotator runs alongside, the readiness gate `webhook-cert` opens when a
/// certificate is served, and connections are accepted from then on. Returns the bound
/// address and a task that ends when the server has stopped (and the Lease is released).
pub async fn serve_webhook(
    addr: SocketAddr,
    router: Router,
    client: &Client,
    tls: WebhookTls,
    readiness: &Readiness,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ServeError> {
    match tls {
        WebhookTls::InsecureHttp => tls_server::serve(addr, router, None, shutdown).await,
        WebhookTls::Files(files) => tls_server::serve(addr, router, Some(files), shutdown).await,
        WebhookTls::Rotate(settings) => {
            info!(secret = %settings.secret_name, namespace = %settings.namespace, identity = %settings.identity, "webhook certificate self-managed");
            let store = CertStore::new();
            let gate = readiness.gate("webhook-cert");
            let (local, server) =
                tls_server::serve_store(addr, router, store.clone(), shutdown.clone()).await?;
            let rotator = tokio::spawn(
                CertRotator::new(client.clone(), *settings, store.clone()).run(shutdown.clone()),
            );
            tokio::spawn(async move {
                tokio::select! {
                    _ = store.wait_ready() => gate.ready(),
                    _ = shutdown.cancelled() => {}
                }
            });
            let task = tokio::spawn(async move {
                let _ = server.await;
                let _ = rotator.await;
            });
            Ok((local, task))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn settings() -> CertSettings {
        let mut s = CertSettings::new("ns", "sec", "svc", "lease", "me");
        s.extra_sans = vec!["127.0.0.1".into()];
        s
    }

    fn fresh(s: &CertSettings, now: i64) -> BTreeMap<String, Vec<u8>> {
        execute(
            &Decision::RegenerateAll(Reason::Missing(CA_CERT)),
            None,
            s,
            now,
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn sans_cover_the_service_names_and_extras() {
        assert_eq!(
            settings().sans(),
            vec![
                "127.0.0.1",
                "svc",
                "svc.ns",
                "svc.ns.svc",
                "svc.ns.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn missing_or_garbage_secret_regenerates_everything() {
        let s = settings();
        assert_eq!(
            plan(None, &s.sans(), NOW),
            Decision::RegenerateAll(Reason::Missing(CA_CERT))
        );
        let mut garbage = BTreeMap::new();
        garbage.insert(CA_CERT.to_string(), b"not a pem".to_vec());
        assert!(matches!(
            plan(Some(&garbage), &s.sans(), NOW),
            Decision::RegenerateAll(Reason::Unparsable { key: CA_CERT, .. })
        ));
        // a good CA with a garbage key
        let mut d = fresh(&s, NOW);
        d.insert(
            CA_KEY.into(),
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
        );
        assert!(matches!(
            plan(Some(&d), &s.sans(), NOW),
            Decision::RegenerateAll(Reason::Unparsable { key: CA_KEY, .. })
        ));
        // the key of another CA
        let other = fresh(&s, NOW);
        let mut d = fresh(&s, NOW);
        d.insert(CA_KEY.into(), other[CA_KEY].clone());
        assert_eq!(
            plan(Some(&d), &s.sans(), NOW),
            Decision::RegenerateAll(Reason::KeyMismatch(CA_KEY))
        );
    }

    #[test]
    fn fresh_certificates_are_kept_and_round_trip() {
        let s = settings();
        let d = fresh(&s, NOW);
        assert_eq!(plan(Some(&d), &s.sans(), NOW), Decision::Keep);
        assert_eq!(plan(Some(&d), &s.sans(), NOW + 200 * 86400), Decision::Keep);
        // rustls takes the pair
        tls_server::certified_key(&d[TLS_CERT], &d[TLS_KEY]).unwrap();
    }

    #[test]
    fn serving_certificate_is_renewed_when_a_third_of_its_life_remains() {
        let s = settings();
        let d = fresh(&s, NOW);
        // 1 year (+1 h backdating): renewed after about 8 months, under the same CA.
        let later = NOW + 250 * 86400;
        let decision = plan(Some(&d), &s.sans(), later);
        assert!(
            matches!(
                decision,
                Decision::RenewServing(Reason::ServingExpiring { .. })
            ),
            "{decision:?}"
        );
        let renewed = execute(&decision, Some(&d), &s, later).unwrap().unwrap();
        assert_eq!(renewed[CA_CERT], d[CA_CERT]);
        assert_eq!(renewed[CA_KEY], d[CA_KEY]);
        assert_ne!(renewed[TLS_CERT], d[TLS_CERT]);
        assert_eq!(plan(Some(&renewed), &s.sans(), later), Decision::Keep);
    }

    #[test]
    fn ca_is_regenerated_when_expiring() {
        let s = settings();
        let d = fresh(&s, NOW);
        let later = NOW + 7 * 365 * 86400;
        assert!(matches!(
            plan(Some(&d), &s.sans(), later),
            Decision::RegenerateAll(Reason::CaExpiring { .. })
        ));
    }

    #[test]
    fn changed_names_renew_the_serving_certificate() {
        let s = settings();
        let d = fresh(&s, NOW);
        let mut s2 = s.clone();
        s2.service_name = "other".into();
        let decision = plan(Some(&d), &s2.sans(), NOW);
        assert!(
            matches!(decision, Decision::RenewServing(Reason::SansChanged { .. })),
            "{decision:?}"
        );
        let mut s3 = s.clone();
        s3.extra_sans.clear();
        assert!(matches!(
            plan(Some(&d), &s3.sans(), NOW),
            Decision::RenewServing(Reason::SansChanged { .. })
        ));
    }

    #[test]
    fn serving_certificate_of_another_ca_or_missing_is_renewed() {
        let s = settings();
        let a = fresh(&s, NOW);
        let b = fresh(&s, NOW);
        let mut mixed = a.clone();
        mixed.insert(TLS_CERT.into(), b[TLS_CERT].clone());
        mixed.insert(TLS_KEY.into(), b[TLS_KEY].clone());
        assert_eq!(
            plan(Some(&mixed), &s.sans(), NOW),
            Decision::RenewServing(Reason::NotIssuedByCa)
        );
        let mut nokey = a.clone();
        nokey.insert(TLS_KEY.into(), b[TLS_KEY].clone());
        assert_eq!(
            plan(Some(&nokey), &s.sans(), NOW),
            Decision::RenewServing(Reason::KeyMismatch(TLS_KEY))
        );
        let mut missing = a.clone();
        missing.remove(TLS_CERT);
        assert_eq!(
            plan(Some(&missing), &s.sans(), NOW),
            Decision::RenewServing(Reason::Missing(TLS_CERT))
        );
    }

    #[test]
    fn chain_verifies_for_the_service_name_and_ip() {
        use tokio_rustls::rustls::client::danger::ServerCertVerifier;
        use tokio_rustls::rustls::client::WebPkiServerVerifier;
        use tokio_rustls::rustls::pki_types::{
            pem::PemObject, CertificateDer, ServerName, UnixTime,
        };
        use tokio_rustls::rustls::RootCertStore;
        let s = settings();
        let now = unix_now();
        let d = fresh(&s, now);
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(&d[CA_CERT]).unwrap())
            .unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        let leaf = CertificateDer::from_pem_slice(&d[TLS_CERT]).unwrap();
        let t = UnixTime::since_unix_epoch(Duration::from_secs(now as u64));
        for name in ["svc.ns.svc", "svc.ns.svc.cluster.local", "127.0.0.1"] {
            let sn = ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(&leaf, &[], &sn, &[], t)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let wrong = ServerName::try_from("evil.ns.svc").unwrap();
        assert!(verifier
            .verify_server_cert(&leaf, &[], &wrong, &[], t)
            .is_err());
    }

    #[test]
    fn lease_decisions() {
        let d = Duration::from_secs(15);
        let t0 = Instant::now();
        let mut seen = LeaseObservation::default();
        assert_eq!(
            lease_action(None, "a", &mut seen, t0, d),
            LeaseAction::Create
        );
        let held_by = |h: Option<&str>, renew: i64| LeaseSpec {
            holder_identity: h.map(str::to_string),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                k8s_openapi::jiff::Timestamp::from_second(renew).unwrap(),
            )),
            ..Default::default()
        };
        assert_eq!(
            lease_action(Some(&held_by(Some("a"), 1)), "a", &mut seen, t0, d),
            LeaseAction::Renew
        );
        assert_eq!(
            lease_action(Some(&held_by(None, 1)), "a", &mut seen, t0, d),
            LeaseAction::TakeOver
        );
        // b holds it; it is expired only once the record has not changed for 15 s by our
        // clock (the renewTime written by b's clock is not compared with ours).
        let b1 = held_by(Some("b"), 1);
        assert!(matches!(
            lease_action(Some(&b1), "a", &mut seen, t0, d),
            LeaseAction::Wait { .. }
        ));
        assert!(matches!(
            lease_action(Some(&b1), "a", &mut seen, t0 + Duration::from_secs(10), d),
            LeaseAction::Wait { .. }
        ));
        // b renewed: the clock starts again
        let b2 = held_by(Some("b"), 2);
        assert!(matches!(
            lease_action(Some(&b2), "a", &mut seen, t0 + Duration::from_secs(16), d),
            LeaseAction::Wait { .. }
        ));
        assert_eq!(
            lease_action(Some(&b2), "a", &mut seen, t0 + Duration::from_secs(31), d),
            LeaseAction::TakeOver
        );
    }

    #[test]
    fn unique_identities_differ() {
        assert_ne!(unique_identity("pod"), unique_identity("pod"));
        assert!(unique_identity("pod").starts_with("pod_"));
    }
}
