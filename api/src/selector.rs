//! Label selectors: validation with field paths, and matching against label maps.
//!
//! Both MetalLB (pool/peer/advertisement node and service selectors) and frr-k8s
//! (`spec.nodeSelector`) use the standard `metav1.LabelSelector`. The apiserver does not
//! validate selectors inside custom resources, so we do: a bad selector is reported against
//! its own object and never silently matches everything.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::validation::{FieldErrors, FieldPath};

/// A parsed, valid label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    reqs: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// The selector that matches everything (an empty `LabelSelector`).
    pub fn everything() -> Self {
        Selector { reqs: Vec::new() }
    }

    /// Parse a selector; `path` names it in errors.
    pub fn parse(sel: &LabelSelector, path: &FieldPath) -> Result<Selector, FieldErrors> {
        let mut errs = FieldErrors::new();
        let mut reqs = Vec::new();
        if let Some(labels) = &sel.match_labels {
            let lp = path.child("matchLabels");
            for (k, v) in labels {
                check_key(&lp.key(k), k, &mut errs);
                check_value(&lp.key(k), v, &mut errs);
                reqs.push(Requirement::In(k.clone(), vec![v.clone()]));
            }
        }
        if let Some(exprs) = &sel.match_expressions {
            let ep = path.child("matchExpressions");
            for (i, e) in exprs.iter().enumerate() {
                let p = ep.index(i);
                if let Some(r) = parse_requirement(e, &p, &mut errs) {
                    reqs.push(r);
                }
            }
        }
        errs.into_result().map(|()| Selector { reqs })
    }

    /// Whether a label set satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    /// Whether labels looked up by `get` satisfy every requirement (for label sets not
    /// held in a map, e.g. a sorted vector).
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.reqs.iter().all(|r| match r {
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// True for the empty selector.
    pub fn is_everything(&self) -> bool {
        self.reqs.is_empty()
    }
}

/// Validate a selector, recording problems into `errs`.
pub fn validate(sel: &LabelSelector, path: &FieldPath, errs: &mut FieldErrors) {
    if let Err(e) = Selector::parse(sel, path) {
        errs.extend(e);
    }
}

/// Validate a list of selectors and reject duplicates (MetalLB: "duplicate definition of ...").
pub fn validate_list(sels: &[LabelSelector], path: &FieldPath, errs: &mut FieldErrors) {
    for (i, s) in sels.iter().enumerate() {
        validate(s, &path.index(i), errs);
        if sels[..i].iter().any(|o| o == s) {
            errs.problem(&path.index(i), "duplicate selector");
        }
    }
}

/// Any of the selectors matches; an empty list matches everything (MetalLB's convention for
/// node selectors). Invalid selectors never match.
pub fn any_matches(sels: &[LabelSelector], labels: &BTreeMap<String, String>) -> bool {
    sels.is_empty()
        || sels.iter().any(|s| {
            Selector::parse(s, &FieldPath::default())
                .map(|s| s.matches(labels))
                .unwrap_or(false)
        })
}

fn parse_requirement(
    e: &LabelSelectorRequirement,
    p: &FieldPath,
    errs: &mut FieldErrors,
) -> Option<Requirement> {
    check_key(&p.child("key"), &e.key, errs);
    let values = e.values.clone().unwrap_or_default();
    for (j, v) in values.iter().enumerate() {
        check_value(&p.child("values").index(j), v, errs);
    }
    let vp = p.child("values");
    match e.operator.as_str() {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.problem(
                    &vp,
                    format!("must be non-empty when operator is {}", e.operator),
                );
                return None;
            }
            Some(if e.operator == "In" {
                Requirement::In(e.key.clone(), values)
            } else {
                Requirement::NotIn(e.key.clone(), values)
            })
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                errs.problem(
                    &vp,
                    format!("must be empty when operator is {}", e.operator),
                );
                return None;
            }
            Some(if e.operator == "Exists" {
                Requirement::Exists(e.key.clone())
            } else {
                Requirement::DoesNotExist(e.key.clone())
            })
        }
        other => {
            errs.invalid(
                &p.child("operator"),
                other,
                "is not a valid selector operator (In, NotIn, Exists, DoesNotExist)",
            );
            None
        }
    }
}

/// A qualified name: `[prefix/]name`, prefix a DNS subdomain ≤ 253, name ≤ 63 chars of
/// `[A-Za-z0-9._-]` starting and ending alphanumeric.
pub fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_dns_subdomain(p) {
            return false;
        }
    }
    is_label_name(name) && !name.is_empty()
}

fn is_label_name(s: &str) -> bool {
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
}

/// RFC 1123 subdomain: lowercase alphanumerics, `-` and `.`, ≤ 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn check_key(p: &FieldPath, k: &str, errs: &mut FieldErrors) {
    if !is_qualified_name(k) {
        errs.invalid(p, k, "is not a valid label key");
    }
}

fn check_value(p: &FieldPath, v: &str, errs: &mut FieldErrors) {
    if !is_label_name(v) {
        errs.invalid(p, v, "is not a valid label value");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(yaml: &str) -> LabelSelector {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn match_labels_and_expressions() {
        let s = Selector::parse(
            &sel("matchLabels: {kubernetes.io/hostname: node-1}\nmatchExpressions:\n- {key: zone, operator: In, values: [a, b]}\n- {key: bad, operator: DoesNotExist}\n"),
            &FieldPath::new("spec.nodeSelector"),
        )
        .unwrap();
        assert!(s.matches(&labels(&[
            ("kubernetes.io/hostname", "node-1"),
            ("zone", "a")
        ])));
        assert!(!s.matches(&labels(&[
            ("kubernetes.io/hostname", "node-1"),
            ("zone", "c")
        ])));
        assert!(!s.matches(&labels(&[
            ("kubernetes.io/hostname", "node-1"),
            ("zone", "a"),
            ("bad", "")
        ])));
        assert!(!s.matches(&labels(&[("zone", "a")])));
        let not_in = Selector::parse(
            &sel("matchExpressions: [{key: z, operator: NotIn, values: [x]}]"),
            &FieldPath::default(),
        )
        .unwrap();
        assert!(not_in.matches(&labels(&[])));
        assert!(!not_in.matches(&labels(&[("z", "x")])));
        assert!(Selector::everything().matches(&labels(&[])));
    }

    #[test]
    fn invalid_selectors_name_the_field() {
        let err = Selector::parse(
            &sel("matchExpressions:\n- {key: zone, operator: Within, values: [a]}\n- {key: zone, operator: In}\n- {key: '-bad', operator: Exists}\n"),
            &FieldPath::new("spec.nodeSelector"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("spec.nodeSelector.matchExpressions[0].operator: \"Within\" is not a valid selector operator"), "{text}");
        assert!(
            text.contains("spec.nodeSelector.matchExpressions[1].values: must be non-empty"),
            "{text}"
        );
        assert!(
            text.contains(
                "spec.nodeSelector.matchExpressions[2].key: \"-bad\" is not a valid label key"
            ),
            "{text}"
        );
        assert_eq!(err.len(), 3);
    }

    #[test]
    fn empty_list_matches_all_but_invalid_matches_none() {
        assert!(any_matches(&[], &labels(&[])));
        assert!(!any_matches(
            &[sel("matchExpressions: [{key: a, operator: Bogus}]")],
            &labels(&[("a", "b")])
        ));
    }
}
