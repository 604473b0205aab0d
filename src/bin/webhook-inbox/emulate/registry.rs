//! What the emulator remembers besides the outbox: webhooks (with their
//! signing secrets) and each delivery's attempt log. A sled database of its
//! own, flushed before any change is acknowledged, so a restart finds every
//! webhook and delivery it answered for, until finished deliveries are pruned
//! after the retention (`--delivery-retention`).
//!
//! Besides the records, two indexes (keys only, no values to decode): each
//! webhook's deliveries (`webhook id, 0, delivery id`), so a filtered list
//! reads one page; and each attempted delivery's latest attempt (`unix
//! millis, big-endian, then delivery id`), so pruning reads only what is old.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A registered webhook, as stored.
#[derive(Clone, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    /// `None` when created without one (Bluum's webhooks guide sends none).
    pub name: Option<String>,
    pub url: String,
    pub description: Option<String>,
    pub event_type_names: Vec<String>,
    pub active: bool,
    pub secret: String,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

impl Webhook {
    /// Whether this webhook is subscribed to `event_type`: an exact name or a
    /// `prefix.*` wildcard.
    pub fn subscribes_to(&self, event_type: &str) -> bool {
        self.event_type_names
            .iter()
            .any(|name| match name.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => name == event_type,
            })
    }
}

/// One attempt to deliver, as logged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub at: SystemTime,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// Why the attempt failed; `None` for a 2xx.
    pub error: Option<String>,
    /// The start of the receiver's answer, for debugging a refusal.
    pub response: Option<String>,
    pub duration_ms: u64,
}

/// One event on its way to one webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub webhook_id: String,
    pub created_at: SystemTime,
    /// The exact body POSTed on every attempt (JSON, so UTF-8).
    pub body: String,
    pub delivered_at: Option<SystemTime>,
    pub attempts: Vec<Attempt>,
}

/// Why the registry could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry storage failed: {0}")]
    Storage(sled::Error),
    #[error("registry record {0} is unreadable: {1}")]
    Corrupt(String, serde_json::Error),
    #[error("registry lock poisoned by a panic")]
    Poisoned,
}

// The cause is in the message, not also a `source()` (said once in a chain).
impl From<sled::Error> for RegistryError {
    fn from(e: sled::Error) -> Self {
        Self::Storage(e)
    }
}

/// Webhooks and deliveries, keyed by ids that sort in creation order.
pub struct Registry {
    db: sled::Db,
    webhooks: sled::Tree,
    deliveries: sled::Tree,
    /// `webhook id, 0, delivery id` → nothing.
    by_webhook: sled::Tree,
    /// `latest attempt (unix millis, big-endian), delivery id` → nothing.
    by_activity: sled::Tree,
    /// Serialises read-modify-write of one record (attempt logs, updates).
    write: Mutex<()>,
}

impl Registry {
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        let db = sled::open(dir)?;
        let registry = Self {
            webhooks: db.open_tree("webhooks")?,
            deliveries: db.open_tree("deliveries")?,
            by_webhook: db.open_tree("deliveries_by_webhook")?,
            by_activity: db.open_tree("deliveries_by_activity")?,
            db,
            write: Mutex::new(()),
        };
        registry.index_older_records()?;
        Ok(registry)
    }

    /// A registry written before the indexes existed gets them, once.
    fn index_older_records(&self) -> Result<(), RegistryError> {
        const INDEXED: &[u8] = b"indexes_version";
        if self.db.get(INDEXED)?.is_some() {
            return Ok(());
        }
        for entry in self.deliveries.iter() {
            let (key, bytes) = entry?;
            let delivery: Delivery = decode(&String::from_utf8_lossy(&key), &bytes)?;
            self.by_webhook.insert(webhook_key(&delivery), &[])?;
            if let Some(last) = delivery.attempts.last() {
                self.by_activity
                    .insert(activity_key(last.at, &delivery.id), &[])?;
            }
        }
        self.db.insert(INDEXED, &[1u8])?;
        self.flush()
    }

    /// A fresh id: `prefix`, a counter that survives restarts (so ids sort in
    /// creation order), and random hex (so ids are not guessable).
    pub fn new_id(&self, prefix: &str) -> Result<String, RegistryError> {
        let counter = self.db.generate_id()?;
        let mut random = [0u8; 4];
        // Falls back to the counter alone if the OS has no entropy to give.
        let _ = getrandom::fill(&mut random);
        Ok(format!("{prefix}{counter:08x}{}", hex::encode(random)))
    }

    pub fn webhook(&self, id: &str) -> Result<Option<Webhook>, RegistryError> {
        get(&self.webhooks, id)
    }

    /// Webhooks in creation order, decoded one at a time as they are read.
    pub fn webhooks_iter(&self) -> impl Iterator<Item = Result<Webhook, RegistryError>> + '_ {
        self.webhooks.iter().map(|entry| {
            let (key, bytes) = entry?;
            decode(&String::from_utf8_lossy(&key), &bytes)
        })
    }

    pub fn put_webhook(&self, webhook: &Webhook) -> Result<(), RegistryError> {
        put(&self.webhooks, &webhook.id, webhook)?;
        self.flush()
    }

    /// Applies `change` to the stored webhook and stores the result; `None`
    /// when there is no such webhook.
    pub fn update_webhook(
        &self,
        id: &str,
        change: impl FnOnce(&mut Webhook),
    ) -> Result<Option<Webhook>, RegistryError> {
        let _guard = self.write.lock().map_err(|_| RegistryError::Poisoned)?;
        let Some(mut webhook) = self.webhook(id)? else {
            return Ok(None);
        };
        change(&mut webhook);
        self.put_webhook(&webhook)?;
        Ok(Some(webhook))
    }

    /// Whether there was such a webhook.
    pub fn delete_webhook(&self, id: &str) -> Result<bool, RegistryError> {
        // Under the write lock, so an update in progress cannot put it back.
        let _guard = self.write.lock().map_err(|_| RegistryError::Poisoned)?;
        let existed = self.webhooks.remove(id)?.is_some();
        self.flush()?;
        Ok(existed)
    }

    pub fn delivery(&self, id: &str) -> Result<Option<Delivery>, RegistryError> {
        get(&self.deliveries, id)
    }

    /// Delivery ids in creation order, all or `webhook`'s, read from the
    /// keys alone: a page is skipped to without decoding any record.
    pub fn delivery_ids<'a>(
        &'a self,
        webhook: Option<&str>,
    ) -> Box<dyn Iterator<Item = Result<String, RegistryError>> + 'a> {
        let text = |key: &[u8]| String::from_utf8_lossy(key).into_owned();
        match webhook {
            None => Box::new(
                self.deliveries
                    .iter()
                    .keys()
                    .map(move |key| Ok(text(&key?))),
            ),
            Some(webhook) => {
                let mut prefix = webhook.as_bytes().to_vec();
                prefix.push(0);
                let skip = prefix.len();
                Box::new(
                    self.by_webhook
                        .scan_prefix(prefix)
                        .keys()
                        .map(move |key| Ok(text(&key?[skip..]))),
                )
            }
        }
    }

    /// Every delivery, decoded one at a time as they are read.
    pub fn deliveries_iter(&self) -> impl Iterator<Item = Result<Delivery, RegistryError>> + '_ {
        self.deliveries.iter().map(|entry| {
            let (key, bytes) = entry?;
            decode(&String::from_utf8_lossy(&key), &bytes)
        })
    }

    /// Stores new deliveries, durably, in one flush.
    pub fn add_deliveries(&self, deliveries: &[Delivery]) -> Result<(), RegistryError> {
        for delivery in deliveries {
            put(&self.deliveries, &delivery.id, delivery)?;
            self.by_webhook.insert(webhook_key(delivery), &[])?;
        }
        self.flush()
    }

    /// Deletes the deliveries (records, attempt logs, index entries) whose
    /// latest attempt is older than `retention` and that are finished:
    /// delivered, or parked as `parked` says. Returns how many went.
    pub fn prune(
        &self,
        retention: Duration,
        parked: impl Fn(&Delivery) -> bool,
    ) -> Result<usize, RegistryError> {
        let cutoff = SystemTime::now()
            .checked_sub(retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let end = activity_key(cutoff, "");
        let mut pruned = 0;
        for entry in self.by_activity.range(..end) {
            let key = entry?.0;
            let id = String::from_utf8_lossy(key.get(8..).unwrap_or_default()).into_owned();
            let _guard = self.write.lock().map_err(|_| RegistryError::Poisoned)?;
            let Some(delivery) = self.delivery(&id)? else {
                self.by_activity.remove(&key)?;
                continue;
            };
            let latest = delivery.attempts.last().map(|a| activity_key(a.at, &id));
            if latest.as_deref() != Some(&key[..]) {
                // A later attempt has its own entry.
                self.by_activity.remove(&key)?;
                continue;
            }
            if delivery.delivered_at.is_some() || parked(&delivery) {
                self.deliveries.remove(id.as_bytes())?;
                self.by_webhook.remove(webhook_key(&delivery))?;
                self.by_activity.remove(&key)?;
                pruned += 1;
            }
        }
        if pruned > 0 {
            self.flush()?;
        }
        Ok(pruned)
    }

    /// Appends an attempt to a delivery's log (and marks it delivered on a
    /// 2xx); `false` if the delivery is unknown.
    pub fn log_attempt(&self, id: &str, attempt: Attempt) -> Result<bool, RegistryError> {
        let _guard = self.write.lock().map_err(|_| RegistryError::Poisoned)?;
        let Some(mut delivery) = self.delivery(id)? else {
            return Ok(false);
        };
        if attempt.error.is_none() {
            delivery.delivered_at = Some(attempt.at);
        }
        if let Some(last) = delivery.attempts.last() {
            self.by_activity.remove(activity_key(last.at, id))?;
        }
        self.by_activity.insert(activity_key(attempt.at, id), &[])?;
        delivery.attempts.push(attempt);
        put(&self.deliveries, id, &delivery)?;
        self.flush()?;
        Ok(true)
    }

    pub fn flush(&self) -> Result<(), RegistryError> {
        self.db.flush()?;
        Ok(())
    }
}

fn webhook_key(delivery: &Delivery) -> Vec<u8> {
    let mut key = delivery.webhook_id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(delivery.id.as_bytes());
    key
}

fn activity_key(at: SystemTime, id: &str) -> Vec<u8> {
    let millis = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut key = millis.to_be_bytes().to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

fn get<T: for<'de> Deserialize<'de>>(
    tree: &sled::Tree,
    id: &str,
) -> Result<Option<T>, RegistryError> {
    tree.get(id)?.map(|bytes| decode(id, &bytes)).transpose()
}

fn put<T: Serialize>(tree: &sled::Tree, id: &str, value: &T) -> Result<(), RegistryError> {
    let bytes = serde_json::to_vec(value).map_err(|e| RegistryError::Corrupt(id.to_owned(), e))?;
    tree.insert(id, bytes)?;
    Ok(())
}

fn decode<T: for<'de> Deserialize<'de>>(id: &str, bytes: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::Corrupt(id.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(names: &[&str]) -> Webhook {
        Webhook {
            id: "wh_1".into(),
            name: Some("n".into()),
            url: "http://127.0.0.1:1/".into(),
            description: None,
            event_type_names: names.iter().map(|s| (*s).to_owned()).collect(),
            active: true,
            secret: "whsec_aGk=".into(),
            created_at: SystemTime::UNIX_EPOCH,
            updated_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn subscriptions_match_exact_names_and_wildcards() {
        let w = webhook(&["order.filled", "transfer.deposit.*"]);
        assert!(w.subscribes_to("order.filled"));
        assert!(!w.subscribes_to("order.canceled"));
        assert!(w.subscribes_to("transfer.deposit.completed"));
        assert!(!w.subscribes_to("transfer.withdrawal.completed"));
        assert!(webhook(&["order.*"]).subscribes_to("order.partially_filled"));
        assert!(!webhook(&["order.*"]).subscribes_to("orders.filled"));
    }
}
