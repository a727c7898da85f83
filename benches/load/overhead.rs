//! The governance-overhead step: what policies and budget periods cost a reserve. It measures
//! HTTP reserves at `--overhead-clients` on three kinds of fresh tenant, in turn, for
//! `--overhead-rounds` rounds (so drift on a shared machine falls on all three alike):
//!
//! - **plain**: the load steps' tenant (one budget per scope, no policy, no period);
//! - **policies**: the same plus 100 ACTIVE policies, 5 of them matching the clients' subject
//!   (2 with action quotas, one with a TTL override, one with an overage override, one with a
//!   per-minute rate limit) and 95 matching other workspaces and agents;
//! - **periods**: the same budgets as plain, each with a calendar-month period (`P1M`,
//!   CARRY_FORWARD), so every reserve runs the period check on every scope.
//!
//! Each round runs the three in a rotated order (so none always follows the others' steps),
//! and every step starts once the engine's outbox backlog is empty (the drain's own Redis work
//! for earlier steps would otherwise count against it).
//!
//! Targets: policies within 1.2× of plain (throughput and Redis CPU per reserve); the period
//! check adds at most 5 % Redis CPU per reserve. Each figure is the sum over the rounds.

use std::sync::Arc;

use anyhow::Result;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Bench, Phase, Shape, StepResult};

/// Policies created on the policies tenant.
const POLICIES: usize = 100;
/// Big enough that no step's reserves exhaust a quota (the spec's maximum).
const QUOTA_CALLS: i64 = 100_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    Plain,
    Policies,
    Periods,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Policies => "policies",
            Variant::Periods => "periods",
        }
    }
}

/// The steps of one variant, summed over the rounds.
#[derive(Default)]
pub struct Totals {
    pub reserves: u64,
    pub elapsed_s: f64,
    pub redis_cpu_s: f64,
    /// A step had no Redis CPU figure (redis-server's pid unknown).
    pub redis_unknown: bool,
    pub errors: u64,
    pub mismatches: usize,
    /// Time redis-server spent running scripts (INFO commandstats `evalsha`, the commands a
    /// script runs included): the reserve scripts, and the drain's if it uses any.
    pub script_usec: u64,
}

impl Totals {
    fn add(&mut self, r: &StepResult) {
        self.reserves += r.reserves_ok;
        self.elapsed_s += r.elapsed_s;
        match r.redis_cpu_s {
            Some(s) => self.redis_cpu_s += s,
            None => self.redis_unknown = true,
        }
        self.errors += r.errors;
        self.script_usec +=
            r.redis_commands.iter().filter(|(name, _, _)| name == "evalsha").map(|(_, _, us)| us).sum::<u64>();
        self.mismatches += r.ledger.as_ref().map_or(1, |l| l.mismatches);
    }

    pub fn per_s(&self) -> f64 {
        if self.elapsed_s > 0.0 { self.reserves as f64 / self.elapsed_s } else { 0.0 }
    }

    /// Script time per reserve, µs.
    pub fn script_us(&self) -> Option<f64> {
        (self.reserves > 0 && self.script_usec > 0).then(|| self.script_usec as f64 / self.reserves as f64)
    }

    pub fn redis_us(&self) -> Option<f64> {
        (!self.redis_unknown && self.reserves > 0).then(|| self.redis_cpu_s * 1e6 / self.reserves as f64)
    }
}

pub struct OverheadResult {
    pub clients: usize,
    pub rounds: usize,
    pub plain: Totals,
    pub policies: Totals,
    pub periods: Totals,
}

/// The first instant of the current UTC month, RFC 3339.
fn month_start() -> Result<String> {
    let now = OffsetDateTime::now_utc();
    let start = now.replace_day(1)?.replace_time(time::Time::MIDNIGHT);
    Ok(start.format(&Rfc3339)?)
}

/// The 100 policies of the policies variant, for tenant `t` whose clients reserve as
/// `tenant:t/workspace:ws/agent:agent-0` with action kind `llm.completion`.
fn policy_bodies(t: &str) -> Vec<Value> {
    let quota = |window: &str| json!([{"action_kind": "llm.completion", "max_calls": QUOTA_CALLS, "window": window}]);
    let mut bodies = vec![
        json!({"name": "quota per hour", "scope_pattern": format!("tenant:{t}/*"), "priority": 100,
               "action_quotas": quota("per_hour_tumbling")}),
        json!({"name": "agent quota per day", "scope_pattern": "*/agent:agent-0", "priority": 90,
               "action_quotas": quota("per_day_tumbling")}),
        json!({"name": "ttl", "scope_pattern": format!("tenant:{t}/workspace:ws"), "priority": 50,
               "reservation_ttl_override": {"default_ttl_ms": 60_000, "max_ttl_ms": super::TTL_MS}}),
        json!({"name": "overage", "scope_pattern": "agent:*", "priority": 40,
               "commit_overage_policy": "ALLOW_IF_AVAILABLE"}),
        json!({"name": "rate", "scope_pattern": format!("tenant:{t}"), "priority": 30,
               "rate_limits": {"max_reservations_per_minute": 1_000_000}}),
    ];
    for i in 0..POLICIES - bodies.len() {
        let name = format!("other {i}");
        bodies.push(if i % 2 == 0 {
            json!({"name": name, "scope_pattern": format!("tenant:{t}/workspace:other-{i}"), "priority": i,
                   "action_quotas": quota("per_day_tumbling")})
        } else {
            json!({"name": name, "scope_pattern": format!("*/agent:other-{i}"), "priority": i,
                   "caps": {"max_tokens": 1_000}})
        });
    }
    bodies
}

impl Bench {
    async fn overhead_tenant(&self, variant: Variant, round: usize, clients: usize) -> Result<super::TenantSetup> {
        let id = format!("lb-{}-{}-r{round}-c{clients}", self.run_id, variant.as_str());
        let extra = match variant {
            Variant::Periods => {
                json!({"period_start": month_start()?, "period": "P1M", "rollover_policy": "CARRY_FORWARD"})
            }
            _ => Value::Null,
        };
        let setup = self.setup_tenant_with(id, Shape::Shared, clients, &extra).await?;
        if variant == Variant::Policies {
            for mut body in policy_bodies(&setup.id) {
                body["tenant_id"] = json!(setup.id);
                self.admin_post("/v1/admin/policies", body).await?;
            }
        }
        Ok(setup)
    }

    /// Waits (at most 60 s) until the admin plane's `cycles_outbox_backlog` reads 0.
    async fn wait_drained(&self) {
        let url = format!("{}/metrics", self.args.admin_url);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            let text = match self.admin.get(&url).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let backlog = text
                .lines()
                .find(|l| l.starts_with("cycles_outbox_backlog"))
                .and_then(|l| l.split_whitespace().last())
                .and_then(|v| v.parse::<f64>().ok());
            if backlog == Some(0.0) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    pub(super) async fn overhead_step(&self) -> Result<OverheadResult> {
        let (clients, rounds) = (self.args.overhead_clients, self.args.overhead_rounds.max(1));
        let mut out = OverheadResult {
            clients,
            rounds,
            plain: Totals::default(),
            policies: Totals::default(),
            periods: Totals::default(),
        };
        let variants = [Variant::Plain, Variant::Policies, Variant::Periods];
        for round in 0..rounds {
            for k in 0..variants.len() {
                let variant = variants[(k + round) % variants.len()];
                let setup = Arc::new(self.overhead_tenant(variant, round, clients).await?);
                self.wait_drained().await;
                let r = self.measure(setup, Shape::Shared, Phase::Reserve, clients).await?;
                println!("{:<9} round {round}: {}", variant.as_str(), super::row(&r));
                match variant {
                    Variant::Plain => out.plain.add(&r),
                    Variant::Policies => out.policies.add(&r),
                    Variant::Periods => out.periods.add(&r),
                }
                tokio::time::sleep(std::time::Duration::from_secs_f64(self.args.settle_s)).await;
            }
        }
        Ok(out)
    }
}
