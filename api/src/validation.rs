//! Validation errors that name their subject.
//!
//! Every validator in this crate returns *all* problems it finds, not only the first, each
//! with the JSON field path and the offending value, so a user fixing a manifest sees the whole
//! list at once (`spec.addresses[1]: "10.0.0.0/33" is not a valid CIDR`).

use std::fmt;

/// A JSON field path such as `spec.bgp.routers[0].neighbors[2].holdTime`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn new(root: &str) -> Self {
        FieldPath(root.to_string())
    }

    /// `spec` → `spec.addresses`
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{}", self.0, name))
        }
    }

    /// `spec.addresses` → `spec.addresses[1]`
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{}]", self.0, i))
    }

    /// `metadata.labels` → `metadata.labels[app]`
    pub fn key(&self, k: &str) -> Self {
        FieldPath(format!("{}[{}]", self.0, k))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldError {
    pub path: FieldPath,
    /// The offending value as the user wrote it (JSON-ish rendering), if there is one.
    pub value: Option<String>,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}: {:?} {}", self.path, v, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// All problems found in one object (or set of objects), in the order found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record a problem with a value: rendered as `path: "value" message`.
    pub fn invalid(
        &mut self,
        path: &FieldPath,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) {
        self.0.push(FieldError {
            path: path.clone(),
            value: Some(value.to_string()),
            message: message.into(),
        });
    }

    /// Record a problem without a single offending value (missing field, exclusive fields).
    pub fn problem(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.clone(),
            value: None,
            message: message.into(),
        });
    }

    pub fn extend(&mut self, other: FieldErrors) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// `Ok(())` when nothing was recorded.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

/// Validation failure of one named object: `IPAddressPool metallb-system/pool-a: spec.addresses[1]: ...`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name}: {errors}")]
pub struct ObjectError {
    pub kind: &'static str,
    /// `namespace/name`, or just `name` for cluster-scoped objects.
    pub name: String,
    pub errors: FieldErrors,
}

/// `namespace/name` of an object, `name` when it has no namespace, `<unnamed>` when neither.
pub fn object_ref(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or("<unnamed>");
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_messages_render_like_the_docs() {
        let p = FieldPath::new("spec").child("addresses").index(1);
        let mut errs = FieldErrors::new();
        errs.invalid(&p, "10.0.0.0/33", "is not a valid CIDR");
        errs.problem(
            &FieldPath::new("spec").child("peerASN"),
            "either peerASN or dynamicASN must be set",
        );
        assert_eq!(
            errs.to_string(),
            "spec.addresses[1]: \"10.0.0.0/33\" is not a valid CIDR; spec.peerASN: either peerASN or dynamicASN must be set"
        );
        assert_eq!(errs.len(), 2);
        assert!(errs.into_result().is_err());
        assert!(FieldErrors::new().into_result().is_ok());
    }
}
