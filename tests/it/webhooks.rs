//! Webhook subscriptions and deliveries against a real HTTP receiver on loopback.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::fixture::{Fx, USD};
use crate::helpers::{Reply, TestApp, eventually, send, tenant_id};

/// How long a test waits for something the engine does in the background.
const WAIT: Duration = Duration::from_secs(15);
/// How long a test watches for something that must not happen (many dispatcher polls).
const QUIET: Duration = Duration::from_millis(600);

// --- the receiver -----------------------------------------------------------------------

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Hit {
    headers: HeaderMap,
    body: Vec<u8>,
    at: Instant,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    fn event_id(&self) -> String {
        self.json()["event_id"].as_str().expect("event_id").to_string()
    }
}

/// What the receiver answers: scripted replies first, then `always`.
struct Script {
    next: VecDeque<(u16, Duration)>,
    always: u16,
}

#[derive(Clone)]
struct Shared {
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<Script>>,
}

/// A webhook endpoint on 127.0.0.1 that records every request; stopped when dropped.
struct Receiver {
    url: String,
    shared: Shared,
    stop: CancellationToken,
}

async fn receive(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    s.hits.lock().unwrap().push(Hit { headers, body: body.to_vec(), at: Instant::now() });
    let (status, delay) = {
        let mut script = s.script.lock().unwrap();
        let always = script.always;
        script.next.pop_front().unwrap_or((always, Duration::ZERO))
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    /// A receiver answering 200 to everything.
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let shared = Shared {
            hits: Arc::new(Mutex::new(Vec::new())),
            script: Arc::new(Mutex::new(Script { next: VecDeque::new(), always: 200 })),
        };
        let router = axum::Router::new().fallback(receive).with_state(shared.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(stopped.cancelled_owned()).await;
        });
        Receiver { url, shared, stop }
    }

    /// The next request (after those already scripted) is answered `status` after `delay`.
    fn answer_next(&self, status: u16, delay: Duration) {
        self.shared.script.lock().unwrap().next.push_back((status, delay));
    }

    /// Requests beyond the scripted ones are answered `status`.
    fn answer_always(&self, status: u16) {
        self.shared.script.lock().unwrap().always = status;
    }

    fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; returns all of them.
    async fn wait_for(&self, n: usize) -> Vec<Hit> {
        let arrived = eventually(WAIT, || async { self.hits().len() >= n }).await;
        assert!(arrived, "expected {n} requests, the receiver got {}", self.hits().len());
        self.hits()
    }

    /// Waits until a request carrying `event_type` for `tenant` arrived; returns it.
    async fn wait_for_event(&self, event_type: &str, tenant: &str) -> Hit {
        let find = || {
            self.hits().into_iter().find(|h| {
                let e = h.json();
                e["event_type"] == event_type && e["tenant_id"] == tenant
            })
        };
        let arrived = eventually(WAIT, || async { find().is_some() }).await;
        assert!(arrived, "no {event_type} for {tenant} arrived; got {:?}", event_types(&self.hits()));
        find().unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn event_types(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| h.json()["event_type"].as_str().unwrap_or_default().to_string()).collect()
}

/// `sha256=` and the lowercase hex HMAC-SHA256 of `body` under `secret`, as a consumer computes it.
fn expected_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn signed_with(hit: &Hit, secret: &str) -> bool {
    hit.header("x-cycles-signature") == expected_signature(secret, &hit.body)
}

// --- engine calls -----------------------------------------------------------------------

/// Lets deliveries go to plain-http loopback receivers (the default config forbids both).
async fn allow_loopback(app: &TestApp) {
    let r = send(
        app.admin(Method::PUT, "/v1/admin/config/webhook-security")
            .json(&json!({"allow_http": true, "blocked_cidr_ranges": ["10.0.0.0/8"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// `POST /v1/admin/webhooks`, owned by `owner` (None: `__system__`).
async fn admin_create(app: &TestApp, owner: Option<&str>, body: Value) -> Reply {
    let mut rb = app.admin(Method::POST, "/v1/admin/webhooks");
    if let Some(t) = owner {
        rb = rb.query(&[("tenant_id", t)]);
    }
    send(rb.json(&body)).await
}

/// Creates a subscription with the admin key; returns its id and signing secret.
async fn subscribe(app: &TestApp, owner: Option<&str>, body: Value) -> (String, String) {
    let r = admin_create(app, owner, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["subscription"]["subscription_id"].as_str().expect("subscription_id").to_string();
    let secret = r.body["signing_secret"].as_str().expect("signing_secret").to_string();
    (id, secret)
}

/// A request on the tenant plane of webhooks with a tenant key.
fn tenant_req(app: &TestApp, key: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.client.request(method, app.admin_url(path)).header("x-cycles-api-key", key)
}

/// A key of `tenant` allowed to manage its webhooks and read its events.
async fn webhook_key(app: &TestApp, tenant: &str) -> String {
    let body = app.create_key(tenant, json!({"permissions": ["webhooks:read", "webhooks:write", "events:read"]})).await;
    body["key_secret"].as_str().expect("key_secret").to_string()
}

async fn get_sub(app: &TestApp, id: &str) -> Value {
    let r = send(app.admin(Method::GET, &format!("/v1/admin/webhooks/{id}"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

async fn patch_sub(app: &TestApp, id: &str, body: Value) -> Reply {
    send(app.admin(Method::PATCH, &format!("/v1/admin/webhooks/{id}")).json(&body)).await
}

/// Renames `tenant`, which emits `tenant.updated` at commit.
async fn rename_tenant(app: &TestApp, tenant: &str, name: &str) {
    let r = send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{tenant}")).json(&json!({"name": name}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The deliveries listing of a subscription (admin flavour) with `query`.
async fn deliveries(app: &TestApp, id: &str, query: &str) -> Vec<Value> {
    let r = send(app.admin(Method::GET, &format!("/v1/admin/webhooks/{id}/deliveries?{query}"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["deliveries"].as_array().cloned().expect("deliveries")
}

/// Waits until the subscription has `n` deliveries, all finished (SUCCESS or FAILED).
async fn wait_finished(app: &TestApp, id: &str, n: usize) -> Vec<Value> {
    let done = eventually(WAIT, || async {
        let d = deliveries(app, id, "").await;
        d.len() == n && d.iter().all(|d| d["status"] == "SUCCESS" || d["status"] == "FAILED")
    })
    .await;
    let list = deliveries(app, id, "").await;
    assert!(done, "expected {n} finished deliveries, have {list:?}");
    list
}

/// Events of `tenant` of one type, from the admin event log.
async fn logged(app: &TestApp, tenant: &str, event_type: &str) -> Vec<Value> {
    let r = send(app.admin(Method::GET, "/v1/admin/events").query(&[
        ("tenant_id", tenant),
        ("event_type", event_type),
        ("limit", "100"),
    ]))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["events"].as_array().cloned().expect("events")
}

async fn wait_logged(app: &TestApp, tenant: &str, event_type: &str, n: usize) -> Vec<Value> {
    let found = eventually(WAIT, || async { logged(app, tenant, event_type).await.len() >= n }).await;
    assert!(found, "expected {n} {event_type} events of {tenant}");
    logged(app, tenant, event_type).await
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

fn ids(list: &[Value], field: &str) -> Vec<String> {
    list.iter().map(|v| v[field].as_str().unwrap_or_default().to_string()).collect()
}

// --- SSRF guard -------------------------------------------------------------------------

#[tokio::test]
async fn the_default_security_config_refuses_plain_http_and_blocked_addresses() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start().await;
    let config = send(app.admin(Method::GET, "/v1/admin/config/webhook-security")).await;
    assert_eq!(config.status, 200, "{}", config.text);
    assert_eq!(config.body["allow_http"], false);
    assert!(config.body["blocked_cidr_ranges"].as_array().unwrap().contains(&json!("127.0.0.0/8")));

    let types = json!(["tenant.updated"]);
    let r = admin_create(&app, None, json!({"url": rx.url, "event_types": types})).await;
    r.expect_error(400, "WEBHOOK_URL_INVALID");
    let r = admin_create(&app, None, json!({"url": "https://127.0.0.1/hook", "event_types": types})).await;
    r.expect_error(400, "WEBHOOK_URL_INVALID");

    allow_loopback(&app).await;
    let config = send(app.admin(Method::GET, "/v1/admin/config/webhook-security")).await;
    assert_eq!(config.body["allow_http"], true);
    assert_eq!(config.body["blocked_cidr_ranges"], json!(["10.0.0.0/8"]));
    assert_eq!(config.body["allowed_url_patterns"], json!([]), "omitted fields take their defaults");
    let (id, _) = subscribe(&app, None, json!({"url": rx.url, "event_types": types})).await;
    let r = patch_sub(&app, &id, json!({"url": "https://10.1.2.3/hook"})).await;
    r.expect_error(400, "WEBHOOK_URL_INVALID");
    assert_eq!(get_sub(&app, &id).await["url"], rx.url.as_str(), "a refused update changes nothing");
}

// --- signature and envelope -------------------------------------------------------------

#[tokio::test]
async fn deliveries_are_signed_over_the_exact_body_with_the_secret_returned_at_create() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let rx = Receiver::start().await;
    let t = tenant_id("sig");
    app.create_tenant(&t).await;
    let (id, secret) = subscribe(&app, Some(&t), json!({"url": rx.url, "event_types": ["tenant.updated"]})).await;
    assert!(secret.starts_with("whsec_") && secret.len() > 30, "a generated secret: {secret}");
    let stored = get_sub(&app, &id).await;
    assert!(stored.get("signing_secret").is_none(), "GET never shows the secret: {stored}");
    assert_eq!(stored["tenant_id"], t.as_str());

    rename_tenant(&app, &t, "Renamed").await;
    let hit = rx.wait_for_event("tenant.updated", &t).await;
    let header = hit.header("x-cycles-signature");
    assert!(header.starts_with("sha256="), "{header}");
    assert_eq!(header.len(), "sha256=".len() + 64);
    assert_eq!(header, expected_signature(&secret, &hit.body), "HMAC-SHA256 of the received bytes");
    assert_eq!(header, header.to_ascii_lowercase(), "lowercase hex");
    let mut tampered = hit.body.clone();
    tampered.push(b' ');
    assert_ne!(header, expected_signature(&secret, &tampered), "the signature covers the exact bytes");
    assert_ne!(header, expected_signature("whsec_other", &hit.body));
}

#[tokio::test]
async fn a_caller_provided_signing_secret_and_custom_headers_are_used_and_the_secret_rotates() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let rx = Receiver::start().await;
    let t = tenant_id("own");
    app.create_tenant(&t).await;
    let key = webhook_key(&app, &t).await;
    let r = send(tenant_req(&app, &key, Method::POST, "/v1/webhooks").json(&json!({
        "url": rx.url,
        "event_types": ["tenant.updated"],
        "signing_secret": "my-own-secret-ünïcode",
        "headers": {"x-team": "billing", "authorization": "Bearer abc123"},
    })))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["signing_secret"], "my-own-secret-ünïcode");
    let id = r.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
    let stored = get_sub(&app, &id).await;
    assert_eq!(stored["headers"], json!({"authorization": "********", "x-team": "********"}));
    assert!(stored.get("signing_secret").is_none());

    rename_tenant(&app, &t, "First").await;
    let hit = rx.wait_for(1).await.remove(0);
    assert!(signed_with(&hit, "my-own-secret-ünïcode"), "signed with the caller's secret as UTF-8");
    assert_eq!(hit.header("x-team"), "billing");
    assert_eq!(hit.header("authorization"), "Bearer abc123");

    let r = send(
        tenant_req(&app, &key, Method::PATCH, &format!("/v1/webhooks/{id}"))
            .json(&json!({"signing_secret": "rotated"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("signing_secret").is_none());
    rename_tenant(&app, &t, "Second").await;
    let hits = rx.wait_for(2).await;
    assert!(signed_with(&hits[1], "rotated"), "signed with the rotated secret");
    assert!(!signed_with(&hits[1], "my-own-secret-ünïcode"));
}

#[tokio::test]
async fn a_delivery_is_the_event_envelope_with_headers_that_match_it() {
    let fx = Fx::new().await;
    let app = &fx.app;
    allow_loopback(app).await;
    let rx = Receiver::start().await;
    let (_, secret) = subscribe(
        app,
        Some(&fx.tenant),
        json!({"url": rx.url, "event_types": ["budget.created", "reservation.denied"]}),
    )
    .await;
    fx.budget("", 100).await;
    fx.reserve("too-much", json!({}), 500).await.expect_error(409, "BUDGET_EXCEEDED");
    let hits = rx.wait_for(2).await;
    let mut seen = BTreeSet::new();
    for hit in &hits {
        let e = hit.json();
        let event_type = e["event_type"].as_str().expect("event_type");
        seen.insert(event_type.to_string());
        for field in ["event_id", "event_type", "category", "timestamp", "tenant_id", "source"] {
            assert!(e[field].is_string(), "required {field} in {e}");
        }
        assert!(e["data"].is_object(), "data in {e}");
        let allowed = [
            "event_id",
            "event_type",
            "category",
            "timestamp",
            "tenant_id",
            "scope",
            "actor",
            "source",
            "data",
            "correlation_id",
            "request_id",
            "trace_id",
            "metadata",
        ];
        for key in e.as_object().unwrap().keys() {
            assert!(allowed.contains(&key.as_str()), "unexpected envelope field {key}");
        }
        assert!(e["event_id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(e["category"].as_str(), event_type.split('.').next(), "category agrees with type");
        assert_eq!(e["tenant_id"], fx.tenant.as_str());
        assert_eq!(e["scope"], fx.scope("").as_str());
        assert!(OffsetDateTime::parse(e["timestamp"].as_str().unwrap(), &Rfc3339).is_ok(), "RFC 3339 timestamp");

        assert_eq!(hit.header("x-cycles-event-id"), e["event_id"].as_str().unwrap());
        assert_eq!(hit.header("x-cycles-event-type"), event_type);
        assert!(hit.header("content-type").starts_with("application/json"));
        assert!(hit.header("user-agent").starts_with("tollgate/"), "{}", hit.header("user-agent"));
        assert!(signed_with(hit, &secret));
        let trace = hit.header("x-cycles-trace-id");
        assert!(trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()), "trace id {trace}");
        if let Some(body_trace) = e["trace_id"].as_str() {
            assert_eq!(trace, body_trace, "the trace header carries the event's trace id");
        }
        let parts: Vec<&str> = hit.header("traceparent").split('-').collect();
        assert_eq!(parts.len(), 4, "traceparent {}", hit.header("traceparent"));
        assert_eq!((parts[0], parts[1], parts[3]), ("00", trace, "01"));
        assert_eq!(parts[2].len(), 16);

        let logged =
            send(app.admin(Method::GET, &format!("/v1/admin/events/{}", e["event_id"].as_str().unwrap()))).await;
        assert_eq!(logged.status, 200, "{}", logged.text);
        assert_eq!(logged.body, e, "the body is the event as the log serves it");
    }
    assert_eq!(seen, BTreeSet::from(["budget.created".to_string(), "reservation.denied".to_string()]));
    let denied = hits.iter().map(Hit::json).find(|e| e["event_type"] == "reservation.denied").unwrap();
    assert_eq!(denied["data"]["requested_amount"], 500);
    assert_eq!(denied["data"]["unit"], USD);
}

#[tokio::test]
async fn a_budget_period_rolled_subscription_receives_each_roll_signed_with_the_data_the_log_shows() {
    let fx = Fx::new().await;
    let app = &fx.app;
    allow_loopback(app).await;
    let rx = Receiver::start().await;
    let (id, secret) =
        subscribe(app, Some(&fx.tenant), json!({"url": rx.url, "event_types": ["budget.period_rolled"]})).await;
    let start = crate::periods::now_ms();
    crate::periods::periodic(&fx, "", 1_000, start, 1_000, "CARRY_FORWARD").await;
    crate::periods::wait_for_roll(&fx, "", start).await;
    // Reads roll in memory only; a write makes the roll and reports each period it crossed.
    assert_eq!(fx.fund("", "CREDIT", 1).await.status, 200);
    let hit = rx.wait_for_event("budget.period_rolled", &fx.tenant).await;
    assert!(signed_with(&hit, &secret), "signed with the subscription's secret");
    assert_eq!(hit.header("x-cycles-event-type"), "budget.period_rolled");
    let e = hit.json();
    assert_eq!((e["category"].as_str(), e["scope"].as_str()), (Some("budget"), Some(fx.scope("").as_str())));
    let d = &e["data"];
    assert_eq!(d["rollover_policy"], "CARRY_FORWARD", "{e}");
    assert_eq!(
        crate::periods::ms_of(&d["previous_period_start"]),
        start,
        "the first roll leaves the first period: {e}"
    );
    for field in ["period_start", "period_end", "periods_crossed", "carried_amount", "previous_state", "new_state"] {
        assert!(!d[field].is_null(), "{field} in {e}");
    }
    let stored = send(app.admin(Method::GET, &format!("/v1/admin/events/{}", hit.event_id()))).await;
    assert_eq!(stored.status, 200, "{}", stored.text);
    assert_eq!(stored.body, e, "the delivery is the event as the log serves it");
    // Every roll the log holds is delivered once, and nothing else is.
    let rolls = || async {
        ids(&logged(app, &fx.tenant, "budget.period_rolled").await, "event_id").into_iter().collect::<BTreeSet<_>>()
    };
    let delivered = eventually(WAIT, || async {
        let got: BTreeSet<String> = rx.hits().iter().map(Hit::event_id).collect();
        got == rolls().await && rx.hits().len() == got.len()
    })
    .await;
    let rolls = rolls().await;
    assert!(delivered, "log {rolls:?}, received {:?}", event_types(&rx.hits()));
    assert!(rx.hits().iter().all(|h| signed_with(h, &secret)));
    let finished = wait_finished(app, &id, rolls.len()).await;
    assert!(finished.iter().all(|d| d["status"] == "SUCCESS"), "{finished:?}");
}

// --- retries, timeouts, auto-disable ----------------------------------------------------

#[tokio::test]
async fn a_failing_endpoint_is_retried_with_backoff_until_it_answers_2xx() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let rx = Receiver::start().await;
    rx.answer_next(500, Duration::ZERO);
    rx.answer_next(503, Duration::ZERO);
    let t = tenant_id("retry");
    app.create_tenant(&t).await;
    let policy = json!({"max_retries": 3, "initial_delay_ms": 500, "backoff_multiplier": 2.0, "max_delay_ms": 1000});
    let (id, secret) =
        subscribe(&app, Some(&t), json!({"url": rx.url, "event_types": ["tenant.updated"], "retry_policy": policy}))
            .await;
    assert_eq!(get_sub(&app, &id).await["retry_policy"], policy);

    rename_tenant(&app, &t, "Retried").await;
    // Between attempts the delivery is RETRYING with its next attempt time.
    let retrying = eventually(WAIT, || async {
        deliveries(&app, &id, "").await.first().is_some_and(|d| {
            d["status"] == "RETRYING" && d["next_retry_at"].is_string() && d["response_status"].as_i64() >= Some(500)
        })
    })
    .await;
    assert!(retrying, "never saw RETRYING: {:?}", deliveries(&app, &id, "").await);
    let list = wait_finished(&app, &id, 1).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 3, "two failures and one success");
    let event_id = hits[0].event_id();
    assert!(hits.iter().all(|h| h.event_id() == event_id), "every attempt carries the same event");
    assert!(hits.iter().all(|h| h.body == hits[0].body && signed_with(h, &secret)), "the same signed body");
    // Retry n waits min(500 × 2^(n−1), 1000) × a jitter in [0.8, 1.0]; a little slack for clocks.
    let slack = Duration::from_millis(25);
    let first_gap = hits[1].at - hits[0].at;
    let second_gap = hits[2].at - hits[1].at;
    assert!(first_gap + slack >= Duration::from_millis(400), "first retry after {first_gap:?}");
    assert!(second_gap + slack >= Duration::from_millis(800), "second retry after {second_gap:?}");

    let d = &list[0];
    assert_eq!(d["status"], "SUCCESS", "{d}");
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["response_status"], 200);
    assert_eq!(d["event_id"], event_id.as_str());
    assert_eq!(d["event_type"], "tenant.updated");
    assert!(d["completed_at"].is_string() && d.get("next_retry_at").is_none(), "{d}");
    let sub = get_sub(&app, &id).await;
    assert_eq!(sub["consecutive_failures"], 0, "retries of a delivery that succeeds are no failure");
    assert!(sub["last_success_at"].is_string());
}

#[tokio::test]
async fn an_attempt_that_times_out_is_retried_and_the_delivery_still_succeeds() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let rx = Receiver::start().await;
    // Longer than the 2 s attempt timeout.
    rx.answer_next(200, Duration::from_millis(3_000));
    let t = tenant_id("slow");
    app.create_tenant(&t).await;
    let policy = json!({"max_retries": 2, "initial_delay_ms": 100, "backoff_multiplier": 1.0, "max_delay_ms": 1000});
    let (id, _) =
        subscribe(&app, Some(&t), json!({"url": rx.url, "event_types": ["tenant.updated"], "retry_policy": policy}))
            .await;
    rename_tenant(&app, &t, "Slow").await;
    let list = wait_finished(&app, &id, 1).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 2, "the timed-out attempt and one retry");
    assert_eq!(hits[0].event_id(), hits[1].event_id());
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(1_900), "the retry came after the attempt timed out, not {gap:?}");
    assert_eq!(list[0]["status"], "SUCCESS", "{}", list[0]);
    assert_eq!(list[0]["attempts"], 2);
    assert_eq!(list[0]["response_status"], 200);
    assert_eq!(get_sub(&app, &id).await["consecutive_failures"], 0);
}

#[tokio::test]
async fn a_subscription_that_keeps_failing_is_disabled_until_patched_active() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let rx = Receiver::start().await;
    rx.answer_always(500);
    let t = tenant_id("flaky");
    app.create_tenant(&t).await;
    let policy = json!({"max_retries": 0, "initial_delay_ms": 100, "backoff_multiplier": 1.0, "max_delay_ms": 1000});
    let (id, _) = subscribe(
        &app,
        Some(&t),
        json!({"url": rx.url, "event_types": ["tenant.updated"], "retry_policy": policy, "disable_after_failures": 2}),
    )
    .await;

    rename_tenant(&app, &t, "One").await;
    let one = wait_finished(&app, &id, 1).await;
    assert_eq!(one[0]["status"], "FAILED", "no retries: the first failure is final");
    let sub = get_sub(&app, &id).await;
    assert_eq!((sub["status"].as_str(), sub["consecutive_failures"].as_i64()), (Some("ACTIVE"), Some(1)));
    rename_tenant(&app, &t, "Two").await;
    let disabled = eventually(WAIT, || async { get_sub(&app, &id).await["status"] == "DISABLED" }).await;
    assert!(disabled, "still {}", get_sub(&app, &id).await);
    let sub = get_sub(&app, &id).await;
    assert_eq!(sub["consecutive_failures"], 2);
    assert!(sub["last_failure_at"].is_string());
    let list = wait_finished(&app, &id, 2).await;
    for d in &list {
        assert_eq!((d["status"].as_str(), d["attempts"].as_i64()), (Some("FAILED"), Some(1)), "{d}");
        assert_eq!(d["response_status"], 500);
        assert!(d["error_message"].as_str().is_some_and(|m| !m.is_empty()), "{d}");
    }
    assert_eq!(rx.hits().len(), 2);

    let events = logged(&app, &t, "webhook.disabled").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["subscription_id"], id.as_str());
    assert_eq!(events[0]["data"]["new_status"], "DISABLED");
    assert_eq!(events[0]["category"], "webhook");
    let failed = logged(&app, "__system__", "system.webhook_delivery_failed").await;
    assert_eq!(failed.len(), 2, "one per exhausted delivery: {failed:?}");
    assert!(failed.iter().all(|e| e["data"]["details"]["subscription_id"] == id.as_str()));

    // Events while DISABLED are not queued, let alone sent.
    rename_tenant(&app, &t, "Three").await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(rx.hits().len(), 2);
    assert_eq!(deliveries(&app, &id, "").await.len(), 2);

    rx.answer_always(200);
    let r = patch_sub(&app, &id, json!({"status": "ACTIVE"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "ACTIVE");
    assert_eq!(r.body["consecutive_failures"], 0, "re-enabling resets the count");
    assert_eq!(logged(&app, &t, "webhook.resumed").await.len(), 1);
    rename_tenant(&app, &t, "Four").await;
    let hits = rx.wait_for(3).await;
    assert_eq!(hits[2].json()["event_type"], "tenant.updated");
    let list = wait_finished(&app, &id, 3).await;
    assert_eq!(list[0]["status"], "SUCCESS");
}

// --- replay -----------------------------------------------------------------------------

#[tokio::test]
async fn replaying_a_window_redelivers_its_events_as_new_deliveries() {
    let fx = Fx::new().await;
    let app = &fx.app;
    allow_loopback(app).await;
    let rx = Receiver::start().await;
    let from = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let (id, _) = subscribe(app, Some(&fx.tenant), json!({"url": rx.url, "event_types": ["budget.funded"]})).await;
    fx.budget("", 1_000).await;
    for _ in 0..3 {
        let r = fx.fund("", "CREDIT", 10).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let first = rx.wait_for(3).await;
    let live = wait_finished(app, &id, 3).await;
    let original: BTreeSet<String> = first.iter().map(Hit::event_id).collect();
    assert_eq!(original.len(), 3);
    assert_eq!(ids(&live, "event_id").into_iter().collect::<BTreeSet<_>>(), original);
    let to = OffsetDateTime::now_utc() + time::Duration::minutes(1);
    let window = json!({"from": rfc3339(from), "to": rfc3339(to)});
    let replay = format!("/v1/admin/webhooks/{id}/replay");

    let mut narrow = window.clone();
    narrow["max_events"] = json!(2);
    let r = send(app.admin(Method::POST, &replay).json(&narrow)).await;
    r.expect_error(400, "INVALID_REQUEST");
    let r = send(app.admin(Method::POST, &replay).json(&json!({"from": rfc3339(to), "to": rfc3339(from)}))).await;
    r.expect_error(400, "INVALID_REQUEST");
    assert_eq!(deliveries(app, &id, "").await.len(), 3, "a refused replay queues nothing");

    // Slow answers keep the replay in progress while a second one is tried.
    for _ in 0..3 {
        rx.answer_next(200, Duration::from_millis(700));
    }
    let r = send(app.admin(Method::POST, &replay).json(&window)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["events_queued"], 3);
    assert!(r.body["replay_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(r.body["estimated_completion_seconds"].is_u64());
    let again = send(app.admin(Method::POST, &replay).json(&window)).await;
    again.expect_error(409, "REPLAY_IN_PROGRESS");

    let hits = rx.wait_for(6).await;
    let replayed: Vec<String> = hits[3..].iter().map(Hit::event_id).collect();
    assert_eq!(replayed.iter().cloned().collect::<BTreeSet<_>>(), original, "the same events again");
    let all = wait_finished(app, &id, 6).await;
    assert!(all.iter().all(|d| d["status"] == "SUCCESS"), "{all:?}");
    let delivery_ids: BTreeSet<String> = ids(&all, "delivery_id").into_iter().collect();
    assert_eq!(delivery_ids.len(), 6, "each replayed event is a new delivery");
    let mut per_event: BTreeMap<String, usize> = BTreeMap::new();
    for e in ids(&all, "event_id") {
        *per_event.entry(e).or_default() += 1;
    }
    assert!(per_event.values().all(|n| *n == 2), "{per_event:?}");

    // Once finished, another replay is accepted; a type the subscription does not select queues nothing.
    let mut other = window.clone();
    other["event_types"] = json!(["budget.created"]);
    let r = send(app.admin(Method::POST, &replay).json(&other)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["events_queued"], 0);
}

// --- deliveries listing -----------------------------------------------------------------

#[tokio::test]
async fn the_deliveries_listing_records_each_outcome_and_filters_by_status() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let rx = Receiver::start().await;
    rx.answer_next(500, Duration::ZERO);
    let (a, b) = (tenant_id("lista"), tenant_id("listb"));
    app.create_tenant(&a).await;
    app.create_tenant(&b).await;
    let (key_a, key_b) = (webhook_key(&app, &a).await, webhook_key(&app, &b).await);
    let policy = json!({"max_retries": 0, "initial_delay_ms": 100, "backoff_multiplier": 1.0, "max_delay_ms": 1000});
    let r = send(tenant_req(&app, &key_a, Method::POST, "/v1/webhooks").json(&json!({
        "url": rx.url, "event_types": ["tenant.updated"], "retry_policy": policy,
    })))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["subscription"]["tenant_id"], a.as_str(), "owned by the key's tenant");
    let id = r.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
    assert!(deliveries(&app, &id, "").await.is_empty());

    rename_tenant(&app, &a, "Fails").await;
    wait_finished(&app, &id, 1).await;
    assert_eq!(get_sub(&app, &id).await["consecutive_failures"], 1);
    rename_tenant(&app, &a, "Works").await;
    let list = wait_finished(&app, &id, 2).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 2);
    assert_eq!(get_sub(&app, &id).await["consecutive_failures"], 0, "a success resets the count");

    let (ok, failed) = (&list[0], &list[1]);
    assert_eq!(ok["status"], "SUCCESS", "newest first: {list:?}");
    assert_eq!(ok["event_id"], hits[1].event_id().as_str());
    assert_eq!((ok["attempts"].as_i64(), ok["response_status"].as_i64()), (Some(1), Some(200)));
    assert!(ok["response_time_ms"].is_i64() && ok["completed_at"].is_string(), "{ok}");
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["event_id"], hits[0].event_id().as_str());
    assert_eq!((failed["attempts"].as_i64(), failed["response_status"].as_i64()), (Some(1), Some(500)));
    assert!(failed["error_message"].as_str().is_some_and(|m| !m.is_empty()), "{failed}");
    for d in &list {
        assert_eq!(d["subscription_id"], id.as_str());
        assert_eq!(d["event_type"], "tenant.updated");
        assert!(d["delivery_id"].is_string() && d["attempted_at"].is_string());
    }

    assert_eq!(ids(&deliveries(&app, &id, "status=FAILED").await, "delivery_id"), ids(&list[1..], "delivery_id"));
    assert_eq!(ids(&deliveries(&app, &id, "status=SUCCESS").await, "delivery_id"), ids(&list[..1], "delivery_id"));
    assert!(deliveries(&app, &id, "status=RETRYING").await.is_empty());
    assert!(deliveries(&app, &id, "status=PENDING").await.is_empty());
    send(app.admin(Method::GET, &format!("/v1/admin/webhooks/{id}/deliveries?status=LOST")))
        .await
        .expect_error(400, "INVALID_REQUEST");

    let page = send(app.admin(Method::GET, &format!("/v1/admin/webhooks/{id}/deliveries?limit=1"))).await;
    assert_eq!(page.body["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["has_more"], true);
    let cursor = page.body["next_cursor"].as_str().expect("next_cursor").to_string();
    let next = send(
        app.admin(Method::GET, &format!("/v1/admin/webhooks/{id}/deliveries"))
            .query(&[("limit", "1"), ("cursor", cursor.as_str())]),
    )
    .await;
    assert_eq!(next.status, 200, "{}", next.text);
    assert_eq!(next.body["deliveries"][0]["delivery_id"], failed["delivery_id"]);

    let own = send(tenant_req(&app, &key_a, Method::GET, &format!("/v1/webhooks/{id}/deliveries"))).await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(ids(own.body["deliveries"].as_array().unwrap(), "delivery_id"), ids(&list, "delivery_id"));
    let own_failed =
        send(tenant_req(&app, &key_a, Method::GET, &format!("/v1/webhooks/{id}/deliveries?status=FAILED"))).await;
    assert_eq!(own_failed.body["deliveries"].as_array().unwrap().len(), 1);
    let other = send(tenant_req(&app, &key_b, Method::GET, &format!("/v1/webhooks/{id}/deliveries"))).await;
    other.expect_error(404, "WEBHOOK_NOT_FOUND");
}

// --- isolation --------------------------------------------------------------------------

#[tokio::test]
async fn a_tenant_subscription_never_receives_another_tenants_events_nor_admin_only_events() {
    let app = Arc::new(TestApp::spawn().await);
    allow_loopback(&app).await;
    let (rx_a, rx_system) = (Receiver::start().await, Receiver::start().await);
    let (a, b) = (tenant_id("isoa"), tenant_id("isob"));
    app.create_tenant(&a).await;
    app.create_tenant(&b).await;
    let (sub_a, _) = subscribe(
        &app,
        Some(&a),
        json!({"url": rx_a.url, "event_types": ["tenant.updated"], "event_categories": ["budget", "tenant"]}),
    )
    .await;
    let (sub_system, _) =
        subscribe(&app, None, json!({"url": rx_system.url, "event_types": ["api_key.created"]})).await;

    // Tenant B is busy: a key, a budget, funding, a rename.
    let key_b = app.create_key(&b, json!({})).await;
    let fx_b = Fx { app: app.clone(), tenant: b.clone(), key: key_b["key_secret"].as_str().unwrap().into() };
    fx_b.budget("", 1_000).await;
    assert_eq!(fx_b.fund("", "CREDIT", 5).await.status, 200);
    rename_tenant(&app, &b, "B renamed").await;
    // Tenant A: an admin-only event (a key), then its own budget and a rename.
    let key_a = app.create_key(&a, json!({})).await;
    let fx_a = Fx { app: app.clone(), tenant: a.clone(), key: key_a["key_secret"].as_str().unwrap().into() };
    fx_a.budget("", 1_000).await;
    rename_tenant(&app, &a, "A renamed").await;

    rx_a.wait_for_event("budget.created", &a).await;
    rx_a.wait_for_event("tenant.updated", &a).await;
    let system_hit = rx_system.wait_for_event("api_key.created", &a).await;
    assert_eq!(system_hit.json()["data"]["key_id"], key_a["key_id"]);
    rx_system.wait_for_event("api_key.created", &b).await;
    // B's events are all in the log, so every delivery they could cause has been queued.
    wait_logged(&app, &b, "budget.funded", 1).await;
    wait_logged(&app, &b, "budget.created", 1).await;
    tokio::time::sleep(QUIET).await;

    for hit in rx_a.hits() {
        let e = hit.json();
        assert_eq!(e["tenant_id"], a.as_str(), "tenant A's endpoint got {e}");
        assert!(e["category"] == "budget" || e["category"] == "tenant", "admin-only event delivered: {e}");
    }
    let queued = deliveries(&app, &sub_a, "limit=100").await;
    let types: BTreeSet<String> = ids(&queued, "event_type").into_iter().collect();
    assert_eq!(types, BTreeSet::from(["budget.created".to_string(), "tenant.updated".to_string()]));
    assert!(!types.iter().any(|t| t.starts_with("api_key.") || t.starts_with("webhook.")));
    let b_events: BTreeSet<String> =
        crate::events::events_of(&app, &b).await.iter().map(|e| e["event_id"].as_str().unwrap().to_string()).collect();
    assert!(ids(&queued, "event_id").iter().all(|e| !b_events.contains(e)), "a delivery of B's event to A");
    for hit in rx_system.hits() {
        assert_eq!(hit.json()["event_type"], "api_key.created", "the system subscription selects only that");
    }
    assert!(deliveries(&app, &sub_system, "").await.len() >= 2);
}

// --- invariants and bulk actions --------------------------------------------------------

#[tokio::test]
async fn selector_invariants_hold_on_every_create_and_update_path() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let rx = Receiver::start().await;
    let t = tenant_id("inv");
    app.create_tenant(&t).await;
    let key = webhook_key(&app, &t).await;
    let url = rx.url.as_str();
    let bad_creates = [
        json!({"url": url, "event_types": []}),
        json!({"url": url, "event_types": [], "event_categories": ["tenant"]}),
        json!({"url": url, "event_types": ["api_key.created"]}),
        json!({"url": url, "event_types": ["policy.updated"]}),
        json!({"url": url, "event_types": ["webhook.disabled"]}),
        json!({"url": url, "event_types": ["system.webhook_delivery_failed"]}),
        json!({"url": url, "event_types": ["tenant.updated"], "event_categories": ["api_key"]}),
        json!({"url": url, "event_types": ["tenant.updated"], "event_categories": ["policy"]}),
        json!({"url": url, "event_types": ["tenant.updated"], "event_categories": ["webhook"]}),
        json!({"url": url, "event_types": ["budget.created"], "event_categories": ["system", "budget"]}),
    ];
    for body in &bad_creates {
        let r = admin_create(&app, Some(&t), body.clone()).await;
        assert_eq!(r.body["error"], "INVALID_REQUEST", "admin create for a tenant {body}: {}", r.text);
        r.expect_error(400, "INVALID_REQUEST");
        let r = send(tenant_req(&app, &key, Method::POST, "/v1/webhooks").json(body)).await;
        assert_eq!(r.body["error"], "INVALID_REQUEST", "tenant create {body}: {}", r.text);
        r.expect_error(400, "INVALID_REQUEST");
    }
    admin_create(&app, None, json!({"url": url, "event_types": []})).await.expect_error(400, "INVALID_REQUEST");
    let r = admin_create(&app, None, json!({"url": url, "event_types": [], "event_categories": ["system"]})).await;
    r.expect_error(400, "INVALID_REQUEST");
    let listed = send(app.admin(Method::GET, "/v1/admin/webhooks")).await;
    assert_eq!(listed.body["subscriptions"], json!([]), "nothing refused was persisted");

    // `__system__` may select admin-only types and categories.
    let (system, _) = subscribe(
        &app,
        None,
        json!({"url": url, "event_types": ["api_key.created", "webhook.disabled"], "event_categories": ["system"]}),
    )
    .await;
    let r = patch_sub(&app, &system, json!({"event_categories": ["policy", "api_key"]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["tenant_id"], "__system__");

    let (owned, _) = subscribe(&app, Some(&t), json!({"url": url, "event_types": ["tenant.updated"]})).await;
    let path = format!("/v1/webhooks/{owned}");
    let bad_patches = [
        json!({"event_types": []}),
        json!({"event_types": ["api_key.created"]}),
        json!({"event_types": ["tenant.updated", "webhook.created"]}),
        json!({"event_types": ["system.webhook_test"]}),
        json!({"event_categories": ["system"]}),
        json!({"event_categories": ["tenant", "policy"]}),
        json!({"event_types": [], "event_categories": []}),
    ];
    for body in &bad_patches {
        let admin = patch_sub(&app, &owned, body.clone()).await;
        assert_eq!(admin.body["error"], "INVALID_REQUEST", "admin PATCH {body}: {}", admin.text);
        admin.expect_error(400, "INVALID_REQUEST");
        let tenant = send(tenant_req(&app, &key, Method::PATCH, &path).json(body)).await;
        assert_eq!(tenant.body["error"], "INVALID_REQUEST", "tenant PATCH {body}: {}", tenant.text);
        tenant.expect_error(400, "INVALID_REQUEST");
        let on_behalf = send(app.admin(Method::PATCH, &path).json(body)).await;
        assert_eq!(on_behalf.body["error"], "INVALID_REQUEST", "admin-on-behalf-of PATCH {body}: {}", on_behalf.text);
        on_behalf.expect_error(400, "INVALID_REQUEST");
    }
    let stored = get_sub(&app, &owned).await;
    assert_eq!(stored["event_types"], json!(["tenant.updated"]), "no refused PATCH was persisted");
    assert!(stored.get("event_categories").is_none_or(|c| c == &json!([])), "{stored}");

    // The merged state decides: types may be cleared while categories remain, not both.
    let r = send(tenant_req(&app, &key, Method::PATCH, &path).json(&json!({"event_categories": ["budget"]}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(app.admin(Method::PATCH, &path).json(&json!({"event_types": []}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["event_types"], json!([]));
    assert_eq!(r.body["event_categories"], json!(["budget"]));
    let r = patch_sub(&app, &owned, json!({"event_categories": []})).await;
    r.expect_error(400, "INVALID_REQUEST");
    let r =
        send(tenant_req(&app, &key, Method::PATCH, &path).json(&json!({"event_categories": ["reservation"]}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let stored = get_sub(&app, &owned).await;
    assert_eq!(
        (stored["event_types"].clone(), stored["event_categories"].clone()),
        (json!([]), json!(["reservation"]))
    );
}

#[tokio::test]
async fn bulk_pause_refuses_a_stale_expected_count_and_paused_subscriptions_receive_nothing() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let rx = Receiver::start().await;
    let (t, other) = (tenant_id("bulk"), tenant_id("bulkother"));
    app.create_tenant(&t).await;
    app.create_tenant(&other).await;
    let body = json!({"url": rx.url, "event_types": ["tenant.updated"]});
    let (one, _) = subscribe(&app, Some(&t), body.clone()).await;
    let (two, _) = subscribe(&app, Some(&t), body.clone()).await;
    let (elsewhere, _) = subscribe(&app, Some(&other), body.clone()).await;

    let bulk = |expected: i64, key: &str| {
        app.admin(Method::POST, "/v1/admin/webhooks/bulk-action").json(&json!({
            "filter": {"tenant_id": t}, "action": "PAUSE", "expected_count": expected, "idempotency_key": key,
        }))
    };
    let r = send(bulk(3, "bulk-stale")).await;
    r.expect_error(409, "COUNT_MISMATCH");
    assert_eq!(get_sub(&app, &one).await["status"], "ACTIVE", "a refused bulk action changes nothing");
    let r = send(
        app.admin(Method::POST, "/v1/admin/webhooks/bulk-action")
            .json(&json!({"filter": {}, "action": "PAUSE", "idempotency_key": "bulk-empty"})),
    )
    .await;
    r.expect_error(400, "INVALID_REQUEST");

    let r = send(bulk(2, "bulk-pause")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["action"], "PAUSE");
    assert_eq!(r.body["total_matched"], 2);
    let succeeded: BTreeSet<String> = ids(r.body["succeeded"].as_array().unwrap(), "id").into_iter().collect();
    assert_eq!(succeeded, BTreeSet::from([one.clone(), two.clone()]));
    assert_eq!(r.body["failed"], json!([]));
    assert_eq!(r.body["idempotency_key"], "bulk-pause");
    let repeated = send(bulk(2, "bulk-pause")).await;
    assert_eq!(repeated.body, r.body, "a repeated key replays the first response");
    let entries = app.audit(&format!("tenant_id={t}&operation=bulkActionWebhooks")).await;
    assert_eq!(entries.len(), 1, "one audit entry per invocation, none per row or replay: {entries:?}");
    for id in [&one, &two] {
        assert_eq!(get_sub(&app, id).await["status"], "PAUSED");
    }
    assert_eq!(get_sub(&app, &elsewhere).await["status"], "ACTIVE");
    let listed = send(app.admin(Method::GET, "/v1/admin/webhooks").query(&[("status", "PAUSED")])).await;
    assert_eq!(listed.body["subscriptions"].as_array().unwrap().len(), 2);

    // Paused: the rename is not queued for either subscription; the other tenant's still flows.
    rename_tenant(&app, &t, "Paused").await;
    rename_tenant(&app, &other, "Active").await;
    rx.wait_for_event("tenant.updated", &other).await;
    tokio::time::sleep(QUIET).await;
    assert!(rx.hits().iter().all(|h| h.json()["tenant_id"] == other.as_str()));
    assert!(deliveries(&app, &one, "").await.is_empty());
    assert!(deliveries(&app, &two, "").await.is_empty());

    let again = send(bulk(2, "bulk-pause-again")).await;
    assert_eq!(again.body["skipped"].as_array().map(Vec::len), Some(2), "{}", again.text);
    assert_eq!(again.body["skipped"][0]["reason"], "ALREADY_IN_TARGET_STATE");
    let resume = send(app.admin(Method::POST, "/v1/admin/webhooks/bulk-action").json(&json!({
        "filter": {"tenant_id": t}, "action": "RESUME", "idempotency_key": "bulk-resume",
    })))
    .await;
    assert_eq!(resume.status, 200, "{}", resume.text);
    assert_eq!(resume.body["succeeded"].as_array().map(Vec::len), Some(2));
    rename_tenant(&app, &t, "Resumed").await;
    wait_finished(&app, &one, 1).await;
    wait_finished(&app, &two, 1).await;
}

// --- tenant flavour and the test probe --------------------------------------------------

#[tokio::test]
async fn tenant_keys_manage_only_their_own_subscriptions() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let rx = Receiver::start().await;
    let (a, b) = (tenant_id("owna"), tenant_id("ownb"));
    app.create_tenant(&a).await;
    app.create_tenant(&b).await;
    let (key_a, key_b) = (webhook_key(&app, &a).await, webhook_key(&app, &b).await);
    let reader =
        app.create_key(&a, json!({"permissions": ["webhooks:read"]})).await["key_secret"].as_str().unwrap().to_string();
    let runtime_only = app.create_key(&a, json!({})).await["key_secret"].as_str().unwrap().to_string();
    let body = json!({"url": rx.url, "event_types": ["tenant.updated"], "name": "ops"});

    let r = send(tenant_req(&app, &key_a, Method::POST, "/v1/webhooks").json(&body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
    send(tenant_req(&app, &reader, Method::POST, "/v1/webhooks").json(&body))
        .await
        .expect_error(403, "INSUFFICIENT_PERMISSIONS");
    send(tenant_req(&app, &runtime_only, Method::GET, "/v1/webhooks"))
        .await
        .expect_error(403, "INSUFFICIENT_PERMISSIONS");
    let (id_b, _) = subscribe(&app, Some(&b), body.clone()).await;

    let mine = send(tenant_req(&app, &key_a, Method::GET, "/v1/webhooks")).await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    assert_eq!(ids(mine.body["subscriptions"].as_array().unwrap(), "subscription_id"), vec![id.clone()]);
    let r = send(app.admin(Method::GET, "/v1/webhooks")).await;
    let message = r.expect_error(400, "INVALID_REQUEST");
    assert_eq!(message, "tenant query parameter is required when using admin key authentication");
    let r = send(app.admin(Method::GET, "/v1/webhooks").query(&[("tenant", b.as_str())])).await;
    assert_eq!(ids(r.body["subscriptions"].as_array().unwrap(), "subscription_id"), vec![id_b.clone()]);
    let r = send(app.admin(Method::GET, "/v1/admin/webhooks").query(&[("tenant_id", a.as_str())])).await;
    assert_eq!(ids(r.body["subscriptions"].as_array().unwrap(), "subscription_id"), vec![id.clone()]);

    let got = send(tenant_req(&app, &reader, Method::GET, &format!("/v1/webhooks/{id}"))).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["name"], "ops");
    let path_b = format!("/v1/webhooks/{id_b}");
    for (method, path) in [
        (Method::GET, path_b.clone()),
        (Method::PATCH, path_b.clone()),
        (Method::DELETE, path_b.clone()),
        (Method::POST, format!("{path_b}/test")),
        (Method::GET, format!("{path_b}/deliveries")),
    ] {
        let mut rb = tenant_req(&app, &key_a, method.clone(), &path);
        if method == Method::PATCH {
            rb = rb.json(&json!({"name": "stolen"}));
        }
        send(rb).await.expect_error(404, "WEBHOOK_NOT_FOUND");
    }
    assert!(rx.hits().is_empty(), "no probe went to B's endpoint");
    assert_eq!(get_sub(&app, &id_b).await["name"], "ops", "B's subscription is untouched");

    let r =
        send(tenant_req(&app, &key_a, Method::PATCH, &format!("/v1/webhooks/{id}")).json(&json!({"status": "PAUSED"})))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "PAUSED");
    let r = send(
        tenant_req(&app, &key_a, Method::PATCH, &format!("/v1/webhooks/{id}")).json(&json!({"status": "DISABLED"})),
    )
    .await;
    r.expect_error(400, "INVALID_REQUEST");
    let r = send(tenant_req(&app, &key_b, Method::DELETE, &format!("/v1/webhooks/{id}"))).await;
    r.expect_error(404, "WEBHOOK_NOT_FOUND");
    let r = send(tenant_req(&app, &key_a, Method::DELETE, &format!("/v1/webhooks/{id}"))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    send(tenant_req(&app, &key_a, Method::GET, &format!("/v1/webhooks/{id}")))
        .await
        .expect_error(404, "WEBHOOK_NOT_FOUND");
    send(app.admin(Method::GET, &format!("/v1/admin/webhooks/{id}"))).await.expect_error(404, "WEBHOOK_NOT_FOUND");
}

#[tokio::test]
async fn the_test_probe_reaches_a_tenant_subscription_signed_and_never_counts_as_a_failure() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let rx = Receiver::start().await;
    let (t, other) = (tenant_id("probe"), tenant_id("probeother"));
    app.create_tenant(&t).await;
    app.create_tenant(&other).await;
    let (key, other_key) = (webhook_key(&app, &t).await, webhook_key(&app, &other).await);
    let (id, secret) = subscribe(
        &app,
        Some(&t),
        json!({"url": rx.url, "event_types": ["budget.exhausted"], "disable_after_failures": 1}),
    )
    .await;

    let r = send(app.admin(Method::POST, &format!("/v1/admin/webhooks/{id}/test"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["success"], true);
    assert_eq!(r.body["response_status"], 200);
    assert!(r.body["response_time_ms"].is_u64());
    let hits = rx.wait_for(1).await;
    let e = hits[0].json();
    assert_eq!(e["event_type"], "system.webhook_test");
    assert_eq!(e["category"], "system");
    assert_eq!(e["tenant_id"], t.as_str());
    assert_eq!(e["event_id"], r.body["event_id"]);
    assert_eq!(hits[0].header("x-cycles-event-type"), "system.webhook_test");
    assert_eq!(hits[0].header("x-cycles-event-id"), r.body["event_id"].as_str().unwrap());
    assert!(signed_with(&hits[0], &secret), "the probe is signed like any delivery");

    rx.answer_always(500);
    for _ in 0..2 {
        let r = send(tenant_req(&app, &key, Method::POST, &format!("/v1/webhooks/{id}/test"))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["success"], false);
        assert_eq!(r.body["response_status"], 500);
        assert!(r.body["error_message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.text);
    }
    assert_eq!(rx.hits().len(), 3);
    assert!(rx.hits().iter().all(|h| signed_with(h, &secret)));
    let sub = get_sub(&app, &id).await;
    assert_eq!(sub["status"], "ACTIVE", "failed probes never disable: {sub}");
    assert_eq!(sub["consecutive_failures"], 0);
    assert!(deliveries(&app, &id, "").await.is_empty(), "probes are not deliveries");
    assert!(logged(&app, &t, "webhook.disabled").await.is_empty());

    let r = send(tenant_req(&app, &other_key, Method::POST, &format!("/v1/webhooks/{id}/test"))).await;
    r.expect_error(404, "WEBHOOK_NOT_FOUND");
    assert_eq!(rx.hits().len(), 3);
}

#[tokio::test]
async fn an_owner_may_have_at_most_one_hundred_subscriptions() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let tenant = tenant_id("cap");
    app.create_tenant(&tenant).await;
    let body = json!({"url": "http://127.0.0.1:9/hook", "event_types": ["budget.created"]});
    for _ in 0..100 {
        subscribe(&app, Some(&tenant), body.clone()).await;
    }
    let refused = admin_create(&app, Some(&tenant), body.clone()).await;
    assert!(refused.expect_error(400, "INVALID_REQUEST").contains("100"), "{}", refused.text);
    // Another owner is not affected.
    subscribe(&app, None, body).await;
}

#[tokio::test]
async fn integer_fields_of_webhook_bodies_accept_integral_numbers_written_with_a_fraction() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let tenant = tenant_id("intf");
    app.create_tenant(&tenant).await;
    // JSON Schema counts 3.0 as an integer, as the runtime plane does for amounts.
    let r = admin_create(
        &app,
        Some(&tenant),
        json!({
            "url": "http://127.0.0.1:9/hook",
            "event_types": ["budget.created"],
            "disable_after_failures": 3.0,
            "retry_policy": {"max_retries": 2.0, "initial_delay_ms": 500.0, "max_delay_ms": 2000.0},
            "thresholds": {"burn_rate_window_seconds": 120.0, "rate_window_seconds": 600.0},
        }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let sub = &r.body["subscription"];
    assert_eq!(sub["disable_after_failures"], 3);
    assert_eq!(sub["retry_policy"]["max_retries"], 2);
    assert_eq!(sub["retry_policy"]["initial_delay_ms"], 500);
    assert_eq!(sub["thresholds"]["rate_window_seconds"], 600);
    let id = sub["subscription_id"].as_str().unwrap().to_string();

    let r = patch_sub(&app, &id, json!({"disable_after_failures": 7.0})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["disable_after_failures"], 7);
    // A fraction, or a number past any field's range, still names the field.
    for (body, field) in [
        (json!({"disable_after_failures": 7.5}), "disable_after_failures"),
        (json!({"disable_after_failures": 1e30}), "disable_after_failures"),
        (json!({"disable_after_failures": 5_000_000_000_i64}), "disable_after_failures"),
        (json!({"retry_policy": {"max_retries": 1.5}}), "retry_policy.max_retries"),
        (json!({"retry_policy": {"max_retries": -1}}), "retry_policy.max_retries"),
        (json!({"thresholds": {"rate_window_seconds": 60.25}}), "thresholds.rate_window_seconds"),
    ] {
        let r = patch_sub(&app, &id, body.clone()).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(field), "{body}: {msg:?} does not name {field}");
    }

    let from = rfc3339(OffsetDateTime::now_utc() - time::Duration::hours(1));
    let to = rfc3339(OffsetDateTime::now_utc());
    let r = send(
        app.admin(Method::POST, &format!("/v1/admin/webhooks/{id}/replay"))
            .json(&json!({"from": from, "to": to, "max_events": 10.0})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let r = send(app.admin(Method::POST, "/v1/admin/webhooks/bulk-action").json(&json!({
        "filter": {"tenant_id": tenant}, "action": "PAUSE", "expected_count": 1.0, "idempotency_key": "intf-1"
    })))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["total_matched"], 1, "{}", r.text);
    assert_eq!(get_sub(&app, &id).await["status"], "PAUSED");
}

#[tokio::test]
async fn numbers_the_store_could_not_give_back_are_refused_so_a_subscription_stays_readable() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let tenant = tenant_id("bignum");
    app.create_tenant(&tenant).await;
    let hook = json!({"url": "http://127.0.0.1:9/hook", "event_types": ["budget.created"]});
    let (id, _) = subscribe(&app, Some(&tenant), hook.clone()).await;
    // PostgreSQL prints f64::MAX back as 309 digits, which serde_json reads as out of range.
    for (extra, field) in [
        (json!({"metadata": {"k": [1, {"deep": f64::MAX}]}}), "metadata"),
        (json!({"metadata": {"k": f64::MIN}}), "metadata"),
        (json!({"thresholds": {"burn_rate_multiplier": f64::MAX}}), "thresholds.burn_rate_multiplier"),
    ] {
        let mut body = hook.clone();
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let r = admin_create(&app, Some(&tenant), body).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(field), "create with {extra}: {msg:?} does not name {field}");
        let r = patch_sub(&app, &id, extra.clone()).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(field), "patch with {extra}: {msg:?} does not name {field}");
    }
    // Large numbers that do come back are kept as given.
    let r = patch_sub(
        &app,
        &id,
        json!({"metadata": {"k": 1e300, "n": -2.5e-300}, "thresholds": {"burn_rate_multiplier": 1e12}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sub = get_sub(&app, &id).await;
    assert_eq!(sub["metadata"], json!({"k": 1e300, "n": -2.5e-300}));
    assert_eq!(sub["thresholds"]["burn_rate_multiplier"], json!(1e12));
    let r = send(tenant_req(&app, &webhook_key(&app, &tenant).await, Method::GET, "/v1/webhooks")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["subscriptions"].as_array().map(Vec::len), Some(1), "{}", r.text);
}

#[tokio::test]
async fn a_replay_ignores_body_members_its_schema_does_not_name() {
    let app = TestApp::spawn().await;
    allow_loopback(&app).await;
    let (id, _) =
        subscribe(&app, None, json!({"url": "http://127.0.0.1:9/hook", "event_types": ["tenant.created"]})).await;
    // The replay body, unlike the other webhook bodies, does not forbid other members.
    let r = send(app.admin(Method::POST, &format!("/v1/admin/webhooks/{id}/replay")).json(&json!({
        "from": rfc3339(OffsetDateTime::now_utc() - time::Duration::hours(1)),
        "to": rfc3339(OffsetDateTime::now_utc()),
        "event_categories": ["tenant"],
        "note": {"why": "backfill"},
    })))
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["events_queued"], 0, "{}", r.text);
}
