//! Watch streams: newline-delimited JSON `WatchEvent`s over a chunked HTTP response.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::SinkExt;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::store::{present, EventType, ListParams, Msg, StoredEvent, WatchStart};

/// What one watch asks for.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// The kind and version to present objects as.
    pub rt: ResourceType,
    /// Namespace filter.
    pub namespace: Option<String>,
    /// Selectors.
    pub params: ListParams,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`: end the initial events with an `initial-events-end` bookmark.
    pub send_initial: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// How often to send bookmarks.
    pub bookmark_interval: Duration,
}

impl WatchRequest {
    fn classify(&self, ev: &StoredEvent) -> Option<EventType> {
        if let Some(ns) = &self.namespace {
            if ev.object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                != ns
            {
                return None;
            }
        }
        let m = |o: &Value| self.params.labels.matches(o) && self.params.fields.matches(o);
        let new_match = m(&ev.object);
        let old_match = ev.old.as_ref().is_some_and(m);
        match ev.kind {
            EventType::Added => new_match.then_some(EventType::Added),
            EventType::Modified => match (old_match, new_match) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            },
            EventType::Deleted => (new_match || old_match).then_some(EventType::Deleted),
        }
    }

    fn line(&self, ty: EventType, obj: &Value) -> Bytes {
        let v = json!({ "type": ty.as_str(), "object": present(obj.clone(), &self.rt) });
        let mut s = v.to_string();
        s.push('\n');
        Bytes::from(s)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({ "resourceVersion": rv.to_string() });
        if initial_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let v = json!({ "type": "BOOKMARK", "object": {
            "kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta } });
        let mut s = v.to_string();
        s.push('\n');
        Bytes::from(s)
    }
}

/// One `ERROR` watch event line carrying a Status.
pub fn error_line(err: &ApiError) -> Bytes {
    let mut s = json!({ "type": "ERROR", "object": err.status() }).to_string();
    s.push('\n');
    Bytes::from(s)
}

type Tx = mpsc::Sender<Result<Bytes, Infallible>>;

/// Spawn the task feeding a watch response; returns the body stream.
pub fn spawn(req: WatchRequest, start: WatchStart) -> mpsc::Receiver<Result<Bytes, Infallible>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(run(req, start, tx));
    rx
}

async fn run(req: WatchRequest, start: WatchStart, mut tx: Tx) {
    let WatchStart {
        initial,
        start_rv,
        mut rx,
    } = start;
    let mut last_rv = start_rv;
    for ev in &initial {
        if let Some(ty) = req.classify(ev) {
            if tx.send(Ok(req.line(ty, &ev.object))).await.is_err() {
                return;
            }
        }
    }
    if req.send_initial && req.bookmarks && tx.send(Ok(req.bookmark(last_rv, true))).await.is_err()
    {
        return;
    }
    let deadline = req.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut tick = tokio::time::interval(req.bookmark_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let out = tokio::select! {
            _ = sleep => return,
            _ = tick.tick() => {
                if !req.bookmarks { continue; }
                req.bookmark(last_rv, false)
            }
            msg = rx.recv() => match msg {
                Ok(Msg::Event(ev)) => {
                    // Subscribed under the store lock: later events only. Belt and braces.
                    if ev.rv <= start_rv {
                        continue;
                    }
                    last_rv = ev.rv;
                    if ev.gr != req.rt.gr() { continue; }
                    match req.classify(&ev) {
                        Some(ty) => req.line(ty, &ev.object),
                        None => continue,
                    }
                }
                Ok(Msg::Expire) | Err(RecvError::Lagged(_)) => {
                    let err = ApiError::expired(format!(
                        "The resourceVersion for the provided watch is too old. ({last_rv})"
                    ));
                    let _ = tx.send(Ok(error_line(&err))).await;
                    return;
                }
                Ok(Msg::Shutdown) | Err(RecvError::Closed) => return,
            }
        };
        if tx.send(Ok(out)).await.is_err() {
            tracing::trace!(kind = req.rt.kind, "watcher went away");
            return;
        }
    }
}

/// A watch body that only says 410 Expired, as a real server answers a watch from a
/// compacted resourceVersion.
pub fn expired_body(err: &ApiError) -> Vec<u8> {
    error_line(err).to_vec()
}
