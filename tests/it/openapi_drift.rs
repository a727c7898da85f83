//! The drift test: for every Cycles operation Tollgate serves, the served document agrees with
//! the Cycles spec it follows (vendored in `spec/cycles/`, see its README): the same
//! `operationId`, parameters (name, in, required), response statuses, request body required
//! fields, and success response required fields.
//!
//! What "agrees" means where a difference could not break a client written against the spec:
//! - a parameter only Tollgate documents must be optional (an extra filter a spec client never
//!   sends); every parameter of the spec must be there with the same `in` and `required`;
//! - a success response may require more fields than the spec (Tollgate always sends them, and
//!   the document promises it); every field the spec requires must be required;
//! - request bodies require exactly the spec's fields.
//!
//! Anything else that differs must be listed in [`DIFFERENCES`] with its reason; keep it short and
//! fix the document (or the handler) instead where Tollgate is wrong.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::helpers::{TestApp, send};

/// The documents each plane follows. The action kind registry's document also describes the admin
/// plane's quota counter operations, so it is compared with both planes (an operation a plane
/// does not serve is not compared). The other v0.1.26 extension specs are not vendored.
const SPECS: [(&str, &str); 4] = [
    ("runtime", "spec/cycles/cycles-protocol-v0.yaml"),
    ("admin", "spec/cycles/cycles-governance-admin-v0.1.25.yaml"),
    ("runtime", "spec/cycles/cycles-action-kinds-v0.1.26.yaml"),
    ("admin", "spec/cycles/cycles-action-kinds-v0.1.26.yaml"),
];

/// Deliberate differences: (plane, operation `METHOD path` or `*` for all, the difference, why).
const DIFFERENCES: &[(&str, &str, &str, &str)] = &[
    (
        "*",
        "*",
        "status 503",
        "any operation answers 503 with Retry-After while Redis or Postgres is unavailable; the specs list no 503",
    ),
    (
        "runtime",
        "*",
        "status 429",
        "admission (per-key and per-tenant rate limits, the priority gate) may refuse any runtime request with 429",
    ),
    (
        "admin",
        "POST /v1/admin/policies",
        "status 404",
        "an admin caller naming an unknown tenant_id gets 404 TENANT_NOT_FOUND (the spec's code, as on \
         createWebhookSubscription); the spec lists no 404 on createPolicy",
    ),
    (
        "runtime",
        "GET /v1/action-kinds",
        "status 304",
        "the spec asks servers to honour If-None-Match (\"prefer 304 over 200\") but lists no 304",
    ),
    (
        "runtime",
        "GET /v1/action-kinds/{kind}",
        "status 400",
        "a path with U+0000 is refused with 400 before any handler runs, as on every route; the spec lists no 400",
    ),
];

fn allowed(plane: &str, op: &str, what: &str) -> bool {
    DIFFERENCES.iter().any(|(p, o, w, _)| (*p == "*" || *p == plane) && (*o == "*" || *o == op) && *w == what)
}

fn load_spec(file: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).expect("vendored spec");
    serde_norway::from_str(&text).expect("the spec parses as YAML")
}

/// Follows local `$ref`s (`#/components/...`).
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        v = r.trim_start_matches("#/").split('/').fold(doc, |node, key| &node[key]);
    }
    v
}

/// The fields a schema requires, `allOf` parts included.
fn required(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let s = resolve(doc, schema);
    let mut out: BTreeSet<String> =
        s["required"].as_array().into_iter().flatten().filter_map(|f| f.as_str().map(String::from)).collect();
    for part in s["allOf"].as_array().into_iter().flatten() {
        out.extend(required(doc, part));
    }
    out
}

/// `(name, in, required)` of an operation's parameters (path-level ones included); header
/// names compare case-insensitively, as HTTP does.
fn parameters(doc: &Value, item: &Value, op: &Value) -> BTreeSet<(String, String, bool)> {
    let all =
        item["parameters"].as_array().into_iter().flatten().chain(op["parameters"].as_array().into_iter().flatten());
    all.map(|p| resolve(doc, p))
        .map(|p| {
            let at = p["in"].as_str().unwrap_or_default().to_string();
            let name = p["name"].as_str().unwrap_or_default();
            let name = if at == "header" { name.to_ascii_lowercase() } else { name.to_string() };
            (name, at, p["required"].as_bool().unwrap_or(false))
        })
        .collect()
}

fn statuses(op: &Value) -> BTreeSet<String> {
    op["responses"].as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default()
}

fn json_schema<'a>(doc: &'a Value, holder: &'a Value) -> Option<&'a Value> {
    resolve(doc, holder)["content"]["application/json"].get("schema")
}

/// Every difference between one served operation and the spec's, as sentences.
fn compare(
    plane: &str,
    name: &str,
    (doc, item, op): (&Value, &Value, &Value),
    spec: (&Value, &Value, &Value),
) -> Vec<String> {
    let (spec_doc, spec_item, spec_op) = spec;
    let mut out = Vec::new();
    let mut differ = |what: String, detail: String| {
        if !allowed(plane, name, &what) {
            out.push(format!("{plane} {name}: {what}: {detail}"));
        }
    };
    if op["operationId"] != spec_op["operationId"] {
        differ("operationId".into(), format!("served {}, spec {}", op["operationId"], spec_op["operationId"]));
    }
    let (ours, theirs) = (parameters(doc, item, op), parameters(spec_doc, spec_item, spec_op));
    for (n, at, req) in theirs.difference(&ours) {
        let served = ours
            .iter()
            .find(|(m, _, _)| m == n)
            .map_or("not at all".to_string(), |(_, a, r)| format!("in {a}, required {r}"));
        differ(format!("parameter {n}"), format!("the spec has it in {at}, required {req}; the document {served}"));
    }
    for (n, at, req) in ours.difference(&theirs).filter(|(n, _, _)| theirs.iter().all(|(m, _, _)| m != n)) {
        if *req {
            differ(format!("parameter {n}"), format!("only the document has it ({at}), and requires it"));
        }
    }
    let (ours, theirs) = (statuses(op), statuses(spec_op));
    for s in ours.symmetric_difference(&theirs) {
        let side = if ours.contains(s) { "only the document" } else { "only the spec" };
        differ(format!("status {s}"), format!("{side} lists it"));
    }
    let body = |d: &Value, o: &Value| o.get("requestBody").and_then(|b| json_schema(d, b)).map(|s| required(d, s));
    let (ours, theirs) = (body(doc, op), body(spec_doc, spec_op));
    if ours != theirs {
        differ("request body".into(), format!("required fields {ours:?} in the document, {theirs:?} in the spec"));
    }
    for (status, response) in spec_op["responses"].as_object().into_iter().flatten().filter(|(s, _)| s.starts_with('2'))
    {
        let Some(theirs) = json_schema(spec_doc, response).map(|s| required(spec_doc, s)) else { continue };
        let ours = json_schema(doc, &op["responses"][status]).map(|s| required(doc, s)).unwrap_or_default();
        let missing: Vec<_> = theirs.difference(&ours).collect();
        if !missing.is_empty() {
            differ(format!("response {status}"), format!("the spec requires {missing:?}, the document does not"));
        }
    }
    out
}

#[tokio::test]
async fn the_served_documents_agree_with_the_cycles_specs() {
    let app = TestApp::spawn().await;
    let mut problems = Vec::new();
    let mut compared = 0;
    for (plane, file) in SPECS {
        let url = if plane == "admin" { app.admin_url("/openapi.json") } else { app.runtime_url("/openapi.json") };
        let doc = send(app.client.get(url)).await.body;
        let spec = load_spec(file);
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in ["get", "post", "put", "patch", "delete"] {
                let (Some(op), Some(spec_op)) = (item.get(method), spec["paths"][path].get(method)) else { continue };
                let name = format!("{} {path}", method.to_uppercase());
                problems.extend(compare(plane, &name, (&doc, item, op), (&spec, &spec["paths"][path], spec_op)));
                compared += 1;
            }
        }
    }
    assert!(compared >= 40, "only {compared} operations are shared with the specs");
    assert!(problems.is_empty(), "the served documents differ from the Cycles specs:\n{}", problems.join("\n"));
}
