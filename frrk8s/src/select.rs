//! Which FRRConfigurations apply to this node.
//!
//! Only objects in the daemon's namespace are considered (upstream since v0.0.19). An
//! object whose `nodeSelector` cannot be parsed is excluded and reported on its own;
//! unlike upstream (quirk 11), it never breaks the configuration of the node.

use std::collections::BTreeMap;

use metallb_api::frrk8s::FRRConfiguration;
use metallb_api::selector::Selector;
use metallb_api::validation::{object_ref, FieldErrors, FieldPath};

/// An object left out because its selector is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("FRRConfiguration {object}: invalid nodeSelector: {errors}")]
pub struct SelectError {
    /// `namespace/name`.
    pub object: String,
    pub errors: FieldErrors,
}

/// The result of [`select`].
#[derive(Debug, Default)]
pub struct Selection<'a> {
    /// Matching objects, sorted by `namespace/name`.
    pub selected: Vec<&'a FRRConfiguration>,
    /// Objects of the namespace skipped because their selector is invalid, sorted.
    pub errors: Vec<SelectError>,
}

/// Pick the objects of `namespace` whose `nodeSelector` matches `node_labels` (an unset or
/// empty selector matches every node). A [stub](crate::stub) is never selected: it holds no
/// configuration (its invalid selector is still reported).
pub fn select<'a, I>(
    configs: I,
    namespace: &str,
    node_labels: &BTreeMap<String, String>,
) -> Selection<'a>
where
    I: IntoIterator<Item = &'a FRRConfiguration>,
{
    let mut out = Selection::default();
    for cfg in configs {
        if cfg.metadata.namespace.as_deref().unwrap_or("") != namespace {
            continue;
        }
        let selector = match &cfg.spec.node_selector {
            None => Selector::everything(),
            Some(sel) => {
                match Selector::parse(sel, &FieldPath::new("spec").child("nodeSelector")) {
                    Ok(s) => s,
                    Err(errors) => {
                        out.errors.push(SelectError {
                            object: object_ref(&cfg.metadata),
                            errors,
                        });
                        continue;
                    }
                }
            }
        };
        if selector.matches(node_labels) && !crate::stub::is_stub(cfg) {
            out.selected.push(cfg);
        }
    }
    out.selected.sort_by_key(|c| object_ref(&c.metadata));
    out.errors.sort_by(|a, b| a.object.cmp(&b.object));
    out
}
