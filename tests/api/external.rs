//! `ExternalProbe` against endpoints served by the test itself: one that answers 200, one
//! that answers 500, one that redirects, one far slower than the timeout, and a closed port.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};

use selfheal::agents::external::{ExternalProbe, ExternalResult};
use selfheal::config::ExternalCheck;

use crate::helpers::breakers;

/// The probe's timeout in these tests.
const TIMEOUT: Duration = Duration::from_millis(400);
/// How long the slow endpoint takes: far beyond [`TIMEOUT`].
const SLOW: Duration = Duration::from_secs(5);

/// Serve `/ok` (200), `/fail` (500), `/moved` (302 to `/ok`) and `/slow` (200 after
/// [`SLOW`]) on a free port of this test's system; returns `http://127.0.0.1:<port>`.
fn spawn_endpoints() -> String {
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/ok",
                web::get().to(|| async { HttpResponse::Ok().body("fine") }),
            )
            .route(
                "/fail",
                web::get().to(|| async { HttpResponse::InternalServerError().finish() }),
            )
            .route(
                "/moved",
                web::get().to(|| async {
                    HttpResponse::Found()
                        .insert_header(("location", "/ok"))
                        .finish()
                }),
            )
            .route(
                "/slow",
                web::get().to(|| async {
                    actix_web::rt::time::sleep(SLOW).await;
                    HttpResponse::Ok().finish()
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .expect("the endpoints bind");
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    format!("http://127.0.0.1:{port}")
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn check(name: &str, url: String) -> ExternalCheck {
    ExternalCheck {
        name: name.to_owned(),
        url,
    }
}

/// Probe one check with a fresh [`ExternalProbe`] of [`TIMEOUT`].
async fn probe_one(url: String) -> ExternalResult {
    let probe = ExternalProbe::new(TIMEOUT, breakers());
    let mut results = probe.probe(&[check("dep", url)]).await;
    assert_eq!(results.len(), 1);
    results.remove(0)
}

#[actix_web::test]
async fn a_2xx_answer_is_up() {
    let base = spawn_endpoints();
    let r = probe_one(format!("{base}/ok")).await;
    assert!(r.up, "{r:?}");
    assert_eq!(r.status, Some(200));
    assert_eq!(r.error, None);
    assert_eq!(
        (r.name.as_str(), r.url.as_str()),
        ("dep", format!("{base}/ok").as_str())
    );
    assert!(r.elapsed_ms < TIMEOUT.as_millis() as f64, "{r:?}");
}

#[actix_web::test]
async fn a_5xx_answer_is_down_with_its_status() {
    let base = spawn_endpoints();
    let r = probe_one(format!("{base}/fail")).await;
    assert!(!r.up, "{r:?}");
    assert_eq!(r.status, Some(500));
    let error = r.error.unwrap_or_default();
    assert!(error.contains("500"), "{error}");
}

#[actix_web::test]
async fn a_redirect_is_not_followed_and_counts_as_down() {
    let base = spawn_endpoints();
    let r = probe_one(format!("{base}/moved")).await;
    assert!(!r.up, "{r:?}");
    assert_eq!(r.status, Some(302));
}

#[actix_web::test]
async fn a_closed_port_is_down_with_the_connection_error() {
    let r = probe_one(format!("http://127.0.0.1:{}/", closed_port())).await;
    assert!(!r.up, "{r:?}");
    assert_eq!(r.status, None);
    let error = r.error.unwrap_or_default();
    assert!(
        error.contains("connect") && error.contains("refused"),
        "{error}"
    );
}

#[actix_web::test]
async fn a_slow_endpoint_is_down_once_the_timeout_passes() {
    let base = spawn_endpoints();
    let started = Instant::now();
    let r = probe_one(format!("{base}/slow")).await;
    let took = started.elapsed();
    assert!(!r.up, "{r:?}");
    assert_eq!(r.status, None);
    assert_eq!(
        r.error.as_deref(),
        Some(format!("no answer within {} ms", TIMEOUT.as_millis()).as_str())
    );
    let timeout_ms = TIMEOUT.as_millis() as f64;
    assert!(
        r.elapsed_ms >= timeout_ms * 0.95 && r.elapsed_ms < timeout_ms + 500.0,
        "elapsed {} ms for a {timeout_ms} ms timeout",
        r.elapsed_ms
    );
    assert!(took < SLOW / 2, "the probe took {took:?}");
}

#[actix_web::test]
async fn an_https_url_is_probed_over_tls() {
    // A plain-HTTP server behind an https URL: rustls sends its ClientHello and rejects the
    // plain-HTTP answer (without TLS support the error would be "SSL is not supported"), the
    // check is down, and nothing panics (a crypto provider is installed).
    let base = spawn_endpoints();
    let url = format!("{}/ok", base.replacen("http://", "https://", 1));
    let r = probe_one(url).await;
    assert!(!r.up, "{r:?}");
    assert_eq!(r.status, None);
    let error = r.error.unwrap_or_default();
    assert!(error.contains("received corrupt message"), "{error}");
}

#[actix_web::test]
async fn checks_run_concurrently_and_keep_their_order() {
    let base = spawn_endpoints();
    let mut checks: Vec<ExternalCheck> = (0..4)
        .map(|i| check(&format!("slow{i}"), format!("{base}/slow")))
        .collect();
    checks.push(check("ok", format!("{base}/ok")));
    checks.push(check("fail", format!("{base}/fail")));
    checks.push(check(
        "closed",
        format!("http://127.0.0.1:{}/", closed_port()),
    ));
    let probe = ExternalProbe::new(TIMEOUT, breakers());
    let started = Instant::now();
    let results = probe.probe(&checks).await;
    let took = started.elapsed();

    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["slow0", "slow1", "slow2", "slow3", "ok", "fail", "closed"]
    );
    let up: Vec<bool> = results.iter().map(|r| r.up).collect();
    assert_eq!(up, [false, false, false, false, true, false, false]);
    // Four timeouts one after the other would take 4 × TIMEOUT.
    assert!(
        took >= TIMEOUT && took < TIMEOUT * 2,
        "{} checks took {took:?} with a {TIMEOUT:?} timeout",
        checks.len()
    );
}
