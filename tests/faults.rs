//! Fault injection: the broker and the database are restarted, crashed, cut off and made to
//! block while events, inbox requests, deliveries and outgoing messages are in flight. Each
//! test states its invariant first and checks it at the end.
//!
//! Every service restarted here is a disposable one of this test process
//! (`tests/common/disposable`), never the shared PostgreSQL or RabbitMQ. Tests that use the
//! RabbitMQ node hold its lease, so they run one after another; the others run alongside.
//! The tests need a multi-threaded runtime: starting and stopping services blocks.

#[path = "faults/consumption.rs"]
mod consumption;
#[path = "faults/fan_out.rs"]
mod fan_out;
#[path = "faults/inbox_burst.rs"]
mod inbox_burst;
#[path = "faults/relay.rs"]
mod relay;

use std::time::{Duration, Instant};

use bridge::Role;
use integration_tests::{
    TestApp, TestDatabase,
    broker::TopologyNames,
    disposable::{DisposablePostgres, RabbitLease, RabbitNode},
    test_settings,
};
use tokio::task::block_in_place;

/// Polls `check` every 50 ms until it holds; panics after `limit`.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a broker test needs: a private database, the leased RabbitMQ node, and topology
/// names of its own, declared on the node.
struct BrokerFixture {
    postgres: DisposablePostgres,
    rabbit: RabbitLease,
    names: TopologyNames,
    database: TestDatabase,
}

impl BrokerFixture {
    /// `None` when PostgreSQL or RabbitMQ is not installed (outside CI).
    async fn start() -> Option<Self> {
        let postgres = block_in_place(DisposablePostgres::start)?;
        let rabbit = RabbitNode::lease().await?;
        let names = TopologyNames::new();
        names
            .topology()
            .declare_at(&rabbit.amqp_url())
            .await
            .expect("topology");
        let database = postgres.database();
        Some(Self {
            postgres,
            rabbit,
            names,
            database,
        })
    }

    /// The node's AMQP URL.
    fn url(&self) -> String {
        self.rabbit.amqp_url()
    }

    /// A bridge playing `roles` on the node and the database, with `extra` settings.
    async fn bridge(&self, roles: &[Role], extra: &[(&str, &str)]) -> TestApp {
        let broker = self.names.settings(&self.url());
        let mut overrides: Vec<(&str, &str)> =
            broker.iter().map(|(k, v)| (*k, v.as_str())).collect();
        overrides.extend_from_slice(extra);
        TestApp::spawn_roles(test_settings(&self.database, &overrides), roles).await
    }
}
