//! Bluum's webhook catalog: the event names it documents, its envelope, and
//! serde types for the order and deposit payloads.
//!
//! What is Bluum's and what is assumed (docs/BLUUM_API.md has the pages):
//! the event names are Bluum's; the envelope's `event` and `data` are read by
//! Bluum's own example handler, its `timestamp` is assumed; the payloads'
//! field names ([`Order`], [`Deposit`]) are taken from Bluum's REST order and
//! deposit records, not from a webhook example — an assumption, which is why
//! every type here ignores fields it does not know and keeps optional what
//! may be absent.
//!
//! Every delivery is `{"event": NAME, "timestamp": RFC 3339, "data": {…}}`.
//! Decimal amounts (quantities, prices, money) are JSON strings, and stay
//! strings here: [`Decimal`] keeps the exact text and converts to scaled
//! integers without ever passing through a float. All types ignore fields
//! they do not know, so Bluum adding one never breaks your handler.
//!
//! ```
//! use webhook_inbox::bluum::{self, Order};
//! use webhook_inbox::{Event, Router};
//!
//! let router = Router::builder()
//!     .on_typed(bluum::ORDER_FILLED, |e: &Event, order: Order| {
//!         let cents = order.average_price.as_ref().and_then(|p| p.to_scaled(2));
//!         println!("{} {} {} @ {cents:?} cents (event {})", order.side, order.filled_quantity, order.symbol, e.id());
//!         Ok(())
//!     })
//!     .build()?;
//! # let _ = router;
//! # Ok::<(), webhook_inbox::ConfigError>(())
//! ```

use std::fmt;
use std::str::FromStr;

#[cfg(feature = "bluum-client")]
pub mod client;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares each event name as a constant with its doc and a doc test,
/// `EVENT_TYPES` listing them all in order, and `CATALOG` describing each.
macro_rules! catalog {
    ($($name:ident = $value:literal, $display:literal, $what:literal;)*) => {
        $(
            #[doc = concat!("`", $value, "`: ", $what)]
            ///
            /// ```
            #[doc = concat!("assert_eq!(webhook_inbox::bluum::", stringify!($name), ", \"", $value, "\");")]
            /// ```
            pub const $name: &str = $value;
        )*

        /// Every event name above, in Bluum's documented order.
        ///
        /// ```
        /// use webhook_inbox::bluum;
        ///
        /// assert!(bluum::EVENT_TYPES.contains(&"order.filled"));
        /// assert_eq!(bluum::EVENT_TYPES.len(), 16);
        /// ```
        pub const EVENT_TYPES: &[&str] = &[$($name),*];

        /// Every event name above with what `GET /v1/webhooks/event-types`
        /// says about it, in the same order as [`EVENT_TYPES`].
        ///
        /// ```
        /// use webhook_inbox::bluum;
        ///
        /// let filled = bluum::CATALOG.iter().find(|e| e.name == bluum::ORDER_FILLED).unwrap();
        /// assert_eq!((filled.category(), filled.display_name), ("order", "Order filled"));
        /// ```
        pub const CATALOG: &[CatalogEntry] = &[$(CatalogEntry {
            name: $value,
            display_name: $display,
            description: $what,
        }),*];
    };
}

/// One event type of Bluum's catalog.
///
/// ```
/// use webhook_inbox::bluum::CATALOG;
///
/// let first = &CATALOG[0];
/// assert_eq!((first.name, first.category()), ("account.created", "account"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CatalogEntry {
    /// The event name, `{domain}.{action}`.
    pub name: &'static str,
    /// A short human-readable title.
    pub display_name: &'static str,
    /// One sentence on when the event fires.
    pub description: &'static str,
}

impl CatalogEntry {
    /// The domain: the name up to its first dot (`transfer` for
    /// `transfer.deposit.completed`).
    ///
    /// ```
    /// use webhook_inbox::bluum::CATALOG;
    ///
    /// assert!(CATALOG.iter().any(|e| e.category() == "kyc"));
    /// ```
    pub fn category(&self) -> &'static str {
        self.name.split('.').next().unwrap_or(self.name)
    }
}

catalog! {
    ACCOUNT_CREATED = "account.created", "Account created", "A new account was created.";
    ACCOUNT_UPDATED = "account.updated", "Account updated", "Account details changed.";
    ORDER_ACCEPTED = "order.accepted", "Order accepted", "An order was accepted for execution.";
    ORDER_FILLED = "order.filled", "Order filled", "An order was fully filled.";
    ORDER_PARTIALLY_FILLED = "order.partially_filled", "Order partially filled", "An order was partially filled.";
    ORDER_CANCELED = "order.canceled", "Order canceled", "An order was canceled.";
    ORDER_REJECTED = "order.rejected", "Order rejected", "An order was rejected.";
    DEPOSIT_INITIATED = "transfer.deposit.initiated", "Deposit initiated", "A deposit was initiated.";
    DEPOSIT_COMPLETED = "transfer.deposit.completed", "Deposit completed", "A deposit completed; the funds are available.";
    DEPOSIT_FAILED = "transfer.deposit.failed", "Deposit failed", "A deposit failed.";
    WITHDRAWAL_INITIATED = "transfer.withdrawal.initiated", "Withdrawal initiated", "A withdrawal was initiated.";
    WITHDRAWAL_COMPLETED = "transfer.withdrawal.completed", "Withdrawal completed", "A withdrawal completed.";
    WITHDRAWAL_FAILED = "transfer.withdrawal.failed", "Withdrawal failed", "A withdrawal failed.";
    DOCUMENT_APPROVED = "document.approved", "Document approved", "A KYC document was approved.";
    DOCUMENT_REJECTED = "document.rejected", "Document rejected", "A KYC document was rejected.";
    KYC_VERIFICATION_APPROVED = "kyc.verification.approved", "KYC verification approved", "An investor passed KYC verification.";
}

/// A whole delivery: the event name, when Bluum created it, and its payload
/// (`T`, or [`serde_json::Value`] when you only need the name).
///
/// ```
/// use webhook_inbox::bluum::{Envelope, Order};
///
/// let body = br#"{"event":"order.filled","timestamp":"2026-11-28T12:00:00Z",
///   "data":{"id":"ord_1","investor_id":"inv_1","symbol":"AAPL","side":"buy",
///           "status":"filled","filled_quantity":"10","average_price":"187.42"}}"#;
/// let e: Envelope<Order> = serde_json::from_slice(body)?;
/// assert_eq!((e.event.as_str(), e.data.symbol.as_str()), ("order.filled", "AAPL"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Envelope<T = serde_json::Value> {
    /// The event name, one of [`EVENT_TYPES`] (or one Bluum added since).
    pub event: String,
    /// When the event happened, RFC 3339 as Bluum sent it.
    pub timestamp: String,
    /// The payload.
    pub data: T,
}

/// Buy or sell. A value this version does not know reads as [`Side::Other`]
/// (its text is not kept: read `data` as a [`serde_json::Value`] if you need it).
///
/// ```
/// use webhook_inbox::bluum::Side;
///
/// let side: Side = serde_json::from_str(r#""sell""#)?;
/// assert_eq!(side, Side::Sell);
/// assert_eq!(serde_json::from_str::<Side>(r#""short""#)?, Side::Other);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Side {
    /// A purchase.
    Buy,
    /// A sale.
    Sell,
    /// A value this version does not know.
    #[serde(other)]
    Other,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
            Self::Other => "other",
        })
    }
}

/// The payload of the `order.*` events, assumed to be Bluum's order
/// resource: the field names come from Bluum's REST order record, not from a
/// webhook example (docs/BLUUM_API.md).
///
/// `status` stays a string (Bluum's vocabulary: `pending`, `filled`,
/// `partial`, `cancelled`, `failed`, …) so a new status never fails a
/// delivery; optional fields are `None` when absent or `null`.
///
/// ```
/// use webhook_inbox::bluum::{Order, Side};
///
/// let order: Order = serde_json::from_str(r#"{"id":"ord_1","investor_id":"inv_1",
///   "symbol":"AAPL","side":"buy","status":"partial","quantity":"10",
///   "filled_quantity":"4","average_price":null,"brand_new_field":1}"#)?;
/// assert_eq!(order.side, Side::Buy);
/// assert_eq!(order.filled_quantity.as_str(), "4");
/// assert!(order.average_price.is_none());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Order {
    /// The order id (`ord_…`).
    pub id: String,
    /// The investor who placed it (`inv_…`).
    pub investor_id: String,
    /// The ticker, e.g. `AAPL`.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Bluum's order status.
    pub status: String,
    /// The quantity ordered.
    #[serde(default)]
    pub quantity: Option<Decimal>,
    /// The quantity filled so far.
    pub filled_quantity: Decimal,
    /// The average fill price.
    #[serde(default)]
    pub average_price: Option<Decimal>,
    /// ISO 4217 currency of the prices.
    #[serde(default)]
    pub currency: Option<String>,
    /// Why the order failed or was rejected.
    #[serde(default)]
    pub failure_reason: Option<String>,
}

/// The payload of the `transfer.deposit.*` events, assumed to be Bluum's
/// deposit record: the field names (`deposit_id`, `account_id`, `amount`, …)
/// come from Bluum's REST deposit record, not from a webhook example
/// (docs/BLUUM_API.md). If your deliveries differ, read `data` as a
/// [`serde_json::Value`].
///
/// ```
/// use webhook_inbox::bluum::Deposit;
///
/// let d: Deposit = serde_json::from_str(r#"{"deposit_id":"dep_1","account_id":"acc_1",
///   "status":"completed","amount":"1000.10","currency":"USD","method":"ach"}"#)?;
/// assert_eq!(d.amount.to_scaled(2), Some(100_010)); // cents, exactly
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Deposit {
    /// The deposit id (`dep_…`).
    pub deposit_id: String,
    /// The investor account credited.
    pub account_id: String,
    /// `pending`, `processing`, `received`, `completed`, `expired`,
    /// `canceled` or `failed` (kept as a string, see [`Order::status`]).
    pub status: String,
    /// The amount.
    pub amount: Decimal,
    /// ISO 4217 currency code.
    pub currency: String,
    /// `ach`, `manual_bank_transfer` or `wire`.
    #[serde(default)]
    pub method: Option<String>,
    /// Why it failed, if it did.
    #[serde(default)]
    pub failure_reason: Option<String>,
}

/// An exact decimal number as Bluum sends it: a JSON string such as
/// `"187.42"` or `"-0.5"`, kept as written.
///
/// A JSON *number* in its place is refused: it would have been rounded to a
/// float before this type could see it. Equality compares the text, so
/// `"1.0"` and `"1.00"` differ; compare [`Decimal::to_scaled`] values for
/// numeric equality.
///
/// ```
/// use webhook_inbox::bluum::Decimal;
///
/// let price: Decimal = "0.1".parse()?;
/// assert_eq!(price.to_scaled(18), Some(100_000_000_000_000_000)); // no 0.1 float error
/// assert!("1e3".parse::<Decimal>().is_err());
/// assert!(serde_json::from_str::<Decimal>("187.42").is_err());
/// # Ok::<(), webhook_inbox::bluum::DecimalError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal(String);

/// A string that is not a plain decimal number (`-?digits[.digits]`).
///
/// ```
/// use webhook_inbox::bluum::Decimal;
///
/// let err = "12,50".parse::<Decimal>().unwrap_err();
/// assert!(err.to_string().contains("12,50"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a decimal number (expected digits with an optional sign and fraction)")]
pub struct DecimalError(String);

impl Decimal {
    /// The number exactly as received.
    ///
    /// ```
    /// use webhook_inbox::bluum::Decimal;
    ///
    /// assert_eq!("2500.00".parse::<Decimal>()?.as_str(), "2500.00");
    /// # Ok::<(), webhook_inbox::bluum::DecimalError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number times 10^`scale` as an integer — cents with `scale` 2 —
    /// or `None` if it has more decimal places than `scale` (it would have to
    /// be rounded) or does not fit in an `i128`.
    ///
    /// ```
    /// use webhook_inbox::bluum::Decimal;
    ///
    /// let amount: Decimal = "-12.5".parse()?;
    /// assert_eq!(amount.to_scaled(2), Some(-1250));
    /// assert_eq!(amount.to_scaled(0), None);
    /// # Ok::<(), webhook_inbox::bluum::DecimalError>(())
    /// ```
    pub fn to_scaled(&self, scale: u32) -> Option<i128> {
        let (negative, digits) = match self.0.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, self.0.as_str()),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let places = u32::try_from(fraction.len()).ok()?;
        let padding = scale.checked_sub(places)?;
        let mut value: i128 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            value = value
                .checked_mul(10)?
                .checked_add(i128::from(char::from(b).to_digit(10)?))?;
        }
        value = value.checked_mul(10i128.checked_pow(padding)?)?;
        Some(if negative { -value } else { value })
    }
}

impl FromStr for Decimal {
    type Err = DecimalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix('-').unwrap_or(s);
        let (whole, fraction) = match digits.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (digits, None),
        };
        let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if all_digits(whole) && fraction.is_none_or(all_digits) {
            Ok(Self(s.to_owned()))
        } else {
            Err(DecimalError(s.chars().take(64).collect()))
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Decimal;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number in a JSON string, such as \"187.42\"")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly_or_not_at_all() {
        for ok in ["0", "-0", "187.42", "0.000000000000000001", "1000000"] {
            assert_eq!(ok.parse::<Decimal>().unwrap().as_str(), ok);
        }
        for bad in ["", "-", ".5", "5.", "1e3", "+1", "1.2.3", " 1", "NaN", "１"] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn scaling_is_exact_and_refuses_to_round_or_overflow() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(d("187.42").to_scaled(2), Some(18_742));
        assert_eq!(d("187.42").to_scaled(4), Some(1_874_200));
        assert_eq!(d("187.425").to_scaled(2), None);
        assert_eq!(d("-0.01").to_scaled(2), Some(-1));
        assert_eq!(d(&"9".repeat(40)).to_scaled(0), None);
        assert_eq!(d("1").to_scaled(u32::MAX), None);
    }

    #[test]
    fn every_catalog_name_is_distinct_and_dotted() {
        let mut names = EVENT_TYPES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EVENT_TYPES.len());
        assert!(EVENT_TYPES.iter().all(|n| n.contains('.')));
    }

    #[test]
    fn a_delivery_round_trips_without_touching_the_decimals() {
        let body = r#"{"event":"transfer.deposit.completed","timestamp":"2026-11-28T12:00:00Z","data":{"deposit_id":"dep_1","account_id":"a","status":"completed","amount":"12345678901234567890.12","currency":"USD"}}"#;
        let e: Envelope<Deposit> = serde_json::from_str(body).unwrap();
        assert_eq!(e.data.amount.as_str(), "12345678901234567890.12");
        let again = serde_json::to_string(&e).unwrap();
        assert!(
            again.contains(r#""amount":"12345678901234567890.12""#),
            "{again}"
        );
    }

    #[test]
    fn a_missing_required_field_is_an_error_not_a_default() {
        let r = serde_json::from_str::<Order>(r#"{"id":"ord_1"}"#);
        assert!(r.is_err());
    }
}
