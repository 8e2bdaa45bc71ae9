//! Structural OpenAPI v3 schema handling for custom resources, as the real server does it:
//! non-nullable `null`s dropped (or defaulted), `default`s applied, unknown fields pruned
//! (except under `x-kubernetes-preserve-unknown-fields`), then validation.
//!
//! Validated: `type` (and `nullable`, `x-kubernetes-int-or-string`), `required`, `enum`,
//! `minimum`/`maximum` (and exclusive), `multipleOf`, `minLength`/`maxLength`, `pattern`,
//! `minItems`/`maxItems`, `uniqueItems`, `minProperties`/`maxProperties`, `format`
//! (`int32`, `int64`, `ipv4`, `ipv6`, `cidr`, `date-time`, `uuid`, `byte`), `allOf`,
//! `anyOf`, `oneOf`, `not`. CEL rules (`x-kubernetes-validations`) are **not** evaluated.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use crate::error::Cause;

fn is_true(v: &Value) -> bool {
    v.as_bool() == Some(true)
}

fn preserves(s: &Value) -> bool {
    is_true(&s["x-kubernetes-preserve-unknown-fields"])
}

/// Drop non-nullable nulls (or replace them by the default) and apply `default`s.
pub fn apply_defaults(v: &mut Value, s: &Value) {
    match v {
        Value::Object(m) => {
            if let Some(props) = s["properties"].as_object() {
                for (k, ps) in props {
                    match m.get(k) {
                        None => {
                            if let Some(d) = ps.get("default") {
                                m.insert(k.clone(), d.clone());
                            }
                        }
                        Some(Value::Null) if !is_true(&ps["nullable"]) => match ps.get("default") {
                            Some(d) => {
                                m.insert(k.clone(), d.clone());
                            }
                            None => {
                                m.remove(k);
                            }
                        },
                        _ => {}
                    }
                    if let Some(child) = m.get_mut(k) {
                        apply_defaults(child, ps);
                    }
                }
            }
            if let Some(ap) = s["additionalProperties"].as_object() {
                let ap = Value::Object(ap.clone());
                let props = s["properties"].as_object();
                for (k, child) in m.iter_mut() {
                    if props.is_none_or(|p| !p.contains_key(k)) {
                        apply_defaults(child, &ap);
                    }
                }
            }
        }
        Value::Array(items) if s["items"].is_object() => {
            for i in items {
                apply_defaults(i, &s["items"]);
            }
        }
        _ => {}
    }
}

/// Remove fields the schema does not know. `root` keeps `apiVersion`, `kind` and `metadata`.
pub fn prune(v: &mut Value, s: &Value, root: bool) {
    match v {
        Value::Object(m) => {
            let props = s["properties"].as_object();
            let ap = &s["additionalProperties"];
            let keep_unknown = preserves(s) || is_true(ap);
            let embedded = root || is_true(&s["x-kubernetes-embedded-resource"]);
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(ps) = props.and_then(|p| p.get(&k)) {
                    if let Some(child) = m.get_mut(&k) {
                        prune(child, ps, false);
                    }
                } else if ap.is_object() {
                    if let Some(child) = m.get_mut(&k) {
                        prune(child, ap, false);
                    }
                } else if !keep_unknown {
                    m.remove(&k);
                }
            }
        }
        Value::Array(items) if s["items"].is_object() => {
            for i in items {
                prune(i, &s["items"], false);
            }
        }
        _ => {}
    }
}

/// The unknown fields `prune` would drop, as paths (for `fieldValidation=Strict`).
pub fn unknown_fields(v: &Value, s: &Value, path: &str, root: bool, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let props = s["properties"].as_object();
            let ap = &s["additionalProperties"];
            let keep_unknown = preserves(s) || is_true(ap);
            let embedded = root || is_true(&s["x-kubernetes-embedded-resource"]);
            for (k, child) in m {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let p = join(path, k);
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    unknown_fields(child, ps, &p, false, out);
                } else if ap.is_object() {
                    unknown_fields(child, ap, &p, false, out);
                } else if !keep_unknown {
                    out.push(p);
                }
            }
        }
        Value::Array(items) if s["items"].is_object() => {
            for (i, item) in items.iter().enumerate() {
                unknown_fields(item, &s["items"], &format!("{path}[{i}]"), false, out);
            }
        }
        _ => {}
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn render(v: &Value) -> String {
    match v {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn invalid(out: &mut Vec<Cause>, path: &str, v: &Value, detail: String) {
    out.push(Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {}: {detail}", render(v)),
        field: path.into(),
    });
}

fn regex_matches(pattern: &str, s: &str) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    let re = map
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok());
    // An uncompilable pattern is not this server's business: accept.
    re.as_ref().is_none_or(|re| re.is_match(s))
}

fn format_ok(format: &str, v: &Value) -> bool {
    match (format, v) {
        ("int32", Value::Number(n)) => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        ("int64", Value::Number(n)) => n.is_i64(),
        ("ipv4", Value::String(s)) => s.parse::<std::net::Ipv4Addr>().is_ok(),
        ("ipv6", Value::String(s)) => s.parse::<std::net::Ipv6Addr>().is_ok(),
        ("cidr", Value::String(s)) => s.split_once('/').is_some_and(|(ip, len)| {
            let Ok(len) = len.parse::<u8>() else {
                return false;
            };
            match ip.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(_)) => len <= 32,
                Ok(std::net::IpAddr::V6(_)) => len <= 128,
                Err(_) => false,
            }
        }),
        ("date-time", Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        ("uuid", Value::String(s)) => uuid::Uuid::parse_str(s).is_ok(),
        ("byte", Value::String(s)) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        _ => true,
    }
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Validate `v` against `s`, appending one cause per problem. `path` is the field path of
/// `v` (empty at the root); at the root `apiVersion`, `kind` and `metadata` are skipped.
pub fn validate(v: &Value, s: &Value, path: &str, out: &mut Vec<Cause>) {
    validate_inner(v, s, path, path.is_empty(), out)
}

fn validate_inner(v: &Value, s: &Value, path: &str, root: bool, out: &mut Vec<Cause>) {
    if !s.is_object() {
        return;
    }
    if v.is_null() {
        if is_true(&s["nullable"]) || s["type"].is_null() {
            return;
        }
        invalid(
            out,
            path,
            &Value::String("null".into()),
            format!(
                "{path} in body must be of type {}: \"null\"",
                s["type"].as_str().unwrap_or_default()
            ),
        );
        return;
    }
    let actual = type_name(v);
    if is_true(&s["x-kubernetes-int-or-string"]) {
        if !matches!(actual, "integer" | "string") {
            invalid(
                out,
                path,
                &Value::String(actual.into()),
                format!("{path} in body must be of type integer-or-string: \"{actual}\""),
            );
            return;
        }
    } else if let Some(want) = s["type"].as_str() {
        let ok = match want {
            "number" => matches!(actual, "integer" | "number"),
            "integer" => actual == "integer" || v.as_f64().is_some_and(|f| f.fract() == 0.0),
            w => actual == w,
        };
        if !ok {
            invalid(
                out,
                path,
                &Value::String(actual.into()),
                format!("{path} in body must be of type {want}: \"{actual}\""),
            );
            return;
        }
    }
    if let Some(choices) = s["enum"].as_array() {
        if !choices.contains(v) {
            out.push(Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: {}: supported values: {}",
                    render(v),
                    choices.iter().map(render).collect::<Vec<_>>().join(", ")
                ),
                field: path.into(),
            });
        }
    }
    if let Some(f) = s["format"].as_str() {
        if !format_ok(f, v) {
            invalid(
                out,
                path,
                v,
                format!("{path} in body must be of type {f}: {}", render(v)),
            );
        }
    }
    if let Some(x) = num(v) {
        if let Some(min) = num(&s["minimum"]) {
            let excl = is_true(&s["exclusiveMinimum"]);
            if x < min || (excl && x == min) {
                let op = if excl {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                invalid(
                    out,
                    path,
                    v,
                    format!("{path} in body should be {op} {}", s["minimum"]),
                );
            }
        }
        if let Some(max) = num(&s["maximum"]) {
            let excl = is_true(&s["exclusiveMaximum"]);
            if x > max || (excl && x == max) {
                let op = if excl {
                    "less than"
                } else {
                    "less than or equal to"
                };
                invalid(
                    out,
                    path,
                    v,
                    format!("{path} in body should be {op} {}", s["maximum"]),
                );
            }
        }
        if let Some(m) = num(&s["multipleOf"]) {
            if m != 0.0 && (x / m).fract() != 0.0 {
                invalid(
                    out,
                    path,
                    v,
                    format!("{path} in body should be a multiple of {}", s["multipleOf"]),
                );
            }
        }
    }
    if let Value::String(st) = v {
        let len = st.chars().count() as u64;
        if let Some(min) = s["minLength"].as_u64() {
            if len < min {
                invalid(
                    out,
                    path,
                    v,
                    format!("{path} in body should be at least {min} chars long"),
                );
            }
        }
        if let Some(max) = s["maxLength"].as_u64() {
            if len > max {
                out.push(Cause {
                    reason: "FieldValueTooLong".into(),
                    message: format!("Too long: may not be more than {max} bytes"),
                    field: path.into(),
                });
            }
        }
        if let Some(p) = s["pattern"].as_str() {
            if !regex_matches(p, st) {
                invalid(out, path, v, format!("{path} in body should match '{p}'"));
            }
        }
    }
    if let Value::Array(items) = v {
        let n = items.len() as u64;
        if let Some(min) = s["minItems"].as_u64() {
            if n < min {
                invalid(
                    out,
                    path,
                    &Value::from(n),
                    format!("{path} in body should have at least {min} items"),
                );
            }
        }
        if let Some(max) = s["maxItems"].as_u64() {
            if n > max {
                out.push(Cause {
                    reason: "FieldValueTooMany".into(),
                    message: format!("Too many: {n}: must have at most {max} items"),
                    field: path.into(),
                });
            }
        }
        let set = s["x-kubernetes-list-type"] == "set";
        if is_true(&s["uniqueItems"]) || set {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    out.push(Cause {
                        reason: "FieldValueDuplicate".into(),
                        message: format!("Duplicate value: {}", render(item)),
                        field: format!("{path}[{i}]"),
                    });
                }
            }
        }
        if s["x-kubernetes-list-type"] == "map" {
            let keys: Vec<&str> = s["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for (i, item) in items.iter().enumerate() {
                let key: Vec<&Value> = keys.iter().map(|k| &item[*k]).collect();
                if items[..i]
                    .iter()
                    .any(|o| keys.iter().map(|k| &o[*k]).collect::<Vec<_>>() == key)
                {
                    out.push(Cause {
                        reason: "FieldValueDuplicate".into(),
                        message: format!(
                            "Duplicate value: {}",
                            serde_json::json!(keys
                                .iter()
                                .map(|k| (k.to_string(), item[*k].clone()))
                                .collect::<serde_json::Map<_, _>>())
                        ),
                        field: format!("{path}[{i}]"),
                    });
                }
            }
        }
        if s["items"].is_object() {
            for (i, item) in items.iter().enumerate() {
                validate_inner(item, &s["items"], &format!("{path}[{i}]"), false, out);
            }
        }
    }
    if let Value::Object(m) = v {
        let n = m.len() as u64;
        if let Some(min) = s["minProperties"].as_u64() {
            if n < min {
                invalid(
                    out,
                    path,
                    &Value::from(n),
                    format!("{path} in body should have at least {min} properties"),
                );
            }
        }
        if let Some(max) = s["maxProperties"].as_u64() {
            if n > max {
                out.push(Cause {
                    reason: "FieldValueTooMany".into(),
                    message: format!("Too many: {n}: must have at most {max} items"),
                    field: path.into(),
                });
            }
        }
        for r in s["required"].as_array().into_iter().flatten() {
            if let Some(r) = r.as_str() {
                if !m.contains_key(r) {
                    out.push(Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value".into(),
                        field: join(path, r),
                    });
                }
            }
        }
        let props = s["properties"].as_object();
        for (k, child) in m {
            if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(ps) = props.and_then(|p| p.get(k)) {
                validate_inner(child, ps, &join(path, k), false, out);
            } else if s["additionalProperties"].is_object() {
                validate_inner(
                    child,
                    &s["additionalProperties"],
                    &join(path, k),
                    false,
                    out,
                );
            }
        }
    }
    let passes = |sub: &Value| {
        let mut tmp = Vec::new();
        validate_inner(v, sub, path, root, &mut tmp);
        tmp.is_empty()
    };
    for sub in s["allOf"].as_array().into_iter().flatten() {
        validate_inner(v, sub, path, root, out);
    }
    if let Some(any) = s["anyOf"].as_array() {
        if !any.iter().any(passes) {
            invalid(
                out,
                path,
                v,
                format!("{path} in body must validate at least one schema (anyOf)"),
            );
        }
    }
    if let Some(one) = s["oneOf"].as_array() {
        if one.iter().filter(|x| passes(x)).count() != 1 {
            invalid(
                out,
                path,
                v,
                format!("{path} in body must validate one and only one schema (oneOf)"),
            );
        }
    }
    if s["not"].is_object() && passes(&s["not"]) {
        invalid(
            out,
            path,
            v,
            format!("{path} in body must not validate the schema (not)"),
        );
    }
}

/// Default, prune and validate a custom object in place.
pub fn normalize(obj: &mut Value, schema: &Value) -> Vec<Cause> {
    apply_defaults(obj, schema);
    prune(obj, schema, true);
    let mut out = Vec::new();
    validate(obj, schema, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["addresses"],
                    "properties": {
                        "addresses": { "type": "array", "minItems": 1, "items": { "type": "string", "pattern": "^[0-9./]+$" } },
                        "mode": { "type": "string", "enum": ["a", "b"], "default": "a" },
                        "port": { "type": "integer", "format": "int32", "minimum": 1, "maximum": 65535 },
                        "free": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                        "opt": { "type": "string", "nullable": true },
                        "nested": { "type": "object", "default": {}, "properties": { "x": { "type": "integer", "default": 7 } } }
                    }
                }
            }
        })
    }

    #[test]
    fn defaults_prune_validate() {
        let mut o = json!({ "apiVersion": "x/v1", "kind": "K", "metadata": { "name": "a" },
            "spec": { "addresses": ["10.0.0.0/24", "bad!"], "unknown": 1, "free": { "any": 1 }, "opt": null, "port": 70000 }, "extra": true });
        let causes = normalize(&mut o, &schema());
        assert_eq!(o["spec"]["mode"], "a");
        assert_eq!(o["spec"]["nested"]["x"], 7);
        assert!(o["spec"].get("unknown").is_none());
        assert!(o.get("extra").is_none());
        assert_eq!(o["spec"]["free"]["any"], 1);
        assert!(o["spec"]["opt"].is_null() && o["spec"].get("opt").is_some());
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.addresses[1]", "spec.port"], "{causes:?}");
    }

    #[test]
    fn required_and_enum() {
        let mut o = json!({ "spec": { "mode": "c" } });
        let causes = normalize(&mut o, &schema());
        assert_eq!(causes.len(), 2, "{causes:?}");
        assert_eq!(causes[0].field, "spec.addresses");
        assert_eq!(causes[0].reason, "FieldValueRequired");
        assert_eq!(causes[1].reason, "FieldValueNotSupported");
    }
}
