//! The simulator's Event Publishing over real HTTP on loopback: `/admin/complete` records a
//! completion and POSTs a learning event to a receiver run by the test (which records each
//! body and `Authorization` header), retrying, giving up, following endpoint changes, and
//! stopping with the simulator.

use crate::util;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use base64::Engine;
use rostersync::targets::praesidium::sim::{Endpoint, RunningSim, Sim, SimOptions, start};
use serde_json::{Value, json};
use util::*;

/// One POST the receiver got: its JSON body and its `Authorization` header.
type Seen = (Value, Option<String>);

/// What the receiver answers: the scripted statuses first, then `then` (0: never answers).
#[derive(Clone)]
struct Script {
    seen: Arc<Mutex<Vec<Seen>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    then: u16,
}

struct Receiver {
    url: String,
    script: Script,
}

impl Receiver {
    fn seen(&self) -> Vec<Seen> {
        self.script.seen.lock().unwrap().clone()
    }
}

async fn receive(State(script): State<Script>, headers: HeaderMap, body: String) -> StatusCode {
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    script
        .seen
        .lock()
        .unwrap()
        .push((serde_json::from_str(&body).unwrap(), auth));
    let next = script.statuses.lock().unwrap().pop_front();
    match next.unwrap_or(script.then) {
        0 => std::future::pending().await,
        status => StatusCode::from_u16(status).unwrap(),
    }
}

/// A receiver on a free loopback port, answering `statuses` in turn and then `then`.
async fn receiver(statuses: &[u16], then: u16) -> Receiver {
    let script = Script {
        seen: Arc::default(),
        statuses: Arc::new(Mutex::new(statuses.iter().copied().collect())),
        then,
    };
    let app = axum::Router::new()
        .route("/events", post(receive))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, script }
}

/// A simulator publishing to `endpoint`, `max_attempts` per event.
async fn sim_publishing(endpoint: Endpoint, max_attempts: u32) -> RunningSim {
    let catalog = catalog();
    let mut options = SimOptions::single_credential(&catalog, CLIENT_ID, CLIENT_SECRET);
    options.seed = Some(1);
    options.events_endpoint = endpoint;
    options.events_max_attempts = max_attempts;
    start(
        Sim::new(catalog, options).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

fn endpoint(url: &str, basic: Option<(&str, &str)>) -> Endpoint {
    Endpoint::new(Some(url), basic.map(|b| b.0), basic.map(|b| b.1)).unwrap()
}

/// A learner of Northwind Camps enrolled in `skus`; returns its uuid.
async fn learner(api: &Api, external_id: &str, skus: &[&str]) -> String {
    let mut body = user_body(external_id, &format!("{external_id}@example.com"));
    body["context"]["content"] = content_listing(skus)["content"].clone();
    let (status, created) = api.create(&body).await;
    assert_eq!(status, 201, "{created}");
    created["uuid"].as_str().unwrap().to_owned()
}

async fn complete(base: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/admin/complete"))
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn events(base: &str) -> Vec<Value> {
    reqwest::get(format!("{base}/admin/events"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `check` every 20 ms until it answers, for at most 10 s.
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The delivery numbered `seq` once it is delivered or given up.
async fn settled(base: &str, seq: u64) -> Value {
    until("the delivery to settle", async || {
        events(base)
            .await
            .into_iter()
            .find(|d| d["seq"] == seq && (d["delivered"] == true || d["gave_up"] == true))
    })
    .await
}

fn statuses(delivery: &Value) -> Vec<Value> {
    let attempts = delivery["attempts"].as_array().unwrap();
    attempts.iter().map(|a| a["status"].clone()).collect()
}

async fn enrollment(api: &Api, user: &str, sku: &str) -> Value {
    let users = api.admin("users").await;
    let user = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"]["uuid"] == user)
        .unwrap()
        .clone();
    user["content"][content_uuid(sku)].clone()
}

#[tokio::test]
async fn a_completion_publishes_one_snake_case_event_with_basic_auth() {
    let hook = receiver(&[], 200).await;
    let running = sim_publishing(endpoint(&hook.url, Some(("hook", "pw-Zq9"))), 20).await;
    let base = running.base_url();
    let api = Api::new(&running).await;
    let user = learner(&api, "E1", &["SAFE-101"]).await;

    let (status, answer) = complete(
        &base,
        &json!({"user": user, "content": content_uuid("SAFE-101"),
                "completed_at": "2026-11-24 08:30:00"}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["published"], true);
    let expected = json!({
        "version": "1.0",
        "event_type": "COURSE_COMPLETED",
        "event_timestamp": "2026-11-24 08:30:00",
        "event_context": {"user_uuid": user, "course_uuid": content_uuid("SAFE-101"),
                          "client_uuid": client_uuid("Northwind Camps")},
        "event_specific_detail": {"first_name": "Ada", "last_name": "Lovelace", "ref1": "E1"},
    });
    assert_eq!(answer["event"], expected);

    let delivery = settled(&base, 1).await;
    assert_eq!(delivery["delivered"], true);
    assert_eq!(delivery["url"], hook.url);
    assert_eq!(statuses(&delivery), [json!(200)]);
    let seen = hook.seen();
    assert_eq!(seen.len(), 1, "exactly one POST");
    assert_eq!(
        seen[0].0, expected,
        "the body is the event the admin call showed"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("hook:pw-Zq9");
    assert_eq!(
        seen[0].1.as_deref(),
        Some(format!("Basic {basic}").as_str())
    );

    let completed = enrollment(&api, &user, "SAFE-101").await;
    assert_eq!(completed["completed_at"], "2026-11-24T08:30:00Z");
    // The password shows nowhere an admin can read.
    for path in ["events", "events/endpoint", "users"] {
        let text = api.admin(path).await.to_string();
        assert!(!text.contains("pw-Zq9"), "{path}: {text}");
    }
    assert_eq!(
        api.admin("events/endpoint").await,
        json!({"url": hook.url, "username": "hook"})
    );
    running.stop().await;
}

#[tokio::test]
async fn the_event_type_follows_the_content_and_camel_case_gives_the_older_names() {
    let hook = receiver(&[], 202).await;
    let running = sim_publishing(endpoint(&hook.url, None), 20).await;
    let base = running.base_url();
    let api = Api::new(&running).await;
    let user = learner(&api, "E2", &["SAFE-101", "LP-ONBOARD"]).await;

    let (status, path) = complete(
        &base,
        &json!({"user": user, "content": content_uuid("LP-ONBOARD")}),
    )
    .await;
    assert_eq!(status, 202, "{path}");
    let event = &path["event"];
    assert_eq!(event["event_type"], "LEARNING_PATH_COMPLETED");
    assert_eq!(
        event["event_context"]["learning_path_uuid"],
        content_uuid("LP-ONBOARD")
    );
    assert!(event["event_context"].get("course_uuid").is_none());

    let (status, camel) = complete(
        &base,
        &json!({"user": user, "content": content_uuid("SAFE-101"), "camel_case": true,
                "completed_at": "2026-01-02 03:04:05"}),
    )
    .await;
    assert_eq!(status, 202, "{camel}");
    assert_eq!(
        camel["event"],
        json!({"version": "1.0", "eventType": "COURSE_COMPLETED",
               "eventTimestamp": "2026-01-02 03:04:05",
               "eventContext": {"userUuid": user, "courseUuid": content_uuid("SAFE-101"),
                                "clientUuid": client_uuid("Northwind Camps")},
               "eventSpecificDetail": {"firstName": "Ada", "lastName": "Lovelace", "ref1": "E2"}})
    );
    settled(&base, 1).await;
    settled(&base, 2).await;
    let mut bodies: Vec<Value> = hook.seen().into_iter().map(|(body, _)| body).collect();
    bodies.sort_by_key(|b| b.to_string());
    let mut sent = vec![path["event"].clone(), camel["event"].clone()];
    sent.sort_by_key(|b| b.to_string());
    assert_eq!(bodies, sent);
    assert!(
        hook.seen().iter().all(|(_, auth)| auth.is_none()),
        "no username, no Basic"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_again_until_it_answers_2xx() {
    let hook = receiver(&[500, 500], 200).await;
    let running = sim_publishing(endpoint(&hook.url, None), 20).await;
    let base = running.base_url();
    let api = Api::new(&running).await;
    let user = learner(&api, "E3", &["FA-100"]).await;
    let (status, answer) = complete(
        &base,
        &json!({"user": user, "content": content_uuid("FA-100")}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");

    let delivery = settled(&base, 1).await;
    assert_eq!(delivery["delivered"], true);
    assert_eq!(delivery["gave_up"], false);
    assert_eq!(statuses(&delivery), [json!(500), json!(500), json!(200)]);
    let seen = hook.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|(body, _)| *body == answer["event"]));
    running.stop().await;
}

#[tokio::test]
async fn a_receiver_that_always_fails_is_given_up_after_the_last_attempt() {
    let hook = receiver(&[], 500).await;
    let running = sim_publishing(endpoint(&hook.url, None), 3).await;
    let base = running.base_url();
    let api = Api::new(&running).await;
    let user = learner(&api, "E4", &["FA-100"]).await;
    let (status, _) = complete(
        &base,
        &json!({"user": user, "content": content_uuid("FA-100")}),
    )
    .await;
    assert_eq!(status, 202);

    let delivery = settled(&base, 1).await;
    assert_eq!(delivery["gave_up"], true);
    assert_eq!(delivery["delivered"], false);
    assert_eq!(statuses(&delivery), vec![json!(500); 3]);
    // Given up means the last attempt is behind it: no fourth can come.
    assert_eq!(hook.seen().len(), 3);
    running.stop().await;
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retried_and_logged_as_connection_errors() {
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/events", listener.local_addr().unwrap())
    };
    let running = sim_publishing(endpoint(&closed, None), 2).await;
    let base = running.base_url();
    let api = Api::new(&running).await;
    let user = learner(&api, "E5", &["FA-100"]).await;
    complete(
        &base,
        &json!({"user": user, "content": content_uuid("FA-100")}),
    )
    .await;
    let delivery = settled(&base, 1).await;
    assert_eq!(delivery["gave_up"], true);
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts
            .iter()
            .all(|a| a["error"].is_string() && a.get("status").is_none())
    );
    running.stop().await;
}

#[tokio::test]
async fn the_endpoint_changed_by_the_admin_call_receives_the_next_event() {
    let first = receiver(&[], 200).await;
    let second = receiver(&[], 200).await;
    let running = sim_publishing(endpoint(&first.url, Some(("hook", "pw-1"))), 20).await;
    let base = running.base_url();
    let api = Api::new(&running).await;
    let user = learner(&api, "E6", &["SAFE-101", "FA-100"]).await;
    let http = reqwest::Client::new();
    let put = async |body: Value| {
        let response = http
            .put(format!("{base}/admin/events/endpoint"))
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };

    complete(
        &base,
        &json!({"user": user, "content": content_uuid("SAFE-101")}),
    )
    .await;
    settled(&base, 1).await;

    let (status, bad) = put(json!({"url": "ftp://example/x"})).await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"], "INVALID_ENDPOINT");
    let (status, view) = put(json!({"url": second.url})).await;
    assert_eq!(status, 200);
    assert_eq!(view, json!({"url": second.url, "username": "hook"}));

    complete(
        &base,
        &json!({"user": user, "content": content_uuid("FA-100")}),
    )
    .await;
    let delivery = settled(&base, 2).await;
    assert_eq!(delivery["url"], second.url);
    assert_eq!(first.seen().len(), 1);
    let seen = second.seen();
    assert_eq!(seen.len(), 1);
    let basic = base64::engine::general_purpose::STANDARD.encode("hook:pw-1");
    assert_eq!(
        seen[0].1.as_deref(),
        Some(format!("Basic {basic}").as_str()),
        "kept"
    );

    // Turned off: the completion is recorded, nothing is sent.
    let (status, _) = put(json!({"url": null})).await;
    assert_eq!(status, 200);
    let (status, answer) = complete(
        &base,
        &json!({"user": user, "content": content_uuid("FA-100")}),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(answer["published"], false);
    assert_eq!(events(&base).await.len(), 2);
    running.stop().await;
}

#[tokio::test]
async fn without_an_endpoint_a_completion_is_recorded_and_nothing_is_published() {
    let running = sim().await;
    let base = running.base_url();
    let api = Api::new(&running).await;
    let user = learner(&api, "E7", &["SAFE-101"]).await;
    let (status, answer) = complete(
        &base,
        &json!({"user": user, "content": content_uuid("SAFE-101")}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["published"], false);
    assert_eq!(answer["event"]["event_type"], "COURSE_COMPLETED");
    assert!(events(&base).await.is_empty(), "nothing queued or sent");
    assert!(enrollment(&api, &user, "SAFE-101").await["completed_at"].is_string());
    assert_eq!(
        api.admin("events/endpoint").await,
        json!({"url": null, "username": null})
    );
    running.stop().await;
}

#[tokio::test]
async fn a_completion_that_cannot_be_is_refused_and_changes_nothing() {
    let hook = receiver(&[], 200).await;
    let running = sim_publishing(endpoint(&hook.url, None), 20).await;
    let base = running.base_url();
    let api = Api::new(&running).await;
    let user = learner(&api, "E8", &["SAFE-101"]).await;
    let inactive = learner(&api, "E9", &["SAFE-101"]).await;
    let (status, _) = api.put(&format!("/{inactive}/deactivate"), None).await;
    assert_eq!(status, 200);
    let safe = content_uuid("SAFE-101");
    let unknown = "00000000-0000-4000-8000-000000000000";

    for (body, code) in [
        (
            json!({"user": user, "content": content_uuid("FA-100")}),
            "NOT_ENROLLED",
        ),
        (json!({"user": unknown, "content": safe}), "UNKNOWN_USER"),
        (json!({"user": user, "content": unknown}), "UNKNOWN_CONTENT"),
        (json!({"user": inactive, "content": safe}), "INACTIVE_USER"),
        (
            json!({"user": user, "content": safe, "completed_at": "2026-11-24T08:30:00Z"}),
            "INVALID_TIMESTAMP",
        ),
        (json!({"user": user}), "INVALID_REQUEST"),
        (
            json!({"user": user, "content": safe, "extra": 1}),
            "INVALID_REQUEST",
        ),
    ] {
        let (status, answer) = complete(&base, &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"], code, "{body}: {answer}");
        assert!(answer["message"].is_string());
    }
    assert!(events(&base).await.is_empty());
    assert!(hook.seen().is_empty());
    assert!(enrollment(&api, &user, "SAFE-101").await["completed_at"].is_null());
    assert!(enrollment(&api, &inactive, "SAFE-101").await["completed_at"].is_null());

    // The admin guards hold here too.
    let http = reqwest::Client::new();
    let from_a_page = http
        .post(format!("{base}/admin/complete"))
        .header(header::ORIGIN, "https://evil.example")
        .json(&json!({"user": user, "content": safe}))
        .send()
        .await
        .unwrap();
    assert_eq!(from_a_page.status(), 403);
    let form = http
        .post(format!("{base}/admin/complete"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(json!({"user": user, "content": safe}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    assert!(enrollment(&api, &user, "SAFE-101").await["completed_at"].is_null());
    running.stop().await;
}

#[tokio::test]
async fn re_enrolling_through_the_api_clears_the_completion_and_enrolling_keeps_it() {
    let running = sim().await;
    let base = running.base_url();
    let api = Api::new(&running).await;
    let user = learner(&api, "E10", &["SAFE-101"]).await;
    let safe = content_uuid("SAFE-101");
    let (status, _) = complete(
        &base,
        &json!({"user": user, "content": safe, "completed_at": "2026-03-04 05:06:07"}),
    )
    .await;
    assert_eq!(status, 202);

    let (status, _) = api
        .put(
            &format!("/{user}/enrollContent"),
            Some(&content_listing(&["SAFE-101"])),
        )
        .await;
    assert_eq!(status, 200);
    let kept = enrollment(&api, &user, "SAFE-101").await;
    assert_eq!(kept["completed_at"], "2026-03-04T05:06:07Z");

    let (status, _) = api
        .put(
            &format!("/{user}/reEnrollContent"),
            Some(&content_listing(&["SAFE-101"])),
        )
        .await;
    assert_eq!(status, 200);
    let cleared = enrollment(&api, &user, "SAFE-101").await;
    assert!(cleared["completed_at"].is_null(), "{cleared}");
    assert_eq!(cleared["re_enrollments"], 1);
    let stored = running.sim.users();
    let entry = &stored[0].content[&safe];
    assert_eq!(entry.completed_at, None);
    running.stop().await;
}

#[tokio::test]
async fn stopping_the_simulator_stops_the_publisher_promptly() {
    // A receiver that never answers: the attempt would wait its whole 10 s timeout.
    let hook = receiver(&[], 0).await;
    let running = sim_publishing(endpoint(&hook.url, None), 20).await;
    let base = running.base_url();
    let api = Api::new(&running).await;
    let user = learner(&api, "E11", &["SAFE-101"]).await;
    complete(
        &base,
        &json!({"user": user, "content": content_uuid("SAFE-101")}),
    )
    .await;
    until("the receiver to be reached", async || {
        (!hook.seen().is_empty()).then_some(())
    })
    .await;

    let sim = running.sim.clone();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), running.stop())
        .await
        .expect("stop does not wait for the attempt in flight");
    assert!(started.elapsed() < Duration::from_secs(5));
    let deliveries = sim.event_deliveries(0, 10);
    assert_eq!(deliveries.len(), 1);
    assert!(deliveries[0].dropped && !deliveries[0].delivered && !deliveries[0].gave_up);
}
