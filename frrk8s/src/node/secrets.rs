//! Secrets for `passwordSecret`, indexed per namespace. The daemon's namespace is watched from
//! the start; another namespace is watched the first time an FRRConfiguration references it
//! (we honour `passwordSecret.namespace`, upstream ignores it), so the component never needs
//! to read Secrets cluster-wide.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use metallb_api::frrk8s::FRRConfiguration;
use metallb_runtime::tasks::Spawner;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::SecretLookup;

/// Per-namespace Secret stores, fed by watches started on demand.
#[derive(Clone)]
pub struct SecretIndex {
    client: Client,
    trigger: Arc<Notify>,
    shutdown: CancellationToken,
    /// The component's supervised tasks: a Secret watch that ends stops the component.
    tasks: Spawner,
    stores: Arc<Mutex<BTreeMap<String, Store<Secret>>>>,
    /// When each namespace's watch was started (for [`SecretIndex::syncing`]).
    started: Arc<Mutex<BTreeMap<String, tokio::time::Instant>>>,
}

/// How long a namespace's first Secret list may hold decisions back. Past it (the watch is
/// refused, say, for lack of RBAC) decisions go ahead and a missing Secret is reported as
/// such, so one unreadable namespace never stalls the node.
pub const SYNC_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl std::fmt::Debug for SecretIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let namespaces: Vec<String> = self.lock().keys().cloned().collect();
        f.debug_struct("SecretIndex")
            .field("namespaces", &namespaces)
            .finish()
    }
}

impl SecretIndex {
    pub fn new(
        client: Client,
        trigger: Arc<Notify>,
        shutdown: CancellationToken,
        tasks: Spawner,
    ) -> Self {
        SecretIndex {
            client,
            trigger,
            shutdown,
            tasks,
            stores: Arc::default(),
            started: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Store<Secret>>> {
        self.stores.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start watching `namespace` if not yet done. Every change (and the initial sync)
    /// wakes the compute loop.
    pub fn ensure(&self, namespace: &str) {
        let mut stores = self.lock();
        if stores.contains_key(namespace) {
            return;
        }
        let (store, writer) = reflector::store::<Secret>();
        stores.insert(namespace.to_string(), store);
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(namespace.to_string(), tokio::time::Instant::now());
        let stream = watcher(
            Api::<Secret>::namespaced(self.client.clone(), namespace),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(super::slim)
        .reflect(writer);
        let trigger = self.trigger.clone();
        let shutdown = self.shutdown.clone();
        let ns = namespace.to_string();
        self.tasks
            .spawn(format!("watch secrets in {namespace}"), async move {
                let mut stream = std::pin::pin!(stream);
                loop {
                    tokio::select! {
                        ev = stream.next() => match ev {
                            Some(Ok(_)) => trigger.notify_one(),
                            Some(Err(e)) => warn!(namespace = %ns, error = %e, "secret watch error; retrying"),
                            None => anyhow::bail!("the Secret watch of {ns} ended"),
                        },
                        _ = shutdown.cancelled() => return Ok(()),
                    }
                }
            });
    }

    /// Whether `namespace`'s watch was started less than [`SYNC_GRACE`] ago and has not
    /// delivered its first list yet: a decision now would take its Secrets for missing
    /// (and, after a restart, let a newcomer push an object that only lacks its password
    /// for a moment out of effect).
    pub fn syncing(&self, namespace: &str) -> bool {
        use futures::FutureExt as _;
        let Some(store) = self.lock().get(namespace).cloned() else {
            return false;
        };
        if store.wait_until_ready().now_or_never().is_some() {
            return false;
        }
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(namespace)
            .is_some_and(|t| t.elapsed() < SYNC_GRACE)
    }

    /// Wait until the namespace's store has its initial list.
    pub async fn wait_ready(&self, namespace: &str) {
        let store = self.lock().get(namespace).cloned();
        if let Some(store) = store {
            let _ = store.wait_until_ready().await;
        }
    }
}

impl SecretLookup for SecretIndex {
    fn lookup(&self, namespace: &str, name: &str) -> Option<Secret> {
        let store = self.lock().get(namespace).cloned()?;
        store
            .get(&ObjectRef::new(name).within(namespace))
            .map(|s| s.as_ref().clone())
    }
}

/// Namespaces other than `own` named by `passwordSecret.namespace` in any object.
pub fn referenced_namespaces(configs: &[Arc<FRRConfiguration>], own: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in configs {
        for r in c.spec.routers() {
            for n in &r.neighbors {
                if let Some(ns) = n
                    .password_secret
                    .as_ref()
                    .and_then(|s| s.namespace.as_deref())
                {
                    if !ns.is_empty() && ns != own {
                        out.insert(ns.to_string());
                    }
                }
            }
        }
    }
    out
}
