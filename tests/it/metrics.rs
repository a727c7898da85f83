//! The admin plane's `/metrics` against what reads it: every metric the Grafana dashboards in
//! `grafana/dashboards/` and the alert rules in `grafana/alerts.yml` query is exposed after a
//! short workload, every series is described, the scrape passes `promtool check metrics`
//! (Debian's `prometheus` package; `scripts/services` installs it), and the rules pass
//! `promtool check rules` and their unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD};
use crate::helpers::send;

/// Drives the runtime and admin planes through the paths the dashboards chart.
async fn short_workload(fx: &Fx) {
    // A subscription whose endpoint refuses connections: its deliveries are attempts that fail.
    let config = json!({"allow_http": true, "blocked_cidr_ranges": []});
    let r = send(fx.app.admin(Method::PUT, "/v1/admin/config/webhook-security").json(&config)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sub = json!({"url": format!("http://127.0.0.1:{port}/"), "event_types": ["budget.created"],
                     "retry_policy": {"max_retries": 0}});
    let r = send(fx.app.admin(Method::POST, &format!("/v1/admin/webhooks?tenant_id={}", fx.tenant)).json(&sub)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    fx.budget("", 1000).await;
    fx.budget_with("/agent:a", USD, 100, json!({"overdraft_limit": {"unit": USD, "amount": 50}})).await;
    let a = json!({"agent": "a"});

    let id = fx.reserved("r1", json!({}), 10).await;
    let c = fx.commit(&id, "c1", 8).await;
    assert_eq!(c.status, 200, "{}", c.text);

    let overdraft = json!({"overage_policy": "ALLOW_WITH_OVERDRAFT"});
    let r = fx.reserve_with("r2", a.clone(), 40, overdraft.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["reservation_id"].as_str().unwrap().to_string();
    let over = fx.commit(&id, "c2", 120).await;
    assert_eq!(over.status, 200, "an overage commit within the overdraft limit: {}", over.text);

    let id = fx.reserved("r3", json!({}), 5).await;
    assert_eq!(fx.release(&id, "rel").await.status, 200);

    let e = fx.event("e1", json!({}), 3, json!({})).await;
    assert!(e.status.is_success(), "{}", e.text);

    fx.reserve("r4", json!({}), 1_000_000).await.expect_error(409, "BUDGET_EXCEEDED");
    let dry = fx.reserve_with("r5", json!({}), 1, json!({"dry_run": true})).await;
    assert_eq!(dry.status, 200, "{}", dry.text);
    let decide = fx
        .post(
            "/v1/decide",
            json!({"idempotency_key": "d1", "subject": fx.subject(json!({})),
                   "action": {"kind": "llm.completion", "name": "model-a"}, "estimate": {"unit": USD, "amount": 1}}),
        )
        .await;
    assert_eq!(decide.status, 200, "{}", decide.text);

    let missing = fx.get(&format!("/v1/reservations/rsv_{}_{}", fx.tenant, "0".repeat(32))).await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    let balances = fx.get(&format!("/v1/balances?tenant={}", fx.tenant)).await;
    assert_eq!(balances.status, 200, "{}", balances.text);
    fx.ledger("", USD).await;
    // Concurrent reserves of one tenant: group commit sends them together.
    let mut batched = false;
    for round in 0..10 {
        let keys: Vec<String> = (0..30).map(|i| format!("burst-{round}-{i}")).collect();
        let burst = keys.iter().map(|k| fx.reserve_with(k, json!({}), 1, json!({"ttl_ms": 1000})));
        futures_util::future::join_all(burst).await;
        if scrape(fx).await.contains("cycles_ledger_batch_size") {
            batched = true;
            break;
        }
    }
    assert!(batched, "no group-commit batch formed");
    let attempted = crate::helpers::eventually(std::time::Duration::from_secs(10), || async {
        scrape(fx).await.contains("cycles_webhook_attempts_total")
    })
    .await;
    assert!(attempted, "no webhook attempt was made");
}

async fn scrape(fx: &Fx) -> String {
    let r = send(fx.app.admin(Method::GET, "/metrics")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.trim().is_empty(), "/metrics returned an empty body");
    r.text
}

/// The exposition of one scrape: series names, and the `# HELP` / `# TYPE` families.
struct Exposition {
    series: BTreeSet<String>,
    help: BTreeSet<String>,
    types: BTreeMap<String, String>,
}

fn parse_exposition(text: &str) -> Exposition {
    let (mut series, mut help, mut types) = (BTreeSet::new(), BTreeSet::new(), BTreeMap::new());
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help.insert(rest.split_whitespace().next().unwrap_or_default().to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                types.insert(name.to_string(), kind.to_string());
            }
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            series.insert(line[..end].to_string());
        }
    }
    Exposition { series, help, types }
}

const SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

impl Exposition {
    /// The family a series belongs to (`x_bucket` of histogram `x` is `x`).
    fn family<'a>(&self, series: &'a str) -> &'a str {
        if self.types.contains_key(series) {
            return series;
        }
        SUFFIXES
            .iter()
            .filter_map(|s| series.strip_suffix(s))
            .find(|base| matches!(self.types.get(*base).map(String::as_str), Some("histogram" | "summary")))
            .unwrap_or(series)
    }

    fn exposes(&self, metric: &str) -> bool {
        self.series.contains(metric) || SUFFIXES.iter().any(|s| self.series.contains(&format!("{metric}{s}")))
    }
}

fn dashboard_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {}", dir.display());
    files
}

fn alert_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/alerts.yml")
}

/// Every `expr` (panel queries) and `definition` (template variable queries) in a dashboard.
fn queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// Identifiers matching `(cycles|gateway)_[a-z0-9_]+`, with `_bucket`/`_sum`/`_count` stripped.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let bytes = expr.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !is_ident(bytes[i - 1]);
        let prefixed = ["cycles_", "gateway_"].iter().any(|p| expr[i..].starts_with(p));
        if boundary && prefixed {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .map_or(expr.len(), |n| i + n);
            let name = &expr[i..end];
            let base = SUFFIXES.iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            names.insert(base.to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_extracted_from_promql() {
    let expr = r#"histogram_quantile(0.99, sum by (le, route) (rate(cycles_http_request_duration_seconds_bucket{plane="runtime"}[$__rate_interval]))) / sum(gateway_priority_in_flight) + x_cycles_no"#;
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(names, vec!["cycles_http_request_duration_seconds", "gateway_priority_in_flight"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_the_dashboard_queries_is_exposed_after_a_short_workload() {
    let fx = Fx::new().await;
    short_workload(&fx).await;
    let text = scrape(&fx).await;
    let exposition = parse_exposition(&text);

    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in dashboard_files() {
        let raw = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let dashboard: Value =
            serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", file.display()));
        let mut exprs = Vec::new();
        queries(&dashboard, &mut exprs);
        assert!(!exprs.is_empty(), "{} has no queries", file.display());
        let file_name = file.file_name().unwrap().to_string_lossy().to_string();
        for name in exprs.iter().flat_map(|e| metric_names(e)) {
            wanted.entry(name).or_default().insert(file_name.clone());
        }
    }
    assert!(!wanted.is_empty(), "the dashboards query no cycles_/gateway_ metric");
    for name in metric_names(&std::fs::read_to_string(alert_rules()).expect("reading the alert rules")) {
        wanted.entry(name).or_default().insert("alerts.yml".into());
    }

    let missing: Vec<String> = wanted
        .iter()
        .filter(|(name, _)| !exposition.exposes(name))
        .map(|(name, files)| format!("{name} (queried by {})", files.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics queried by the dashboards but absent from /metrics:\n  {}\n--- scrape ---\n{text}",
        missing.join("\n  ")
    );

    let undescribed: BTreeSet<&str> =
        exposition.series.iter().map(|s| exposition.family(s)).filter(|f| !exposition.help.contains(*f)).collect();
    assert!(
        undescribed.is_empty(),
        "series in /metrics without a `# HELP` line: {}",
        undescribed.into_iter().collect::<Vec<_>>().join(", ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_metrics_endpoint_passes_promtool_check_metrics() {
    let fx = Fx::new().await;
    short_workload(&fx).await;
    // An admin request of its own too, so the admin plane's series are in the scrape.
    assert_eq!(send(fx.app.admin(Method::GET, "/v1/admin/tenants")).await.status, 200);
    let text = scrape(&fx).await;

    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed (not on PATH): run scripts/services, which installs Debian's \
             `prometheus` package (promtool) without starting the Prometheus server"
        ),
        Err(e) => panic!("running promtool: {e}"),
    };
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("writing the scrape to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("promtool check metrics: {} {}", out.status, report.trim());
    assert!(out.status.success(), "promtool check metrics failed ({}):\n{report}\n--- scrape ---\n{text}", out.status);
}

#[test]
fn the_alert_rules_pass_promtool_check_rules_and_their_unit_tests() {
    let dir = alert_rules().parent().expect("grafana/").to_path_buf();
    for args in [["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]] {
        let out = match Command::new("promtool").args(args).current_dir(&dir).output() {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("promtool is not installed (not on PATH): run scripts/services")
            }
            Err(e) => panic!("running promtool: {e}"),
        };
        let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        println!("promtool {}: {} {}", args.join(" "), out.status, report.trim());
        assert!(out.status.success(), "promtool {} failed ({}):\n{report}", args.join(" "), out.status);
    }
}
