//! A worker's batch: its requests' latencies since the last flush, by series, and each
//! route's slow requests. Consecutive requests to the same series (the common case) append
//! without hashing the key.

use std::collections::HashMap;
use std::sync::Arc;

use crate::actors::metrics_store::{ApiKey, RouteSlow, SlowSample};

/// Samples a worker buffers before it flushes without waiting for the timer.
pub(super) const MAX_BUFFERED: usize = 8_192;

/// A series as the worker batches it: [`ApiKey`] with the interned route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct SeriesId {
    pub(super) method: &'static str,
    pub(super) route: Arc<str>,
    pub(super) status_class: u8,
}

impl SeriesId {
    /// Equal to `other`, comparing the interned route by address first.
    fn same(&self, other: &SeriesId) -> bool {
        self.status_class == other.status_class
            && (Arc::ptr_eq(&self.route, &other.route) || self.route == other.route)
            && self.method == other.method
    }
}

/// A worker's latencies since the last flush, by series, and its slow requests by route.
#[derive(Default)]
pub(super) struct Batch {
    series: Vec<(SeriesId, Vec<u32>)>,
    index: HashMap<SeriesId, usize>,
    last: usize,
    samples: usize,
    /// By method and route (both from bounded sets: the standard methods, the app's
    /// patterns), so this map is bounded by the route table.
    slow: HashMap<(&'static str, Arc<str>), RouteSlow>,
}

impl Batch {
    /// Add a sample; true when the batch is full.
    pub(super) fn add(&mut self, key: SeriesId, micros: u32) -> bool {
        let i = match self.series.get(self.last) {
            Some((k, _)) if k.same(&key) => self.last,
            _ => match self.index.get(&key) {
                Some(&i) => i,
                None => {
                    self.index.insert(key.clone(), self.series.len());
                    self.series.push((key, Vec::new()));
                    self.series.len() - 1
                }
            },
        };
        if let Some((_, v)) = self.series.get_mut(i) {
            v.push(micros);
        }
        self.last = i;
        self.samples += 1;
        self.samples >= MAX_BUFFERED
    }

    /// Add a slow request to its route's summary.
    pub(super) fn add_slow(&mut self, sample: SlowSample) {
        let key = (sample.method, sample.route.clone());
        match self.slow.get_mut(&key) {
            Some(r) => r.add(sample),
            None => {
                self.slow.insert(key, RouteSlow::new(sample));
            }
        }
    }

    /// Whether there is anything to hand over.
    pub(super) fn is_empty(&self) -> bool {
        self.series.is_empty() && self.slow.is_empty()
    }

    /// The samples as the `MetricsStore` takes them, and the slow requests.
    pub(super) fn into_parts(self) -> (HashMap<ApiKey, Vec<u32>>, Vec<RouteSlow>) {
        let samples = self
            .series
            .into_iter()
            .map(|(k, v)| {
                let key = ApiKey {
                    method: k.method,
                    route: k.route,
                    status_class: k.status_class,
                };
                (key, v)
            })
            .collect();
        (samples, self.slow.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(route: &str, status_class: u8) -> SeriesId {
        SeriesId {
            method: "GET",
            route: Arc::from(route),
            status_class,
        }
    }

    fn api_key(route: &str, status_class: u8) -> ApiKey {
        ApiKey {
            method: "GET",
            route: Arc::from(route),
            status_class,
        }
    }

    #[test]
    fn the_batch_groups_samples_by_series_whatever_their_order() {
        let mut b = Batch::default();
        for (i, (route, class)) in [("/a", 2), ("/a", 2), ("/b", 2), ("/a", 5), ("/a", 2)]
            .into_iter()
            .enumerate()
        {
            assert!(!b.add(key(route, class), i as u32));
        }
        let (map, slow) = b.into_parts();
        assert!(slow.is_empty());
        assert_eq!(map.len(), 3);
        assert_eq!(map[&api_key("/a", 2)], vec![0, 1, 4]);
        assert_eq!(map[&api_key("/b", 2)], vec![2]);
        assert_eq!(map[&api_key("/a", 5)], vec![3]);
    }

    #[test]
    fn the_batch_reports_full_at_the_cap() {
        let mut b = Batch::default();
        let full = (0..MAX_BUFFERED).map(|i| b.add(key("/a", 2), i as u32));
        assert_eq!(full.filter(|f| *f).count(), 1);
    }
}
