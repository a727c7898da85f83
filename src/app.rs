//! Wiring: connects the stores, runs migrations, builds the shared state, binds the
//! listeners, spawns the workers, and shuts all of it down in order on SIGINT/SIGTERM
//! (stop accepting, finish in-flight requests, stop workers, close pools).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::auth::Authenticator;
use crate::auth::cache::KeyCache;
use crate::auth::secret::{AdminKey, KeyHasher};
use crate::catalogue::Catalogue;
use crate::config::{MISSING_ADMIN_KEY, ServeConfig};
use crate::events::dispatch::Dispatcher;
use crate::events::guard::SharedGuard;
use crate::events::outbox::Drain;
use crate::events::seal::Sealer;
use crate::ledger::Ledger;
use crate::state::AppState;
use crate::store::pg::PgStore;
use crate::store::redis::group::GroupConfig;
use crate::store::redis::scripts::Scripts;
use crate::store::redis::{Keys, RedisStore};

/// How long workers get to finish after the listeners have drained.
/// The most operations one group-commit call may carry, whatever is configured.
const GROUP_COMMIT_LIMIT: usize = 256;
const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the metrics exporter and the rate limiters do their housekeeping.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

pub struct Application {
    runtime: Option<(TcpListener, axum::Router)>,
    admin: Option<(TcpListener, axum::Router)>,
    state: AppState,
    /// Closed last, after the workers have stopped.
    pg: PgStore,
    shutdown: CancellationToken,
    workers: Vec<JoinHandle<()>>,
    limits: crate::http::serve::ConnLimits,
}

async fn key_hasher(config: &ServeConfig, pg: &PgStore) -> anyhow::Result<KeyHasher> {
    if let Some(s) = &config.key_hash_secret {
        return Ok(KeyHasher::new(s.expose_secret().as_bytes()));
    }
    let stored = crate::auth::server_secret::load_or_create(&config.data_dir, pg)
        .await
        .context("loading the server secret (--data-dir)")?;
    Ok(KeyHasher::new(&stored))
}

/// Connects to Postgres (applying migrations) and to Redis (or the cluster).
async fn connect_stores(config: &ServeConfig) -> anyhow::Result<(PgStore, RedisStore)> {
    let pg = PgStore::connect(&config.store.database_url, config.store.pg_max_connections)
        .await
        .context("connecting to Postgres (DATABASE_URL)")?;
    pg.migrate().await.context("applying database migrations")?;
    let keys = Keys::new(&config.redis_prefix).map_err(anyhow::Error::msg)?;
    let mut redis = RedisStore::connect_with_timeout(
        &config.redis_url,
        &config.redis_cluster_nodes,
        keys,
        Duration::from_millis(config.redis_timeout_ms.max(1)),
    )
    .await
    .context("connecting to Redis (REDIS_URL)")?;
    if config.durable_ack {
        redis.enable_durable_ack().await?;
    }
    let max = config.group_commit_max.min(GROUP_COMMIT_LIMIT);
    redis.enable_group_commit(GroupConfig { max, always: config.group_commit_always });
    Ok((pg, redis))
}

/// The background loops this instance runs, each stopped by `shutdown`.
fn spawn_workers(
    config: &ServeConfig,
    state: &AppState,
    pg: &PgStore,
    redis: &RedisStore,
    dispatcher: Dispatcher,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut workers = vec![
        tokio::spawn(crate::workers::auth_listener::run(pg.clone(), state.auth.clone(), shutdown.clone())),
        tokio::spawn(upkeep(state.admission.clone(), shutdown.clone())),
        tokio::spawn(crate::workers::provision_recovery::run(state.catalogue.clone(), shutdown.clone())),
        tokio::spawn(crate::workers::policy_publication::run(state.catalogue.clone(), shutdown.clone())),
        tokio::spawn(crate::workers::key_usage::run(
            pg.clone(),
            state.auth.clone(),
            Duration::from_millis(config.key_usage_flush_ms.max(10)),
            shutdown.clone(),
        )),
    ];
    if config.plane.runtime() {
        workers.push(tokio::spawn(crate::workers::expiry::run(state.ledger.clone(), shutdown.clone())));
    }
    if config.plane.admin() {
        workers.push(tokio::spawn(crate::workers::import_recovery::run(state.catalogue.clone(), shutdown.clone())));
    }
    if config.events_workers {
        let drain = Drain::new(pg.clone(), redis.clone(), state.ledger.clone(), config.drain());
        workers.push(tokio::spawn(drain.run(shutdown.clone())));
        workers.push(tokio::spawn(dispatcher.run(shutdown.clone())));
        workers.push(tokio::spawn(crate::workers::key_expiry::run(state.catalogue.clone(), shutdown.clone())));
        let keep = config.retention();
        workers.push(tokio::spawn(crate::workers::retention::run(pg.clone(), keep, shutdown.clone())));
        workers.push(tokio::spawn(crate::workers::burn_rate::run(pg.clone(), state.ledger.clone(), shutdown.clone())));
    }
    workers
}

/// A bound listener and the routes it serves.
type BoundPlane = Option<(TcpListener, axum::Router)>;

/// Binds the listeners of the planes this instance serves.
async fn bind_planes(config: &ServeConfig, state: &AppState) -> anyhow::Result<(BoundPlane, BoundPlane)> {
    let runtime = if config.plane.runtime() {
        let listener = TcpListener::bind(config.runtime_addr)
            .await
            .with_context(|| format!("binding the runtime plane to {}", config.runtime_addr))?;
        Some((listener, crate::runtime_api::router(state.clone(), !config.plane.admin())))
    } else {
        None
    };
    let admin = if config.plane.admin() {
        let listener = TcpListener::bind(config.admin_addr)
            .await
            .with_context(|| format!("binding the admin plane to {}", config.admin_addr))?;
        Some((listener, crate::admin_api::router(state.clone())))
    } else {
        None
    };
    Ok((runtime, admin))
}

impl Application {
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        let admission_config = config.admission()?;
        if let Some(nofile) = crate::http::serve::raise_nofile_limit() {
            tracing::info!(nofile, "open-file limit");
        }
        crate::telemetry::init_metrics();
        let admin_key = config.admin_api_key.as_ref().map(|k| AdminKey::new(k.expose_secret()));
        if config.plane.admin() && admin_key.is_none() {
            anyhow::bail!(MISSING_ADMIN_KEY);
        }
        let (pg, redis) = connect_stores(&config).await?;
        let scripts = Arc::new(Scripts::new());
        scripts.load(&redis).await.context("loading the ledger scripts into Redis")?;
        let ledger = Ledger::new(redis.clone(), scripts);
        let hasher = key_hasher(&config, &pg).await?;
        let key_cache = Arc::new(KeyCache::new(pg.clone()));
        let dispatcher = Dispatcher::new(pg.clone(), Sealer::new(&hasher), SharedGuard::default(), config.dispatch())
            .context("building the webhook client")?;
        dispatcher.refresh_guard().await?;
        let catalogue = Catalogue::new(
            pg.clone(),
            redis.clone(),
            hasher.clone(),
            ledger.clone(),
            key_cache.clone(),
            dispatcher.clone(),
        );
        let metrics_token = config.metrics_token.as_ref().map(|k| AdminKey::new(k.expose_secret()));
        let tokens = Arc::new(crate::auth::tokens::TokenCache::new(pg.clone()));
        let auth = Arc::new(Authenticator::new(admin_key, hasher, key_cache, tokens).with_metrics_token(metrics_token));
        let catalogue = catalogue.with_abort_after_provision_commit(config.abort_after_provision_commit()?);
        catalogue.seed_built_in_tiers(&admission_config.built_in_tiers()).await?;
        let admission = Arc::new(Admission::new(&admission_config, auth.clone()));
        crate::telemetry::set_tenant_label(config.metrics_tenant_label);
        let state = AppState { catalogue, ledger, auth, admission };
        if config.plane.admin() {
            let mirrored = state.catalogue.reseed_mirror().await?;
            tracing::info!(tenants = mirrored, "tenant status mirror reseeded");
        }
        let shutdown = CancellationToken::new();
        let workers = spawn_workers(&config, &state, &pg, &redis, dispatcher, &shutdown);
        let (runtime, admin) = bind_planes(&config, &state).await?;
        let limits = config.conn_limits();
        Ok(Self { runtime, admin, state, pg, shutdown, workers, limits })
    }

    pub fn runtime_addr(&self) -> Option<SocketAddr> {
        self.runtime.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Cancelling this token stops the application as a signal would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let mut servers = Vec::new();
        for (plane, listener) in [("runtime", self.runtime), ("admin", self.admin)] {
            if let Some((listener, router)) = listener {
                tracing::info!(plane, addr = %listener.local_addr()?, "listening");
                let (stop, limits) = (self.shutdown.clone(), self.limits);
                servers.push(tokio::spawn(crate::http::serve::serve(listener, router, limits, stop)));
            }
        }
        for server in servers {
            server.await.context("server task")?;
        }
        self.shutdown.cancel();
        for worker in self.workers {
            let _ = tokio::time::timeout(WORKER_STOP_TIMEOUT, worker).await;
        }
        self.pg.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Periodic housekeeping: the metrics exporter's, and dropping idle rate-limit state.
async fn upkeep(admission: Arc<Admission>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                crate::telemetry::run_upkeep();
                admission.limits.shrink();
            }
        }
    }
}

/// Cancels `token` on SIGINT or SIGTERM.
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received; draining");
    token.cancel();
}
