//! The metrics store as `/metrics` serves it: route patterns, percentiles, the series cap.

use selfheal::actors::metrics_store::{Gauge, QueryMetrics, RecordGauges};
use selfheal::domain::metric::{SeriesKey, Unit, Window};
use serde_json::Value;

use crate::helpers::{encode, eventually, spawn_app, spawn_host_app, Reply, DISTINCT_ROUTES};

fn list(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

#[actix_web::test]
async fn requests_are_measured_by_route_pattern_never_by_raw_path() {
    let app = spawn_host_app(&[]).await;
    for path in ["/users/1", "/users/2"] {
        assert_eq!(app.get(path, &[]).await.status, 200, "{path}");
    }
    assert_eq!(app.get("/no/such/path/123", &[]).await.status, 404);

    let users = format!(
        "/api/v1/system/metrics?route={}&window=1m",
        encode("/users/{id}")
    );
    // Series and route statistics are read one after the other: wait until both saw a flush.
    let both_counted = |r: &Reply| {
        let count = |field| list(&r.data()[field]).first().map(|s| s["count"].clone());
        count("series") == Some(2.into()) && count("routes") == Some(2.into())
    };
    let reply = eventually(|| app.admin_get(&users), both_counted).await;
    let data = reply.data();
    let series = list(&data["series"]);
    assert_eq!(series.len(), 1, "{}", reply.text);
    assert_eq!(series[0]["name"], "api_response_time");
    assert_eq!(series[0]["tags"]["route"], "/users/{id}");
    assert_eq!(series[0]["tags"]["method"], "GET");
    assert_eq!(series[0]["tags"]["status_class"], "2xx");
    assert_eq!(series[0]["count"], 2);
    let routes = list(&data["routes"]);
    assert_eq!(routes.len(), 1, "{}", reply.text);
    assert_eq!(routes[0]["route"], "/users/{id}");
    assert_eq!(routes[0]["count"], 2);

    let all_routes = || async {
        let reply = app
            .admin_get("/api/v1/system/metrics?name=api_response_time&window=1m")
            .await;
        list(&reply.data()["series"])
            .iter()
            .map(|s| s["tags"]["route"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    let routes = eventually(all_routes, |r| r.iter().any(|r| r == "__unmatched__")).await;
    assert!(routes.iter().any(|r| r == "__unmatched__"), "{routes:?}");
    for raw in ["/users/1", "/users/2", "/no/such/path/123"] {
        assert!(
            !routes.iter().any(|r| r == raw),
            "raw path {raw} in {routes:?}"
        );
    }
}

#[actix_web::test]
async fn percentiles_of_a_known_distribution_are_within_one_percent() {
    let app = spawn_app(&[]).await;
    let key = SeriesKey::new(
        "test_latency",
        vec![("route".to_owned(), "/known".to_owned())],
    );
    let gauges = (1..=1000)
        .map(|ms| Gauge {
            key: key.clone(),
            unit: Unit::Ms,
            value: f64::from(ms),
        })
        .collect();
    let metrics = &app.selfheal().metrics;
    metrics.send(RecordGauges(gauges)).await.expect("recorded");
    let stats = metrics
        .send(QueryMetrics {
            window: Window::M1,
            name: Some("test_latency".to_owned()),
            route: None,
        })
        .await
        .expect("queried")
        .series;
    assert_eq!(stats.len(), 1, "{stats:?}");
    let s = &stats[0];
    assert_eq!((s.count, s.min, s.max), (1000, 1.0, 1000.0));
    for (got, want) in [(s.p50, 500.0), (s.p95, 950.0), (s.p99, 990.0)] {
        assert!((got - want).abs() / want <= 0.01, "{got} vs {want}");
    }

    // `/metrics` serves the same figures.
    let reply = app
        .admin_get("/api/v1/system/metrics?name=test_latency&window=1m")
        .await;
    let series = list(&reply.data()["series"]);
    assert_eq!(series.len(), 1, "{}", reply.text);
    assert_eq!(series[0]["unit"], "ms");
    assert_eq!(series[0]["count"], 1000);
    for (field, want) in [("p50", 500.0), ("p95", 950.0), ("p99", 990.0)] {
        let got = series[0][field].as_f64().expect("a number");
        assert!(
            (got - want).abs() / want <= 0.01,
            "{field}: {got} vs {want}"
        );
    }
}

#[actix_web::test]
async fn series_beyond_the_cap_are_counted_as_rejected_not_stored() {
    // No Monitor: its gauges would fill the cap on their own.
    let app = spawn_host_app(&[
        ("METRICS_MAX_SERIES", "3"),
        ("MONITOR_AGENT_ENABLED", "false"),
    ])
    .await;
    for i in 0..DISTINCT_ROUTES {
        assert_eq!(app.get(&format!("/distinct/{i}"), &[]).await.status, 200);
    }
    let store = || async { app.admin_get("/api/v1/system/metrics").await.data()["store"].clone() };
    // At most 3 of the 6 routes fit: the other 3 samples, at least, are rejected.
    let rejected_enough =
        |s: &Value| s["rejected_samples"].as_u64() >= Some(DISTINCT_ROUTES as u64 - 3);
    let stats = eventually(store, rejected_enough).await;
    assert!(rejected_enough(&stats), "{stats}");
    assert_eq!(stats["max_series"], 3, "{stats}");
    assert_eq!(stats["series"], 3, "{stats}");
}
