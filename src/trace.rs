//! Trace identity of a request: from `traceparent` (W3C), else `X-Trace-Id`, else new.
//!
//! Ids are kept as fixed-size hex arrays, not strings: a request without trace headers (the
//! common case) gets its ids without a heap allocation, and the `traceparent` value is written
//! into a stack buffer.
//!
//! The tracer runs the rest of the request inside a task-local scope holding its trace, so
//! anything the request's handler awaits — a database query on a pooled connection, say — can
//! ask [`TraceContext::current`] which request it belongs to, without the request at hand.

use std::cell::Cell;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

/// Header carrying the trace id, as the original.
pub const X_TRACE_ID: HeaderName = HeaderName::from_static("x-trace-id");
/// W3C Trace Context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Length of a `traceparent` value: `00-<32 hex>-<16 hex>-<2 hex>`.
pub const TRACEPARENT_LEN: usize = 55;

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The trace a request belongs to: [`TraceContext::current`] inside the request's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 32],
    span_id: [u8; 16],
    flags: u8,
    /// The caller's `X-Trace-Id`, when it sent a usable one (the header value itself: sent
    /// back without a copy).
    given_id: Option<HeaderValue>,
    /// Queries the request ran so far, and their total time (µs): the query logger counts
    /// them here, the tracer reads them when the request ends.
    queries: Cell<u32>,
    query_micros: Cell<u64>,
}

impl TraceContext {
    /// The trace of the request being served, from its handler or anything it awaits; `None`
    /// outside a traced request (no tracer, an excluded path, or another task).
    pub fn current() -> Option<TraceContext> {
        CURRENT.try_with(TraceContext::clone).ok()
    }

    /// The current trace's W3C trace id (32 hex digits), without cloning the context.
    pub fn current_trace_id() -> Option<[u8; 32]> {
        CURRENT.try_with(|t| t.trace_id).ok()
    }

    /// Count a query of `micros` on the current trace; answers its W3C trace id. The query
    /// logger calls this once per query.
    pub fn record_query(micros: u64) -> Option<[u8; 32]> {
        CURRENT
            .try_with(|t| {
                t.queries.set(t.queries.get().saturating_add(1));
                t.query_micros
                    .set(t.query_micros.get().saturating_add(micros));
                t.trace_id
            })
            .ok()
    }

    /// The queries counted on the current trace so far: how many, and their total µs.
    pub fn current_queries() -> Option<(u32, u64)> {
        CURRENT
            .try_with(|t| (t.queries.get(), t.query_micros.get()))
            .ok()
    }

    /// The W3C trace id, as bytes.
    pub fn trace_id_bytes(&self) -> [u8; 32] {
        self.trace_id
    }

    /// Run `work` with this trace as the current one.
    pub async fn scope<F: std::future::Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// A new root trace: random trace and span ids, sampled flag set.
    pub fn new_root() -> Self {
        let mut trace_id = [0u8; 32];
        write_hex(&mut trace_id[..16], fastrand::u64(1..));
        write_hex(&mut trace_id[16..], fastrand::u64(1..));
        TraceContext {
            trace_id,
            span_id: new_span_id(),
            flags: 1,
            given_id: None,
            queries: Cell::new(0),
            query_micros: Cell::new(0),
        }
    }

    /// Resolve the trace from request headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let parent = headers.get(&TRACEPARENT);
        let given = headers.get(&X_TRACE_ID);
        if parent.is_none() && given.is_none() {
            return Self::new_root();
        }
        let parent = parent
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent);
        // Header values come trimmed from the parser; a usable one is sent back as it came.
        let given = given.filter(|v| v.to_str().is_ok_and(valid_id));
        let given_text = given.and_then(|v| v.to_str().ok());
        let mut trace = match (parent, given) {
            (Some((trace_id, flags)), _) => TraceContext {
                trace_id,
                span_id: new_span_id(),
                flags,
                given_id: None,
                queries: Cell::new(0),
                query_micros: Cell::new(0),
            },
            (None, Some(_)) => match given_text.and_then(hex_array::<32>) {
                Some(trace_id) => TraceContext {
                    trace_id: trace_id.map(|b| b.to_ascii_lowercase()),
                    span_id: new_span_id(),
                    flags: 1,
                    given_id: None,
                    queries: Cell::new(0),
                    query_micros: Cell::new(0),
                },
                None => Self::new_root(),
            },
            (None, None) => Self::new_root(),
        };
        if let Some(v) = given.filter(|v| v.as_bytes() != trace.trace_id.as_slice()) {
            trace.given_id = Some(v.clone());
        }
        trace
    }

    /// What `X-Trace-Id` carries: the caller's id when it sent a usable one, else the trace id.
    pub fn id(&self) -> &str {
        self.given_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| self.trace_id())
    }

    /// [`TraceContext::id`] as bytes, without a UTF-8 check (the response header is built
    /// from it on every request).
    pub fn id_bytes(&self) -> &[u8] {
        match &self.given_id {
            Some(id) => id.as_bytes(),
            None => &self.trace_id,
        }
    }

    /// The caller's `X-Trace-Id` header value, when it is the id sent back.
    pub fn given_header(&self) -> Option<&HeaderValue> {
        self.given_id.as_ref()
    }

    /// 32 lowercase hex digits (W3C trace-id).
    pub fn trace_id(&self) -> &str {
        std::str::from_utf8(&self.trace_id).unwrap_or_default()
    }

    /// This server's span, 16 lowercase hex digits.
    pub fn span_id(&self) -> &str {
        std::str::from_utf8(&self.span_id).unwrap_or_default()
    }

    /// W3C trace flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The `traceparent` value naming this server's span, as bytes.
    pub fn traceparent_bytes(&self) -> [u8; TRACEPARENT_LEN] {
        let mut buf = [0u8; TRACEPARENT_LEN];
        buf[..3].copy_from_slice(b"00-");
        buf[3..35].copy_from_slice(&self.trace_id);
        buf[35] = b'-';
        buf[36..52].copy_from_slice(&self.span_id);
        buf[52] = b'-';
        write_hex(&mut buf[53..], u64::from(self.flags));
        buf
    }

    /// The `traceparent` value naming this server's span.
    pub fn traceparent(&self) -> String {
        String::from_utf8_lossy(&self.traceparent_bytes()).into_owned()
    }
}

fn new_span_id() -> [u8; 16] {
    let mut span = [0u8; 16];
    write_hex(&mut span, fastrand::u64(1..));
    span
}

/// Each byte as its two lowercase hex digits: one lookup per byte on the request path.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    table
};

/// The last `out.len() / 2` bytes of `value` as lowercase hex, most significant first.
fn write_hex(out: &mut [u8], value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.len().saturating_sub(out.len() / 2);
    for (pair, &b) in out.chunks_exact_mut(2).zip(&bytes[skip..]) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
}

/// `s` as `N` hex digits that are not all zero.
fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes: [u8; N] = s.as_bytes().try_into().ok()?;
    (bytes.iter().all(u8::is_ascii_hexdigit) && !bytes.iter().all(|&b| b == b'0')).then_some(bytes)
}

/// `version-traceid-parentid-flags`; returns the trace id and flags when well-formed.
fn parse_traceparent(value: &str) -> Option<([u8; 32], u8)> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let version_ok =
        version.len() == 2 && version.bytes().all(|b| b.is_ascii_hexdigit()) && version != "ff";
    // Version 00 has exactly four fields; later versions may append more.
    if !version_ok || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let lower = |s: &str| s.bytes().all(|b| !b.is_ascii_uppercase());
    if !(lower(trace) && lower(parent)) {
        return None;
    }
    let trace = hex_array::<32>(trace)?;
    hex_array::<16>(parent)?;
    let flags = u8::from_str_radix(flags, 16)
        .ok()
        .filter(|_| flags.len() == 2)?;
    Some((trace, flags))
}

/// A caller-supplied id we are willing to echo: 1–128 visible, header-safe characters.
fn valid_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn is_lower_hex(s: &str, len: usize) -> bool {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    #[test]
    fn a_new_root_has_well_formed_non_zero_ids() {
        for _ in 0..1_000 {
            let t = TraceContext::new_root();
            assert!(is_lower_hex(t.trace_id(), 32), "{t:?}");
            assert!(is_lower_hex(t.span_id(), 16), "{t:?}");
            assert_ne!(&t.trace_id()[..16], "0000000000000000");
            assert_ne!(&t.trace_id()[16..], "0000000000000000");
            assert_ne!(t.span_id(), "0000000000000000");
            assert_eq!(t.id(), t.trace_id());
            assert_eq!(t.id_bytes(), t.id().as_bytes());
            assert_eq!(
                t.traceparent(),
                format!("00-{}-{}-01", t.trace_id(), t.span_id())
            );
        }
    }

    #[test]
    fn a_valid_traceparent_sets_the_trace_and_keeps_its_flags() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let t = TraceContext::from_headers(&headers(&[(TRACEPARENT, tp)]));
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.id(), t.trace_id());
        assert_eq!(t.flags(), 0);
        assert_ne!(t.span_id(), "00f067aa0ba902b7");
        assert!(t
            .traceparent()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(t.traceparent().ends_with("-00"));
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "garbage",
        ] {
            let t = TraceContext::from_headers(&headers(&[(TRACEPARENT, bad)]));
            assert_ne!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
            assert!(is_lower_hex(t.trace_id(), 32), "{bad}");
        }
    }

    #[actix_web::test]
    async fn the_current_trace_is_the_scope_s_in_its_task_and_none_outside() {
        assert_eq!(TraceContext::current(), None);
        let t = TraceContext::new_root();
        let seen = t
            .clone()
            .scope(async {
                actix_web::rt::task::yield_now().await;
                TraceContext::current()
            })
            .await;
        assert_eq!(seen, Some(t));
        assert_eq!(TraceContext::current(), None);
    }

    #[test]
    fn x_trace_id_is_echoed_and_unsafe_values_are_replaced() {
        let t = TraceContext::from_headers(&headers(&[(X_TRACE_ID, "req-42")]));
        assert_eq!(t.id(), "req-42");
        assert_eq!(t.id_bytes(), b"req-42");
        assert!(is_lower_hex(t.trace_id(), 32));
        let t = TraceContext::from_headers(&headers(&[(X_TRACE_ID, "a b<script>")]));
        assert_eq!(t.id(), t.trace_id());
        // A 32-hex X-Trace-Id becomes the W3C trace id as well.
        let t = TraceContext::from_headers(&headers(&[(
            X_TRACE_ID,
            "4BF92F3577B34DA6A3CE929D0E0E4736",
        )]));
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.id(), "4BF92F3577B34DA6A3CE929D0E0E4736");
    }
}
