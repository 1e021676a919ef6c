//! `PutItem` of a new order, as `store-orders` writes it (`DynamoDbOrderTable`): the order
//! item plus its `contentHash`, under `attribute_not_exists(orderID)`. It goes through the
//! engine's table like the store handler's put, so its stream record is written in the same
//! transaction and the order is announced to subscribers.

use std::collections::HashMap;

use orderflow_core::item::{from_item, to_item};
use orderflow_core::{ContentHash, Order, OrderId, OrderTable, StoredOrder, TableError};
use serde::Deserialize;
use serde_dynamo::{AttributeValue, Item};
use serde_json::{Value, json};

use super::capacity::{self, Report};
use super::expressions::{self, Placeholders};
use super::numbers;
use super::values::type_name;
use super::{CONTENT_HASH, DynamoDb, KEY, error, item_of, validation, wire};
use crate::awsapi::AwsError;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutItemInput {
    table_name: Option<String>,
    item: Option<HashMap<String, AttributeValue>>,
    condition_expression: Option<String>,
    #[serde(default)]
    expression_attribute_names: HashMap<String, String>,
    #[serde(default)]
    expression_attribute_values: HashMap<String, AttributeValue>,
    return_values: Option<String>,
    return_values_on_condition_check_failure: Option<String>,
    return_consumed_capacity: Option<String>,
    /// The legacy conditions (`Expected`, `ConditionalOperator`) are not served.
    expected: Option<Value>,
    conditional_operator: Option<String>,
}

/// The order an item holds: exactly the shape `to_item` writes (plus `contentHash`), an order
/// that passes the API's own validation, with its total.
pub(super) fn order_of(
    attributes: HashMap<String, AttributeValue>,
) -> Result<StoredOrder, AwsError> {
    let refuse = |problem: String| validation(format!("The item is not an order item: {problem}"));
    match attributes.get(KEY) {
        None => {
            return Err(validation(format!(
                "One or more parameter values were invalid: Missing the key {KEY} in the item"
            )));
        }
        Some(AttributeValue::S(id)) if id.is_empty() => {
            return Err(validation(format!(
                "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: {KEY}"
            )));
        }
        Some(AttributeValue::S(id)) if id.len() > super::MAX_KEY_BYTES => {
            return Err(super::key_too_long());
        }
        Some(AttributeValue::S(_)) => {}
        Some(other) => {
            return Err(validation(format!(
                "One or more parameter values were invalid: Type mismatch for key {KEY} expected: S actual: {}",
                type_name(other)
            )));
        }
    }
    let mut attributes = attributes;
    let hash = match attributes.remove(CONTENT_HASH) {
        None => None,
        Some(AttributeValue::S(h)) => Some(h),
        Some(_) => return Err(refuse(format!("{CONTENT_HASH} must be a string"))),
    };
    let item = Item::from(attributes);
    let stored = from_item(&item).map_err(|e| refuse(e.to_string()))?;
    // What the order item does not hold would be dropped silently, at any depth (an extra
    // key inside `shippingAddress` or an item line too): refuse it, as PutItem stores
    // exactly the item it is sent (API_PutItem.html).
    let known = to_item(&stored);
    let mut unknown = Vec::new();
    let mut changed = Vec::new();
    for (name, value) in item.iter() {
        match known.get(name) {
            None => unknown.push(name.clone()),
            Some(kept) => differences(value, kept, name, &mut unknown, &mut changed),
        }
    }
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(refuse(format!(
            "unknown attribute(s) {}; an order item has only the attributes store-orders writes",
            unknown.join(", ")
        )));
    }
    if !changed.is_empty() {
        changed.sort_unstable();
        return Err(refuse(format!(
            "attribute(s) {} would not be stored as sent",
            changed.join(", ")
        )));
    }
    let checked =
        Order::parse(stored.order.to_json().as_bytes()).map_err(|e| refuse(e.to_string()))?;
    if checked != stored.order {
        return Err(refuse("the order does not read back as written".into()));
    }
    let total = stored.order.total().map_err(|e| refuse(e.to_string()))?;
    if total != stored.total {
        return Err(refuse(format!(
            "total is {} but the items sum to {total}",
            stored.total
        )));
    }
    if let Some(hash) = hash {
        let expected = ContentHash::of(&stored.order).to_hex();
        if hash != expected {
            return Err(refuse(format!(
                "{CONTENT_HASH} {hash:?} is not the order's content hash ({expected})"
            )));
        }
    }
    Ok(stored)
}

/// Where `given` (what the request sent at `path`) differs from `kept` (what the order item
/// holds there): keys the order has no place for go to `unknown`, other differences to
/// `changed`. Numbers compare by value: DynamoDB itself trims `1.50` to `1.5`.
fn differences(
    given: &AttributeValue,
    kept: &AttributeValue,
    path: &str,
    unknown: &mut Vec<String>,
    changed: &mut Vec<String>,
) {
    match (given, kept) {
        (AttributeValue::M(g), AttributeValue::M(k)) => {
            for (name, value) in g {
                let at = format!("{path}.{name}");
                match k.get(name) {
                    None => unknown.push(at),
                    Some(kept) => differences(value, kept, &at, unknown, changed),
                }
            }
        }
        (AttributeValue::L(g), AttributeValue::L(k)) if g.len() == k.len() => {
            for (i, (value, kept)) in g.iter().zip(k).enumerate() {
                differences(value, kept, &format!("{path}[{i}]"), unknown, changed);
            }
        }
        (AttributeValue::N(a), AttributeValue::N(b))
            if numbers::Number::parse(a).ok() == numbers::Number::parse(b).ok() => {}
        (g, k) if g == k => {}
        _ => changed.push(path.to_owned()),
    }
}

/// `ReturnValues` / `ReturnValuesOnConditionCheckFailure`: `NONE` or `ALL_OLD`.
fn all_old(value: Option<&str>, parameter: &str) -> Result<bool, AwsError> {
    match value {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some(other) => Err(validation(format!(
            "{parameter} can only be ALL_OLD or NONE for PutItem (got {other})"
        ))),
    }
}

impl DynamoDb<'_> {
    /// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PutItem.html>
    #[tracing::instrument(name = "dynamodb_put_item", skip_all, fields(order_id))]
    pub(super) async fn put_item(&self, input: PutItemInput) -> Result<Value, AwsError> {
        self.table(input.table_name.as_deref())?;
        if input.expected.is_some() || input.conditional_operator.is_some() {
            return Err(expressions::put_refused(
                "the legacy Expected/ConditionalOperator parameters are not served",
            ));
        }
        all_old(input.return_values.as_deref(), "ReturnValues")?;
        let report = Report::parse(input.return_consumed_capacity.as_deref())?;
        let old_on_failure = all_old(
            input.return_values_on_condition_check_failure.as_deref(),
            "ReturnValuesOnConditionCheckFailure",
        )?;
        let Some(condition) = input.condition_expression.as_deref() else {
            return Err(expressions::put_refused(
                "an unconditional put would overwrite a stored order",
            ));
        };
        let mut p = Placeholders::new(
            &input.expression_attribute_names,
            &input.expression_attribute_values,
        );
        expressions::put_condition(condition, &mut p)?;
        p.check_all_used()?;
        let attributes = input.item.ok_or_else(|| {
            validation(
                "1 validation error detected: Value null at 'item' failed to satisfy constraint: Member must not be null",
            )
        })?;
        attributes.values().try_for_each(numbers::check)?;
        let size = wire(&Item::from(attributes.clone())).to_string().len();
        let order = order_of(attributes)?;
        tracing::Span::current().record("order_id", order.id().as_str());
        let table = self.state.engine.table();
        match table.put_new_synced(&order).await {
            // A new item has no old values, so ALL_OLD returns no Attributes.
            Ok(()) => Ok(match report.of(capacity::write_units(size), false) {
                Some(consumed) => json!({"ConsumedCapacity": consumed}),
                None => json!({}),
            }),
            Err(TableError::AlreadyExists(id) | TableError::Conflict(id)) => {
                Err(self.condition_failed(&id, old_on_failure).await)
            }
            Err(e) => Err(AwsError::internal(e)),
        }
    }

    /// `ConditionalCheckFailedException`, with the stored item when `ALL_OLD` was asked:
    /// that is how `DynamoDbOrderTable` tells a resend from a conflict in one request.
    async fn condition_failed(&self, id: &OrderId, with_item: bool) -> AwsError {
        let e = error(
            "ConditionalCheckFailedException",
            "The conditional request failed",
        );
        if !with_item {
            return e;
        }
        // Stored orders never change, so this read cannot race with another writer.
        match self.state.engine.table().get(id).await {
            Ok(Some(stored)) => e.with_member("Item", wire(&item_of(&stored))),
            Ok(None) => e,
            Err(source) => AwsError::internal(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn sample() -> (StoredOrder, HashMap<String, AttributeValue>) {
        let order = orderflow_core::conformance::sample_order();
        let item = item_of(&order).into_inner();
        (order, item)
    }

    #[test]
    fn the_item_store_orders_writes_is_an_order() {
        let (order, item) = sample();
        assert_eq!(order_of(item).unwrap(), order);
    }

    #[test]
    fn an_item_without_its_content_hash_is_still_an_order() {
        let (order, mut item) = sample();
        item.remove(CONTENT_HASH);
        assert_eq!(order_of(item).unwrap(), order);
    }

    #[test]
    fn an_unknown_attribute_is_refused_by_name() {
        let (_, mut item) = sample();
        item.insert("colour".into(), AttributeValue::S("red".into()));
        let e = order_of(item).unwrap_err();
        assert!(
            e.message.contains("unknown attribute(s) colour"),
            "{}",
            e.message
        );
    }

    /// PutItem stores the item it is sent (API_PutItem.html); an attribute nested where the
    /// order has no field was once dropped without a word while the put succeeded.
    #[test]
    fn an_unknown_attribute_nested_in_the_address_or_an_item_line_is_refused_by_path() {
        let (_, mut item) = sample();
        let Some(AttributeValue::M(address)) = item.get_mut("shippingAddress") else {
            panic!("the sample has an address")
        };
        address.insert("evil".into(), AttributeValue::S("x".into()));
        let e = order_of(item).unwrap_err();
        assert!(
            e.message
                .contains("unknown attribute(s) shippingAddress.evil;"),
            "{}",
            e.message
        );
        let (_, mut item) = sample();
        let Some(AttributeValue::L(lines)) = item.get_mut("items") else {
            panic!("the sample has item lines")
        };
        let Some(AttributeValue::M(line)) = lines.first_mut() else {
            panic!("an item line is a map")
        };
        line.insert("evil".into(), AttributeValue::N("1".into()));
        let e = order_of(item).unwrap_err();
        assert!(
            e.message.contains("unknown attribute(s) items[0].evil;"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_number_in_another_spelling_is_the_same_order() {
        let (order, mut item) = sample();
        let Some(AttributeValue::N(total)) = item.get("total").cloned() else {
            panic!("the total is a number")
        };
        item.insert("total".into(), AttributeValue::N(format!("{total}000")));
        assert_eq!(order_of(item).unwrap(), order);
    }

    #[test]
    fn a_wrong_total_or_content_hash_is_refused() {
        let (_, mut item) = sample();
        item.insert("total".into(), AttributeValue::N("1".into()));
        let e = order_of(item).unwrap_err();
        assert!(
            e.message.contains("total is 1 but the items sum to 60.07"),
            "{}",
            e.message
        );
        let (_, mut item) = sample();
        item.insert(CONTENT_HASH.into(), AttributeValue::S("00".into()));
        let e = order_of(item).unwrap_err();
        assert!(
            e.message.contains("is not the order's content hash"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_missing_or_mistyped_key_is_refused_as_dynamodb_does() {
        let (_, mut item) = sample();
        item.remove(KEY);
        assert!(
            order_of(item.clone())
                .unwrap_err()
                .message
                .contains("Missing the key orderID")
        );
        item.insert(KEY.into(), AttributeValue::N("5".into()));
        assert!(
            order_of(item)
                .unwrap_err()
                .message
                .contains("Type mismatch for key orderID expected: S actual: N")
        );
    }

    /// Constraints.html#limits-partition-sort-keys: a partition key is 1 to 2048 bytes.
    #[test]
    fn an_empty_or_too_long_key_is_refused_in_dynamodbs_words() {
        let (_, mut item) = sample();
        item.insert(KEY.into(), AttributeValue::S(String::new()));
        assert!(
            order_of(item.clone())
                .unwrap_err()
                .message
                .contains("cannot contain an empty string value. Key: orderID")
        );
        item.insert(KEY.into(), AttributeValue::S("x".repeat(2049)));
        assert!(
            order_of(item)
                .unwrap_err()
                .message
                .contains("Size of hashkey has exceeded the maximum size limit of2048 bytes")
        );
    }

    #[test]
    fn an_item_that_breaks_the_order_rules_names_the_field() {
        let (_, mut item) = sample();
        item.insert("items".into(), AttributeValue::L(vec![]));
        item.insert("total".into(), AttributeValue::N("0".into()));
        let e = order_of(item).unwrap_err();
        assert!(e.message.contains("items"), "{}", e.message);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
