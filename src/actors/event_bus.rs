//! `EventBus`: in-process publish/subscribe between actors, with a bounded history.
//!
//! Messages in: [`Publish`] (fire and forget), [`Subscribe`], [`Unsubscribe`], and the queries
//! [`GetHistory`] and [`GetBusStats`]. Messages out: [`Deliver`] to each subscriber of the
//! event's channel.
//!
//! Delivery depends on the channel. Events that drive decisions ([`Channel::reliable`]:
//! alerts, failures, stalls, diagnoses, repairs) are queued whatever the subscriber's backlog
//! (`do_send`); one the subscriber can no longer take (its mailbox is closed) is counted
//! (`lost_deliveries`) and reported, which raises an `EVENTS_LOST` alert. Other events are
//! `try_send`: a slow subscriber never makes the publisher wait, and an event its full mailbox
//! cannot take is dropped and counted (`dropped_deliveries`). A subscriber whose mailbox is
//! closed is unsubscribed on the next publish to its channel. Subscribing again under the same
//! name replaces the earlier subscription (a restarted subscriber is not served twice).
//!
//! Restart policy: a core actor (see [`crate::supervision`]); a restart keeps the
//! history and the subscriptions, and loses only the message that crashed.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use actix::prelude::*;
use serde::Serialize;

use crate::config::SupervisorSettings;
use crate::domain::event::{Channel, Event};
use crate::supervision::{self as sv, ActorReport, Core, CoreSupervision, Guarded, Reporter};

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
    /// Best-effort deliveries dropped because a subscriber's mailbox was full.
    pub dropped_deliveries: u64,
    /// Decision events a subscriber could not take (its mailbox was closed): alerted.
    pub lost_deliveries: u64,
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
    lost: u64,
    sup: CoreSupervision,
}

/// The bus's name among the supervised actors.
pub const NAME: &str = "event_bus";

impl EventBus {
    /// A bus keeping the last `capacity` events, supervised by `policy` with failures told to
    /// `reporter`.
    pub fn new(capacity: usize, policy: &SupervisorSettings, reporter: Reporter) -> Self {
        EventBus {
            history: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            subscribers: HashMap::new(),
            next_id: 1,
            published: 0,
            dropped: 0,
            lost: 0,
            sup: CoreSupervision::new(NAME, policy, reporter),
        }
    }

    /// A bus with the default policy and no reporter (unit tests, benchmarks).
    pub fn standalone(capacity: usize) -> Self {
        Self::new(
            capacity,
            &crate::config::knobs::defaults(),
            Reporter::default(),
        )
    }

    fn publish(&mut self, event: Event) {
        let event = Arc::new(event);
        self.published += 1;
        if self.history.len() == self.capacity {
            self.history.pop_front();
        }
        self.history.push_back(event.clone());
        let reliable = event.channel.reliable();
        let (dropped, lost) = (&mut self.dropped, &mut self.lost);
        let mut gone = Vec::new();
        if let Some(subs) = self.subscribers.get_mut(&event.channel) {
            subs.retain(|s| {
                if reliable {
                    // Queued whatever the backlog: decision events are not dropped for speed.
                    if s.recipient.connected() {
                        s.recipient.do_send(Deliver(event.clone()));
                        return true;
                    }
                    *lost += 1;
                    gone.push(s.subscriber.clone());
                    return false;
                }
                match s.recipient.try_send(Deliver(event.clone())) {
                    Ok(()) => true,
                    Err(SendError::Full(_)) => {
                        *dropped += 1;
                        log::warn!(
                            "event bus: {} is not keeping up; a {} event was dropped",
                            s.subscriber,
                            event.channel.as_str()
                        );
                        true
                    }
                    Err(SendError::Closed(_)) => false,
                }
            });
        }
        for subscriber in gone {
            log::error!(
                "event bus: {subscriber} is gone; a {} event was lost",
                event.channel.as_str()
            );
            self.sup_reporter().report(ActorReport::EventsLost {
                subscriber,
                channel: event.channel,
                count: self.lost,
                why: "its mailbox is closed".to_owned(),
            });
        }
    }

    fn sup_reporter(&self) -> &Reporter {
        self.sup.reporter()
    }

    fn stats(&self) -> BusStats {
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
            lost_deliveries: self.lost,
        }
    }
}

impl Actor for EventBus {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        sv::started(self, ctx);
    }
}

impl Supervised for EventBus {
    fn restarting(&mut self, _: &mut Self::Context) {
        // Everything is kept: the history and the subscriptions are plain data, and the
        // subscribers' addresses stay valid across their own restarts.
    }
}

impl Core for EventBus {
    fn supervision(&mut self) -> &mut CoreSupervision {
        &mut self.sup
    }

    fn start(&mut self, _: &mut Context<Self>) {}

    fn stats(&self) -> serde_json::Value {
        serde_json::to_value(EventBus::stats(self)).unwrap_or_default()
    }
}

crate::core_handlers!(EventBus);

impl Handler<Publish> for EventBus {
    type Result = Guarded<()>;

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| act.publish(msg.0))
    }
}

impl Handler<Subscribe> for EventBus {
    type Result = Guarded<u64>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            let id = act.next_id;
            act.next_id += 1;
            // One subscription per subscriber name: a restarted subscriber subscribing again
            // must not be served twice.
            for subs in act.subscribers.values_mut() {
                subs.retain(|s| s.subscriber != msg.subscriber);
            }
            for channel in msg.channels {
                act.subscribers
                    .entry(channel)
                    .or_default()
                    .push(Subscription {
                        id,
                        subscriber: msg.subscriber.clone(),
                        recipient: msg.recipient.clone(),
                    });
            }
            id
        })
    }
}

impl Handler<Unsubscribe> for EventBus {
    type Result = Guarded<()>;

    fn handle(&mut self, msg: Unsubscribe, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            for subs in act.subscribers.values_mut() {
                subs.retain(|s| s.id != msg.0);
            }
        })
    }
}

impl Handler<GetHistory> for EventBus {
    type Result = Guarded<MessageResult<GetHistory>>;

    fn handle(&mut self, q: GetHistory, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            let mut out: Vec<Arc<Event>> = act
                .history
                .iter()
                .rev()
                .filter(|e| q.channel.is_none_or(|c| e.channel == c))
                .take(q.limit)
                .cloned()
                .collect();
            out.reverse();
            MessageResult(out)
        })
    }
}

impl Handler<GetBusStats> for EventBus {
    type Result = Guarded<BusStats>;

    fn handle(&mut self, _: GetBusStats, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| act.stats())
    }
}
