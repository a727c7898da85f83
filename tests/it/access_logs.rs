//! No admin token reaches the engine's logs: the binary runs with debug logging while a token
//! is minted, used, guessed at and revoked, and its log is searched afterwards.

use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::process::Command;

use crate::helpers::{ADMIN_KEY, Env, eventually, send};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn no_token_appears_in_the_engines_debug_log() {
    let env = Env::new().await;
    let admin = free_port();
    let log_path = std::env::temp_dir().join(format!("tollgate-log-{}.log", env.redis_prefix));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("serve")
        .env("DATABASE_URL", &env.database_url)
        .env("REDIS_URL", &env.redis_url)
        .env("TOLLGATE_REDIS_PREFIX", &env.redis_prefix)
        .env("TOLLGATE_RUNTIME_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("TOLLGATE_ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("ADMIN_API_KEY", ADMIN_KEY)
        .env("TOLLGATE_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("the tollgate binary starts");
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{admin}{path}");
    let ready = eventually(Duration::from_secs(30), || async {
        client.get(url("/readyz")).send().await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(ready, "the engine did not become ready");
    let as_admin = |m: Method, path: &str| client.request(m, url(path)).header("x-admin-api-key", ADMIN_KEY);
    let r = send(as_admin(Method::POST, "/v1/admin/principals").json(&json!({"type": "user", "name": "a"}))).await;
    let id = r.body["principal_id"].as_str().unwrap().to_string();
    send(as_admin(Method::POST, &format!("/v1/admin/principals/{id}/roles")).json(&json!({"role_id": "owner"}))).await;
    let r =
        send(as_admin(Method::POST, &format!("/v1/admin/principals/{id}/api-keys")).json(&json!({"name": "k"}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (pat, key_id) =
        (r.body["key_secret"].as_str().unwrap().to_string(), r.body["key_id"].as_str().unwrap().to_string());
    let guess = "tg_pat_0123456789abcdefghijABCDEFGHIJ0123456789";
    assert_eq!(send(client.get(url("/v1/admin/tenants")).bearer_auth(&pat)).await.status, 200);
    assert_eq!(send(client.get(url("/v1/admin/tenants")).bearer_auth(guess)).await.status, 401);
    send(as_admin(Method::POST, &format!("/v1/admin/principals/{id}/api-keys/{key_id}/revoke"))).await;
    let refused = eventually(Duration::from_secs(2), || async {
        send(client.get(url("/v1/admin/tenants")).bearer_auth(&pat)).await.status == 401
    })
    .await;
    assert!(refused);
    child.kill().await.unwrap();
    let text = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(text.len() > 1000, "the engine logged at debug level: {text}");
    assert!(!text.contains(&pat["tg_pat_".len()..]), "the token is in the log");
    assert!(!text.contains(&guess["tg_pat_".len()..]), "a presented token is in the log");
}
