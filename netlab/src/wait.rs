use std::time::{Duration, Instant};

use crate::error::{NetlabError, Result};

/// How often [`wait_until`] polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `cond` every 20 ms until it returns `true`; returns the time it took, or a
/// timeout error naming `what`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<Duration> {
    wait_until_some(what, timeout, || cond().then_some(())).map(|((), d)| d)
}

/// Polls `f` every 20 ms until it returns `Some`; returns the value and the time it took.
pub fn wait_until_some<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<(T, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok((v, start.elapsed()));
        }
        if start.elapsed() >= timeout {
            return Err(NetlabError::Timeout {
                what: what.to_string(),
                after: timeout,
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_once_condition_holds() {
        let mut n = 0;
        let d = wait_until("n reaches 3", Duration::from_secs(5), || {
            n += 1;
            n >= 3
        })
        .unwrap();
        assert_eq!(n, 3);
        assert!(d >= 2 * POLL_INTERVAL);
    }

    #[test]
    fn times_out_with_subject() {
        let err = wait_until("never", Duration::from_millis(50), || false).unwrap_err();
        assert!(err.to_string().contains("never"));
    }

    #[test]
    fn some_value_is_returned() {
        let (v, _) = wait_until_some("value", Duration::from_secs(1), || Some(7)).unwrap();
        assert_eq!(v, 7);
    }
}
