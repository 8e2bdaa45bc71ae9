//! Object storage: one global resourceVersion counter, the objects, a bounded event history
//! for watches, and every write path (create, update, patch, apply, delete).
//!
//! One mutex guards everything; it is never held across an `.await`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::admission;
use crate::error::{ApiError, ApiResult, Cause};
use crate::patch::{self, ListType};
use crate::registry::{self, GroupResource, Registry, ResourceType};
use crate::schema;
use crate::selector::{FieldSelector, LabelSelector};

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `ADDED`
    Added,
    /// `MODIFIED`
    Modified,
    /// `DELETED`
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the history and sent to watchers.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Kind storage key.
    pub gr: GroupResource,
    /// Type of change.
    pub kind: EventType,
    /// The object after the change (for deletes: the last state, with the delete's rv).
    pub object: Value,
    /// The object before the change, for selector transitions.
    pub old: Option<Value>,
}

/// What the broadcast channel carries.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A change.
    Event(Arc<StoredEvent>),
    /// Every open watch must end with 410 Expired.
    Expire,
    /// The server is stopping.
    Shutdown,
}

/// Per-request write options.
#[derive(Debug, Clone, Default)]
pub struct WriteCtx {
    /// `fieldManager`, or a name derived from the user agent.
    pub field_manager: String,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldValidation=Strict`: unknown fields are an error instead of being pruned.
    pub strict: bool,
    /// `force=true` for apply.
    pub force: bool,
}

/// The flavours of PATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`
    Merge,
    /// `application/json-patch+json`
    Json,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml`
    Apply,
}

/// List / watch parameters.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0: no limit).
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
}

/// Where a watch starts.
#[derive(Debug)]
pub struct WatchStart {
    /// Events to send first (synthetic ADDEDs or the history backlog).
    pub initial: Vec<Arc<StoredEvent>>,
    /// The resourceVersion the initial events bring the watcher to.
    pub start_rv: u64,
    /// Live events after `start_rv`.
    pub rx: broadcast::Receiver<Msg>,
}

type Key = (String, String);

#[derive(Debug)]
struct Inner {
    rv: u64,
    registry: Registry,
    objects: HashMap<GroupResource, BTreeMap<Key, Value>>,
    history: VecDeque<Arc<StoredEvent>>,
    history_cap: usize,
    /// Watches from a resourceVersion below this get 410.
    compacted: u64,
    /// What stored services use (cluster IPs, node ports); `None` until first needed and
    /// after bulk deletions, then rebuilt once.
    svc_alloc: Option<admission::Allocations>,
}

/// The in-memory API state.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Msg>,
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

fn gr_core(plural: &str) -> GroupResource {
    GroupResource {
        group: String::new(),
        resource: plural.to_string(),
    }
}

fn crd_gr() -> GroupResource {
    GroupResource {
        group: "apiextensions.k8s.io".into(),
        resource: "customresourcedefinitions".into(),
    }
}

fn is_core(rt: &ResourceType, plural: &str) -> bool {
    rt.group.is_empty() && rt.plural == plural
}

/// Rewrite `apiVersion`/`kind` for the version the client asked for (CRD conversion
/// strategy `None`).
pub fn present(mut obj: Value, rt: &ResourceType) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
        m.insert("kind".into(), json!(rt.kind));
    }
    obj
}

fn without(obj: &Value, fields: &[&str]) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        for f in fields {
            m.remove(*f);
        }
    }
    o
}

fn strip_volatile(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
    }
    o
}

fn lists_for(rt: &ResourceType) -> impl Fn(&[String], &[Value]) -> ListType + '_ {
    move |path: &[String], items: &[Value]| match &rt.schema {
        Some(s) if rt.custom => patch::schema_list_type(s, path),
        _ => patch::builtin_list_type(path, items),
    }
}

impl Store {
    /// An empty store with the built-in kinds and the standard namespaces.
    pub fn new(history_cap: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(16384);
        let store = Arc::new(Store {
            inner: Mutex::new(Inner {
                rv: 0,
                registry: Registry::builtin(),
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_cap: history_cap.max(1),
                compacted: 0,
                svc_alloc: None,
            }),
            tx,
        });
        let ctx = WriteCtx {
            field_manager: "kube-apiserver".into(),
            ..Default::default()
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let rt = store.resolve("", "v1", "namespaces").expect("builtin");
            store
                .create(&rt, None, json!({ "metadata": { "name": ns } }), &ctx)
                .expect("fresh store");
        }
        let rt = store.resolve("", "v1", "services").expect("builtin");
        store
            .create(
                &rt,
                Some("default"),
                json!({ "metadata": { "name": "kubernetes", "labels": { "component": "apiserver", "provider": "kubernetes" } },
                        "spec": { "clusterIP": "10.96.0.1", "ports": [{ "name": "https", "port": 443, "targetPort": 6443 }] } }),
                &ctx,
            )
            .expect("fresh store");
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Find a served kind.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.lock().registry.get(group, version, plural).cloned()
    }

    /// Run `f` on the registry (discovery).
    pub fn with_registry<T>(&self, f: impl FnOnce(&Registry) -> T) -> T {
        f(&self.lock().registry)
    }

    /// The current resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Forget the event history: a watch from any resourceVersion handed out before gets
    /// 410. The revision advances (as an etcd compaction does), so a list made afterwards
    /// returns a resourceVersion that can be watched from.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.rv += 1;
        inner.compacted = inner.rv;
    }

    /// Compact and end every open watch with a 410 Expired error event.
    pub fn expire_watches(&self) {
        self.compact();
        let _ = self.tx.send(Msg::Expire);
    }

    /// End every open watch (server shutdown).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
    }

    /// Get one object.
    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let inner = self.lock();
        let key = (ns.unwrap_or_default().to_string(), name.to_string());
        inner
            .objects
            .get(&rt.gr())
            .and_then(|m| m.get(&key))
            .map(|o| present(o.clone(), rt))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// List objects, with selectors and pagination.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>, p: &ListParams) -> ApiResult<Value> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (token_rv, start) = match &p.continue_token {
            Some(t) if !t.is_empty() => {
                let bad = || {
                    ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
                };
                let raw = b64.decode(t).map_err(|_| bad())?;
                let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
                let rv = v["rv"].as_u64().ok_or_else(bad)?;
                let ns = v["ns"].as_str().ok_or_else(bad)?.to_string();
                let name = v["name"].as_str().ok_or_else(bad)?.to_string();
                (Some(rv), Some((ns, name)))
            }
            _ => (None, None),
        };
        let inner = self.lock();
        let list_rv = token_rv.unwrap_or(inner.rv);
        let empty = BTreeMap::new();
        let objects = inner.objects.get(&rt.gr()).unwrap_or(&empty);
        let range: Box<dyn Iterator<Item = (&Key, &Value)>> = match &start {
            Some(k) => Box::new(objects.range::<Key, _>((
                std::ops::Bound::Excluded(k.clone()),
                std::ops::Bound::Unbounded,
            ))),
            None => Box::new(objects.iter()),
        };
        let mut items = Vec::new();
        let mut last_key = None;
        let mut remaining = 0u64;
        for (k, o) in range {
            if ns.is_some_and(|ns| k.0 != ns) {
                continue;
            }
            if !p.labels.matches(o) || !p.fields.matches(o) {
                continue;
            }
            if p.limit > 0 && items.len() >= p.limit {
                remaining += 1;
                continue;
            }
            items.push(present(o.clone(), rt));
            last_key = Some(k.clone());
        }
        let mut meta = json!({ "resourceVersion": list_rv.to_string() });
        if remaining > 0 {
            if let Some((ns, name)) = last_key {
                let tok = json!({ "rv": list_rv, "ns": ns, "name": name });
                meta["continue"] = json!(b64.encode(tok.to_string()));
                meta["remainingItemCount"] = json!(remaining);
            }
        }
        Ok(json!({
            "kind": rt.list_kind,
            "apiVersion": rt.api_version(),
            "metadata": meta,
            "items": items,
        }))
    }

    /// Start a watch. `rv`: None or 0 means "current state first" (synthetic ADDED events).
    pub fn watch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        p: &ListParams,
        rv: Option<u64>,
        send_initial: bool,
    ) -> ApiResult<WatchStart> {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let gr = rt.gr();
        let want_initial = send_initial || rv.unwrap_or(0) == 0;
        if want_initial {
            let initial = inner
                .objects
                .get(&gr)
                .into_iter()
                .flat_map(|m| m.iter())
                .filter(|(k, o)| {
                    ns.is_none_or(|ns| k.0 == ns) && p.labels.matches(o) && p.fields.matches(o)
                })
                .map(|(_, o)| {
                    Arc::new(StoredEvent {
                        rv: o["metadata"]["resourceVersion"]
                            .as_str()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0),
                        gr: gr.clone(),
                        kind: EventType::Added,
                        object: o.clone(),
                        old: None,
                    })
                })
                .collect();
            return Ok(WatchStart {
                initial,
                start_rv: inner.rv,
                rx,
            });
        }
        let from = rv.unwrap_or(0);
        if from < inner.compacted {
            return Err(ApiError::expired(format!(
                "too old resource version: {from} ({})",
                inner.compacted
            )));
        }
        let initial = inner
            .history
            .iter()
            .filter(|e| e.rv > from && e.gr == gr)
            .cloned()
            .collect();
        Ok(WatchStart {
            initial,
            start_rv: inner.rv.max(from),
            rx,
        })
    }

    fn emit(&self, inner: &mut Inner, ev: StoredEvent) {
        let ev = Arc::new(ev);
        inner.history.push_back(ev.clone());
        while inner.history.len() > inner.history_cap {
            if let Some(e) = inner.history.pop_front() {
                inner.compacted = e.rv;
            }
        }
        let _ = self.tx.send(Msg::Event(ev));
    }

    /// Create an object (POST).
    pub fn create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        body: Value,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        let mut inner = self.lock();
        let out = self.create_locked(&mut inner, rt, ns, body, ctx, None)?;
        Ok(present(out, rt))
    }

    #[allow(clippy::too_many_arguments)]
    fn create_locked(
        &self,
        inner: &mut Inner,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        ctx: &WriteCtx,
        applied: Option<()>,
    ) -> ApiResult<Value> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        check_kind(rt, &obj)?;
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let ns = normalize_namespace(rt, ns, &mut obj)?;
        if let Some(ns) = &ns {
            let nsobj = inner
                .objects
                .get(&gr_core("namespaces"))
                .and_then(|m| m.get(&(String::new(), ns.clone())));
            match nsobj {
                None => return Err(ApiError::not_found("", "namespaces", ns)),
                Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => {
                    return Err(ApiError::new(
                        403,
                        "Forbidden",
                        format!("{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated", rt.plural, meta_str(&obj, "name")),
                    ))
                }
                _ => {}
            }
        }
        if !meta_str(&obj, "resourceVersion").is_empty() {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if meta_str(&obj, "name").is_empty() {
            let prefix = meta_str(&obj, "generateName").to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: name or generateName is required".into(),
                        field: "metadata.name".into(),
                    }],
                ));
            }
            const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let name = loop {
                let suffix: String = (0..5)
                    .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
                    .collect();
                let candidate = format!("{prefix}{suffix}");
                let key = (ns.clone().unwrap_or_default(), candidate.clone());
                if !inner
                    .objects
                    .get(&rt.gr())
                    .is_some_and(|m| m.contains_key(&key))
                {
                    break candidate;
                }
            };
            obj["metadata"]["name"] = json!(name);
        }
        let name = meta_str(&obj, "name").to_string();
        if let Some(c) = admission::validate_name(rt, &name) {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, vec![c]));
        }
        let key = (ns.clone().unwrap_or_default(), name.clone());
        if inner
            .objects
            .get(&rt.gr())
            .is_some_and(|m| m.contains_key(&key))
        {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if !rt.keeps_status_on_create() {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        {
            let meta = obj["metadata"].as_object_mut().expect("made an object");
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(now()));
            meta.remove("deletionTimestamp");
            meta.remove("deletionGracePeriodSeconds");
            meta.remove("selfLink");
            if rt.tracks_generation() {
                meta.insert("generation".into(), json!(1));
            } else {
                meta.remove("generation");
            }
        }
        self.admit(inner, rt, None, &mut obj, ctx)?;
        if applied.is_none() {
            let lists = lists_for(rt);
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
            patch::record_update(
                None,
                &mut obj,
                &ctx.field_manager,
                "",
                &rt.api_version(),
                &now(),
                &lists,
            );
        }
        self.commit(inner, rt, None, obj, ctx)
    }

    /// Kind-specific admission, CRD schema handling and CRD status.
    fn admit(
        &self,
        inner: &mut Inner,
        rt: &ResourceType,
        old: Option<&Value>,
        obj: &mut Value,
        ctx: &WriteCtx,
    ) -> ApiResult<()> {
        let name = meta_str(obj, "name").to_string();
        let mut causes = Vec::new();
        if is_core(rt, "services") {
            let objects = &inner.objects;
            let alloc = inner.svc_alloc.get_or_insert_with(|| {
                admission::Allocations::from_services(
                    objects
                        .get(&gr_core("services"))
                        .into_iter()
                        .flat_map(|m| m.values()),
                )
            });
            // The service must not conflict with its own stored version; afterwards the
            // cache is put back exactly as it was (commit records the new version).
            if let Some(old) = old {
                alloc.forget(old);
            }
            causes.extend(admission::admit_service(old, obj, alloc));
            alloc.forget(obj);
            if let Some(old) = old {
                alloc.record(old);
            }
        } else if is_core(rt, "secrets") {
            admission::admit_secret(obj);
        } else if is_core(rt, "namespaces") {
            admission::admit_namespace(old, obj);
        } else if is_core(rt, "pods") {
            admission::admit_pod(old, obj);
        } else if rt.gr() == crd_gr() {
            registry::validate_crd(obj)?;
            obj["status"] = registry::crd_status(obj, &now());
        }
        if let (true, Some(schema)) = (rt.custom, &rt.schema) {
            if ctx.strict {
                let mut unknown = Vec::new();
                schema::unknown_fields(obj, schema, "", true, &mut unknown);
                if !unknown.is_empty() {
                    return Err(ApiError::bad_request(format!(
                        "strict decoding error: {}",
                        unknown
                            .iter()
                            .map(|f| format!("unknown field \"{f}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            causes.extend(schema::normalize(obj, schema));
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(&rt.group, &rt.kind, &name, causes))
        }
    }

    /// Store a new state of an object (or delete it once finalized) and emit the event.
    fn commit(
        &self,
        inner: &mut Inner,
        rt: &ResourceType,
        old: Option<&Value>,
        mut obj: Value,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        let gr = rt.gr();
        if let Some(m) = obj.as_object_mut() {
            // Stored objects carry the apiVersion they were last written with; reads
            // rewrite it.
            m.insert("apiVersion".into(), json!(rt.api_version()));
            m.insert("kind".into(), json!(rt.kind));
        }
        if let Some(old) = old {
            if strip_volatile(old) == strip_volatile(&obj) {
                return Ok(old.clone());
            }
        }
        if ctx.dry_run {
            return Ok(obj);
        }
        let key = (
            meta_str(&obj, "namespace").to_string(),
            meta_str(&obj, "name").to_string(),
        );
        let finalized = !obj["metadata"]["deletionTimestamp"].is_null()
            && obj["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty());
        inner.rv += 1;
        let rv = inner.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        if gr == gr_core("services") {
            if let Some(alloc) = inner.svc_alloc.as_mut() {
                if let Some(old) = old {
                    alloc.forget(old);
                }
                if !finalized {
                    alloc.record(&obj);
                }
            }
        }
        if finalized {
            if let Some(m) = inner.objects.get_mut(&gr) {
                m.remove(&key);
            }
            self.emit(
                inner,
                StoredEvent {
                    rv,
                    gr,
                    kind: EventType::Deleted,
                    object: obj.clone(),
                    old: old.cloned(),
                },
            );
            self.after_delete(inner, rt, &obj);
            return Ok(obj);
        }
        inner
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key.clone(), obj.clone());
        self.emit(
            inner,
            StoredEvent {
                rv,
                gr: gr.clone(),
                kind: if old.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                },
                object: obj.clone(),
                old: old.cloned(),
            },
        );
        if gr == crd_gr() {
            inner.registry.add_crd(&obj);
            tracing::debug!(crd = key.1, "registered custom resource kinds");
        }
        Ok(obj)
    }

    /// Cascades after an object is gone: CRD kinds, namespace content, owned objects.
    fn after_delete(&self, inner: &mut Inner, rt: &ResourceType, obj: &Value) {
        let name = meta_str(obj, "name").to_string();
        let mut doomed: Vec<(GroupResource, Key)> = Vec::new();
        if rt.gr() == crd_gr() {
            inner.registry.remove_crd(&name);
            let gr = GroupResource {
                group: obj["spec"]["group"].as_str().unwrap_or_default().into(),
                resource: obj["spec"]["names"]["plural"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
            };
            if let Some(m) = inner.objects.get(&gr) {
                doomed.extend(m.keys().map(|k| (gr.clone(), k.clone())));
            }
        }
        if is_core(rt, "namespaces") {
            for (gr, m) in &inner.objects {
                doomed.extend(
                    m.keys()
                        .filter(|k| k.0 == name)
                        .map(|k| (gr.clone(), k.clone())),
                );
            }
        }
        // Garbage collection: dependents all of whose owners are gone.
        let uid = meta_str(obj, "uid").to_string();
        if !uid.is_empty() {
            let live: std::collections::HashSet<String> = inner
                .objects
                .values()
                .flat_map(|m| m.values())
                .map(|o| meta_str(o, "uid").to_string())
                .collect();
            for (gr, m) in &inner.objects {
                for (k, o) in m {
                    let owners = o["metadata"]["ownerReferences"].as_array();
                    let Some(owners) = owners.filter(|a| !a.is_empty()) else {
                        continue;
                    };
                    let refs_me = owners.iter().any(|r| r["uid"] == uid.as_str());
                    let all_gone = owners
                        .iter()
                        .all(|r| !live.contains(r["uid"].as_str().unwrap_or_default()));
                    if refs_me && all_gone {
                        doomed.push((gr.clone(), k.clone()));
                    }
                }
            }
        }
        for (gr, key) in doomed {
            let Some(rt) = inner.registry.any_version(&gr).cloned().or_else(|| {
                // The kind may just have been unregistered (CRD deletion).
                Some(ResourceType {
                    group: gr.group.clone(),
                    version: String::new(),
                    plural: gr.resource.clone(),
                    singular: String::new(),
                    kind: String::new(),
                    list_kind: String::new(),
                    namespaced: !key.0.is_empty(),
                    short_names: vec![],
                    categories: vec![],
                    status_subresource: false,
                    schema: None,
                    custom: true,
                    crd_name: None,
                })
            }) else {
                continue;
            };
            self.delete_locked(inner, &rt, &key, &Value::Null, true);
        }
    }

    /// Delete: set deletionTimestamp while finalizers remain, else remove.
    fn delete_locked(
        &self,
        inner: &mut Inner,
        rt: &ResourceType,
        key: &Key,
        _opts: &Value,
        cascade: bool,
    ) -> Option<Value> {
        let gr = rt.gr();
        let obj = inner.objects.get(&gr)?.get(key)?.clone();
        let has_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if !obj["metadata"]["deletionTimestamp"].is_null() {
                return Some(obj);
            }
            let mut new = obj.clone();
            new["metadata"]["deletionTimestamp"] = json!(now());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if rt.tracks_generation() {
                let g = new["metadata"]["generation"].as_i64().unwrap_or(0);
                new["metadata"]["generation"] = json!(g + 1);
            }
            if is_core(rt, "namespaces") {
                new["status"]["phase"] = json!("Terminating");
            }
            inner.rv += 1;
            let rv = inner.rv;
            new["metadata"]["resourceVersion"] = json!(rv.to_string());
            inner
                .objects
                .entry(gr.clone())
                .or_default()
                .insert(key.clone(), new.clone());
            self.emit(
                inner,
                StoredEvent {
                    rv,
                    gr,
                    kind: EventType::Modified,
                    object: new.clone(),
                    old: Some(obj),
                },
            );
            return Some(new);
        }
        if let Some(m) = inner.objects.get_mut(&gr) {
            m.remove(key);
        }
        if gr == gr_core("services") {
            // deleted outside `commit` (cascades): rebuild the cache lazily
            inner.svc_alloc = None;
        }
        inner.rv += 1;
        let rv = inner.rv;
        let mut gone = obj.clone();
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.emit(
            inner,
            StoredEvent {
                rv,
                gr,
                kind: EventType::Deleted,
                object: gone.clone(),
                old: Some(obj),
            },
        );
        if cascade {
            self.after_delete(inner, rt, &gone);
        }
        Some(gone)
    }

    /// Delete one object. `opts` is the DeleteOptions body (preconditions, dryRun).
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &Value,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let mut inner = self.lock();
        let key = (ns.unwrap_or_default().to_string(), name.to_string());
        let cur = inner
            .objects
            .get(&rt.gr())
            .and_then(|m| m.get(&key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let pre = &opts["preconditions"];
        if let Some(uid) = pre["uid"].as_str() {
            if uid != meta_str(&cur, "uid") {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&cur, "uid")
                    ),
                ));
            }
        }
        if let Some(rv) = pre["resourceVersion"].as_str() {
            if rv != meta_str(&cur, "resourceVersion") {
                return Err(ApiError::conflict(&rt.group, &rt.plural, name, &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", meta_str(&cur, "resourceVersion"))));
            }
        }
        if dry_run {
            return Ok(present(cur, rt));
        }
        let out = self
            .delete_locked(&mut inner, rt, &key, opts, true)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        Ok(present(out, rt))
    }

    /// Delete every object matching the selectors (deletecollection).
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        p: &ListParams,
    ) -> ApiResult<Value> {
        let mut inner = self.lock();
        let keys: Vec<Key> = inner
            .objects
            .get(&rt.gr())
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|(k, o)| {
                ns.is_none_or(|ns| k.0 == ns) && p.labels.matches(o) && p.fields.matches(o)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut items = Vec::new();
        for k in keys {
            if let Some(o) = self.delete_locked(&mut inner, rt, &k, &Value::Null, true) {
                items.push(present(o, rt));
            }
        }
        Ok(json!({
            "kind": rt.list_kind,
            "apiVersion": rt.api_version(),
            "metadata": { "resourceVersion": inner.rv.to_string() },
            "items": items,
        }))
    }

    /// Replace an object (PUT), on the main resource or on `/status`.
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        body: Value,
        status: bool,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        let mut inner = self.lock();
        let old = self.current(&inner, rt, ns, name)?;
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        check_kind(rt, &body)?;
        let body_rv = meta_str(&body, "resourceVersion").to_string();
        if body_rv.is_empty() && rt.custom {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: 0: must be specified for an update".into(),
                    field: "metadata.resourceVersion".into(),
                }],
            ));
        }
        let out = self.update_locked(&mut inner, rt, &old, body, status, ctx, None)?;
        Ok(present(out, rt))
    }

    fn current(
        &self,
        inner: &Inner,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Value> {
        let key = (ns.unwrap_or_default().to_string(), name.to_string());
        inner
            .objects
            .get(&rt.gr())
            .and_then(|m| m.get(&key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// The shared update path: `candidate` is the full new object the client wants.
    #[allow(clippy::too_many_arguments)]
    fn update_locked(
        &self,
        inner: &mut Inner,
        rt: &ResourceType,
        old: &Value,
        candidate: Value,
        status: bool,
        ctx: &WriteCtx,
        applied_managed: Option<Value>,
    ) -> ApiResult<Value> {
        let name = meta_str(old, "name").to_string();
        let body_name = meta_str(&candidate, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = meta_str(&candidate, "namespace");
        if rt.namespaced && !body_ns.is_empty() && body_ns != meta_str(old, "namespace") {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let body_rv = meta_str(&candidate, "resourceVersion");
        if !body_rv.is_empty() && body_rv != meta_str(old, "resourceVersion") {
            return Err(ApiError::stale(&rt.group, &rt.plural, &name));
        }
        let mut new = if status {
            let mut n = old.clone();
            match candidate.get("status") {
                Some(s) if !s.is_null() => n["status"] = s.clone(),
                _ => {
                    if let Some(m) = n.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            n
        } else {
            let mut n = candidate;
            if !n["metadata"].is_object() {
                n["metadata"] = json!({});
            }
            if rt.status_subresource {
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            n
        };
        // Server-owned metadata comes from the stored object.
        {
            let om = old["metadata"].as_object().cloned().unwrap_or_default();
            let nm = new["metadata"].as_object_mut().expect("object");
            for k in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match om.get(k) {
                    Some(v) => nm.insert(k.into(), v.clone()),
                    None => nm.remove(k),
                };
            }
            nm.remove("selfLink");
            if nm.get("managedFields").is_none_or(Value::is_null) {
                if let Some(mf) = om.get("managedFields") {
                    nm.insert("managedFields".into(), mf.clone());
                }
            }
            nm.insert(
                "resourceVersion".into(),
                om.get("resourceVersion").cloned().unwrap_or(Value::Null),
            );
        }
        if !old["metadata"]["deletionTimestamp"].is_null() {
            let before: Vec<&Value> = old["metadata"]["finalizers"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let added = new["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|a| a.iter().any(|f| !before.contains(&f)));
            if added {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    &name,
                    vec![Cause {
                        reason: "FieldValueForbidden".into(),
                        message: "Forbidden: no new finalizers can be added if the object is being deleted".into(),
                        field: "metadata.finalizers".into(),
                    }],
                ));
            }
        }
        self.admit(inner, rt, Some(old), &mut new, ctx)?;
        if rt.tracks_generation()
            && without(old, &["metadata", "status", "apiVersion", "kind"])
                != without(&new, &["metadata", "status", "apiVersion", "kind"])
        {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        match applied_managed {
            Some(mf) => new["metadata"]["managedFields"] = mf,
            None => {
                let lists = lists_for(rt);
                patch::record_update(
                    Some(old),
                    &mut new,
                    &ctx.field_manager,
                    if status { "status" } else { "" },
                    &rt.api_version(),
                    &now(),
                    &lists,
                );
            }
        }
        if new["metadata"]["managedFields"].is_null() {
            if let Some(m) = new["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
        }
        self.commit(inner, rt, Some(old), new, ctx)
    }

    /// PATCH, on the main resource or on `/status`.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        ty: PatchType,
        body: &[u8],
        status: bool,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        let parse_json = || -> ApiResult<Value> {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
        };
        let lists = lists_for(rt);
        let mut inner = self.lock();
        if ty == PatchType::Apply {
            let applied: Value = serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            if !applied.is_object() {
                return Err(ApiError::bad_request("the apply body must be an object"));
            }
            if ctx.field_manager.is_empty() {
                return Err(ApiError::bad_request(
                    "PATCH /apply requires fieldManager to be set",
                ));
            }
            check_kind(rt, &applied)?;
            if applied["apiVersion"].is_null() || applied["kind"].is_null() {
                return Err(ApiError::bad_request(
                    "apiVersion and kind must be set in an apply configuration",
                ));
            }
            let an = meta_str(&applied, "name");
            if !an.is_empty() && an != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({an}) does not match the name on the URL ({name})"
                )));
            }
            let existing = self.current(&inner, rt, ns, name).ok();
            let live = match &existing {
                Some(o) => o.clone(),
                None if status => return Err(ApiError::not_found(&rt.group, &rt.plural, name)),
                None => {
                    json!({ "apiVersion": rt.api_version(), "kind": rt.kind, "metadata": { "name": name } })
                }
            };
            let status_sub = rt.status_subresource;
            let in_scope = move |p: &[String]| {
                let is_status = p.first().map(String::as_str) == Some("f:status");
                if status {
                    is_status
                } else {
                    !(status_sub && is_status)
                }
            };
            let sub = if status { "status" } else { "" };
            let merged = patch::server_side_apply(
                &live,
                &applied,
                &ctx.field_manager,
                sub,
                ctx.force,
                &rt.api_version(),
                &now(),
                &lists,
                &in_scope,
            )
            .map_err(|conflicts| apply_conflict(rt, name, &conflicts))?;
            let mut merged = merged;
            let want_rv = meta_str(&applied, "resourceVersion").to_string();
            if !want_rv.is_empty() {
                merged["metadata"]["resourceVersion"] = json!(want_rv);
            }
            let out = match existing {
                Some(old) => {
                    let mf = merged["metadata"]["managedFields"].clone();
                    self.update_locked(&mut inner, rt, &old, merged, status, ctx, Some(mf))?
                }
                None => {
                    if let Some(m) = merged["metadata"].as_object_mut() {
                        m.remove("resourceVersion");
                    }
                    self.create_locked(&mut inner, rt, ns, merged, ctx, Some(()))?
                }
            };
            return Ok(present(out, rt));
        }
        let old = self.current(&inner, rt, ns, name)?;
        let mut doc = present(old.clone(), rt);
        match ty {
            PatchType::Merge => json_patch::merge(&mut doc, &parse_json()?),
            PatchType::Json => {
                let p: json_patch::Patch = serde_json::from_value(parse_json()?)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                json_patch::patch(&mut doc, &p).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    )
                })?;
            }
            PatchType::Strategic => {
                if rt.custom {
                    return Err(ApiError::unsupported_media(
                        "application/strategic-merge-patch+json",
                    ));
                }
                patch::strategic_merge(&mut doc, &parse_json()?, &lists);
            }
            PatchType::Apply => unreachable!("handled above"),
        }
        let out = self.update_locked(&mut inner, rt, &old, doc, status, ctx, None)?;
        Ok(present(out, rt))
    }
}

fn apply_conflict(rt: &ResourceType, name: &str, conflicts: &[patch::ApplyConflict]) -> ApiError {
    let n = conflicts.len();
    let list: Vec<String> = conflicts
        .iter()
        .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field))
        .collect();
    let mut e = ApiError::new(
        409,
        "Conflict",
        format!(
            "Apply failed with {n} conflict{}: {}",
            if n == 1 { "" } else { "s" },
            list.join("\n")
        ),
    );
    e.details = Some(json!({
        "name": name,
        "group": rt.group,
        "kind": rt.plural,
        "causes": conflicts.iter().map(|c| json!({
            "reason": "FieldManagerConflict",
            "message": format!("conflict with \"{}\"", c.manager),
            "field": c.field,
        })).collect::<Vec<_>>(),
    }));
    e
}

fn check_kind(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    if let Some(k) = obj["kind"].as_str() {
        if !k.is_empty() && k != rt.kind {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({k}) does not match the kind of the resource ({})",
                rt.kind
            )));
        }
    }
    if let Some(av) = obj["apiVersion"].as_str() {
        let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or_default();
        if !av.is_empty() && group != rt.group {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
    }
    Ok(())
}

fn normalize_namespace(
    rt: &ResourceType,
    url_ns: Option<&str>,
    obj: &mut Value,
) -> ApiResult<Option<String>> {
    let body_ns = meta_str(obj, "namespace").to_string();
    if !rt.namespaced {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        return Ok(None);
    }
    let ns = match url_ns {
        Some(ns) => {
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            ns.to_string()
        }
        None => {
            return Err(ApiError::path_not_found(
                "namespaced resource without namespace",
            ))
        }
    };
    obj["metadata"]["namespace"] = json!(ns);
    Ok(Some(ns))
}
