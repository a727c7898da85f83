//! The served OpenAPI documents (`GET /openapi.json` on both planes): they are public, name
//! every route the routers serve and nothing else, agree with the Cycles specs vendored in
//! `spec/cycles/`, and pass `openapi-spec-validator` as OpenAPI 3.1.

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{TestApp, send};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn documents(app: &TestApp) -> (Value, Value) {
    let runtime = send(app.client.get(app.runtime_url("/openapi.json"))).await;
    let admin = send(app.client.get(app.admin_url("/openapi.json"))).await;
    assert_eq!(runtime.status, 200, "{}", runtime.text);
    assert_eq!(admin.status, 200, "{}", admin.text);
    (runtime.body, admin.body)
}

/// `(METHOD, path)` of every operation in a document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        for m in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            out.insert((m.to_uppercase(), path.clone()));
        }
    }
    out
}

/// The routes a router file declares, `(METHOD, path)`, read as text so that a route added
/// there is found here without anyone listing it.
fn declared_routes(file: &str) -> BTreeSet<(String, String)> {
    let src = std::fs::read_to_string(Path::new(ROOT).join(file)).expect("router source");
    let flat = src.split_whitespace().collect::<Vec<_>>().join(" ").replace(".route( \"", ".route(\"");
    let mut out = BTreeSet::new();
    for part in flat.split(".route(\"").skip(1) {
        let (path, rest) = part.split_once('"').expect("a quoted path");
        let call = rest.split(".route(").next().unwrap_or_default();
        for m in METHODS {
            if call.contains(&format!("{m}(")) && !call.contains(&format!("_{m}(")) {
                out.insert((m.to_uppercase(), path.to_string()));
            }
        }
    }
    out
}

#[tokio::test]
async fn both_planes_serve_an_openapi_3_1_document_without_credentials() {
    let app = TestApp::spawn().await;
    let (runtime, admin) = documents(&app).await;
    for (doc, schemes) in [(&runtime, &["ApiKeyAuth"][..]), (&admin, &["ApiKeyAuth", "AdminKeyAuth", "BearerAuth"][..])]
    {
        assert!(doc["openapi"].as_str().unwrap_or_default().starts_with("3.1."), "{}", doc["openapi"]);
        assert!(doc["info"]["title"].as_str().unwrap_or_default().starts_with("Tollgate"));
        for s in schemes {
            assert!(doc["components"]["securitySchemes"].get(*s).is_some(), "no security scheme {s}");
        }
    }
    let scheme = |doc: &Value, s: &str| doc["components"]["securitySchemes"][s]["name"].clone();
    assert_eq!(scheme(&runtime, "ApiKeyAuth"), "X-Cycles-API-Key");
    assert_eq!(scheme(&admin, "AdminKeyAuth"), "X-Admin-API-Key");
    // The admin document's security is the access table's: public, admin-only and tenant-key routes.
    assert_eq!(admin["paths"]["/livez"]["get"]["security"], serde_json::json!([]));
    assert_eq!(admin["paths"]["/v1/admin/tenants"]["post"]["security"][0], serde_json::json!({"AdminKeyAuth": []}));
    assert_eq!(admin["paths"]["/v1/webhooks"]["get"]["security"][0], serde_json::json!({"ApiKeyAuth": []}));
}

/// `/metrics` on the runtime plane is served only by instances started with `--plane runtime`;
/// the admin document describes it.
const RUNTIME_ONLY_WITHOUT_ADMIN: &[(&str, &str)] = &[("GET", "/metrics")];

#[tokio::test]
async fn every_route_the_routers_serve_is_in_the_document_and_every_operation_is_served() {
    let app = TestApp::spawn().await;
    let (runtime, admin) = documents(&app).await;
    let mut problems = Vec::new();
    for (plane, doc, router) in
        [("runtime", &runtime, "src/runtime_api/mod.rs"), ("admin", &admin, "src/admin_api/mod.rs")]
    {
        let (served, documented) = (declared_routes(router), operations(doc));
        assert!(served.len() >= 9, "{router}: {served:?}");
        let exempt = |(m, p): &(String, String)| plane == "runtime" && RUNTIME_ONLY_WITHOUT_ADMIN.contains(&(m, p));
        for (m, p) in served.difference(&documented).filter(|r| !exempt(r)) {
            problems.push(format!(
                "{m} {p} is served by {router} but has no operation in the {plane} document: annotate its handler \
                 with #[utoipa::path] and add the handler to `paths(...)` in src/{plane}_api/openapi.rs"
            ));
        }
        for (m, p) in documented.difference(&served) {
            problems.push(format!("{m} {p} is in the {plane} document but {router} declares no such route"));
        }
        for (m, p) in &documented {
            let url = p.replace('{', "x").replace('}', "");
            let rb = if plane == "admin" {
                app.admin(m.parse().expect("method"), &url)
            } else {
                app.client.request(m.parse::<Method>().expect("method"), app.runtime_url(&url))
            };
            let reply = send(rb).await;
            if reply.status == 405 || (reply.status == 404 && reply.body["message"] == "no such route") {
                problems.push(format!("{m} {p} is in the {plane} document but the plane answers {}", reply.status));
            }
        }
    }
    assert!(problems.is_empty(), "the documents and the routers differ:\n{}", problems.join("\n"));
}

#[tokio::test]
async fn both_documents_pass_openapi_spec_validator() {
    let app = TestApp::spawn().await;
    let (runtime, admin) = documents(&app).await;
    let python = crate::sdk_clients::sdk_python(Path::new(ROOT)).await;
    let dir = std::env::temp_dir().join(format!("tollgate-openapi-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (plane, doc) in [("runtime", runtime), ("admin", admin)] {
        let file = dir.join(format!("{plane}.json"));
        std::fs::write(&file, serde_json::to_vec_pretty(&doc).expect("json")).expect("write document");
        let out = tokio::process::Command::new(&python)
            .args(["-m", "openapi_spec_validator", "--schema", "3.1"])
            .arg(&file)
            .output()
            .await
            .expect("run openapi_spec_validator");
        assert!(
            out.status.success(),
            "the {plane} document is not valid OpenAPI 3.1:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
