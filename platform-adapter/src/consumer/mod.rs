//! The consumer supervisor: connect → declare → qos → consume → hand each event to the sink
//! → acknowledge only once the sink has stored it; reconnect with backoff whenever the
//! connection or the consumer goes away.

mod counters;
mod lane;

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use futures_util::StreamExt;
use lapin::{
    Connection,
    options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

pub use counters::{ConsumerCounters, CounterSnapshot};

use self::{
    counters::Count,
    lane::{LaneContext, Work},
};
use crate::{
    Error,
    connection::{Backoff, BrokerStatus, connect, redact},
    events::decode_inbound,
    publisher::confirm_channel,
    sink::EventSink,
    topology::{Topology, short},
};

/// How the consumer connects and paces itself.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// AMQP URL of the platform's broker.
    pub url: String,
    /// Connection name shown in the broker's UI.
    pub connection_name: String,
    /// Names of exchanges and queues.
    pub topology: Topology,
    /// Declare the topology on every connect; turn off when the platform owns it.
    pub declare_topology: bool,
    /// Unacknowledged deliveries the broker may push at once.
    pub prefetch: u16,
    /// Events handled concurrently (each lane is serial; an order key always maps to
    /// the same lane).
    pub lanes: usize,
    /// Most events one lane hands to the sink at once (see [`EventSink::handle_batch`]);
    /// 1 offers each event alone.
    pub max_batch: usize,
    /// Transient sink failures retried in place, holding the lane, before an event goes to
    /// the retry queue.
    pub in_lane_retries: u32,
    /// First retry delay; doubles per failure up to `topology.max_retry_delay`.
    pub retry_base_delay: Duration,
    /// On shutdown, how long in-flight events may take to finish.
    pub shutdown_grace: Duration,
}

impl ConsumerConfig {
    /// Defaults: declare the topology, prefetch 256, 8 lanes, batches of at most 64, 3
    /// in-lane retries from 200 ms, 30 s shutdown grace.
    pub fn new(url: impl Into<String>, topology: Topology) -> Self {
        Self {
            url: url.into(),
            connection_name: "fedibridge-consumer".into(),
            topology,
            declare_topology: true,
            prefetch: 256,
            lanes: 8,
            max_batch: 64,
            in_lane_retries: 3,
            retry_base_delay: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(30),
        }
    }

    fn retry_delay(&self, attempt: u32) -> Duration {
        lane::exponential(
            self.retry_base_delay,
            self.topology.max_retry_delay,
            attempt,
        )
    }
}

/// Consumes the platform's events into an [`EventSink`] until told to stop.
pub struct Consumer<S> {
    config: Arc<ConsumerConfig>,
    sink: Arc<S>,
    status: BrokerStatus,
    counters: Arc<ConsumerCounters>,
}

/// Why a session ended.
enum Ended {
    /// Shutdown was requested.
    Shutdown,
    /// The broker cancelled the consumer, the connection dropped, or a lane failed.
    Interrupted(String),
}

impl<S: EventSink> Consumer<S> {
    /// A consumer feeding `sink`.
    pub fn new(config: ConsumerConfig, sink: Arc<S>) -> Self {
        Self {
            config: Arc::new(config),
            sink,
            status: BrokerStatus::default(),
            counters: Arc::default(),
        }
    }

    /// Reports connectivity into an existing flag (e.g. the one `/readyz` reads).
    pub fn with_status(mut self, status: BrokerStatus) -> Self {
        self.status = status;
        self
    }

    /// Whether the consumer is connected and consuming right now.
    pub fn status(&self) -> BrokerStatus {
        self.status.clone()
    }

    /// Running totals, for metrics.
    pub fn counters(&self) -> Arc<ConsumerCounters> {
        Arc::clone(&self.counters)
    }

    /// Consumes until `shutdown` is cancelled, reconnecting with backoff after any loss.
    /// On shutdown: stops consuming, lets in-flight events finish (bounded by
    /// `shutdown_grace`), closes; whatever is unacknowledged returns to the queue.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let broker = redact(&self.config.url);
        let mut sessions = 0u64;
        while !shutdown.is_cancelled() {
            if sessions > 0 {
                self.counters.add(Count::Reconnect);
            }
            sessions += 1;
            match self.session(&shutdown, &mut backoff).await {
                Ok(Ended::Shutdown) => break,
                Ok(Ended::Interrupted(why)) => {
                    tracing::warn!(%broker, %why, "event consumer interrupted; reconnecting");
                }
                Err(error) => {
                    tracing::warn!(%broker, %error, "event consumer failed; reconnecting")
                }
            }
            self.status.set_connected(false);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
        self.status.set_connected(false);
        tracing::info!("event consumer stopped");
    }

    async fn session(
        &self,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<Ended, Error> {
        let connection = connect(&self.config.url, &self.config.connection_name).await?;
        let result = self.consume(&connection, shutdown, backoff).await;
        self.status.set_connected(false);
        if connection.status().connected() {
            let _ = connection.close(200, "consumer stopping".into()).await;
        }
        result
    }

    async fn consume(
        &self,
        connection: &Connection,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<Ended, Error> {
        let config = &self.config;
        let channel = connection.create_channel().await?;
        if config.declare_topology {
            config.topology.declare(&channel).await?;
        }
        let publish = confirm_channel(connection).await?;
        channel
            .basic_qos(config.prefetch, BasicQosOptions::default())
            .await?;
        let mut deliveries = channel
            .basic_consume(
                short(&config.topology.events_queue)?,
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.status.set_connected(true);
        backoff.reset();
        tracing::info!(queue = %config.topology.events_queue, "consuming platform events");

        let session = CancellationToken::new();
        let context = Arc::new(LaneContext {
            config: Arc::clone(config),
            sink: Arc::clone(&self.sink),
            counters: Arc::clone(&self.counters),
            publish,
            session: session.clone(),
        });
        let lane_count = config.lanes.max(1);
        let capacity = usize::from(config.prefetch.max(1));
        let mut lanes = Vec::with_capacity(lane_count);
        let mut workers = JoinSet::new();
        for _ in 0..lane_count {
            let (sender, receiver) = mpsc::channel(capacity);
            lanes.push(sender);
            workers.spawn(lane::run(Arc::clone(&context), receiver));
        }

        let ended = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break Ended::Shutdown,
                () = session.cancelled() => break Ended::Interrupted("a delivery could not be settled".into()),
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        self.counters.add(Count::Received);
                        let (lane, work) = match decode_inbound(&delivery.data) {
                            Ok(event) => (lane_for(event.order_key.as_str(), lane_count), Work::Event(Box::new(event), delivery)),
                            Err(error) => (lane_for(&delivery.delivery_tag, lane_count), Work::Malformed(error, delivery)),
                        };
                        if lanes[lane].send(work).await.is_err() {
                            break Ended::Interrupted("a lane stopped".into());
                        }
                    }
                    Some(Err(error)) => break Ended::Interrupted(error.to_string()),
                    None => break Ended::Interrupted("the broker ended the consumer".into()),
                },
            }
        };

        if matches!(ended, Ended::Shutdown) && channel.status().connected() {
            // Stop the flow first; what the lanes already hold still gets settled.
            let _ = channel
                .basic_cancel(deliveries.tag(), BasicCancelOptions::default())
                .await;
        }
        drop(lanes);
        let drained = tokio::time::timeout(config.shutdown_grace, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("in-flight events did not finish in time; they will be redelivered");
            workers.shutdown().await;
        }
        Ok(ended)
    }
}

/// The lane for a key: stable for the life of the process, spread evenly.
fn lane_for<K: Hash + ?Sized>(key: &K, lanes: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    // The modulo keeps the value below `lanes`, so the narrowing cannot lose anything.
    (hasher.finish() % lanes as u64) as usize
}
