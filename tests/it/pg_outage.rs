//! A Postgres outage seen by one instance: its connections run through a loopback relay the
//! test cuts. The runtime plane must keep serving the keys it has seen, the sweeper must keep
//! expiring, unknown keys must be refused at once, and a revocation made meanwhile (through
//! another instance that still reaches Postgres) must apply within a second of recovery.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::fixture::{Fx, USD};
use crate::helpers::{TestApp, eventually, pg_admin_url, send};

/// Forwards loopback connections to `upstream` until cut; a cut closes every live connection
/// and closes new ones on arrival, as a dead or unreachable database would.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let cut = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (c, l) = (cut.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                l.lock().await.push(link);
            }
        });
        Relay { port, cut, links, accept }
    }

    async fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The test Postgres's address and `url` rewritten to go through `port` on loopback.
fn through_relay(url: &str, port: u16) -> String {
    let mut u = reqwest::Url::parse(url).expect("database URL");
    u.set_host(Some("127.0.0.1")).expect("host");
    u.set_port(Some(port)).expect("port");
    u.to_string()
}

fn upstream() -> SocketAddr {
    let u = reqwest::Url::parse(&pg_admin_url()).expect("database URL");
    let host = match u.host_str() {
        Some("localhost") | None => "127.0.0.1".to_string(),
        Some(h) => h.to_string(),
    };
    format!("{host}:{}", u.port().unwrap_or(5432)).parse().expect("Postgres address")
}

/// How long Postgres stays cut while clients keep working.
const OUTAGE: Duration = Duration::from_secs(30);
/// Clients reserving and committing through the outage.
const CLIENTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_runtime_serves_seen_keys_and_keeps_expiring_through_a_postgres_outage() {
    let relay = Relay::start(upstream()).await;
    let port = relay.port;
    let app = TestApp::spawn_with(|c| c.store.database_url = through_relay(&c.store.database_url, port)).await;
    let other = app.another_instance().await; // reaches Postgres directly throughout
    let fx = Arc::new(Fx::on(app).await);
    fx.budget("", 1_000_000_000).await;
    let unseen = fx.app.create_key(&fx.tenant, json!({})).await;
    let revoked = fx.app.create_key(&fx.tenant, json!({})).await;
    let revoked_secret = revoked["key_secret"].as_str().unwrap().to_string();
    let as_key = |secret: &str| {
        fx.app
            .client
            .post(fx.app.runtime_url("/v1/reservations"))
            .header("x-cycles-api-key", secret.to_string())
            .json(&fx.reserve_body(&uuid::Uuid::new_v4().to_string(), json!({}), 1))
    };
    assert_eq!(send(as_key(&revoked_secret)).await.status, 200, "the key is seen before the outage");
    let short = fx.reserve_with("short", json!({}), 500, json!({"ttl_ms": 1000, "grace_period_ms": 0})).await;
    assert_eq!(short.status, 200, "{}", short.text);
    let short_id = short.body["reservation_id"].as_str().unwrap().to_string();

    relay.cut().await;
    let down = eventually(Duration::from_secs(10), || async {
        send(fx.app.client.get(fx.app.admin_url("/readyz"))).await.status == 503
    })
    .await;
    assert!(down, "the instance noticed the outage");

    // A key never seen is refused at once, as unavailable.
    let started = Instant::now();
    let r = send(as_key(unseen["key_secret"].as_str().unwrap())).await;
    r.expect_error(503, "INTERNAL_ERROR");
    assert_eq!(r.header("retry-after"), "1");
    assert!(started.elapsed() < Duration::from_millis(1_000), "refused in {:?}", started.elapsed());

    // Revoked through an instance that still reaches Postgres: this one cannot hear it yet.
    let kid = revoked["key_id"].as_str().unwrap();
    let del = other.admin.map(|a| format!("http://{a}/v1/admin/api-keys/{kid}")).unwrap();
    let r = send(fx.app.client.delete(del).header("x-admin-api-key", crate::helpers::ADMIN_KEY)).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Clients keep reserving and committing for the whole outage.
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let until = Instant::now() + OUTAGE;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (fx, ok, failed) = (fx.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < until {
                i += 1;
                let r = fx.reserve(&format!("c{c}-{i}"), json!({}), 10).await;
                let id = r.body["reservation_id"].as_str().map(String::from);
                let committed = match id {
                    Some(id) if r.status == 200 => fx.commit(&id, &format!("c{c}-{i}-commit"), 7).await.status == 200,
                    _ => false,
                };
                let counter = if committed { &ok } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("through a {}s Postgres outage: {ok} reserve+commit pairs, {failed} failed", OUTAGE.as_secs());
    assert_eq!(failed, 0);
    assert!(ok > 100, "only {ok} pairs completed");

    // The sweeper returned the short reservation's hold while Postgres was away.
    let r = fx.get(&format!("/v1/reservations/{short_id}")).await;
    r.expect_error(410, "RESERVATION_EXPIRED");
    let balances = fx.get(&format!("/v1/balances?tenant={}", fx.tenant)).await;
    // What is still held is the 1 reserved with the soon-revoked key before the outage.
    assert_eq!(balances.body["balances"][0]["reserved"], json!({"unit": USD, "amount": 1}), "{}", balances.text);

    // Back: the revocation made meanwhile applies within about a second.
    relay.restore();
    let refused =
        eventually(Duration::from_millis(2_500), || async { send(as_key(&revoked_secret)).await.status == 401 }).await;
    assert!(refused, "the key revoked during the outage is refused after recovery");
    assert_eq!(send(fx.app.admin(Method::GET, "/readyz")).await.status, 200);
    other.stop().await.unwrap();
}
