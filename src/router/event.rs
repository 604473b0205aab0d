//! The event a handler sees: its id, type, source, attempt and body, with
//! helpers to read the body as JSON or as your own type. The worker builds
//! it from a claimed stored event; [`Event::new`] builds one for tests.

use std::time::SystemTime;

use serde::de::DeserializeOwned;

use super::HandlerError;

/// An accepted event as a handler sees it.
///
/// ```
/// use webhook_inbox::Event;
///
/// let e = Event::new("evt_1", "order.filled", br#"{"event":"order.filled","data":{"id":"ord_1"}}"#.to_vec());
/// assert_eq!(e.event_type(), "order.filled");
/// assert_eq!(e.json().unwrap()["data"]["id"], "ord_1");
/// ```
#[derive(Debug, Clone)]
pub struct Event {
    pub(crate) seq: u64,
    pub(crate) id: String,
    pub(crate) source: String,
    pub(crate) event_type: String,
    pub(crate) received_at: SystemTime,
    pub(crate) attempt: u32,
    pub(crate) body: Vec<u8>,
}

impl Event {
    /// An event as a first attempt would see it, received now from source
    /// `test` — for unit tests of handlers.
    ///
    /// ```
    /// use webhook_inbox::Event;
    ///
    /// let e = Event::new("evt_1", "kyc.verification.approved", b"{}".to_vec());
    /// assert_eq!((e.attempt(), e.source()), (1, "test"));
    /// ```
    pub fn new(id: impl Into<String>, event_type: impl Into<String>, body: Vec<u8>) -> Self {
        Self {
            seq: 0,
            id: id.into(),
            source: "test".to_owned(),
            event_type: event_type.into(),
            received_at: SystemTime::now(),
            attempt: 1,
            body,
        }
    }

    /// The store's sequence number (acceptance order).
    ///
    /// ```
    /// # use webhook_inbox::Event;
    /// assert_eq!(Event::new("a", "t", vec![]).seq(), 0);
    /// ```
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The event id (the same on every attempt: use it to make handlers idempotent).
    ///
    /// ```
    /// # use webhook_inbox::Event;
    /// assert_eq!(Event::new("evt_9", "t", vec![]).id(), "evt_9");
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The ingestor's source name.
    ///
    /// ```
    /// # use webhook_inbox::Event;
    /// assert_eq!(Event::new("a", "t", vec![]).source(), "test");
    /// ```
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The event type (`order.filled`).
    ///
    /// ```
    /// # use webhook_inbox::Event;
    /// assert_eq!(Event::new("a", "order.filled", vec![]).event_type(), "order.filled");
    /// ```
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// When the delivery was accepted.
    ///
    /// ```
    /// # use webhook_inbox::Event;
    /// assert!(Event::new("a", "t", vec![]).received_at() <= std::time::SystemTime::now());
    /// ```
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }

    /// This attempt's number, from 1.
    ///
    /// ```
    /// # use webhook_inbox::Event;
    /// assert_eq!(Event::new("a", "t", vec![]).attempt(), 1);
    /// ```
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The raw body, as received.
    ///
    /// ```
    /// # use webhook_inbox::Event;
    /// assert_eq!(Event::new("a", "t", b"\xff".to_vec()).body(), b"\xff");
    /// ```
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body parsed as JSON. Not JSON is a permanent failure: retrying
    /// cannot change the bytes.
    ///
    /// ```
    /// # use webhook_inbox::Event;
    /// assert!(Event::new("a", "t", b"not json".to_vec()).json().is_err());
    /// ```
    pub fn json(&self) -> Result<serde_json::Value, HandlerError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| HandlerError::permanent(format!("the body is not JSON: {e}")))
    }

    /// The envelope's `data` field (Bluum, Stripe) — or the whole body when it
    /// has none (GitHub) — deserialized into `T`. A payload that does not fit
    /// `T` is a permanent failure (dead letter), not a retry loop.
    ///
    /// ```
    /// use webhook_inbox::Event;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Order { id: String, filled_quantity: String }
    ///
    /// let e = Event::new("evt_1", "order.filled",
    ///     br#"{"event":"order.filled","data":{"id":"ord_1","filled_quantity":"10"}}"#.to_vec());
    /// let order: Order = e.data()?;
    /// assert_eq!((order.id.as_str(), order.filled_quantity.as_str()), ("ord_1", "10"));
    /// # Ok::<(), webhook_inbox::HandlerError>(())
    /// ```
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        let mut value = self.json()?;
        let data = match value.get_mut("data") {
            Some(data) => data.take(),
            None => value,
        };
        serde_json::from_value(data).map_err(|e| {
            HandlerError::permanent(format!(
                "the payload of `{}` does not deserialize: {e}",
                self.event_type
            ))
        })
    }
}
