//! Redis: one multiplexed connection (standalone) or one cluster connection, shared by all
//! tasks, plus the tenant-status mirror. Every command is built here: `scripts` runs the
//! ledger's Lua by SHA, `ledger_reads` answers the ledger's typed reads, `streams` the outbox
//! drain's consumer-group commands. Nothing outside `store` sees a driver type.

pub mod group;
pub mod keys;
pub mod ledger_reads;
pub mod policy_sets;
pub mod scripts;
pub mod streams;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;

pub use keys::Keys;
/// What a script's reply decodes into (a string or an integer), without naming the driver.
pub use redis::FromRedisValue as FromReply;

use crate::domain::tenant::Tenant;
use crate::store::{StoreError, StoreResult};

/// Default per-command response timeout: a healthy script answers in well under a
/// millisecond; past this a request fails with 503 instead of hanging on a stuck Redis.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1_000);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnect attempts after a lost connection, and the longest pause between them: a refused
/// connection must not hold requests behind a long exponential backoff (the driver's default
/// six retries made each request wait ~9 s); the next request starts a new attempt anyway.
const RECONNECT_RETRIES: usize = 1;
const RECONNECT_DELAY_MAX: Duration = Duration::from_millis(100);

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    keys: Keys,
    /// Every call, reconnect included, answers within this (the configured response timeout):
    /// past it the caller gets `Unavailable` (503 + `Retry-After`).
    deadline: Duration,
    /// `--durable-ack`: a script's reply is returned only once Redis has fsynced it to its AOF
    /// (WAITAOF), so an OS crash cannot lose an acknowledged ledger change.
    durable_ack: bool,
    /// Group commit, when on (`group`).
    groups: Option<std::sync::Arc<group::Groups>>,
}

impl RedisStore {
    /// Connects to one Redis at `url`, or to a cluster when `cluster_nodes` is non-empty.
    pub async fn connect(url: &str, cluster_nodes: &[String], keys: Keys) -> anyhow::Result<Self> {
        Self::connect_with_timeout(url, cluster_nodes, keys, RESPONSE_TIMEOUT).await
    }

    /// As [`RedisStore::connect`], with a chosen per-command response timeout.
    pub async fn connect_with_timeout(
        url: &str,
        cluster_nodes: &[String],
        keys: Keys,
        response_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let conn = if cluster_nodes.is_empty() {
            let client = redis::Client::open(url)?;
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(response_timeout))
                .set_connection_timeout(Some(CONNECT_TIMEOUT.min(response_timeout)))
                .set_number_of_retries(RECONNECT_RETRIES)
                .set_max_delay(RECONNECT_DELAY_MAX);
            Conn::Single(ConnectionManager::new_with_config(client, config).await?)
        } else {
            let client = redis::cluster::ClusterClientBuilder::new(cluster_nodes.to_vec())
                .response_timeout(response_timeout)
                .connection_timeout(CONNECT_TIMEOUT.min(response_timeout))
                .build()?;
            Conn::Cluster(client.get_async_connection().await?)
        };
        let keys = if cluster_nodes.is_empty() { keys } else { keys.clustered() };
        Ok(Self { conn, keys, deadline: response_timeout, durable_ack: false, groups: None })
    }

    /// Turns on `--durable-ack` after checking that this Redis can do it: WAITAOF exists from
    /// Redis 7.2 and needs `appendonly yes`; a single Redis only (WAITAOF must follow the write
    /// on its connection). An error names what is missing.
    pub async fn enable_durable_ack(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(self.conn, Conn::Single(_)),
            "--durable-ack is supported with a single Redis (REDIS_URL), not with REDIS_CLUSTER_NODES"
        );
        let info: String = self.query(redis::cmd("INFO").arg("server")).await?;
        let version =
            info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("unknown").trim().to_string();
        let probe: StoreResult<redis::Value> = self.query(redis::cmd("WAITAOF").arg(0).arg(0).arg(1)).await;
        if let Err(e) = probe {
            anyhow::bail!(
                "--durable-ack needs WAITAOF, which Redis {version} does not provide (Redis 7.2 or newer is required): {e}"
            );
        }
        let appendonly: Vec<String> = self.query(redis::cmd("CONFIG").arg("GET").arg("appendonly")).await?;
        anyhow::ensure!(
            appendonly.get(1).is_some_and(|v| v == "yes"),
            "--durable-ack needs the ledger Redis to run with appendonly yes"
        );
        self.durable_ack = true;
        Ok(())
    }

    /// Waits until this connection's writes are fsynced to the local AOF (`--durable-ack`).
    async fn wait_aof(&self) -> StoreResult<()> {
        let timeout_ms = u64::try_from(self.deadline.as_millis()).unwrap_or(u64::MAX);
        let (local, _replicas): (i64, i64) = self.query(redis::cmd("WAITAOF").arg(1).arg(0).arg(timeout_ms)).await?;
        if local < 1 {
            return Err(StoreError::Unavailable { store: "redis", cause: "AOF fsync not confirmed in time".into() });
        }
        Ok(())
    }

    /// Runs one driver call within the deadline; a call still waiting (on a reconnect, a
    /// stuck server) fails as `Unavailable`. Like a response timeout, the outcome of a
    /// mutation cut off here is unknown to the caller, who retries with its idempotency key.
    async fn bounded<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> StoreResult<T> {
        match tokio::time::timeout(self.deadline, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(StoreError::Unavailable {
                store: "redis",
                cause: format!("no answer within {} ms", self.deadline.as_millis()),
            }),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Runs one command on the shared connection.
    pub(in crate::store) async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> StoreResult<T> {
        Ok(self.query_driver(cmd).await?)
    }

    /// As [`RedisStore::query`], keeping the driver's error for a caller in `store` that acts
    /// on the server's error code.
    async fn query_driver<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let call = async {
            match &self.conn {
                Conn::Single(c) => cmd.query_async(&mut c.clone()).await,
                Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
            }
        };
        self.within_deadline(call).await
    }

    /// Runs a script by SHA (reloading it on NOSCRIPT): one round trip.
    pub async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &scripts::Script,
        keys: &[String],
        args: &[String],
    ) -> StoreResult<T> {
        let mut inv = script.driver().prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        self.invoke(&inv).await
    }

    /// Sends a prepared script call within the deadline (and, with `--durable-ack`, waits for
    /// the AOF fsync).
    async fn invoke<T: redis::FromRedisValue>(&self, inv: &redis::ScriptInvocation<'_>) -> StoreResult<T> {
        let reply = match &self.conn {
            Conn::Single(c) => self.bounded(inv.invoke_async(&mut c.clone())).await,
            Conn::Cluster(c) => self.bounded(inv.invoke_async(&mut c.clone())).await,
        }?;
        if self.durable_ack {
            self.wait_aof().await?;
        }
        Ok(reply)
    }

    /// Sends several commands that touch one tenant's keys in one round trip.
    pub(in crate::store) async fn pipeline<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> StoreResult<T> {
        Ok(self.pipeline_driver(pipe).await?)
    }

    /// As [`RedisStore::pipeline`], keeping the driver's error.
    async fn pipeline_driver<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> redis::RedisResult<T> {
        let call = async {
            match &self.conn {
                Conn::Single(c) => pipe.query_async(&mut c.clone()).await,
                Conn::Cluster(c) => pipe.query_async(&mut c.clone()).await,
            }
        };
        self.within_deadline(call).await
    }

    /// As [`RedisStore::bounded`], keeping the driver's error type: a late answer is an I/O
    /// timeout, which the store reports as unavailable.
    async fn within_deadline<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
        tokio::time::timeout(self.deadline, call).await.unwrap_or_else(|_| {
            let why = format!("no answer within {} ms", self.deadline.as_millis());
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why).into())
        })
    }

    /// One section of `INFO` as Redis prints it (for diagnostics such as the load harness).
    pub async fn info(&self, section: &str) -> StoreResult<String> {
        let mut cmd = redis::cmd("INFO");
        cmd.arg(section);
        self.query(&cmd).await
    }

    pub async fn ping(&self) -> StoreResult<()> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }

    /// Writes the tenant's status and runtime settings (its observe mode included) into its
    /// mirror hash.
    pub async fn mirror_tenant(&self, t: &Tenant) -> StoreResult<()> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.keys.tenant(t.tenant_id.as_str()))
            .arg("status")
            .arg(t.status.as_str())
            .arg("tier")
            .arg(t.tier.as_str())
            .arg("default_commit_overage_policy")
            .arg(t.default_commit_overage_policy.as_str())
            .arg("default_reservation_ttl_ms")
            .arg(t.default_reservation_ttl_ms)
            .arg("max_reservation_ttl_ms")
            .arg(t.max_reservation_ttl_ms)
            .arg("max_reservation_extensions")
            .arg(t.max_reservation_extensions)
            .arg("reservation_expiry_policy")
            .arg(t.reservation_expiry_policy.as_str())
            .arg("observe_mode")
            .arg(t.observe_mode.as_str());
        let _: i64 = self.query(&cmd).await?;
        self.enrol(t.tenant_id.as_str(), t.status.as_str()).await
    }

    /// Sets only the mirrored status (a close flips it before anything else happens).
    pub async fn mirror_status(&self, tenant: &str, status: &str) -> StoreResult<()> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.keys.tenant(tenant)).arg("status").arg(status);
        let _: i64 = self.query(&cmd).await?;
        self.enrol(tenant, status).await
    }

    /// Removes a tenant's mirror and roster entry: the undo of an import that created a tenant
    /// Postgres never committed.
    pub async fn forget_tenant(&self, tenant: &str) -> StoreResult<()> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.keys.tenant(tenant));
        let _: i64 = self.query(&cmd).await?;
        self.enrol(tenant, "CLOSED").await
    }

    /// Keeps the roster in step with a tenant's status: every tenant but a CLOSED one is on it.
    /// A separate command: the roster has no tenant tag, so it may live on another cluster node.
    async fn enrol(&self, tenant: &str, status: &str) -> StoreResult<()> {
        let mut cmd = redis::cmd(if status == "CLOSED" { "SREM" } else { "SADD" });
        cmd.arg(self.keys.roster()).arg(tenant);
        let _: i64 = self.query(&cmd).await?;
        Ok(())
    }

    /// Whether the work signals were built for this deployment's existing data.
    pub async fn signals_marked(&self) -> StoreResult<bool> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.keys.signals_marker());
        let n: i64 = self.query(&cmd).await?;
        Ok(n > 0)
    }

    pub async fn mark_signals(&self) -> StoreResult<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.keys.signals_marker()).arg("1");
        let _: String = self.query(&cmd).await?;
        Ok(())
    }

    /// The tenants on the roster (every tenant that is not CLOSED).
    pub async fn roster(&self) -> StoreResult<Vec<String>> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.keys.roster());
        self.query(&cmd).await
    }
}
