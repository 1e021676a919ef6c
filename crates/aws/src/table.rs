//! The `orders` table on DynamoDB: a conditional `PutItem` and a `GetItem`, over the item
//! shape every table adapter shares (`orderflow_core::item`).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use orderflow_core::item::{from_item, to_item};
use orderflow_core::{OrderId, OrderTable, StoredOrder, TableError};
use serde_dynamo::Item;

/// The partition key, a string.
pub const KEY: &str = "orderID";

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
        let item: HashMap<String, AttributeValue> = to_item(order).into();
        let result = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(orderID)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => {
                    Err(TableError::AlreadyExists(order.id().clone()))
                }
                _ => Err(TableError::Unavailable(Box::new(error))),
            },
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
