//! Trace identity of a request: from `traceparent` (W3C), else `X-Trace-Id`, else new.

use actix_web::http::header::HeaderMap;

/// Header carrying the trace id, as the original.
pub const X_TRACE_ID: &str = "x-trace-id";
/// W3C Trace Context header.
pub const TRACEPARENT: &str = "traceparent";

/// The trace a request belongs to. Handlers can read it from the request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// What `X-Trace-Id` carries: the caller's id when it sent a usable one, else `trace_id`.
    pub id: String,
    /// 32 lowercase hex digits (W3C trace-id).
    pub trace_id: String,
    /// This server's span, 16 lowercase hex digits.
    pub span_id: String,
    /// W3C trace flags.
    pub flags: u8,
}

impl TraceContext {
    /// Resolve the trace from request headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let parent = get(TRACEPARENT).and_then(parse_traceparent);
        let given = get(X_TRACE_ID).map(str::trim).filter(|v| valid_id(v));
        let (trace_id, flags) = match (parent, given) {
            (Some((trace_id, flags)), _) => (trace_id, flags),
            (None, Some(id)) if is_hex(id, 32) && !is_zero(id) => (id.to_ascii_lowercase(), 1),
            _ => (random_hex(2), 1),
        };
        TraceContext {
            id: given.map(str::to_owned).unwrap_or_else(|| trace_id.clone()),
            trace_id,
            span_id: random_hex(1),
            flags,
        }
    }

    /// The `traceparent` value naming this server's span.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, self.flags)
    }
}

/// `version-traceid-parentid-flags`; returns the trace id and flags when well-formed.
fn parse_traceparent(value: &str) -> Option<(String, u8)> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let version_ok = is_hex(version, 2) && version != "ff";
    // Version 00 has exactly four fields; later versions may append more.
    if !version_ok || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let lower = |s: &str| s.bytes().all(|b| !b.is_ascii_uppercase());
    if !(is_hex(trace, 32) && lower(trace) && !is_zero(trace)) {
        return None;
    }
    if !(is_hex(parent, 16) && lower(parent) && !is_zero(parent) && is_hex(flags, 2)) {
        return None;
    }
    Some((trace.to_owned(), u8::from_str_radix(flags, 16).ok()?))
}

/// A caller-supplied id we are willing to echo: 1–128 visible, header-safe characters.
fn valid_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_zero(s: &str) -> bool {
    s.bytes().all(|b| b == b'0')
}

/// `words` × 64 random bits as lowercase hex, never all zero.
fn random_hex(words: usize) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(words * 16);
    for _ in 0..words {
        let _ = write!(out, "{:016x}", fastrand::u64(1..));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_valid_traceparent_sets_the_trace_and_keeps_its_flags() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let t = TraceContext::from_headers(&headers(&[("traceparent", tp)]));
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.id, t.trace_id);
        assert_eq!(t.flags, 0);
        assert_ne!(t.span_id, "00f067aa0ba902b7");
        assert!(t
            .traceparent()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
        ] {
            let t = TraceContext::from_headers(&headers(&[("traceparent", bad)]));
            assert_ne!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
            assert_eq!(t.trace_id.len(), 32);
        }
    }

    #[test]
    fn x_trace_id_is_echoed_and_unsafe_values_are_replaced() {
        let t = TraceContext::from_headers(&headers(&[("x-trace-id", "req-42")]));
        assert_eq!(t.id, "req-42");
        assert_eq!(t.trace_id.len(), 32);
        let t = TraceContext::from_headers(&headers(&[("x-trace-id", "a b<script>")]));
        assert_eq!(t.id, t.trace_id);
    }
}
