//! What the emulator remembers besides the outbox: webhooks (with their
//! signing secrets) and each delivery's attempt log. A sled database of its
//! own, flushed before any change is acknowledged, so a restart finds every
//! webhook and delivery it ever answered for.

use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

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
    Storage(#[from] sled::Error),
    #[error("registry record {0} is unreadable: {1}")]
    Corrupt(String, serde_json::Error),
    #[error("registry lock poisoned by a panic")]
    Poisoned,
}

/// Webhooks and deliveries, keyed by ids that sort in creation order.
pub struct Registry {
    db: sled::Db,
    webhooks: sled::Tree,
    deliveries: sled::Tree,
    /// Serialises read-modify-write of one record (attempt logs, updates).
    write: Mutex<()>,
}

impl Registry {
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        let db = sled::open(dir)?;
        Ok(Self {
            webhooks: db.open_tree("webhooks")?,
            deliveries: db.open_tree("deliveries")?,
            db,
            write: Mutex::new(()),
        })
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

    pub fn webhooks(&self) -> Result<Vec<Webhook>, RegistryError> {
        all(&self.webhooks)
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

    pub fn deliveries(&self) -> Result<Vec<Delivery>, RegistryError> {
        all(&self.deliveries)
    }

    /// Stores new deliveries, durably, in one flush.
    pub fn add_deliveries(&self, deliveries: &[Delivery]) -> Result<(), RegistryError> {
        for delivery in deliveries {
            put(&self.deliveries, &delivery.id, delivery)?;
        }
        self.flush()
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

fn get<T: for<'de> Deserialize<'de>>(
    tree: &sled::Tree,
    id: &str,
) -> Result<Option<T>, RegistryError> {
    tree.get(id)?.map(|bytes| decode(id, &bytes)).transpose()
}

fn all<T: for<'de> Deserialize<'de>>(tree: &sled::Tree) -> Result<Vec<T>, RegistryError> {
    tree.iter()
        .map(|entry| {
            let (key, bytes) = entry?;
            decode(&String::from_utf8_lossy(&key), &bytes)
        })
        .collect()
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
