//! The contract between the consumer and the bridge that stores each event's effect.

use std::{fmt, future::Future, sync::Arc};

use crate::events::InboundEvent;

/// What the sink did with an event; every variant means "stored, safe to acknowledge".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Handled {
    /// The event's effect is now committed.
    Applied,
    /// This event id was already applied; nothing changed.
    Duplicate,
    /// Deliberately not applied (e.g. a post by a user who has not opted in).
    Ignored,
}

/// Why a sink could not store an event's effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// May succeed later (database down, lock timeout): retry, never drop.
    Transient(String),
    /// Can never apply (contradicts stored state in a way no retry fixes): dead-letter it.
    Permanent(String),
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transient(reason) => write!(f, "transient: {reason}"),
            Self::Permanent(reason) => write!(f, "permanent: {reason}"),
        }
    }
}

/// Receives decoded events, one at a time per order key, and stores their effects.
///
/// An implementation should commit the event id together with the effect in one
/// transaction, so a redelivered event is recognised and answered with
/// [`Handled::Duplicate`]: delivery is at least once.
pub trait EventSink: Send + Sync + 'static {
    /// Stores the effect of `event`; returns only once it is durable.
    fn handle(
        &self,
        event: InboundEvent,
    ) -> impl Future<Output = Result<Handled, SinkError>> + Send;

    /// Stores the effects of consecutive events of one lane, in order, ideally in one
    /// transaction, and returns one result per event for a prefix of `events` (all of them,
    /// some, or none). The consumer hands whatever has no result to [`EventSink::handle`],
    /// one at a time, so an implementation may stop at the first event it cannot store and
    /// leave the retrying and the ordering to the consumer. The default stores nothing in
    /// batches.
    fn handle_batch(
        &self,
        events: Arc<Vec<InboundEvent>>,
    ) -> impl Future<Output = Vec<Result<Handled, SinkError>>> + Send {
        let _ = events;
        async { Vec::new() }
    }
}
