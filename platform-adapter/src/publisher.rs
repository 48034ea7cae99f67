//! Publishing with publisher confirms: a message counts as sent only once the broker has
//! stored it.

use lapin::{
    BasicProperties, Channel, Confirmation, Connection,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    types::{FieldTable, LongString},
};
use tokio::sync::Mutex;

use crate::{Error, connection::connect, events::OutboundEvent, topology::short};

/// Persistent delivery mode.
const PERSISTENT: u8 = 2;

/// A confirm-mode channel on its own connection; reconnects on the next publish after a loss.
pub struct Publisher {
    url: String,
    name: String,
    link: Mutex<Option<(Connection, Channel)>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("url", &crate::connection::redact(&self.url))
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher that connects on first use; `name` shows in the broker's UI.
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: name.into(),
            link: Mutex::new(None),
        }
    }

    /// Publishes and waits for the broker's confirm. Persistent, mandatory,
    /// `application/json`; an unroutable or nacked message is [`Error::NotConfirmed`].
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        message_id: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<(), Error> {
        let mut table = FieldTable::default();
        for (name, value) in headers {
            table.insert(short(name)?, LongString::from(*value).into());
        }
        let properties = BasicProperties::default()
            .with_message_id(short(message_id)?)
            .with_headers(table);
        let channel = self.channel().await?;
        let result = publish_confirmed(&channel, exchange, routing_key, payload, properties).await;
        if result.is_err() && !channel.status().connected() {
            // The next publish opens a fresh connection instead of failing forever.
            self.forget().await;
        }
        result
    }

    /// Publishes an outbound message to `exchange` with its type as routing key and its id
    /// as message id.
    pub async fn publish_event(&self, exchange: &str, event: &OutboundEvent) -> Result<(), Error> {
        let payload = event.encode()?;
        self.publish(
            exchange,
            event.routing_key(),
            event.id.as_str(),
            &payload,
            &[],
        )
        .await
    }

    /// Closes the connection, if open.
    pub async fn close(&self) {
        if let Some((connection, _)) = self.link.lock().await.take() {
            let _ = connection.close(200, "publisher closed".into()).await;
        }
    }

    async fn channel(&self) -> Result<Channel, Error> {
        let mut link = self.link.lock().await;
        if let Some((connection, channel)) = link.as_ref()
            && connection.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let connection = connect(&self.url, &self.name).await?;
        let channel = confirm_channel(&connection).await?;
        *link = Some((connection, channel.clone()));
        Ok(channel)
    }

    async fn forget(&self) {
        self.link.lock().await.take();
    }
}

/// A new channel in confirm mode.
pub(crate) async fn confirm_channel(connection: &Connection) -> Result<Channel, Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Publishes on a confirm-mode channel and waits for the confirm. Adds persistence and the
/// JSON content type to `properties`.
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
) -> Result<(), Error> {
    let properties = properties
        .with_delivery_mode(PERSISTENT)
        .with_content_type("application/json".into());
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let confirmation = channel
        .basic_publish(
            short(exchange)?,
            short(routing_key)?,
            options,
            payload,
            properties,
        )
        .await?
        .await?;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(Error::NotConfirmed(format!(
            "unroutable: exchange {exchange:?} has no queue bound for {routing_key:?} ({})",
            returned.reply_text
        ))),
        Confirmation::Nack(_) => Err(Error::NotConfirmed(format!(
            "broker refused the message for exchange {exchange:?}"
        ))),
        Confirmation::NotRequested => {
            Err(Error::NotConfirmed("channel is not in confirm mode".into()))
        }
    }
}
