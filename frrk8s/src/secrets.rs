//! Resolving `passwordSecret` references without a client: the shell passes an index of
//! Secrets (a reflector store, a map) through [`SecretLookup`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use crate::model::Password;

/// The Secret type a BGP password must have.
pub const BASIC_AUTH_TYPE: &str = "kubernetes.io/basic-auth";
/// The key holding the password.
pub const PASSWORD_KEY: &str = "password";

/// Read access to Secrets by (namespace, name).
pub trait SecretLookup {
    fn lookup(&self, namespace: &str, name: &str) -> Option<Secret>;
}

/// No Secrets at all.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSecrets;

impl SecretLookup for NoSecrets {
    fn lookup(&self, _: &str, _: &str) -> Option<Secret> {
        None
    }
}

impl SecretLookup for BTreeMap<(String, String), Secret> {
    fn lookup(&self, namespace: &str, name: &str) -> Option<Secret> {
        BTreeMap::get(self, &(namespace.to_string(), name.to_string())).cloned()
    }
}

impl SecretLookup for [Secret] {
    fn lookup(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.iter()
            .find(|s| {
                s.metadata.namespace.as_deref() == Some(namespace)
                    && s.metadata.name.as_deref() == Some(name)
            })
            .cloned()
    }
}

impl SecretLookup for Vec<Secret> {
    fn lookup(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.as_slice().lookup(namespace, name)
    }
}

/// Why a password secret could not be used. Never carries the secret's content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret {0} not found")]
    NotFound(String),
    #[error("secret {0} has type {1:?}, expected \"kubernetes.io/basic-auth\"")]
    WrongType(String, String),
    #[error("secret {0} has no \"password\" key")]
    NoPasswordKey(String),
    #[error("secret {0}: the password is not valid UTF-8")]
    NotUtf8(String),
}

/// Resolve a password secret: `namespace` empty means the daemon's namespace.
pub fn resolve_password(
    lookup: &dyn SecretLookup,
    namespace: &str,
    name: &str,
) -> Result<Password, SecretError> {
    let full = format!("{namespace}/{name}");
    let secret = lookup
        .lookup(namespace, name)
        .ok_or_else(|| SecretError::NotFound(full.clone()))?;
    let ty = secret.type_.as_deref().unwrap_or("");
    if ty != BASIC_AUTH_TYPE {
        return Err(SecretError::WrongType(full, ty.to_string()));
    }
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(PASSWORD_KEY)) {
        return String::from_utf8(v.0.clone())
            .map(Password::new)
            .map_err(|_| SecretError::NotUtf8(full));
    }
    if let Some(v) = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(PASSWORD_KEY))
    {
        return Ok(Password::new(v.clone()));
    }
    Err(SecretError::NoPasswordKey(full))
}
