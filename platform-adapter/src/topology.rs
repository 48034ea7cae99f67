//! Exchange and queue names, and declaring them on the broker.

use std::time::Duration;

use lapin::{
    Channel, ExchangeKind,
    options::{
        ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
};

use crate::Error;

/// The names the consumer and publisher use; `{queue}.retry`, `{queue}.dead` and
/// `{queue}.dlx` are derived from the events queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Topic exchange the platform publishes events to (routing key = event type).
    pub events_exchange: String,
    /// Durable queue the bridge consumes, bound to the events exchange with `#`.
    pub events_queue: String,
    /// Topic exchange the bridge publishes its messages to (routing key = message type).
    pub outbound_exchange: String,
    /// Longest a message waits in the retry queue (the queue's `x-message-ttl`); each
    /// retry also carries its own shorter expiration from the backoff.
    pub max_retry_delay: Duration,
}

impl Topology {
    /// Names checked against AMQP's 255-byte limit (with room for the derived suffixes).
    pub fn new(
        events_exchange: impl Into<String>,
        events_queue: impl Into<String>,
        outbound_exchange: impl Into<String>,
    ) -> Result<Self, Error> {
        let topology = Self {
            events_exchange: events_exchange.into(),
            events_queue: events_queue.into(),
            outbound_exchange: outbound_exchange.into(),
            max_retry_delay: Duration::from_secs(60),
        };
        for name in [
            &topology.events_exchange,
            &topology.outbound_exchange,
            &topology.dead_letter_queue(),
            &topology.retry_queue(),
            &topology.dead_letter_exchange(),
        ] {
            short(name)?;
        }
        if topology.events_queue.is_empty() {
            return Err(Error::InvalidName("the events queue needs a name".into()));
        }
        Ok(topology)
    }

    /// Where failed-transiently events wait before returning to the events queue.
    pub fn retry_queue(&self) -> String {
        format!("{}.retry", self.events_queue)
    }

    /// Where events that can never apply are parked for a person to look at.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.events_queue)
    }

    /// Fanout exchange in front of the dead-letter queue; also the events queue's
    /// `x-dead-letter-exchange`, so messages rejected by anyone end up there too.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.events_queue)
    }

    /// Connects to `url`, declares everything and disconnects (for processes that publish
    /// but do not consume, so the exchanges exist before the first publish).
    pub async fn declare_at(&self, url: &str) -> Result<(), Error> {
        let connection = crate::connection::connect(url, "fedibridge-topology").await?;
        let channel = connection.create_channel().await?;
        self.declare(&channel).await?;
        connection.close(200, "topology declared".into()).await?;
        Ok(())
    }

    /// Declares everything, durably. Idempotent while the arguments stay the same.
    pub async fn declare(&self, channel: &Channel) -> Result<(), Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        let durable_queue = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .exchange_declare(
                short(&self.events_exchange)?,
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                short(&self.outbound_exchange)?,
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                short(&self.dead_letter_exchange())?,
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;

        let mut events_args = FieldTable::default();
        events_args.insert(
            "x-dead-letter-exchange".into(),
            long(&self.dead_letter_exchange()),
        );
        channel
            .queue_declare(short(&self.events_queue)?, durable_queue, events_args)
            .await?;
        channel
            .queue_bind(
                short(&self.events_queue)?,
                short(&self.events_exchange)?,
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        // Expired retries go back through the default exchange straight to the events queue,
        // not through the topic exchange, so other consumers of that exchange never see them.
        let mut retry_args = FieldTable::default();
        let ttl = i64::try_from(self.max_retry_delay.as_millis()).unwrap_or(i64::MAX);
        retry_args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
        retry_args.insert("x-dead-letter-exchange".into(), long(""));
        retry_args.insert("x-dead-letter-routing-key".into(), long(&self.events_queue));
        channel
            .queue_declare(short(&self.retry_queue())?, durable_queue, retry_args)
            .await?;

        channel
            .queue_declare(
                short(&self.dead_letter_queue())?,
                durable_queue,
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                short(&self.dead_letter_queue())?,
                short(&self.dead_letter_exchange())?,
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// Deletes everything [`Topology::declare`] creates (tests and decommissioning).
    pub async fn delete(&self, channel: &Channel) -> Result<(), Error> {
        for queue in [
            self.events_queue.clone(),
            self.retry_queue(),
            self.dead_letter_queue(),
        ] {
            channel
                .queue_delete(short(&queue)?, QueueDeleteOptions::default())
                .await?;
        }
        for exchange in [
            self.events_exchange.clone(),
            self.outbound_exchange.clone(),
            self.dead_letter_exchange(),
        ] {
            channel
                .exchange_delete(short(&exchange)?, ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }
}

/// An AMQP short string, or an error instead of the client's panic on names over 255 bytes.
pub(crate) fn short(name: &str) -> Result<ShortString, Error> {
    ShortString::try_new(name.to_owned()).map_err(|e| Error::InvalidName(format!("{name:?}: {e}")))
}

/// A header or argument value.
pub(crate) fn long(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}
