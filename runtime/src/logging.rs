//! Logging setup: `tracing` with an env-filter, plain or JSON lines.

/// A dependency whose warnings are noise (see [`LogArgs::init`]).
const QUIET_BY_DEFAULT: &str = "netlink_packet_route";

/// Log settings shared by every binary.
#[derive(Clone, Debug, clap::Args)]
pub struct LogArgs {
    /// Log filter: a level (`info`, `debug`) or a full `tracing` directive list
    /// (`info,frr_k8s=debug`). `RUST_LOG` overrides it.
    #[arg(long, env = "METALLB_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Output format.
    #[arg(long, env = "METALLB_LOG_FORMAT", default_value = "plain", value_parser = ["plain", "json"])]
    pub log_format: String,
}

impl LogArgs {
    /// Install the global subscriber. Call once, first thing in `main`.
    pub fn init(&self) {
        use tracing_subscriber::EnvFilter;
        let mut filter = EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&self.log_level))
            .unwrap_or_else(|_| EnvFilter::new("info"));
        // rtnetlink's decoder warns on every interface scan (every 10 s) that the kernel
        // sends IPv6 link attributes newer than it knows: harmless, and it would drown the
        // speaker's log. Shown when asked for by name.
        let asked = |s: &str| s.contains(QUIET_BY_DEFAULT);
        if !asked(&self.log_level) && !std::env::var("RUST_LOG").is_ok_and(|v| asked(&v)) {
            if let Ok(d) = format!("{QUIET_BY_DEFAULT}=error").parse() {
                filter = filter.add_directive(d);
            }
        }
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(true);
        // A second init (tests) is harmless: keep the first subscriber.
        let _ = if self.log_format == "json" {
            builder.json().try_init()
        } else {
            builder.try_init()
        };
    }
}
