//! Patch flavours: JSON merge patch, JSON patch, strategic merge patch (simplified) and the
//! field ownership behind server-side apply.
//!
//! Strategic merge patch is implemented as a JSON merge patch where lists with a known merge
//! key are merged item by item (`containers`, `env`, `volumes`: `name`; container `ports`:
//! `containerPort`; service `ports`: `port`; `conditions`: `type`; `volumeMounts`:
//! `mountPath`; `ownerReferences`: `uid`; `finalizers` as a set), with the `$patch:
//! delete|replace` and `$deleteFromPrimitiveList/<field>` directives. Other lists are
//! replaced. That covers what controllers send; it is not the full per-field table of
//! the Go types.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// How a list merges.
#[derive(Debug, Clone, PartialEq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// Merged item by item on these key fields.
    Map(Vec<String>),
    /// Merged as a set of scalars.
    Set,
}

/// Decides the list type for a list at a field-name path (list indices are skipped).
pub type ListTypes<'a> = &'a dyn Fn(&[String], &[Value]) -> ListType;

/// List types of the built-in kinds, by field name.
pub fn builtin_list_type(path: &[String], items: &[Value]) -> ListType {
    let last = path.last().map(String::as_str).unwrap_or_default();
    let has = |k: &str| items.iter().any(|i| i.get(k).is_some());
    match last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => ListType::Map(vec!["name".into()]),
        "ports" if has("containerPort") => ListType::Map(vec!["containerPort".into()]),
        "ports" if has("port") => ListType::Map(vec!["port".into()]),
        "conditions" => ListType::Map(vec!["type".into()]),
        "volumeMounts" => ListType::Map(vec!["mountPath".into()]),
        "ownerReferences" => ListType::Map(vec!["uid".into()]),
        "addresses" if path.len() == 2 && path[0] == "status" => ListType::Map(vec!["type".into()]),
        "finalizers" => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// List types from a CRD's structural schema (`x-kubernetes-list-type`).
pub fn schema_list_type(schema: &Value, path: &[String]) -> ListType {
    let mut cur = schema;
    for name in path {
        if cur["type"] == "array" {
            cur = &cur["items"];
        }
        let next = &cur["properties"][name.as_str()];
        cur = if next.is_null() {
            &cur["additionalProperties"]
        } else {
            next
        };
    }
    if path.len() == 2 && path[0] == "metadata" && path[1] == "finalizers" {
        return ListType::Set;
    }
    if path.len() == 2 && path[0] == "metadata" && path[1] == "ownerReferences" {
        return ListType::Map(vec!["uid".into()]);
    }
    match cur["x-kubernetes-list-type"].as_str() {
        Some("map") => ListType::Map(
            cur["x-kubernetes-list-map-keys"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        Some("set") => ListType::Set,
        _ => ListType::Atomic,
    }
}

fn key_matches(item: &Value, other: &Value, keys: &[String]) -> bool {
    keys.iter().all(|k| item.get(k) == other.get(k))
}

/// Strategic merge patch (see the module docs for the simplification).
pub fn strategic_merge(target: &mut Value, patch: &Value, lists: ListTypes) {
    let mut path = Vec::new();
    smp_value(target, patch, &mut path, lists);
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn smp_value(target: &mut Value, patch: &Value, path: &mut Vec<String>, lists: ListTypes) {
    let Some(pm) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (k, v) in pm {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(arr), Some(del)) = (
                target.get_mut(field).and_then(Value::as_array_mut),
                v.as_array(),
            ) {
                arr.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let tm = target.as_object_mut().expect("made an object above");
        if v.is_null() {
            tm.remove(k);
            continue;
        }
        if v.get("$patch").and_then(Value::as_str) == Some("delete") {
            tm.remove(k);
            continue;
        }
        path.push(k.clone());
        match (tm.get_mut(k), v) {
            (Some(t @ Value::Array(_)), Value::Array(pitems)) => {
                smp_list(t, pitems, path, lists);
            }
            (Some(t @ Value::Object(_)), Value::Object(_)) => smp_value(t, v, path, lists),
            _ => {
                let fresh = if v.is_object() {
                    let mut f = Value::Object(Map::new());
                    smp_value(&mut f, v, path, lists);
                    f
                } else if let Value::Array(pitems) = v {
                    let mut f = Value::Array(vec![]);
                    smp_list(&mut f, pitems, path, lists);
                    f
                } else {
                    v.clone()
                };
                tm.insert(k.clone(), fresh);
            }
        }
        path.pop();
    }
}

fn smp_list(target: &mut Value, pitems: &[Value], path: &mut Vec<String>, lists: ListTypes) {
    if pitems
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *target = strip_directives(&Value::Array(pitems.to_vec()));
        return;
    }
    let mut all = target.as_array().cloned().unwrap_or_default();
    all.extend(pitems.iter().cloned());
    let lt = lists(path, &all);
    let titems = target.as_array_mut().expect("caller passes an array");
    match lt {
        ListType::Atomic => *titems = pitems.iter().map(strip_directives).collect(),
        ListType::Set => {
            for p in pitems {
                if !titems.contains(p) {
                    titems.push(p.clone());
                }
            }
        }
        ListType::Map(keys) => {
            for p in pitems {
                let pos = titems.iter().position(|t| key_matches(t, p, &keys));
                let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        titems.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => smp_value(&mut titems[i], p, path, lists),
                    (None, false) => {
                        let mut fresh = Value::Object(Map::new());
                        smp_value(&mut fresh, p, path, lists);
                        titems.push(fresh);
                    }
                }
            }
        }
    }
}

/// A set of owned field paths, each a list of `fieldsV1` path elements (`f:spec`,
/// `k:{"name":"a"}`, `v:"x"`).
pub type FieldSet = BTreeSet<Vec<String>>;

fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        m.insert(k.clone(), item.get(k).cloned().unwrap_or(Value::Null));
    }
    format!("k:{}", Value::Object(m))
}

/// The leaf fields set in `obj`, as server-side apply counts them. Identity and
/// server-owned metadata (name, uid, resourceVersion, managedFields, ...) and
/// `apiVersion`/`kind` are not fields anyone owns.
pub fn field_set(obj: &Value, lists: ListTypes) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else {
        return out;
    };
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for f in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(x) = v.get(f) {
                        let mut names = vec!["metadata".to_string(), f.to_string()];
                        let mut prefix = vec!["f:metadata".to_string(), format!("f:{f}")];
                        collect(x, &mut names, &mut prefix, lists, &mut out);
                    }
                }
            }
            _ => {
                let mut names = vec![k.clone()];
                let mut prefix = vec![format!("f:{k}")];
                collect(v, &mut names, &mut prefix, lists, &mut out);
            }
        }
    }
    out
}

fn collect(
    v: &Value,
    names: &mut Vec<String>,
    prefix: &mut Vec<String>,
    lists: ListTypes,
    out: &mut FieldSet,
) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                names.push(k.clone());
                prefix.push(format!("f:{k}"));
                collect(child, names, prefix, lists, out);
                prefix.pop();
                names.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match lists(names, items) {
            ListType::Atomic => {
                out.insert(prefix.clone());
            }
            ListType::Set => {
                for i in items {
                    let mut p = prefix.clone();
                    p.push(format!("v:{i}"));
                    out.insert(p);
                }
            }
            ListType::Map(keys) => {
                for i in items {
                    prefix.push(item_key(i, &keys));
                    out.insert(prefix.clone());
                    if let Value::Object(m) = i {
                        for (k, child) in m {
                            names.push(k.clone());
                            prefix.push(format!("f:{k}"));
                            collect(child, names, prefix, lists, out);
                            prefix.pop();
                            names.pop();
                        }
                    }
                    prefix.pop();
                }
            }
        },
        _ => {
            out.insert(prefix.clone());
        }
    }
}

fn step<'a>(cur: &'a Value, elem: &str) -> Option<&'a Value> {
    if let Some(f) = elem.strip_prefix("f:") {
        cur.get(f)
    } else if let Some(k) = elem.strip_prefix("k:") {
        let key: Value = serde_json::from_str(k).ok()?;
        let keys: Vec<String> = key.as_object()?.keys().cloned().collect();
        cur.as_array()?.iter().find(|i| key_matches(i, &key, &keys))
    } else if let Some(v) = elem.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        cur.as_array()?.iter().find(|i| **i == want)
    } else {
        None
    }
}

/// The value at a field path, if present.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |cur, e| step(cur, e))
}

/// Remove the field at a path (a map key, a keyed list item or a set value).
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for e in parent_path {
        let next = if let Some(f) = e.strip_prefix("f:") {
            cur.get_mut(f)
        } else if e.starts_with("k:") || e.starts_with("v:") {
            let idx = {
                let found = step(cur, e);
                let Some(found) = found.cloned() else {
                    return;
                };
                cur.as_array()
                    .and_then(|a| a.iter().position(|i| *i == found))
            };
            match idx {
                Some(i) => cur.get_mut(i),
                None => None,
            }
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(found) = step(cur, last).cloned() {
        if let Some(a) = cur.as_array_mut() {
            a.retain(|i| *i != found);
        }
    }
}

/// Merge an applied configuration into a live object: maps merge, keyed lists merge by
/// key, set lists union, everything else is replaced.
pub fn apply_merge(live: &mut Value, applied: &Value, lists: ListTypes) {
    let mut names = Vec::new();
    apply_value(live, applied, &mut names, lists);
}

fn apply_value(live: &mut Value, applied: &Value, names: &mut Vec<String>, lists: ListTypes) {
    match (live, applied) {
        (l @ Value::Object(_), Value::Object(am)) => {
            let lm = l.as_object_mut().expect("matched an object");
            for (k, av) in am {
                names.push(k.clone());
                match lm.get_mut(k) {
                    Some(lv) => apply_value(lv, av, names, lists),
                    None => {
                        lm.insert(k.clone(), av.clone());
                    }
                }
                names.pop();
            }
        }
        (l @ Value::Array(_), Value::Array(aitems)) => {
            let litems = l.as_array_mut().expect("matched an array");
            let mut all = litems.clone();
            all.extend(aitems.iter().cloned());
            match lists(names, &all) {
                ListType::Atomic => *litems = aitems.clone(),
                ListType::Set => {
                    for a in aitems {
                        if !litems.contains(a) {
                            litems.push(a.clone());
                        }
                    }
                }
                ListType::Map(keys) => {
                    for a in aitems {
                        match litems.iter().position(|t| key_matches(t, a, &keys)) {
                            Some(i) => apply_value(&mut litems[i], a, names, lists),
                            None => litems.push(a.clone()),
                        }
                    }
                }
            }
        }
        (l, a) => *l = a.clone(),
    }
}

/// Render a field set in the `fieldsV1` format.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for e in path {
            let entry = cur.entry(e.clone()).or_insert_with(|| json!({}));
            cur = entry.as_object_mut().expect("nodes are objects");
        }
        if !cur.is_empty() || path.iter().any(|e| e.starts_with("k:")) {
            // a node that is owned itself and also has children
            let is_keyed_item = path.last().is_some_and(|e| e.starts_with("k:"));
            if is_keyed_item {
                cur.insert(".".into(), json!({}));
            }
        }
    }
    // Owned leaves that later got children need a "." marker too.
    fn mark(node: &mut Map<String, Value>, path: &mut Vec<String>, set: &FieldSet) {
        let keys: Vec<String> = node.keys().cloned().collect();
        for k in keys {
            if k == "." {
                continue;
            }
            path.push(k.clone());
            if let Some(Value::Object(child)) = node.get_mut(&k) {
                let has_children = child.keys().any(|c| c != ".");
                if has_children && set.contains(path) {
                    child.insert(".".into(), json!({}));
                }
                mark(child, path, set);
            }
            path.pop();
        }
    }
    mark(&mut root, &mut Vec::new(), set);
    Value::Object(root)
}

/// Parse a `fieldsV1` tree back into a field set.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(node: &Value, path: &mut Vec<String>, out: &mut FieldSet) {
        let Some(m) = node.as_object() else {
            return;
        };
        if !path.is_empty() && (m.is_empty() || m.contains_key(".")) {
            out.insert(path.clone());
        }
        for (k, child) in m {
            if k == "." {
                continue;
            }
            path.push(k.clone());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    /// Manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// `apiVersion` of the write.
    pub api_version: String,
    /// Time of the last write.
    pub time: String,
    /// Subresource (`status`) or empty.
    pub subresource: String,
    /// Owned fields.
    pub fields: FieldSet,
}

/// Parse `metadata.managedFields`.
pub fn managed_entries(obj: &Value) -> Vec<ManagedEntry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| ManagedEntry {
            manager: e["manager"].as_str().unwrap_or_default().to_string(),
            operation: e["operation"].as_str().unwrap_or("Update").to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: e["time"].as_str().unwrap_or_default().to_string(),
            subresource: e["subresource"].as_str().unwrap_or_default().to_string(),
            fields: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

/// Write `metadata.managedFields`, dropping entries that own nothing.
pub fn set_managed_entries(obj: &mut Value, entries: &[ManagedEntry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Record a non-apply write by `manager`: it takes ownership of every field whose value it
/// changed; fields that disappeared are dropped from every manager.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    api_version: &str,
    now: &str,
    lists: ListTypes,
) {
    let mut entries = old.map(managed_entries).unwrap_or_default();
    let new_set = field_set(new, lists);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| old.and_then(|o| value_at(o, p)) != value_at(new, p))
        .cloned()
        .collect();
    for e in &mut entries {
        e.fields
            .retain(|p| new_set.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| {
            e.manager == manager && e.operation == "Update" && e.subresource == subresource
        }) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now.to_string();
                e.api_version = api_version.to_string();
            }
            None => entries.push(ManagedEntry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                subresource: subresource.to_string(),
                fields: changed,
            }),
        }
    }
    set_managed_entries(new, &entries);
}

/// A field owned by another manager with a different value.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyConflict {
    /// The other manager.
    pub manager: String,
    /// The field, in `.spec.foo` form.
    pub field: String,
}

/// Render a field path the way conflict messages show it (`.spec.ports[port=80].name`).
pub fn display_path(path: &[String]) -> String {
    let mut s = String::new();
    for e in path {
        if let Some(f) = e.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = e.strip_prefix("k:") {
            let inner = serde_json::from_str::<Value>(k)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            s.push_str(&format!("[{inner}]"));
        } else if let Some(v) = e.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// Server-side apply of `applied` (already restricted to the fields this endpoint may set)
/// onto `live` (None: create). Returns the new object or the conflicts.
#[allow(clippy::too_many_arguments)]
pub fn server_side_apply(
    live: &Value,
    applied: &Value,
    manager: &str,
    subresource: &str,
    force: bool,
    api_version: &str,
    now: &str,
    lists: ListTypes,
    in_scope: &dyn Fn(&[String]) -> bool,
) -> Result<Value, Vec<ApplyConflict>> {
    let mut entries = managed_entries(live);
    let new_set: FieldSet = field_set(applied, lists)
        .into_iter()
        .filter(|p| in_scope(p))
        .collect();
    let is_me = |e: &ManagedEntry| {
        e.manager == manager && e.operation == "Apply" && e.subresource == subresource
    };
    let mut conflicts = Vec::new();
    for e in entries.iter_mut().filter(|e| !is_me(e)) {
        let mut taken = Vec::new();
        for p in &e.fields {
            if new_set.contains(p) && value_at(live, p) != value_at(applied, p) {
                if force {
                    taken.push(p.clone());
                } else {
                    conflicts.push(ApplyConflict {
                        manager: e.manager.clone(),
                        field: display_path(p),
                    });
                }
            }
        }
        for p in taken {
            e.fields.remove(&p);
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let mut out = live.clone();
    apply_merge(&mut out, applied, lists);
    let prev: FieldSet = entries
        .iter()
        .filter(|e| is_me(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !is_me(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    // Remove what this manager applied before, no longer applies, and nobody else owns.
    // Shallowest first: removing a keyed item removes its fields with it.
    let mut gone: Vec<&Vec<String>> = prev
        .iter()
        .filter(|p| !new_set.contains(*p) && !others.contains(*p))
        .collect();
    gone.sort_by_key(|p| p.len());
    let mut removed: Vec<&Vec<String>> = Vec::new();
    for p in gone {
        if removed.iter().any(|r| p.starts_with(r)) {
            continue;
        }
        // Keep a parent whose children are still owned by someone.
        let still_owned = new_set
            .iter()
            .chain(others.iter())
            .any(|q| q.len() > p.len() && q.starts_with(p));
        if !still_owned {
            remove_at(&mut out, p);
            removed.push(p);
        }
    }
    entries.retain(|e| !is_me(e));
    entries.push(ManagedEntry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version.to_string(),
        time: now.to_string(),
        subresource: subresource.to_string(),
        fields: new_set,
    });
    set_managed_entries(&mut out, &entries);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smp_merges_by_key() {
        let mut t = json!({ "spec": { "ports": [{ "port": 80, "name": "http" }, { "port": 443 }], "selector": { "a": "b" } } });
        let p = json!({ "spec": { "ports": [{ "port": 80, "name": "web" }, { "port": 8080 }, { "port": 443, "$patch": "delete" }], "selector": { "a": null, "c": "d" } } });
        strategic_merge(&mut t, &p, &builtin_list_type);
        assert_eq!(
            t,
            json!({ "spec": { "ports": [{ "port": 80, "name": "web" }, { "port": 8080 }], "selector": { "c": "d" } } })
        );
    }

    #[test]
    fn fields_v1_roundtrip() {
        let obj = json!({ "metadata": { "labels": { "a": "b" } }, "spec": { "ports": [{ "port": 80, "name": "x" }], "x": [1, 2] } });
        let set = field_set(&obj, &builtin_list_type);
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1,
            json!({ "f:metadata": { "f:labels": { "f:a": {} } }, "f:spec": { "f:ports": { "k:{\"port\":80}": { ".": {}, "f:name": {}, "f:port": {} } }, "f:x": {} } })
        );
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn apply_removes_dropped_fields_and_detects_conflicts() {
        let all = |_: &[String]| true;
        let live = json!({ "metadata": { "name": "a" } });
        let a1 = json!({ "spec": { "a": 1, "b": 2 } });
        let o1 = server_side_apply(
            &live,
            &a1,
            "m1",
            "",
            false,
            "v1",
            "t",
            &builtin_list_type,
            &all,
        )
        .unwrap();
        let a2 = json!({ "spec": { "a": 1 } });
        let o2 = server_side_apply(
            &o1,
            &a2,
            "m1",
            "",
            false,
            "v1",
            "t",
            &builtin_list_type,
            &all,
        )
        .unwrap();
        assert_eq!(o2["spec"], json!({ "a": 1 }));
        let a3 = json!({ "spec": { "a": 5 } });
        let err = server_side_apply(
            &o2,
            &a3,
            "m2",
            "",
            false,
            "v1",
            "t",
            &builtin_list_type,
            &all,
        )
        .unwrap_err();
        assert_eq!(err[0].field, ".spec.a");
        let o3 = server_side_apply(
            &o2,
            &a3,
            "m2",
            "",
            true,
            "v1",
            "t",
            &builtin_list_type,
            &all,
        )
        .unwrap();
        assert_eq!(o3["spec"]["a"], 5);
        assert_eq!(managed_entries(&o3).len(), 1);
    }
}
