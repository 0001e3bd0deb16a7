//! `EventBus`: in-process publish/subscribe between actors, with a bounded history.
//!
//! Messages in: [`Publish`] (fire and forget), [`Subscribe`], [`Unsubscribe`], and the queries
//! [`GetHistory`] and [`GetBusStats`]. Messages out: [`Deliver`] to each subscriber of the
//! event's channel. Delivery is `try_send`: a slow subscriber never blocks the publisher, and
//! an event its full mailbox cannot take is dropped and counted (`dropped_deliveries`); a
//! subscriber whose mailbox is closed is unsubscribed on the next publish to its channel.
//!
//! Restart policy: infrastructure actor under actix's `Supervisor`; its handlers do not panic.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use actix::prelude::*;
use serde::Serialize;

use crate::domain::event::{Channel, Event};

/// Publish an event to its channel's subscribers and the history.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Publish(pub Event);

/// An event handed to a subscriber.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Deliver(pub Arc<Event>);

/// Subscribe `recipient` to `channels`. Returns the subscription id.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Subscribe {
    pub channels: Vec<Channel>,
    pub recipient: Recipient<Deliver>,
    /// Who subscribed, for `/events` stats.
    pub subscriber: String,
}

/// Remove a subscription.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Unsubscribe(pub u64);

/// The last `limit` events, oldest first, optionally of one channel.
#[derive(Message, Debug)]
#[rtype(result = "Vec<Arc<Event>>")]
pub struct GetHistory {
    pub channel: Option<Channel>,
    pub limit: usize,
}

/// Subscriptions and history size.
#[derive(Message, Debug)]
#[rtype(result = "BusStats")]
pub struct GetBusStats;

/// What `/events` reports about the bus.
#[derive(Debug, Clone, Serialize, MessageResponse)]
pub struct BusStats {
    pub total_subscriptions: usize,
    /// Channel → subscriber names.
    pub channels: serde_json::Map<String, serde_json::Value>,
    pub history_size: usize,
    pub history_capacity: usize,
    pub published: u64,
    /// Deliveries dropped because a subscriber's mailbox was full.
    pub dropped_deliveries: u64,
}

struct Subscription {
    id: u64,
    subscriber: String,
    recipient: Recipient<Deliver>,
}

/// The bus actor.
pub struct EventBus {
    history: VecDeque<Arc<Event>>,
    capacity: usize,
    subscribers: HashMap<Channel, Vec<Subscription>>,
    next_id: u64,
    published: u64,
    dropped: u64,
}

impl EventBus {
    /// A bus keeping the last `capacity` events.
    pub fn new(capacity: usize) -> Self {
        EventBus {
            history: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            subscribers: HashMap::new(),
            next_id: 1,
            published: 0,
            dropped: 0,
        }
    }
}

impl Actor for EventBus {
    type Context = Context<Self>;
}

impl Supervised for EventBus {}

impl Handler<Publish> for EventBus {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Self::Context) {
        let event = Arc::new(msg.0);
        self.published += 1;
        if self.history.len() == self.capacity {
            self.history.pop_front();
        }
        self.history.push_back(event.clone());
        let dropped = &mut self.dropped;
        if let Some(subs) = self.subscribers.get_mut(&event.channel) {
            subs.retain(|s| match s.recipient.try_send(Deliver(event.clone())) {
                Ok(()) => true,
                Err(SendError::Full(_)) => {
                    *dropped += 1;
                    log::warn!(
                        "event bus: {} is not keeping up; an event was dropped",
                        s.subscriber
                    );
                    true
                }
                Err(SendError::Closed(_)) => false,
            });
        }
    }
}

impl Handler<Subscribe> for EventBus {
    type Result = u64;

    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        for channel in msg.channels {
            self.subscribers
                .entry(channel)
                .or_default()
                .push(Subscription {
                    id,
                    subscriber: msg.subscriber.clone(),
                    recipient: msg.recipient.clone(),
                });
        }
        id
    }
}

impl Handler<Unsubscribe> for EventBus {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Self::Context) {
        for subs in self.subscribers.values_mut() {
            subs.retain(|s| s.id != msg.0);
        }
    }
}

impl Handler<GetHistory> for EventBus {
    type Result = MessageResult<GetHistory>;

    fn handle(&mut self, q: GetHistory, _: &mut Self::Context) -> Self::Result {
        let mut out: Vec<Arc<Event>> = self
            .history
            .iter()
            .rev()
            .filter(|e| q.channel.is_none_or(|c| e.channel == c))
            .take(q.limit)
            .cloned()
            .collect();
        out.reverse();
        MessageResult(out)
    }
}

impl Handler<GetBusStats> for EventBus {
    type Result = BusStats;

    fn handle(&mut self, _: GetBusStats, _: &mut Self::Context) -> BusStats {
        let mut channels = serde_json::Map::new();
        let mut total = 0;
        for channel in Channel::ALL {
            if let Some(subs) = self.subscribers.get(&channel).filter(|s| !s.is_empty()) {
                total += subs.len();
                channels.insert(
                    channel.as_str().to_owned(),
                    subs.iter()
                        .map(|s| serde_json::Value::String(s.subscriber.clone()))
                        .collect(),
                );
            }
        }
        BusStats {
            total_subscriptions: total,
            channels,
            history_size: self.history.len(),
            history_capacity: self.capacity,
            published: self.published,
            dropped_deliveries: self.dropped,
        }
    }
}
