use proptest::prelude::*;
use time::macros::datetime;

use super::*;
use crate::domain::policy::{ActionQuota, PolicyStatus, RiskClassQuota, Rules, TtlOverride};

const NOW: OffsetDateTime = datetime!(2026-04-09 14:05:00 UTC);

fn policy(id: &str, pattern: &str, priority: i64) -> Policy {
    Policy {
        policy_id: id.to_string(),
        tenant_id: "acme".into(),
        rules: Rules {
            name: id.to_string(),
            description: None,
            scope_pattern: pattern.to_string(),
            priority,
            caps: None,
            commit_overage_policy: None,
            reservation_ttl_override: None,
            rate_limits: None,
            status: PolicyStatus::Active,
            effective_from: None,
            effective_until: None,
            action_quotas: vec![],
            risk_class_quotas: vec![],
            allowed_action_kinds: vec![],
            denied_action_kinds: vec![],
        },
        version: 1,
        created_at: NOW,
        updated_at: NOW,
    }
}

fn request(kind: &str) -> Request {
    Request {
        scopes: vec!["tenant:acme".into(), "tenant:acme/agent:support-bot".into()],
        action_kind: kind.to_string(),
        risk_class: None,
        policy_keys: PolicyKeys::default(),
        run_id: Some("run-abc-123".into()),
        ttl_ms: None,
    }
}

fn caps(max_tokens: Option<i64>, cooldown_ms: Option<i64>) -> Option<Caps> {
    Some(Caps { max_tokens, cooldown_ms, ..Caps::default() })
}

#[test]
fn no_matching_policy_allows_without_caps() {
    let out = evaluate(&[policy("p", "tenant:other", 1)], &request("llm.completion"), NOW).unwrap();
    assert_eq!((out.decision, out.matched.len(), out.caps), (Decision::Allow, 0, None));
}

#[test]
fn a_denied_kind_is_denied_by_the_highest_priority_match_only() {
    let mut sandbox = policy("pol_sandbox_001", "tenant:acme/*", 10);
    sandbox.rules.denied_action_kinds = vec!["payment.charge".into()];
    let out = evaluate(std::slice::from_ref(&sandbox), &request("payment.charge"), NOW).unwrap();
    assert_eq!(out.decision, Decision::Deny);
    let deny = out.deny.unwrap();
    assert_eq!(deny.reason_code, "ACTION_KIND_DENIED");
    assert_eq!(deny.blocked_by_policy, "pol_sandbox_001");
    assert_eq!(deny.suggested_fix, "Remove 'payment.charge' from denied_action_kinds in policy 'pol_sandbox_001'");
    // A higher-priority policy without lists shadows the lower one's deny list.
    let open = policy("pol_open", "tenant:acme", 20);
    let out = evaluate(&[sandbox, open], &request("payment.charge"), NOW).unwrap();
    assert_eq!(out.decision, Decision::Allow);
    assert_eq!(out.matched, vec!["pol_open", "pol_sandbox_001"]);
}

#[test]
fn a_kind_missing_from_an_allowlist_is_not_allowed() {
    let mut p = policy("pol_readonly_001", "agent:*", 1);
    p.rules.allowed_action_kinds = vec!["db.query".into(), "llm.completion".into()];
    let out = evaluate(std::slice::from_ref(&p), &request("message.email.send"), NOW).unwrap();
    assert_eq!(out.deny.unwrap().reason_code, "ACTION_KIND_NOT_ALLOWED");
    assert_eq!(evaluate(&[p], &request("db.query"), NOW).unwrap().decision, Decision::Allow);
}

#[test]
fn caps_merge_field_by_field_with_higher_priority_winning() {
    let mut high = policy("high", "tenant:acme/*", 10);
    high.rules.caps = caps(Some(1000), None);
    let mut low = policy("low", "tenant:acme", 1);
    low.rules.caps = caps(Some(4096), Some(500));
    let out = evaluate(&[low, high], &request("llm.completion"), NOW).unwrap();
    assert_eq!(out.decision, Decision::AllowWithCaps);
    assert_eq!(out.caps, caps(Some(1000), Some(500)));
}

#[test]
fn quotas_report_what_the_request_would_count_against_risk_class_first() {
    let mut p = policy("pol_agent_defaults", "tenant:acme/*", 1);
    p.rules.risk_class_quotas = vec![RiskClassQuota {
        risk_class: RiskClass::ExternalSideEffect,
        max_calls: 50,
        window: QuotaWindow::Hour,
        per_run_counter_ttl_ms: None,
        threshold_pct: None,
    }];
    let quota = |kind: &str, window| ActionQuota {
        action_kind: kind.into(),
        max_calls: 3,
        window,
        host_allowlist: vec![],
        recipient_domain_allowlist: vec![],
        resource_type_allowlist: vec![],
        per_run_counter_ttl_ms: None,
        threshold_pct: None,
    };
    let mut hosts = quota("message.email.send", QuotaWindow::Day);
    hosts.host_allowlist = vec!["api.sendgrid.com".into()];
    p.rules.action_quotas =
        vec![quota("message.email.send", QuotaWindow::Run), quota("llm.completion", QuotaWindow::Run), hosts];
    let out = evaluate(std::slice::from_ref(&p), &request("message.email.send"), NOW).unwrap();
    let got: Vec<_> = out.quotas.iter().map(|q| (q.risk_class, q.window, q.window_key.clone())).collect();
    assert_eq!(
        got,
        vec![
            (Some(RiskClass::ExternalSideEffect), QuotaWindow::Hour, Some("2026-04-09T14".into())),
            (None, QuotaWindow::Run, Some("run-abc-123".into())),
        ]
    );
    assert_eq!(out.quotas[0].scope, "tenant:acme/agent:support-bot");
    let mut no_run = request("message.email.send");
    no_run.run_id = None;
    no_run.policy_keys.host = Some("API.sendgrid.com".into());
    let out = evaluate(&[p], &no_run, NOW).unwrap();
    assert!(out.run_id_required);
    assert_eq!(out.quotas.len(), 3);
}

#[test]
fn a_ttl_above_the_override_is_capped_and_an_absent_one_takes_the_default() {
    let mut p = policy("p", "tenant:acme", 1);
    p.rules.reservation_ttl_override =
        Some(TtlOverride { default_ttl_ms: Some(30_000), max_ttl_ms: Some(60_000), max_extensions: Some(2) });
    let mut req = request("llm.completion");
    let out = evaluate(std::slice::from_ref(&p), &req, NOW).unwrap();
    assert_eq!((out.ttl_ms, out.ttl_capped, out.max_extensions), (Some(30_000), false, Some(2)));
    req.ttl_ms = Some(120_000);
    let out = evaluate(&[p], &req, NOW).unwrap();
    assert_eq!((out.ttl_ms, out.ttl_capped), (Some(60_000), true));
}

#[test]
fn disabled_or_out_of_window_policies_do_not_match_and_custom_kinds_are_refused() {
    let mut off = policy("off", "tenant:acme", 1);
    off.rules.status = PolicyStatus::Disabled;
    let mut later = policy("later", "tenant:acme", 1);
    later.rules.effective_from = Some(datetime!(2026-05-01 0:00 UTC));
    let mut past = policy("past", "tenant:acme", 1);
    past.rules.effective_until = Some(NOW);
    assert!(evaluate(&[off, later, past], &request("llm.completion"), NOW).unwrap().matched.is_empty());
    assert!(evaluate(&[], &request("custom.acme.erp.post"), NOW).is_err());
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    let kinds = prop::sample::subsequence(vec!["llm.completion", "db.query", "payment.charge"], 0..=2);
    let patterns = prop::sample::select(vec![
        "tenant:acme",
        "tenant:acme/*",
        "agent:*",
        "workspace:*",
        "tenant:acme/agent:support-bot",
    ]);
    (0..4i64, patterns, kinds, any::<bool>(), prop::option::of(0..5000i64), prop::option::of(0..900i64), any::<bool>())
        .prop_map(|(priority, pattern, kinds, deny, tokens, cooldown, active)| {
            let mut p = policy("p", pattern, priority);
            let kinds: Vec<String> = kinds.into_iter().map(String::from).collect();
            if deny {
                p.rules.denied_action_kinds = kinds
            } else {
                p.rules.allowed_action_kinds = kinds
            }
            p.rules.caps = caps(tokens, cooldown);
            if !active {
                p.rules.status = PolicyStatus::Disabled;
            }
            p
        })
}

fn numbered(mut ps: Vec<Policy>) -> Vec<Policy> {
    for (i, p) in ps.iter_mut().enumerate() {
        p.policy_id = format!("pol_{i:02}");
    }
    ps
}

proptest! {
    #[test]
    fn the_outcome_does_not_depend_on_the_order_policies_are_given_in(
        ps in prop::collection::vec(arb_policy(), 0..8), seed in any::<u64>()
    ) {
        let ps = numbered(ps);
        let mut shuffled = ps.clone();
        let n = shuffled.len().max(1);
        shuffled.rotate_left((seed as usize) % n);
        shuffled.reverse();
        let req = request("payment.charge");
        prop_assert_eq!(evaluate(&ps, &req, NOW).unwrap(), evaluate(&shuffled, &req, NOW).unwrap());
    }

    #[test]
    fn a_deny_comes_only_from_the_highest_priority_match_and_disabled_policies_change_nothing(
        ps in prop::collection::vec(arb_policy(), 0..8)
    ) {
        let ps = numbered(ps);
        let req = request("payment.charge");
        let out = evaluate(&ps, &req, NOW).unwrap();
        let matched = matching(&ps, &req.scopes, NOW);
        let top_denies = matched.first().is_some_and(|t| access_control(t, "payment.charge").is_some());
        prop_assert_eq!(out.decision == Decision::Deny, top_denies);
        let active: Vec<Policy> = ps.iter().filter(|p| p.rules.status == PolicyStatus::Active).cloned().collect();
        prop_assert_eq!(evaluate(&active, &req, NOW).unwrap(), out.clone());
        if out.decision != Decision::Deny {
            let want = matched.iter().find_map(|p| p.rules.caps.as_ref().and_then(|c| c.max_tokens));
            prop_assert_eq!(out.caps.as_ref().and_then(|c| c.max_tokens), want);
            prop_assert_eq!(out.decision == Decision::AllowWithCaps, out.caps.is_some());
        }
    }
}

#[test]
fn each_rate_limit_comes_from_the_highest_priority_match_setting_it_at_its_deepest_scope() {
    use crate::domain::policy::RateLimits;
    let mut broad = policy("broad", "tenant:acme", 1);
    broad.rules.rate_limits =
        Some(RateLimits { max_reservations_per_minute: Some(100), max_commits_per_minute: Some(50) });
    let mut agent = policy("agent", "agent:*", 5);
    agent.rules.rate_limits = Some(RateLimits { max_reservations_per_minute: Some(10), max_commits_per_minute: None });
    let out = evaluate(&[broad, agent], &request("llm.completion"), NOW).unwrap();
    let r = out.reservations_per_minute.unwrap();
    assert_eq!((r.policy_id.as_str(), r.scope.as_str(), r.per_minute), ("agent", "tenant:acme/agent:support-bot", 10));
    let c = out.commits_per_minute.unwrap();
    assert_eq!((c.policy_id.as_str(), c.scope.as_str(), c.per_minute), ("broad", "tenant:acme", 50));
}

#[test]
fn the_threshold_count_is_the_least_count_at_or_above_the_share() {
    let at = |pct: f64, max_calls: i64| {
        QuotaUse {
            policy_id: String::new(),
            action_kind: String::new(),
            risk_class: None,
            window: QuotaWindow::Run,
            window_key: None,
            max_calls,
            scope: String::new(),
            run_counter_ttl_ms: None,
            threshold_pct: pct,
        }
        .threshold_count()
    };
    assert_eq!(at(0.8, 10), 8);
    assert_eq!(at(0.7, 10), 7, "0.7 is not exact in binary");
    assert_eq!(at(0.81, 10), 9);
    assert_eq!(at(0.8, 1), 1);
    assert_eq!(at(0.01, 3), 1);
    assert_eq!(at(0.99, 100_000), 99_000);
    assert_eq!(at(0.29, 100), 29);
}
