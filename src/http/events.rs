//! Events: the bus's history.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::actors::event_bus::{GetBusStats, GetHistory};
use crate::domain::event::Channel;
use crate::http::common::{parse_limit, Sh};
use crate::http::error::{ok, ApiError};

/// Query of `/events`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    limit: Option<String>,
    channel: Option<String>,
}

/// `GET /api/v1/system/events?channel=&limit=`.
pub async fn events(sh: Sh, q: web::Query<EventsQuery>) -> Result<HttpResponse, ApiError> {
    let limit = parse_limit(q.limit.as_deref(), 50, 1000)?;
    let channel = match q.channel.as_deref() {
        None => None,
        Some(c) => Some(Channel::parse(c).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown channel {:?}; known: {}",
                crate::text::clip_chars(c, 64),
                Channel::ALL.map(Channel::as_str).join(", ")
            ))
        })?),
    };
    let events = sh.bus.send(GetHistory { channel, limit }).await?;
    let stats = sh.bus.send(GetBusStats).await?;
    Ok(ok(json!({ "events": events, "stats": stats })))
}
