//! The Cycles admin guide's examples that break the governance spec's schemas get the answers
//! README §Differences from the Cycles admin guide lists.

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD};
use crate::helpers::send;

async fn admin(fx: &Fx, method: Method, path: &str, body: Value) -> crate::helpers::Reply {
    send(fx.app.admin(method, path).json(&body)).await
}

fn names(r: &crate::helpers::Reply, field: &str) -> bool {
    r.status == 400 && r.body["error"] == "INVALID_REQUEST" && r.text.contains(field)
}

#[tokio::test]
async fn the_admin_guides_bare_integers_and_unknown_fields_are_refused_naming_the_field() {
    let fx = Fx::new().await;
    let t = &fx.tenant;
    let scope = format!("tenant:{t}");
    let r = admin(
        &fx,
        Method::POST,
        "/v1/admin/budgets",
        json!({"tenant_id": t, "scope": scope, "unit": USD, "allocated": 100_000_000}),
    )
    .await;
    assert!(names(&r, "allocated"), "{}", r.text);
    fx.budget("", 100).await;
    let fund = format!("/v1/admin/budgets/fund?scope={scope}&unit={USD}");
    let r = admin(&fx, Method::POST, &fund, json!({"operation": "CREDIT", "amount": 50_000_000})).await;
    assert!(names(&r, "amount"), "{}", r.text);
    let patch = format!("/v1/admin/budgets?scope={scope}&unit={USD}");
    let r = admin(&fx, Method::PATCH, &patch, json!({"overdraft_limit": 10_000_000})).await;
    assert!(names(&r, "overdraft_limit"), "{}", r.text);
    let r = admin(
        &fx,
        Method::POST,
        "/v1/admin/tenants",
        json!({"tenant_id": "guide-acme", "name": "Acme", "status": "ACTIVE"}),
    )
    .await;
    assert!(names(&r, "status"), "{}", r.text);
    let policy = json!({"tenant_id": t, "name": "limit-gpt4", "scope_pattern": format!("{scope}/agent:*"),
        "caps": {"max_tokens": 4096}, "overage_policy": "REJECT", "priority": 100});
    let r = admin(&fx, Method::POST, "/v1/admin/policies", policy).await;
    assert!(names(&r, "overage_policy"), "{}", r.text);
    let key =
        json!({"tenant_id": t, "name": "production-key", "permissions": ["reservations:create", "events:create"]});
    let r = admin(&fx, Method::POST, "/v1/admin/api-keys", key).await;
    assert!(names(&r, "permissions"), "{}", r.text);
    let r = send(fx.app.admin(Method::GET, &format!("/v1/admin/audit-logs?tenant_id={t}"))).await;
    assert_eq!(r.status, 404, "{}", r.text);
}
