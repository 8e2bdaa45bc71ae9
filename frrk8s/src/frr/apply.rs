//! Applying a rendered configuration to a live FRR.
//!
//! [`Applier::apply`] computes one batch from what it last applied (or, the first time and
//! after an FRR restart, from `show running-config`) to the desired tree, checks it with
//! `vtysh -C` (syntax; nothing is applied when it fails), applies it with one `vtysh -f`
//! (FRR batches a `-f` file; stdin and `-c` commit line by line and stdin even exits 0
//! on errors), then reads `show running-config` back and compares it with the desired
//! tree (FRR's own default lines normalised away). A mismatch is repaired once with the
//! remaining diff. When a daemon rejects a command, the running config is rolled back to
//! the last good configuration, which stays in force; the failure is kept for status.
//!
//! Measured on FRR 8.4.4 (see `benches/apply.rs`): `vtysh -f` of a one-line delta costs
//! ~40 ms, the same as `-c` groups (~46 ms) or stdin (~40 ms), so every delta goes through
//! `-f`. New prefixes reach the peer without waiting for `bgp route-map delay-timer`
//! because prefix-list entries and route-maps are sent before the `network` lines that
//! need them. The rendered configuration sets `bgp route-map delay-timer 1` (see
//! `crate::render`; `0` would stop route-map re-evaluation altogether, frr-lab.md
//! pitfall 3), so policy-only changes take effect after 1 s.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::FrrConfig;
use super::control::{token_shows_down, ControlError, FrrControl};
use super::diff::{diff, is_unmanaged, normalize_with, Delta, FrrDefaults};
use super::originated::{withdrawn, Originated};

/// Knobs of the applier.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Read `show running-config` back after applying and repair differences (default on).
    pub verify: bool,
    /// Check the batch's syntax with `vtysh -C` before applying it (default on).
    pub dry_run: bool,
    /// Skip the check for batches of fewer commands than this (default 20): the check
    /// costs a vtysh run (~80 ms at 10,000 prefixes), and a rejected small batch is rolled
    /// back just the same; what the check protects against is a half-applied large batch.
    pub dry_run_min_commands: usize,
    /// Send batches of fewer commands than this over the daemons' sockets when the control
    /// can ([`FrrControl::apply_direct`]; default 20): ~1 ms instead of a `vtysh` process's
    /// 30-70 ms. Larger batches go through `vtysh -f`, which lets the daemons commit once.
    pub direct_max_commands: usize,
    /// When to audit the neighbors' adj-out after a removal of `network` lines (see
    /// [`super::audit`]; default [`super::audit::ROUNDS`], empty disables).
    pub audit_rounds: Vec<Duration>,
    /// A batch that went over the daemons' sockets, every line accepted, is verified
    /// later ([`Applier::verify_pending`]) when the last verification is more recent than
    /// this (default 1 s), or than [`VERIFY_COST_FACTOR`] times what the last verification
    /// took: the read-back costs a `show running-config` (~370 ms at 4,000 prefixes), and a
    /// burst of Services would otherwise read FRR's whole configuration back after every one
    /// of them. `None`: every apply is verified at once.
    pub defer_direct_verification: Option<Duration>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            verify: true,
            dry_run: true,
            dry_run_min_commands: 20,
            direct_max_commands: 20,
            audit_rounds: super::audit::ROUNDS.to_vec(),
            defer_direct_verification: Some(Duration::from_secs(1)),
        }
    }
}

/// What one apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Configuration commands sent (0 for a no-op).
    pub commands: usize,
    /// The whole config was sent again (first apply after an FRR restart).
    pub full_reapply: bool,
    /// Verification found differences and sent a repair batch.
    pub repaired: bool,
    /// Dry-run check time.
    pub check_time: Duration,
    /// Time of the `vtysh -f` call(s).
    pub apply_time: Duration,
    /// The batch went over the daemons' sockets, not through `vtysh -f`.
    pub direct: bool,
    /// Time spent reading back and comparing.
    pub verify_time: Duration,
    /// The read-back was left for later ([`ApplyOptions::defer_direct_verification`]).
    pub verify_deferred: bool,
    /// Prefixes whose `network` lines this apply removed (for [`super::audit`]).
    pub withdrawn: BTreeSet<Originated>,
}

/// Why an apply failed. The last good configuration stays in force.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("configuration rejected ({stage}): {output}")]
    Rejected {
        /// `check` (nothing applied) or `apply` (rolled back to the last good config).
        stage: &'static str,
        output: String,
    },
    #[error("running configuration differs from the desired one after repair: {remaining:?}")]
    Mismatch { remaining: Vec<String> },
    #[error(transparent)]
    Frr(#[from] ControlError),
}

/// Applies configurations to one FRR and remembers the last good one.
#[derive(Debug)]
pub struct Applier<C: FrrControl> {
    control: C,
    options: ApplyOptions,
    /// What we believe FRR runs (None: unknown, read the running config). Shared with
    /// `last_good`, which is the same configuration almost always: at 10,000 prefixes a
    /// tree is about a megabyte, and a copy per apply was measurable.
    applied: Option<Arc<FrrConfig>>,
    last_good: Option<(String, Arc<FrrConfig>)>,
    last_error: Option<ApplyError>,
    token: Option<String>,
    /// The running config the last apply's verification read (see [`Applier::take_running`]).
    verified_running: Option<String>,
    /// The running FRR's version-dependent defaults, from the last running config read.
    defaults: FrrDefaults,
    /// When an apply was last verified, and how long that took.
    last_verified: Option<(Instant, Duration)>,
    /// An apply's verification was deferred and has not happened yet.
    unverified: bool,
}

impl<C: FrrControl> Applier<C> {
    pub fn new(control: C) -> Self {
        Self::with_options(control, ApplyOptions::default())
    }

    pub fn with_options(control: C, options: ApplyOptions) -> Self {
        Applier {
            control,
            options,
            applied: None,
            last_good: None,
            last_error: None,
            token: None,
            verified_running: None,
            defaults: FrrDefaults::default(),
            last_verified: None,
            unverified: false,
        }
    }

    /// Reads and parses FRR's running config, and learns the running FRR's defaults from
    /// it (an FRR upgraded under us changes them).
    fn read_running(&mut self) -> Result<(String, FrrConfig), ApplyError> {
        let text = self.control.running_config()?;
        let running = FrrConfig::parse(&text);
        self.defaults = FrrDefaults::of(&running);
        Ok((text, running))
    }

    /// `running` and `desired` without the lines FRR leaves out as defaults, diffed: the
    /// batch that takes the one to the other.
    fn remaining(&self, running: &FrrConfig, desired: &FrrConfig) -> Delta {
        diff(
            &normalize_with(running, self.defaults),
            &normalize_with(desired, self.defaults),
        )
    }

    pub fn control(&self) -> &C {
        &self.control
    }

    pub fn options_mut(&mut self) -> &mut ApplyOptions {
        &mut self.options
    }

    /// The last configuration text applied successfully.
    /// The configuration FRR runs as far as the applier knows (`None`: unknown until the
    /// next apply reads it back).
    pub fn applied(&self) -> Option<&FrrConfig> {
        self.applied.as_deref()
    }

    pub fn last_good(&self) -> Option<&str> {
        self.last_good.as_ref().map(|(t, _)| t.as_str())
    }

    /// The error of the last apply, `None` after a success.
    pub fn last_error(&self) -> Option<&ApplyError> {
        self.last_error.as_ref()
    }

    /// Forget what was applied: the next apply diffs against the running config.
    pub fn invalidate(&mut self) {
        self.applied = None;
    }

    /// Applies `text` (a complete rendered configuration).
    pub fn apply(&mut self, text: &str) -> Result<ApplyReport, ApplyError> {
        let desired = Arc::new(FrrConfig::parse(text));
        // What FRR originated before: the applied tree, or after an FRR restart the last
        // good one (what it is about to originate again).
        let gone = self
            .applied
            .as_deref()
            .or(self.last_good.as_ref().map(|(_, c)| &**c))
            .map(|before| withdrawn(before, &desired))
            .unwrap_or_default();
        self.verified_running = None;
        let mut r = self.converge(&desired);
        match &mut r {
            Ok(report) => {
                report.withdrawn = gone;
                self.last_good = Some((text.to_string(), desired));
                self.last_error = None;
            }
            Err(e) => self.last_error = Some(e.clone()),
        }
        r
    }

    /// When FRR restarted since the last apply (its processes changed, or, without PID
    /// files, its running config no longer matches), applies the last good configuration
    /// again. Returns `None` when nothing had to be done.
    pub fn reapply_if_restarted(&mut self) -> Result<Option<ApplyReport>, ApplyError> {
        let Some(last) = self.last_good.as_ref().map(|(_, c)| Arc::clone(c)) else {
            return Ok(None);
        };
        let token = self.control.instance_token();
        if token.is_some() && token == self.token {
            return Ok(None);
        }
        if let Some(t) = token.as_deref().filter(|t| token_shows_down(t)) {
            // lines for a daemon that does not serve would be lost (and then "repaired"):
            // the next check, once it is back, re-applies
            tracing::debug!(
                daemons = t,
                "an FRR daemon is not serving; waiting for it before re-applying"
            );
            return Ok(None);
        }
        if token.is_none() {
            // no PID files: compare the running config
            let (_, running) = self.read_running()?;
            if self.remaining(&running, &last).is_empty() {
                return Ok(None);
            }
            self.applied = None;
        }
        let r = self.converge(&last);
        if let Err(e) = &r {
            self.last_error = Some(e.clone());
        }
        r.map(Some)
    }

    fn converge(&mut self, desired: &Arc<FrrConfig>) -> Result<ApplyReport, ApplyError> {
        let mut report = ApplyReport::default();
        let token = self.control.instance_token();
        let restarted = self.token.is_some() && token.is_some() && token != self.token;
        let batch: Delta = if restarted {
            // every daemon may have lost its part: send everything (idempotent for the
            // daemons that kept it); verification removes leftovers
            report.full_reapply = true;
            full_batch(desired)
        } else {
            let read = match &self.applied {
                Some(_) => None,
                None => {
                    let (_, running) = self.read_running()?;
                    Some(normalize_with(&running, self.defaults))
                }
            };
            let baseline = (self.applied.as_deref()).or(read.as_ref());
            diff(baseline.expect("applied or read"), desired)
        };
        if batch.is_empty() {
            self.applied = Some(desired.clone());
            self.token = token;
            return Ok(report);
        }
        let text = batch.to_text();
        report.commands = batch.changes;
        if self.options.dry_run && batch.changes >= self.options.dry_run_min_commands {
            let t = Instant::now();
            let r = self.control.check(&text);
            report.check_time = t.elapsed();
            if let Err(e) = r {
                return Err(match e {
                    ControlError::Rejected(output) => ApplyError::Rejected {
                        stage: "check",
                        output,
                    },
                    other => other.into(),
                });
            }
        }
        let t = Instant::now();
        let r = self.send(&text, batch.changes, &mut report);
        report.apply_time = t.elapsed();
        match r {
            Ok(()) => {}
            Err(ControlError::Rejected(output)) => {
                self.rollback();
                return Err(ApplyError::Rejected {
                    stage: "apply",
                    output,
                });
            }
            Err(e) => {
                self.applied = None;
                return Err(e.into());
            }
        }
        self.applied = Some(desired.clone());
        self.token = self.control.instance_token();
        let recently_verified = |within: Duration| {
            (self.last_verified)
                .is_some_and(|(at, cost)| at.elapsed() < verify_window(within, cost))
        };
        let defer = !restarted
            && report.direct
            && (self.options.defer_direct_verification).is_some_and(recently_verified);
        if defer && self.options.verify {
            self.unverified = true;
            report.verify_deferred = true;
        } else if self.options.verify || restarted {
            self.verify_and_repair(desired, &mut report)?;
        }
        Ok(report)
    }

    /// Reads the running configuration back and repairs what differs from `desired`
    /// (once; a difference left after the repair is a mismatch).
    fn verify_and_repair(
        &mut self,
        desired: &FrrConfig,
        report: &mut ApplyReport,
    ) -> Result<(), ApplyError> {
        let t = Instant::now();
        self.unverified = false;
        let remaining = self.verify(desired);
        // what a verification costs grows with the configuration (the whole running
        // config is read and parsed): the window that defers the next one grows with it
        self.last_verified = Some((t, t.elapsed()));
        let remaining = remaining?;
        if !remaining.is_empty() {
            // worth an operator's eye: what FRR did not take as sent (or changed since)
            tracing::warn!(differs = ?remaining.sample(SAMPLE_LINES), changes = remaining.changes,
                "{LOG_REPAIRING}");
            report.repaired = true;
            report.commands += remaining.changes;
            // a repair that FRR rejects is reported as a mismatch below
            let _ = self.control.apply(&remaining.to_text());
            let again = self.verify(desired)?;
            if !again.is_empty() {
                self.applied = None;
                return Err(ApplyError::Mismatch {
                    remaining: again.sample(SAMPLE_LINES),
                });
            }
        }
        report.verify_time = t.elapsed();
        Ok(())
    }

    /// Whether an apply's verification was deferred and is still to be done.
    pub fn verification_pending(&self) -> bool {
        self.unverified
    }

    /// The verification deferred by earlier applies ([`ApplyOptions::defer_direct_verification`]),
    /// against what was applied since; `None` when none is pending. The read is kept for
    /// [`Applier::take_running`].
    pub fn verify_pending(&mut self) -> Option<Result<ApplyReport, ApplyError>> {
        if !std::mem::take(&mut self.unverified) {
            return None;
        }
        // nothing known to compare with (a failure since): the next apply reads FRR
        let desired = self.applied.clone()?;
        self.verified_running = None;
        let mut report = ApplyReport::default();
        let r = self
            .verify_and_repair(&desired, &mut report)
            .map(|()| report);
        if let Err(e) = &r {
            self.last_error = Some(e.clone());
        }
        Some(r)
    }

    /// Sends a batch: over the daemons' sockets when it is small and the control can, else
    /// (and when the sockets broke halfway: the batch's lines are idempotent or verified
    /// after) with `vtysh -f`.
    fn send(
        &self,
        text: &str,
        changes: usize,
        report: &mut ApplyReport,
    ) -> Result<(), ControlError> {
        if changes < self.options.direct_max_commands {
            match self.control.apply_direct(text) {
                Some(Ok(())) => {
                    report.direct = true;
                    return Ok(());
                }
                Some(Err(ControlError::Unavailable(e))) => {
                    tracing::debug!(error = %e, "the daemons' sockets broke; the batch goes through vtysh");
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        self.control.apply(text)
    }

    /// The batch that would take the running config to `desired` (empty when equal).
    fn verify(&mut self, desired: &FrrConfig) -> Result<Delta, ApplyError> {
        let (text, running) = self.read_running()?;
        self.verified_running = Some(text);
        Ok(self.remaining(&running, desired))
    }

    /// The running config as the last [`Applier::apply`] verified it (after its repair, if
    /// any), once: the caller that reports FRR's running config after an apply need not ask
    /// vtysh again (a `show running-config` costs 30-140 ms, during which the next change
    /// waits). `None` when that apply did not verify (nothing to send, verification off, a
    /// failure).
    pub fn take_running(&mut self) -> Option<String> {
        self.verified_running.take()
    }

    /// After a rejected batch: bring FRR back to the last good config (best effort).
    fn rollback(&mut self) {
        self.applied = None;
        let Some((_, good)) = &self.last_good else {
            return;
        };
        let good = Arc::clone(good);
        let Ok((_, running)) = self.read_running() else {
            return;
        };
        let back = self.remaining(&running, &good);
        if back.is_empty() || self.control.apply(&back.to_text()).is_ok() {
            self.applied = Some(good);
        }
    }
}

/// During a burst, a deferred verification waits at least this many times as long as the
/// last one took, so reading FRR's configuration back costs at most about a tenth of the
/// time however large it grows (10,000 prefixes: ~250 ms per read, so every ~2.5 s instead
/// of every second).
pub const VERIFY_COST_FACTOR: u32 = 10;

/// How long after a verification that took `cost` a direct batch's verification is still
/// deferred: `base` ([`ApplyOptions::defer_direct_verification`]), longer when reading the
/// configuration back is expensive. A zero `base` defers nothing.
fn verify_window(base: Duration, cost: Duration) -> Duration {
    if base.is_zero() {
        return base;
    }
    base.max(cost.saturating_mul(VERIFY_COST_FACTOR))
}

/// How many lines of a differing batch a log line or an error shows.
const SAMPLE_LINES: usize = 20;

/// The warning logged before every repair (tests that must see none look for it).
pub const LOG_REPAIRING: &str =
    "FRR's running configuration differs from the applied one; repairing";

/// Every line of `cfg` as one batch (unmanaged top-level lines left out).
fn full_batch(cfg: &FrrConfig) -> Delta {
    let mut c = cfg.clone();
    c.root.lines.retain(|l| !is_unmanaged(l));
    let text = c.to_text();
    Delta {
        changes: c.size(),
        lines: text.lines().map(str::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frr::control::redact;
    use std::cell::RefCell;

    /// A fake FRR: keeps a config tree, applies batches by re-parsing them onto it.
    #[derive(Default)]
    struct Fake {
        running: RefCell<String>,
        applied: RefCell<Vec<String>>,
        reject_containing: Option<&'static str>,
        token: RefCell<Option<String>>,
        /// What the running config becomes after an accepted batch (unchanged if `None`).
        after_apply: Option<&'static str>,
        /// The answer of the fast path (`None`: this control has none).
        direct: Option<Result<(), ControlError>>,
        direct_batches: RefCell<Vec<String>>,
        /// What the running config becomes after an accepted direct batch (unchanged if
        /// `None`).
        after_direct: Option<&'static str>,
    }

    impl FrrControl for &Fake {
        fn apply(&self, batch: &str) -> Result<(), ControlError> {
            self.applied.borrow_mut().push(batch.to_string());
            if let Some(bad) = self.reject_containing {
                if batch.contains(bad) {
                    return Err(ControlError::Rejected(format!("line 1: % bad: {bad}")));
                }
            }
            if let Some(after) = self.after_apply {
                *self.running.borrow_mut() = after.to_string();
            }
            Ok(())
        }
        fn apply_direct(&self, batch: &str) -> Option<Result<(), ControlError>> {
            self.direct_batches.borrow_mut().push(batch.to_string());
            if let (Some(Ok(())), Some(after)) = (&self.direct, self.after_direct) {
                *self.running.borrow_mut() = after.to_string();
            }
            self.direct.clone()
        }

        fn check(&self, batch: &str) -> Result<(), ControlError> {
            if batch.contains("bogus") {
                return Err(ControlError::Rejected("% Unknown command: bogus".into()));
            }
            Ok(())
        }
        fn running_config(&self) -> Result<String, ControlError> {
            Ok(self.running.borrow().clone())
        }
        fn show_json(&self, _: &str) -> Result<serde_json::Value, ControlError> {
            Ok(serde_json::json!({}))
        }
        fn instance_token(&self) -> Option<String> {
            self.token.borrow().clone()
        }
    }

    const A: &str = "router bgp 64512\n neighbor 192.0.2.1 remote-as 64513\nexit\n";
    const B: &str = "router bgp 64512\n neighbor 192.0.2.1 remote-as 64513\n \
address-family ipv4 unicast\n  network 198.18.0.1/32\n exit-address-family\nexit\n";

    fn quiet() -> ApplyOptions {
        ApplyOptions {
            verify: false,
            dry_run: true,
            dry_run_min_commands: 0,
            ..ApplyOptions::default()
        }
    }

    #[test]
    fn first_apply_diffs_against_running_then_noop_sends_nothing() {
        let fake = Fake::default();
        let mut a = Applier::with_options(&fake, quiet());
        let r = a.apply(A).unwrap();
        assert_eq!(r.commands, 2);
        let r = a.apply(A).unwrap();
        assert_eq!(r.commands, 0);
        assert_eq!(fake.applied.borrow().len(), 1);
        let r = a.apply(B).unwrap();
        assert_eq!(r.commands, 1);
        assert_eq!(a.last_good(), Some(B));
    }

    /// Small batches take the fast path when the control has one; a broken fast path falls
    /// back to vtysh with the same batch; a refusal there is the apply's refusal; a large
    /// batch never tries it.
    #[test]
    fn small_batches_go_the_fast_way_and_fall_back_to_vtysh() {
        let opts = || ApplyOptions {
            direct_max_commands: 3,
            ..quiet()
        };
        let fake = Fake {
            direct: Some(Ok(())),
            ..Default::default()
        };
        let mut a = Applier::with_options(&fake, opts());
        let r = a.apply(B).unwrap();
        assert!(!r.direct, "3 commands: vtysh");
        assert_eq!(fake.direct_batches.borrow().len(), 0);
        let small = B.replace("198.18.0.1/32", "198.18.0.2/32");
        let r = a.apply(&small).unwrap();
        assert!(r.direct, "{r:?}");
        assert_eq!(
            fake.applied.borrow().len(),
            1,
            "vtysh saw only the first batch"
        );

        let broken = Fake {
            direct: Some(Err(ControlError::Unavailable("bgpd: gone".into()))),
            ..Default::default()
        };
        let mut a = Applier::with_options(&broken, opts());
        a.apply(B).unwrap();
        let r = a.apply(&small).unwrap();
        assert!(!r.direct);
        assert_eq!(
            broken.direct_batches.borrow().last(),
            broken.applied.borrow().last(),
            "the same batch went through vtysh"
        );

        let refusing = Fake {
            direct: Some(Err(ControlError::Rejected("network: % bad".into()))),
            ..Default::default()
        };
        let mut a = Applier::with_options(&refusing, opts());
        a.apply(B).unwrap();
        let err = a.apply(&small).unwrap_err();
        assert!(
            matches!(&err, ApplyError::Rejected { stage: "apply", output } if output.contains("% bad")),
            "{err:?}"
        );
    }

    /// A direct batch within `defer_direct_verification` of the last verification is
    /// verified later, by `verify_pending`: what the daemons took is confirmed and handed
    /// out; what they silently left out is repaired once, then reported.
    #[test]
    fn direct_batches_right_after_a_verification_are_verified_later() {
        const SMALL: &str = "router bgp 64512\n neighbor 192.0.2.1 remote-as 64513\n \
address-family ipv4 unicast\n  network 198.18.0.2/32\n exit-address-family\nexit\n";
        let opts = |defer: Option<Duration>| ApplyOptions {
            verify: true,
            dry_run: false,
            direct_max_commands: 3,
            defer_direct_verification: defer,
            ..ApplyOptions::default()
        };
        let hour = Some(Duration::from_secs(3600));
        let fake = Fake {
            direct: Some(Ok(())),
            after_apply: Some(B),
            after_direct: Some(SMALL),
            ..Default::default()
        };
        let mut a = Applier::with_options(&fake, opts(hour));
        let r = a.apply(B).unwrap();
        assert!(
            !r.direct && !r.verify_deferred,
            "vtysh, verified at once: {r:?}"
        );
        assert_eq!(a.take_running().as_deref(), Some(B));
        assert!(a.verify_pending().is_none(), "nothing pending");
        let r = a.apply(SMALL).unwrap();
        assert!(r.direct && r.verify_deferred, "{r:?}");
        assert!(a.verification_pending());
        assert_eq!(a.take_running(), None, "nothing read yet");
        let v = a.verify_pending().expect("pending").unwrap();
        assert!(!v.repaired, "{v:?}");
        assert_eq!(a.take_running().as_deref(), Some(SMALL));
        assert!(a.verify_pending().is_none(), "done once");

        // the daemons said yes and kept nothing: the deferred verification repairs through
        // vtysh (which, here, does not take either) and reports the difference
        let ignoring = Fake {
            direct: Some(Ok(())),
            after_apply: Some(B),
            ..Default::default()
        };
        let mut a = Applier::with_options(&ignoring, opts(hour));
        a.apply(B).unwrap();
        assert!(a.apply(SMALL).unwrap().verify_deferred);
        let err = a.verify_pending().expect("pending").unwrap_err();
        assert!(matches!(err, ApplyError::Mismatch { .. }), "{err:?}");
        assert_eq!(ignoring.applied.borrow().len(), 2, "B, then one repair");
        assert!(a.applied().is_none(), "the next apply reads FRR first");

        // without deferral (or with the last verification too long ago): verified at once
        for defer in [None, Some(Duration::ZERO)] {
            let fake = Fake {
                direct: Some(Ok(())),
                after_apply: Some(B),
                after_direct: Some(SMALL),
                ..Default::default()
            };
            let mut a = Applier::with_options(&fake, opts(defer));
            a.apply(B).unwrap();
            let r = a.apply(SMALL).unwrap();
            assert!(r.direct && !r.verify_deferred, "{defer:?}: {r:?}");
            assert_eq!(a.take_running().as_deref(), Some(SMALL));
        }
    }

    #[test]
    fn the_verified_running_config_is_handed_out_once_per_apply() {
        let fake = Fake {
            after_apply: Some(A),
            ..Default::default()
        };
        let verify = ApplyOptions {
            verify: true,
            dry_run: false,
            ..ApplyOptions::default()
        };
        let mut a = Applier::with_options(&fake, verify);
        a.apply(A).unwrap();
        assert_eq!(a.take_running().as_deref(), Some(A));
        assert_eq!(a.take_running(), None, "handed out once");
        // nothing to send: nothing verified, nothing to hand out
        a.apply(A).unwrap();
        assert_eq!(a.take_running(), None);
        // without verification there is no read to reuse
        let fake = Fake {
            after_apply: Some(A),
            ..Default::default()
        };
        let mut a = Applier::with_options(&fake, quiet());
        a.apply(A).unwrap();
        assert_eq!(a.take_running(), None);
    }

    #[test]
    fn syntax_error_applies_nothing_and_keeps_last_good() {
        let fake = Fake::default();
        let mut a = Applier::with_options(&fake, quiet());
        a.apply(A).unwrap();
        let bad = format!("{A}bogus line\n");
        let e = a.apply(&bad).unwrap_err();
        assert!(
            matches!(e, ApplyError::Rejected { stage: "check", .. }),
            "{e}"
        );
        assert_eq!(a.last_good(), Some(A));
        assert_eq!(fake.applied.borrow().len(), 1);
        assert!(a.last_error().is_some());
    }

    #[test]
    fn daemon_rejection_rolls_back_to_last_good() {
        let fake = Fake {
            reject_containing: Some("198.18.0.1"),
            ..Default::default()
        };
        let mut a = Applier::with_options(&fake, quiet());
        a.apply(A).unwrap();
        // pretend the failed batch half-applied: running shows B
        *fake.running.borrow_mut() = B.to_string();
        let e = a.apply(B).unwrap_err();
        assert!(matches!(e, ApplyError::Rejected { stage: "apply", .. }));
        let last = fake.applied.borrow().last().unwrap().clone();
        assert!(last.contains("no network 198.18.0.1/32"), "{last}");
        assert_eq!(a.last_good(), Some(A));
    }

    #[test]
    fn restart_triggers_full_reapply() {
        let fake = Fake::default();
        *fake.token.borrow_mut() = Some("bgpd:1".into());
        let mut a = Applier::with_options(&fake, quiet());
        a.apply(B).unwrap();
        *fake.running.borrow_mut() = B.to_string();
        assert_eq!(a.reapply_if_restarted().unwrap(), None);
        *fake.token.borrow_mut() = Some("bgpd:2".into());
        // (the fake's running config already shows B, as if verification saw the reapply)
        let r = a.reapply_if_restarted().unwrap().unwrap();
        assert!(r.full_reapply);
        let sent = fake.applied.borrow()[1].clone();
        assert!(sent.contains("network 198.18.0.1/32") && sent.contains("remote-as"));
        assert_eq!(a.reapply_if_restarted().unwrap(), None);
    }

    #[test]
    fn a_restart_is_reapplied_once_every_daemon_serves_again() {
        let fake = Fake::default();
        *fake.token.borrow_mut() = Some("zebra:7,bgpd:1".into());
        let mut a = Applier::with_options(&fake, quiet());
        a.apply(B).unwrap();
        let sends = fake.applied.borrow().len();
        // bgpd crashed, then its new process has not opened its socket yet: nothing is sent
        for down in ["zebra:7,bgpd:down", "zebra:7,bgpd:down"] {
            *fake.token.borrow_mut() = Some(down.into());
            assert_eq!(a.reapply_if_restarted().unwrap(), None, "{down}");
        }
        assert_eq!(fake.applied.borrow().len(), sends);
        *fake.running.borrow_mut() = B.to_string();
        *fake.token.borrow_mut() = Some("zebra:7,bgpd:2".into());
        let r = a.reapply_if_restarted().unwrap().unwrap();
        assert!(r.full_reapply);
        assert_eq!(fake.applied.borrow().len(), sends + 1);
        assert!(token_shows_down("bgpd:down") && !token_shows_down("bgpd:12,downd:3"));
    }

    #[test]
    fn the_verification_window_grows_with_what_a_verification_costs() {
        let base = Duration::from_secs(1);
        assert_eq!(verify_window(base, Duration::ZERO), base);
        assert_eq!(verify_window(base, Duration::from_millis(50)), base);
        assert_eq!(
            verify_window(base, Duration::from_millis(250)),
            Duration::from_millis(2500)
        );
        assert_eq!(
            verify_window(Duration::ZERO, Duration::ZERO),
            Duration::ZERO
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact(" neighbor 192.0.2.1 password s3cret\nok"),
            " neighbor 192.0.2.1 password <retracted>\nok"
        );
    }
}
