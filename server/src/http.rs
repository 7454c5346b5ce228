//! HTTP plumbing: the accept loop, bodies, JSON answers and errors.

use crate::Shared;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

pub type Body = BoxBody<Bytes, Infallible>;

pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(crate::routes::handle(shared, request).await) }
            });
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    json_bytes(status, body)
}

/// A JSON body already rendered.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `{"error": {"code", "message"}}` with `status`.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Body> {
    json(status, &serde_json::json!({"error": {"code": code, "message": message.into()}}))
}

/// Reads a whole body, at most `limit` bytes (413 beyond).
pub async fn read_body(request: Request<Incoming>, limit: usize) -> Result<Bytes, Response<Body>> {
    let too_large =
        || error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body exceeds {limit} bytes"));
    if let Some(len) = request.headers().get(hyper::header::CONTENT_LENGTH) {
        if len.to_str().ok().and_then(|l| l.parse::<usize>().ok()).is_some_and(|l| l > limit) {
            return Err(too_large());
        }
    }
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, "bad_body", format!("cannot read the body: {e}"))),
    }
}

/// Query parameters, percent-decoded.
pub fn query(request: &Request<Incoming>) -> Vec<(String, String)> {
    request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true).into_owned(), percent_decode(v, true).into_owned())
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as a space in query strings); `s` itself
/// when it has none, as nearly every path does.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Cow<'_, str> {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || (plus_is_space && b == b'+')) {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit() => {
                out.push(hex_value(bytes[i + 1]) << 4 | hex_value(bytes[i + 2]));
                i += 3;
                continue;
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The value of an ASCII hex digit.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => (digit | 0x20) - b'a' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;
    use std::borrow::Cow;

    #[test]
    fn percent_escapes_are_decoded_and_plain_text_is_borrowed() {
        assert!(matches!(percent_decode("u0000022", false), Cow::Borrowed("u0000022")));
        assert!(matches!(percent_decode("a+b", false), Cow::Borrowed("a+b")), "`+` is itself in a path");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a%20b%2F%E7%94%A8", false), "a b/用");
        assert_eq!(percent_decode("100%", false), "100%", "an escape cut short is kept");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4", "so is one that is not hex");
        assert_eq!(percent_decode("%+5%-1", false), "%+5%-1", "a sign is no hex digit");
        assert_eq!(percent_decode("%4a%4A%7e", false), "JJ~", "either case");
        assert_eq!(percent_decode("%FF", false), "\u{fffd}", "bytes that are not UTF-8 are replaced");
    }
}
