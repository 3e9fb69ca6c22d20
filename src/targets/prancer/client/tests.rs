//! The prancer client: its pure parts, and what goes over the wire to a stub on loopback
//! (not the prancer simulator: these tests pin the client to the document alone).

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::{Value, json};

use super::*;

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.pRnC3r-T0k3n_Sig";

fn caller(email: &str, admin: bool, superuser: bool, staff: bool) -> Caller {
    Caller {
        email: email.to_owned(),
        is_admin: admin,
        is_superuser: superuser,
        is_staff: staff,
        ..Caller::default()
    }
}

fn user(id: i64, email: &str) -> PrancerUser {
    PrancerUser {
        id,
        email: email.to_owned(),
        ..PrancerUser::default()
    }
}

#[test]
fn only_admins_and_superusers_may_manage_users() {
    assert_eq!(
        check_permissions(&caller("a@x.io", true, false, false)),
        Ok(())
    );
    assert_eq!(
        check_permissions(&caller("a@x.io", false, true, true)),
        Ok(())
    );
    let staff = check_permissions(&caller("x@y.io", false, false, true)).unwrap_err();
    let shown = staff.to_string();
    assert!(
        shown.starts_with(
            "the API token belongs to x@y.io, which is neither admin nor superuser; prancer \
             lets only those manage users"
        ),
        "{shown}"
    );
    assert!(shown.contains("staff alone is not enough"), "{shown}");
    let plain = check_permissions(&caller("", false, false, false)).unwrap_err();
    assert!(!plain.to_string().contains("staff"), "{plain}");
    assert!(plain.to_string().contains("a user without an email"));
}

#[test]
fn only_the_exact_email_is_taken_from_a_search() {
    let found = vec![
        user(1, "joann@example.com"),
        user(2, "Ann@Example.com "),
        user(3, "ann@example.com.au"),
    ];
    assert_eq!(
        exact_match(found.clone(), "ann@example.com").unwrap(),
        Some(user(2, "Ann@Example.com "))
    );
    assert_eq!(exact_match(found, "nobody@example.com").unwrap(), None);
    // A substring of a search is never "the first result".
    let only_longer = vec![user(1, "joann@example.com")];
    assert_eq!(exact_match(only_longer, "ann@example.com").unwrap(), None);
    let twice = vec![user(1, "ann@example.com"), user(2, "ANN@example.com")];
    assert!(matches!(
        exact_match(twice, "ann@example.com"),
        Err(CallError::Unreliable { message, .. }) if message.contains("2 users")
    ));
}

#[test]
fn the_roles_path_keeps_its_double_slash_and_the_token_is_checked() {
    assert_eq!(ROLES_PATH, "/api//user/roles");
    let client = Client::new(
        "https://portal.prancer.io/prancer-customer1/",
        &Secret::new(format!("{TOKEN}\n")),
        Duration::from_secs(5),
        2,
    )
    .unwrap();
    assert_eq!(
        client.base_url(),
        "https://portal.prancer.io/prancer-customer1"
    );
    let request = client
        .http
        .request(reqwest::Method::POST, ROLES_PATH)
        .build()
        .unwrap();
    assert_eq!(
        request.url().as_str(),
        "https://portal.prancer.io/prancer-customer1/api//user/roles"
    );
    assert!(!format!("{client:?}").contains(TOKEN));
    let new = |base: &str, token: &str| {
        Client::new(base, &Secret::new(token), Duration::from_secs(5), 1).map_err(|e| e.to_string())
    };
    for bad in ["", "  ", "Bearer abc", "a\u{e9}b"] {
        let error = new("https://p.example.com", bad).unwrap_err();
        assert!(error.contains("token"), "{error}");
    }
    let error = new("http://portal.prancer.io", TOKEN).unwrap_err();
    assert!(
        error.contains("loopback") && !error.contains(TOKEN),
        "{error}"
    );
}

/// One request as the stub received it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    /// The request target as sent, path and all.
    target: String,
    content_type: Option<String>,
    authorization: Option<String>,
    body: Value,
}

type Reply = (u16, Vec<(&'static str, String)>, String);
type Script = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A stub on a free loopback port that records every request and answers by `script`.
async fn stub(script: Script) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
            let log = log.clone();
            let script = script.clone();
            async move {
                let text = |name| {
                    headers
                        .get(name)
                        .and_then(|v: &header::HeaderValue| v.to_str().ok())
                        .map(str::to_owned)
                };
                let request = Seen {
                    method,
                    target: uri.to_string(),
                    content_type: text(header::CONTENT_TYPE),
                    authorization: text(header::AUTHORIZATION),
                    body: serde_json::from_str(&body).unwrap_or(Value::Null),
                };
                let (status, extra, body) = script(&request);
                log.lock().unwrap().push(request);
                let mut response = axum::response::Response::new(axum::body::Body::from(body));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                for (name, value) in extra {
                    response
                        .headers_mut()
                        .insert(name, header::HeaderValue::from_str(&value).unwrap());
                }
                response
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/prancer-customer1"), seen)
}

fn ok(data: Value) -> Reply {
    let body = json!({
        "data": data, "error": "", "error_list": [], "message": "",
        "metadata": {}, "status": 200,
    });
    (
        200,
        vec![("content-type", "application/json".into())],
        body.to_string(),
    )
}

fn client_of(base: &str) -> Client {
    Client::new(base, &Secret::new(TOKEN), Duration::from_secs(5), 2).unwrap()
}

#[tokio::test]
async fn requests_go_out_as_the_document_shows_them() {
    let (base, seen) = stub(Arc::new(|request: &Seen| match request.target.as_str() {
        "/prancer-customer1/api/user/get/" => {
            ok(json!({"email": "admin@corp.io", "id": 2, "is_admin": true}))
        }
        "/prancer-customer1/api/user/manage/" if request.body["search"] == "no-users" => {
            ok(json!({"total": 0}))
        }
        "/prancer-customer1/api/user/manage/" if request.method == Method::GET => ok(json!({
            "users": [
                {"email": "joann@corp.io", "id": 7},
                {"email": "Ann@corp.io", "id": 8, "status": "Pending"},
            ]
        })),
        "/prancer-customer1/api//user/roles" => ok(request.body.clone()),
        _ => ok(json!({})),
    }))
    .await;
    let client = client_of(&base);
    let me = client.whoami().await.unwrap();
    assert_eq!(check_permissions(&me), Ok(()));
    client.invite("ann@corp.io", false).await.unwrap();
    client.invite("ann@corp.io", true).await.unwrap();
    let found = client.find_by_email("ann@corp.io").await.unwrap().unwrap();
    assert_eq!(found.id, 8);
    assert_eq!(client.list(None).await.unwrap().len(), 2);
    // A listing without its `users` is a fault, not "nobody is there".
    let error = client.list(Some("no-users")).await.unwrap_err();
    assert!(
        matches!(error, CallError::Server { status: 200, .. }),
        "{error:?}"
    );
    client.delete("ann@corp.io").await.unwrap();
    let groups = vec!["Security Admin".to_owned(), "Debug Team".to_owned()];
    let echo = client.set_groups(81, &groups).await.unwrap();
    assert_eq!(
        echo,
        RolesRequest {
            user_id: 81,
            groups
        }
    );

    let seen = seen.lock().unwrap().clone();
    let summary: Vec<(Method, &str, &Value)> = seen
        .iter()
        .map(|s| (s.method.clone(), s.target.as_str(), &s.body))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                Method::GET,
                "/prancer-customer1/api/user/get/",
                &Value::Null
            ),
            (
                Method::GET,
                "/prancer-customer1/api/user/invite/",
                &json!({"email": "ann@corp.io", "resend": false})
            ),
            (
                Method::GET,
                "/prancer-customer1/api/user/invite/",
                &json!({"email": "ann@corp.io", "resend": true})
            ),
            (
                Method::GET,
                "/prancer-customer1/api/user/manage/",
                &json!({"search": "ann@corp.io"})
            ),
            (
                Method::GET,
                "/prancer-customer1/api/user/manage/",
                &json!({"search": ""})
            ),
            (
                Method::GET,
                "/prancer-customer1/api/user/manage/",
                &json!({"search": "no-users"})
            ),
            (
                Method::DELETE,
                "/prancer-customer1/api/user/manage/",
                &json!({"email": "ann@corp.io"})
            ),
            (
                Method::POST,
                "/prancer-customer1/api//user/roles",
                &json!({"user_id": 81, "groups": ["Security Admin", "Debug Team"]})
            ),
        ]
    );
    for request in &seen {
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        if request.body != Value::Null {
            assert_eq!(request.content_type.as_deref(), Some("application/json"));
        }
    }
}

#[tokio::test]
async fn errors_never_carry_the_token_even_when_the_server_echoes_it() {
    // Every answer quotes the Authorization header it received, in several forms.
    let (base, seen) = stub(Arc::new(|request: &Seen| {
        let auth = request.authorization.clone().unwrap_or_default();
        let bare = auth.trim_start_matches("Bearer ").to_owned();
        let echo = |status: u16| {
            json!({
                "data": {}, "error": format!("invalid {bare}"),
                "error_list": [auth.clone(), format!("token={bare}")],
                "message": format!("got {}", bare.to_uppercase()), "metadata": {},
                "status": status,
            })
            .to_string()
        };
        match request.target.as_str() {
            // An HTTP 200 that is an error, by the envelope's status.
            "/prancer-customer1/api/user/invite/" => (200, vec![], echo(400)),
            "/prancer-customer1/api/user/manage/" if request.method == Method::DELETE => {
                (401, vec![], echo(401))
            }
            "/prancer-customer1/api/user/manage/" => (
                502,
                vec![],
                format!("<html>upstream said {bare} and {auth}</html>"),
            ),
            "/prancer-customer1/api//user/roles" => (
                302,
                vec![(
                    "location",
                    format!("https://evil.example.net/steal?t={bare}#{bare}"),
                )],
                String::new(),
            ),
            _ => ok(json!({"email": bare, "name": auth, "is_staff": true})),
        }
    }))
    .await;
    let client = client_of(&base);
    let mut shown = Vec::new();

    let invite = client.invite("ann@corp.io", false).await.unwrap_err();
    assert!(
        matches!(&invite, CallError::Rejected { status: 400, .. }),
        "{invite:?}"
    );
    shown.push(format!("{invite} {invite:?}"));

    let delete = client.delete("ann@corp.io").await.unwrap_err();
    assert!(
        matches!(&delete, CallError::AuthRefused { status: 401, .. }),
        "{delete:?}"
    );
    shown.push(format!("{delete} {delete:?}"));

    let list = client.list(None).await.unwrap_err();
    assert!(
        matches!(&list, CallError::Server { status: 502, .. }),
        "{list:?}"
    );
    shown.push(format!("{list} {list:?}"));

    let roles = client.set_groups(1, &[]).await.unwrap_err();
    assert!(
        matches!(&roles, CallError::Rejected { status: 302, code, message, .. }
            if code == "REDIRECT" && message.contains("evil.example.net")),
        "{roles:?}"
    );
    shown.push(format!("{roles} {roles:?}"));

    let me = client.whoami().await.unwrap();
    let refused = check_permissions(&me).unwrap_err();
    shown.push(format!("{refused} {refused:?} {me:?}"));

    // The echoes did reach the client (the redirect's was in the query, which is dropped).
    for at in [0, 1, 2, 4] {
        assert!(shown[at].contains(crate::redact::REDACTED), "{}", shown[at]);
    }
    for text in &shown {
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains(&TOKEN.to_uppercase()), "{text}");
        assert!(!text.contains("pRnC3r"), "{text}");
    }
    // The redirect was not followed: five calls, five requests, all to the stub.
    assert_eq!(seen.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn a_lost_connection_and_a_refused_one_are_told_apart() {
    // Nothing listens on a port just freed: the request never left.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = client_of(&format!("http://{address}"));
    let error = client.invite("ann@corp.io", false).await.unwrap_err();
    assert!(matches!(error, CallError::Connect(_)), "{error:?}");
    assert!(error.is_retriable());

    // A server that reads the request and closes without answering: it may have acted.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt as _;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
        }
    });
    let client = client_of(&format!("http://{address}"));
    let error = client.delete("ann@corp.io").await.unwrap_err();
    assert!(error.is_ambiguous(), "{error:?}");
    assert!(!error.to_string().contains(TOKEN));
}

#[tokio::test]
async fn a_user_the_search_misses_is_found_in_the_whole_listing() {
    // A server whose search looks at names only: the email finds nobody.
    let (base, seen) = stub(Arc::new(|request: &Seen| {
        if request.body["search"] == "" {
            ok(json!({"users": [
                {"email": "ann@corp.io", "id": 8, "status": "Pending"},
                {"email": "bob@corp.io", "id": 9, "status": "Active"},
            ]}))
        } else {
            ok(json!({"users": []}))
        }
    }))
    .await;
    let client = client_of(&base);
    let found = client.find_by_email("Ann@corp.io").await.unwrap().unwrap();
    assert_eq!(found.id, 8);
    assert!(
        client
            .find_by_email("nobody@corp.io")
            .await
            .unwrap()
            .is_none()
    );
    let searches: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(searches[0]["search"], "Ann@corp.io");
    assert_eq!(searches[1]["search"], "");
}
