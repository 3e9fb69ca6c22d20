//! The simulator over real HTTP on loopback (issue 2): every documented endpoint, its errors,
//! the duplicate window, the rate limit, tokens and injected faults.

use crate::util;

use std::time::{Duration, Instant};

use reqwest::Method;
use rostersync::targets::praesidium::sim::Faults;
use serde_json::{Value, json};
use util::*;

fn entries(log: &Value) -> &Vec<Value> {
    log.as_array().expect("request log is an array")
}

fn user_in<'a>(users: &'a Value, uuid: &str) -> &'a Value {
    entries(users)
        .iter()
        .find(|u| u["user"]["uuid"] == uuid)
        .unwrap_or_else(|| panic!("user {uuid} not in the simulator"))
}

#[tokio::test]
async fn login_accepts_json_and_form_and_refuses_bad_credentials_in_the_documented_shape() {
    let running = sim().await;
    let base = running.base_url();
    let http = reqwest::Client::new();
    let url = format!("{base}/portal/authenticate/login_api");

    let token = login(&base).await;
    assert_eq!(token.expires_in, Some(900));
    assert_eq!(token.access_token.split('.').count(), 3, "JWT-shaped");
    assert!(token.refresh_token.is_some());

    let form = http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope[]", "prae.client.api.user"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);

    let wrong = http
        .post(&url)
        .json(
            &json!({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                      "client_secret": "wrong", "scope": ["prae.client.api.user"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(body.get("error_description").is_some() && body.get("expires_uri").is_some());

    let missing = http
        .post(&url)
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    let refresh = http
        .post(&url)
        .json(&json!({"grant_type": "refresh_token", "refresh_token": token.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), 200);

    // The request log never keeps a login body: it holds the secret.
    let log = reqwest::get(format!("{base}/admin/requests"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!log.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn create_get_and_content_follow_the_spec() {
    let running = sim().await;
    let api = Api::new(&running).await;
    let mut body = user_body("E1", "ada@example.com");
    body["uuid"] = json!("11111111-2222-4333-8444-555555555555");
    body["context"]["content"] = content_listing(&["SAFE-101", "LP-ONBOARD"])["content"].clone();

    let (status, created) = api.create(&body).await;
    assert_eq!(status, 201, "{created}");
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    assert_ne!(
        uuid, "11111111-2222-4333-8444-555555555555",
        "a uuid in the body is ignored"
    );
    assert!(
        created["context"].get("content").is_none(),
        "content is never returned"
    );

    let (status, fetched) = api.get(&uuid).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["principal"]["email"], "ada@example.com");
    assert_eq!(fetched["system"]["status"], "active");
    assert!(fetched["context"].get("content").is_none());

    let users = api.admin("users").await;
    let content: Vec<&String> = user_in(&users, &uuid)["content"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(content.len(), 2, "content in the create payload enrolls");

    let (status, _) = api
        .put(
            &format!("/{uuid}/enrollContent"),
            Some(&content_listing(&["FA-100"])),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .put(
            &format!("/{uuid}/removeContent"),
            Some(&content_listing(&["SAFE-101"])),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .put(
            &format!("/{uuid}/reEnrollContent"),
            Some(&content_listing(&["LP-ONBOARD"])),
        )
        .await;
    assert_eq!(status, 200);
    let users = api.admin("users").await;
    let content = user_in(&users, &uuid)["content"]
        .as_object()
        .unwrap()
        .clone();
    let mut enrolled: Vec<String> = content.keys().cloned().collect();
    enrolled.sort();
    let mut expected = vec![content_uuid("FA-100"), content_uuid("LP-ONBOARD")];
    expected.sort();
    assert_eq!(enrolled, expected);
    assert_eq!(content[&content_uuid("LP-ONBOARD")]["re_enrollments"], 1);

    // A wrong content type is refused.
    let wrong_type = json!({"content": [{"uuid": content_uuid("LP-AQUA"), "type": "course"}]});
    let (status, error) = api
        .put(&format!("/{uuid}/enrollContent"), Some(&wrong_type))
        .await;
    assert_eq!(status, 400);
    assert!(
        error["technicalMessage"]
            .as_str()
            .unwrap()
            .contains("learning path")
    );

    // Update and deactivate, then reactivate through an update.
    let mut changed = user_body("E1", "ada@example.com");
    changed["principal"]["last_name"] = json!("King");
    let (status, updated) = api.put(&format!("/{uuid}"), Some(&changed)).await;
    assert_eq!(
        (status, updated["principal"]["last_name"].as_str()),
        (200, Some("King"))
    );
    let (status, deactivated) = api.put(&format!("/{uuid}/deactivate"), None).await;
    assert_eq!(
        (status, deactivated["system"]["status"].as_str()),
        (200, Some("inactive"))
    );
    let (status, reactivated) = api
        .put(
            &format!("/{uuid}"),
            Some(&user_body("E1", "ada@example.com")),
        )
        .await;
    assert_eq!(
        (status, reactivated["system"]["status"].as_str()),
        (200, Some("active"))
    );
}

fn assert_error_shape(body: &Value, status: u16) {
    assert_eq!(body["status"], status, "{body}");
    for field in ["code", "message", "technicalMessage"] {
        assert!(body[field].is_string(), "{field} missing in {body}");
    }
    assert!(body.as_object().unwrap().contains_key("infoURI"), "{body}");
}

#[tokio::test]
async fn validation_errors_use_the_documented_shape_and_name_every_problem() {
    let running = sim().await;
    let api = Api::new(&running).await;
    let mut body = user_body("E2", "not-an-email");
    body["principal"]["first_name"] = json!("");
    body["system"]["role"] = json!("Wizard");
    body["context"]["locations"] = json!(["99999999-9999-4999-8999-999999999999"]);
    body["context"]["content"] =
        json!([{"uuid": "88888888-8888-4888-8888-888888888888", "type": "course"}]);
    let (status, error) = api.create(&body).await;
    assert_eq!(status, 400);
    assert_error_shape(&error, 400);
    let technical = error["technicalMessage"].as_str().unwrap();
    for needle in [
        "first_name",
        "not-an-email",
        "Wizard",
        "99999999",
        "88888888",
    ] {
        assert!(
            technical.contains(needle),
            "{needle} not named in {technical}"
        );
    }

    let mut unknown_client = user_body("E3", "e3@example.com");
    unknown_client["context"]["client"] = json!("77777777-7777-4777-8777-777777777777");
    let (status, error) = api.create(&unknown_client).await;
    assert_eq!(status, 400);
    assert!(
        error["technicalMessage"]
            .as_str()
            .unwrap()
            .contains("client")
    );

    // A location of another client is refused.
    let mut foreign_location = user_body("E4", "e4@example.com");
    foreign_location["context"]["locations"] =
        json!([location_uuid("Eastside Fields", "Riverside Youth League")]);
    let (status, _) = api.create(&foreign_location).await;
    assert_eq!(status, 400);

    let (status, error) = api.send(Method::POST, "", None).await;
    assert_eq!(status, 400);
    assert_error_shape(&error, 400);
    assert_eq!(
        api.admin("users").await.as_array().unwrap().len(),
        0,
        "nothing was created"
    );
}

#[tokio::test]
async fn tokens_are_required_checked_and_expire() {
    let running = sim().await;
    let api = Api::new(&running).await;
    let (status, created) = api.create(&user_body("E5", "e5@example.com")).await;
    assert_eq!(status, 201);
    let uuid = created["uuid"].as_str().unwrap();

    let bare = api
        .http
        .get(api.url(&format!("/{uuid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 401);
    assert_error_shape(&bare.json().await.unwrap(), 401);

    let forged = format!("{}x", api.token);
    let response = api
        .http
        .get(api.url(&format!("/{uuid}")))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    api.set_faults(json!({"token_lifetime_secs": 0.4})).await;
    let short = login(&api.base).await;
    assert_eq!(short.expires_in, Some(1));
    let fetch = || {
        api.http
            .get(api.url(&format!("/{uuid}")))
            .bearer_auth(&short.access_token)
            .send()
    };
    assert_eq!(fetch().await.unwrap().status(), 200, "valid before expiry");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expired = fetch().await.unwrap();
    assert_eq!(expired.status(), 401, "expired after its lifetime");
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body["technicalMessage"], "token expired");
}

#[tokio::test]
async fn unknown_malformed_and_foreign_users_are_404_400_and_403() {
    let running = sim_with(Faults::default(), &["Northwind Camps"]).await;
    let api = Api::new(&running).await;
    let (status, error) = api.get("12345678-1234-4234-8234-123456789abc").await;
    assert_eq!(status, 404);
    assert_error_shape(&error, 404);
    let (status, _) = api.get("not-a-uuid").await;
    assert_eq!(status, 400);
    let (status, _) = api
        .put("/12345678-1234-4234-8234-123456789abc/deactivate", None)
        .await;
    assert_eq!(status, 404);

    // A user of a client outside the credential's hierarchy.
    let mut foreign = user_body("F1", "foreign@example.com");
    foreign["context"]["client"] = json!(client_uuid("Riverside Youth League"));
    foreign["context"]["locations"] = json!([]);
    let seeded = api
        .http
        .post(format!("{}/admin/users", api.base))
        .json(&foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(seeded.status(), 201);
    let foreign_uuid = seeded.json::<Value>().await.unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, error) = api.get(&foreign_uuid).await;
    assert_eq!(status, 403);
    assert_error_shape(&error, 403);
    let (status, _) = api.put(&format!("/{foreign_uuid}"), Some(&foreign)).await;
    assert_eq!(status, 403);
    let (status, _) = api.put(&format!("/{foreign_uuid}/deactivate"), None).await;
    assert_eq!(status, 403);
    let (status, _) = api.create(&foreign).await;
    assert_eq!(status, 400, "create in a foreign client is refused");
}

#[tokio::test]
async fn email_conflict_reveals_the_existing_id_only_inside_the_hierarchy() {
    let running = sim_with(Faults::default(), &["Northwind Camps"]).await;
    let api = Api::new(&running).await;
    let (_, first) = api.create(&user_body("E6", "shared@example.com")).await;
    let first_uuid = first["uuid"].as_str().unwrap();

    let (status, error) = api.create(&user_body("E7", "SHARED@example.com")).await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "EMAIL_EXISTS");
    assert!(
        error["technicalMessage"]
            .as_str()
            .unwrap()
            .contains(first_uuid),
        "{error}"
    );

    let mut foreign = user_body("F2", "outside@example.com");
    foreign["context"]["client"] = json!(client_uuid("Riverside Youth League"));
    foreign["context"]["locations"] = json!([]);
    let seeded = api
        .http
        .post(format!("{}/admin/users", api.base))
        .json(&foreign)
        .send()
        .await
        .unwrap();
    let foreign_uuid = seeded.json::<Value>().await.unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, error) = api.create(&user_body("E8", "outside@example.com")).await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "EMAIL_EXISTS");
    assert!(
        !error.to_string().contains(&foreign_uuid),
        "id leaked outside the hierarchy: {error}"
    );
}

#[tokio::test]
async fn identical_change_inside_the_window_is_ignored_and_outside_it_is_applied() {
    let running = sim().await;
    let api = Api::new(&running).await;
    api.set_faults(json!({"duplicate_window_secs": 1.0})).await;
    let (_, created) = api.create(&user_body("E9", "e9@example.com")).await;
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    let path = format!("/{uuid}");

    let mut a = user_body("E9", "e9@example.com");
    a["attributes"]["position"] = json!("A");
    let mut b = a.clone();
    b["attributes"]["position"] = json!("B");

    assert_eq!(api.put(&path, Some(&a)).await.0, 200);
    assert_eq!(api.put(&path, Some(&b)).await.0, 200);
    let (status, _) = api.put(&path, Some(&a)).await;
    assert_eq!(status, 200, "answered as if successful");
    assert_eq!(
        api.get(&uuid).await.1["attributes"]["position"],
        "B",
        "but nothing changed"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.put(&path, Some(&a)).await.0, 200);
    assert_eq!(
        api.get(&uuid).await.1["attributes"]["position"],
        "A",
        "outside the window it applies"
    );

    let outcomes: Vec<(String, String)> = entries(&api.admin("requests").await)
        .iter()
        .filter(|e| e["endpoint"] == "update")
        .map(|e| {
            (
                e["body"]["attributes"]["position"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("A".into(), "applied".into()),
            ("B".into(), "applied".into()),
            ("A".into(), "ignored_duplicate".into()),
            ("A".into(), "applied".into()),
        ]
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_a_retry_after_the_bucket_honours() {
    let running = sim().await;
    let api = Api::new(&running).await;
    let (_, created) = api.create(&user_body("E10", "e10@example.com")).await;
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    api.set_faults(json!({"rate_limit": 0.5, "burst": 1})).await;

    let get = || {
        api.http
            .get(api.url(&format!("/{uuid}")))
            .bearer_auth(&api.token)
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    let limited = get().await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_error_shape(&limited.json().await.unwrap(), 429);

    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        get().await.unwrap().status(),
        200,
        "after Retry-After the bucket has a token"
    );
    let log = api.admin("requests").await;
    assert_eq!(
        entries(&log)
            .iter()
            .filter(|e| e["outcome"] == "rate_limited")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_processed_then_dropped_request_really_changed_state() {
    let running = sim().await;
    let api = Api::new(&running).await;
    api.set_faults(json!({"drop_rate": 1.0})).await;
    let outcome = api
        .http
        .post(api.url(""))
        .bearer_auth(&api.token)
        .json(&user_body("E11", "e11@example.com"))
        .send()
        .await;
    let error = outcome.expect_err("the connection is dropped without an answer");
    assert!(!error.is_status() && !error.is_timeout(), "{error}");
    api.set_faults(json!({"drop_rate": 0.0})).await;

    let users = api.admin("users").await;
    assert_eq!(entries(&users).len(), 1, "the create was processed");
    assert_eq!(users[0]["user"]["principal"]["email"], "e11@example.com");
    let log = api.admin("requests").await;
    let create = entries(&log)
        .iter()
        .find(|e| e["endpoint"] == "create")
        .unwrap();
    assert_eq!(
        (create["outcome"].as_str(), create["dropped"].as_bool()),
        (Some("applied"), Some(true))
    );

    // Re-sending the identical create inside the window is swallowed: no second user.
    let (status, again) = api.create(&user_body("E11", "e11@example.com")).await;
    assert_eq!(status, 201);
    assert_eq!(again["uuid"], users[0]["user"]["uuid"]);
    assert_eq!(entries(&api.admin("users").await).len(), 1);
}

#[tokio::test]
async fn injected_errors_change_nothing_and_latency_is_added() {
    let running = sim().await;
    let api = Api::new(&running).await;
    api.set_faults(json!({"error_rate": 1.0})).await;
    let (status, error) = api.create(&user_body("E12", "e12@example.com")).await;
    assert!(status == 500 || status == 503, "{status}");
    assert_error_shape(&error, status);
    assert_eq!(entries(&api.admin("users").await).len(), 0);

    api.set_faults(json!({"error_rate": 0.0, "latency_min_ms": 150, "latency_max_ms": 150}))
        .await;
    let started = Instant::now();
    assert_eq!(
        api.create(&user_body("E12", "e12@example.com")).await.0,
        201
    );
    assert!(started.elapsed() >= Duration::from_millis(150));

    let bad = api
        .http
        .put(format!("{}/admin/faults", api.base))
        .json(&json!({"drop_rate": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn state_file_keeps_users_across_a_restart_and_reset_clears_them() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sim-state.json");
    let catalog = catalog();
    let mut options = rostersync::targets::praesidium::sim::SimOptions::single_credential(
        &catalog,
        CLIENT_ID,
        CLIENT_SECRET,
    );
    options.state_file = Some(state.clone());
    let first = rostersync::targets::praesidium::sim::Sim::new(catalog, options.clone()).unwrap();
    let running =
        rostersync::targets::praesidium::sim::start(first, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let api = Api::new(&running).await;
    let (_, created) = api.create(&user_body("E13", "e13@example.com")).await;
    running.stop().await;

    let second = rostersync::targets::praesidium::sim::Sim::new(util::catalog(), options).unwrap();
    let running =
        rostersync::targets::praesidium::sim::start(second, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let api = Api::new(&running).await;
    let (status, fetched) = api.get(created["uuid"].as_str().unwrap()).await;
    assert_eq!(
        (status, fetched["principal"]["email"].as_str()),
        (200, Some("e13@example.com"))
    );
    let reset = api
        .http
        .post(format!("{}/admin/reset", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert_eq!(entries(&api.admin("users").await).len(), 0);
}
