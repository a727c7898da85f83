//! `POST /v1/admin/policies/dry-run` (a Tollgate extension, after DVARA's): a candidate policy
//! and sample requests in; for each sample the decision with the candidate in place, the one
//! without it, and the matching policies; with `replay: {days}`, what the candidate would have
//! done to the tenant's reservations of those days. Nothing is written.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{PolicyBody, route};
use crate::auth::AnyAuth;
use crate::catalogue::policies::{Candidate, DryRun, REPLAY_READ_MAX, Replay};
use crate::domain::Permission;
use crate::domain::policy::eval::{Decision, Outcome, PolicyKeys, Request};
use crate::domain::policy::{NewRules, RiskClass, RulesPatch, check, kinds};
use crate::domain::scope::{parse_budget_scope, scope_tenant};
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestCtx;
use crate::http::extract::JsonBody;
use crate::runtime_api::wire::Amount;
use crate::state::AppState;

/// Longest `run_id` and policy key values a sample may carry (the spec's `policy_keys` bounds).
const RUN_ID_LEN_MAX: usize = 256;
const HOST_LEN_MAX: usize = 253;
const RESOURCE_TYPE_LEN_MAX: usize = 128;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleKeys {
    host: Option<String>,
    recipient_domain: Option<String>,
    resource_type: Option<String>,
}

/// One sample request: the scope path it touches (its subject as a path, deepest level last).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    scope: String,
    action_kind: String,
    risk_class: Option<RiskClass>,
    policy_keys: Option<SampleKeys>,
    run_id: Option<String>,
    ttl_ms: Option<i64>,
    /// Echoed back: no policy rule decides on an amount.
    estimate: Option<Amount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    tenant_id: Option<String>,
    /// A new candidate (the create body, without `tenant_id`).
    policy: Option<NewRules>,
    /// A stored policy, with `patch` applied.
    policy_id: Option<String>,
    patch: Option<RulesPatch>,
    /// Optional when `replay` is given.
    #[serde(default)]
    samples: Vec<Sample>,
    replay: Option<ReplayRequest>,
}

/// `replay`: decide the tenant's reservations of the last `days` days (1 to 30) too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    days: i64,
}

fn too_long(v: &Option<String>, max: usize) -> bool {
    v.as_ref().is_some_and(|s| s.is_empty() || s.chars().count() > max)
}

/// Checks one sample and turns it into an evaluator request.
fn request_of(i: usize, s: &Sample, tenant: &str) -> ApiResult<Request> {
    let field = |f: &str| format!("samples[{i}].{f}");
    let scope = parse_budget_scope(&s.scope).map_err(|e| ApiError::invalid_field(&field("scope"), e))?;
    if scope_tenant(&scope) != tenant {
        return Err(ApiError::invalid_field(&field("scope"), format!("must start with tenant:{tenant}")));
    }
    if s.action_kind.is_empty() || s.action_kind.chars().count() > kinds::KIND_LEN_MAX {
        return Err(ApiError::invalid_field(&field("action_kind"), "must be 1 to 64 characters"));
    }
    if too_long(&s.run_id, RUN_ID_LEN_MAX) {
        return Err(ApiError::invalid_field(&field("run_id"), format!("must be 1 to {RUN_ID_LEN_MAX} characters")));
    }
    if let Some(ttl) = s.ttl_ms
        && !(check::TTL_MS_MIN..=check::TTL_MS_MAX).contains(&ttl)
    {
        return Err(ApiError::invalid_field(&field("ttl_ms"), "must be from 1000 to 86400000"));
    }
    let keys = match &s.policy_keys {
        None => PolicyKeys::default(),
        Some(k) => {
            for (name, v, max) in [
                ("host", &k.host, HOST_LEN_MAX),
                ("recipient_domain", &k.recipient_domain, HOST_LEN_MAX),
                ("resource_type", &k.resource_type, RESOURCE_TYPE_LEN_MAX),
            ] {
                if too_long(v, max) {
                    let f = field(&format!("policy_keys.{name}"));
                    return Err(ApiError::invalid_field(&f, format!("must be 1 to {max} characters")));
                }
            }
            PolicyKeys {
                host: k.host.clone(),
                recipient_domain: k.recipient_domain.clone(),
                resource_type: k.resource_type.clone(),
            }
        }
    };
    let mut scopes: Vec<String> = Vec::new();
    for segment in scope.split('/') {
        scopes.push(scopes.last().map_or_else(|| segment.to_string(), |prev| format!("{prev}/{segment}")));
    }
    Ok(Request {
        scopes,
        action_kind: s.action_kind.clone(),
        risk_class: s.risk_class,
        policy_keys: keys,
        run_id: s.run_id.clone(),
        ttl_ms: s.ttl_ms,
    })
}

fn outcome_json(o: &Outcome) -> Value {
    let mut v = json!({ "decision": o.decision.as_str(), "matched_policies": o.matched });
    if let Some(d) = &o.deny {
        v["reason_code"] = json!(d.reason_code);
        v["deny_detail"] = json!({
            "reason_code": d.reason_code, "blocked_by_policy": d.blocked_by_policy, "suggested_fix": d.suggested_fix,
        });
    }
    if let Some(c) = &o.caps {
        v["caps"] = json!(c);
    }
    v
}

fn detail_json(o: &Outcome) -> Value {
    let mut v = outcome_json(o);
    let quotas: Vec<Value> = o
        .quotas
        .iter()
        .map(|q| {
            json!({
                "policy_id": q.policy_id, "action_kind": q.action_kind, "risk_class": q.risk_class,
                "window": q.window, "window_key": q.window_key, "max_calls": q.max_calls, "scope": q.scope,
            })
        })
        .collect();
    v["would_count_against"] = json!(quotas);
    v["run_id_required"] = json!(o.run_id_required);
    v["ttl_ms"] = json!(o.ttl_ms);
    v["ttl_capped"] = json!(o.ttl_capped);
    v["max_extensions"] = json!(o.max_extensions);
    v["commit_overage_policy"] = json!(o.commit_overage_policy);
    v
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PolicyDryRunResponse)]
pub struct DryRunBody {
    /// The candidate as it would be stored.
    #[schema(value_type = super::wire::PolicyDoc)]
    candidate: PolicyBody,
    policy_generation: i64,
    /// `{allow, allow_with_caps, deny, changed}`: counts over the samples.
    #[schema(value_type = Object)]
    summary: Value,
    /// Per sample, in order: the candidate's decision and caps, the current one, and whether they differ.
    #[schema(value_type = Vec<Object>)]
    results: Vec<Value>,
    /// With `replay`: `{days, from, to, reservations, denied, capped, changed, skipped, top_scopes:
    /// [{scope, denied, capped}], read_limit, read_limit_reached}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    replay: Option<Value>,
}

fn rfc3339(ms: i64) -> Value {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok();
    json!(at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()))
}

fn replay_json(r: &Replay) -> Value {
    let top: Vec<Value> =
        r.top_scopes.iter().map(|s| json!({"scope": s.scope, "denied": s.denied, "capped": s.capped})).collect();
    json!({
        "days": r.days, "from": rfc3339(r.from_ms), "to": rfc3339(r.to_ms), "reservations": r.reservations,
        "denied": r.denied, "capped": r.capped, "changed": r.changed, "skipped": r.skipped, "top_scopes": top,
        "read_limit": REPLAY_READ_MAX, "read_limit_reached": r.read_limit_reached,
    })
}

fn body_of(run: DryRun, samples: &[Sample]) -> DryRunBody {
    let candidate_id = run.candidate.policy_id.clone();
    let mut counts = [0usize; 4];
    let results = run
        .results
        .iter()
        .zip(samples)
        .enumerate()
        .map(|(i, (r, s))| {
            let changed = r.current.decision != r.candidate.decision || r.current.caps != r.candidate.caps;
            counts[match r.candidate.decision {
                Decision::Allow => 0,
                Decision::AllowWithCaps => 1,
                Decision::Deny => 2,
            }] += 1;
            counts[3] += usize::from(changed);
            let mut v = detail_json(&r.candidate);
            v["index"] = json!(i);
            v["candidate_matched"] = json!(r.candidate.matched.contains(&candidate_id));
            v["changed"] = json!(changed);
            v["current"] = outcome_json(&r.current);
            if let Some(e) = &s.estimate {
                v["estimate"] = json!(e);
            }
            v
        })
        .collect();
    let summary = json!({ "allow": counts[0], "allow_with_caps": counts[1], "deny": counts[2], "changed": counts[3] });
    let replay = run.replay.as_ref().map(replay_json);
    DryRunBody { candidate: run.candidate.into(), policy_generation: run.policy_generation, summary, results, replay }
}

#[utoipa::path(post, path = "/v1/admin/policies/dry-run", operation_id = "dryRunPolicy", tag = "Policies",
    request_body = super::wire::DryRunDoc,
    responses((status = 200, description = "The samples' decisions with and without the candidate; nothing is stored", body = DryRunBody), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn dry_run(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(req): JsonBody<DryRunRequest>,
) -> ApiResult<Json<DryRunBody>> {
    if matches!(caller, crate::auth::Caller::Tenant(_)) && req.tenant_id.is_some() {
        return Err(ApiError::invalid_field("tenant_id", "must not be set when using an API key"));
    }
    let r = route(caller, ctx, req.tenant_id.clone(), Permission::PoliciesRead)?;
    let tenant = r.tenant("tenant_id")?;
    let candidate = match (req.policy, req.policy_id, req.patch) {
        (Some(new), None, None) => Candidate::New(new),
        (None, Some(policy_id), patch) => Candidate::Patch { policy_id, patch: patch.unwrap_or_default() },
        _ => {
            return Err(ApiError::invalid_field("policy", "give either policy, or policy_id (and a patch)"));
        }
    };
    let requests =
        req.samples.iter().enumerate().map(|(i, s)| request_of(i, s, &tenant)).collect::<ApiResult<Vec<_>>>()?;
    let days = req.replay.map(|r| r.days);
    let run = state.catalogue.dry_run_policy(&tenant, candidate, &requests, days).await?;
    Ok(Json(body_of(run, &req.samples)))
}
