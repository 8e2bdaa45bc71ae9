//! Hand-written OpenAPI fragments for fields whose upstream schema carries ranges, formats or
//! CEL rules that derive attributes cannot express exactly (`format: int64` for 32-bit ASNs,
//! `x-kubernetes-validations` on `connectTime` and on EVPN route distinguishers / targets).
//!
//! Every fragment has a `type`, so the generated CRDs stay structural.

use schemars::{json_schema, Schema, SchemaGenerator};

/// Router/neighbor `asn`: 0..4294967295, `format: int64` (the fix upstream shipped in v0.0.25
/// so that apiservers ≥ 1.36 accept values above 2^31).
pub(crate) fn asn(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int64",
        "minimum": 0,
        "maximum": 4294967295u64,
    })
}

/// Neighbor `localASN`: 1..4294967295.
pub(crate) fn local_asn(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int64",
        "minimum": 1,
        "maximum": 4294967295u64,
    })
}

/// A plain 32-bit unsigned value (local preference).
pub(crate) fn uint32(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int64",
        "minimum": 0,
        "maximum": 4294967295u64,
    })
}

/// Neighbor `port`: 0..65535. Upstream caps it at 16384; we deliberately allow every port.
pub(crate) fn port(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int32",
        "minimum": 0,
        "maximum": 65535,
    })
}

/// Message of the first connectTime CEL rule (upstream wording).
pub const CONNECT_TIME_RANGE_MESSAGE: &str = "connect time should be between 1 seconds to 65535";
/// Message of the second connectTime CEL rule (upstream wording).
pub const CONNECT_TIME_WHOLE_MESSAGE: &str =
    "connect time should contain a whole number of seconds";

/// Neighbor `connectTime`: a duration string with upstream's two CEL rules.
pub(crate) fn connect_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "x-kubernetes-validations": [
            {
                "message": CONNECT_TIME_RANGE_MESSAGE,
                "rule": "duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535",
            },
            {
                "message": CONNECT_TIME_WHOLE_MESSAGE,
                "rule": "duration(self).getMilliseconds() % 1000 == 0",
            },
        ],
    })
}

/// PrefixSelector `le` / `ge`: 1..128.
pub(crate) fn prefix_len(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int32",
        "minimum": 1,
        "maximum": 128,
    })
}

/// BFD intervals in milliseconds: 10..60000.
pub(crate) fn bfd_interval(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int32",
        "minimum": 10,
        "maximum": 60000,
    })
}

/// BFD detect multiplier: 2..255.
pub(crate) fn bfd_multiplier(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int32",
        "minimum": 2,
        "maximum": 255,
    })
}

/// BFD minimum TTL: 1..254.
pub(crate) fn bfd_ttl(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int32",
        "minimum": 1,
        "maximum": 254,
    })
}

/// VXLAN network identifier: 1..16777215.
pub(crate) fn vni(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int64",
        "minimum": 1,
        "maximum": 16777215,
    })
}

/// Longest RD/RT text we accept in the schema. No valid value is longer
/// (`255.255.255.255:65535` has 21 characters); the bound keeps the CEL cost estimate small.
const RD_RT_MAX_LENGTH: u32 = 21;

/// EVPN route distinguisher with upstream's CEL rules, restated so that kube-apiserver's
/// cost estimate accepts them (see [`RD_RT_MAX_LENGTH`]).
///
/// Upstream checks an IPv4 administrator with one long regular expression and the number
/// with `uint(split(':')[1])` in a single rule. Under `routers` (50) × `l2vnis` (10) ×
/// route targets (100), that rule's estimated cost exceeds the per-rule budget, and the
/// API server refuses the whole CRD. The same check is split here into three cheaper rules
/// with upstream's message: the dotted shape, no octet above 255 or with a leading zero,
/// and the number. What they accept is exactly what upstream's rule accepts.
pub(crate) fn route_distinguisher(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": RD_RT_MAX_LENGTH,
        "x-kubernetes-validations": [
            {
                "rule": "self.split(':').size() == 2",
                "message": "RD must contain exactly one colon",
            },
            {
                "rule": "!self.matches('^[^:]*[.]') || self.matches('^[0-9]{1,3}([.][0-9]{1,3}){3}:')",
                "message": "RD with IPv4 administrator must have format A.B.C.D:MN where MN <= 65535",
            },
            {
                "rule": "!self.matches('^[^:]*[.]') || !self.matches('(^|[.])(0[0-9]|25[6-9]|2[6-9][0-9]|[3-9][0-9][0-9])[.:]')",
                "message": "RD with IPv4 administrator must have format A.B.C.D:MN where MN <= 65535",
            },
            {
                "rule": "!self.matches('^[^:]*[.]') || uint(self.split(':')[1]) <= 65535u",
                "message": "RD with IPv4 administrator must have format A.B.C.D:MN where MN <= 65535",
            },
            {
                "rule": "self.split(':')[0].contains('.') || uint(self.split(':')[0]) <= 65535u || uint(self.split(':')[1]) <= 65535u",
                "message": "RD with 4-byte ASN administrator must have format GHJK:MN where GHJK <= 4294967295 and MN <= 65535",
            },
            {
                "rule": "self.split(':')[0].contains('.') || uint(self.split(':')[0]) > 65535u || uint(self.split(':')[1]) <= 4294967295u",
                "message": "RD with 2-byte ASN administrator must have format EF:OPQR where EF <= 65535 and OPQR <= 4294967295",
            },
        ],
    })
}

/// EVPN import route targets (wildcard administrator allowed), max 100.
pub(crate) fn import_rts(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 100,
        "items": {
            "type": "string",
            "maxLength": RD_RT_MAX_LENGTH,
            "x-kubernetes-validations": [
                {
                    "rule": "self.split(':').size() == 2",
                    "message": "RT must contain exactly one colon",
                },
                {
                    "rule": "self.split(':')[0] != '*' || uint(self.split(':')[1]) <= 4294967295u",
                    "message": "RT with wildcard administrator must have format *:OPQR where OPQR <= 4294967295",
                },
                {
                    "rule": "!self.matches('^[^:]*[.]') || self.matches('^[0-9]{1,3}([.][0-9]{1,3}){3}:')",
                    "message": "RT with IPv4 administrator must have format A.B.C.D:MN where MN <= 65535",
                },
                {
                    "rule": "!self.matches('^[^:]*[.]') || !self.matches('(^|[.])(0[0-9]|25[6-9]|2[6-9][0-9]|[3-9][0-9][0-9])[.:]')",
                    "message": "RT with IPv4 administrator must have format A.B.C.D:MN where MN <= 65535",
                },
                {
                    "rule": "!self.matches('^[^:]*[.]') || uint(self.split(':')[1]) <= 65535u",
                    "message": "RT with IPv4 administrator must have format A.B.C.D:MN where MN <= 65535",
                },
                {
                    "rule": "self.split(':')[0] == '*' || self.split(':')[0].contains('.') || uint(self.split(':')[0]) <= 65535u || uint(self.split(':')[1]) <= 65535u",
                    "message": "RT with 4-byte ASN administrator must have format GHJK:MN where GHJK <= 4294967295 and MN <= 65535",
                },
                {
                    "rule": "self.split(':')[0] == '*' || self.split(':')[0].contains('.') || uint(self.split(':')[0]) > 65535u || uint(self.split(':')[1]) <= 4294967295u",
                    "message": "RT with 2-byte ASN administrator must have format EF:OPQR where EF <= 65535 and OPQR <= 4294967295",
                },
            ],
        },
    })
}

/// EVPN export route targets (no wildcard), max 100.
pub(crate) fn export_rts(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 100,
        "items": {
            "type": "string",
            "maxLength": RD_RT_MAX_LENGTH,
            "x-kubernetes-validations": [
                {
                    "rule": "self.split(':').size() == 2",
                    "message": "RT must contain exactly one colon",
                },
                {
                    "rule": "!self.matches('^[^:]*[.]') || self.matches('^[0-9]{1,3}([.][0-9]{1,3}){3}:')",
                    "message": "RT with IPv4 administrator must have format A.B.C.D:MN where MN <= 65535",
                },
                {
                    "rule": "!self.matches('^[^:]*[.]') || !self.matches('(^|[.])(0[0-9]|25[6-9]|2[6-9][0-9]|[3-9][0-9][0-9])[.:]')",
                    "message": "RT with IPv4 administrator must have format A.B.C.D:MN where MN <= 65535",
                },
                {
                    "rule": "!self.matches('^[^:]*[.]') || uint(self.split(':')[1]) <= 65535u",
                    "message": "RT with IPv4 administrator must have format A.B.C.D:MN where MN <= 65535",
                },
                {
                    "rule": "self.split(':')[0].contains('.') || uint(self.split(':')[0]) <= 65535u || uint(self.split(':')[1]) <= 65535u",
                    "message": "RT with 4-byte ASN administrator must have format GHJK:MN where GHJK <= 4294967295 and MN <= 65535",
                },
                {
                    "rule": "self.split(':')[0].contains('.') || uint(self.split(':')[0]) > 65535u || uint(self.split(':')[1]) <= 4294967295u",
                    "message": "RT with 2-byte ASN administrator must have format EF:OPQR where EF <= 65535 and OPQR <= 4294967295",
                },
            ],
        },
    })
}

/// L3VNI `advertisePrefixes`: exactly one item, `unicast`.
pub(crate) fn advertise_prefixes(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "minItems": 1,
        "maxItems": 1,
        "items": {
            "type": "string",
            "enum": ["unicast"],
        },
    })
}
