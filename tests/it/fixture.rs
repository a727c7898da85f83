//! A tenant with an API key on a running engine, and the calls runtime tests make.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, send, tenant_id};

pub const USD: &str = "USD_MICROCENTS";

pub struct Fx {
    pub app: Arc<TestApp>,
    pub tenant: String,
    pub key: String,
}

impl Fx {
    pub async fn new() -> Fx {
        Fx::on(TestApp::spawn().await).await
    }

    /// A tenant on an engine whose ledger is a three-master Redis Cluster.
    pub async fn cluster() -> Fx {
        Fx::on(TestApp::spawn_on_cluster().await).await
    }

    /// A fresh tenant and key on `app`.
    pub async fn on(app: TestApp) -> Fx {
        Fx::with_tenant(&Arc::new(app)).await
    }

    /// Another fresh tenant and key on a shared engine.
    pub async fn with_tenant(app: &Arc<TestApp>) -> Fx {
        let tenant = tenant_id("rt");
        app.create_tenant(&tenant).await;
        let key = app.create_key(&tenant, json!({})).await["key_secret"].as_str().unwrap().to_string();
        Fx { app: app.clone(), tenant, key }
    }

    /// `tenant:<t>` followed by `suffix` (e.g. `/agent:bot`).
    pub fn scope(&self, suffix: &str) -> String {
        format!("tenant:{}{suffix}", self.tenant)
    }

    /// Creates a budget at `tenant:<t><suffix>` with `extra` merged into the request.
    pub async fn budget_with(&self, suffix: &str, unit: &str, allocated: i64, extra: Value) -> Reply {
        let mut body = json!({
            "tenant_id": self.tenant, "scope": self.scope(suffix), "unit": unit,
            "allocated": {"unit": unit, "amount": allocated},
        });
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        send(self.app.admin(Method::POST, "/v1/admin/budgets").json(&body)).await
    }

    pub async fn budget(&self, suffix: &str, allocated: i64) -> Value {
        let r = self.budget_with(suffix, USD, allocated, json!({})).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }

    /// The admin view of one budget.
    pub async fn ledger(&self, suffix: &str, unit: &str) -> Value {
        let r = send(
            self.app
                .admin(Method::GET, "/v1/admin/budgets/lookup")
                .query(&[("scope", self.scope(suffix)), ("unit", unit.into())]),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }

    pub fn rt(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app.client.request(method, self.app.runtime_url(path)).header("x-cycles-api-key", &self.key)
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        send(self.rt(Method::POST, path).json(&body)).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        send(self.rt(Method::GET, path)).await
    }

    /// `{"tenant": <t>}` plus the given levels.
    pub fn subject(&self, levels: Value) -> Value {
        let mut s = json!({ "tenant": self.tenant });
        if let (Some(o), Value::Object(l)) = (s.as_object_mut(), levels) {
            o.extend(l);
        }
        s
    }

    pub fn reserve_body(&self, key: &str, levels: Value, amount: i64) -> Value {
        json!({
            "idempotency_key": key,
            "subject": self.subject(levels),
            "action": {"kind": "llm.completion", "name": "model-a"},
            "estimate": {"unit": USD, "amount": amount},
        })
    }

    /// Reserves `amount` for `levels` with `extra` merged into the body.
    pub async fn reserve_with(&self, key: &str, levels: Value, amount: i64, extra: Value) -> Reply {
        let mut body = self.reserve_body(key, levels, amount);
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        self.post("/v1/reservations", body).await
    }

    pub async fn reserve(&self, key: &str, levels: Value, amount: i64) -> Reply {
        self.reserve_with(key, levels, amount, json!({})).await
    }

    /// Reserves and asserts success; returns the reservation id.
    pub async fn reserved(&self, key: &str, levels: Value, amount: i64) -> String {
        let r = self.reserve(key, levels, amount).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["decision"], "ALLOW", "{}", r.text);
        r.body["reservation_id"].as_str().unwrap().to_string()
    }

    pub async fn commit(&self, id: &str, key: &str, actual: i64) -> Reply {
        self.post(
            &format!("/v1/reservations/{id}/commit"),
            json!({"idempotency_key": key, "actual": {"unit": USD, "amount": actual}}),
        )
        .await
    }

    pub async fn release(&self, id: &str, key: &str) -> Reply {
        self.post(&format!("/v1/reservations/{id}/release"), json!({"idempotency_key": key})).await
    }

    pub async fn extend(&self, id: &str, key: &str, by: i64) -> Reply {
        self.post(&format!("/v1/reservations/{id}/extend"), json!({"idempotency_key": key, "extend_by_ms": by})).await
    }

    pub async fn event(&self, key: &str, levels: Value, actual: i64, extra: Value) -> Reply {
        let mut body = json!({
            "idempotency_key": key,
            "subject": self.subject(levels),
            "action": {"kind": "llm.completion", "name": "model-a"},
            "actual": {"unit": USD, "amount": actual},
        });
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        self.post("/v1/events", body).await
    }

    pub async fn fund(&self, suffix: &str, operation: &str, amount: i64) -> Reply {
        send(
            self.app
                .admin(Method::POST, "/v1/admin/budgets/fund")
                .query(&[("tenant_id", self.tenant.clone()), ("scope", self.scope(suffix)), ("unit", USD.into())])
                .json(&json!({"operation": operation, "amount": {"unit": USD, "amount": amount}})),
        )
        .await
    }

    pub async fn set_tenant_status(&self, status: &str) {
        let r = send(
            self.app
                .admin(Method::PATCH, &format!("/v1/admin/tenants/{}", self.tenant))
                .json(&json!({"status": status})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

/// An amount field of a balance or ledger (`{"unit", "amount"}`).
pub fn amt(v: &Value, field: &str) -> i64 {
    v[field]["amount"].as_i64().unwrap_or_else(|| panic!("{field} in {v}"))
}

/// Asserts `remaining = allocated − spent − reserved − debt` on a balance or ledger.
pub fn assert_invariant(b: &Value) {
    let lhs = i128::from(amt(b, "remaining"));
    let rhs = i128::from(amt(b, "allocated"))
        - i128::from(amt(b, "spent"))
        - i128::from(amt(b, "reserved"))
        - i128::from(amt(b, "debt"));
    assert_eq!(lhs, rhs, "ledger invariant broken: {b}");
}

/// Defines a scenario once and runs it twice: `<name>::on_redis` against the single Redis and
/// `<name>::on_redis_cluster` against the three-master cluster.
macro_rules! on_redis_and_cluster {
    ($(#[$doc:meta])* async fn $name:ident($fx:ident: Fx) $body:block) => {
        $(#[$doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn scenario($fx: Fx) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_redis() {
                scenario(Fx::new().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_redis_cluster() {
                scenario(Fx::cluster().await).await
            }
        }
    };
}
pub(crate) use on_redis_and_cluster;
