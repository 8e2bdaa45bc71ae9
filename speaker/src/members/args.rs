//! The membership's command-line options, with upstream's environment names (the chart and
//! upstream's manifests set `METALLB_ML_BIND_ADDR` from the Pod IP and mount the
//! memberlist Secret).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::agent::Settings;
use super::auth::Key;
use super::{Timing, DEFAULT_PORT};

#[derive(Debug, Clone, clap::Args)]
pub struct MembersArgs {
    /// Run the membership on this address (the speaker Pod's IP): L2 fails over in about
    /// a second when a node or its speaker dies abruptly. Unset: no membership; liveness
    /// comes from the Node and speaker Pod status alone (minutes for an abrupt loss).
    #[arg(long, env = "METALLB_ML_BIND_ADDR")]
    pub ml_bind_addr: Option<IpAddr>,
    /// The membership's UDP port, the same on every node.
    #[arg(long, env = "METALLB_ML_BIND_PORT", default_value_t = DEFAULT_PORT)]
    pub ml_bind_port: u16,
    /// The shared key that authenticates membership packets: a file, or a directory with
    /// a `secretkey` file (upstream's memberlist Secret mounted there).
    #[arg(long, env = "METALLB_ML_SECRET_KEY_PATH")]
    pub ml_secret_key_path: Option<PathBuf>,
    /// The shared key itself (upstream's older manifests set it from the Secret); prefer
    /// the file.
    #[arg(long, env = "METALLB_ML_SECRET_KEY", hide_env_values = true)]
    pub ml_secret_key: Option<String>,
    /// Probe period in milliseconds: a crash is detected within about twice this plus the
    /// suspicion time.
    #[arg(long, env = "METALLB_ML_PROBE_INTERVAL_MS", default_value_t = 300)]
    pub ml_probe_interval_ms: u64,
    /// How long a suspected speaker has to refute before it is declared down, in
    /// milliseconds.
    #[arg(long, env = "METALLB_ML_SUSPICION_MS", default_value_t = 900)]
    pub ml_suspicion_ms: u64,
}

impl MembersArgs {
    /// The agent's settings; `None` without `--ml-bind-addr`.
    pub fn settings(&self, node: &str, netns: Option<PathBuf>) -> anyhow::Result<Option<Settings>> {
        let Some(ip) = self.ml_bind_addr else {
            return Ok(None);
        };
        anyhow::ensure!(
            self.ml_probe_interval_ms >= 50,
            "--ml-probe-interval-ms must be at least 50"
        );
        let key = match (&self.ml_secret_key_path, &self.ml_secret_key) {
            (Some(path), _) => {
                let path = match path.is_dir() {
                    true => path.join("secretkey"),
                    false => path.clone(),
                };
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading the membership key {}", path.display()))?;
                Key::new(&text).with_context(|| {
                    format!("the membership key file {} is empty", path.display())
                })?
            }
            (None, Some(k)) => Key::new(k).context("--ml-secret-key is empty")?,
            (None, None) => Key::none(),
        };
        let mut s = Settings::new(node, SocketAddr::new(ip, self.ml_bind_port));
        s.key = key;
        s.netns = netns;
        s.timing = Timing {
            probe_period: Duration::from_millis(self.ml_probe_interval_ms),
            suspicion: Duration::from_millis(self.ml_suspicion_ms),
        };
        Ok(Some(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        m: MembersArgs,
    }

    #[test]
    fn membership_is_off_without_a_bind_address_and_reads_its_key_file() {
        let t = T::parse_from(["t"]);
        assert!(t.m.settings("n1", None).unwrap().is_none());

        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("secretkey");
        std::fs::write(&key, "c2VjcmV0\n").unwrap();
        let t = T::parse_from([
            "t",
            "--ml-bind-addr",
            "192.0.2.7",
            "--ml-secret-key-path",
            key.to_str().unwrap(),
        ]);
        let s = t.m.settings("n1", None).unwrap().unwrap();
        assert_eq!(s.bind, "192.0.2.7:7946".parse().unwrap());
        assert!(s.key.is_set());
        assert_eq!(s.timing, Timing::default());

        // the Secret mounted as a directory
        let t = T::parse_from([
            "t",
            "--ml-bind-addr",
            "192.0.2.7",
            "--ml-secret-key-path",
            dir.path().to_str().unwrap(),
        ]);
        assert!(t.m.settings("n1", None).unwrap().unwrap().key.is_set());

        std::fs::write(&key, "\n").unwrap();
        let err = t.m.settings("n1", None).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
    }
}
