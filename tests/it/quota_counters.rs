//! The action quota counters on the admin plane: what reserves counted, read back through
//! `GET /v1/admin/action-quota-counters`, and reset by an operator with
//! `POST /v1/admin/action-quota-counters/reset` (audited, with a `quota.counter_reset` event).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, on_redis_and_cluster};
use crate::helpers::{Reply, eventually, send};
use crate::policy_enforcement::policy;

const PATH: &str = "/v1/admin/action-quota-counters";

fn in_run(fx: &Fx, key: &str, run: &str) -> Value {
    let mut body = fx.reserve_body(key, json!({}), 1);
    body["subject"]["dimensions"] = json!({"run_id": run});
    body
}

async fn per_run_quota(fx: &Fx, max_calls: i64) -> String {
    let quota = json!([{"action_kind": "llm.completion", "max_calls": max_calls, "window": "per_run"}]);
    policy(fx, json!({"name": "per run", "scope_pattern": fx.scope(""), "action_quotas": quota})).await
}

async fn counters(fx: &Fx, query: &[(&str, &str)]) -> Reply {
    let mut q = vec![("tenant_id", fx.tenant.as_str())];
    q.extend_from_slice(query);
    send(fx.app.admin(Method::GET, PATH).query(&q)).await
}

async fn reset(fx: &Fx, body: Value) -> Reply {
    send(fx.app.admin(Method::POST, &format!("{PATH}/reset")).json(&body)).await
}

on_redis_and_cluster! {
    async fn counters_show_what_reserves_took_and_a_reset_lets_the_next_reserve_in(fx: Fx) {
        fx.budget("", 1000).await;
        let policy_id = per_run_quota(&fx, 2).await;
        for i in 0..2 {
            assert_eq!(fx.post("/v1/reservations", in_run(&fx, &format!("a{i}"), "run-a")).await.status, 200);
        }
        assert_eq!(fx.post("/v1/reservations", in_run(&fx, "b0", "run-b")).await.status, 200);
        fx.post("/v1/reservations", in_run(&fx, "a2", "run-a")).await.expect_error(409, "ACTION_QUOTA_EXCEEDED");

        let r = counters(&fx, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let list = r.body["counters"].as_array().unwrap();
        assert_eq!(list.len(), 2, "{}", r.text);
        let a = list.iter().find(|c| c["window_key"] == "run-a").unwrap();
        assert_eq!(
            (a["action_kind"].clone(), a["scope"].clone(), a["window"].clone(), a["used"].clone(), a["limit"].clone()),
            (json!("llm.completion"), json!(fx.scope("")), json!("per_run"), json!(2), json!(2)),
            "{}", r.text
        );
        assert_eq!((a["remaining"].clone(), a["policy_id"].clone()), (json!(0), json!(policy_id)));
        let one = counters(&fx, &[("run_id", "run-b")]).await;
        assert_eq!(one.body["counters"].as_array().unwrap().len(), 1, "{}", one.text);

        let body = json!({"tenant_id": fx.tenant, "scope": fx.scope(""), "action_kind": "llm.completion",
            "window": "per_run", "window_key": "run-a", "reason": "stuck run"});
        let done = reset(&fx, body.clone()).await;
        assert_eq!(done.status, 200, "{}", done.text);
        assert_eq!((done.body["previous_used"].clone(), done.body["counter"]["used"].clone()), (json!(2), json!(0)));
        assert_eq!(fx.post("/v1/reservations", in_run(&fx, "a3", "run-a")).await.status, 200, "the reset let it in");

        let zero = counters(&fx, &[("run_id", "run-a")]).await;
        assert_eq!(zero.body["counters"][0]["used"], json!(1), "{}", zero.text);
        let mut gone = body;
        gone["window_key"] = json!("run-nope");
        reset(&fx, gone).await.expect_error(404, "NOT_FOUND");

        let q = [("tenant_id", fx.tenant.as_str()), ("limit", "100")];
        // The outbox drain delivers the script's event shortly after the reset.
        let found = eventually(Duration::from_secs(10), || async {
            let ev = send(fx.app.admin(Method::GET, "/v1/admin/events").query(&q)).await;
            ev.body["events"].as_array().into_iter().flatten().any(|e| {
                e["event_type"] == "quota.counter_reset" && e["data"]["previous_used"] == json!(2) && e["data"]["reason"] == "stuck run"
            })
        })
        .await;
        assert!(found, "a quota.counter_reset event with the previous count and the reason");
        let audit = send(fx.app.admin(Method::GET, "/v1/admin/audit/logs").query(&q)).await;
        assert!(audit.text.contains("resetActionQuotaCounter"), "{}", audit.text);
    }
}

#[tokio::test]
async fn bad_counter_input_is_400_naming_the_field() {
    let fx = Fx::new().await;
    let r = send(fx.app.admin(Method::GET, PATH)).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("tenant_id"), "{}", r.text);
    for (field, value) in [("window", "per_week"), ("include_zero", "maybe"), ("limit", "500")] {
        let r = counters(&fx, &[(field, value)]).await;
        assert!(r.expect_error(400, "INVALID_REQUEST").contains(field), "{field}: {}", r.text);
    }
    let ok = json!({"tenant_id": fx.tenant, "scope": fx.scope(""), "action_kind": "llm.completion",
        "window": "per_run", "window_key": "r"});
    let mut no_tenant = ok.clone();
    no_tenant.as_object_mut().unwrap().remove("tenant_id");
    let mut risk = ok.clone();
    risk["action_kind"] = json!("__risk__");
    let mut window = ok.clone();
    window["window"] = json!("per_week");
    let mut reason = ok.clone();
    reason["reason"] = json!("x".repeat(513));
    for (field, body) in [("tenant_id", no_tenant), ("risk_class", risk), ("window", window), ("reason", reason)] {
        let r = reset(&fx, body).await;
        assert!(r.expect_error(400, "INVALID_REQUEST").contains(field), "{field}: {}", r.text);
    }
}

#[tokio::test]
async fn a_tenant_key_sees_only_its_own_tenants_counters() {
    let fx = Fx::new().await;
    let other = Fx::with_tenant(&fx.app).await;
    for f in [&fx, &other] {
        f.budget("", 100).await;
        per_run_quota(f, 5).await;
        assert_eq!(f.post("/v1/reservations", in_run(f, "k", "run")).await.status, 200);
    }
    let get = |key: &str, query: Vec<(&'static str, String)>| {
        let req = fx.app.client.get(fx.app.admin_url(PATH)).header("x-cycles-api-key", key.to_string()).query(&query);
        send(req)
    };
    let own = get(&fx.key, vec![]).await;
    assert_eq!(own.status, 200, "{}", own.text);
    let list = own.body["counters"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", own.text);
    assert_eq!(list[0]["scope"], json!(fx.scope("")));
    assert_eq!(own.header("x-cycles-permission-deprecated"), "balances:read", "the default key holds balances:read");
    let theirs = get(&fx.key, vec![("tenant_id", other.tenant.clone())]).await;
    assert!(theirs.status == 403, "{}", theirs.text);
    let quota_key = fx.app.create_key(&fx.tenant, json!({"permissions": ["action_quotas:read"]})).await;
    let primary = get(quota_key["key_secret"].as_str().unwrap(), vec![]).await;
    assert_eq!(primary.status, 200, "{}", primary.text);
    assert!(primary.headers.get("x-cycles-permission-deprecated").is_none());
    let reset = send(
        fx.app
            .client
            .post(fx.app.admin_url(&format!("{PATH}/reset")))
            .header("x-cycles-api-key", &fx.key)
            .json(&json!({})),
    )
    .await;
    assert!(matches!(reset.status.as_u16(), 401 | 403), "reset is admin-only: {}", reset.text);
}
