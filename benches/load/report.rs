//! The steps that run once after the load steps (yardstick, idle, flat cost, expiry sweep,
//! usage reads)
//! and the one table of every target with its measured figure, printed last in Markdown so it
//! can be pasted as it is.

use std::time::Duration;

use anyhow::Result;

use super::flat::FlatResult;
use super::idle::{self, IdleResult};
use super::overhead::OverheadResult;
use super::sweep::SweepResult;
use super::usage::{USAGE_CLIENTS, UsageResult};
use super::yardstick::{self, YardstickResult};
use super::{Args, Bench, Phase, Shape, StepResult, find, verdict};

/// Clients of the yardstick step and of the engine step it is compared with.
const YARDSTICK_CLIENTS: usize = 50;

#[derive(Default)]
pub struct Extra {
    pub yardstick: Option<YardstickResult>,
    pub idle: Option<IdleResult>,
    pub flat: Option<FlatResult>,
    pub sweep: Option<SweepResult>,
    pub overhead: Option<OverheadResult>,
    pub usage: Option<UsageResult>,
}

impl Bench {
    /// Runs the once-only steps the arguments ask for, printing each as it ends.
    pub(super) async fn extra_steps(&self) -> Result<Extra> {
        let mut extra = Extra::default();
        let a = &self.args;
        if a.yardstick_requests > 0 {
            let r = yardstick::run(&a.redis_url, &a.redis_prefix, YARDSTICK_CLIENTS, a.yardstick_requests).await?;
            println!();
            println!(
                "yardstick: minimal 3-scope reserve script by redis-benchmark, {} clients, {} calls: {:.0} calls/s",
                r.clients, r.requests, r.per_s
            );
            extra.yardstick = Some(r);
        }
        if let (Some(db), n) = (&a.database_url, a.idle_tenants)
            && n > 0
        {
            let window = Duration::from_secs_f64(a.idle_window_s.max(1.0));
            let r = idle::run(&a.redis_url, &a.redis_prefix, db, n, window).await?;
            println!();
            println!(
                "idle: {} tenants (seeded in {:.1} s): {:.1} Redis commands/s, {:.2} Postgres transactions/s",
                r.tenants, r.seed_s, r.redis_per_s, r.pg_per_s
            );
            extra.idle = Some(r);
        }
        if a.flat_clients > 0 {
            let r = self.flat_step().await?;
            println!();
            println!(
                "flat cost: {} budgets over {} tenants and {} ACTIVE reservations seeded in {:.1} s",
                r.budgets, r.tenants, r.active, r.seed_s
            );
            println!("{}", super::row(&r.empty));
            println!("{}", super::row(&r.loaded));
            extra.flat = Some(r);
        }
        if a.sweep_reservations > 0 {
            let r = self.sweep_step().await?;
            println!();
            println!(
                "expiry sweep: {} reservations due at once (made in {:.1} s): first expired {:.2} s after the deadline, all within {:.2} s more: {:.0}/s",
                r.reservations, r.seed_s, r.first_after_s, r.sweep_s, r.per_s
            );
            extra.sweep = Some(r);
        }
        if a.overhead_clients > 0 {
            println!();
            println!(
                "governance overhead: plain, 100 policies, periods; {} clients, {} rounds",
                a.overhead_clients, a.overhead_rounds
            );
            extra.overhead = Some(self.overhead_step().await?);
        }
        if a.usage_records > 0 {
            match &a.database_url {
                Some(db) => extra.usage = Some(self.usage_step(db).await?),
                None => println!("\nusage reads: skipped (they seed Postgres: pass --database-url)"),
            }
        }
        if let Some(u) = &extra.usage {
            println!();
            println!(
                "usage reads: {} token usage records over 30 days seeded in {:.1} s; {USAGE_CLIENTS} clients per read",
                u.records, u.seed_s
            );
            for r in &u.reads {
                println!(
                    "  {:<36} {:>8.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  {} errors of {}",
                    r.name,
                    r.per_s(),
                    r.latency.p50,
                    r.latency.p99,
                    r.errors,
                    r.requests
                );
            }
        }
        Ok(extra)
    }
}

fn reserves_per_s(results: &[StepResult], phase: Phase, clients: usize) -> Option<f64> {
    find(results, Shape::Shared, phase, clients).map(StepResult::reserves_per_s)
}

/// One row: figure, target, measured, verdict (`–` when the step did not run).
fn line(figure: &str, target: &str, measured: Option<String>, ok: Option<bool>) {
    let measured = measured.unwrap_or_else(|| "–".into());
    let v = ok.map_or("–", verdict);
    println!("| {figure} | {target} | {measured} | {v} |");
}

pub fn print_targets(args: &Args, results: &[StepResult], extra: &Extra) {
    let at = |phase, c| find(results, Shape::Shared, phase, c);
    println!();
    println!("== targets (shape shared, {} budgeted scopes per reserve) ==", args.scopes);
    println!("| figure | target | measured | verdict |");
    println!("|---|---|---|---|");
    let r50 = at(Phase::Reserve, 50);
    let rate = r50.map(StepResult::reserves_per_s);
    let clean = r50.map(|r| r.errors == 0 && r.ledger.as_ref().is_ok_and(|l| l.mismatches == 0));
    line(
        "HTTP reserves/s at 50 clients (zero errors and ledger mismatches)",
        "≥ 20,000",
        rate.map(|v| format!("{v:.0} ({})", if clean == Some(true) { "clean" } else { "errors or mismatches" })),
        rate.zip(clean).map(|(v, c)| v >= 20_000.0 && c),
    );
    let pairs = at(Phase::Pair, 50).map(|r| r.commits_ok as f64 / r.elapsed_s);
    line(
        "reserve→commit pairs/s at 50 clients",
        "≥ 8,000",
        pairs.map(|v| format!("{v:.0}")),
        pairs.map(|v| v >= 8_000.0),
    );
    let redis_us = r50.and_then(|r| r.per_reserve_us(r.redis_cpu_s));
    line(
        "Redis CPU per reserve at 50 clients",
        "≤ 25 µs",
        redis_us.map(|v| format!("{v:.1} µs")),
        redis_us.map(|v| v <= 25.0),
    );
    let engine_us = r50.and_then(|r| r.per_reserve_us(r.engine_cpu_s));
    line(
        "engine CPU per reserve at 50 clients",
        "≤ 45 µs",
        engine_us.map(|v| format!("{v:.1} µs")),
        engine_us.map(|v| v <= 45.0),
    );
    for c in [10, 50, 200] {
        let ratio = reserves_per_s(results, Phase::Reserve, c)
            .zip(reserves_per_s(results, Phase::Ceiling, c))
            .filter(|(_, ceil)| *ceil > 0.0)
            .map(|(http, ceil)| http / ceil);
        line(
            &format!("engine ÷ direct-script ceiling at {c} clients"),
            "≥ 0.9",
            ratio.map(|v| format!("{v:.2}")),
            ratio.map(|v| v >= 0.9),
        );
    }
    let yard = rate.zip(extra.yardstick.as_ref().map(|y| y.per_s)).filter(|(_, y)| *y > 0.0);
    line(
        "engine ÷ minimal script by redis-benchmark at 50 clients",
        "≥ 1.3",
        yard.map(|(e, y)| format!("{:.2} ({e:.0} ÷ {y:.0})", e / y)),
        yard.map(|(e, y)| e / y >= 1.3),
    );
    let p50 = at(Phase::Reserve, 1).map(|r| r.reserve.p50);
    line("1-client reserve p50", "≤ 0.5 ms", p50.map(|v| format!("{v:.3} ms")), p50.map(|v| v <= 0.5));
    let p99 = r50.map(|r| r.reserve.p99);
    line("reserve p99 at 50 clients", "≤ 10 ms", p99.map(|v| format!("{v:.2} ms")), p99.map(|v| v <= 10.0));
    let rss = results.iter().filter_map(|r| r.engine_rss_max_mb).reduce(f64::max);
    line(
        "engine RSS (peak during the load steps)",
        "≤ 100 MB",
        rss.map(|v| format!("{v:.1} MB")),
        rss.map(|v| v <= 100.0),
    );
    if let Some(i) = &extra.idle {
        let t = i.tenants;
        line(
            &format!("idle instance, {t} tenants: Redis commands/s"),
            "≤ 50",
            Some(format!("{:.1}", i.redis_per_s)),
            Some(i.redis_per_s <= 50.0),
        );
        line(
            &format!("idle instance, {t} tenants: Postgres transactions/s"),
            "≤ 1",
            Some(format!("{:.2}", i.pg_per_s)),
            Some(i.pg_per_s <= 1.0),
        );
    }
    if let Some(f) = &extra.flat {
        let slow = f.empty.reserves_per_s() / f.loaded.reserves_per_s().max(1.0);
        line(
            &format!("flat cost: reserve/s empty ÷ loaded ({} budgets, {} reservations)", f.budgets, f.active),
            "≤ 1.2",
            Some(format!("{slow:.2} ({:.0} ÷ {:.0})", f.empty.reserves_per_s(), f.loaded.reserves_per_s())),
            Some(slow <= 1.2),
        );
        let us = |r: &StepResult| r.per_reserve_us(r.redis_cpu_s);
        let cpu = us(&f.loaded).zip(us(&f.empty)).filter(|(_, e)| *e > 0.0);
        line(
            "flat cost: Redis CPU per reserve loaded ÷ empty",
            "≤ 1.2",
            cpu.map(|(l, e)| format!("{:.2} ({l:.1} ÷ {e:.1} µs)", l / e)),
            cpu.map(|(l, e)| l / e <= 1.2),
        );
    }
    if let Some(s) = &extra.sweep {
        line(
            &format!("expiry sweep of {} due reservations", s.reservations),
            "≥ 20,000/s",
            Some(format!("{:.0}/s", s.per_s)),
            Some(s.per_s >= 20_000.0),
        );
    }
    if let Some(o) = &extra.overhead {
        overhead_lines(o);
    }
    if let Some(u) = &extra.usage {
        for r in &u.reads {
            // No target is set for these reads: the figures are reported, not judged.
            println!(
                "| usage read at {USAGE_CLIENTS} clients, {} records: {} | – | p50 {:.2} ms, p99 {:.2} ms, {:.0} req/s ({} errors) | reported |",
                u.records,
                r.name,
                r.latency.p50,
                r.latency.p99,
                r.per_s(),
                r.errors
            );
        }
    }
    let mismatches: usize = results.iter().filter_map(|r| r.ledger.as_ref().ok()).map(|l| l.mismatches).sum();
    let failed = results.iter().filter(|r| r.ledger.is_err()).count();
    line(
        "ledger mismatches, all load steps",
        "0",
        Some(format!("{mismatches} ({failed} checks failed to run)")),
        Some(mismatches == 0 && failed == 0),
    );
}

fn overhead_lines(o: &OverheadResult) {
    let (plain, pol, per) = (&o.plain, &o.policies, &o.periods);
    let slow = plain.per_s() / pol.per_s().max(1.0);
    let clean = |t: &super::overhead::Totals| t.errors == 0 && t.mismatches == 0;
    line(
        &format!(
            "100 policies (5 matching, 2 quotas): reserve/s plain ÷ policies at {} clients, {} rounds",
            o.clients, o.rounds
        ),
        "≤ 1.2",
        Some(format!("{slow:.2} ({:.0} ÷ {:.0})", plain.per_s(), pol.per_s())),
        Some(slow <= 1.2 && clean(plain) && clean(pol)),
    );
    // (figure, limit, variant µs, plain µs, variant clean); the target shown is `≤ limit`.
    let rows = [
        ("100 policies: Redis CPU per reserve policies ÷ plain", 1.2, pol.redis_us(), plain.redis_us(), true),
        ("period check: Redis CPU per reserve periods ÷ plain", 1.05, per.redis_us(), plain.redis_us(), clean(per)),
        (
            "period check: Redis script time per reserve periods ÷ plain (INFO commandstats)",
            1.05,
            per.script_us(),
            plain.script_us(),
            clean(per),
        ),
        (
            "100 policies: Redis script time per reserve policies ÷ plain (INFO commandstats)",
            1.2,
            pol.script_us(),
            plain.script_us(),
            true,
        ),
    ];
    for (figure, limit, variant, base, ok) in rows {
        let pair = variant.zip(base).filter(|(_, b)| *b > 0.0);
        line(
            figure,
            &format!("≤ {limit}"),
            pair.map(|(v, b)| format!("{:.2} ({v:.1} ÷ {b:.1} µs)", v / b)),
            pair.map(|(v, b)| v / b <= limit && ok),
        );
    }
}
