//! The generated server secret lives in a 0600 file of the data directory, not in Postgres;
//! a secret an older version kept in Postgres is moved to the file once.

use std::os::unix::fs::PermissionsExt;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Instance, TestApp, send, tenant_id};

fn secret_file(app: &TestApp) -> std::path::PathBuf {
    app.env.data_dir.join("server-secret")
}

async fn db_rows(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    sqlx::query_as("SELECT name, value FROM server_secrets").fetch_all(&app.pg).await.unwrap()
}

/// A key that authenticates on `instance`'s admin plane.
async fn key_works(app: &TestApp, instance: &Instance, secret: &str) -> bool {
    let url = format!("http://{}/v1/auth/introspect", instance.admin.unwrap());
    send(app.client.get(url).header("x-cycles-api-key", secret)).await.status == 200
}

#[tokio::test]
async fn the_generated_secret_is_a_0600_file_outside_the_database_and_survives_a_restart() {
    let app = TestApp::spawn().await;
    let tenant = tenant_id("sec");
    app.create_tenant(&tenant).await;
    let key = app.create_key(&tenant, json!({})).await["key_secret"].as_str().unwrap().to_string();

    let path = secret_file(&app);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", path.display());
    let secret = hex::decode(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    assert_eq!(secret.len(), 32);
    let rows = db_rows(&app).await;
    assert!(rows.iter().all(|(name, value)| name != "api_key_hash" && value != &secret), "{rows:?}");

    // Another start on the same data directory (a restart) accepts the key issued before.
    let again = app.another_instance().await;
    assert!(key_works(&app, &again, &key).await);
    again.stop().await.unwrap();
}

#[tokio::test]
async fn a_secret_stored_in_postgres_by_an_older_version_moves_to_the_file_and_keys_keep_working() {
    let app = TestApp::spawn().await;
    let tenant = tenant_id("sec");
    app.create_tenant(&tenant).await;
    let key = app.create_key(&tenant, json!({})).await["key_secret"].as_str().unwrap().to_string();
    // Rewind to what an older version left: the secret in Postgres, no file, no fingerprint.
    let path = secret_file(&app);
    let secret = hex::decode(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    std::fs::remove_file(&path).unwrap();
    sqlx::query("DELETE FROM server_secrets").execute(&app.pg).await.unwrap();
    sqlx::query("INSERT INTO server_secrets (name, value) VALUES ('api_key_hash', $1)")
        .bind(&secret)
        .execute(&app.pg)
        .await
        .unwrap();

    let upgraded = app.another_instance().await;
    assert!(key_works(&app, &upgraded, &key).await, "the key issued under the legacy secret still works");
    let moved = hex::decode(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    assert_eq!(moved, secret);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let rows = db_rows(&app).await;
    assert!(rows.iter().all(|(name, value)| name != "api_key_hash" && value != &secret), "{rows:?}");
    upgraded.stop().await.unwrap();
}

#[tokio::test]
async fn an_instance_without_the_secret_file_refuses_to_start_once_another_has_generated_it() {
    let app = TestApp::spawn().await;
    let mut config = app.env.config();
    config.data_dir = std::env::temp_dir().join(format!("tollgate-data-other-{}", uuid::Uuid::new_v4().simple()));
    let err = Instance::start(config.clone()).await.err().expect("refused").to_string();
    let chain = format!("{err:#}");
    assert!(chain.contains("server secret"), "{chain}");
    let _ = std::fs::remove_dir_all(&config.data_dir);
    // The first instance still serves.
    let r = send(app.admin(Method::GET, "/v1/admin/tenants")).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
