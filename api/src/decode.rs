//! Decode any object of our two API groups from YAML or JSON, with errors that name the kind,
//! the object and the field: `IPAddressPool metallb-system/pool-a: spec.autoAssign: invalid
//! type: string "yes", expected a boolean`.
//!
//! Used by tests, the CLI-facing tools and the admission webhooks; never panics on any input.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::frrk8s::{BGPSessionState, FRRConfiguration, FRRK8sConfiguration, FRRNodeState};
use crate::metallb::{
    bgppeer_v1beta1, BFDProfile, BGPAdvertisement, BGPPeer, Community, ConfigurationState,
    IPAddressPool, L2Advertisement, ServiceBGPStatus, ServiceL2Status,
};
use crate::validation::{FieldErrors, ObjectError};

/// One decoded object of any kind this project defines.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyObject {
    IPAddressPool(Box<IPAddressPool>),
    BGPPeer(Box<BGPPeer>),
    BGPPeerV1beta1(Box<bgppeer_v1beta1::BGPPeer>),
    BGPAdvertisement(Box<BGPAdvertisement>),
    L2Advertisement(Box<L2Advertisement>),
    BFDProfile(Box<BFDProfile>),
    Community(Box<Community>),
    ServiceL2Status(Box<ServiceL2Status>),
    ServiceBGPStatus(Box<ServiceBGPStatus>),
    ConfigurationState(Box<ConfigurationState>),
    FRRConfiguration(Box<FRRConfiguration>),
    FRRNodeState(Box<FRRNodeState>),
    BGPSessionState(Box<BGPSessionState>),
    FRRK8sConfiguration(Box<FRRK8sConfiguration>),
}

/// Why a document could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid YAML/JSON: {0}")]
    Syntax(String),
    #[error("not an object with apiVersion and kind")]
    NotAnObject,
    #[error("{api_version} {kind} is not a kind of metallb.io or frrk8s.metallb.io")]
    UnknownKind { api_version: String, kind: String },
    #[error("{kind} {name}: {path}: {message}")]
    Field {
        kind: String,
        name: String,
        path: String,
        message: String,
    },
}

fn typed<T: DeserializeOwned>(v: Value, kind: &str, name: &str) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        DecodeError::Field {
            kind: kind.to_string(),
            name: name.to_string(),
            path: if path == "." { "<root>".into() } else { path },
            message: e.into_inner().to_string(),
        }
    })
}

/// Decode one JSON value.
pub fn decode_value(v: Value) -> Result<AnyObject, DecodeError> {
    let obj = v.as_object().ok_or(DecodeError::NotAnObject)?;
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or(DecodeError::NotAnObject)?
        .to_string();
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .ok_or(DecodeError::NotAnObject)?
        .to_string();
    let meta = obj.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    let name = match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    };
    let k = kind.as_str();
    let n = name.as_str();
    Ok(match (api_version.as_str(), k) {
        ("metallb.io/v1beta1", "IPAddressPool") => AnyObject::IPAddressPool(typed(v, k, n)?),
        ("metallb.io/v1beta2", "BGPPeer") => AnyObject::BGPPeer(typed(v, k, n)?),
        ("metallb.io/v1beta1", "BGPPeer") => AnyObject::BGPPeerV1beta1(typed(v, k, n)?),
        ("metallb.io/v1beta1", "BGPAdvertisement") => AnyObject::BGPAdvertisement(typed(v, k, n)?),
        ("metallb.io/v1beta1", "L2Advertisement") => AnyObject::L2Advertisement(typed(v, k, n)?),
        ("metallb.io/v1beta1", "BFDProfile") => AnyObject::BFDProfile(typed(v, k, n)?),
        ("metallb.io/v1beta1", "Community") => AnyObject::Community(typed(v, k, n)?),
        ("metallb.io/v1beta1", "ServiceL2Status") => AnyObject::ServiceL2Status(typed(v, k, n)?),
        ("metallb.io/v1beta1", "ServiceBGPStatus") => AnyObject::ServiceBGPStatus(typed(v, k, n)?),
        ("metallb.io/v1beta1", "ConfigurationState") => {
            AnyObject::ConfigurationState(typed(v, k, n)?)
        }
        ("frrk8s.metallb.io/v1beta1", "FRRConfiguration") => {
            AnyObject::FRRConfiguration(typed(v, k, n)?)
        }
        ("frrk8s.metallb.io/v1beta1", "FRRNodeState") => AnyObject::FRRNodeState(typed(v, k, n)?),
        ("frrk8s.metallb.io/v1beta1", "BGPSessionState") => {
            AnyObject::BGPSessionState(typed(v, k, n)?)
        }
        ("frrk8s.metallb.io/v1beta1", "FRRK8sConfiguration") => {
            AnyObject::FRRK8sConfiguration(typed(v, k, n)?)
        }
        _ => return Err(DecodeError::UnknownKind { api_version, kind }),
    })
}

/// Decode one YAML (or JSON) document.
pub fn decode_yaml(text: &str) -> Result<AnyObject, DecodeError> {
    let v: Value = serde_yaml::from_str(text).map_err(|e| DecodeError::Syntax(e.to_string()))?;
    decode_value(v)
}

/// Decode every document of a multi-document YAML stream (`---` separated); empty documents
/// are skipped.
pub fn decode_yaml_stream(text: &str) -> Vec<Result<AnyObject, DecodeError>> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        match <Value as serde::Deserialize>::deserialize(doc) {
            Ok(Value::Null) => {}
            Ok(v) => out.push(decode_value(v)),
            Err(e) => {
                out.push(Err(DecodeError::Syntax(e.to_string())));
                // A syntax error poisons the rest of the stream.
                break;
            }
        }
    }
    out
}

macro_rules! each {
    ($self:expr, $o:ident => $body:expr) => {
        match $self {
            AnyObject::IPAddressPool($o) => $body,
            AnyObject::BGPPeer($o) => $body,
            AnyObject::BGPPeerV1beta1($o) => $body,
            AnyObject::BGPAdvertisement($o) => $body,
            AnyObject::L2Advertisement($o) => $body,
            AnyObject::BFDProfile($o) => $body,
            AnyObject::Community($o) => $body,
            AnyObject::ServiceL2Status($o) => $body,
            AnyObject::ServiceBGPStatus($o) => $body,
            AnyObject::ConfigurationState($o) => $body,
            AnyObject::FRRConfiguration($o) => $body,
            AnyObject::FRRNodeState($o) => $body,
            AnyObject::BGPSessionState($o) => $body,
            AnyObject::FRRK8sConfiguration($o) => $body,
        }
    };
}

impl AnyObject {
    pub fn kind(&self) -> &'static str {
        match self {
            AnyObject::IPAddressPool(_) => "IPAddressPool",
            AnyObject::BGPPeer(_) | AnyObject::BGPPeerV1beta1(_) => "BGPPeer",
            AnyObject::BGPAdvertisement(_) => "BGPAdvertisement",
            AnyObject::L2Advertisement(_) => "L2Advertisement",
            AnyObject::BFDProfile(_) => "BFDProfile",
            AnyObject::Community(_) => "Community",
            AnyObject::ServiceL2Status(_) => "ServiceL2Status",
            AnyObject::ServiceBGPStatus(_) => "ServiceBGPStatus",
            AnyObject::ConfigurationState(_) => "ConfigurationState",
            AnyObject::FRRConfiguration(_) => "FRRConfiguration",
            AnyObject::FRRNodeState(_) => "FRRNodeState",
            AnyObject::BGPSessionState(_) => "BGPSessionState",
            AnyObject::FRRK8sConfiguration(_) => "FRRK8sConfiguration",
        }
    }

    /// `namespace/name` (or `name` for cluster-scoped objects).
    pub fn name(&self) -> String {
        each!(self, o => crate::validation::object_ref(&o.metadata))
    }

    /// Re-encode as JSON.
    pub fn to_value(&self) -> Value {
        each!(self, o => serde_json::to_value(o).unwrap_or(Value::Null))
    }

    /// Per-object validation (cross-object rules are in [`crate::metallb::config`] and the
    /// frr-k8s merge). Status-only kinds have nothing to validate.
    pub fn validate(&self) -> Result<(), ObjectError> {
        let result: Result<(), FieldErrors> = match self {
            AnyObject::IPAddressPool(o) => o.validate(),
            AnyObject::BGPPeer(o) => o.validate(),
            AnyObject::BGPPeerV1beta1(o) => bgppeer_v1beta1::to_v1beta2(o).validate(),
            AnyObject::BGPAdvertisement(o) => o.validate(),
            AnyObject::L2Advertisement(o) => o.validate(),
            AnyObject::BFDProfile(o) => o.validate(),
            AnyObject::Community(o) => o.validate(),
            AnyObject::FRRConfiguration(o) => o.validate(),
            AnyObject::ServiceL2Status(_)
            | AnyObject::ServiceBGPStatus(_)
            | AnyObject::ConfigurationState(_)
            | AnyObject::FRRNodeState(_)
            | AnyObject::BGPSessionState(_)
            | AnyObject::FRRK8sConfiguration(_) => Ok(()),
        };
        result.map_err(|errors| ObjectError {
            kind: self.kind(),
            name: self.name(),
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_objects_name_kind_object_and_field() {
        let err = decode_yaml(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: pool-a, namespace: metallb-system}\nspec:\n  addresses: [192.0.2.0/24]\n  autoAssign: \"yes\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("IPAddressPool metallb-system/pool-a: spec.autoAssign: invalid type: string \"yes\", expected a boolean"),
            "{err}"
        );
        let err = decode_yaml(
            "apiVersion: frrk8s.metallb.io/v1beta1\nkind: FRRConfiguration\nmetadata: {name: t, namespace: frr-k8s-system}\nspec:\n  bgp:\n    routers:\n    - asn: 64512\n      neighbors:\n      - address: 192.0.2.1\n        asn: notanumber\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "FRRConfiguration frr-k8s-system/t: spec.bgp.routers[0].neighbors[0].asn:"
            ),
            "{err}"
        );
        assert!(matches!(
            decode_yaml("kind: Foo\napiVersion: v1\n"),
            Err(DecodeError::UnknownKind { .. })
        ));
        assert_eq!(decode_yaml("- a\n- b\n"), Err(DecodeError::NotAnObject));
        assert!(matches!(
            decode_yaml("{ unclosed"),
            Err(DecodeError::Syntax(_))
        ));
    }

    #[test]
    fn validation_errors_name_the_object() {
        let obj = decode_yaml(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: pool-a, namespace: metallb-system}\nspec:\n  addresses: [192.0.2.0/24, 10.0.0.0/33]\n",
        )
        .unwrap();
        let err = obj.validate().unwrap_err().to_string();
        assert!(
            err.starts_with(
                "IPAddressPool metallb-system/pool-a: spec.addresses[1]: \"10.0.0.0/33\""
            ),
            "{err}"
        );
    }

    #[test]
    fn streams_decode_every_document() {
        let docs = decode_yaml_stream(
            "---\napiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c}\nspec: {communities: [{name: a, value: \"1:2\"}]}\n---\n---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1}\n",
        );
        assert_eq!(docs.len(), 2);
        assert!(docs.iter().all(|d| d.is_ok()), "{docs:?}");
        assert_eq!(docs[1].as_ref().unwrap().kind(), "BGPPeer");
    }
}
