//! The `orders` table on DynamoDB: a conditional `PutItem` and a `GetItem`, over the item
//! shape every table adapter shares (`orderflow_core::item`).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use orderflow_core::item::{from_item, to_item};
use orderflow_core::{ContentHash, OrderId, OrderTable, StoredOrder, TableError};
use serde_dynamo::Item;

/// The partition key, a string.
pub const KEY: &str = "orderID";

/// The order's canonical content hash (hex SHA-256), kept beside the item's attributes so a
/// resend can be told from a different order under the same id.
pub const CONTENT_HASH: &str = "contentHash";

#[derive(Debug, Clone)]
pub struct DynamoDbOrderTable {
    client: Client,
    table_name: String,
}

impl DynamoDbOrderTable {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table_name: table_name.into(),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table_name
    }
}

#[async_trait]
impl OrderTable for DynamoDbOrderTable {
    #[tracing::instrument(skip_all, fields(order_id = %order.id()))]
    async fn put_new(&self, order: &StoredOrder) -> Result<(), TableError> {
        let hash = ContentHash::of(&order.order).to_hex();
        let mut item: HashMap<String, AttributeValue> = to_item(order).into();
        item.insert(CONTENT_HASH.into(), AttributeValue::S(hash.clone()));
        let result = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(item))
            // Never overwrite: a stored order is kept as it was first written, whether the
            // new one is a resend or a conflict.
            .condition_expression("attribute_not_exists(orderID)")
            // The failed check returns the stored item, so telling a resend from a conflict
            // costs no second request:
            // https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PutItem.html#DDB-PutItem-request-ReturnValuesOnConditionCheckFailure
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        let Some(PutItemError::ConditionalCheckFailedException(failed)) = error.as_service_error()
        else {
            return Err(TableError::Unavailable(Box::new(error)));
        };
        let stored = match failed.item() {
            Some(item) => item.clone(),
            // An emulator that does not return the item: read it (it is never changed once
            // written, so this read cannot race with another writer). On AWS this never
            // runs: the condition fails only when the item exists, and then ALL_OLD returns
            // it, so the template does not grant `store-orders` `dynamodb:GetItem` for it.
            None => self
                .client
                .get_item()
                .table_name(&self.table_name)
                .key(KEY, AttributeValue::S(order.id().as_str().to_owned()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| TableError::Unavailable(Box::new(e)))?
                .item
                .unwrap_or_default(),
        };
        let stored_hash = match stored.get(CONTENT_HASH) {
            Some(AttributeValue::S(h)) => h.clone(),
            // Written before hashes were kept: hash what it holds.
            _ => {
                let old =
                    from_item(&Item::from(stored)).map_err(|e| TableError::Corrupt(Box::new(e)))?;
                ContentHash::of(&old.order).to_hex()
            }
        };
        if stored_hash == hash {
            Err(TableError::AlreadyExists(order.id().clone()))
        } else {
            Err(TableError::Conflict(order.id().clone()))
        }
    }

    #[tracing::instrument(skip_all, fields(order_id = %id))]
    async fn get(&self, id: &OrderId) -> Result<Option<StoredOrder>, TableError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .key(KEY, AttributeValue::S(id.as_str().to_owned()))
            // A get right after a put must see it, as with the embedded table.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| TableError::Unavailable(Box::new(e)))?;
        output
            .item
            .map(|item| from_item(&Item::from(item)).map_err(|e| TableError::Corrupt(Box::new(e))))
            .transpose()
    }
}
