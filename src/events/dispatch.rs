//! Webhook delivery: claims due deliveries from Postgres (a lease, so instances never send the
//! same attempt twice and a crashed instance's claims lapse), POSTs the stored event with the
//! spec's headers and signature, and records the outcome: SUCCESS, RETRYING with exponential
//! backoff and jitter, or FAILED after the retry policy's last attempt, which counts toward
//! auto-disabling the subscription.
//!
//! Concurrency is bounded twice: in all, and per subscription, so one slow endpoint holds at
//! most `per_subscription` slots and the others keep flowing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::guard::{Guard, GuardedResolver, SecurityConfig, SharedGuard};
use super::notices::{delivery_failed_event, disabled_event};
use super::pacing::Pacer;
use super::seal::Sealer;
use crate::auth::secret::KeyHasher;
use crate::domain::event::{Event, EventType, SYSTEM_TENANT};
use crate::domain::webhook::{DeliveryStatus, RetryPolicy, Subscription, WebhookStatus};
use crate::store::pg::webhooks::{self, Attempt, Delivery};
use crate::store::pg::{self, PgStore, events};
use crate::store::{StoreError, StoreResult};

/// How often the security config (and the backlog gauge) is re-read, so a PUT on one
/// instance reaches the others.
const GUARD_REFRESH: Duration = Duration::from_secs(10);
/// Response bodies are not kept; error messages are cut to this many characters.
const ERROR_MESSAGE_MAX: usize = 512;

#[derive(Debug, Clone)]
pub struct DispatchConfig {
    pub poll: Duration,
    /// Upper bound on one attempt, connect to last byte.
    pub attempt_timeout: Duration,
    pub concurrency: usize,
    pub per_subscription: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(250),
            attempt_timeout: Duration::from_secs(10),
            concurrency: 64,
            per_subscription: 4,
        }
    }
}

/// What one POST produced.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub success: bool,
    pub response_status: Option<u16>,
    pub response_time_ms: u64,
    pub error_message: Option<String>,
}

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    pg: PgStore,
    sealer: Sealer,
    guard: SharedGuard,
    client: reqwest::Client,
    config: DispatchConfig,
    in_flight: DashMap<String, usize>,
    slots: Arc<Semaphore>,
    user_agent: String,
    pacer: Pacer,
}

/// `sha256=` and the lowercase hex HMAC-SHA256 of `body` under the UTF-8 `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(KeyHasher::new(secret.as_bytes()).digest(body)))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::fill(&mut buf).is_err() {
        let fallback = uuid::Uuid::new_v4();
        return hex::encode(&fallback.as_bytes()[..bytes.min(16)]);
    }
    hex::encode(buf)
}

/// A factor in [0.8, 1.0): retries of many failing deliveries spread out instead of landing
/// together.
fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let r = if getrandom::fill(&mut b).is_ok() { f64::from(u16::from_le_bytes(b)) / 65_536.0 } else { 0.5 };
    1.0 - 0.2 * r
}

fn truncate(mut s: String) -> String {
    if s.chars().count() > ERROR_MESSAGE_MAX {
        s = s.chars().take(ERROR_MESSAGE_MAX).collect();
    }
    s
}

/// The whole error chain of a failed request (reqwest hides the cause behind "error sending").
fn describe(err: &reqwest::Error) -> String {
    let mut out = if err.is_timeout() { "timed out".to_string() } else { err.to_string() };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// The bookkeeping of one attempt: SUCCESS, RETRYING with the policy's backoff × jitter, or
/// FAILED after the policy's last retry.
fn attempt_of(outcome: &SendOutcome, attempts: i32, policy: &RetryPolicy, at: OffsetDateTime) -> Attempt {
    let retry = !outcome.success && u32::try_from(attempts).unwrap_or(u32::MAX) <= policy.max_retries;
    let status = if outcome.success {
        DeliveryStatus::Success
    } else if retry {
        DeliveryStatus::Retrying
    } else {
        DeliveryStatus::Failed
    };
    let next_attempt_at = retry.then(|| {
        let delay = policy.delay_ms(u32::try_from(attempts).unwrap_or(u32::MAX)) as f64 * jitter();
        at + Duration::from_millis(delay as u64)
    });
    Attempt {
        status,
        attempts,
        attempted_at: at,
        completed_at: (!retry).then_some(at),
        response_status: outcome.response_status.map(i32::from),
        response_time_ms: Some(i64::try_from(outcome.response_time_ms).unwrap_or(i64::MAX)),
        error_message: outcome.error_message.clone(),
        next_attempt_at,
    }
}

/// reqwest is built without a bundled TLS crypto provider (aws-lc would need cmake): installs
/// ring process-wide. Call it before building any reqwest client; later calls do nothing.
pub fn install_crypto_provider() {
    // An error means a provider is already installed: fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Dispatcher {
    pub fn new(pg: PgStore, sealer: Sealer, guard: SharedGuard, config: DispatchConfig) -> anyhow::Result<Self> {
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(config.attempt_timeout)
            .connect_timeout(config.attempt_timeout)
            .build()?;
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let user_agent = format!("tollgate/{}", env!("CARGO_PKG_VERSION"));
        let pacer = Pacer::new(config.poll);
        let in_flight = DashMap::new();
        Ok(Self { inner: Arc::new(Inner { pg, sealer, guard, client, config, in_flight, slots, user_agent, pacer }) })
    }

    pub fn guard(&self) -> &SharedGuard {
        &self.inner.guard
    }

    pub fn sealer(&self) -> &Sealer {
        &self.inner.sealer
    }

    /// Loads the stored security config into the shared guard.
    pub async fn refresh_guard(&self) -> StoreResult<()> {
        let Some((raw, written_at)) = webhooks::security_config(self.inner.pg.pool()).await? else {
            return Ok(());
        };
        let config: SecurityConfig = serde_json::from_value(raw)
            .map_err(|e| StoreError::Internal(format!("stored webhook security config: {e}")))?;
        let guard = Guard::new(config).map_err(|(f, m)| StoreError::Internal(format!("stored {f}: {m}")))?;
        self.inner.guard.replace(guard, written_at);
        Ok(())
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut guard_read = Instant::now() - GUARD_REFRESH;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.inner.pacer.wait() => {}
            }
            if guard_read.elapsed() >= GUARD_REFRESH {
                if let Err(err) = self.refresh_guard().await {
                    tracing::warn!(error = %err, "could not read the webhook security config");
                }
                match webhooks::backlog(self.inner.pg.pool()).await {
                    Ok((queued, overdue)) => {
                        crate::telemetry::webhook_backlog(queued, Duration::from_secs_f64(overdue.max(0.0)));
                    }
                    Err(err) => tracing::warn!(error = %err, "could not read the webhook backlog"),
                }
                guard_read = Instant::now();
            }
            match self.dispatch_due().await {
                Ok(worked) => self.inner.pacer.claimed(worked),
                Err(err) => tracing::warn!(error = %err, "webhook dispatch failed; retrying next tick"),
            }
        }
        // Let attempts under way finish (each is bounded by the attempt timeout).
        let all = u32::try_from(self.inner.config.concurrency.max(1)).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(self.inner.config.attempt_timeout, self.inner.slots.acquire_many(all)).await;
    }

    /// Claims what is due and free to send, and starts one task per delivery. Returns whether
    /// there was work (a claim, or no free slot).
    async fn dispatch_due(&self) -> StoreResult<bool> {
        let inner = &self.inner;
        let free = inner.slots.available_permits();
        if free == 0 {
            return Ok(true);
        }
        let busy: Vec<String> = inner
            .in_flight
            .iter()
            .filter(|e| *e.value() >= inner.config.per_subscription)
            .map(|e| e.key().clone())
            .collect();
        let lease = inner.config.attempt_timeout + Duration::from_secs(30);
        let claimed = webhooks::claim_due(inner.pg.pool(), free as i64, lease, &busy).await?;
        let worked = !claimed.is_empty();
        let mut deferred = Vec::new();
        for delivery in claimed {
            let mut count = inner.in_flight.entry(delivery.subscription_id.clone()).or_insert(0);
            if *count >= inner.config.per_subscription {
                deferred.push(delivery.delivery_id);
                continue;
            }
            let Ok(permit) = inner.slots.clone().try_acquire_owned() else {
                deferred.push(delivery.delivery_id);
                continue;
            };
            *count += 1;
            drop(count);
            let this = self.clone();
            tokio::spawn(async move {
                let sub_id = delivery.subscription_id.clone();
                if let Err(err) = this.deliver(delivery).await {
                    tracing::warn!(subscription = %sub_id, error = %err, "recording a webhook attempt failed");
                }
                if let Some(mut n) = this.inner.in_flight.get_mut(&sub_id) {
                    *n = n.saturating_sub(1);
                }
                this.inner.in_flight.remove_if(&sub_id, |_, n| *n == 0);
                drop(permit);
            });
        }
        if !deferred.is_empty() {
            webhooks::release_claims(inner.pg.pool(), &deferred).await?;
        }
        Ok(worked)
    }

    /// Opens a subscription's secret and custom headers.
    pub fn open_secrets(&self, stored: &webhooks::Stored) -> Result<(String, BTreeMap<String, String>), String> {
        let secret = String::from_utf8(self.inner.sealer.open(&stored.secret_sealed)?)
            .map_err(|_| "signing secret is not UTF-8".to_string())?;
        let headers = match &stored.headers_sealed {
            Some(sealed) => serde_json::from_slice(&self.inner.sealer.open(sealed)?)
                .map_err(|_| "custom headers do not decode".to_string())?,
            None => BTreeMap::new(),
        };
        Ok((secret, headers))
    }

    /// POSTs `event` to `sub` once: the body is the event's JSON, signed as sent.
    pub async fn send(
        &self,
        sub: &Subscription,
        secret: &str,
        headers: &BTreeMap<String, String>,
        event: &Event,
    ) -> SendOutcome {
        let started = Instant::now();
        let failed = |message: String, status: Option<u16>| SendOutcome {
            success: false,
            response_status: status,
            response_time_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            error_message: Some(truncate(message)),
        };
        let url = match self.inner.guard.current().check_url_syntax(&sub.url) {
            Ok(url) => url,
            Err(why) => return failed(format!("url {why}"), None),
        };
        let body = match serde_json::to_vec(event) {
            Ok(b) => b,
            Err(e) => return failed(format!("encoding the event: {e}"), None),
        };
        let trace_id = event.trace_id.clone().unwrap_or_else(|| random_hex(16));
        let mut request = self
            .inner
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", &self.inner.user_agent)
            .header("x-cycles-event-id", &event.event_id)
            .header("x-cycles-event-type", event.event_type.as_str())
            .header("x-cycles-signature", signature(secret, &body))
            .header("x-cycles-trace-id", &trace_id)
            .header("traceparent", format!("00-{trace_id}-{}-01", random_hex(8)));
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            if lower.starts_with("x-cycles-") || matches!(lower.as_str(), "content-type" | "traceparent" | "host") {
                continue;
            }
            request = request.header(name, value);
        }
        match request.body(body).send().await {
            Ok(response) => {
                let status = response.status();
                let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                if status.is_success() {
                    SendOutcome {
                        success: true,
                        response_status: Some(status.as_u16()),
                        response_time_ms: elapsed,
                        error_message: None,
                    }
                } else {
                    failed(format!("endpoint answered {status}"), Some(status.as_u16()))
                }
            }
            Err(err) => failed(describe(&err), err.status().map(|s| s.as_u16())),
        }
    }

    /// One attempt of one claimed delivery, and its bookkeeping.
    async fn deliver(&self, d: Delivery) -> StoreResult<()> {
        let pool = self.inner.pg.pool();
        let now = crate::domain::clock::now();
        let stored = webhooks::get(pool, &d.subscription_id).await?;
        let event = events::get(pool, &d.event_id).await?;
        let (stored, event) = match (stored, event) {
            (Some(s), Some(e)) if s.sub.status == WebhookStatus::Active => (s, e),
            (None, _) => return self.give_up(&d, "subscription was deleted", now).await,
            (Some(_), Some(_)) => return self.give_up(&d, "subscription is not ACTIVE", now).await,
            (Some(_), None) => return self.give_up(&d, "event no longer exists", now).await,
        };
        // Defense in depth: a tenant-owned subscription never receives another tenant's or
        // an admin-only event, whatever queued it.
        if stored.sub.tenant_id != SYSTEM_TENANT
            && (stored.sub.tenant_id != event.tenant_id || !event.category.tenant_accessible())
        {
            return self.give_up(&d, "event is not deliverable to this subscription", now).await;
        }
        let outcome = match self.open_secrets(&stored) {
            Ok((secret, headers)) => self.send(&stored.sub, &secret, &headers, &event).await,
            Err(why) => {
                SendOutcome { success: false, response_status: None, response_time_ms: 0, error_message: Some(why) }
            }
        };
        crate::telemetry::webhook_attempt(outcome.success);
        let attempts = d.attempts + 1;
        let at = crate::domain::clock::now();
        let attempt = attempt_of(&outcome, attempts, &stored.sub.retry_policy, at);
        if let Some(next) = attempt.next_attempt_at {
            self.inner.pacer.retry_in((next - at).unsigned_abs());
        }
        let status = attempt.status;
        let mut tx = self.inner.pg.begin().await?;
        // Subscription first, then delivery rows: the order of every other writer of both.
        webhooks::lock(&mut tx, &d.subscription_id).await?;
        webhooks::record_attempt(&mut tx, &d.delivery_id, &attempt).await?;
        let final_failure = status == DeliveryStatus::Failed;
        let counted = webhooks::record_outcome(&mut tx, &d.subscription_id, outcome.success, final_failure, at).await?;
        let mut follow_ups = Vec::new();
        if final_failure {
            if event.event_type != EventType::SystemWebhookDeliveryFailed {
                follow_ups.push(delivery_failed_event(
                    &stored.sub,
                    &d,
                    &event,
                    attempts,
                    outcome.error_message.as_deref(),
                ));
            }
            if let Some((WebhookStatus::Active, failures, limit)) = counted
                && failures >= limit
            {
                webhooks::set_status(&mut tx, &d.subscription_id, WebhookStatus::Disabled, at).await?;
                webhooks::cancel_pending(&mut tx, &d.subscription_id, "subscription was disabled").await?;
                follow_ups.push(disabled_event(&stored.sub, &d, &event));
                tracing::warn!(subscription = %d.subscription_id, failures, "webhook subscription auto-disabled");
            }
        }
        super::record(&mut tx, &follow_ups).await?;
        pg::commit(tx).await?;
        Ok(())
    }

    /// Ends a delivery that cannot be attempted, without counting it against the endpoint.
    async fn give_up(&self, d: &Delivery, why: &str, at: OffsetDateTime) -> StoreResult<()> {
        let attempt = Attempt {
            status: DeliveryStatus::Failed,
            attempts: d.attempts,
            attempted_at: d.attempted_at,
            completed_at: Some(at),
            response_status: d.response_status,
            response_time_ms: d.response_time_ms,
            error_message: Some(why.to_string()),
            next_attempt_at: None,
        };
        let mut tx = self.inner.pg.begin().await?;
        webhooks::record_attempt(&mut tx, &d.delivery_id, &attempt).await?;
        pg::commit(tx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_of_the_exact_body() {
        // RFC 4231 test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
