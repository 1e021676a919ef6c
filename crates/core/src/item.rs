//! The DynamoDB item shape of a stored order, shared by every table adapter and the stream.
//!
//! Money is a DynamoDB Number (`N`) written from its exact decimal text; timestamps are
//! RFC 3339 strings. The embedded change stream carries this very shape, so its `NewImage`
//! is the one DynamoDB Streams would carry (the embedded table's rows hold the order's JSON).

use std::collections::HashMap;

use serde_dynamo::{AttributeValue, Item};

use crate::correlation::RequestId;
use crate::money::Money;
use crate::order::{Order, OrderId, OrderItem, OrderStatus, ShippingAddress, StoredOrder};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("item attribute {attribute}: {problem}")]
pub struct ItemError {
    pub attribute: String,
    pub problem: String,
}

fn err(attribute: &str, problem: impl Into<String>) -> ItemError {
    ItemError {
        attribute: attribute.to_owned(),
        problem: problem.into(),
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn to_item(order: &StoredOrder) -> Item {
    let o = &order.order;
    let mut m: HashMap<String, AttributeValue> = HashMap::new();
    m.insert("orderID".into(), s(o.order_id.as_str()));
    m.insert("customerId".into(), s(&o.customer_id));
    if let Some(email) = &o.customer_email {
        m.insert("customerEmail".into(), s(email));
    }
    let items = o
        .items
        .iter()
        .map(|i| {
            AttributeValue::M(HashMap::from([
                ("sku".to_owned(), s(&i.sku)),
                ("quantity".to_owned(), n(i.quantity)),
                ("unitPrice".to_owned(), n(i.unit_price)),
            ]))
        })
        .collect();
    m.insert("items".into(), AttributeValue::L(items));
    m.insert("currency".into(), s(&o.currency));
    if let Some(a) = &o.shipping_address {
        m.insert(
            "shippingAddress".into(),
            AttributeValue::M(HashMap::from([
                ("line1".to_owned(), s(&a.line1)),
                ("city".to_owned(), s(&a.city)),
                ("postalCode".to_owned(), s(&a.postal_code)),
                ("country".to_owned(), s(&a.country)),
            ])),
        );
    }
    if let Some(notes) = &o.notes {
        m.insert("notes".into(), s(notes));
    }
    m.insert("total".into(), n(order.total));
    m.insert("status".into(), s(order.status.as_str()));
    m.insert(
        "receivedAt".into(),
        s(&crate::time::format(&order.received_at)),
    );
    m.insert("storedAt".into(), s(&crate::time::format(&order.stored_at)));
    if let Some(id) = &order.request_id {
        m.insert("requestId".into(), s(id.as_str()));
    }
    Item::from(m)
}

pub fn from_item(item: &Item) -> Result<StoredOrder, ItemError> {
    let m: &HashMap<String, AttributeValue> = item;
    let items = match m.get("items") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| {
                order_item(v).map_err(|e| err(&format!("items[{i}].{}", e.attribute), e.problem))
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(err("items", "missing or not a list")),
    };
    let shipping_address = match m.get("shippingAddress") {
        None | Some(AttributeValue::Null(_)) => None,
        Some(AttributeValue::M(a)) => Some(ShippingAddress {
            line1: req_s(a, "line1")?,
            city: req_s(a, "city")?,
            postal_code: req_s(a, "postalCode")?,
            country: req_s(a, "country")?,
        }),
        Some(_) => return Err(err("shippingAddress", "not a map")),
    };
    let order_id = req_s(m, "orderID")?;
    let order = Order {
        order_id: OrderId::parse(&order_id).map_err(|e| err("orderID", e.to_string()))?,
        customer_id: req_s(m, "customerId")?,
        customer_email: opt_s(m, "customerEmail")?,
        items,
        currency: req_s(m, "currency")?,
        shipping_address,
        notes: opt_s(m, "notes")?,
    };
    let status = match req_s(m, "status")?.as_str() {
        "STORED" => OrderStatus::Stored,
        other => return Err(err("status", format!("unknown status {other:?}"))),
    };
    Ok(StoredOrder {
        order,
        total: req_money(m, "total")?,
        status,
        received_at: req_time(m, "receivedAt")?,
        stored_at: req_time(m, "storedAt")?,
        // Items stored before request ids existed have none.
        request_id: opt_s(m, "requestId")?
            .map(|v| RequestId::parse(&v).ok_or_else(|| err("requestId", "not a request id")))
            .transpose()?,
    })
}

fn order_item(v: &AttributeValue) -> Result<OrderItem, ItemError> {
    let AttributeValue::M(m) = v else {
        return Err(err("", "not a map"));
    };
    let quantity = match m.get("quantity") {
        Some(AttributeValue::N(q)) => q.parse().map_err(|_| err("quantity", "not an integer"))?,
        _ => return Err(err("quantity", "missing or not a number")),
    };
    Ok(OrderItem {
        sku: req_s(m, "sku")?,
        quantity,
        unit_price: req_money(m, "unitPrice")?,
    })
}

fn req_s(m: &HashMap<String, AttributeValue>, name: &str) -> Result<String, ItemError> {
    opt_s(m, name)?.ok_or_else(|| err(name, "missing"))
}

fn opt_s(m: &HashMap<String, AttributeValue>, name: &str) -> Result<Option<String>, ItemError> {
    match m.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(_) => Err(err(name, "not a string")),
    }
}

fn req_money(m: &HashMap<String, AttributeValue>, name: &str) -> Result<Money, ItemError> {
    match m.get(name) {
        Some(AttributeValue::N(v)) => {
            Money::parse_json_number(v).map_err(|e| err(name, e.to_string()))
        }
        _ => Err(err(name, "missing or not a number")),
    }
}

fn req_time(
    m: &HashMap<String, AttributeValue>,
    name: &str,
) -> Result<chrono::DateTime<chrono::Utc>, ItemError> {
    let v = req_s(m, name)?;
    chrono::DateTime::parse_from_rfc3339(&v)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| err(name, e.to_string()))
}

/// The item's key, as DynamoDB Streams puts it in `Keys`.
pub fn key_of(order: &StoredOrder) -> Item {
    Item::from(HashMap::from([(
        "orderID".to_owned(),
        s(order.id().as_str()),
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::OrderRequest;

    #[test]
    fn a_stored_order_round_trips_through_its_item() {
        let body = br#"{"orderID":"o-1","customerId":"c","items":[{"sku":"A","quantity":2,"unitPrice":1234567.89}],"currency":"USD","shippingAddress":{"line1":"l","city":"c","postalCode":"p","country":"US"},"notes":"n"}"#;
        let order = OrderRequest::parse(body)
            .unwrap()
            .into_order(OrderId::generate);
        let now = chrono::Utc::now();
        let stored = StoredOrder::new(order, now, now)
            .unwrap()
            .with_request_id(RequestId::parse("req-1"));
        let item = to_item(&stored);
        assert_eq!(item.get("requestId"), Some(&s("req-1")));
        assert_eq!(
            item.get("total"),
            Some(&AttributeValue::N("2469135.78".into()))
        );
        let back = from_item(&item).unwrap();
        assert_eq!(back.order, stored.order);
        assert_eq!(back.total, stored.total);
        assert_eq!(back.request_id, stored.request_id);
    }

    #[test]
    fn an_item_stored_before_request_ids_still_reads() {
        let order = OrderRequest::parse(
            br#"{"orderID":"o-2","customerId":"c","items":[{"sku":"A","quantity":1,"unitPrice":1}],"currency":"USD"}"#,
        )
        .unwrap()
        .into_order(OrderId::generate);
        let now = chrono::Utc::now();
        let item = to_item(&StoredOrder::new(order, now, now).unwrap());
        assert!(item.get("requestId").is_none());
        assert_eq!(from_item(&item).unwrap().request_id, None);
    }

    #[test]
    fn a_broken_item_names_the_attribute() {
        let item = Item::from(HashMap::from([("orderID".to_owned(), n(5))]));
        let e = from_item(&item).unwrap_err();
        assert_eq!(e.attribute, "items");
    }
}
