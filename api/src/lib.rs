//! MetalLB (`metallb.io`) and frr-k8s (`frrk8s.metallb.io`) API types.
//!
//! Wire-compatible with upstream: same groups, versions, kinds, JSON field names (including the
//! odd ones), optionality and defaults, so existing manifests decode unchanged. Each kind has
//! one validation entry point that returns every problem with its field path; cross-object
//! rules (pool overlap, peer compatibility) live next to the kinds they concern.

pub mod community;
pub mod crds;
pub mod decode;
pub mod duration;
pub mod frrk8s;
pub mod metallb;
pub mod selector;
pub mod validation;
pub mod versions;
pub mod webhooks;

pub use duration::Duration;
pub use validation::{FieldError, FieldErrors, FieldPath, ObjectError};
