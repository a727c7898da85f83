//! The policy dry run (a Tollgate extension, after DVARA's `POST /v1/admin/policies/dry-run`):
//! a candidate policy (a new one, or a stored one with a patch applied) is validated like a
//! real change, then sample requests are decided twice: against the tenant's policies as they
//! are, and with the candidate in place; optionally the tenant's recent reservations are
//! replayed the same way (`replay`). Nothing is written.

use time::OffsetDateTime;

use super::replay::{REPLAY_DAYS_MAX, Replay};
use super::{Catalogue, not_found};
use crate::domain::clock::now;
use crate::domain::error::{Error, Result};
use crate::domain::policy::eval::{self, Outcome, Request};
use crate::domain::policy::{NewRules, Policy, RulesPatch, check_rules};

/// Samples one dry run decides at most.
pub const SAMPLES_MAX: usize = 1_000;
/// The id a new candidate is evaluated under.
pub const CANDIDATE_ID: &str = "pol_dry_run";

/// What the dry run evaluates in place of (or besides) the stored policies.
#[derive(Debug, Clone)]
pub enum Candidate {
    New(NewRules),
    Patch { policy_id: String, patch: RulesPatch },
}

/// One sample's decisions without and with the candidate.
#[derive(Debug, Clone)]
pub struct SampleOutcome {
    pub current: Outcome,
    pub candidate: Outcome,
}

#[derive(Debug, Clone)]
pub struct DryRun {
    /// The candidate as it would be stored.
    pub candidate: Policy,
    /// The generation of the policies the dry run read.
    pub policy_generation: i64,
    pub results: Vec<SampleOutcome>,
    /// The history replay, when one was asked for.
    pub replay: Option<Replay>,
}

fn candidate_policy(tenant: &str, candidate: Candidate, stored: &[Policy], at: OffsetDateTime) -> Result<Policy> {
    match candidate {
        Candidate::New(new) => {
            let rules = new.into_rules()?;
            check_rules(&rules, tenant)?;
            Ok(Policy {
                policy_id: CANDIDATE_ID.to_string(),
                tenant_id: tenant.to_string(),
                rules,
                version: 1,
                created_at: at,
                updated_at: at,
            })
        }
        Candidate::Patch { policy_id, patch } => {
            let mut p =
                stored.iter().find(|p| p.policy_id == policy_id).cloned().ok_or_else(|| not_found(&policy_id))?;
            if !patch.apply(&mut p.rules).is_empty() {
                p.version += 1;
                p.updated_at = at;
            }
            check_rules(&p.rules, tenant)?;
            Ok(p)
        }
    }
}

impl Catalogue {
    /// Decides `samples` against `tenant`'s policies, without and with `candidate`, and with
    /// `replay_days` the tenant's reservations of that many days. Samples may be left out only
    /// when a replay is asked for.
    pub async fn dry_run_policy(
        &self,
        tenant: &str,
        candidate: Candidate,
        samples: &[Request],
        replay_days: Option<i64>,
    ) -> Result<DryRun> {
        let least = usize::from(replay_days.is_none());
        if samples.len() < least || samples.len() > SAMPLES_MAX {
            return Err(Error::invalid_field("samples", format!("must hold {least} to {SAMPLES_MAX} requests")));
        }
        if let Some(days) = replay_days
            && !(1..=REPLAY_DAYS_MAX).contains(&days)
        {
            return Err(Error::invalid_field("replay.days", format!("must be an integer from 1 to {REPLAY_DAYS_MAX}")));
        }
        self.get_tenant(tenant).await?;
        let policy_generation = self.policy_generation(tenant).await?;
        let stored = self.tenant_policies(tenant).await?;
        let at = now();
        let candidate = candidate_policy(tenant, candidate, &stored, at)?;
        let mut with: Vec<Policy> = stored.iter().filter(|p| p.policy_id != candidate.policy_id).cloned().collect();
        with.push(candidate.clone());
        let mut results = Vec::with_capacity(samples.len());
        for (i, s) in samples.iter().enumerate() {
            let field = || format!("samples[{i}].action_kind");
            let current = eval::evaluate(&stored, s, at).map_err(|e| Error::invalid_field(&field(), e))?;
            let candidate = eval::evaluate(&with, s, at).map_err(|e| Error::invalid_field(&field(), e))?;
            results.push(SampleOutcome { current, candidate });
        }
        let replay = match replay_days {
            Some(days) => Some(self.replay_history(tenant, days, &stored, &with, at).await?),
            None => None,
        };
        Ok(DryRun { candidate, policy_generation, results, replay })
    }
}
