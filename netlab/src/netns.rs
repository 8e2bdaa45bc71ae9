use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::Result;
use crate::proc::{checked, output};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique in this machine for this process: `<prefix><pid>x<counter>`.
/// Keep `prefix` short: FRR pathspaces and namespace names are used in socket paths.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id())
}

/// A network namespace created by this process, deleted on drop.
/// `lo` is up and IPv4/IPv6 forwarding is on (as on a Kubernetes node).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `<prefix><pid>x<n>`.
    pub fn new(prefix: &str) -> Result<Self> {
        let name = unique_name(prefix);
        checked(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        ns.sysctl("net.ipv4.ip_forward", "1")?;
        ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.run(&["sysctl", "-qw", &format!("{key}={value}")])
            .map(drop)
    }

    /// `ip netns exec NAME argv...`, output captured whatever the exit status.
    pub fn exec(&self, argv: &[&str]) -> Result<Output> {
        output(&mut self.command(argv))
    }

    /// Like [`Netns::exec`] but a non-zero exit is an error; returns stdout.
    pub fn run(&self, argv: &[&str]) -> Result<String> {
        checked(&mut self.command(argv))
    }

    /// A `Command` running `argv` inside the namespace.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// `ip -n NAME args...` (checked).
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        checked(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Adds an address (`192.0.2.1/24`, `2001:db8::1/64`) to a device.
    pub fn add_addr(&self, dev: &str, cidr: &str) -> Result<()> {
        let mut args = vec!["addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.ip(&args).map(drop)
    }

    /// Sets a link up or down (BFD failover tests).
    pub fn set_link(&self, dev: &str, up: bool) -> Result<()> {
        self.ip(&["link", "set", dev, if up { "up" } else { "down" }])
            .map(drop)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = output(Command::new("ip").args(["netns", "delete", &self.name]));
    }
}

/// Creates a veth pair `a_dev` (in `a`) <-> `b_dev` (in `b`), assigns the addresses and
/// brings both ends up. The devices vanish with their namespaces.
pub fn veth(
    a: &Netns,
    a_dev: &str,
    a_addrs: &[&str],
    b: &Netns,
    b_dev: &str,
    b_addrs: &[&str],
) -> Result<()> {
    checked(Command::new("ip").args([
        "link", "add", a_dev, "netns", &a.name, "type", "veth", "peer", "name", b_dev, "netns",
        &b.name,
    ]))?;
    for (ns, dev, addrs) in [(a, a_dev, a_addrs), (b, b_dev, b_addrs)] {
        for addr in addrs {
            ns.add_addr(dev, addr)?;
        }
        ns.set_link(dev, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ() {
        let a = unique_name("t");
        let b = unique_name("t");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("t{}x", std::process::id())));
    }
}
