//! The prancer simulator over real HTTP on loopback (issue 12): every documented endpoint in
//! its envelope, the callers and what each may do, the invitation rules, groups, deletion,
//! the admin endpoints, the rate limit and faults, hostile bodies, and `rostersync sim
//! --target prancer` as a process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use reqwest::Method;
use rostersync::targets::prancer::model::{
    INVITE_PATH, MANAGE_PATH, ROLES_PATH, TOUR_PATH, WHOAMI_PATH,
};
use rostersync::targets::prancer::sim::request_log::BODY_KEPT;
use rostersync::targets::prancer::sim::store::parse_http_date;
use rostersync::targets::prancer::sim::{Faults, RunningSim, Sim, SimOptions, StoreError, start};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-for-tests";
const STAFF: &str = "staff-token-for-tests";

async fn sim_with(faults: Faults) -> RunningSim {
    let options = SimOptions {
        admin_token: ADMIN.to_owned(),
        staff_token: STAFF.to_owned(),
        faults,
        seed: Some(5),
        ..SimOptions::default()
    };
    start(Sim::new(options).unwrap(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn sim() -> RunningSim {
    sim_with(Faults::default()).await
}

/// A client of one running simulator.
struct Api {
    http: reqwest::Client,
    base: String,
    root: String,
}

impl Api {
    fn new(running: &RunningSim) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: running.base_url(),
            root: running.root_url(),
        }
    }

    /// One API request; the answer's status and JSON (its text as a string if not JSON).
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.unwrap()).await
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    async fn invite(&self, email: &str, resend: bool) -> (u16, Value) {
        let body = json!({"email": email, "resend": resend});
        self.call(Method::GET, INVITE_PATH, Some(ADMIN), Some(body))
            .await
    }

    async fn users(&self, token: &str, search: Option<&str>) -> (u16, Value) {
        let body = search.map(|s| json!({ "search": s }));
        self.call(Method::GET, MANAGE_PATH, Some(token), body).await
    }

    async fn emails(&self, search: Option<&str>) -> Vec<String> {
        let (status, body) = self.users(ADMIN, search).await;
        assert_eq!(status, 200, "{body}");
        body["data"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn admin_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/admin/{path}", self.root))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn admin_send(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}/admin/{path}", self.root))
            .json(&body)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    async fn set_faults(&self, patch: Value) {
        let (status, body) = self.admin_send(Method::PUT, "faults", patch).await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The documented envelope, exactly its six keys, `status` repeating the HTTP status.
fn assert_envelope(body: &Value, status: u16) {
    let keys: Vec<&str> = body
        .as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "data",
            "error",
            "error_list",
            "message",
            "metadata",
            "status"
        ],
        "{body}"
    );
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["metadata"], json!({}));
    if status != 200 {
        assert_eq!(body["data"], json!({}), "{body}");
        assert!(!body["error"].as_str().unwrap().is_empty(), "{body}");
    } else {
        assert_eq!(body["error"], "");
        assert_eq!(body["error_list"], json!([]));
    }
}

/// `status` and envelope at once.
fn assert_answer(answer: &(u16, Value), status: u16) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_envelope(&answer.1, status);
}

#[tokio::test]
async fn every_answer_is_the_envelope_with_the_http_status() {
    let running = sim().await;
    let api = Api::new(&running);
    let invited = api.invite("ada@example.com", false).await;
    assert_answer(&invited, 200);
    assert_eq!(invited.1["data"], json!({}));
    assert_eq!(
        invited.1["message"],
        "User invitation link sent successfully"
    );

    let invalid = api.invite("not-an-email", false).await;
    assert_answer(&invalid, 400);
    assert_eq!(invalid.1["error_list"][0]["field"], "email");

    assert_answer(&api.call(Method::GET, WHOAMI_PATH, None, None).await, 401);
    assert_answer(
        &api.call(Method::GET, WHOAMI_PATH, Some("nope"), None).await,
        401,
    );
    let body = json!({"email": "ada@example.com"});
    assert_answer(
        &api.call(Method::DELETE, MANAGE_PATH, Some(STAFF), Some(body))
            .await,
        403,
    );
    assert_answer(
        &api.call(Method::GET, "/api/user/nothing/", Some(ADMIN), None)
            .await,
        404,
    );
    assert_answer(
        &api.call(Method::PUT, TOUR_PATH, Some(ADMIN), None).await,
        405,
    );
    assert_answer(
        &api.raw(Method::GET, INVITE_PATH, "text/plain", b"{}".to_vec())
            .await,
        415,
    );
    assert_answer(
        &api.raw(
            Method::GET,
            INVITE_PATH,
            "application/json",
            vec![b' '; 70_000],
        )
        .await,
        413,
    );
    // Outside the customer path too: a wrong customer is a 404 in the same shape.
    let other = api
        .http
        .get(format!("{}/other-customer{WHOAMI_PATH}", api.root))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_answer(&answer(other).await, 404);
}

#[tokio::test]
async fn callers_are_known_by_token_and_staff_may_only_read() {
    let running = sim().await;
    let api = Api::new(&running);
    let (status, admin) = api.call(Method::GET, WHOAMI_PATH, Some(ADMIN), None).await;
    assert_eq!(status, 200);
    let me = &admin["data"];
    assert_eq!(
        (&me["is_admin"], &me["is_staff"], &me["is_superuser"]),
        (&json!(true), &json!(false), &json!(false))
    );
    assert_eq!(me["permissions"].as_array().unwrap().len(), 10);
    assert_eq!(me["name"], " ");
    assert_eq!(me["tours"]["/wc/resource/search"], true);
    assert_eq!(me["id"], 1);

    let (status, staff) = api.call(Method::GET, WHOAMI_PATH, Some(STAFF), None).await;
    assert_eq!(status, 200);
    let me = &staff["data"];
    assert_eq!(
        (&me["is_admin"], &me["is_staff"], &me["is_superuser"]),
        (&json!(false), &json!(true), &json!(false))
    );
    let permissions: Vec<&str> = me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        permissions.iter().all(|p| p.ends_with("_read")),
        "{permissions:?}"
    );

    assert_eq!(api.invite("ada@example.com", false).await.0, 200);
    let (status, listed) = api.users(STAFF, None).await;
    assert_answer(&(status, listed.clone()), 200);
    assert_eq!(listed["data"]["users"].as_array().unwrap().len(), 3);

    let writes = [
        (
            Method::GET,
            INVITE_PATH,
            json!({"email": "bob@example.com"}),
        ),
        (
            Method::POST,
            INVITE_PATH,
            json!({"email": "bob@example.com"}),
        ),
        (
            Method::DELETE,
            MANAGE_PATH,
            json!({"email": "ada@example.com"}),
        ),
        (
            Method::POST,
            ROLES_PATH,
            json!({"user_id": 3, "groups": ["Owner"]}),
        ),
    ];
    for (method, path, body) in writes {
        let refused = api.call(method, path, Some(STAFF), Some(body)).await;
        assert_answer(&refused, 403);
    }
    // Permission comes before the body: a staff caller's garbage is still a 403.
    assert_answer(
        &api.call(Method::POST, ROLES_PATH, Some(STAFF), Some(json!([1])))
            .await,
        403,
    );
    let users = running.sim.users();
    assert_eq!(users.len(), 3, "staff changed nothing");
    assert!(users[2].user.user_groups.is_empty());
    // A tour flag is the caller's own: staff may set theirs.
    let tour = json!({"tour_path": "/wc/dashboard", "status": true});
    let (status, body) = api
        .call(Method::POST, TOUR_PATH, Some(STAFF), Some(tour))
        .await;
    assert_eq!(
        (status, &body["data"]),
        (200, &json!("Tour status updated successfully"))
    );
    let (_, staff) = api.call(Method::GET, WHOAMI_PATH, Some(STAFF), None).await;
    assert_eq!(staff["data"]["tours"]["/wc/dashboard"], true);
    let unknown = json!({"tour_path": "/wc/nowhere", "status": true});
    assert_answer(
        &api.call(Method::POST, TOUR_PATH, Some(ADMIN), Some(unknown))
            .await,
        400,
    );
}

#[tokio::test]
async fn an_invitation_creates_a_pending_user_in_the_list() {
    let running = sim().await;
    let api = Api::new(&running);
    assert_eq!(api.invite("Ada.Lovelace@Example.com", false).await.0, 200);
    let (_, listed) = api.users(ADMIN, Some("ada.lovelace")).await;
    let users = listed["data"]["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    let ada = &users[0];
    assert_eq!(ada["email"], "Ada.Lovelace@Example.com");
    assert_eq!(ada["username"], "Ada.Lovelace@Example.com");
    assert_eq!(ada["status"], "Pending");
    assert_eq!(ada["is_active"], false);
    assert_eq!(ada["last_login"], Value::Null);
    assert_eq!(
        (&ada["first_name"], &ada["last_name"]),
        (&json!(""), &json!(""))
    );
    assert_eq!(ada["user_groups"], json!([]));
    assert_eq!(ada["password"], "");
    assert_eq!(ada["id"], 3, "ids 1 and 2 are the callers' accounts");
    let joined = ada["date_joined"].as_str().unwrap();
    assert!(joined.ends_with(" GMT"), "{joined}");
    assert!(parse_http_date(joined).is_some(), "{joined}");

    // POST reaches the same endpoint: the document's GET-with-a-body is odd enough that a
    // client may prefer it.
    let posted = api
        .call(
            Method::POST,
            INVITE_PATH,
            Some(ADMIN),
            Some(json!({"email": "bob@example.com"})),
        )
        .await;
    assert_answer(&posted, 200);
    assert!(running.sim.user("BOB@example.com").is_some());
}

#[tokio::test]
async fn duplicate_invitations_follow_the_resend_rules_ignoring_case() {
    let running = sim().await;
    let api = Api::new(&running);
    assert_eq!(api.invite("ada@example.com", false).await.0, 200);

    let again = api.invite("ADA@example.com", false).await;
    assert_answer(&again, 400);
    assert!(
        again.1["error"].as_str().unwrap().contains("resend"),
        "{}",
        again.1
    );

    let resent = api.invite("Ada@Example.com", true).await;
    assert_answer(&resent, 200);
    let ada = running.sim.user("ada@example.com").unwrap();
    assert_eq!(ada.resends, 1);
    let first = ada.invited_at.unwrap();

    assert_answer(&api.invite("nobody@example.com", true).await, 400);
    assert!(running.sim.user("nobody@example.com").is_none());

    running.sim.accept("ada@example.com").unwrap();
    for resend in [false, true] {
        let exists = api.invite("ada@example.com", resend).await;
        assert_answer(&exists, 400);
        assert_eq!(exists.1["error"], "user already exists");
    }
    let ada = running.sim.user("ada@example.com").unwrap();
    assert_eq!((ada.resends, ada.invited_at), (1, Some(first)));
    assert_eq!(
        api.emails(Some("ada")).await.len(),
        1,
        "one user, however spelled"
    );

    // The log shows exactly what was sent and what became of it.
    let log = running.sim.requests(0, usize::MAX);
    let statuses: Vec<u16> = log.iter().map(|e| e.status).collect();
    assert_eq!(statuses[..5], [200, 400, 200, 400, 400]);
    assert_eq!(
        log[2].body,
        Some(json!({"email": "Ada@Example.com", "resend": true}))
    );
    assert_eq!(log[0].path, "/prancer-customer1/api/user/invite/");
    assert_eq!(
        log[0].caller.as_deref(),
        Some("sync-admin@prancer-sim.example")
    );
}

#[tokio::test]
async fn search_matches_email_first_or_last_name_ignoring_case() {
    let running = sim().await;
    let api = Api::new(&running);
    for email in ["grace@navy.example", "ada@example.com", "alan@example.org"] {
        assert_eq!(api.invite(email, false).await.0, 200);
    }
    running
        .sim
        .accept_as(
            "grace@navy.example",
            Some("Grace".into()),
            Some("Hopper".into()),
        )
        .unwrap();
    assert_eq!(api.emails(None).await.len(), 5, "no body lists everyone");
    assert_eq!(api.emails(Some("")).await.len(), 5);
    assert_eq!(api.emails(Some("HOPPER")).await, ["grace@navy.example"]);
    assert_eq!(api.emails(Some("gRaCe")).await, ["grace@navy.example"]);
    assert_eq!(
        api.emails(Some("example.")).await,
        ["ada@example.com", "alan@example.org"]
    );
    assert!(api.emails(Some("nobody")).await.is_empty());
    let wrong = api
        .call(
            Method::GET,
            MANAGE_PATH,
            Some(ADMIN),
            Some(json!({"search": 5})),
        )
        .await;
    assert_answer(&wrong, 400);
}

#[tokio::test]
async fn roles_replace_the_groups_at_the_double_slash_url_only() {
    let running = sim().await;
    let api = Api::new(&running);
    api.invite("ada@example.com", false).await;
    let roles = |user_id: i64, groups: &[&str]| json!({"user_id": user_id, "groups": groups});

    let set = api
        .call(
            Method::POST,
            ROLES_PATH,
            Some(ADMIN),
            Some(roles(3, &["Security Admin", "Debug Team"])),
        )
        .await;
    assert_answer(&set, 200);
    assert_eq!(
        set.1["data"],
        json!({"groups": ["Security Admin", "Debug Team"], "user_id": 3})
    );
    assert_eq!(set.1["message"], "user groups updated successfully");

    running.sim.accept("ada@example.com").unwrap();
    let replaced = api
        .call(
            Method::POST,
            ROLES_PATH,
            Some(ADMIN),
            Some(roles(3, &["Viewer"])),
        )
        .await;
    assert_answer(&replaced, 200);
    assert_eq!(
        running
            .sim
            .user("ada@example.com")
            .unwrap()
            .user
            .user_groups,
        ["Viewer"]
    );

    let unknown_group = api
        .call(
            Method::POST,
            ROLES_PATH,
            Some(ADMIN),
            Some(roles(3, &["Viewer", "Wizards"])),
        )
        .await;
    assert_answer(&unknown_group, 400);
    assert!(
        unknown_group.1["error"]
            .as_str()
            .unwrap()
            .contains("Wizards")
    );
    assert_eq!(unknown_group.1["error_list"][0]["field"], "groups");

    let unknown_user = api
        .call(
            Method::POST,
            ROLES_PATH,
            Some(ADMIN),
            Some(roles(99, &["Viewer"])),
        )
        .await;
    assert_answer(&unknown_user, 404);

    // The document's URL has two slashes; one slash is no endpoint at all.
    let single = api
        .call(
            Method::POST,
            "/api/user/roles",
            Some(ADMIN),
            Some(roles(3, &["Owner"])),
        )
        .await;
    assert_answer(&single, 404);
    assert_eq!(
        running
            .sim
            .user("ada@example.com")
            .unwrap()
            .user
            .user_groups,
        ["Viewer"],
        "refused changes changed nothing"
    );
    let last = running.sim.requests(0, usize::MAX).pop().unwrap();
    assert_eq!(
        (last.endpoint, last.status, last.path.as_str()),
        (None, 404, "/prancer-customer1/api/user/roles")
    );
}

#[tokio::test]
async fn delete_removes_a_user_by_email_and_a_deleted_caller_loses_its_token() {
    let running = sim().await;
    let api = Api::new(&running);
    api.invite("ada@example.com", false).await;
    api.invite("bob@example.com", false).await;
    running.sim.accept("bob@example.com").unwrap();
    let delete = |email: &str| {
        api.call(
            Method::DELETE,
            MANAGE_PATH,
            Some(ADMIN),
            Some(json!({ "email": email })),
        )
    };
    for email in ["ADA@example.com", "bob@EXAMPLE.com"] {
        let deleted = delete(email).await;
        assert_answer(&deleted, 200);
        assert_eq!(deleted.1["message"], "User does deleted successfully!");
    }
    assert_answer(&delete("ada@example.com").await, 404);
    assert_answer(&delete("sync-admin@prancer-sim.example").await, 400);
    assert_eq!(running.sim.users().len(), 2);

    // Ids are never reused.
    api.invite("ada@example.com", false).await;
    assert_eq!(running.sim.user("ada@example.com").unwrap().user.id, 5);

    assert_eq!(api.users(STAFF, None).await.0, 200);
    assert_answer(&delete("sync-staff@prancer-sim.example").await, 200);
    assert_answer(&api.users(STAFF, None).await, 401);
}

#[tokio::test]
async fn admin_endpoints_accept_age_seed_and_reset() {
    let running = sim().await;
    let api = Api::new(&running);
    api.invite("ada@example.com", false).await;

    let (status, aged) = api
        .admin_send(
            Method::POST,
            "age",
            json!({"email": "ada@example.com", "days": 30}),
        )
        .await;
    assert_eq!(status, 200, "{aged}");
    let invited: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(aged["invited_at"].clone()).unwrap();
    let age = chrono::Utc::now() - invited;
    assert!((29..=30).contains(&age.num_days()), "{age}");
    let joined = parse_http_date(aged["user"]["date_joined"].as_str().unwrap()).unwrap();
    assert!(joined <= invited + chrono::Duration::seconds(1));

    let (status, accepted) = api
        .admin_send(
            Method::POST,
            "accept",
            json!({"email": "ADA@example.com", "first_name": "Ada", "last_name": "Lovelace"}),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["user"]["status"], "Active");
    assert_eq!(accepted["user"]["is_active"], true);
    assert_eq!(accepted["user"]["first_name"], "Ada");
    let (status, _) = api
        .admin_send(Method::POST, "accept", json!({"email": "ada@example.com"}))
        .await;
    assert_eq!(status, 409, "accepted once only");
    let (status, _) = api
        .admin_send(
            Method::POST,
            "accept",
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        running.sim.accept("ada@example.com"),
        Err(StoreError::NotPending)
    );

    let (status, seeded) = api
        .admin_send(
            Method::POST,
            "users",
            json!({"email": "old@example.com", "groups": ["Auditor"]}),
        )
        .await;
    assert_eq!(status, 201, "{seeded}");
    assert_eq!(seeded["user"]["status"], "Active");
    let users = api.admin_get("users").await;
    let emails: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"]["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        [
            "sync-admin@prancer-sim.example",
            "sync-staff@prancer-sim.example",
            "ada@example.com",
            "old@example.com"
        ]
    );
    assert_eq!(users[2]["resends"], 0);
    assert_eq!(users[0]["api_caller"], true);
    let log = api.admin_get("requests").await;
    assert_eq!(
        log.as_array().unwrap().len(),
        1,
        "admin calls are not API traffic"
    );
    let since = api.admin_get("requests?since=1").await;
    assert!(since.as_array().unwrap().is_empty());

    let reset = api
        .http
        .post(format!("{}/admin/reset", api.root))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert_eq!(running.sim.users().len(), 2);
    assert!(running.sim.requests(0, usize::MAX).is_empty());
    // Nothing was sent since the reset: the proof a dry run can give.
    assert_eq!(api.admin_get("requests").await, json!([]));
}

#[tokio::test]
async fn the_rate_limit_answers_429_in_the_envelope_with_or_without_retry_after() {
    let running = sim().await;
    let api = Api::new(&running);
    api.set_faults(json!({"rate_limit": 0.5, "burst": 1})).await;
    let whoami = || {
        api.http
            .get(format!("{}{WHOAMI_PATH}", api.base))
            .bearer_auth(ADMIN)
            .send()
    };
    assert_eq!(whoami().await.unwrap().status(), 200);
    let limited = whoami().await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_answer(&answer(limited).await, 429);

    api.set_faults(json!({"retry_after": false})).await;
    let limited = whoami().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_none());

    let log = running.sim.requests(0, usize::MAX);
    let limited = log
        .iter()
        .filter(|e| e.status == 429 && e.caller.is_none())
        .count();
    assert_eq!(limited, 2, "a refused request never reached authentication");
}

#[tokio::test]
async fn a_dropped_connection_after_processing_still_invited_and_errors_change_nothing() {
    let running = sim_with(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let api = Api::new(&running);
    let outcome = api
        .http
        .get(format!("{}{INVITE_PATH}", api.base))
        .bearer_auth(ADMIN)
        .json(&json!({"email": "ada@example.com", "resend": false}))
        .send()
        .await;
    let error = outcome.expect_err("the connection is dropped without an answer");
    assert!(!error.is_status() && !error.is_timeout(), "{error}");
    assert!(
        running.sim.user("ada@example.com").is_some(),
        "the client saw no answer, yet the invitation went out"
    );
    let entry = running.sim.requests(0, 1).remove(0);
    assert!(entry.dropped && entry.status == 200, "{entry:?}");

    api.set_faults(json!({"drop_rate": 0.0, "error_rate": 1.0}))
        .await;
    let failed = api.invite("bob@example.com", false).await;
    assert!([500, 503].contains(&failed.0), "{}", failed.1);
    assert_answer(&failed, failed.0);
    assert!(running.sim.user("bob@example.com").is_none());
    api.set_faults(json!({"error_rate": 0.0})).await;
    // The retry of the dropped invitation meets the rule a client must handle.
    assert_answer(&api.invite("ada@example.com", false).await, 400);
}

#[tokio::test]
async fn garbage_bodies_are_answered_400_in_the_envelope_never_a_panic() {
    let running = sim().await;
    let api = Api::new(&running);
    let json = "application/json";
    let cases: Vec<(Method, &str, Vec<u8>)> = vec![
        (Method::GET, INVITE_PATH, b"{\"email\":".to_vec()),
        (Method::GET, INVITE_PATH, b"[\"a@b.example\"]".to_vec()),
        (Method::GET, INVITE_PATH, b"null".to_vec()),
        (Method::GET, INVITE_PATH, vec![0xff, 0xfe, 0x00, 0x7b]),
        (Method::GET, INVITE_PATH, b"{\"email\": 12}".to_vec()),
        (
            Method::GET,
            INVITE_PATH,
            b"{\"email\": \"a@b.example\", \"resend\": \"yes\"}".to_vec(),
        ),
        (
            Method::GET,
            INVITE_PATH,
            b"{\"email\": \"a@b.example\", \"resend\": null}".to_vec(),
        ),
        (
            Method::GET,
            INVITE_PATH,
            b"{\"email\": \"a\\u0000@b.example\"}".to_vec(),
        ),
        (Method::GET, INVITE_PATH, Vec::new()),
        (Method::DELETE, MANAGE_PATH, Vec::new()),
        (
            Method::DELETE,
            MANAGE_PATH,
            b"{\"email\": [\"a@b.example\"]}".to_vec(),
        ),
        (Method::POST, ROLES_PATH, Vec::new()),
        (
            Method::POST,
            ROLES_PATH,
            b"{\"user_id\": \"3\", \"groups\": [\"Owner\"]}".to_vec(),
        ),
        (
            Method::POST,
            ROLES_PATH,
            b"{\"user_id\": 3, \"groups\": \"Owner\"}".to_vec(),
        ),
        (
            Method::POST,
            ROLES_PATH,
            b"{\"user_id\": 1e400, \"groups\": []}".to_vec(),
        ),
        (
            Method::POST,
            ROLES_PATH,
            b"{\"user_id\": -1, \"groups\": [null]}".to_vec(),
        ),
        (
            Method::POST,
            TOUR_PATH,
            b"{\"tour_path\": \"/wc/dashboard\"}".to_vec(),
        ),
        (
            Method::GET,
            MANAGE_PATH,
            b"{\"search\": {\"$ne\": 1}}".to_vec(),
        ),
        (Method::GET, MANAGE_PATH, "[".repeat(10_000).into_bytes()),
    ];
    for (method, path, body) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(60)
            .collect::<String>();
        let answer = api.raw(method.clone(), path, json, body).await;
        assert_eq!(answer.0, 400, "{method} {path} {shown}: {}", answer.1);
        assert_envelope(&answer.1, 400);
    }
    let required = api.raw(Method::GET, INVITE_PATH, json, Vec::new()).await;
    assert_eq!(
        required.1["error_list"],
        json!([{"field": "email", "message": "This field is required."}])
    );
    let huge = api
        .raw(Method::GET, INVITE_PATH, json, vec![b'x'; 1 << 20])
        .await;
    assert_answer(&huge, 413);
    assert_eq!(running.sim.users().len(), 2, "nothing was created");
    // Still serving.
    assert_eq!(api.invite("ok@example.com", false).await.0, 200);
    let big = running.sim.requests(0, usize::MAX);
    assert!(big.iter().all(|e| {
        e.body
            .as_ref()
            .is_none_or(|b| b.to_string().len() < 2 * BODY_KEPT)
    }));
}

#[tokio::test]
async fn paths_are_not_normalised_and_head_invites_no_one() {
    let running = sim().await;
    let api = Api::new(&running);
    for path in [
        "/api/user/invite",
        "/api/user/get",
        "//api/user/get/",
        "/API/user/get/",
    ] {
        let answer = api.call(Method::GET, path, Some(ADMIN), None).await;
        assert_answer(&answer, 404);
    }
    let head = api
        .http
        .head(format!("{}{INVITE_PATH}", api.base))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(r#"{"email":"head@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 405);
    assert!(running.sim.user("head@example.com").is_none());
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_cli_serves_prancer_under_its_customer_path() {
    let mut child = Command::cargo_bin("rostersync")
        .unwrap()
        .args([
            "sim",
            "--target",
            "prancer",
            "--listen",
            "127.0.0.1:0",
            "--customer",
            "acme-corp",
            "--groups",
            "Owner,Viewer",
            "--rate-limit",
            "1000",
            "--seed",
            "4",
        ])
        .env("ROSTERSYNC_SIM_PRANCER_TOKEN", ADMIN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let _guard = Killed(child);
    let (mut first, mut second) = (String::new(), String::new());
    lines.read_line(&mut first).unwrap();
    lines.read_line(&mut second).unwrap();
    let addr: std::net::SocketAddr = first.trim().parse().expect("first line is the address");
    assert_eq!(second.trim(), format!("http://{addr}/acme-corp"));

    let http = reqwest::Client::new();
    let base = second.trim();
    let response = http
        .get(format!("{base}{INVITE_PATH}"))
        .bearer_auth(ADMIN)
        .json(&json!({"email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let roles = http
        .post(format!("{base}{ROLES_PATH}"))
        .bearer_auth(ADMIN)
        .json(&json!({"user_id": 3, "groups": ["Developer"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(roles.status(), 400, "--groups replaced the known groups");
    let staff = http
        .get(format!("{base}{WHOAMI_PATH}"))
        .bearer_auth("prancer-staff-demo-token")
        .send()
        .await
        .unwrap();
    assert_eq!(staff.status(), 200);
    let faults: Value = http
        .get(format!("http://{addr}/admin/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (faults["rate_limit"].as_f64(), &faults["retry_after"]),
        (Some(1000.0), &json!(true))
    );
}

#[test]
fn the_cli_refuses_the_other_targets_flags_and_remote_listening() {
    let run = |args: &[&str]| {
        let mut command = Command::cargo_bin("rostersync").unwrap();
        let output = command
            .arg("sim")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[
        "--target",
        "prancer",
        "--listen",
        "127.0.0.1:0",
        "--catalog-dir",
        "x",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("--catalog-dir applies to --target praesidium only"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--listen", "127.0.0.1:0", "--customer", "acme"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("--customer applies to --target prancer only"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--target", "prancer", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("--allow-remote"), "{stderr}");
    let (code, stderr) = run(&[
        "--target",
        "prancer",
        "--listen",
        "127.0.0.1:0",
        "--customer",
        "a/b",
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("path segment"), "{stderr}");
}
