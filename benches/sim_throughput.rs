//! How many requests per second the simulator serves with faults off (issue 2).
//!
//! The simulator must never be the bottleneck of rostersync's own benchmarks. This starts it
//! in-process on loopback and drives it over real HTTP with keep-alive connections from a
//! second runtime in the same process, so client and server share this machine's cores: the
//! figures are a floor for the simulator alone. Each phase runs for a fixed time.
//!
//! Run: `cargo bench --bench sim_throughput` (optional env: BENCH_SECS, BENCH_CONCURRENCY).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rostersync::targets::praesidium::sim::{Sim, SimOptions, start};
use serde_json::{Value, json};

const ID: &str = "bench";
const SECRET: &str = "bench-secret";

fn main() {
    let secs = common::env_or("BENCH_SECS", 4);
    let concurrency = common::env_or("BENCH_CONCURRENCY", 32);
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let catalog = rostersync::samples::catalog();
    let client_uuid = catalog.clients[0].uuid.clone();
    let location = catalog.locations[0].uuid.clone();
    let mut options = SimOptions::single_credential(&catalog, ID, SECRET);
    options.log_capacity = 100_000;
    let sim = Sim::new(catalog, options).unwrap();
    let running = server
        .block_on(start(sim.clone(), "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let base = running.base_url();

    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    load.block_on(async move {
        let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
        let token: Value = http
            .post(format!("{base}/portal/authenticate/login_api"))
            .json(&json!({"grant_type": "client_credentials", "client_id": ID, "client_secret": SECRET,
                          "scope": ["prae.client.api.user"]}))
            .send().await.unwrap().json().await.unwrap();
        let token = token["access_token"].as_str().unwrap().to_owned();
        let user = move |n: u64| json!({
            "principal": {"first_name": "Bench", "last_name": format!("User{n}"),
                          "email": format!("bench{n}@example.com"), "client_external_id": format!("B{n}")},
            "system": {"status": "active", "role": "Learner"},
            "person": {},
            "context": {"client": client_uuid, "locations": [location]},
            "attributes": {"position": "staff", "program_type": "day"}
        });
        let created: Value = http.post(format!("{base}/portal/lms_api/v2/user")).bearer_auth(&token)
            .json(&user(0)).send().await.unwrap().json().await.unwrap();
        let uuid = created["uuid"].as_str().unwrap().to_owned();

        println!("simulator throughput, {concurrency} concurrent keep-alive clients, {secs} s a phase, faults off");
        for phase in ["GET user", "POST create", "PUT update"] {
            let counter = Arc::new(AtomicU64::new(1));
            let errors = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + Duration::from_secs(secs);
            let started = Instant::now();
            let mut workers = Vec::new();
            for _ in 0..concurrency {
                let (http, base, token, uuid, counter, errors) =
                    (http.clone(), base.clone(), token.clone(), uuid.clone(), counter.clone(), errors.clone());
                let user = user.clone();
                workers.push(tokio::spawn(async move {
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let request = match phase {
                            "GET user" => http.get(format!("{base}/portal/lms_api/v2/user/{uuid}")),
                            "POST create" => http.post(format!("{base}/portal/lms_api/v2/user")).json(&user(n)),
                            _ => {
                                let mut body = user(0);
                                body["attributes"]["position"] = json!(format!("p{n}"));
                                http.put(format!("{base}/portal/lms_api/v2/user/{uuid}")).json(&body)
                            }
                        };
                        match request.bearer_auth(&token).send().await {
                            Ok(r) if r.status().is_success() => { let _ = r.bytes().await; }
                            _ => { errors.fetch_add(1, Ordering::Relaxed); }
                        }
                        done += 1;
                    }
                    done
                }));
            }
            let mut total = 0;
            for worker in workers {
                total += worker.await.unwrap();
            }
            let elapsed = started.elapsed().as_secs_f64();
            println!(
                "  {phase:<12} {total:>8} requests in {elapsed:.2} s = {:>8.0} req/s ({} errors)",
                total as f64 / elapsed,
                errors.load(Ordering::Relaxed)
            );
        }
    });
    println!(
        "  users held by the simulator at the end: {}",
        sim.user_count()
    );
}
