//! Group commit under concurrency, across two engine instances sharing one ledger: batches
//! form (one tenant, many callers) and every operation keeps the semantics it has alone.

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD, amt, assert_invariant};
use crate::helpers::{Instance, Reply, send};

/// POSTs `body` to `path` on the runtime plane of `instance` with the tenant's key.
async fn post_on(fx: &Fx, instance: &Instance, path: &str, body: Value) -> Reply {
    let url = format!("http://{}{path}", instance.runtime.expect("runtime plane"));
    send(fx.app.client.request(Method::POST, url).header("x-cycles-api-key", &fx.key).json(&body)).await
}

/// Sends to the first instance for even `i`, the second for odd.
async fn post_either(fx: &Fx, second: &Instance, i: usize, path: &str, body: Value) -> Reply {
    if i.is_multiple_of(2) {
        post_on(fx, &fx.app.instance, path, body).await
    } else {
        post_on(fx, second, path, body).await
    }
}

async fn batches_formed(fx: &Fx) -> f64 {
    let r = send(fx.app.admin(Method::GET, "/metrics")).await;
    r.text
        .lines()
        .find_map(|l| l.strip_prefix("cycles_ledger_batch_size_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn two_hundred_reserves_across_two_instances_fit_exactly_what_the_budget_holds() {
    let fx = Fx::new().await;
    let second = fx.app.another_instance().await;
    fx.budget("", 57 * 7).await;
    let calls =
        (0..200).map(|i| {
            let (fx, second) = (&fx, &second);
            async move {
                post_either(fx, second, i, "/v1/reservations", fx.reserve_body(&format!("c{i}"), json!({}), 7)).await
            }
        });
    let replies = join_all(calls).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let exceeded = replies.iter().filter(|r| r.status == 409 && r.body["error"] == "BUDGET_EXCEEDED").count();
    assert_eq!((ok, exceeded), (57, 143));
    let b = fx.ledger("", USD).await;
    assert_eq!((amt(&b, "reserved"), amt(&b, "remaining")), (57 * 7, 0));
    assert_invariant(&b);
    assert!(batches_formed(&fx).await > 0.0, "concurrent reserves of one tenant were grouped");
}

#[tokio::test]
async fn concurrent_pairs_across_two_instances_charge_exactly_what_the_replies_say() {
    let fx = Fx::new().await;
    let second = fx.app.another_instance().await;
    fx.budget("", 1_000_000).await;
    let clients = (0..60).map(|c| {
        let (fx, second) = (&fx, &second);
        async move {
            let mut charged = 0;
            for n in 0..5 {
                let r = post_either(
                    fx,
                    second,
                    c + n,
                    "/v1/reservations",
                    fx.reserve_body(&format!("r{c}-{n}"), json!({}), 10),
                )
                .await;
                assert_eq!(r.status, 200, "{}", r.text);
                let id = r.body["reservation_id"].as_str().unwrap().to_string();
                if (c + n) % 3 == 0 {
                    let path = format!("/v1/reservations/{id}/release");
                    let r = post_either(fx, second, c + n + 1, &path, json!({"idempotency_key": format!("x{c}-{n}")}))
                        .await;
                    assert_eq!(r.status, 200, "{}", r.text);
                } else {
                    let actual = ((c * 7 + n * 3) % 15) as i64;
                    let path = format!("/v1/reservations/{id}/commit");
                    let body =
                        json!({"idempotency_key": format!("x{c}-{n}"), "actual": {"unit": USD, "amount": actual}});
                    let r = post_either(fx, second, c + n + 1, &path, body).await;
                    assert_eq!(r.status, 200, "{}", r.text);
                    charged += amt(&r.body, "charged");
                }
            }
            charged
        }
    });
    let charged: i64 = join_all(clients).await.into_iter().sum();
    let b = fx.ledger("", USD).await;
    assert_eq!((amt(&b, "spent"), amt(&b, "reserved")), (charged, 0));
    assert_invariant(&b);
}

#[tokio::test]
async fn concurrent_retries_of_one_reserve_in_a_batch_hold_once_and_answer_alike() {
    let fx = Fx::new().await;
    let second = fx.app.another_instance().await;
    fx.budget("", 1_000).await;
    let calls = (0..30).map(|i| {
        let (fx, second) = (&fx, &second);
        async move { post_either(fx, second, i, "/v1/reservations", fx.reserve_body("same", json!({}), 100)).await }
    });
    let replies = join_all(calls).await;
    assert!(replies.iter().all(|r| r.status == 200), "{:?}", replies.iter().map(|r| &r.text).collect::<Vec<_>>());
    let id = &replies[0].body["reservation_id"];
    assert!(replies.iter().all(|r| &r.body["reservation_id"] == id));
    assert_eq!(amt(&fx.ledger("", USD).await, "reserved"), 100);
}
