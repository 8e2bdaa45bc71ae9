//! Secrets for `passwordSecret`, indexed per namespace. The daemon's namespace is watched from
//! the start; another namespace is watched the first time an FRRConfiguration references it
//! (we honour `passwordSecret.namespace`, upstream ignores it), so the component never needs
//! to read Secrets cluster-wide.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use metallb_api::frrk8s::FRRConfiguration;
use metallb_runtime::tasks::Spawner;
use metallb_runtime::watch::{lock, Index, ObjKey, WatchSet, WatchedState};
use metallb_runtime::Readiness;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::SecretLookup;

/// The watch name (and, for the component's own namespace, readiness gate) of Secrets.
pub const SECRETS: &str = "secrets";

/// One namespace's Secrets, as its watch shows them.
#[derive(Debug)]
struct NamespaceSecrets {
    secrets: BTreeMap<String, Secret>,
    listed: bool,
    /// When the watch was started (for [`SecretIndex::syncing`]).
    started: tokio::time::Instant,
}

impl Index<Secret> for NamespaceSecrets {
    fn apply(&mut self, mut s: Secret) {
        super::slim(&mut s);
        self.secrets.insert(s.name_any(), s);
    }
    fn delete(&mut self, s: Secret) {
        self.secrets.remove(&s.name_any());
    }
    fn reset(&mut self, listed: &HashSet<ObjKey>) {
        self.secrets
            .retain(|name, s| listed.contains(&(s.namespace().unwrap_or_default(), name.clone())));
    }
}

impl WatchedState for NamespaceSecrets {
    fn watch_listed(&mut self, _: &'static str) {
        self.listed = true;
    }
}

/// Per-namespace Secret indexes, fed by watches started on demand.
#[derive(Clone)]
pub struct SecretIndex {
    client: Client,
    /// The component's own namespace: its watch holds the `secrets` readiness gate.
    own: String,
    readiness: Readiness,
    trigger: Arc<Notify>,
    shutdown: CancellationToken,
    /// The component's supervised tasks: a Secret watch that ends stops the component.
    tasks: Spawner,
    namespaces: Arc<Mutex<BTreeMap<String, Arc<Mutex<NamespaceSecrets>>>>>,
}

/// How long a namespace's first Secret list may hold decisions back. Past it (the watch is
/// refused, say, for lack of RBAC) decisions go ahead and a missing Secret is reported as
/// such, so one unreadable namespace never stalls the node.
pub const SYNC_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl std::fmt::Debug for SecretIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let namespaces: Vec<String> = lock(&self.namespaces).keys().cloned().collect();
        f.debug_struct("SecretIndex")
            .field("namespaces", &namespaces)
            .finish()
    }
}

impl SecretIndex {
    /// Secrets of `own` (watched at once, see [`SecretIndex::ensure`]) and of the
    /// namespaces FRRConfigurations name later. Every change wakes `trigger`.
    pub fn new(
        client: Client,
        own: &str,
        readiness: Readiness,
        trigger: Arc<Notify>,
        shutdown: CancellationToken,
        tasks: Spawner,
    ) -> Self {
        let index = SecretIndex {
            client,
            own: own.to_string(),
            readiness,
            trigger,
            shutdown,
            tasks,
            namespaces: Arc::default(),
        };
        index.ensure(own);
        index
    }

    fn namespace(&self, namespace: &str) -> Option<Arc<Mutex<NamespaceSecrets>>> {
        lock(&self.namespaces).get(namespace).cloned()
    }

    /// Start watching `namespace` if not yet done. Every change (and the initial list)
    /// wakes the compute loop. Only the own namespace's watch gates readiness: another's
    /// may be refused (RBAC), and [`SecretIndex::syncing`] bounds the wait for it.
    pub fn ensure(&self, namespace: &str) {
        let mut namespaces = lock(&self.namespaces);
        if namespaces.contains_key(namespace) {
            return;
        }
        let state = Arc::new(Mutex::new(NamespaceSecrets {
            secrets: BTreeMap::new(),
            listed: false,
            started: tokio::time::Instant::now(),
        }));
        namespaces.insert(namespace.to_string(), state.clone());
        let mut set = WatchSet::new(
            state,
            self.readiness.clone(),
            Arc::new(()),
            self.shutdown.clone(),
        )
        .scope(namespace)
        .wake(self.trigger.clone());
        if namespace != self.own {
            set = set.ungated();
        }
        set.watch(
            &mut self.tasks.clone(),
            SECRETS,
            Api::<Secret>::namespaced(self.client.clone(), namespace),
            watcher::Config::default(),
        );
    }

    /// Whether `namespace`'s watch was started less than [`SYNC_GRACE`] ago and has not
    /// delivered its first list yet: a decision now would take its Secrets for missing
    /// (and, after a restart, let a newcomer push an object that only lacks its password
    /// for a moment out of effect).
    pub fn syncing(&self, namespace: &str) -> bool {
        let Some(ns) = self.namespace(namespace) else {
            return false;
        };
        let ns = lock(&ns);
        !ns.listed && ns.started.elapsed() < SYNC_GRACE
    }

    /// Whether `namespace`'s watch has listed once.
    pub fn listed(&self, namespace: &str) -> bool {
        self.namespace(namespace).is_some_and(|ns| lock(&ns).listed)
    }
}

impl SecretLookup for SecretIndex {
    fn lookup(&self, namespace: &str, name: &str) -> Option<Secret> {
        let ns = self.namespace(namespace)?;
        let found = lock(&ns).secrets.get(name).cloned();
        found
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
