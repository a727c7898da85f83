//! Redis: one multiplexed connection (standalone) or one cluster connection, shared by all
//! tasks, plus the tenant-status mirror. Every command is built here: `scripts` runs the
//! ledger's Lua by SHA, `ledger_reads` answers the ledger's typed reads, `streams` the outbox
//! drain's consumer-group commands. Nothing outside `store` sees a driver type.

pub mod keys;
pub mod ledger_reads;
pub mod scripts;
pub mod streams;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;

pub use keys::Keys;

use crate::domain::tenant::Tenant;
use crate::store::StoreResult;

/// Default per-command response timeout: a healthy script answers in well under a
/// millisecond; past this a request fails with 503 instead of hanging on a stuck Redis.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1_000);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    keys: Keys,
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
                .set_connection_timeout(Some(CONNECT_TIMEOUT));
            Conn::Single(ConnectionManager::new_with_config(client, config).await?)
        } else {
            let client = redis::cluster::ClusterClientBuilder::new(cluster_nodes.to_vec())
                .response_timeout(response_timeout)
                .connection_timeout(CONNECT_TIMEOUT)
                .build()?;
            Conn::Cluster(client.get_async_connection().await?)
        };
        Ok(Self { conn, keys })
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
        match &self.conn {
            Conn::Single(c) => cmd.query_async(&mut c.clone()).await,
            Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
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
        Ok(match &self.conn {
            Conn::Single(c) => inv.invoke_async(&mut c.clone()).await?,
            Conn::Cluster(c) => inv.invoke_async(&mut c.clone()).await?,
        })
    }

    /// Sends several commands that touch one tenant's keys in one round trip.
    pub(in crate::store) async fn pipeline<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> StoreResult<T> {
        Ok(self.pipeline_driver(pipe).await?)
    }

    /// As [`RedisStore::pipeline`], keeping the driver's error.
    async fn pipeline_driver<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> redis::RedisResult<T> {
        match &self.conn {
            Conn::Single(c) => pipe.query_async(&mut c.clone()).await,
            Conn::Cluster(c) => pipe.query_async(&mut c.clone()).await,
        }
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

    /// Writes the tenant's status and runtime settings into its mirror hash.
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
            .arg(t.max_reservation_extensions);
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

    /// Keeps the roster in step with a tenant's status: every tenant but a CLOSED one is on it.
    /// A separate command: the roster has no tenant tag, so it may live on another cluster node.
    async fn enrol(&self, tenant: &str, status: &str) -> StoreResult<()> {
        let mut cmd = redis::cmd(if status == "CLOSED" { "SREM" } else { "SADD" });
        cmd.arg(self.keys.roster()).arg(tenant);
        let _: i64 = self.query(&cmd).await?;
        Ok(())
    }

    /// The tenants on the roster (every tenant that is not CLOSED).
    pub async fn roster(&self) -> StoreResult<Vec<String>> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.keys.roster());
        self.query(&cmd).await
    }
}
