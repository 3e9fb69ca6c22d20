//! The simulators' guard against browsers and other hosts: a web page the operator visits
//! must not be able to drive a simulator on their machine, nor another host its admin surface.
//!
//! Owns three checks. The admin endpoints, which have no authentication, answer loopback
//! peers only. On every request (API and admin), the `Host` header must name this machine by
//! a loopback name or address, or the address the connection came in on: a DNS rebinding
//! page reaches us under its own host name, which this refuses (421). On the admin
//! endpoints, a request a browser made for another site is refused (403): an `Origin` that
//! is not a loopback origin, or `Sec-Fetch-Site: cross-site`; and a POST or PUT must carry
//! JSON, so an HTML form or a "simple" fetch (text/plain) cannot reach the handler. Must
//! never refuse what the tests, benches and demo send: `http://127.0.0.1:PORT` from reqwest,
//! with no Origin.

use std::net::IpAddr;

use axum::extract::{Extension, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::server::ConnCtx;

/// Refuses a request whose `Host` does not name this machine (DNS rebinding).
pub async fn host_only(conn: Option<Extension<ConnCtx>>, request: Request, next: Next) -> Response {
    let local = conn.map(|Extension(conn)| conn.local.ip());
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    match host {
        Some(host) if host_allowed(host, local) => next.run(request).await,
        Some(_) => (
            StatusCode::MISDIRECTED_REQUEST,
            "the simulator answers only requests addressed to it by a loopback name or address \
             (Host: 127.0.0.1:PORT, localhost:PORT, [::1]:PORT) or the address it listens on",
        )
            .into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            "a Host header is required (127.0.0.1:PORT, localhost:PORT or [::1]:PORT)",
        )
            .into_response(),
    }
}

/// Refuses an admin request from another host: the admin surface has no authentication.
pub async fn loopback_only(
    conn: Option<Extension<ConnCtx>>,
    request: Request,
    next: Next,
) -> Response {
    match conn {
        Some(Extension(conn)) if conn.peer.ip().is_loopback() => next.run(request).await,
        _ => (
            StatusCode::FORBIDDEN,
            "admin endpoints answer loopback clients only",
        )
            .into_response(),
    }
}

/// Refuses an admin request made by a browser for another site (CSRF).
pub async fn admin_same_origin(
    conn: Option<Extension<ConnCtx>>,
    request: Request,
    next: Next,
) -> Response {
    let local = conn.map(|Extension(conn)| conn.local.ip());
    match admin_refusal(request.method(), request.headers(), local) {
        Some((status, why)) => (status, why).into_response(),
        None => next.run(request).await,
    }
}

fn admin_refusal(
    method: &Method,
    headers: &HeaderMap,
    local: Option<IpAddr>,
) -> Option<(StatusCode, &'static str)> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let loopback = origin
            .to_str()
            .ok()
            .is_some_and(|o| origin_allowed(o, local));
        if !loopback {
            return Some((
                StatusCode::FORBIDDEN,
                "admin endpoints refuse requests from web pages of other origins",
            ));
        }
    }
    // Sent by browsers even where Origin is not (a GET); any cross-site request is a page's.
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site {
        return Some((
            StatusCode::FORBIDDEN,
            "admin endpoints refuse cross-site requests",
        ));
    }
    if (method == Method::POST || method == Method::PUT) && !json_or_empty(headers) {
        return Some((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "admin requests that change the simulator take Content-Type: application/json",
        ));
    }
    None
}

/// A body-less request (no Content-Type, no length, not chunked) or a JSON one: what a
/// browser cannot send cross-origin without a CORS preflight, which the simulator never grants.
fn json_or_empty(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE) {
        Some(value) => value.to_str().is_ok_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
        }),
        None => {
            let length = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            length.unwrap_or(0) == 0 && !headers.contains_key(header::TRANSFER_ENCODING)
        }
    }
}

/// `Host` (or an origin's host) names this machine: `localhost`, a loopback address, or
/// `local`, the address the connection arrived on (a remote client of `--allow-remote` uses
/// it). Any port: a port forward may change it, and a rebinding page cannot choose the name.
pub fn host_allowed(host: &str, local: Option<IpAddr>) -> bool {
    let name = host_name(host);
    if name.eq_ignore_ascii_case("localhost") || name.eq_ignore_ascii_case("localhost.") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => is_loopback(ip) || local.is_some_and(|local| same_ip(local, ip)),
        Err(_) => false,
    }
}

/// An `Origin` is `scheme://host[:port]`; allowed when it is http(s) on a host as above.
/// `null` (a sandboxed page, a file: URL) is not.
fn origin_allowed(origin: &str, local: Option<IpAddr>) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let web = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    web && !rest.is_empty() && !rest.contains('/') && host_allowed(rest, local)
}

/// The host part of `host[:port]`, `[v6][:port]` (brackets removed) or a bare v6 address.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((inside, after)) if after.is_empty() || valid_port(after) => inside,
            // Malformed: nothing that parses as a name or an address.
            _ => "",
        };
    }
    match host.split_once(':') {
        // More than one colon and no brackets: a bare IPv6 address, or nothing valid.
        Some((_, port)) if port.contains(':') => host,
        Some((name, port)) if valid_port(&format!(":{port}")) => name,
        Some(_) => "",
        None => host,
    }
}

fn valid_port(colon_port: &str) -> bool {
    colon_port
        .strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The connection's local address may be the IPv4-mapped form of the one in `Host`.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_with_or_without_port_are_allowed() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.1.2.3:1",
            "localhost",
            "LOCALHOST:9",
            "[::1]",
            "[::1]:8080",
            "::1",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(host_allowed(host, None), "{host}");
        }
    }

    #[test]
    fn foreign_and_malformed_hosts_are_refused() {
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.5:8080",
            "127.0.0.1:port",
            "[::1]x",
            "",
        ] {
            assert!(!host_allowed(host, None), "{host}");
        }
        let local: IpAddr = "10.0.0.5".parse().unwrap();
        assert!(host_allowed("10.0.0.5:8080", Some(local)));
        assert!(!host_allowed("10.0.0.6:8080", Some(local)));
    }

    #[test]
    fn only_loopback_web_origins_pass() {
        assert!(origin_allowed("http://127.0.0.1:3000", None));
        assert!(origin_allowed("http://localhost", None));
        assert!(!origin_allowed("null", None));
        assert!(!origin_allowed("https://evil.example", None));
        assert!(!origin_allowed("http://127.0.0.1:3000/path", None));
        assert!(!origin_allowed("file://", None));
    }

    #[test]
    fn a_text_plain_post_is_refused_and_a_bodyless_one_passes() {
        let mut headers = HeaderMap::new();
        assert!(admin_refusal(&Method::POST, &headers, None).is_none());
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(
            admin_refusal(&Method::POST, &headers, None).map(|r| r.0),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(admin_refusal(&Method::PUT, &headers, None).is_none());
        headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert_eq!(
            admin_refusal(&Method::GET, &headers, None).map(|r| r.0),
            Some(StatusCode::FORBIDDEN)
        );
    }
}
