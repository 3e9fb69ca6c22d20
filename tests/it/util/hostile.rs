//! Hostile servers for the end-to-end tests: an axum router the test writes, served on a free
//! loopback port, with every request it received recorded (method, path, headers, body); and
//! a scan of everything a run wrote and printed for the secret and the tokens.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};

/// One request as the hostile server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    /// Everything received, as one text to search.
    pub fn text(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!(
            "{} {}\n{}\n\n{}",
            self.method,
            self.path,
            headers.join("\n"),
            self.body
        )
    }
}

/// A test's own server on 127.0.0.1; stops when dropped.
pub struct Hostile {
    pub addr: std::net::SocketAddr,
    pub log: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Hostile {
    /// Serves `router` on a free loopback port.
    pub async fn serve(router: axum::Router) -> Hostile {
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let recorder = log.clone();
        let app = router.layer(middleware::from_fn(move |request: Request, next: Next| {
            let log = recorder.clone();
            async move {
                let (parts, body) = request.into_parts();
                let bytes = axum::body::to_bytes(body, 64 << 20)
                    .await
                    .unwrap_or_default();
                log.lock().unwrap().push(Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.to_string(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                        .collect(),
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                });
                next.run(Request::from_parts(parts, Body::from(bytes)))
                    .await
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hostile { addr, log, task }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Panics naming the file if any of `secrets` (the client secret, tokens a server issued,
/// ...) is in any file under `dirs` (the ledger and its -wal and -shm, the reports) or in
/// any of `outputs` (a run's stdout and stderr).
pub fn assert_nothing_leaked(dirs: &[&std::path::Path], outputs: &[&str], secrets: &[&str]) {
    let mut texts: Vec<(String, Vec<u8>)> = outputs
        .iter()
        .enumerate()
        .map(|(i, o)| (format!("output #{i}"), o.as_bytes().to_vec()))
        .collect();
    for dir in dirs {
        for file in walk(dir) {
            // A file may vanish between the listing and the read (the -shm of a closed ledger).
            if let Ok(bytes) = std::fs::read(&file) {
                texts.push((file.display().to_string(), bytes));
            }
        }
    }
    for (name, bytes) in &texts {
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret:?} leaked into {name}"
            );
        }
    }
}
