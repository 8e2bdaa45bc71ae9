//! The membership agent: one UDP socket on the speaker's address (port 7946 as upstream),
//! the foca state machine, and its timers on tokio's clock. Peers come from the speaker
//! Pods (their IPs: `hostNetwork`, so the nodes'); the agent reports a [`Membership`]
//! whenever it changes. On stop it leaves the cluster, so the others act at once instead
//! of after the suspicion timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use foca::{AccumulatingRuntime, Foca, OwnedNotification, PostcardCodec, Timer};
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use rand::rngs::StdRng;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use tracing::{debug, info, warn};

use super::auth::Key;
use super::{down_nodes, Membership, SpeakerId, Timing};

/// Agent settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node's name (the member's name, as upstream).
    pub node: String,
    /// Bound and advertised: the speaker Pod's IP and the membership port. Port 0 binds
    /// any free port (tests).
    pub bind: SocketAddr,
    pub key: Key,
    pub timing: Timing,
    /// Bind in this network namespace (a lab runs several nodes in one host).
    pub netns: Option<PathBuf>,
    /// Peers not (or no longer) members are announced to this often.
    pub rejoin: Duration,
}

impl Settings {
    pub fn new(node: &str, bind: SocketAddr) -> Self {
        Settings {
            node: node.to_string(),
            bind,
            key: Key::none(),
            timing: Timing::default(),
            netns: None,
            // only peers that are not members are announced to: none in steady state
            rejoin: Duration::from_secs(1),
        }
    }
}

/// The other speakers by node name, where their agents listen.
pub type Peers = BTreeMap<String, SocketAddr>;

/// `metallb_speaker_members_*`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Other speakers this one sees alive.
    pub alive: Gauge,
    /// Other speakers declared down (their nodes are no L2 candidates).
    pub down: Gauge,
    /// Packets dropped for a missing or wrong authentication tag.
    pub rejected_packets: Counter,
}

type Agent = Foca<SpeakerId, PostcardCodec, StdRng, foca::NoCustomBroadcast>;

/// Run until `stop`, then leave the cluster.
pub async fn run(
    settings: Settings,
    mut peers: watch::Receiver<Peers>,
    out: watch::Sender<Membership>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let socket = bind(&settings).with_context(|| {
        format!(
            "binding the membership socket on {} (--ml-bind-addr/--ml-bind-port)",
            settings.bind
        )
    })?;
    let local = socket.local_addr()?;
    let bump = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    let me = SpeakerId {
        node: settings.node.clone(),
        addr: local,
        bump,
    };
    if !settings.key.is_set() {
        warn!("no membership key (--ml-secret-key-path): membership packets are not authenticated; anyone on the network could declare a node down");
    }
    info!(addr = %local, timing = ?settings.timing, "membership agent started");
    let config = settings.timing.config(settings.key.tag_len());
    let mut foca: Agent = Foca::new(me, config, rand::make_rng(), PostcardCodec);
    let mut io = Io {
        socket,
        key: settings.key.clone(),
        rt: AccumulatingRuntime::new(),
        timers: DelayQueue::new(),
        node: settings.node.clone(),
        leaving: false,
    };
    let mut rejoin = tokio::time::interval(settings.rejoin);
    rejoin.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 2048];
    let mut announce = true;
    loop {
        if std::mem::take(&mut announce) {
            let known = active(&foca);
            for (node, addr) in peers.borrow_and_update().iter() {
                if *node != settings.node && !known.contains(node) {
                    let _ = foca.announce(SpeakerId::peer(node, *addr), &mut io.rt);
                }
            }
        }
        io.flush().await;
        report(&foca, &out, &counters);
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            got = io.socket.recv_from(&mut buf) => match got {
                Ok((n, from)) => match io.key.open(&buf[..n]) {
                    Some(payload) => {
                        if let Err(e) = foca.handle_data(payload, &mut io.rt) {
                            debug!(%from, error = %e, "membership packet not handled");
                        }
                    }
                    None => {
                        counters.rejected_packets.inc();
                        debug!(%from, "membership packet without a valid tag dropped");
                    }
                },
                Err(e) => debug!(error = %e, "membership socket receive"),
            },
            Some(t) = io.timers.next() => {
                if let Err(e) = foca.handle_timer(t.into_inner(), &mut io.rt) {
                    debug!(error = %e, "membership timer");
                }
            }
            changed = peers.changed() => {
                if changed.is_err() {
                    break;
                }
                announce = true;
            }
            _ = rejoin.tick() => announce = true,
        }
    }
    // Leaving tells the others at once: a graceful stop must not wait for the suspicion.
    io.leaving = true;
    if let Err(e) = foca.leave_cluster(&mut io.rt) {
        debug!(error = %e, "leaving the membership");
    }
    io.flush().await;
    info!("membership agent stopped (left the cluster)");
    Ok(())
}

/// The nodes with an active (alive or suspect) member.
fn active(foca: &Agent) -> BTreeSet<String> {
    foca.iter_members().map(|m| m.id().node.clone()).collect()
}

fn report(foca: &Agent, out: &watch::Sender<Membership>, counters: &Counters) {
    let now = down_nodes(foca.iter_membership_state());
    counters.alive.set(now.alive.len() as i64);
    counters.down.set(now.down.len() as i64);
    out.send_if_modified(|m| {
        if *m == now {
            return false;
        }
        *m = now;
        true
    });
}

struct Io {
    socket: UdpSocket,
    key: Key,
    rt: AccumulatingRuntime<SpeakerId>,
    timers: DelayQueue<Timer<SpeakerId>>,
    node: String,
    /// Set once this speaker leaves: foca then reports its own identity as down, which is
    /// the point, not a failure.
    leaving: bool,
}

impl Io {
    /// Send what foca wrote, schedule its timers, log its notifications.
    async fn flush(&mut self) {
        while let Some((to, data)) = self.rt.to_send() {
            let mut packet = data.to_vec();
            self.key.seal(&mut packet);
            if let Err(e) = self.socket.send_to(&packet, to.addr).await {
                debug!(peer = %to.node, addr = %to.addr, error = %e, "membership send");
            }
        }
        while let Some((after, timer)) = self.rt.to_schedule() {
            self.timers.insert(timer, after);
        }
        while let Some(n) = self.rt.to_notify() {
            match n {
                OwnedNotification::MemberUp(id) => {
                    info!(peer = %id.node, addr = %id.addr, "speaker joined")
                }
                OwnedNotification::MemberDown(id) => {
                    warn!(peer = %id.node, addr = %id.addr, "speaker declared down: its node is no L2 candidate")
                }
                OwnedNotification::Rejoin(id) => {
                    warn!(node = %self.node, bump = id.bump, "this speaker was declared down by the others; rejoined")
                }
                OwnedNotification::Defunct if self.leaving => {
                    debug!(node = %self.node, "left the membership")
                }
                OwnedNotification::Defunct => {
                    warn!(node = %self.node, "this speaker was declared down and cannot rejoin")
                }
                other => debug!(notification = ?other, "membership"),
            }
        }
    }
}

/// The socket, bound in `settings.netns` when set: a socket stays in the namespace it was
/// created in, so only the bind needs a thread of its own.
fn bind(settings: &Settings) -> anyhow::Result<UdpSocket> {
    let addr = settings.bind;
    let socket = match &settings.netns {
        None => std::net::UdpSocket::bind(addr)?,
        Some(netns) => std::thread::scope(|s| {
            s.spawn(|| {
                metallb_rawsock::enter_netns(netns)
                    .with_context(|| format!("entering network namespace {}", netns.display()))?;
                Ok::<_, anyhow::Error>(std::net::UdpSocket::bind(addr)?)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the bind thread panicked"))?
        })?,
    };
    socket.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(socket)?)
}
