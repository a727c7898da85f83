//! Connection-level limits: silent, idle and slowloris clients are closed on short deadlines and
//! cannot lock other clients out, even past the connection cap.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, send};

const HEADER_TIMEOUT_MS: u64 = 800;
const IDLE_TIMEOUT_MS: u64 = 1_500;

async fn app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.http_header_timeout_ms = HEADER_TIMEOUT_MS;
        c.http_idle_timeout_ms = IDLE_TIMEOUT_MS;
        c.http_max_connections = 32;
    })
    .await
}

/// Waits until the server closes `stream` (EOF or reset), at most `limit`; returns how long it took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends a request head one byte every 100 ms, forever (until the server closes).
async fn slowloris(addr: SocketAddr) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return;
    };
    for b in b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle() {
        if s.write_all(&[*b]).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_idle_and_slowloris_connections_are_closed_after_their_timeouts() {
    let app = app().await;
    let addr = app.instance.admin.unwrap();
    let limit = Duration::from_millis(HEADER_TIMEOUT_MS + 2_000);

    // A connection that never sends a byte: closed by the head deadline.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let took = closed_within(&mut silent, limit).await.expect("silent connection closed");
    assert!(took >= Duration::from_millis(HEADER_TIMEOUT_MS / 2), "closed too early: {took:?}");

    // A keep-alive connection idle after its first request: closed as well.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut head = [0u8; 12];
    kept.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(closed_within(&mut kept, limit).await.is_some(), "idle keep-alive connection closed");

    // A head trickling in one byte at a time keeps bytes moving but never completes.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let trickle = async {
        for b in b"GET /livez HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = slow.write_all(&[*b]).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(HEADER_TIMEOUT_MS + 300), trickle).await;
    assert!(closed_within(&mut slow, limit).await.is_some(), "slowloris connection closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_idle_and_slowloris_connections_past_the_cap_does_not_lock_other_clients_out() {
    let app = app().await;
    let addr = app.instance.admin.unwrap();
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let loris: Vec<_> = (0..30).map(|_| tokio::spawn(slowloris(addr))).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // 90 hostile connections against a cap of 32: each is evicted by the head deadline, so a
    // real client is served within a few deadlines, not after the flood gives up.
    let started = Instant::now();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    let r = send(client.get(format!("http://{addr}/livez"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(started.elapsed() < Duration::from_secs(8), "served after {:?}", started.elapsed());
    for t in loris {
        t.abort();
    }
    drop(idle);
}
