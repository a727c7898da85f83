//! Key rotation (a successor, the predecessor valid for a grace period) and `last_used_at`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{TestApp, eventually, send, tenant_id};

fn instant(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("a timestamp"), &Rfc3339).expect("RFC 3339")
}

async fn rotate(app: &TestApp, key_id: &str, body: Value) -> crate::helpers::Reply {
    send(app.admin(Method::POST, &format!("/v1/admin/api-keys/{key_id}/rotate")).json(&body)).await
}

#[tokio::test]
async fn a_rotated_key_stays_valid_until_its_grace_ends_to_the_second() {
    let app = TestApp::spawn().await;
    let t = tenant_id("rot");
    app.create_tenant(&t).await;
    let old = app.create_key(&t, json!({"permissions": ["reservations:create", "balances:read"]})).await;
    let (old_secret, old_id) = (old["key_secret"].as_str().unwrap(), old["key_id"].as_str().unwrap());
    assert_eq!(app.introspect(old_secret).await.status, 200);

    let r = rotate(&app, old_id, json!({"grace_seconds": 2})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new_secret = r.body["key_secret"].as_str().unwrap();
    assert_ne!(new_secret, old_secret);
    assert_eq!(r.body["rotated_from"], old_id);
    assert_eq!(r.body["tenant_id"], t.as_str());
    assert_eq!(r.body["permissions"], json!(["reservations:create", "balances:read"]));
    let grace_end = instant(&r.body["predecessor_expires_at"]);
    assert_eq!(grace_end - instant(&r.body["created_at"]), time::Duration::seconds(2));

    assert_eq!(app.introspect(new_secret).await.status, 200);
    while OffsetDateTime::now_utc() < grace_end - time::Duration::milliseconds(300) {
        assert_eq!(app.introspect(old_secret).await.status, 200, "the predecessor is valid during the grace");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wait = (grace_end + time::Duration::milliseconds(300)) - OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    app.introspect(old_secret).await.expect_error(401, "UNAUTHORIZED");
    assert_eq!(app.introspect(new_secret).await.status, 200, "the successor outlives the grace");

    let logs = app.audit(&format!("tenant_id={t}&operation=rotateApiKey")).await;
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["resource_id"], r.body["key_id"]);
}

#[tokio::test]
async fn rotating_a_revoked_or_unknown_key_or_with_a_bad_grace_is_refused() {
    let app = TestApp::spawn().await;
    let t = tenant_id("rotbad");
    app.create_tenant(&t).await;
    let k = app.create_key(&t, json!({})).await;
    let id = k["key_id"].as_str().unwrap();
    let msg = rotate(&app, id, json!({"grace_seconds": -1})).await.expect_error(400, "INVALID_REQUEST").to_string();
    assert!(msg.contains("grace_seconds"), "{msg}");
    rotate(&app, id, json!({})).await.expect_error(400, "INVALID_REQUEST");
    rotate(&app, id, json!({"grace_seconds": 31 * 24 * 3600})).await.expect_error(400, "INVALID_REQUEST");
    rotate(&app, "no-such-key", json!({"grace_seconds": 0})).await.expect_error(404, "NOT_FOUND");
    send(app.admin(Method::DELETE, &format!("/v1/admin/api-keys/{id}"))).await;
    rotate(&app, id, json!({"grace_seconds": 0})).await.expect_error(409, "KEY_REVOKED");
}

#[tokio::test]
async fn last_used_at_records_a_keys_use_shortly_after_it() {
    let app = TestApp::spawn().await;
    let t = tenant_id("used");
    app.create_tenant(&t).await;
    let k = app.create_key(&t, json!({})).await;
    let secret = k["key_secret"].as_str().unwrap().to_string();
    let last_used = || async {
        let r = send(app.admin(Method::GET, &format!("/v1/admin/api-keys?tenant_id={t}"))).await;
        r.body["keys"][0]["last_used_at"].clone()
    };
    assert_eq!(last_used().await, Value::Null, "never used yet");
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let r =
        send(app.client.get(app.runtime_url(&format!("/v1/balances?tenant={t}"))).header("x-cycles-api-key", &secret))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let recorded = eventually(Duration::from_secs(5), || async { last_used().await.is_string() }).await;
    assert!(recorded, "last_used_at was written");
    assert!(instant(&last_used().await) >= before);
}
