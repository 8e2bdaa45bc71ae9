//! What every writer of the three binaries needs, written once: the retry backoff, the
//! write parameters under the writer's field manager, and the API answers a writer
//! handles rather than reports (conflict, not found, already exists).
//!
//! Each writer picks its backoff's bounds: the controller's allocation writes back off to a
//! minute (a refused write usually needs a human), the speaker's FRRConfiguration writer
//! only to a few seconds (a lost announcement costs traffic), the frr-k8s status writers in
//! between.

use std::time::Duration;

use kube::api::{DeleteParams, PatchParams, PostParams};

/// Exponential backoff for failed writes: `min`, doubling up to `max`; [`Backoff::reset`]
/// after a success. Pure (no clock): the caller sleeps on tokio's clock, so retries can be
/// tested with a paused one.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub const fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            failures: 0,
        }
    }

    /// One more failure: how long to wait before the next try.
    pub fn failed(&mut self) -> Duration {
        let factor = 1u32 << self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The last write succeeded: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Create, patch and delete parameters of a writer, under its field manager (so that
/// `kubectl get -o yaml --show-managed-fields` tells who wrote what).
#[derive(Clone, Debug)]
pub struct WriteParams {
    pub manager: String,
    pub post: PostParams,
    pub patch: PatchParams,
    pub delete: DeleteParams,
}

impl WriteParams {
    pub fn new(field_manager: &str) -> Self {
        WriteParams {
            manager: field_manager.into(),
            post: PostParams {
                field_manager: Some(field_manager.into()),
                ..Default::default()
            },
            patch: PatchParams {
                field_manager: Some(field_manager.into()),
                ..Default::default()
            },
            delete: DeleteParams::default(),
        }
    }

    /// Server-side apply under our field manager, taking over fields others set.
    pub fn apply(&self) -> PatchParams {
        PatchParams::apply(&self.manager).force()
    }
}

/// The API answers a writer expects, on any `kube::Error`.
pub trait ApiErrorExt {
    /// 409 Conflict: the object changed since it was read (resourceVersion mismatch).
    fn is_conflict(&self) -> bool;
    /// 409 AlreadyExists: a create found the object there.
    fn is_already_exists(&self) -> bool;
    /// 404: the object (or its namespace) is gone.
    fn is_not_found(&self) -> bool;
}

impl ApiErrorExt for kube::Error {
    fn is_conflict(&self) -> bool {
        matches!(self, kube::Error::Api(s) if s.is_conflict())
    }

    fn is_already_exists(&self) -> bool {
        matches!(self, kube::Error::Api(s) if s.is_already_exists())
    }

    fn is_not_found(&self) -> bool {
        matches!(self, kube::Error::Api(s) if s.is_not_found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let waits: Vec<u64> = (0..8).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.failures(), 8);
        b.reset();
        assert_eq!(b.failed(), Duration::from_millis(100));
        // many failures never overflow
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        for _ in 0..100 {
            assert!(b.failed() <= Duration::from_secs(60));
        }
    }

    #[test]
    fn api_answers_are_told_apart() {
        let status = |code: u16, reason: &str| {
            kube::Error::Api(
                kube::core::Status::failure("x", reason)
                    .with_code(code)
                    .boxed(),
            )
        };
        assert!(status(409, "Conflict").is_conflict());
        assert!(!status(409, "Conflict").is_already_exists());
        assert!(status(409, "AlreadyExists").is_already_exists());
        assert!(status(404, "NotFound").is_not_found());
        assert!(!status(500, "InternalError").is_not_found());
        let params = WriteParams::new("metallb-speaker");
        assert_eq!(
            params.post.field_manager.as_deref(),
            Some("metallb-speaker")
        );
        assert_eq!(
            params.patch.field_manager.as_deref(),
            Some("metallb-speaker")
        );
    }
}
