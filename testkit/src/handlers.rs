//! HTTP routing: discovery documents and the REST verbs on resources.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{ListParams, PatchType, Store, WriteCtx};
use crate::watch::{self, WatchRequest};

/// Shared state of the HTTP handlers.
#[derive(Debug)]
pub struct AppState {
    /// The objects.
    pub store: Arc<Store>,
    /// `host:port` advertised in `/api`.
    pub server_address: String,
    /// How often watches with `allowWatchBookmarks` get a bookmark.
    pub bookmark_interval: Duration,
}

/// The router serving everything.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(64 << 20))
        .with_state(state)
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

async fn handle(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let result = dispatch(&st, &method, &uri, &headers, body);
    match result {
        Ok(resp) => {
            tracing::debug!(%method, %path, code = resp.status().as_u16(), "request");
            resp
        }
        Err(e) => {
            tracing::debug!(%method, %path, code = e.code, reason = e.reason, message = e.message, "request failed");
            e.into_response()
        }
    }
}

struct Target {
    rt: ResourceType,
    ns: Option<String>,
    name: Option<String>,
    status: bool,
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0-metallb-testkit",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn dispatch(
    st: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let path = uri.path();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let store = &st.store;
    let discovery = |v: Option<Value>| {
        v.map(|v| json_response(StatusCode::OK, &v))
            .ok_or_else(|| ApiError::path_not_found(path))
    };
    let aggregated = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=APIGroupDiscoveryList"));
    if aggregated && matches!(segs.as_slice(), ["api"] | ["apis"]) {
        let doc = store.with_registry(|r| r.aggregated(segs == ["api"]));
        return Ok((
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            )],
            serde_json::to_vec(&doc).unwrap_or_default(),
        )
            .into_response());
    }
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(json_response(StatusCode::OK, &version_info())),
        ["healthz"] | ["readyz"] | ["livez"] => return Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => {
            return discovery(Some(
                store.with_registry(|r| r.core_versions(&st.server_address)),
            ))
        }
        ["apis"] => return discovery(Some(store.with_registry(|r| r.group_list()))),
        ["api", v] => return discovery(store.with_registry(|r| r.resource_list("", v))),
        ["apis", g] => return discovery(store.with_registry(|r| r.group(g))),
        ["apis", g, v] => return discovery(store.with_registry(|r| r.resource_list(g, v))),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::path_not_found(path)),
    };
    let target =
        resolve(store, group, version, rest).ok_or_else(|| ApiError::path_not_found(path))?;
    let q: HashMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let user_agent_manager = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string();
    let explicit_manager = q.get("fieldManager").cloned().unwrap_or_default();
    let mut ctx = WriteCtx {
        field_manager: if explicit_manager.is_empty() {
            user_agent_manager
        } else {
            explicit_manager.clone()
        },
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        strict: q.get("fieldValidation").is_some_and(|v| v == "Strict"),
        force: flag("force"),
    };
    let ns = target.ns.as_deref();
    let rt = &target.rt;
    let parse_body = || -> ApiResult<Value> {
        if content_type.contains("yaml") {
            serde_yaml::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}")))
        }
    };
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match (method.clone(), &target.name) {
        (Method::GET, None) => {
            let params = list_params(&q)?;
            if flag("watch") {
                return watch(st, rt, ns, params, &q);
            }
            ok(store.list(rt, ns, &params)?)
        }
        (Method::GET, Some(name)) => ok(store.get(rt, ns, name)?),
        (Method::POST, None) => {
            let created = store.create(rt, ns, parse_body()?, &ctx)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        (Method::PUT, Some(name)) => {
            ok(store.update(rt, ns, name, parse_body()?, target.status, &ctx)?)
        }
        (Method::PATCH, Some(name)) => {
            let ty = match content_type.as_str() {
                "application/merge-patch+json" => PatchType::Merge,
                "application/json-patch+json" => PatchType::Json,
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                "application/apply-patch+yaml" | "application/apply-patch+json" => PatchType::Apply,
                other => return Err(ApiError::unsupported_media(other)),
            };
            if ty == PatchType::Apply {
                ctx.field_manager = explicit_manager;
            }
            let existed = ty == PatchType::Apply && store.get(rt, ns, name).is_ok();
            let out = store.patch(rt, ns, name, ty, &body, target.status, &ctx)?;
            let code = if ty == PatchType::Apply && !existed && !ctx.dry_run {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &out))
        }
        (Method::DELETE, Some(name)) => {
            let opts: Value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).unwrap_or(Value::Null)
            };
            let dry = ctx.dry_run
                || opts["dryRun"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == "All"));
            ok(store.delete(rt, ns, name, &opts, dry)?)
        }
        (Method::DELETE, None) => ok(store.delete_collection(rt, ns, &list_params(&q)?)?),
        (m, _) => Err(ApiError::method_not_allowed(m.as_str(), &rt.plural)),
    }
}

fn resolve(store: &Store, group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let namespaced_path = rest.len() >= 3
        && rest[0] == "namespaces"
        && store.resolve(group, version, rest[2]).is_some()
        && !(group.is_empty() && matches!(rest[2], "status" | "finalize") && rest.len() == 3);
    let (ns, plural, name, sub) = if namespaced_path {
        if rest.len() > 5 {
            return None;
        }
        (Some(rest[1]), rest[2], rest.get(3), rest.get(4))
    } else {
        if rest.is_empty() || rest.len() > 3 {
            return None;
        }
        (None, rest[0], rest.get(1), rest.get(2))
    };
    let rt = store.resolve(group, version, plural)?;
    if rt.namespaced != ns.is_some() && (name.is_some() || !rt.namespaced) {
        return None;
    }
    let status = match sub {
        None => false,
        Some(&"status") if rt.status_subresource => true,
        Some(_) => return None,
    };
    Some(Target {
        rt,
        ns: ns.map(str::to_string),
        name: name.map(|s| s.to_string()),
        status,
    })
}

fn list_params(q: &HashMap<String, String>) -> ApiResult<ListParams> {
    Ok(ListParams {
        labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))?,
        limit: match q.get("limit") {
            Some(l) => l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            None => 0,
        },
        continue_token: q.get("continue").cloned(),
    })
}

fn watch(
    st: &AppState,
    rt: &ResourceType,
    ns: Option<&str>,
    params: ListParams,
    q: &HashMap<String, String>,
) -> ApiResult<Response> {
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let rv = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))?,
        ),
    };
    let send_initial = flag("sendInitialEvents");
    let headers = [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-cache, private"),
    ];
    let start = match st.store.watch(rt, ns, &params, rv, send_initial) {
        Ok(s) => s,
        Err(e) if e.code == 410 => {
            // A real server accepts the watch and then sends one ERROR event.
            return Ok((StatusCode::OK, headers, watch::expired_body(&e)).into_response());
        }
        Err(e) => return Err(e),
    };
    let req = WatchRequest {
        rt: rt.clone(),
        namespace: ns.map(str::to_string),
        params,
        bookmarks: flag("allowWatchBookmarks"),
        send_initial,
        timeout: q
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|t| *t > 0)
            .map(Duration::from_secs),
        bookmark_interval: st.bookmark_interval,
    };
    let rx = watch::spawn(req, start);
    Ok((StatusCode::OK, headers, Body::from_stream(rx)).into_response())
}
