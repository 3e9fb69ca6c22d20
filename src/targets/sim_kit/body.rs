//! Reading a request body with a cap, so that a simulator can answer an oversized or broken
//! body in its own API's error shape (axum's `Bytes` extractor answers in plain text).
//!
//! Owns the cap only: never holds more than the cap in memory, whatever the client sends or
//! claims to send.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Longer than the cap (said so by `Content-Length`, or found while reading).
    #[error("the request body is longer than {0} bytes")]
    TooLarge(usize),
    /// The client's stream broke off or was malformed.
    #[error("the request body could not be read")]
    Unreadable,
}

/// The whole body, at most `limit` bytes.
pub async fn read_bounded(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut stream = body.into_data_stream();
    let mut read = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        if read.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        read.extend_from_slice(&chunk);
    }
    Ok(read.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(parts: Vec<&'static str>) -> Body {
        let stream = futures_util::stream::iter(
            parts
                .into_iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p.as_bytes()))),
        );
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn reads_up_to_the_cap_and_refuses_a_byte_more() {
        let none = HeaderMap::new();
        let body = read_bounded(&none, chunked(vec!["ab", "cd"]), 4).await;
        assert_eq!(body, Ok(Bytes::from_static(b"abcd")));
        let body = read_bounded(&none, chunked(vec!["ab", "cde"]), 4).await;
        assert_eq!(body, Err(BodyError::TooLarge(4)));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_unread() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "5000000000".parse().unwrap());
        let body = read_bounded(&headers, Body::empty(), 10).await;
        assert_eq!(body, Err(BodyError::TooLarge(10)));
    }

    #[tokio::test]
    async fn a_broken_stream_is_unreadable() {
        let stream = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"{")),
            Err(std::io::Error::other("reset")),
        ]);
        let body = read_bounded(&HeaderMap::new(), Body::from_stream(stream), 10).await;
        assert_eq!(body, Err(BodyError::Unreadable));
    }
}
