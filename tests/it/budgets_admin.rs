//! `/v1/admin/budgets`: create, list, lookup, patch, freeze/unfreeze, fund, and their audit.

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD, amt, assert_invariant, on_redis_and_cluster};
use crate::helpers::send;

fn q(fx: &Fx, suffix: &str) -> [(&'static str, String); 2] {
    [("scope", fx.scope(suffix)), ("unit", USD.to_string())]
}

#[tokio::test]
async fn creating_a_budget_validates_the_scope_tenant_and_unit() {
    let fx = Fx::new().await;
    let b = fx.budget("/workspace:Eng", 500).await;
    assert_eq!(b["scope"], fx.scope("/workspace:eng"));
    assert_eq!((amt(&b, "allocated"), amt(&b, "remaining"), b["status"].clone()), (500, 500, json!("ACTIVE")));
    assert_eq!(b["tenant_id"], fx.tenant.as_str());
    assert_invariant(&b);
    fx.budget_with("/workspace:eng", USD, 1, json!({})).await.expect_error(409, "DUPLICATE_RESOURCE");
    let cases = [
        (json!({"scope": "workspace:eng"}), "scope"),
        (json!({"scope": format!("tenant:{}/agent:a/workspace:b", fx.tenant)}), "scope"),
        (json!({"scope": "tenant:someone-else"}), "scope"),
        (json!({"unit": "GOLD"}), "unit"),
        (json!({"allocated": {"unit": USD, "amount": -1}}), "allocated.amount"),
        (json!({"rollover_policy": "SOMETIMES"}), "rollover_policy"),
        (json!({"colour": 1}), "colour"),
    ];
    for (extra, field) in cases {
        let r = fx.budget_with("/agent:x", USD, 1, extra.clone()).await;
        assert!(r.expect_error(400, "INVALID_REQUEST").contains(field), "{extra}");
    }
    let mismatch = fx.budget_with("/agent:x", USD, 1, json!({"allocated": {"unit": "TOKENS", "amount": 1}})).await;
    mismatch.expect_error(400, "UNIT_MISMATCH");
    let no_tenant = send(
        fx.app
            .admin(Method::POST, "/v1/admin/budgets")
            .json(&json!({"scope": fx.scope(""), "unit": USD, "allocated": {"unit": USD, "amount": 1}})),
    )
    .await;
    assert!(no_tenant.expect_error(400, "INVALID_REQUEST").contains("tenant_id"));
    let unknown = send(fx.app.admin(Method::POST, "/v1/admin/budgets").json(&json!({"tenant_id": "no-such-tenant", "scope": "tenant:no-such-tenant", "unit": USD, "allocated": {"unit": USD, "amount": 1}}))).await;
    assert!(unknown.expect_error(400, "INVALID_REQUEST").contains("tenant_id"));
}

#[tokio::test]
async fn a_tenant_key_manages_its_own_budgets_within_its_permissions_and_scope_filter() {
    let fx = Fx::new().await;
    let key = |perms: Value, filter: Value| {
        let fx = &fx;
        async move {
            fx.app.create_key(&fx.tenant, json!({"permissions": perms, "scope_filter": filter})).await["key_secret"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let writer = key(json!(["budgets:write", "budgets:read"]), json!(["workspace:eng"])).await;
    let as_key = |k: &str, m: Method, p: &str| {
        fx.app.client.request(m, fx.app.admin_url(p)).header("x-cycles-api-key", k.to_string())
    };
    let body = |suffix: &str| json!({"scope": fx.scope(suffix), "unit": USD, "allocated": {"unit": USD, "amount": 10}});
    let ok = send(as_key(&writer, Method::POST, "/v1/admin/budgets").json(&body("/workspace:eng"))).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let denied = send(as_key(&writer, Method::POST, "/v1/admin/budgets").json(&body("/workspace:ops"))).await;
    assert!(denied.expect_error(403, "FORBIDDEN").contains("scope_filter"));
    let mut with_tenant = body("/workspace:eng/agent:a");
    with_tenant["tenant_id"] = json!(fx.tenant);
    send(as_key(&writer, Method::POST, "/v1/admin/budgets").json(&with_tenant))
        .await
        .expect_error(400, "INVALID_REQUEST");
    let reader = key(json!(["balances:read"]), json!([])).await;
    send(as_key(&reader, Method::POST, "/v1/admin/budgets").json(&body("/workspace:x")))
        .await
        .expect_error(403, "INSUFFICIENT_PERMISSIONS");
    let listed = send(as_key(&writer, Method::GET, "/v1/admin/budgets")).await;
    assert_eq!(listed.body["ledgers"].as_array().unwrap().len(), 1);
    let fund = send(
        as_key(&writer, Method::POST, "/v1/admin/budgets/fund")
            .query(&q(&fx, "/workspace:eng"))
            .json(&json!({"operation": "CREDIT", "amount": {"unit": USD, "amount": 5}})),
    )
    .await;
    assert_eq!(amt(&fund.body, "new_allocated"), 15, "{}", fund.text);
    let patch =
        send(as_key(&writer, Method::PATCH, "/v1/admin/budgets").query(&q(&fx, "/workspace:eng")).json(&json!({})))
            .await;
    patch.expect_error(401, "UNAUTHORIZED");
    let audit = fx.app.audit("operation=createBudget").await;
    assert_eq!(audit[0]["metadata"]["actor_type"], "api_key");
}

on_redis_and_cluster! {
    async fn funding_operations_follow_the_admin_arithmetic_and_replay_by_idempotency_key(fx: Fx) {
        fx.budget_with("", USD, 100, json!({"overdraft_limit": {"unit": USD, "amount": 100}})).await;
        let id = fx.reserve_with("r", json!({}), 100, json!({"overage_policy": "ALLOW_WITH_OVERDRAFT"})).await.body["reservation_id"].as_str().unwrap().to_string();
        fx.commit(&id, "c", 130).await;
        let l = fx.ledger("", USD).await;
        assert_eq!((amt(&l, "spent"), amt(&l, "debt"), amt(&l, "remaining")), (100, 30, -30));
        let credit = fx.fund("", "CREDIT", 50).await;
        assert_eq!(
            (
                amt(&credit.body, "new_allocated"),
                amt(&credit.body, "new_debt"),
                credit.body["new_remaining"]["amount"].clone()
            ),
            (150, 30, json!(20)),
            "credit keeps debt"
        );
        fx.fund("", "DEBIT", 21).await.expect_error(409, "BUDGET_EXCEEDED");
        let debit = fx.fund("", "DEBIT", 20).await;
        assert_eq!(debit.body["new_remaining"]["amount"], 0);
        let repay = fx.fund("", "REPAY_DEBT", 40).await;
        assert_eq!(
            (amt(&repay.body, "new_debt"), amt(&repay.body, "new_allocated")),
            (0, 140),
            "excess credited: {}",
            repay.text
        );
        let reset = fx.fund("", "RESET", 500).await;
        assert_eq!((amt(&reset.body, "new_allocated"), reset.body["new_remaining"]["amount"].clone()), (500, json!(400)));
        let spent = send(fx.app.admin(Method::POST, "/v1/admin/budgets/fund").query(&[("tenant_id", fx.tenant.clone()), ("scope", fx.scope("")), ("unit", USD.into())])
            .json(&json!({"operation": "RESET_SPENT", "amount": {"unit": USD, "amount": 300}, "spent": {"unit": USD, "amount": 10}}))).await;
        assert_eq!(
            (
                amt(&spent.body, "previous_spent"),
                amt(&spent.body, "new_spent"),
                spent.body["new_remaining"]["amount"].clone()
            ),
            (100, 10, json!(290))
        );
        assert_invariant(&fx.ledger("", USD).await);
        let idem = |amount: i64| {
            send(fx.app.admin(Method::POST, "/v1/admin/budgets/fund").query(&[("tenant_id", fx.tenant.clone()), ("scope", fx.scope("")), ("unit", USD.into())])
                .json(&json!({"operation": "CREDIT", "amount": {"unit": USD, "amount": amount}, "idempotency_key": "topup-1"})))
        };
        let first = idem(7).await;
        let again = idem(7).await;
        assert_eq!(first.body, again.body);
        assert_eq!(amt(&fx.ledger("", USD).await, "allocated"), 307, "credited once");
        idem(8).await.expect_error(409, "IDEMPOTENCY_MISMATCH");
        let no_tenant = send(
            fx.app
                .admin(Method::POST, "/v1/admin/budgets/fund")
                .query(&[("scope", fx.scope("")), ("unit", USD.into())])
                .json(&json!({"operation": "CREDIT", "amount": {"unit": USD, "amount": 1}})),
        )
        .await;
        assert!(no_tenant.expect_error(400, "INVALID_REQUEST").contains("tenant_id"));
        let spent_elsewhere = send(fx.app.admin(Method::POST, "/v1/admin/budgets/fund").query(&[("tenant_id", fx.tenant.clone()), ("scope", fx.scope("")), ("unit", USD.into())])
            .json(&json!({"operation": "CREDIT", "amount": {"unit": USD, "amount": 1}, "spent": {"unit": USD, "amount": 1}}))).await;
        assert!(spent_elsewhere.expect_error(400, "INVALID_REQUEST").contains("spent"));
        let fund_audit = fx.app.audit("operation=fundBudget&limit=100").await;
        assert_eq!(fund_audit.len(), 6, "one entry per applied funding, none for refusals or replays");
    }
}

#[tokio::test]
async fn patching_freezing_and_looking_up_budgets() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let patched = send(
        fx.app
            .admin(Method::PATCH, "/v1/admin/budgets")
            .query(&q(&fx, ""))
            .json(&json!({"overdraft_limit": {"unit": USD, "amount": 25}, "commit_overage_policy": "REJECT"})),
    )
    .await;
    assert_eq!(
        (amt(&patched.body, "overdraft_limit"), patched.body["commit_overage_policy"].clone()),
        (25, json!("REJECT")),
        "{}",
        patched.text
    );
    let id = fx.reserved("r", json!({}), 10).await;
    fx.commit(&id, "c", 11).await.expect_error(409, "BUDGET_EXCEEDED");
    let freeze = send(
        fx.app.admin(Method::POST, "/v1/admin/budgets/freeze").query(&q(&fx, "")).json(&json!({"reason": "audit"})),
    )
    .await;
    assert_eq!(freeze.body["status"], "FROZEN");
    let again = send(fx.app.admin(Method::POST, "/v1/admin/budgets/freeze").query(&q(&fx, ""))).await;
    again.expect_error(409, "INVALID_REQUEST");
    fx.fund("", "CREDIT", 1).await.expect_error(409, "BUDGET_FROZEN");
    let still = send(
        fx.app
            .admin(Method::PATCH, "/v1/admin/budgets")
            .query(&q(&fx, ""))
            .json(&json!({"overdraft_limit": {"unit": USD, "amount": 5}})),
    )
    .await;
    assert_eq!(still.status, 200, "property updates are allowed while frozen");
    send(fx.app.admin(Method::POST, "/v1/admin/budgets/unfreeze").query(&q(&fx, ""))).await;
    let missing = send(fx.app.admin(Method::GET, "/v1/admin/budgets/lookup").query(&q(&fx, "/agent:none"))).await;
    missing.expect_error(404, "BUDGET_NOT_FOUND");
    let bad = send(fx.app.admin(Method::GET, "/v1/admin/budgets/lookup").query(&[("scope", "nope")])).await;
    assert!(bad.expect_error(400, "INVALID_REQUEST").contains("scope"));
    let ops: Vec<String> = fx
        .app
        .audit("resource_type=budget&limit=100")
        .await
        .iter()
        .map(|e| e["operation"].as_str().unwrap().to_string())
        .collect();
    for op in ["createBudget", "updateBudget", "freezeBudget", "unfreezeBudget"] {
        assert!(ops.contains(&op.to_string()), "{op} audited: {ops:?}");
    }
}

#[tokio::test]
async fn listing_budgets_filters_sorts_and_pages() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    fx.budget("/workspace:a", 100).await;
    fx.budget("/workspace:b", 100).await;
    fx.budget_with("", "TOKENS", 50, json!({})).await;
    let id = fx.reserved("r", json!({"workspace": "a"}), 80).await;
    fx.commit(&id, "c", 80).await;
    let list = |query: String| {
        let fx = &fx;
        async move { send(fx.app.admin(Method::GET, &format!("/v1/admin/budgets?tenant_id={}&{query}", fx.tenant))).await }
    };
    let all = list(String::new()).await;
    assert_eq!(all.body["ledgers"].as_array().unwrap().len(), 4);
    assert_eq!(all.body["ledgers"][0]["scope"], fx.scope("/workspace:a"), "default sort: utilization desc");
    assert_eq!(list("unit=TOKENS".into()).await.body["ledgers"].as_array().unwrap().len(), 1);
    let prefix = list(format!("scope_prefix={}", fx.scope("/workspace:a"))).await;
    assert_eq!(prefix.body["ledgers"].as_array().unwrap().len(), 1);
    assert_eq!(list("utilization_min=0.5".into()).await.body["ledgers"].as_array().unwrap().len(), 1);
    let page1 = list("sort_by=scope&sort_dir=asc&limit=3".into()).await;
    let page2 =
        list(format!("sort_by=scope&sort_dir=asc&limit=3&cursor={}", page1.body["next_cursor"].as_str().unwrap()))
            .await;
    assert_eq!(page1.body["ledgers"].as_array().unwrap().len() + page2.body["ledgers"].as_array().unwrap().len(), 4);
    assert_eq!(page2.body["has_more"], false);
    for (query, field) in [
        ("utilization_min=0.9&utilization_max=0.1", "utilization_min"),
        ("utilization_max=2", "utilization_max"),
        ("sort_by=size", "sort_by"),
        ("over_limit=maybe", "over_limit"),
        ("status=OPEN", "status"),
    ] {
        assert!(list(query.into()).await.expect_error(400, "INVALID_REQUEST").contains(field), "{query}");
    }
}
