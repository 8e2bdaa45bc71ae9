//! The async runtime every binary runs on.
//!
//! One thread by default. The binaries are I/O bound: watches, a few writes, and (in the
//! node binaries) vtysh calls that run on the blocking pool anyway. A multi-threaded
//! runtime sized to the host's cores buys them nothing, and costs memory: glibc gives each
//! allocating thread its own malloc arena, and freed memory stays in the arena that held
//! it. Measured with `cargo bench -p metallb-speaker --bench rss` (10,000 Services,
//! 1,000 nodes, 2 cores): 64.8 MiB after sync and 70.9 MiB after one change with
//! tokio's default multi-threaded runtime, 58.8 and 63.7 MiB with one thread. On a
//! 64-core node the default would start 64 workers. `--worker-threads` raises the count
//! for whoever wants parallel decoding on a very large cluster.

use std::future::Future;

/// Runtime settings shared by every binary.
#[derive(Clone, Debug, clap::Args)]
pub struct RuntimeArgs {
    /// Threads running async tasks. 1 runs everything on the main thread.
    #[arg(long, env = "METALLB_WORKER_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub worker_threads: u16,

    /// Most threads for blocking work (vtysh calls, DNS lookups).
    #[arg(long, env = "METALLB_MAX_BLOCKING_THREADS", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=512))]
    pub max_blocking_threads: u16,

    /// Parse the arguments and environment, print the settings they give, and exit
    /// without contacting anything (the chart's tests run every rendered container's
    /// `args` and `env` through this).
    #[arg(long)]
    pub check_args: bool,
}

impl Default for RuntimeArgs {
    fn default() -> Self {
        RuntimeArgs {
            worker_threads: 1,
            max_blocking_threads: 8,
            check_args: false,
        }
    }
}

impl RuntimeArgs {
    /// Build the runtime these settings describe.
    pub fn build(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = if self.worker_threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(self.worker_threads.into());
            b
        };
        builder
            .max_blocking_threads(self.max_blocking_threads.max(1).into())
            .enable_all()
            .build()
    }

    /// Run `main` to completion on a runtime built from these settings.
    pub fn block_on<F: Future>(&self, main: F) -> anyhow::Result<F::Output> {
        let rt = self
            .build()
            .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?;
        Ok(rt.block_on(main))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        rt: RuntimeArgs,
    }

    /// The thread a spawned task ran on, under the runtime `args` describe.
    fn spawned_task_thread(args: &[&str]) -> std::thread::ThreadId {
        let cli = Cli::try_parse_from(args).unwrap();
        cli.rt
            .block_on(async { tokio::spawn(async { std::thread::current().id() }).await })
            .unwrap()
            .unwrap()
    }

    #[test]
    fn one_thread_runs_on_the_caller() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.rt.worker_threads, 1);
        assert_eq!(spawned_task_thread(&["x"]), std::thread::current().id());
    }

    #[test]
    fn several_threads_run_spawned_tasks_elsewhere() {
        assert_ne!(
            spawned_task_thread(&["x", "--worker-threads", "2"]),
            std::thread::current().id()
        );
    }

    #[test]
    fn zero_threads_is_refused() {
        assert!(Cli::try_parse_from(["x", "--worker-threads", "0"]).is_err());
    }
}
