//! The guarded HTTP plumbing every target's client is built on.
//!
//! Owns what must hold for any API rostersync calls: the `reqwest` client (timeouts, no
//! redirect ever followed, no proxy for a loopback host, our user agent), bodies read up to
//! [`MAX_BODY`], transport failures split into "never left" ([`CallError::Connect`]) and "may
//! have been processed" ([`CallError::Ambiguous`]), Retry-After, and the scrubbing and capping
//! of every server or library text through the [`Redactor`] that knows the target's secrets.
//!
//! Knows no path, JSON shape or status mapping of any API: that is each client's own, in one
//! place. Must never send a request anywhere but the configured base URL, and never hand out
//! a text that did not go through [`Guarded::clean`].

use std::time::{Duration, SystemTime};

use super::call::CallError;
use crate::redact::Redactor;

/// The most bytes of an answer read. The APIs' answers are a few KiB; a 200 MB answer once
/// took the process to 1.5 GB. A longer 2xx answer is an error, never silently truncated.
pub const MAX_BODY: usize = 1 << 20;

/// The most characters of server-supplied text kept in an error.
pub const MAX_MESSAGE: usize = 300;

/// Whether `url` names this machine: plain http is tolerated there only, and no proxy is used.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses a Retry-After header: delay-seconds or an HTTP date. Bounded to an hour, because a
/// nonsensical header must not stall a nightly job forever.
pub fn parse_retry_after(raw: &str, now: SystemTime) -> Option<Duration> {
    const MAX: Duration = Duration::from_secs(3600);
    let raw = raw.trim();
    let wait = if let Ok(secs) = raw.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(raw).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX))
}

/// The Retry-After of an answer, if it carries a readable one.
pub fn retry_after_of(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// An answer's body as read: at most [`MAX_BODY`] bytes, lossily decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub text: String,
    /// `false` when the answer was longer and the rest was not read.
    pub complete: bool,
}

/// A `reqwest` client bound to one base URL, with the guards above and the [`Redactor`] that
/// knows the target's secrets (and, through [`Guarded::redactor`], any token received later).
pub struct Guarded {
    client: reqwest::Client,
    /// Checked by [`crate::config::check_base_url`], without a trailing slash.
    base: String,
    redactor: Redactor,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded").field("base", &self.base).finish()
    }
}

impl Guarded {
    /// A client for `base_url` (https, or http to a loopback host only). `timeout` bounds a
    /// whole request (connecting alone: at most 10 s); `max_in_flight` sizes the idle pool.
    /// `secrets` are registered with the redactor before anything can fail.
    pub fn new<'a>(
        base_url: &str,
        timeout: Duration,
        max_in_flight: usize,
        secrets: impl IntoIterator<Item = &'a str>,
    ) -> anyhow::Result<Guarded> {
        let redactor = Redactor::new(secrets);
        // The config checked this already; checked again because the builder choices below
        // (proxy or not) depend on it and a client may be built from any value.
        let base = crate::config::check_base_url(base_url)?;
        let url = reqwest::Url::parse(&base)?;
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(max_in_flight.max(1))
            .user_agent(concat!("rostersync/", env!("CARGO_PKG_VERSION")))
            // No API we call redirects; following one re-sent the secret or personal data to
            // wherever the Location pointed. A 3xx is an error, classified by the client.
            .redirect(reqwest::redirect::Policy::none());
        if is_loopback(&url) {
            // Plain http to loopback is allowed only because nothing leaves the machine; a
            // proxy from HTTP_PROXY/ALL_PROXY would carry the secret and token in clear.
            // https keeps the system proxies (HTTPS_PROXY, NO_PROXY): corporate proxies exist.
            builder = builder.no_proxy();
        }
        Ok(Guarded {
            client: builder.build()?,
            base,
            redactor,
        })
    }

    /// The base URL, checked, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `base + path`, kept byte for byte: `path` starts with `/`, and an empty segment in it
    /// (prancer's `api//user/roles`) is not collapsed.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `base + path`; only ever to the configured host.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// The redactor: clients register every token they receive with it.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Text from a server or a library, made safe to keep: scrubbed, then capped.
    pub fn clean(&self, text: &str) -> String {
        self.redactor.scrub_capped(text, MAX_MESSAGE)
    }

    /// The body, read up to [`MAX_BODY`] bytes. The rest is not read: the connection is
    /// dropped with the response.
    pub async fn read_body(&self, mut response: reqwest::Response) -> Result<Body, CallError> {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            let room = MAX_BODY - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                return Ok(Body {
                    text: String::from_utf8_lossy(&body).into_owned(),
                    complete: false,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Body {
            text: String::from_utf8_lossy(&body).into_owned(),
            complete: true,
        })
    }

    /// "the API answered a redirect to <where> (not followed)", naming the target without
    /// its userinfo, query or fragment (they may carry credentials).
    pub fn redirect_message(&self, response: &reqwest::Response) -> String {
        let target = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| response.url().join(v).ok())
            .map_or_else(
                || "an unreadable location".to_owned(),
                |mut url| {
                    let _ = url.set_username("");
                    let _ = url.set_password(None);
                    url.set_query(None);
                    url.set_fragment(None);
                    url.to_string()
                },
            );
        self.clean(&format!(
            "the API answered a redirect to {target} (not followed)"
        ))
    }

    /// Connect failures never reached the server; anything else after sending is ambiguous.
    pub fn transport_error(&self, error: reqwest::Error) -> CallError {
        let connect = error.is_connect();
        let cause = std::error::Error::source(&error)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        // The URL is dropped (it never carries a secret, but it adds nothing) and the rest
        // scrubbed: a library's text may quote what went over the wire.
        let message = self.clean(&format!("{}{cause}", error.without_url()));
        if connect {
            CallError::Connect(message)
        } else {
            CallError::Ambiguous(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_bounds_them() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("999999", now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn loopback_is_this_machine_only() {
        for (raw, expected) in [
            ("http://localhost:8080", true),
            ("http://LOCALHOST", true),
            ("http://127.0.0.1", true),
            ("http://127.9.9.9", true),
            ("http://[::1]:80", true),
            ("https://portal.prancer.io", false),
            ("http://localhost.example.com", false),
            ("http://10.0.0.1", false),
        ] {
            let url = url::Url::parse(raw).unwrap();
            assert_eq!(is_loopback(&url), expected, "{raw}");
        }
    }

    #[test]
    fn urls_keep_empty_segments_and_secrets_are_scrubbed() {
        let http = Guarded::new(
            "http://127.0.0.1:9/prancer-customer1/",
            Duration::from_secs(5),
            4,
            ["tok-123456789"],
        )
        .unwrap();
        assert_eq!(http.base(), "http://127.0.0.1:9/prancer-customer1");
        let request = http
            .request(reqwest::Method::POST, "/api//user/roles")
            .build()
            .unwrap();
        assert_eq!(request.url().path(), "/prancer-customer1/api//user/roles");
        let cleaned = http.clean(&format!("echo tok-123456789 {}", "x".repeat(1000)));
        assert!(!cleaned.contains("tok-123456789"), "{cleaned}");
        assert!(cleaned.chars().count() <= MAX_MESSAGE + 1);
        assert!(Guarded::new("http://example.com", Duration::from_secs(5), 1, []).is_err());
    }
}
