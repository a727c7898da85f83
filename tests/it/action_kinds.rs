//! The public action kind registry on the runtime plane (cycles-action-kinds v0.1.26):
//! `GET /v1/action-kinds` and `GET /v1/action-kinds/{kind}`.

use serde_json::Value;

use crate::helpers::{TestApp, send};

/// Every page of the list, following `next_cursor`, with the query `query`.
async fn all_pages(app: &TestApp, query: &str) -> Vec<Value> {
    let (mut kinds, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let mut url = app.runtime_url(&format!("/v1/action-kinds?{query}"));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let r = send(app.client.get(url)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["version"], "0.1.26");
        kinds.extend(r.body["kinds"].as_array().unwrap().iter().cloned());
        assert_eq!(r.body["has_more"].as_bool(), Some(r.body.get("next_cursor").is_some()), "{}", r.text);
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return kinds,
        }
    }
}

#[tokio::test]
async fn the_registry_lists_all_sixty_two_built_in_kinds_without_a_key_in_the_specs_order_across_pages() {
    let app = TestApp::spawn().await;
    let first = send(app.client.get(app.runtime_url("/v1/action-kinds"))).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["kinds"].as_array().unwrap().len(), 50, "the default page is 50");
    assert_eq!(first.body["has_more"], true);
    assert!(!first.header("etag").is_empty());
    let kinds = all_pages(&app, "limit=7").await;
    assert_eq!(kinds.len(), 62);
    assert_eq!(kinds[0]["kind"], "llm.completion");
    assert_eq!(kinds[61]["kind"], "unknown.call", "the catch-all is last");
    let email = kinds.iter().find(|k| k["kind"] == "message.email.send").unwrap();
    assert_eq!(email["risk_class"], "external_side_effect");
    assert_eq!(email["policy_key_spec"], serde_json::json!({"host": true, "recipient_domain": true}));
    assert_eq!(email["mcp_tool_prefixes"][0], "send_email");
    let db = kinds.iter().find(|k| k["kind"] == "db.write").unwrap();
    assert_eq!(db["policy_key_spec"], serde_json::json!({"resource_type": "table"}));
    assert!(kinds.iter().all(|k| k["deprecated"] == false));
    let high = all_pages(&app, "risk_class=high_risk&limit=2").await;
    let names: Vec<&str> = high.iter().map(|k| k["kind"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["db.schema_change", "code.exec", "code.deploy", "payment.charge", "payment.refund", "video.generate"]
    );
}

#[tokio::test]
async fn one_kind_is_found_by_its_exact_string_and_anything_else_is_404() {
    let app = TestApp::spawn().await;
    let r = send(app.client.get(app.runtime_url("/v1/action-kinds/payment.charge"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["kind"], "payment.charge");
    assert_eq!(r.body["risk_class"], "high_risk");
    assert_eq!(r.body["policy_key_spec"]["host"], true);
    for unknown in ["payment", "payment.charg", "PAYMENT.CHARGE", "custom.acme.erp.post"] {
        let r = send(app.client.get(app.runtime_url(&format!("/v1/action-kinds/{unknown}")))).await;
        let code = r.expect_error(404, "NOT_FOUND");
        assert!(code.contains(unknown), "{}", r.text);
    }
}

#[tokio::test]
async fn bad_filters_and_foreign_cursors_are_400_naming_the_parameter() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("risk_class=dangerous", "risk_class"),
        ("risk_class=", "risk_class"),
        ("deprecated=", "deprecated"),
        ("deprecated=maybe", "deprecated"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=not-a-cursor", "cursor"),
    ] {
        let r = send(app.client.get(app.runtime_url(&format!("/v1/action-kinds?{query}")))).await;
        let message = r.expect_error(400, "INVALID_REQUEST");
        assert!(message.contains(field), "{query}: {}", r.text);
    }
    let page = send(app.client.get(app.runtime_url("/v1/action-kinds?limit=2"))).await;
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let other = app.runtime_url(&format!("/v1/action-kinds?limit=2&risk_class=read_only&cursor={cursor}"));
    send(app.client.get(other)).await.expect_error(400, "INVALID_REQUEST");
}

#[tokio::test]
async fn a_source_over_sixty_requests_a_minute_gets_429_with_retry_after_but_revalidations_still_get_304() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits = "free=1000/2000,dev=1000/2000,pro=1000/2000,enterprise=1000/2000".into()
    })
    .await;
    let first = send(app.client.get(app.runtime_url("/v1/action-kinds"))).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let etag = first.header("etag").to_string();
    for _ in 1..60 {
        let r = send(app.client.get(app.runtime_url("/v1/action-kinds/llm.completion"))).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let refused = send(app.client.get(app.runtime_url("/v1/action-kinds"))).await;
    refused.expect_error(429, "LIMIT_EXCEEDED");
    let wait: u64 = refused.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let cached = send(app.client.get(app.runtime_url("/v1/action-kinds")).header("if-none-match", &etag)).await;
    assert_eq!(cached.status, 304);
    assert_eq!(cached.header("etag"), etag);
}
