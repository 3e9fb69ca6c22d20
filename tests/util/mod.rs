//! Shared helpers for the end-to-end tests: a simulator on a free loopback port, a logged-in
//! HTTP client, sample user bodies, and a command builder over the real binary.
#![allow(dead_code)]

use std::collections::HashSet;

use rostersync::ingest::catalog::Catalog;
use rostersync::targets::praesidium::model::{TokenResponse, USER_PATH};
use rostersync::targets::praesidium::sim::{Faults, RunningSim, Sim, SimOptions, start};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "s3cr3t-for-tests-only";

pub fn catalog() -> Catalog {
    rostersync::samples::catalog()
}

pub fn client_uuid(name: &str) -> String {
    catalog().client(name).expect("sample client").uuid.clone()
}

pub fn location_uuid(name: &str, client: &str) -> String {
    let catalog = catalog();
    let client = catalog.client(client).unwrap().uuid.clone();
    catalog.location(name, &client).unwrap().uuid.clone()
}

pub fn content_uuid(sku: &str) -> String {
    catalog()
        .content_item(sku)
        .expect("sample content")
        .uuid
        .clone()
}

/// A simulator on 127.0.0.1:0 whose credential manages `managed` (client names; all when empty).
pub async fn sim_with(faults: Faults, managed: &[&str]) -> RunningSim {
    let catalog = catalog();
    let mut options = SimOptions::single_credential(&catalog, CLIENT_ID, CLIENT_SECRET);
    if !managed.is_empty() {
        options.credentials[0].managed_clients = managed
            .iter()
            .map(|name| catalog.client(name).unwrap().uuid.clone())
            .collect::<HashSet<_>>();
    }
    options.faults = faults;
    options.seed = Some(1);
    let sim = Sim::new(catalog, options).unwrap();
    start(sim, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

pub async fn sim() -> RunningSim {
    sim_with(Faults::default(), &[]).await
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

pub async fn login(base: &str) -> TokenResponse {
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{base}/portal/authenticate/login_api"))
        .json(&json!({
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": ["prae.client.api.user"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

impl Api {
    pub async fn new(running: &RunningSim) -> Api {
        let base = running.base_url();
        let token = login(&base).await.access_token;
        Api {
            http: reqwest::Client::new(),
            base,
            token,
        }
    }

    pub fn url(&self, suffix: &str) -> String {
        format!("{}{USER_PATH}{suffix}", self.base)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        suffix: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(suffix))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn create(&self, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, "", Some(body)).await
    }

    pub async fn put(&self, suffix: &str, body: Option<&Value>) -> (u16, Value) {
        self.send(reqwest::Method::PUT, suffix, body).await
    }

    pub async fn get(&self, uuid: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, &format!("/{uuid}"), None)
            .await
    }

    pub async fn admin(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/admin/{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn set_faults(&self, patch: Value) {
        let response = self
            .http
            .put(format!("{}/admin/faults", self.base))
            .json(&patch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
}

/// A valid user object for the sample catalog's Northwind Camps client.
pub fn user_body(external_id: &str, email: &str) -> Value {
    json!({
        "principal": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": email,
            "client_external_id": external_id,
        },
        "system": {"status": "active", "role": "Learner"},
        "person": {},
        "context": {
            "client": client_uuid("Northwind Camps"),
            "locations": [location_uuid("Lakeside Camp", "Northwind Camps")],
        },
        "attributes": {"position": "counselor", "program_type": "aquatics"},
    })
}

pub fn content_listing(skus: &[&str]) -> Value {
    let catalog = catalog();
    json!({
        "content": skus.iter().map(|sku| {
            let item = catalog.content_item(sku).unwrap();
            json!({"uuid": item.uuid, "type": item.kind.as_api_str()})
        }).collect::<Vec<_>>()
    })
}
