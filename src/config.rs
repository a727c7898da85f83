//! Command line and environment: one clap definition documents every option, its
//! environment variable and its default (`tollgate serve --help`). Secrets are redacted
//! from `Debug` output.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about = "Budget reservation and admission engine (Cycles protocol)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the runtime plane, the admin plane, or both.
    Serve(Box<ServeConfig>),
    /// Apply pending database migrations and exit.
    Migrate(StoreConfig),
    /// Audit-log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the audit hash chain; exit 1 and name the first broken link if any row was
    /// altered or deleted. With `--file`, verify an NDJSON export offline instead.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// An NDJSON export (`GET /v1/admin/audit/logs/export`) to verify without a database.
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub store: StoreConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Plane {
    Runtime,
    Admin,
    All,
}

impl Plane {
    pub fn runtime(self) -> bool {
        matches!(self, Plane::Runtime | Plane::All)
    }

    pub fn admin(self) -> bool {
        matches!(self, Plane::Admin | Plane::All)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Where the stores are.
#[derive(Debug, Clone, Args)]
pub struct StoreConfig {
    /// Postgres URL of the catalogue database (tenants, keys, audit).
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/tollgate")]
    pub database_url: String,

    /// Postgres connections per instance at most (instances × this must fit the server).
    #[arg(long, env = "TOLLGATE_PG_MAX_CONNECTIONS", default_value_t = 10)]
    pub pg_max_connections: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Which plane(s) this instance serves.
    #[arg(long, env = "TOLLGATE_PLANE", value_enum, default_value_t = Plane::All)]
    pub plane: Plane,

    /// Listen address of the runtime plane (Cycles runtime API).
    #[arg(long, env = "TOLLGATE_RUNTIME_ADDR", default_value = "127.0.0.1:7878")]
    pub runtime_addr: SocketAddr,

    /// Listen address of the admin plane (governance API, health, metrics).
    #[arg(long, env = "TOLLGATE_ADMIN_ADDR", default_value = "127.0.0.1:7979")]
    pub admin_addr: SocketAddr,

    /// Redis URL of the ledger (single instance).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Comma-separated Redis Cluster node URLs; when set, REDIS_URL is ignored.
    #[arg(long, env = "REDIS_CLUSTER_NODES", value_delimiter = ',')]
    pub redis_cluster_nodes: Vec<String>,

    /// Prefix of every Redis key (lets several deployments share one Redis).
    #[arg(long, env = "TOLLGATE_REDIS_PREFIX", default_value = "tg")]
    pub redis_prefix: String,

    /// Per-command Redis response timeout in milliseconds; a slower answer fails the request
    /// with 503 (its outcome is then unknown: retry with the same idempotency key).
    #[arg(long, env = "TOLLGATE_REDIS_TIMEOUT_MS", default_value_t = 1000)]
    pub redis_timeout_ms: u64,

    /// Acknowledge a ledger change only once Redis has fsynced it to its AOF (WAITAOF; needs
    /// Redis 7.2+, appendonly yes, a single Redis). Refuses to start when unavailable.
    #[arg(long, env = "TOLLGATE_DURABLE_ACK", default_value_t = false, action = clap::ArgAction::Set)]
    pub durable_ack: bool,

    /// The admin key callers present in X-Admin-API-Key. Required by the admin plane.
    #[arg(long, env = "ADMIN_API_KEY", hide_env_values = true)]
    pub admin_api_key: Option<SecretString>,

    /// Secret that keys the HMAC under which API keys are stored and webhook secrets are sealed.
    /// When unset, a random one is generated once into `<data-dir>/server-secret`.
    #[arg(long, env = "TOLLGATE_KEY_HASH_SECRET", hide_env_values = true)]
    pub key_hash_secret: Option<SecretString>,

    /// Directory of this instance's local state: the generated server secret (file mode 0600),
    /// kept out of the database it protects. Every instance needs the same secret file.
    #[arg(long, env = "TOLLGATE_DATA_DIR", default_value = "./data")]
    pub data_dir: std::path::PathBuf,

    /// Open HTTP connections per listener at most; more wait in the accept backlog.
    #[arg(long, env = "TOLLGATE_HTTP_MAX_CONNECTIONS", default_value_t = DEFAULT_HTTP_MAX_CONNECTIONS)]
    pub http_max_connections: usize,

    /// A request head must arrive complete within this many milliseconds of the connection
    /// starting to wait for it (new or kept-alive connection): bounds slowloris and silent clients.
    #[arg(long, env = "TOLLGATE_HTTP_HEADER_TIMEOUT_MS", default_value_t = DEFAULT_HTTP_HEADER_TIMEOUT_MS)]
    pub http_header_timeout_ms: u64,

    /// A connection on which no byte moves for this many milliseconds is closed (e.g. a client
    /// that stops reading its response).
    #[arg(long, env = "TOLLGATE_HTTP_IDLE_TIMEOUT_MS", default_value_t = DEFAULT_HTTP_IDLE_TIMEOUT_MS)]
    pub http_idle_timeout_ms: u64,

    /// Runtime requests in flight per instance at most (the priority gate's ceiling).
    #[arg(long, env = "TOLLGATE_MAX_CONCURRENT", default_value_t = 1024)]
    pub max_concurrent: usize,

    /// Priority class of each tenant tier: premium, standard or bulk.
    #[arg(long, env = "TOLLGATE_TIER_CLASSES", default_value = "enterprise=premium,pro=standard,dev=bulk,free=bulk")]
    pub tier_classes: String,

    /// Percent of max-concurrent each class may fill before it is shed.
    #[arg(long, env = "TOLLGATE_CLASS_SHARES", default_value = "premium=100,standard=80,bulk=50")]
    pub class_shares: String,

    /// Per-instance rate limit of each tier as requests per second/burst, applied per API key and
    /// per tenant (tenants may override theirs), or `off`.
    #[arg(
        long,
        env = "TOLLGATE_RATE_LIMITS",
        default_value = "free=50/100,dev=200/400,pro=1000/2000,enterprise=5000/10000"
    )]
    pub rate_limits: String,

    /// For tests only: `abort-after-provision-commit` makes the process abort right after a
    /// provisioning call's Postgres commit, so the crash tests can check the recovery.
    #[arg(long, env = "TOLLGATE_TEST_FAULT", hide = true)]
    pub test_fault: Option<String>,

    /// Bearer token Prometheus sends to `/metrics` (`Authorization: Bearer <token>`); the admin
    /// key is accepted too. Without either, `/metrics` answers 401.
    #[arg(long, env = "TOLLGATE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<SecretString>,

    /// Label gateway metrics with the tenant (switch off for many tenants).
    #[arg(long, env = "TOLLGATE_METRICS_TENANT_LABEL", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics_tenant_label: bool,

    /// Log format.
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Run the event workers on this instance: the outbox drain (Redis streams → Postgres)
    /// and webhook delivery. Every instance may run them; they share the work.
    #[arg(long, env = "TOLLGATE_EVENT_WORKERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub events_workers: bool,

    /// How often the outbox drain polls the tenants' event streams, in milliseconds.
    #[arg(long, env = "TOLLGATE_OUTBOX_POLL_MS", default_value_t = 200)]
    pub outbox_poll_ms: u64,

    /// An outbox entry a consumer took and did not acknowledge for this long (its instance
    /// died) is taken over by another, in milliseconds.
    #[arg(long, env = "TOLLGATE_OUTBOX_RECLAIM_MS", default_value_t = 30_000)]
    pub outbox_reclaim_ms: u64,

    /// How often webhook delivery looks for due deliveries, in milliseconds.
    #[arg(long, env = "TOLLGATE_WEBHOOK_POLL_MS", default_value_t = 250)]
    pub webhook_poll_ms: u64,

    /// Upper bound on one webhook delivery attempt (connect to last byte), in milliseconds.
    #[arg(long, env = "TOLLGATE_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,

    /// Webhook deliveries in flight per instance at most.
    #[arg(long, env = "TOLLGATE_WEBHOOK_CONCURRENCY", default_value_t = 64)]
    pub webhook_concurrency: usize,

    /// Webhook deliveries in flight per subscription at most (one slow endpoint holds no more).
    #[arg(long, env = "TOLLGATE_WEBHOOK_PER_SUBSCRIPTION", default_value_t = 4)]
    pub webhook_per_subscription: usize,

    /// Days an event stays in the event log (events a delivery still refers to stay longer).
    #[arg(long, env = "TOLLGATE_EVENT_RETENTION_DAYS", default_value_t = 90)]
    pub event_retention_days: u32,

    /// Days a finished webhook delivery record stays.
    #[arg(long, env = "TOLLGATE_DELIVERY_RETENTION_DAYS", default_value_t = 14)]
    pub delivery_retention_days: u32,

    /// How often the keys used meanwhile are written to `last_used_at`, in milliseconds (so
    /// `last_used_at` is accurate to about this much).
    #[arg(long, env = "TOLLGATE_KEY_USAGE_FLUSH_MS", default_value_t = 30_000)]
    pub key_usage_flush_ms: u64,

    #[command(flatten)]
    pub store: StoreConfig,
}

/// Connections per listener: 4 per in-flight request slot of the default gate, and well under
/// the hard fd limit of a typical service (the engine raises its soft limit to the hard one).
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 4_096;
/// A healthy client sends its request head in milliseconds; 10 s allows slow links and frees a
/// slowloris connection's slot quickly.
pub const DEFAULT_HTTP_HEADER_TIMEOUT_MS: u64 = 10_000;
/// Longer than the 10 s request timeout, so only a stalled peer (not a slow handler) hits it.
pub const DEFAULT_HTTP_IDLE_TIMEOUT_MS: u64 = 30_000;

/// The message the admin plane refuses to start with when it has no admin key.
pub const MISSING_ADMIN_KEY: &str = "ADMIN_API_KEY is not set: the admin plane needs an admin key. \
    Set it in the environment (export ADMIN_API_KEY=<a long random secret>) or pass --admin-api-key, \
    or serve only the runtime plane with --plane runtime.";

impl ServeConfig {
    pub fn drain(&self) -> crate::events::outbox::DrainConfig {
        crate::events::outbox::DrainConfig {
            poll: Duration::from_millis(self.outbox_poll_ms.max(10)),
            reclaim_idle: Duration::from_millis(self.outbox_reclaim_ms.max(100)),
        }
    }

    pub fn retention(&self) -> crate::workers::retention::Retention {
        crate::workers::retention::Retention {
            event_days: self.event_retention_days.max(1),
            delivery_days: self.delivery_retention_days.max(1),
        }
    }

    pub fn conn_limits(&self) -> crate::http::serve::ConnLimits {
        crate::http::serve::ConnLimits {
            max_connections: self.http_max_connections.max(1),
            header_timeout: Duration::from_millis(self.http_header_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(self.http_idle_timeout_ms.max(1)),
        }
    }

    pub fn dispatch(&self) -> crate::events::dispatch::DispatchConfig {
        crate::events::dispatch::DispatchConfig {
            poll: Duration::from_millis(self.webhook_poll_ms.max(10)),
            attempt_timeout: Duration::from_millis(self.webhook_timeout_ms.max(100)),
            concurrency: self.webhook_concurrency.max(1),
            per_subscription: self.webhook_per_subscription.max(1),
        }
    }

    /// Whether the test-only fault of provisioning is set (any other value is refused).
    pub fn abort_after_provision_commit(&self) -> anyhow::Result<bool> {
        match self.test_fault.as_deref() {
            None | Some("") => Ok(false),
            Some("abort-after-provision-commit") => Ok(true),
            Some(other) => anyhow::bail!("--test-fault: unknown fault {other:?}"),
        }
    }

    /// The admission settings, parsed (a bad value names its option).
    pub fn admission(&self) -> anyhow::Result<crate::admission::AdmissionConfig> {
        use crate::admission::{parse_class_shares, parse_rate_limits, parse_tier_classes};
        let ctx = |name: &'static str| move |e: String| anyhow::anyhow!("{name}: {e}");
        if self.max_concurrent == 0 {
            anyhow::bail!("--max-concurrent must be at least 1");
        }
        Ok(crate::admission::AdmissionConfig {
            max_concurrent: self.max_concurrent,
            tier_classes: parse_tier_classes(&self.tier_classes).map_err(ctx("--tier-classes"))?,
            class_shares_pct: parse_class_shares(&self.class_shares).map_err(ctx("--class-shares"))?,
            rate_limits: parse_rate_limits(&self.rate_limits).map_err(ctx("--rate-limits"))?,
        })
    }
}
