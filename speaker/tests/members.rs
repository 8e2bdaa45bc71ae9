//! The membership agent over real UDP on loopback: speakers find each other from their
//! peers' addresses, a crashed speaker is declared down (no leave message: it just stops
//! answering), a stopped one leaves at once, a restarted one comes back, and a speaker with
//! another key never gets in. No root needed.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metallb_speaker::members::agent::{self, Counters, Peers, Settings};
use metallb_speaker::members::auth::Key;
use metallb_speaker::members::Membership;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Speaker {
    node: String,
    addr: SocketAddr,
    view: watch::Receiver<Membership>,
    counters: Arc<Counters>,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Starts a speaker's agent on a free loopback port it binds itself (so the address is
/// known before the peers are).
async fn start(node: &str, key: &str, peers: watch::Receiver<Peers>) -> Speaker {
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let mut s = Settings::new(node, addr);
    s.key = Key::new(key).unwrap();
    let (tx, view) = watch::channel(Membership::default());
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(agent::run(s, peers, tx, counters.clone(), stop.clone()));
    Speaker {
        node: node.into(),
        addr,
        view,
        counters,
        stop,
        task,
    }
}

fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Waits until `s`'s membership satisfies `ok`; returns how long it took.
async fn until(s: &mut Speaker, what: &str, ok: impl Fn(&Membership) -> bool) -> Duration {
    let t = Instant::now();
    let deadline = Duration::from_secs(10);
    loop {
        if ok(&s.view.borrow_and_update()) {
            return t.elapsed();
        }
        let left = deadline.saturating_sub(t.elapsed());
        if tokio::time::timeout(left, s.view.changed()).await.is_err() {
            panic!(
                "{}: {what} not within {deadline:?}; membership: {:?}",
                s.node,
                *s.view.borrow()
            );
        }
    }
}

/// Waits until `ok` holds (a counter, not a watched value: polled).
async fn eventually(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within 10s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speakers_meet_detect_a_crash_and_a_leave_and_refuse_a_wrong_key() {
    let (peers_tx, peers_rx) = watch::channel(Peers::new());
    let mut a = start("a", "k1", peers_rx.clone()).await;
    let mut b = start("b", "k1", peers_rx.clone()).await;
    let mut c = start("c", "k1", peers_rx.clone()).await;
    let intruder = start("x", "another-key", peers_rx.clone()).await;
    let all: Peers = [&a, &b, &c, &intruder]
        .iter()
        .map(|s| (s.node.clone(), s.addr))
        .collect();
    peers_tx.send(all.clone()).unwrap();

    for s in [&mut a, &mut b, &mut c] {
        let own = s.node.clone();
        let others: BTreeSet<String> = names(&["a", "b", "c"])
            .into_iter()
            .filter(|n| *n != own)
            .collect();
        let took = until(s, "both others alive", |m| m.alive == others).await;
        println!("{own}: met the others in {took:?}");
    }
    // the intruder's packets carry another key's tag: dropped both ways. Its first probe
    // to `a` may come after a already met b and c (it is one of four agents starting on
    // two cores), so wait for it rather than expect it by now.
    eventually("a dropped x's packets", || {
        a.counters.rejected_packets.get() > 0
    })
    .await;
    assert!(!a.view.borrow().alive.contains("x"));
    assert!(intruder.view.borrow().alive.is_empty());

    // crash: c's task is aborted, so it sends nothing more (no leave)
    c.task.abort();
    let took = until(&mut a, "c down", |m| m.down == names(&["c"])).await;
    let took_b = until(&mut b, "c down", |m| m.down == names(&["c"])).await;
    println!("crash of c: a saw it down in {took:?}, b in {took_b:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");

    // c restarts (a new identity on a new port): back alive, not down
    let mut c = start("c", "k1", peers_rx.clone()).await;
    let mut again = all.clone();
    again.insert("c".into(), c.addr);
    peers_tx.send(again).unwrap();
    until(&mut a, "c back", |m| {
        m.alive.contains("c") && m.down.is_empty()
    })
    .await;
    until(&mut c, "a and b alive", |m| m.alive == names(&["a", "b"])).await;

    // graceful stop: b leaves, the others know without waiting for the suspicion
    b.stop.cancel();
    b.task.await.unwrap().unwrap();
    let took = until(&mut a, "b down", |m| m.down == names(&["b"])).await;
    println!("b left: a saw it down in {took:?}");

    for s in [a, c, intruder] {
        s.stop.cancel();
        s.task.await.unwrap().unwrap();
    }
}
