//! The demo backend's database routes: a real table, `demo_orders`, seeded with enough rows
//! that a filter on its unindexed `customer_id` column is measurably slow, and a route that
//! runs one query and then N more per request (an N+1 pattern). Queries go through a
//! diesel-async pool with selfheal's query logger installed.
//!
//! Shared with the test suite (`tests/api` includes this file), so the tests exercise exactly
//! what the demo serves.

use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde::{Deserialize, Serialize};

diesel::table! {
    demo_orders (id) {
        id -> Int8,
        customer_id -> Int4,
        status -> Text,
        total_cents -> Int8,
        created_at -> Timestamptz,
    }
}

/// Rows seeded by default: enough that a sequential scan takes milliseconds.
pub const SEED_ROWS: i64 = 200_000;
/// Distinct customers in the seed (so each has `SEED_ROWS / CUSTOMERS` orders).
pub const CUSTOMERS: i64 = 5_000;

/// An order.
#[derive(Debug, Serialize, Queryable, Selectable)]
#[diesel(table_name = demo_orders, check_for_backend(diesel::pg::Pg))]
pub struct Order {
    pub id: i64,
    pub customer_id: i32,
    pub status: String,
    pub total_cents: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The demo's pool (with the query logger installed), or `None` without `DATABASE_URL`.
#[derive(Clone)]
pub struct DemoDb(pub Option<Pool<AsyncPgConnection>>);

/// Create `demo_orders` (no index on `customer_id`, on purpose) and seed it up to `rows`.
pub async fn prepare(pool: &Pool<AsyncPgConnection>, rows: i64) -> Result<i64, String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS demo_orders (
            id bigserial PRIMARY KEY,
            customer_id integer NOT NULL,
            status text NOT NULL,
            total_cents bigint NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(|e| e.to_string())?;
    let have: i64 = demo_orders::table
        .count()
        .get_result(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if have < rows {
        conn.batch_execute(&format!(
            "INSERT INTO demo_orders (customer_id, status, total_cents, created_at)
             SELECT (g % {CUSTOMERS}) + 1,
                    CASE WHEN g % 10 = 0 THEN 'refunded' ELSE 'paid' END,
                    (g * 37) % 100000,
                    now() - make_interval(secs => g)
             FROM generate_series({}, {rows}) AS g;
             ANALYZE demo_orders;",
            have + 1
        ))
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(rows.max(have))
}

fn json_error(status: actix_web::http::StatusCode, code: &str, message: String) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "success": false,
        "error": {"code": code, "message": message},
    }))
}

fn unavailable(message: String) -> HttpResponse {
    json_error(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        message,
    )
}

fn bad_request(message: String) -> HttpResponse {
    json_error(
        actix_web::http::StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        message,
    )
}

fn pool_of(db: &DemoDb) -> Option<&Pool<AsyncPgConnection>> {
    db.0.as_ref()
}

fn no_database() -> HttpResponse {
    unavailable(
        "the database routes need DATABASE_URL (see README: Postgres + Redis mode)".to_owned(),
    )
}

/// Query of `/demo/orders`.
#[derive(Debug, Deserialize)]
pub struct OrdersQuery {
    customer: Option<String>,
}

/// `GET /demo/orders?customer=ID`: a customer's orders, filtered on the unindexed column
/// (a sequential scan of the whole table).
pub async fn orders(db: web::Data<DemoDb>, q: web::Query<OrdersQuery>) -> HttpResponse {
    let Some(pool) = pool_of(&db) else {
        return no_database();
    };
    let Some(customer) = q
        .customer
        .as_deref()
        .and_then(|c| c.parse::<i32>().ok())
        .filter(|c| *c > 0)
    else {
        return bad_request("customer must be a positive whole number".to_owned());
    };
    let mut conn = match pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(format!("database unavailable: {e}")),
    };
    match demo_orders::table
        .filter(demo_orders::customer_id.eq(customer))
        .order(demo_orders::id)
        .limit(100)
        .select(Order::as_select())
        .load(&mut conn)
        .await
    {
        Ok(rows) => HttpResponse::Ok().json(serde_json::json!({
            "customer": customer, "count": rows.len(), "orders": rows,
        })),
        Err(e) => unavailable(format!("query failed: {e}")),
    }
}

/// Query of `/demo/n-plus-one`.
#[derive(Debug, Deserialize)]
pub struct NPlusOneQuery {
    n: Option<String>,
}

/// `GET /demo/n-plus-one?n=N`: one query for N order ids, then one query per id (N+1).
pub async fn n_plus_one(db: web::Data<DemoDb>, q: web::Query<NPlusOneQuery>) -> HttpResponse {
    let Some(pool) = pool_of(&db) else {
        return no_database();
    };
    let n = match q.n.as_deref().map(str::parse::<i64>) {
        None => 10,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        _ => return bad_request("n must be a whole number from 1 to 500".to_owned()),
    };
    let mut conn = match pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(format!("database unavailable: {e}")),
    };
    let ids: Vec<i64> = match demo_orders::table
        .select(demo_orders::id)
        .order(demo_orders::id)
        .limit(n)
        .load(&mut conn)
        .await
    {
        Ok(ids) => ids,
        Err(e) => return unavailable(format!("query failed: {e}")),
    };
    let mut orders = Vec::with_capacity(ids.len());
    for id in &ids {
        match demo_orders::table
            .find(id)
            .select(Order::as_select())
            .first(&mut conn)
            .await
        {
            Ok(o) => orders.push(o),
            Err(e) => return unavailable(format!("query failed: {e}")),
        }
    }
    HttpResponse::Ok().json(serde_json::json!({
        "n": n, "queries": ids.len() + 1, "orders": orders,
    }))
}

/// Mount the database routes (and answer malformed query strings with a JSON 400).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| {
        actix_web::error::InternalError::from_response(
            e.to_string(),
            bad_request(format!("invalid query string: {e}")),
        )
        .into()
    }))
    .route("/demo/orders", web::get().to(orders))
    .route("/demo/n-plus-one", web::get().to(n_plus_one));
}
