//! One-call provisioning: a tenant from a tier, its first API key, its budgets (the tier's
//! defaults plus any the call adds) and its policies, all or nothing across Postgres and Redis.
//!
//! How it holds: one Postgres transaction writes the tenant, the key (its secret sealed in the
//! record until a response carries it) and a PENDING provisioning record holding the planned
//! budgets with their ledger ids, plus the audit entry and events. Only then is Redis touched:
//! the tenant mirror, then each planned budget (a budget that exists already counts as done,
//! so a repeat never funds twice), then the record is marked COMPLETE. A crash or a Redis
//! outage after the commit leaves a PENDING record; [`Catalogue::recover_provisions`] (at
//! start-up and periodically on every instance, under a lease) or a retry of the call rolls it
//! forward. So a customer is either absent (the transaction did not commit) or complete once
//! Redis answers again.

use serde_json::{Value, json};

use super::Catalogue;
use super::api_keys::NewKey;
use super::audit::Actor;
use crate::auth::secret;
use crate::domain::api_key::{ApiKey, KeyStatus};
use crate::domain::clock::now;
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::event::EventType;
use crate::domain::tenant::Tenant;
use crate::domain::tier::{BudgetTemplate, PlannedBudget, TierDef};
use crate::events;
use crate::ledger::budgets::NewBudget;
use crate::ledger::reads::BudgetDoc;
use crate::store::pg::provisions::{self, Provision};
use crate::store::pg::{self, api_keys, audit, tenants};

/// How long a caller (or the recovery pass) holds a PENDING record before another may take
/// it over: well above one provisioning's Redis work (each call bounded by the Redis timeout,
/// and the first failure ends the attempt), and what a crashed holder delays recovery by.
pub const LEASE_S: i64 = 10;
/// Records the recovery pass finishes per run at most.
pub const RECOVERY_BATCH: usize = 100;

/// A provisioning call, validated: the tenant as the tier shapes it, its first key, and the
/// budgets the call adds to the tier's (an added budget on a tier budget's scope and unit
/// replaces it).
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    pub idempotency_key: String,
    /// SHA-256 of the canonical request: the same key with another body is 409.
    pub request_hash: String,
    pub tenant: Tenant,
    pub key: NewKey,
    pub budgets: Vec<BudgetTemplate>,
}

/// What a provisioning call answers.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub tenant: Tenant,
    pub key: ApiKey,
    /// The key's secret: in the first response that finds the customer complete, never again.
    pub secret: Option<String>,
    pub budgets: Vec<BudgetDoc>,
    pub policies: Vec<Value>,
    /// A repeat of an earlier call (nothing was created by this one).
    pub replayed: bool,
}

/// The budgets a tenant of `tier` gets, with `extra` replacing a tier budget of the same scope
/// and unit.
pub fn plan_budgets(tenant: &str, tier: &TierDef, extra: &[BudgetTemplate]) -> Vec<PlannedBudget> {
    let mut out: Vec<PlannedBudget> = Vec::new();
    for t in tier.default_budgets.iter().chain(extra) {
        let planned = PlannedBudget {
            scope: t.scope_for(tenant),
            unit: t.unit,
            allocated: t.allocated,
            overdraft_limit: t.overdraft_limit,
            commit_overage_policy: t.commit_overage_policy,
            ledger_id: uuid::Uuid::now_v7().to_string(),
        };
        match out.iter_mut().find(|b| b.scope == planned.scope && b.unit == planned.unit) {
            Some(existing) => *existing = planned,
            None => out.push(planned),
        }
    }
    out
}

fn duplicate_tenant(id: &str) -> Error {
    Error::new(ErrorCode::DuplicateResource, format!("tenant {id} already exists"))
}

impl Catalogue {
    /// Sets the test-only fault: abort the process right after a provisioning's Postgres commit.
    pub fn with_abort_after_provision_commit(mut self, abort: bool) -> Self {
        self.abort_after_provision_commit = abort;
        self
    }

    pub async fn provision(&self, actor: &Actor, req: ProvisionRequest, tier: &TierDef) -> Result<Provisioned> {
        if let Some(existing) = provisions::get(self.pg.pool(), &req.idempotency_key).await? {
            return self.replay_provision(actor, existing, &req.request_hash).await;
        }
        let tenant_id = req.tenant.tenant_id.to_string();
        let minted = secret::mint_key().map_err(Error::internal)?;
        let sealed = self.dispatcher.sealer().seal(minted.secret.as_bytes()).map_err(Error::internal)?;
        let at = now();
        let key = ApiKey {
            key_id: uuid::Uuid::now_v7().to_string(),
            tenant_id: req.tenant.tenant_id.clone(),
            key_prefix: minted.prefix,
            name: req.key.name.clone(),
            description: None,
            permissions: req.key.permissions.clone(),
            scope_filter: req.key.scope_filter.clone(),
            stored_status: KeyStatus::Active,
            metadata: None,
            created_at: at,
            last_used_at: None,
            expires_at: req.key.expires_at,
            revoked_at: None,
            revoked_reason: None,
        };
        let record = Provision {
            idempotency_key: req.idempotency_key.clone(),
            request_hash: req.request_hash.clone(),
            tenant_id: tenant_id.clone(),
            key_id: key.key_id.clone(),
            budgets: plan_budgets(&tenant_id, tier, &req.budgets),
            policies: tier.default_policies.clone(),
            secret_sealed: Some(sealed),
            request_id: actor.ctx.request_id.clone(),
            trace_id: actor.ctx.trace_id.clone(),
            created_at: at,
        };
        let digest = self.hasher.digest(&minted.secret);
        if !self.write_provision(actor, &req.tenant, &key, &digest, &record).await? {
            // A concurrent call with the same key committed first, or another call provisioned
            // this tenant id.
            return match provisions::get(self.pg.pool(), &req.idempotency_key).await? {
                Some(existing) => self.replay_provision(actor, existing, &req.request_hash).await,
                None => Err(duplicate_tenant(&tenant_id)),
            };
        }
        if self.abort_after_provision_commit {
            tracing::error!("test fault: aborting right after the provisioning commit");
            std::process::abort();
        }
        let (budgets, policies) = match self.finish_provision(actor, &record).await {
            Ok(done) => done,
            Err(e) => {
                self.release_lease(&record).await;
                return Err(e);
            }
        };
        let secret = provisions::take_secret(self.pg.pool(), &record.idempotency_key).await?.map(|_| minted.secret);
        Ok(Provisioned { tenant: req.tenant, key, secret, budgets, policies, replayed: false })
    }

    /// The Postgres half: tenant, key, record, audit entry and events in one transaction.
    /// `Ok(false)` when the idempotency key is taken; a taken tenant id is 409.
    async fn write_provision(
        &self,
        actor: &Actor,
        tenant: &Tenant,
        key: &ApiKey,
        digest: &[u8],
        record: &Provision,
    ) -> Result<bool> {
        let mut tx = self.pg.begin().await?;
        if !provisions::insert_record_first(&mut tx, record, LEASE_S).await? {
            return Ok(false);
        }
        let id = tenant.tenant_id.as_str();
        if !tenants::insert(&mut tx, tenant).await? {
            return Err(duplicate_tenant(id));
        }
        api_keys::insert(&mut tx, key, digest).await?;
        let budgets: Vec<Value> = record
            .budgets
            .iter()
            .map(|b| json!({ "scope": b.scope, "unit": b.unit, "ledger_id": b.ledger_id }))
            .collect();
        let details = json!({
            "tier": tenant.tier, "key_id": key.key_id, "budgets": budgets,
            "idempotency_key": record.idempotency_key,
        });
        audit::append(&mut tx, &actor.entry("provisionTenant", id, ("tenant", id), 201, details)).await?;
        let tenant_data = json!({ "tenant_id": id, "new_status": tenant.status.as_str(), "changed_fields": [] });
        let key_data = json!({
            "key_id": key.key_id, "key_name": key.name, "new_status": "ACTIVE", "permissions": key.permissions,
        });
        let evs = [
            actor.event(EventType::TenantCreated, id, tenant_data),
            actor.event(EventType::ApiKeyCreated, id, key_data),
        ];
        events::record(&mut tx, &evs).await?;
        pg::commit(tx).await?;
        Ok(true)
    }

    /// The Redis half, idempotent: the tenant mirror, each planned budget once (one that
    /// exists is done), the policies, then the record marked COMPLETE.
    async fn finish_provision(&self, actor: &Actor, record: &Provision) -> Result<(Vec<BudgetDoc>, Vec<Value>)> {
        let tenant = self.get_tenant(&record.tenant_id).await?;
        self.redis.mirror_tenant(&tenant).await?;
        let t = record.tenant_id.as_str();
        let mut docs = Vec::with_capacity(record.budgets.len());
        for b in &record.budgets {
            let new = NewBudget {
                tenant: t.to_string(),
                scope: b.scope.clone(),
                unit: b.unit,
                allocated: b.allocated,
                overdraft_limit: b.overdraft_limit,
                commit_overage_policy: b.commit_overage_policy,
                rollover_policy: String::new(),
                period: None,
            };
            match self.ledger.create_budget(&new, &b.ledger_id, &actor.ctx).await {
                Ok(doc) => docs.push(doc),
                Err(e) if e.code == ErrorCode::DuplicateResource => {
                    let doc = self.ledger.budget(t, &b.scope, b.unit).await?;
                    docs.extend(doc);
                }
                Err(e) => return Err(e),
            }
        }
        let policies = self.create_tier_policies(actor, t, &record.policies).await?;
        provisions::complete(self.pg.pool(), &record.idempotency_key).await?;
        Ok((docs, policies))
    }

    /// A repeat of a call: the same body answers what the first created (finishing it first
    /// if it is still PENDING), with the secret only if no response has carried it yet; another
    /// body is 409 `IDEMPOTENCY_MISMATCH`.
    async fn replay_provision(&self, actor: &Actor, record: Provision, request_hash: &str) -> Result<Provisioned> {
        if record.request_hash != request_hash {
            return Err(Error::new(
                ErrorCode::IdempotencyMismatch,
                "idempotency_key was used with a different provisioning request",
            ));
        }
        let (budgets, policies) = self.finish_provision(actor, &record).await?;
        let secret = match provisions::take_secret(self.pg.pool(), &record.idempotency_key).await? {
            Some(sealed) => {
                let plain = self.dispatcher.sealer().open(&sealed).map_err(Error::internal)?;
                Some(String::from_utf8(plain).map_err(Error::internal)?)
            }
            None => None,
        };
        let tenant = self.get_tenant(&record.tenant_id).await?;
        let key = api_keys::get(self.pg.pool(), &record.key_id)
            .await?
            .ok_or_else(|| Error::internal("provisioned key vanished"))?;
        Ok(Provisioned { tenant, key, secret, budgets, policies, replayed: true })
    }

    /// Lets the recovery pass take a record whose finishing failed (Redis out) at its next run.
    async fn release_lease(&self, record: &Provision) {
        if let Err(e) = provisions::release_lease(self.pg.pool(), &record.idempotency_key).await {
            tracing::warn!(error = %crate::domain::Error::from(e), "could not release a provisioning lease");
        }
    }

    /// Finishes PENDING provisioning records whose lease has lapsed (a crash or a Redis outage
    /// interrupted them); returns how many it finished. Safe on every instance at once.
    pub async fn recover_provisions(&self) -> Result<usize> {
        let mut finished = 0;
        while finished < RECOVERY_BATCH {
            let Some(record) = provisions::claim_pending(self.pg.pool(), LEASE_S).await? else { break };
            let ctx = crate::domain::Correlation {
                request_id: record.request_id.clone(),
                trace_id: record.trace_id.clone(),
                ..Default::default()
            };
            let actor = Actor { actor_type: "system", key_id: None, ctx };
            if let Err(e) = self.finish_provision(&actor, &record).await {
                self.release_lease(&record).await;
                return Err(e);
            }
            tracing::info!(tenant = record.tenant_id, "pending provisioning finished by recovery");
            finished += 1;
        }
        Ok(finished)
    }
}
