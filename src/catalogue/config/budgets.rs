//! The `budgets` section: every budget's definition (scope, unit, allocated, overdraft limit,
//! overage policy, status, rollover policy, period), matched by `<scope>|<unit>`; balances
//! (spent, reserved, debt) only in an export asked for them. A budget's period is carried as a
//! create request gives it (its current `period_start` and `period_end`, `period`) plus one
//! period's allocation, which is all a roll reads, so an imported budget rolls as its source
//! did. Import writes the ledger through `budget_import.lua` (compare-and-set against the
//! planned values; undone by `budget_restore.lua`). Imported balances set `spent` and `debt`;
//! `reserved` is never imported (the reservations that hold it are not part of a snapshot), so
//! a new budget starts with nothing reserved. `replace` closes a budget the snapshot lacks
//! (CLOSED, the ledger's terminal status: balances kept, held reservations still settle,
//! nothing new is reserved).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Allowance, Applying, Ctx, Mode, bad};
use crate::catalogue::Catalogue;
use crate::domain::CommitOveragePolicy;
use crate::domain::amount::{Unit, Units};
use crate::domain::error::Result;
use crate::domain::event::EventType;
use crate::domain::period::{self, BudgetPeriod, PeriodLength, boundary_text};
use crate::domain::scope::{parse_budget_scope, scope_tenant};
use crate::domain::tenant::TenantStatus;
use crate::ledger::import::{BudgetWrite, RawBudget};
use crate::store::pg::PgTx;

const STATUSES: [&str; 3] = ["ACTIVE", "FROZEN", "CLOSED"];
const ROLLOVER: [&str; 3] = ["NONE", "CARRY_FORWARD", "CAP_AT_ALLOCATED"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Balances {
    pub spent: Units,
    pub reserved: Units,
    pub debt: Units,
}

/// One budget as a snapshot holds it. `ledger_id` is environment-specific: exported for
/// reference, ignored on import (a created budget gets a new one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSnap {
    pub tenant_id: String,
    pub scope: String,
    pub unit: Unit,
    pub allocated: Units,
    pub overdraft_limit: Units,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_overage_policy: Option<CommitOveragePolicy>,
    pub status: String,
    pub rollover_policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_end: Option<String>,
    /// The calendar period length (`P1D`, `P1W`, `P1M`) the budget was created with; without it
    /// a period lasts as long as `[period_start, period_end)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// One period's allocation: what each new period starts from (before any carry). Only with
    /// a period; `allocated` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_allocation: Option<Units>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balances: Option<Balances>,
}

impl BudgetSnap {
    fn id(&self) -> String {
        format!("{}|{}", self.scope, self.unit)
    }

    /// The budget's period, checked by the rules of a budget create (400 naming the field).
    fn period(&self) -> Result<Option<BudgetPeriod>> {
        let id = self.id();
        let time = |field: &str, v: &Option<String>| -> Result<Option<OffsetDateTime>> {
            match v.as_deref().filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => OffsetDateTime::parse(s, &Rfc3339)
                    .map(Some)
                    .map_err(|_| bad("budgets", &id, field, "must be an RFC 3339 date-time")),
            }
        };
        let (start, end) = (time("period_start", &self.period_start)?, time("period_end", &self.period_end)?);
        let found = period::validate(start, end, self.period.as_deref(), &self.rollover_policy)
            .map_err(|e| bad("budgets", &id, e.field, e.message))?;
        if found.is_none() && self.period_allocation.is_some() {
            return Err(bad(
                "budgets",
                &id,
                "period_allocation",
                "needs a period (period_start with period_end or period)",
            ));
        }
        Ok(found)
    }

    /// The stored fields this snapshot asks for (all but ids, times, `reserved` and
    /// `is_over_limit`); `s` and `d` only with balances. A period is stored as budget create
    /// stores it; without one, the period fields are emptied (one period's allocation, which
    /// only a roll reads, is then left alone).
    fn fields(&self) -> Result<BTreeMap<&'static str, String>> {
        let mut f = BTreeMap::from([
            ("st", self.status.clone()),
            ("a", self.allocated.get().to_string()),
            ("o", self.overdraft_limit.get().to_string()),
            ("p", self.commit_overage_policy.map(|p| p.as_str().to_string()).unwrap_or_default()),
            ("rp", self.rollover_policy.clone()),
        ]);
        match self.period()? {
            Some(p) => {
                let pa = self.period_allocation.unwrap_or(self.allocated);
                f.extend([
                    ("ps", boundary_text(p.start_ms)),
                    ("pe", boundary_text(p.end_ms)),
                    ("psm", p.start_ms.to_string()),
                    ("pem", p.end_ms.to_string()),
                    ("pl", p.length.stored()),
                    ("pa", pa.get().to_string()),
                ]);
            }
            None => f.extend(["ps", "pe", "psm", "pem", "pl"].map(|k| (k, String::new()))),
        }
        if let Some(b) = &self.balances {
            f.insert("s", b.spent.get().to_string());
            f.insert("d", b.debt.get().to_string());
        }
        Ok(f)
    }

    fn validate(&self, ctx: &Ctx) -> Result<()> {
        let id = self.id();
        let scope = parse_budget_scope(&self.scope).map_err(|e| bad("budgets", &id, "scope", e))?;
        if scope != self.scope || scope_tenant(&scope) != self.tenant_id {
            return Err(bad(
                "budgets",
                &id,
                "scope",
                format!("must be a normalised scope starting with tenant:{}", self.tenant_id),
            ));
        }
        if !ctx.after.contains_key(&self.tenant_id) {
            return Err(bad("budgets", &id, "tenant_id", "no such tenant in the deployment or the snapshot"));
        }
        if !STATUSES.contains(&self.status.as_str()) {
            return Err(bad("budgets", &id, "status", "must be ACTIVE, FROZEN or CLOSED"));
        }
        if ctx.after.get(&self.tenant_id) == Some(&TenantStatus::Closed)
            && self.status != "CLOSED"
            && ctx.owns(&self.tenant_id)
        {
            return Err(bad("budgets", &id, "status", "must be CLOSED: the tenant is CLOSED"));
        }
        if !ROLLOVER.contains(&self.rollover_policy.as_str()) {
            return Err(bad("budgets", &id, "rollover_policy", "must be NONE, CARRY_FORWARD or CAP_AT_ALLOCATED"));
        }
        self.period().map(|_| ())
    }

    fn of(doc: &crate::ledger::reads::BudgetDoc, balances: bool) -> Self {
        let b = &doc.balance;
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Self {
            tenant_id: doc.tenant.clone(),
            scope: b.scope.clone(),
            unit: b.unit,
            allocated: Units::new(b.allocated).unwrap_or(Units::ZERO),
            overdraft_limit: Units::new(b.overdraft_limit).unwrap_or(Units::ZERO),
            commit_overage_policy: doc.commit_overage_policy,
            status: doc.status.clone(),
            rollover_policy: opt(&doc.rollover_policy).unwrap_or_else(|| "NONE".into()),
            period_start: opt(&doc.period_start),
            period_end: opt(&doc.period_end),
            period: PeriodLength::designator(&doc.period).map(String::from),
            period_allocation: doc.period_allocation.and_then(Units::new),
            ledger_id: opt(&doc.ledger_id),
            balances: balances.then(|| Balances {
                spent: Units::new(b.spent).unwrap_or(Units::ZERO),
                reserved: Units::new(b.reserved).unwrap_or(Units::ZERO),
                debt: Units::new(b.debt).unwrap_or(Units::ZERO),
            }),
        }
    }
}

pub(super) async fn export(
    c: &Catalogue,
    tenants: &[String],
    balances: bool,
    allowance: &mut Allowance,
) -> Result<Vec<BudgetSnap>> {
    let mut out = Vec::new();
    for t in tenants {
        let members = c.ledger.budget_members(t).await?;
        allowance.take(members.len())?;
        out.extend(c.ledger.budgets(t, &members).await?.iter().map(|d| BudgetSnap::of(d, balances)));
    }
    Ok(out)
}

#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Per tenant, the writes and what each is (create, update or delete) with its id.
    writes: BTreeMap<String, Vec<(&'static str, BudgetWrite)>>,
    unchanged: usize,
}

fn int(raw: &RawBudget, f: &str) -> i128 {
    raw.get(f).cloned().flatten().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Whether the stored budget `raw` (rolled into its current period) and the snapshot's fields
/// `want` have one period schedule: the same length, with starts whole periods apart.
fn same_schedule(raw: &RawBudget, want: &BTreeMap<&'static str, String>) -> bool {
    let stored = |f: &str| raw.get(f).cloned().flatten().unwrap_or_default();
    let wanted = |f: &str| want.get(f).cloned().unwrap_or_default();
    let (Some(length), Ok(a), Ok(b)) =
        (PeriodLength::from_stored(&wanted("pl")), stored("psm").parse::<i64>(), wanted("psm").parse::<i64>())
    else {
        return false;
    };
    stored("pl") == wanted("pl") && length.same_schedule(a, b)
}

/// The write that takes `raw` (a stored budget, or all `None`) to `want`, plus `u` and a
/// recomputed `x`; `None` when nothing differs.
fn write_for(m: &str, raw: &RawBudget, mut want: BTreeMap<&'static str, String>, create: bool) -> Option<BudgetWrite> {
    let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).to_string();
    if create {
        want.entry("s").or_insert_with(|| "0".into());
        want.entry("d").or_insert_with(|| "0".into());
        want.insert("r", "0".into());
        want.insert("id", uuid::Uuid::now_v7().to_string());
        want.insert("c", now_ms.clone());
    }
    // An absent field and an empty one are the same to the ledger (and to budget_import.lua).
    want.retain(|f, v| raw.get(*f).cloned().flatten().unwrap_or_default() != *v);
    if want.is_empty() {
        return None;
    }
    let value = |f: &str| want.get(f).and_then(|v| v.parse::<i128>().ok()).unwrap_or_else(|| int(raw, f));
    let x = if value("d") > value("o") { "1" } else { "0" };
    want.insert("x", x.to_string());
    want.insert("u", now_ms);
    let before = want.keys().map(|f| (f.to_string(), raw.get(*f).cloned().flatten())).collect();
    let after = want.into_iter().map(|(f, v)| (f.to_string(), v)).collect();
    Some(BudgetWrite { m: m.to_string(), before, after })
}

pub(super) async fn plan(c: &Catalogue, section: Option<&[BudgetSnap]>, ctx: &Ctx) -> Result<Plan> {
    let mut plan = Plan::default();
    let Some(section) = section else { return Ok(plan) };
    let mut wanted: BTreeMap<String, Vec<&BudgetSnap>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for snap in section {
        snap.validate(ctx)?;
        if !seen.insert(snap.id()) {
            return Err(bad("budgets", &snap.id(), "scope", "appears more than once"));
        }
        wanted.entry(snap.tenant_id.clone()).or_default().push(snap);
    }
    let mut tenants: Vec<String> = wanted.keys().cloned().collect();
    if ctx.mode == Mode::Replace {
        tenants.extend(ctx.after.keys().filter(|t| !wanted.contains_key(*t)).cloned());
    }
    for tenant in tenants.into_iter().filter(|t| ctx.owns(t)) {
        let members = c.ledger.budget_index(&tenant).await?;
        let raws = c.ledger.raw_budgets(&tenant, &members).await?;
        let current: HashMap<String, RawBudget> =
            members.into_iter().zip(raws).filter(|(_, r)| r.get("st").is_some_and(Option::is_some)).collect();
        let mut writes = Vec::new();
        for snap in wanted.get(&tenant).map(Vec::as_slice).unwrap_or_default() {
            let m = snap.id();
            let raw = current.get(&m).cloned().unwrap_or_default();
            let exists = current.contains_key(&m);
            if exists && raw.get("st").cloned().flatten().as_deref() == Some("CLOSED") && snap.status != "CLOSED" {
                return Err(bad("budgets", &m, "status", "cannot change: the budget is CLOSED, which is terminal"));
            }
            let reserved = int(&raw, "r");
            if let Some(b) = &snap.balances
                && i128::from(b.spent.get()) + reserved + i128::from(b.debt.get()) > i128::from(i64::MAX)
            {
                return Err(bad(
                    "budgets",
                    &m,
                    "balances",
                    "spent + reserved + debt must not exceed 9223372036854775807",
                ));
            }
            let mut want = snap.fields()?;
            if exists && same_schedule(&raw, &want) {
                // Its current period is the one the snapshot names, or a later one of the same
                // schedule: the budget keeps it (and its spent, which belongs to it).
                want.retain(|f, _| !["ps", "pe", "psm", "pem"].contains(f));
            }
            match write_for(&m, &raw, want, !exists) {
                Some(w) => writes.push((if exists { "update" } else { "create" }, w)),
                None => plan.unchanged += 1,
            }
        }
        if ctx.mode == Mode::Replace {
            let listed: HashSet<String> = wanted.get(&tenant).into_iter().flatten().map(|s| s.id()).collect();
            for (m, raw) in current.iter().filter(|(m, _)| !listed.contains(*m)) {
                if let Some(w) = write_for(m, raw, BTreeMap::from([("st", "CLOSED".to_string())]), false) {
                    writes.push(("delete", w));
                }
            }
        }
        if !writes.is_empty() {
            plan.writes.insert(tenant, writes);
        }
    }
    Ok(plan)
}

impl Plan {
    pub fn diff(&self) -> super::plan::KindDiff {
        let mut d = super::plan::KindDiff { unchanged: self.unchanged, ..Default::default() };
        for (change, w) in self.writes.values().flatten() {
            let list = match *change {
                "create" => &mut d.create,
                "update" => &mut d.update,
                _ => &mut d.delete,
            };
            list.push(w.m.clone());
        }
        d
    }

    /// The writes per tenant (the undo plan holds the same).
    pub fn writes(&self) -> BTreeMap<String, Vec<BudgetWrite>> {
        self.writes.iter().map(|(t, ws)| (t.clone(), ws.iter().map(|(_, w)| w.clone()).collect())).collect()
    }
}

/// Audits and records every budget change, then writes the ledger, one script call per tenant.
pub(super) async fn apply(c: &Catalogue, tx: &mut PgTx, plan: &Plan, a: &mut Applying<'_>) -> Result<()> {
    for (tenant, writes) in &plan.writes {
        for (change, w) in writes {
            let fields: Vec<&String> =
                w.after.keys().filter(|f| !["u", "x", "c", "id"].contains(&f.as_str())).collect();
            a.audit(tx, tenant, ("budget", &w.m), change, json!({ "changed_fields": fields })).await?;
            let kind = match *change {
                "create" => EventType::BudgetCreated,
                "update" => EventType::BudgetUpdated,
                _ => EventType::BudgetClosed,
            };
            let scope = w.m.rsplit_once('|').map(|(s, _)| s.to_string());
            let data = json!({ "operation": "IMPORT", "budget": w.m, "changed_fields": fields });
            a.event(kind, tenant, scope, data);
        }
        let plain: Vec<BudgetWrite> = writes.iter().map(|(_, w)| w.clone()).collect();
        c.ledger.import_budgets(tenant, &plain).await?;
    }
    Ok(())
}
