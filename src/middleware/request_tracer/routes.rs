//! Route matching for the tracer: which route pattern a request matched, without running the
//! router again and without allocating per request.
//!
//! The router runs once, inside the app, and leaves the matched segments in the request's
//! `match_info` (`/users/7` matched `/users/{id}`: segment `id` = `7`). When the request
//! ends, its *shape* is the path with each matched segment replaced by `{name}`
//! (`/users/{id}`), hashed in place; a per-worker table maps shapes to their interned pattern.
//! Only on the first request of a shape is actix asked for the pattern (`match_pattern`,
//! which walks the resource tree by the ids the router recorded). A request that matched no
//! route is `__unmatched__`; nothing of its path is kept.
//!
//! A path that is its own pattern (a static route, `/health`) is also remembered by path, so
//! the in-flight table can name its route from the start. Only such paths are ever inserted,
//! so both tables are bounded by the app's route table, whatever the traffic.

use std::hash::Hasher;
use std::sync::Arc;

use actix_web::HttpRequest;

use crate::domain::metric::UNMATCHED_ROUTE;

/// Cap on each per-worker table. Only route patterns (and paths equal to one) are ever
/// inserted, so a real route table never gets near it; it only bounds a pathological one.
const MAX_INTERNED: usize = 4_096;

/// Keyed with the Fx hash (`rustc-hash`), several times cheaper than SipHash on a short path.
/// It is not collision-resistant, so a hit is confirmed against the stored shape.
type ByPath = rustc_hash::FxHashMap<Box<str>, Arc<str>>;
type ByShape = rustc_hash::FxHashMap<u64, (Box<str>, Arc<str>)>;

/// A worker's interned route patterns.
pub(super) struct Routes {
    /// Paths that are their own route pattern (static routes), to their pattern.
    by_path: ByPath,
    /// Shape hash → (shape, pattern).
    by_shape: ByShape,
    unmatched: Arc<str>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            by_path: ByPath::default(),
            by_shape: ByShape::default(),
            unmatched: Arc::from(UNMATCHED_ROUTE),
        }
    }
}

/// Most matched segments a shape is built from on the stack; a route with more asks actix.
const MAX_SEGMENTS: usize = 16;

/// Feed the pieces of `req`'s shape to `f`: the path between matched segments, and `{name}`
/// for each. No allocation: the segments' positions go into a stack array. False (nothing
/// fed) when the route has more than [`MAX_SEGMENTS`] segments.
fn visit_shape<'a>(req: &'a HttpRequest, mut f: impl FnMut(&'a str)) -> bool {
    let info = req.match_info();
    let path = info.as_str();
    let base = path.as_ptr() as usize;
    let mut segments: [(usize, usize, &str); MAX_SEGMENTS] = [(0, 0, ""); MAX_SEGMENTS];
    let mut n = 0;
    for (name, value) in info.iter() {
        // Segments are slices of the path; static ones, set by a scope, are not: skipped.
        let start = (value.as_ptr() as usize).wrapping_sub(base);
        if value.is_empty() || start > path.len() || start + value.len() > path.len() {
            continue;
        }
        if n == MAX_SEGMENTS {
            return false;
        }
        // Insertion in path order (they come in order already, scope before resource).
        let mut i = n;
        while i > 0 && segments[i - 1].0 > start {
            segments[i] = segments[i - 1];
            i -= 1;
        }
        segments[i] = (start, start + value.len(), name);
        n += 1;
    }
    let mut at = 0usize;
    for &(start, end, name) in &segments[..n] {
        if start < at {
            continue;
        }
        f(&path[at..start]);
        f("{");
        f(name);
        f("}");
        at = end;
    }
    f(&path[at..]);
    true
}

impl Routes {
    /// The label of a request that reached no route.
    pub(super) fn unmatched(&self) -> Arc<str> {
        self.unmatched.clone()
    }

    /// The route of `path` when it is a static route seen before (before routing).
    pub(super) fn known_static(&self, path: &str) -> Option<Arc<str>> {
        self.by_path.get(path).cloned()
    }

    /// The route pattern `req` matched (after routing), interned.
    pub(super) fn resolve(&mut self, req: &HttpRequest) -> Arc<str> {
        let path = req.path();
        if req.match_info().segment_count() == 0 {
            if let Some(route) = self.by_path.get(path) {
                return route.clone();
            }
        }
        let mut hasher = rustc_hash::FxHasher::default();
        let mut len = 0usize;
        let shaped = visit_shape(req, |piece| {
            hasher.write(piece.as_bytes());
            len += piece.len();
        });
        hasher.write_usize(len);
        let hash = hasher.finish();
        if shaped {
            if let Some((shape, route)) = self.by_shape.get(&hash) {
                if same_shape(shape, req) {
                    return route.clone();
                }
            }
        }
        // First of its shape on this worker (or a hash collision): ask actix.
        let Some(pattern) = req.match_pattern() else {
            return self.unmatched.clone();
        };
        let route: Arc<str> = Arc::from(pattern.as_str());
        // Remembered by shape only when the router matched segments: a path without any that
        // is not its own pattern was answered before routing (by a middleware), and keeping
        // its shape would keep its raw path.
        let routed = req.match_info().segment_count() > 0;
        if shaped
            && routed
            && self.by_shape.len() < MAX_INTERNED
            && !self.by_shape.contains_key(&hash)
        {
            let mut shape = String::with_capacity(len);
            visit_shape(req, |piece| shape.push_str(piece));
            self.by_shape
                .insert(hash, (shape.into_boxed_str(), route.clone()));
        }
        if pattern == path && self.by_path.len() < MAX_INTERNED {
            self.by_path.insert(pattern.into_boxed_str(), route.clone());
        }
        route
    }

    #[cfg(test)]
    pub(super) fn cached_paths(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.by_path.keys().map(|k| &**k).collect();
        out.sort_unstable();
        out
    }

    #[cfg(test)]
    pub(super) fn shapes(&self) -> usize {
        self.by_shape.len()
    }
}

/// Whether `req`'s shape is `shape`, compared piece by piece without building it.
fn same_shape(shape: &str, req: &HttpRequest) -> bool {
    let mut rest = Some(shape);
    visit_shape(req, |piece| {
        rest = rest.and_then(|r| r.strip_prefix(piece));
    }) && rest == Some("")
}
