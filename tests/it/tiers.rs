//! Tiers as templates: the built-in four follow the admission flags until patched, operator
//! tiers are created and patched with validation, and a tenant's tier change applies the new
//! admission class and rate limit at once and adds the tier's budgets without touching
//! balances.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD, amt};
use crate::helpers::{Reply, TestApp, eventually, send};

fn tier<'a>(list: &'a Reply, name: &str) -> &'a Value {
    list.body["tiers"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["tier"] == name))
        .unwrap_or_else(|| panic!("{name} in {}", list.text))
}

async fn tiers(app: &TestApp) -> Reply {
    let r = send(app.admin(Method::GET, "/v1/admin/tiers")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r
}

pub async fn create_tier(app: &TestApp, body: Value) -> Value {
    let r = send(app.admin(Method::POST, "/v1/admin/tiers").json(&body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

fn limits(t: &Value) -> (String, i64, i64) {
    let class = t["admission_class"].as_str().unwrap_or_default().to_string();
    (class, t["rate_limit_per_second"].as_i64().unwrap_or(-1), t["rate_limit_burst"].as_i64().unwrap_or(-1))
}

#[tokio::test]
async fn built_in_tiers_are_listed_with_the_flag_defaults_and_keep_an_operators_patch() {
    let app = TestApp::spawn_with(|c| {
        c.tier_classes = "enterprise=premium,pro=premium,dev=bulk,free=standard".into();
        c.rate_limits = "free=7/14,dev=200/400,pro=1000/2000,enterprise=5000/10000".into();
    })
    .await;
    let list = tiers(&app).await;
    assert_eq!(limits(tier(&list, "free")), ("standard".into(), 7, 14));
    assert_eq!(limits(tier(&list, "pro")), ("premium".into(), 1000, 2000));
    assert_eq!(limits(tier(&list, "enterprise")), ("premium".into(), 5000, 10000));
    assert_eq!(tier(&list, "dev")["built_in"], true);
    let r = send(app.admin(Method::PATCH, "/v1/admin/tiers/pro").json(&json!({"rate_limit_per_second": 11}))).await;
    assert_eq!((r.status.as_u16(), r.body["rate_limit_burst"].as_i64()), (200, Some(22)), "{}", r.text);
    assert_eq!(r.body["operator_modified"], true);
    // Another instance starts with the default flags: the unpatched tiers follow them, the
    // patched one keeps the operator's values.
    let second = app.another_instance().await;
    let list = tiers(&app).await;
    assert_eq!(limits(tier(&list, "free")), ("bulk".into(), 50, 100));
    assert_eq!(limits(tier(&list, "pro")), ("premium".into(), 11, 22));
    second.stop().await.unwrap();
}

#[tokio::test]
async fn an_operator_tier_is_created_patched_and_audited() {
    let app = TestApp::spawn().await;
    let gold = create_tier(
        &app,
        json!({
            "tier": "gold", "description": "Gold customers", "admission_class": "premium",
            "rate_limit_per_second": 300, "max_reservation_ttl_ms": 600000, "default_reservation_ttl_ms": 30000,
            "default_budgets": [
                {"scope": "", "unit": USD, "allocated": {"unit": USD, "amount": 5000}},
                {"scope": "workspace:Default", "unit": "TOKENS", "allocated": {"unit": "TOKENS", "amount": 70}},
            ],
            "default_policies": [{"name": "caps", "scope_pattern": "workspace:*", "priority": 10, "caps": {"max_tokens": 4096}}],
        }),
    )
    .await;
    assert_eq!(limits(&gold), ("premium".into(), 300, 600));
    assert_eq!(gold["default_budgets"][1]["scope"], "workspace:default", "scopes are normalised");
    assert_eq!(gold["built_in"], false);
    let again = send(app.admin(Method::POST, "/v1/admin/tiers").json(&json!({"tier": "gold"}))).await;
    again.expect_error(409, "DUPLICATE_RESOURCE");
    let patched =
        send(app.admin(Method::PATCH, "/v1/admin/tiers/gold").json(&json!({"admission_class": "standard"}))).await;
    assert_eq!(limits(&patched.body), ("standard".into(), 300, 600), "{}", patched.text);
    let got = send(app.admin(Method::GET, "/v1/admin/tiers/gold")).await;
    assert_eq!(got.body["default_policies"][0]["priority"], 10);
    send(app.admin(Method::GET, "/v1/admin/tiers/nope")).await.expect_error(404, "NOT_FOUND");
    let ops: Vec<String> = app
        .audit("resource_type=tier")
        .await
        .iter()
        .map(|e| e["operation"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(ops.contains(&"createTier".into()) && ops.contains(&"updateTier".into()), "{ops:?}");
}

#[tokio::test]
async fn bad_tier_input_is_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"tier": "Gold!"}), "tier"),
        (json!({"description": "no name"}), "tier"),
        (
            json!({"tier": "t1", "default_budgets": [{"scope": "tenant:x", "unit": USD, "allocated": {"unit": USD, "amount": 1}}]}),
            "default_budgets[0].scope",
        ),
        (
            json!({"tier": "t1", "default_budgets": [{"scope": "planet:x", "unit": USD, "allocated": {"unit": USD, "amount": 1}}]}),
            "default_budgets[0].scope",
        ),
        (
            json!({"tier": "t1", "default_budgets": [{"scope": "", "unit": USD, "allocated": {"unit": "TOKENS", "amount": 1}}]}),
            "default_budgets[0].allocated.unit",
        ),
        (
            json!({"tier": "t1", "default_policies": [{"name": "p", "priority": 1}]}),
            "default_policies[0].scope_pattern",
        ),
        (
            json!({"tier": "t1", "default_policies": [{"name": "p", "scope_pattern": "*", "priority": -1}]}),
            "default_policies[0].priority",
        ),
        (json!({"tier": "t1", "default_policies": ["x"]}), "default_policies[0]"),
        (json!({"tier": "t1", "rate_limit_burst": 5}), "rate_limit_per_second"),
        (json!({"tier": "t1", "max_reservation_ttl_ms": 5}), "max_reservation_ttl_ms"),
        (json!({"tier": "t1", "admission_class": "gold"}), "admission_class"),
    ];
    for (body, field) in cases {
        let r = send(app.admin(Method::POST, "/v1/admin/tiers").json(&body)).await;
        let message = r.expect_error(400, "INVALID_REQUEST");
        assert!(message.contains(field), "{body}: {message}");
    }
    let r = send(app.admin(Method::PATCH, "/v1/admin/tiers/free").json(&json!({"tier": "x"}))).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("tier"));
    let tenant = crate::helpers::tenant_id("tt");
    let r = send(
        app.admin(Method::POST, "/v1/admin/tenants").json(&json!({"tenant_id": tenant, "name": "T", "tier": "nope"})),
    )
    .await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("tier"));
    app.create_tenant(&tenant).await;
    let r = send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{tenant}")).json(&json!({"tier": "nope"}))).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("tier"));
}

/// The runtime's gate counter for `tenant` in `class`, from the admin plane's `/metrics`.
async fn gate_requests(app: &TestApp, tenant: &str, class: &str) -> f64 {
    let r = send(app.admin(Method::GET, "/metrics")).await;
    let needle = format!("gateway_priority_requests_total{{tenant=\"{tenant}\",tier=\"{class}\"}}");
    r.text
        .lines()
        .find(|l| l.starts_with(&needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn limit_header(r: &Reply) -> i64 {
    r.header("x-ratelimit-limit").parse().unwrap_or(-1)
}

#[tokio::test]
async fn a_tenant_tier_change_applies_class_and_limits_at_once_and_adds_budgets_without_touching_balances() {
    let app =
        TestApp::spawn_with(|c| c.rate_limits = "free=500/1000,dev=500/1000,pro=500/1000,enterprise=500/1000".into())
            .await;
    let fx = Fx::on(app).await;
    fx.budget("", 1_000).await;
    let id = fx.reserved("before", json!({}), 100).await;
    assert_eq!(fx.commit(&id, "before-c", 40).await.status, 200);
    let before = fx.reserve("k0", json!({}), 10).await;
    assert_eq!(limit_header(&before), 500);
    assert!(gate_requests(&fx.app, &fx.tenant, "bulk").await >= 1.0);
    create_tier(
        &fx.app,
        json!({
            "tier": "gold", "admission_class": "premium", "rate_limit_per_second": 900, "rate_limit_burst": 900,
            "default_budgets": [
                {"scope": "", "unit": USD, "allocated": {"unit": USD, "amount": 999_999}},
                {"scope": "workspace:default", "unit": USD, "allocated": {"unit": USD, "amount": 300}},
            ],
        }),
    )
    .await;
    let mut config = fx.app.env.config();
    config.rate_limits = "free=500/1000,dev=500/1000,pro=500/1000,enterprise=500/1000".into();
    let second = crate::helpers::Instance::start(config).await.unwrap();
    let on_second = |key: String| {
        let url = format!("http://{}/v1/reservations", second.runtime.unwrap());
        let body = fx.reserve_body(&key, json!({}), 1);
        send(fx.app.client.post(url).header("x-cycles-api-key", &fx.key).json(&body))
    };
    assert_eq!(limit_header(&on_second("s0".into()).await), 500, "the second instance caches the free tier");
    let r =
        send(fx.app.admin(Method::PATCH, &format!("/v1/admin/tenants/{}", fx.tenant)).json(&json!({"tier": "gold"})))
            .await;
    assert_eq!((r.status.as_u16(), r.body["tier"].as_str()), (200, Some("gold")), "{}", r.text);
    let after = fx.reserve("k1", json!({}), 10).await;
    assert_eq!(limit_header(&after), 900, "the new tier's limit applies at once");
    assert!(gate_requests(&fx.app, &fx.tenant, "premium").await >= 1.0, "and its admission class");
    let mut i = 0;
    let seen = eventually(Duration::from_secs(3), || {
        i += 1;
        let f = on_second(format!("s{i}"));
        async move { limit_header(&f.await) == 900 }
    })
    .await;
    assert!(seen, "the other instance applies the tier change within about a second");
    let tenant_budget = fx.ledger("", USD).await;
    assert_eq!((amt(&tenant_budget, "allocated"), amt(&tenant_budget, "spent")), (1_000, 40), "kept as it was");
    assert_eq!(amt(&fx.ledger("/workspace:default", USD).await, "allocated"), 300, "the tier's new budget");
    // Patching the tier's limit reaches the tenant's next request.
    let r = send(
        fx.app
            .admin(Method::PATCH, "/v1/admin/tiers/gold")
            .json(&json!({"rate_limit_per_second": 77, "rate_limit_burst": 77})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(limit_header(&fx.reserve("k2", json!({}), 1).await), 77);
    second.stop().await.unwrap();
}
