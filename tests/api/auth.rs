//! The admin token guards every system route; the liveness probe is public.

use actix_web::http::Method;

use crate::helpers::{assert_error, spawn_app};

/// Every route of the system API, with the method it answers.
const SYSTEM_ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/api/v1/system/health"),
    (Method::GET, "/api/v1/system/health/detailed"),
    (Method::GET, "/api/v1/system/dashboard"),
    (Method::GET, "/api/v1/system/agents"),
    (Method::GET, "/api/v1/system/metrics"),
    (Method::GET, "/api/v1/system/traces"),
    (Method::GET, "/api/v1/system/events"),
    (Method::POST, "/api/v1/system/agents/monitor/restart"),
];

#[actix_web::test]
async fn every_system_route_answers_401_without_the_right_token() {
    let app = spawn_app(&[]).await;
    let almost = format!("Bearer {}", &app.token[..app.token.len() - 1]);
    let longer = format!("Bearer {}x", app.token);
    let no_scheme = app.token.clone();
    let other_scheme = format!("Basic {}", app.token);
    let wrong: [Option<&str>; 6] = [
        None,
        Some("Bearer wrong-token"),
        Some(&almost),
        Some(&longer),
        Some(&no_scheme),
        Some(&other_scheme),
    ];
    for (verb, path) in SYSTEM_ROUTES {
        for auth in wrong {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let reply = app.call(verb.clone(), path, &headers, Vec::new()).await;
            assert_eq!(
                reply.status, 401,
                "{verb} {path} with {auth:?}: {}",
                reply.text
            );
            assert_error(&reply, 401, "UNAUTHORIZED");
            assert!(
                reply
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{verb} {path}: no WWW-Authenticate: Bearer challenge"
            );
        }
    }
}

#[actix_web::test]
async fn every_system_route_answers_200_with_the_success_envelope_given_the_token() {
    let app = spawn_app(&[]).await;
    let auth = app.bearer();
    for (verb, path) in SYSTEM_ROUTES {
        let reply = app
            .call(verb.clone(), path, &[("authorization", &auth)], Vec::new())
            .await;
        assert_eq!(reply.status, 200, "{verb} {path}: {}", reply.text);
        assert_eq!(reply.body["success"], true, "{verb} {path}: {}", reply.text);
        assert!(
            reply.body["data"].is_object(),
            "{verb} {path} has no data object: {}",
            reply.text
        );
    }
}

#[actix_web::test]
async fn an_unknown_system_route_is_a_json_404_with_the_token_and_401_without() {
    let app = spawn_app(&[]).await;
    for path in ["/api/v1/system/nope", "/api/v1/system/agents/monitor/nope"] {
        assert_error(&app.admin_get(path).await, 404, "NOT_FOUND");
        assert_error(&app.get(path, &[]).await, 401, "UNAUTHORIZED");
    }
}

#[actix_web::test]
async fn the_liveness_probe_is_public() {
    let app = spawn_app(&[]).await;
    let reply = app.get("/health", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        serde_json::json!({"success": true, "data": {"status": "ok"}})
    );
}
