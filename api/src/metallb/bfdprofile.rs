//! `BFDProfile` (`metallb.io/v1beta1`): BFD session settings a BGPPeer can refer to.

// kube's repeated `printcolumn(type_ = ...)` trips this lint (false positive).
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation::{FieldErrors, FieldPath};

/// BFDProfileSpec defines the desired state of BFDProfile.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BFDProfile",
    plural = "bfdprofiles",
    singular = "bfdprofile",
    namespaced,
    status = "BFDProfileStatus",
    derive = "PartialEq",
    doc = "BFDProfile represents the settings of the bfd session that can be optionally associated with a BGP session.",
    printcolumn(
        name = "Passive Mode",
        type_ = "boolean",
        json_path = ".spec.passiveMode"
    ),
    printcolumn(
        name = "Transmit Interval",
        type_ = "integer",
        json_path = ".spec.transmitInterval"
    ),
    printcolumn(
        name = "Receive Interval",
        type_ = "integer",
        json_path = ".spec.receiveInterval"
    ),
    printcolumn(
        name = "Multiplier",
        type_ = "integer",
        json_path = ".spec.detectMultiplier"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BFDProfileSpec {
    /// The minimum interval that this system is capable of
    /// receiving control packets in milliseconds.
    /// Defaults to 300ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub receive_interval: Option<u32>,

    /// The minimum transmission interval (less jitter)
    /// that this system wants to use to send BFD control packets in
    /// milliseconds. Defaults to 300ms
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub transmit_interval: Option<u32>,

    /// Configures the detection multiplier to determine
    /// packet loss. The remote transmission interval will be multiplied
    /// by this value to determine the connection loss detection timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 255))]
    pub detect_multiplier: Option<u32>,

    /// Configures the minimal echo receive transmission
    /// interval that this system is capable of handling in milliseconds.
    /// Defaults to 50ms
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub echo_interval: Option<u32>,

    /// Enables or disables the echo transmission mode.
    /// This mode is disabled by default, and not supported on multi
    /// hops setups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mode: Option<bool>,

    /// Mark session as passive: a passive session will not
    /// attempt to start the connection and will wait for control packets
    /// from peer before it begins replying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,

    /// For multi hop sessions only: configure the minimum
    /// expected TTL for an incoming BFD control packet.
    #[serde(
        rename = "minimumTtl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 254))]
    pub minimum_ttl: Option<u32>,
}

/// BFDProfileStatus defines the observed state of BFDProfile (empty).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BFDProfileStatus {}

impl BFDProfileSpec {
    pub fn echo_mode(&self) -> bool {
        self.echo_mode.unwrap_or(false)
    }

    pub fn passive_mode(&self) -> bool {
        self.passive_mode.unwrap_or(false)
    }

    /// Every problem with this profile. Paths start at `spec.`.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let spec = FieldPath::new("spec");
        let mut errs = FieldErrors::new();
        let mut range = |name: &str, v: Option<u32>, min: u32, max: u32| {
            if let Some(v) = v {
                if !(min..=max).contains(&v) {
                    errs.invalid(
                        &spec.child(name),
                        v,
                        format!("must be between {min} and {max}"),
                    );
                }
            }
        };
        range("receiveInterval", self.receive_interval, 10, 60000);
        range("transmitInterval", self.transmit_interval, 10, 60000);
        range("detectMultiplier", self.detect_multiplier, 2, 255);
        range("echoInterval", self.echo_interval, 10, 60000);
        range("minimumTtl", self.minimum_ttl, 1, 254);
        errs.into_result()
    }
}

impl BFDProfile {
    /// See [`BFDProfileSpec::validate`].
    pub fn validate(&self) -> Result<(), FieldErrors> {
        self.spec.validate()
    }
}
