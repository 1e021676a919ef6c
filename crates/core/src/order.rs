//! The order contract: requests are parsed into domain types at the edge, and the stored shape.

use std::fmt;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::correlation::RequestId;
use crate::money::{Money, MoneyError};
use crate::time::rfc3339;

/// The order JSON Schema (draft 4). The same file is the API Gateway model on AWS.
pub const ORDER_SCHEMA: &str = include_str!("../../../schema/order.schema.json");

static SCHEMA_VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(ORDER_SCHEMA).expect("order schema is valid JSON");
    jsonschema::draft4::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("order schema compiles")
});

/// A client- or server-chosen order id: `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct OrderId(String);

impl OrderId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, InvalidOrderId> {
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if first_ok && rest_ok && s.len() <= Self::MAX_LEN {
            Ok(OrderId(s.to_owned()))
        } else {
            Err(InvalidOrderId)
        }
    }

    /// A new time-ordered id (UUIDv7), so server-assigned ids sort by arrival.
    pub fn generate() -> Self {
        OrderId(uuid::Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrderId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        OrderId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be 1-64 characters: letters, digits, '_' or '-', starting with a letter or digit")]
pub struct InvalidOrderId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderItem {
    pub sku: String,
    pub quantity: u32,
    pub unit_price: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShippingAddress {
    pub line1: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

/// A validated order as posted, before it has an id. Only [`OrderRequest::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderRequest {
    #[serde(rename = "orderID", default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    pub customer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
    pub items: Vec<OrderItem>,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<ShippingAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// A validated order with its id: the body of the queue message, on AWS and locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Order {
    #[serde(rename = "orderID")]
    pub order_id: OrderId,
    pub customer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
    pub items: Vec<OrderItem>,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<ShippingAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// One offending field, named by its path (`items[0].quantity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Why an order body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderRejection {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("order is invalid: {}", summarize(.0))]
    Invalid(Vec<FieldError>),
}

fn summarize(details: &[FieldError]) -> String {
    details
        .iter()
        .map(|d| format!("{} {}", d.field, d.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl OrderRejection {
    pub fn details(&self) -> &[FieldError] {
        match self {
            OrderRejection::MalformedJson(_) => &[],
            OrderRejection::Invalid(details) => details,
        }
    }
}

impl OrderRequest {
    /// Parses a request body: JSON syntax, then the schema (every offending field), then the
    /// rules a schema cannot state exactly (money is read from its decimal text).
    pub fn parse(body: &[u8]) -> Result<OrderRequest, OrderRejection> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| OrderRejection::MalformedJson(e.to_string()))?;
        let mut details = schema_errors(&value);
        details.extend(money_errors(body));
        if !details.is_empty() {
            dedup_fields(&mut details);
            return Err(OrderRejection::Invalid(details));
        }
        let request: OrderRequest = serde_json::from_slice(body).map_err(|e| {
            OrderRejection::Invalid(vec![FieldError {
                field: "$".into(),
                message: e.to_string(),
            }])
        })?;
        Ok(request)
    }

    /// Fills in the id: the client's when it chose one, otherwise `assign()`.
    pub fn into_order(self, assign: impl FnOnce() -> OrderId) -> Order {
        Order {
            order_id: self.order_id.unwrap_or_else(assign),
            customer_id: self.customer_id,
            customer_email: self.customer_email,
            items: self.items,
            currency: self.currency,
            shipping_address: self.shipping_address,
            notes: self.notes,
        }
    }
}

impl Order {
    /// Parses a queue message body. It went through the same contract at the API, but the
    /// queue also takes messages from elsewhere, so it is checked again.
    pub fn parse(body: &[u8]) -> Result<Order, OrderRejection> {
        let request = OrderRequest::parse(body)?;
        match request.order_id {
            Some(_) => Ok(request.into_order(|| unreachable!("checked above"))),
            None => Err(OrderRejection::Invalid(vec![FieldError {
                field: "orderID".into(),
                message: "is required on a queued order".into(),
            }])),
        }
    }

    /// The exact sum of quantity x unitPrice.
    pub fn total(&self) -> Result<Money, MoneyError> {
        self.items.iter().try_fold(Money::ZERO, |sum, item| {
            sum.checked_add(item.unit_price.checked_mul(item.quantity)?)
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an order always serializes")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Stored,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Stored => "STORED",
        }
    }
}

/// An order as kept in the `orders` table and announced downstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredOrderJson", into = "StoredOrderJson")]
pub struct StoredOrder {
    pub order: Order,
    pub total: Money,
    pub status: OrderStatus,
    pub received_at: DateTime<Utc>,
    pub stored_at: DateTime<Utc>,
    /// The request id of the `POST /orders` that accepted it; absent on orders stored
    /// before request ids existed, or put on the queue by another producer.
    pub request_id: Option<RequestId>,
}

/// The JSON of a [`StoredOrder`]: the order's fields and the stored ones side by side. Spelled
/// out rather than `#[serde(flatten)]`: flatten buffers the fields (numbers as floats), and
/// money, read from its exact decimal text, cannot be read back from that buffer.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredOrderJson {
    #[serde(rename = "orderID")]
    order_id: OrderId,
    customer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer_email: Option<String>,
    items: Vec<OrderItem>,
    currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shipping_address: Option<ShippingAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notes: Option<String>,
    total: Money,
    status: OrderStatus,
    #[serde(with = "rfc3339")]
    received_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    stored_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_id: Option<RequestId>,
}

impl From<StoredOrder> for StoredOrderJson {
    fn from(s: StoredOrder) -> Self {
        let o = s.order;
        StoredOrderJson {
            order_id: o.order_id,
            customer_id: o.customer_id,
            customer_email: o.customer_email,
            items: o.items,
            currency: o.currency,
            shipping_address: o.shipping_address,
            notes: o.notes,
            total: s.total,
            status: s.status,
            received_at: s.received_at,
            stored_at: s.stored_at,
            request_id: s.request_id,
        }
    }
}

impl From<StoredOrderJson> for StoredOrder {
    fn from(j: StoredOrderJson) -> Self {
        StoredOrder {
            order: Order {
                order_id: j.order_id,
                customer_id: j.customer_id,
                customer_email: j.customer_email,
                items: j.items,
                currency: j.currency,
                shipping_address: j.shipping_address,
                notes: j.notes,
            },
            total: j.total,
            status: j.status,
            received_at: j.received_at,
            stored_at: j.stored_at,
            request_id: j.request_id,
        }
    }
}

impl StoredOrder {
    pub fn new(
        order: Order,
        received_at: DateTime<Utc>,
        stored_at: DateTime<Utc>,
    ) -> Result<Self, MoneyError> {
        let total = order.total()?;
        Ok(StoredOrder {
            order,
            total,
            status: OrderStatus::Stored,
            received_at,
            stored_at,
            request_id: None,
        })
    }

    pub fn with_request_id(mut self, request_id: Option<RequestId>) -> Self {
        self.request_id = request_id;
        self
    }

    pub fn id(&self) -> &OrderId {
        &self.order.order_id
    }
}

fn schema_errors(value: &Value) -> Vec<FieldError> {
    let mut details = Vec::new();
    for error in SCHEMA_VALIDATOR.iter_errors(value) {
        let path = field_path(error.instance_path());
        match error.kind() {
            jsonschema::error::ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                details.push(FieldError {
                    field: join_field(&path, name),
                    message: "is required".into(),
                });
            }
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    details.push(FieldError {
                        field: join_field(&path, name),
                        message: "is not a known field".into(),
                    });
                }
            }
            jsonschema::error::ValidationErrorKind::Pattern { .. }
            | jsonschema::error::ValidationErrorKind::Format { .. } => details.push(FieldError {
                message: pattern_message(&path).into(),
                field: path,
            }),
            jsonschema::error::ValidationErrorKind::MultipleOf { .. } => details.push(FieldError {
                field: path,
                message: MoneyError::TooManyDecimals.to_string(),
            }),
            _ => details.push(FieldError {
                field: path,
                message: error.to_string(),
            }),
        }
    }
    details
}

fn pattern_message(path: &str) -> &'static str {
    if path == "orderID" {
        "must be 1-64 characters: letters, digits, '_' or '-', starting with a letter or digit"
    } else if path == "currency" {
        "must be a 3-letter upper-case ISO 4217 code, like \"EUR\""
    } else if path.ends_with("country") {
        "must be a 2-letter upper-case ISO 3166 country code, like \"DE\""
    } else if path == "customerEmail" {
        "must be an e-mail address"
    } else if path == "notes" {
        "must not contain control characters other than newline and tab"
    } else if path == "customerId" || path.ends_with(".sku") || path.starts_with("shippingAddress.")
    {
        // They reach e-mails and terminals, where escape sequences and line breaks forge
        // lines ("Total: 0.01 EUR") or run terminal commands.
        "must not contain control characters"
    } else {
        "does not match the required pattern"
    }
}

/// Money is checked from its decimal text, so `0.1 + 0.2` can never sneak past as a float.
fn money_errors(body: &[u8]) -> Vec<FieldError> {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default)]
        items: Vec<ItemProbe<'a>>,
    }
    #[derive(Deserialize)]
    struct ItemProbe<'a> {
        #[serde(borrow, rename = "unitPrice", default)]
        unit_price: Option<&'a RawValue>,
    }
    let Ok(probe) = serde_json::from_slice::<Probe>(body) else {
        return Vec::new(); // the shape is wrong; the schema has said so
    };
    probe
        .items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let raw = item.unit_price?;
            match Money::parse_json_number(raw.get()) {
                Ok(_) | Err(MoneyError::NotANumber) => None,
                Err(e) => Some(FieldError {
                    field: format!("items[{i}].unitPrice"),
                    message: e.to_string(),
                }),
            }
        })
        .collect()
}

/// One message per field and problem: the schema and the exact money check can both object.
fn dedup_fields(details: &mut Vec<FieldError>) {
    let mut seen = std::collections::HashSet::new();
    details.retain(|d| seen.insert((d.field.clone(), d.message.clone())));
}

fn field_path(location: &jsonschema::paths::Location) -> String {
    let mut out = String::new();
    for segment in location.iter() {
        match segment {
            jsonschema::paths::LocationSegment::Property(p) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&p);
            }
            jsonschema::paths::LocationSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() { "$".into() } else { out }
}

fn join_field(parent: &str, name: &str) -> String {
    if parent == "$" {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SubsecRound;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "orderID": "ord-1",
            "customerId": "cust-42",
            "customerEmail": "ada@example.com",
            "items": [
                {"sku": "BOOK-1", "quantity": 3, "unitPrice": 19.99},
                {"sku": "PEN", "quantity": 1, "unitPrice": 0.1}
            ],
            "currency": "EUR",
            "shippingAddress": {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"},
            "notes": "leave at the door"
        })
    }

    fn parse(v: &Value) -> Result<OrderRequest, OrderRejection> {
        OrderRequest::parse(v.to_string().as_bytes())
    }

    fn fields(v: &Value) -> Vec<String> {
        parse(v)
            .unwrap_err()
            .details()
            .iter()
            .map(|d| d.field.clone())
            .collect()
    }

    #[test]
    fn control_characters_are_refused_in_every_text_field_and_notes_keep_newline_and_tab() {
        for (pointer, field) in [
            ("/customerId", "customerId"),
            ("/items/0/sku", "items[0].sku"),
            ("/shippingAddress/line1", "shippingAddress.line1"),
            ("/shippingAddress/city", "shippingAddress.city"),
            ("/shippingAddress/postalCode", "shippingAddress.postalCode"),
            ("/notes", "notes"),
        ] {
            for bad in [
                "a\u{1b}[31mred",
                "a\rb",
                "a\u{0}b",
                "a\u{7f}b",
                "a\u{9b}31m",
            ] {
                let mut order = valid();
                *order.pointer_mut(pointer).unwrap() = json!(bad);
                let rejection = parse(&order).unwrap_err();
                let detail = rejection
                    .details()
                    .iter()
                    .find(|d| d.field == field)
                    .unwrap_or_else(|| panic!("{field} {bad:?}: {rejection:?}"));
                assert!(detail.message.contains("control characters"), "{detail:?}");
            }
        }
        let mut order = valid();
        order["customerId"] = json!("line\nTotal: 0.01 EUR");
        assert_eq!(fields(&order), vec!["customerId"]);
        order["customerId"] = json!("tab\there");
        assert_eq!(fields(&order), vec!["customerId"]);
        let mut order = valid();
        order["customerEmail"] = json!("a\u{1b}@example.com");
        assert_eq!(fields(&order), vec!["customerEmail"]);

        let mut order = valid();
        order["notes"] = json!("ring twice\n\tthen wait");
        order["customerId"] = json!("Zoë Ünal 山田");
        parse(&order).expect("newline and tab in notes, and any printable text, are fine");
        // Queued orders go through the same contract.
        let queued = order.to_string();
        Order::parse(queued.as_bytes()).expect("a valid queued order");
        let mut bad = valid();
        bad["items"][0]["sku"] = json!("\u{1b}]0;pwned\u{7}");
        assert_eq!(
            Order::parse(bad.to_string().as_bytes())
                .unwrap_err()
                .details()[0]
                .field,
            "items[0].sku"
        );
    }

    #[test]
    fn a_valid_order_parses_and_totals_exactly() {
        let order = parse(&valid())
            .unwrap()
            .into_order(|| unreachable!("client chose an id"));
        assert_eq!(order.order_id.as_str(), "ord-1");
        assert_eq!(order.total().unwrap().to_string(), "60.07");
    }

    #[test]
    fn two_decimal_prices_pass_the_schema_multiple_of() {
        for price in ["19.99", "0.07", "1234567.89", "0.29", "8.13", "0", "5"] {
            let mut v = valid();
            v["items"][0]["unitPrice"] = serde_json::from_str(price).unwrap();
            assert!(parse(&v).is_ok(), "{price} should be accepted");
        }
    }

    #[test]
    fn a_missing_id_is_assigned_time_ordered() {
        let mut v = valid();
        v.as_object_mut().unwrap().remove("orderID");
        let a = parse(&v).unwrap().into_order(OrderId::generate);
        let b = parse(&v).unwrap().into_order(OrderId::generate);
        assert!(a.order_id < b.order_id);
        assert_eq!(
            uuid::Uuid::parse_str(a.order_id.as_str())
                .unwrap()
                .get_version_num(),
            7
        );
    }

    #[test]
    fn every_offending_field_is_named() {
        let v = json!({
            "orderID": "-bad",
            "customerEmail": "not-an-email",
            "items": [{"sku": "", "quantity": 0, "unitPrice": 1.001, "color": "red"}],
            "currency": "eur",
            "extra": true
        });
        let mut got = fields(&v);
        got.sort();
        assert_eq!(
            got,
            vec![
                "currency",
                "customerEmail",
                "customerId",
                "extra",
                "items[0].color",
                "items[0].quantity",
                "items[0].sku",
                "items[0].unitPrice",
                "orderID",
            ]
        );
    }

    #[test]
    fn three_decimal_places_are_refused_exactly() {
        let mut v = valid();
        v["items"][1]["unitPrice"] = json!(0.005);
        let err = parse(&v).unwrap_err();
        assert_eq!(err.details().len(), 1, "{err:?}");
        assert_eq!(err.details()[0].field, "items[1].unitPrice");
        assert!(err.details()[0].message.contains("2 decimal places"));
    }

    #[test]
    fn item_limits_are_enforced() {
        let mut v = valid();
        v["items"] = json!([]);
        assert_eq!(fields(&v), vec!["items"]);
        let item = json!({"sku": "A", "quantity": 1, "unitPrice": 1});
        v["items"] = Value::Array(vec![item; 101]);
        assert_eq!(fields(&v), vec!["items"]);
        v["items"] = json!([{"sku": "A", "quantity": 10001, "unitPrice": 1}]);
        assert_eq!(fields(&v), vec!["items[0].quantity"]);
        v["items"] = json!([{"sku": "A", "quantity": 2.5, "unitPrice": 1}]);
        assert_eq!(fields(&v), vec!["items[0].quantity"]);
    }

    #[test]
    fn strings_are_not_money_and_notes_are_bounded() {
        let mut v = valid();
        v["items"][0]["unitPrice"] = json!("19.99");
        v["notes"] = json!("x".repeat(1001));
        v["shippingAddress"]["country"] = json!("Germany");
        let mut got = fields(&v);
        got.sort();
        assert_eq!(
            got,
            vec!["items[0].unitPrice", "notes", "shippingAddress.country"]
        );
    }

    #[test]
    fn malformed_json_is_its_own_rejection() {
        assert!(matches!(
            OrderRequest::parse(b"{\"customerId\": "),
            Err(OrderRejection::MalformedJson(_))
        ));
        assert_eq!(fields(&json!([1, 2])), vec!["$"]);
    }

    #[test]
    fn a_queued_order_needs_its_id() {
        let mut v = valid();
        v.as_object_mut().unwrap().remove("orderID");
        let err = Order::parse(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.details()[0].field, "orderID");
    }

    #[test]
    fn a_stored_order_reads_back_from_its_json_exactly() {
        let mut v = valid();
        v["items"][0] = json!({"sku": "GOLD", "quantity": 9999, "unitPrice": 123456789.01});
        let order = parse(&v).unwrap().into_order(OrderId::generate);
        let now = chrono::Utc::now().trunc_subsecs(3);
        let stored = StoredOrder::new(order, now, now).unwrap();
        let json = serde_json::to_string(&stored).unwrap();
        assert!(json.contains("\"total\":1234444433311.09,"), "{json}");
        assert_eq!(serde_json::from_str::<StoredOrder>(&json).unwrap(), stored);
    }

    #[test]
    fn the_queue_body_round_trips_exactly() {
        let order = parse(&valid()).unwrap().into_order(OrderId::generate);
        let body = order.to_json();
        assert!(body.contains("\"unitPrice\":19.99"), "{body}");
        assert_eq!(Order::parse(body.as_bytes()).unwrap(), order);
    }
}
