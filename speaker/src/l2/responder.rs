//! The responder: answers ARP and NDP for the IPs this node was elected for, on the
//! interfaces the advertisements allow, and announces a takeover with gratuitous ARP /
//! unsolicited neighbor advertisements (at once, then every 1.1 s for 5 s, as upstream).
//! Releasing an IP is silent: the new owner's announcements update the neighbors.
//!
//! ```text
//!  wanted IPs (watch) ──▶ per interface worker ── ARP socket (requests only, BPF)
//!  rtnetlink (links,        owned: IP → takeover ── NDP socket (solicitations only, BPF)
//!  link-locals, events)                           └─ solicited-node groups joined (MLD)
//! ```
//!
//! One worker per usable interface; rtnetlink events (links and IPv6 addresses) and a
//! periodic rescan start, restart and stop workers as interfaces come and go.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv6Addr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use metallb_rawsock::{PacketSocket, ETH_P_ARP, ETH_P_IPV6};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use regex::RegexSet;
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::decide::Interfaces;
use super::links::{scan, Link};
use super::packet::{
    arp_reply, gratuitous_arp, neighbor_advertisement, parse_arp_request,
    parse_neighbor_solicitation, solicited_node, Mac, ARP_FILTER, NDP_FILTER,
};

/// The IPs this node answers for, with their interfaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    pub ips: Arc<BTreeMap<IpAddr, Interfaces>>,
    /// A change re-announces every owned IP as a takeover. When a partition heals, the
    /// node that was cut off believed it alone was alive, announced every IP and then
    /// releases them silently; the rightful owners never stopped owning theirs, so
    /// without this the clients keep the cut-off node's MAC until their entries expire.
    pub reannounce: u64,
}

/// The interfaces answered on (up, usable, not excluded), by name; `None` until the first
/// scan. The L2 task reports an IP whose advertisements allow none of them.
pub type Links = Option<Arc<BTreeSet<String>>>;

/// How long and how often a takeover is announced.
const ANNOUNCE_FOR: Duration = Duration::from_secs(5);
const ANNOUNCE_EVERY: Duration = Duration::from_millis(1100);

/// The `ip` label of upstream's `metallb_layer2_*` metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct IpLabel {
    pub ip: String,
}

impl IpLabel {
    pub fn new(ip: &IpAddr) -> Self {
        IpLabel { ip: ip.to_string() }
    }
}

/// The responder's counters, exported as upstream's `metallb_layer2_*` metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// ARP requests and neighbor solicitations received for an IP we answer for.
    pub requests_received: Family<IpLabel, Counter>,
    pub responses_sent: Family<IpLabel, Counter>,
    /// Gratuitous ARPs and unsolicited neighbor advertisements.
    pub gratuitous_sent: Family<IpLabel, Counter>,
    pub send_errors: Counter,
}

impl Counters {
    fn count(family: &Family<IpLabel, Counter>, ip: &IpAddr) {
        family.get_or_create(&IpLabel::new(ip)).inc();
    }
}

/// Responder settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Interface names never answered on.
    pub excludes: RegexSet,
    /// Full rescan period (events trigger rescans in between).
    pub rescan: Duration,
    /// Run in this network namespace (a lab runs several nodes in one host); `None`: the
    /// process's namespace (the host's, for the DaemonSet).
    pub netns: Option<PathBuf>,
}

/// Run until `stop`; in `settings.netns` when set (on a thread of its own).
pub async fn run(
    settings: Settings,
    wanted: watch::Receiver<Wanted>,
    answered_on: watch::Sender<Links>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let Some(netns) = settings.netns.clone() else {
        return run_here(settings, wanted, answered_on, counters, stop).await;
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("l2-responder".into())
        .spawn(move || {
            let result = (|| {
                metallb_rawsock::enter_netns(&netns)
                    .with_context(|| format!("entering network namespace {}", netns.display()))?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("responder runtime")?;
                rt.block_on(run_here(settings, wanted, answered_on, counters, stop))
            })();
            let _ = tx.send(result);
        })
        .context("starting the responder thread")?;
    rx.await
        .context("the responder thread ended without a result")?
}

/// rtnetlink multicast groups: links and IPv6 addresses.
const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV6_IFADDR: u32 = 9;

async fn run_here(
    settings: Settings,
    wanted: watch::Receiver<Wanted>,
    answered_on: watch::Sender<Links>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let (mut conn, handle, mut events) =
        rtnetlink::new_connection().context("opening rtnetlink")?;
    let groups = (1 << (RTNLGRP_LINK - 1)) | (1 << (RTNLGRP_IPV6_IFADDR - 1));
    conn.socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, groups))
        .context("subscribing to link events")?;
    let conn = tokio::spawn(conn);

    let mut workers: HashMap<u32, (Link, CancellationToken)> = HashMap::new();
    let mut tasks = JoinSet::new();
    let result = loop {
        let links = match scan(&handle).await {
            Ok(l) => l,
            Err(e) => break Err(anyhow::Error::new(e).context("listing interfaces")),
        };
        let usable: HashMap<u32, (Link, bool, bool)> = links
            .into_iter()
            .filter_map(|l| {
                let (arp, ndp) = (l.arp(&settings.excludes), l.ndp(&settings.excludes));
                (arp || ndp).then_some((l.index, (l, arp, ndp)))
            })
            .collect();
        let names: BTreeSet<String> = usable.values().map(|(l, _, _)| l.name.clone()).collect();
        answered_on.send_if_modified(|current| {
            if current.as_deref() == Some(&names) {
                return false;
            }
            *current = Some(Arc::new(names));
            true
        });
        workers.retain(|index, (link, token)| {
            let keep = usable.get(index).is_some_and(|(l, _, _)| l == link);
            if !keep {
                info!(interface = %link.name, "L2 responder stops on interface");
                token.cancel();
            }
            keep
        });
        for (index, (link, arp, ndp)) in usable {
            if workers.contains_key(&index) {
                continue;
            }
            info!(interface = %link.name, arp, ndp, "L2 responder starts on interface");
            let token = stop.child_token();
            tasks.spawn(worker(
                link.clone(),
                arp,
                ndp,
                wanted.clone(),
                counters.clone(),
                token.clone(),
            ));
            workers.insert(index, (link, token));
        }
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            event = events.next() => {
                if event.is_none() {
                    break Err(anyhow::anyhow!("rtnetlink event stream ended"));
                }
                // a burst (an interface brought up sends several) makes one rescan
                tokio::time::sleep(Duration::from_millis(20)).await;
                while let Some(Some(_)) = events.next().now_or_never() {}
            }
            _ = tokio::time::sleep(settings.rescan) => {}
        }
    };
    for (_, (_, token)) in workers.drain() {
        token.cancel();
    }
    while tasks.join_next().await.is_some() {}
    conn.abort();
    result
}

use futures::FutureExt;

fn open(
    index: u32,
    name: &str,
    ethertype: u16,
    filter: &[metallb_rawsock::BpfInsn],
) -> Option<PacketSocket> {
    match PacketSocket::open(index, ethertype, filter) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(interface = name, ethertype, error = %e, "cannot open a packet socket; not answering there");
            None
        }
    }
}

async fn recv(sock: Option<&PacketSocket>, buf: &mut [u8]) -> io::Result<usize> {
    match sock {
        Some(s) => s.recv(buf).await,
        None => std::future::pending().await,
    }
}

struct Worker {
    link: Link,
    mac: Mac,
    arp: Option<PacketSocket>,
    ndp: Option<PacketSocket>,
    /// IP → when we took it over on this interface.
    owned: BTreeMap<IpAddr, Instant>,
    /// The last [`Wanted::reannounce`] acted on.
    reannounced: u64,
    /// Solicited-node groups joined at the IPv6 level: the kernel sends MLD reports (so
    /// snooping switches and bridges forward the solicitations to us) and opens the NIC's
    /// multicast filter. Memberships belong to `mcast` and end with it.
    joined: BTreeSet<Ipv6Addr>,
    mcast: Option<UdpSocket>,
    counters: Arc<Counters>,
}

impl Worker {
    fn send(
        &self,
        sock: Option<&PacketSocket>,
        frame: &[u8],
        ip: &IpAddr,
        counter: &Family<IpLabel, Counter>,
    ) {
        let Some(sock) = sock else { return };
        match sock.send(frame) {
            Ok(()) => Counters::count(counter, ip),
            Err(e) => {
                self.counters.send_errors.inc();
                debug!(interface = %self.link.name, error = %e, "sending failed");
            }
        }
    }

    fn announce(&self, ip: &IpAddr) {
        match ip {
            IpAddr::V4(v4) => self.send(
                self.arp.as_ref(),
                &gratuitous_arp(self.mac, *v4),
                ip,
                &self.counters.gratuitous_sent,
            ),
            IpAddr::V6(v6) => {
                if let Some(ll) = self.link.link_local {
                    self.send(
                        self.ndp.as_ref(),
                        &neighbor_advertisement(self.mac, ll, *v6, None),
                        ip,
                        &self.counters.gratuitous_sent,
                    );
                }
            }
        }
    }

    /// Take the new wanted set: announce IPs gained, forget IPs lost, keep the
    /// solicited-node groups joined for the IPv6 ones.
    fn update(&mut self, wanted: &Wanted) {
        let now = Instant::now();
        if wanted.reannounce != self.reannounced {
            self.reannounced = wanted.reannounce;
            for since in self.owned.values_mut() {
                *since = now;
            }
            for ip in self.owned.keys() {
                self.announce(ip);
            }
        }
        let mine: BTreeSet<IpAddr> = (wanted.ips.iter())
            .filter(|(ip, ifs)| {
                ifs.allows(&self.link.name)
                    && match ip {
                        IpAddr::V4(_) => self.arp.is_some(),
                        IpAddr::V6(_) => self.ndp.is_some(),
                    }
            })
            .map(|(ip, _)| *ip)
            .collect();
        self.owned.retain(|ip, _| {
            let keep = mine.contains(ip);
            if !keep {
                info!(%ip, interface = %self.link.name, "no longer answering");
            }
            keep
        });
        for ip in &mine {
            if !self.owned.contains_key(ip) {
                info!(%ip, interface = %self.link.name, "answering");
                self.owned.insert(*ip, now);
                self.announce(ip);
            }
        }
        let groups: BTreeSet<Ipv6Addr> = (self.owned.keys())
            .filter_map(|ip| match ip {
                IpAddr::V6(v6) => Some(solicited_node(v6)),
                IpAddr::V4(_) => None,
            })
            .collect();
        if let Some(sock) = &self.mcast {
            for g in groups.difference(&self.joined) {
                if let Err(e) = sock.join_multicast_v6(g, self.link.index) {
                    warn!(interface = %self.link.name, group = %g, error = %e, "joining a solicited-node group failed");
                }
            }
            for g in self.joined.difference(&groups) {
                let _ = sock.leave_multicast_v6(g, self.link.index);
            }
        }
        self.joined = groups;
    }

    fn on_arp(&self, frame: &[u8]) {
        let Some(req) = parse_arp_request(frame) else {
            return;
        };
        let ip = IpAddr::V4(req.target_ip);
        if !self.owned.contains_key(&ip) {
            return;
        }
        Counters::count(&self.counters.requests_received, &ip);
        let reply = arp_reply(self.mac, &req);
        self.send(
            self.arp.as_ref(),
            &reply,
            &ip,
            &self.counters.responses_sent,
        );
    }

    fn on_ndp(&self, frame: &[u8]) {
        let Some(ns) = parse_neighbor_solicitation(frame) else {
            return;
        };
        let ip = IpAddr::V6(ns.target);
        // Duplicate address detection probes (from ::) are not answered: the prober is
        // configuring the address itself, and answering would make it give up.
        if ns.src_ip.is_unspecified() || !self.owned.contains_key(&ip) {
            return;
        }
        let Some(ll) = self.link.link_local else {
            return;
        };
        Counters::count(&self.counters.requests_received, &ip);
        let reply = neighbor_advertisement(self.mac, ll, ns.target, Some((ns.src_mac, ns.src_ip)));
        self.send(
            self.ndp.as_ref(),
            &reply,
            &ip,
            &self.counters.responses_sent,
        );
    }

    fn reannounce(&self) {
        let now = Instant::now();
        for (ip, since) in &self.owned {
            if now.duration_since(*since) <= ANNOUNCE_FOR {
                self.announce(ip);
            }
        }
    }
}

async fn worker(
    link: Link,
    arp: bool,
    ndp: bool,
    mut wanted: watch::Receiver<Wanted>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let Some(mac) = link.mac else { return };
    let ndp_sock = ndp
        .then(|| open(link.index, &link.name, ETH_P_IPV6, &NDP_FILTER))
        .flatten();
    let mcast = match ndp_sock {
        Some(_) => UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))
            .inspect_err(
                |e| warn!(interface = %link.name, error = %e, "no socket for multicast groups"),
            )
            .ok(),
        None => None,
    };
    let mut w = Worker {
        arp: arp
            .then(|| open(link.index, &link.name, ETH_P_ARP, &ARP_FILTER))
            .flatten(),
        ndp: ndp_sock,
        mcast,
        link,
        mac,
        owned: BTreeMap::new(),
        // a new worker announces what it takes anyway
        reannounced: wanted.borrow().reannounce,
        joined: BTreeSet::new(),
        counters,
    };
    let current = wanted.borrow_and_update().clone();
    w.update(&current);
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    tick.tick().await;
    let (mut arp_buf, mut ndp_buf) = ([0u8; 1514], [0u8; 1514]);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            changed = wanted.changed() => {
                if changed.is_err() {
                    break;
                }
                let current = wanted.borrow_and_update().clone();
                w.update(&current);
            }
            n = recv(w.arp.as_ref(), &mut arp_buf) => match n {
                Ok(n) => w.on_arp(&arp_buf[..n]),
                Err(e) => {
                    warn!(interface = %w.link.name, error = %e, "ARP socket failed");
                    w.arp = None;
                }
            },
            n = recv(w.ndp.as_ref(), &mut ndp_buf) => match n {
                Ok(n) => w.on_ndp(&ndp_buf[..n]),
                Err(e) => {
                    warn!(interface = %w.link.name, error = %e, "NDP socket failed");
                    w.ndp = None;
                }
            },
            _ = tick.tick() => w.reannounce(),
        }
    }
}
