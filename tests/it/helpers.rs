//! The test harness: each test gets its own Postgres database and Redis key prefix, and a
//! real `Application` listening on loopback port 0. Dropping a [`TestApp`] stops it and
//! removes its database and keys, also when the test fails.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode, header::HeaderMap};
use secrecy::SecretString;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tollgate::Application;
use tollgate::{LogFormat, Plane, ServeConfig, StoreConfig};

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

pub fn pg_admin_url() -> String {
    std::env::var("TOLLGATE_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let cut = base.rfind('/').unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..cut]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A database and Redis prefix owned by one test.
pub struct Env {
    pub db_name: String,
    pub database_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
    /// Redis Cluster node URLs when the test runs against the cluster (else empty).
    pub cluster_nodes: Vec<String>,
    /// The engine's data directory (the generated server secret), shared by its instances.
    pub data_dir: std::path::PathBuf,
}

impl Env {
    pub async fn new() -> Env {
        // Every test makes an Env before any HTTP client (reqwest needs a TLS provider).
        tollgate::internals::install_crypto_provider();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let db_name = format!("tollgate_test_{id}");
        let admin = PgPool::connect(&pg_admin_url()).await.expect("connect to the test Postgres");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&admin)
            .await
            .expect("create the test database");
        admin.close().await;
        Env {
            database_url: with_database(&pg_admin_url(), &db_name),
            db_name,
            redis_url: redis_url(),
            redis_prefix: format!("tgtest-{id}"),
            cluster_nodes: Vec::new(),
            data_dir: std::env::temp_dir().join(format!("tollgate-data-{id}")),
        }
    }

    /// An environment whose ledger is the test process's Redis Cluster.
    pub async fn on_cluster() -> Env {
        let mut env = Env::new().await;
        env.cluster_nodes = tokio::task::spawn_blocking(crate::cluster::nodes).await.expect("cluster");
        env
    }

    pub fn config(&self) -> ServeConfig {
        ServeConfig {
            plane: Plane::All,
            runtime_addr: "127.0.0.1:0".parse().unwrap(),
            admin_addr: "127.0.0.1:0".parse().unwrap(),
            redis_url: self.redis_url.clone(),
            redis_cluster_nodes: self.cluster_nodes.clone(),
            redis_prefix: self.redis_prefix.clone(),
            redis_timeout_ms: 1000,
            durable_ack: false,
            group_commit_max: 64,
            group_commit_always: false,
            admin_api_key: Some(SecretString::from(ADMIN_KEY)),
            key_hash_secret: None,
            data_dir: self.data_dir.clone(),
            log_format: LogFormat::Pretty,
            http_max_connections: 4096,
            http_header_timeout_ms: 10_000,
            http_idle_timeout_ms: 30_000,
            max_concurrent: 1024,
            tier_classes: "enterprise=premium,pro=standard,dev=bulk,free=bulk".into(),
            class_shares: "premium=100,standard=80,bulk=50".into(),
            // Tests drive many requests per second from one tenant; the admission tests set their own.
            rate_limits: "off".into(),
            test_fault: None,
            metrics_token: None,
            metrics_tenant_label: true,
            // Event workers on short clocks, so tests see events and deliveries quickly.
            events_workers: true,
            outbox_poll_ms: 50,
            outbox_reclaim_ms: 1_000,
            webhook_poll_ms: 50,
            webhook_timeout_ms: 2_000,
            webhook_concurrency: 16,
            webhook_per_subscription: 2,
            event_retention_days: 90,
            delivery_retention_days: 14,
            key_usage_flush_ms: 100,
            store: StoreConfig { database_url: self.database_url.clone(), pg_max_connections: 5 },
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
        let (db, prefix) = (self.db_name.clone(), self.redis_prefix.clone());
        let mut servers = self.cluster_nodes.clone();
        if servers.is_empty() {
            servers.push(self.redis_url.clone());
        }
        // Drop runs inside the test's runtime (and during a panic): clean up on a thread of
        // its own with its own runtime.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                if let Ok(admin) = PgPool::connect(&pg_admin_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&admin).await;
                    admin.close().await;
                }
                for server in &servers {
                    delete_keys(server, &prefix).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Deletes every key under `prefix` (tests only; SCAN is fine here).
pub async fn delete_keys(redis_url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
        else {
            return;
        };
        // One key per DEL: on a cluster node, keys of different tenants live in different slots.
        for key in &keys {
            let _: Result<i64, _> = redis::cmd("DEL").arg(key).query_async(&mut conn).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// A running instance.
pub struct Instance {
    pub runtime: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Instance {
    pub async fn start(config: ServeConfig) -> anyhow::Result<Instance> {
        let app = Application::build(config).await?;
        let (runtime, admin, stop) = (app.runtime_addr(), app.admin_addr(), app.shutdown_token());
        let task = tokio::spawn(app.run_until_stopped());
        Ok(Instance { runtime, admin, stop, task: Some(task) })
    }

    /// Stops the instance as SIGTERM would and waits until it has.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One instance on its own database and prefix, plus a client.
pub struct TestApp {
    pub instance: Instance,
    pub client: reqwest::Client,
    pub pg: PgPool,
    pub env: Env,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// Asserts the spec's error body and returns its message.
    pub fn expect_error(&self, status: u16, code: &str) -> &str {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        assert_eq!(self.body["error"], code, "unexpected error code; body: {}", self.text);
        assert_eq!(self.body["request_id"].as_str(), Some(self.header("x-request-id")));
        assert_eq!(self.body["trace_id"].as_str(), Some(self.header("x-cycles-trace-id")));
        self.body["message"].as_str().expect("message")
    }
}

pub async fn send(rb: RequestBuilder) -> Reply {
    let resp = rb.send().await.expect("request sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body read");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, headers, body, text }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// An instance whose ledger is the test process's three-master Redis Cluster.
    pub async fn spawn_on_cluster() -> TestApp {
        Self::spawn_in(Env::on_cluster().await, |_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
        Self::spawn_in(Env::new().await, adjust).await
    }

    async fn spawn_in(env: Env, adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
        let mut config = env.config();
        adjust(&mut config);
        let instance = Instance::start(config).await.expect("application starts");
        let pg = PgPool::connect(&env.database_url).await.expect("connect to the test database");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        TestApp { instance, client, pg, env }
    }

    /// Another instance sharing this one's database and Redis prefix.
    pub async fn another_instance(&self) -> Instance {
        self.another_instance_with(|_| {}).await
    }

    /// Another instance sharing this one's database and Redis prefix, configured by `adjust`.
    pub async fn another_instance_with(&self, adjust: impl FnOnce(&mut ServeConfig)) -> Instance {
        let mut config = self.env.config();
        adjust(&mut config);
        Instance::start(config).await.expect("second instance starts")
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.instance.admin.expect("admin plane"))
    }

    pub fn runtime_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.instance.runtime.expect("runtime plane"))
    }

    /// A request to the admin plane carrying the admin key.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.admin_url(path)).header("x-admin-api-key", ADMIN_KEY)
    }

    pub async fn create_tenant(&self, id: &str) -> Value {
        let r = send(self.admin(Method::POST, "/v1/admin/tenants").json(&serde_json::json!({
            "tenant_id": id, "name": format!("Tenant {id}")
        })))
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }

    /// Creates a key for `tenant` with `extra` merged into the body; returns the response.
    pub async fn create_key(&self, tenant: &str, extra: Value) -> Value {
        let mut body = serde_json::json!({ "tenant_id": tenant, "name": "test key" });
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        let r = send(self.admin(Method::POST, "/v1/admin/api-keys").json(&body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }

    pub async fn introspect(&self, secret: &str) -> Reply {
        send(self.client.get(self.admin_url("/v1/auth/introspect")).header("x-cycles-api-key", secret)).await
    }

    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let r = send(self.admin(Method::GET, &format!("/v1/admin/audit/logs?{query}"))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["logs"].as_array().cloned().unwrap_or_default()
    }
}

/// Polls `check` every 20 ms until it returns true or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A tenant id unique to this run.
pub fn tenant_id(label: &str) -> String {
    format!("{label}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A Redis of the test's own on a free loopback port, stopped when dropped.
pub struct PrivateRedis {
    pub child: tokio::process::Child,
    pub port: u16,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::start_on(port).await
    }

    /// A Redis on `port` (e.g. again on the port of one the test stopped).
    pub async fn start_on(port: u16) -> PrivateRedis {
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH");
        let url = format!("redis://127.0.0.1:{port}");
        let up = eventually(Duration::from_secs(10), || async {
            let Ok(c) = redis::Client::open(url.as_str()) else {
                return false;
            };
            c.get_multiplexed_async_connection().await.is_ok()
        })
        .await;
        assert!(up, "private redis started");
        PrivateRedis { child, port }
    }
}
