//! Spend and rate limits through the real proxy (the 429 bodies of docs/errors.md, the semantics of docs/limits.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use harness::{Harness, chat_body};
use http::{Method, StatusCode};
use serde_json::json;
use tollgate_accounting::{PriceCatalog, estimate_prompt_tokens};
use tollgate_testkit::{Gate, Plan, Reply, UsageNumbers, next_data};

fn limited(max_tokens: u64) -> serde_json::Value {
    let mut body = chat_body("gpt-4o-mini", false);
    body["max_tokens"] = json!(max_tokens);
    body
}

fn worst_case(body: &serde_json::Value, max_tokens: u64) -> u64 {
    let date = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    let prompt = estimate_prompt_tokens(body.to_string().as_bytes());
    PriceCatalog::bundled().unwrap().worst_case_cost("openai", "gpt-4o-mini", prompt, Some(max_tokens), date).unwrap()
}

#[tokio::test]
async fn a_spent_budget_answers_429_with_the_rule_the_bucket_and_when_it_resets() {
    let h = Harness::with_config(
        r#"
[[spend_limits]]
id = "per-user-daily"
budget_usd = 0.001
window = "1d"
dimensions = [ { key = "metadata.user_id", mode = "split" } ]
"#,
    )
    .await;
    let body = limited(1000);
    let worst = worst_case(&body, 1000);
    let fits = (1_000_000 / worst) as usize;
    assert!(fits >= 1, "worst case {worst} nanos");
    let alice = [("cf-aig-metadata", r#"{"user_id":"alice","team":7}"#)];
    // Each request reserves its worst case; the fake's actual cost is far less, so settled spend frees room.
    // Hold them all open at a gate so only reservations count.
    let gate = Gate::new();
    h.fake.set_default(Plan { gate: Some(gate.clone()), ..Plan::default() });
    let mut open = Vec::new();
    for _ in 0..fits {
        let mut body = body.clone();
        body["stream"] = json!(true);
        let mut response = h.client.send(Method::POST, "/v1/chat/completions", &alice, body.to_string()).await;
        assert_eq!(response.status(), StatusCode::OK);
        next_data(response.body_mut()).await.unwrap().unwrap();
        open.push(response);
    }
    let refused = h.client.post_json("/v1/chat/completions", &alice, &body).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let error = &refused.json()["error"];
    assert_eq!(error["code"], "spend_limit_exceeded");
    assert_eq!(error["rule"], "per-user-daily");
    assert_eq!(error["bucket"], "metadata.user_id=alice");
    assert_eq!(error["budget_usd"], 0.001);
    assert!(error["resets_at"].as_str().unwrap().ends_with("T00:00:00Z"), "{error}");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry_after));

    // Bob has his own bucket.
    let bob = [("cf-aig-metadata", r#"{"user_id":"bob"}"#)];
    h.fake.set_default(Plan::default());
    assert_eq!(h.client.post_json("/v1/chat/completions", &bob, &body).await.status, StatusCode::OK);

    // Alice's streams finish: reservations become the small actual costs and she fits again.
    gate.open();
    for mut response in open {
        while next_data(response.body_mut()).await.is_some() {}
    }
    h.recorder.wait_for(fits + 2).await;
    assert_eq!(h.client.post_json("/v1/chat/completions", &alice, &body).await.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_metadata_is_400_naming_the_problem() {
    let h = Harness::start().await;
    for (header, needle) in [
        (r#"{"user":{"id":1}}"#, "user"),
        ("not json", "JSON"),
        ("[1,2]", "object"),
        (
            r#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"r":18,"s":19,"t":20,"u":21}"#,
            "21",
        ),
    ] {
        let response = h.client.post_json("/v1/chat/completions", &[("cf-aig-metadata", header)], &limited(10)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{header}");
        let error = &response.json()["error"];
        assert_eq!(error["code"], "invalid_metadata", "{header}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(needle), "{header}: {message}");
    }
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn monitor_rules_never_block_but_record_the_decision() {
    let h = Harness::with_config(
        "[[spend_limits]]\nid = \"watch\"\nbudget_usd = 0.000001\nwindow = \"1h\"\naction = \"monitor\"\n",
    )
    .await;
    for _ in 0..3 {
        assert_eq!(h.client.post_json("/v1/chat/completions", &[], &limited(1000)).await.status, StatusCode::OK);
    }
    let records = h.recorder.wait_for(3).await;
    let decision = &records[2].rule_decisions[0];
    assert_eq!(decision["rule"], "watch");
    assert_eq!(decision["decision"], "would_block");
}

#[tokio::test]
async fn a_dynamic_route_falls_back_to_the_next_candidate_whose_budget_admits_it() {
    let h = Harness::with_config(
        r#"
[[spend_limits]]
id = "anthropic-cap"
budget_usd = 0.0000001
window = "1d"
dimensions = [ { key = "provider", mode = "filter", values = ["anthropic"] } ]
"#,
    )
    .await;
    let mut body = chat_body("dynamic/cheap-first", false);
    body["max_tokens"] = json!(100);
    let response = h.client.post_json("/v1/chat/completions", &[], &body).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.header("cf-aig-step"), Some("1"));
    assert_eq!(response.header("cf-aig-provider"), Some("openai"));
    assert_eq!(response.header("cf-aig-model"), Some("gpt-4o-mini"));
    let got = h.fake.last_request();
    assert_eq!(got.uri, "/openai/v1/chat/completions");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&got.body).unwrap()["model"], "gpt-4o-mini");
    let r = &h.recorder.wait_for(1).await[0];
    assert_eq!((r.provider.as_str(), r.step), ("openai", Some(1)));
}

#[tokio::test]
async fn rate_limits_answer_429_rate_limited_with_retry_after() {
    let h = Harness::with_config(
        r#"
[[rate_limits]]
id = "per-key-rpm"
limit = 2
per = "requests"
window = "1m"
dimensions = [ { key = "metadata.key", mode = "split" } ]
"#,
    )
    .await;
    let a = [("cf-aig-metadata", r#"{"key":"a"}"#)];
    for _ in 0..2 {
        assert_eq!(h.client.post_json("/v1/chat/completions", &a, &limited(5)).await.status, StatusCode::OK);
    }
    let refused = h.client.post_json("/v1/chat/completions", &a, &limited(5)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.json()["error"]["code"], "rate_limited");
    assert_eq!(refused.json()["error"]["rule"], "per-key-rpm");
    assert!(refused.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    let b = [("cf-aig-metadata", r#"{"key":"b"}"#)];
    assert_eq!(h.client.post_json("/v1/chat/completions", &b, &limited(5)).await.status, StatusCode::OK);
    assert_eq!(h.fake.requests().len(), 3);
}

/// 1,000 concurrent streamed requests against one budget: exactly the ones that fit are admitted, and what
/// the records say was spent stays within the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_streams_never_overspend_one_budget() {
    const REQUESTS: usize = 1_000;
    let h = Arc::new(
        Harness::with_config(
            "[[spend_limits]]\nid = \"team\"\nbudget_usd = 0.1\nwindow = \"1d\"\n[server]\nshutdown_grace = \"5s\"\n",
        )
        .await,
    );
    let gate = Gate::new();
    // Each stream reports 200 input and 500 output tokens once the gate opens.
    h.fake.set_default(Plan {
        gate: Some(gate.clone()),
        reply: Some(Reply { text: "ok".into(), usage: Some(UsageNumbers { input: 200, output: 500, cached: 0 }) }),
        ..Plan::default()
    });
    let mut body = limited(1000);
    body["stream"] = json!(true);
    let worst = worst_case(&body, 1000);
    let fits = (100_000_000 / worst) as usize;
    assert!(fits > 10 && fits < REQUESTS, "the budget should admit some but not all: {fits}");

    let decided = Arc::new(AtomicUsize::new(0));
    let all_decided = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..REQUESTS {
        let (h, body, decided, all_decided) = (h.clone(), body.to_string(), decided.clone(), all_decided.clone());
        tasks.push(tokio::spawn(async move {
            let mut response = h.client.send(Method::POST, "/v1/chat/completions", &[], body).await;
            let status = response.status();
            if status == StatusCode::OK {
                next_data(response.body_mut()).await.unwrap().unwrap();
            }
            if decided.fetch_add(1, Ordering::SeqCst) + 1 == REQUESTS {
                all_decided.notify_one();
            }
            while next_data(response.body_mut()).await.is_some() {}
            status
        }));
    }
    tokio::time::timeout(std::time::Duration::from_mins(1), all_decided.notified())
        .await
        .expect("every request got its answer while the admitted ones were held open");
    gate.open();
    let mut admitted = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(admitted, fits, "exactly the requests that fit the budget were admitted");
    let records = h.recorder.wait_for(REQUESTS).await;
    let spent: u64 = records.iter().map(|r| r.cost_nanos).sum();
    assert!(spent <= 100_000_000, "recorded spend {spent} nanos is over the $0.10 budget");
    let billed = records.iter().filter(|r| r.cost_nanos > 0).count();
    assert_eq!(billed, fits);
    // 200 × $0.15/M + 500 × $0.60/M = 330 µ$ each.
    assert!(records.iter().filter(|r| r.status == 200).all(|r| r.cost_nanos == 330_000));
}
