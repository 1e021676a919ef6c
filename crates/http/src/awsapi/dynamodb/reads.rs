//! Reading the `orders` table: `GetItem`, `BatchGetItem`, `Query` on the key and a paginated
//! `Scan`, each returning the items `DynamoDbOrderTable` would read from DynamoDB.

use std::collections::{HashMap, HashSet};

use orderflow_core::{OrderId, OrderTable};
use serde::Deserialize;
use serde_dynamo::{AttributeValue, Item};
use serde_json::{Map, Value, json};

use super::capacity::{self, Report};
use super::expressions::{self, Placeholders};
use super::grammar::{self, Filter};
use super::paths::{self, Path};
use super::{DynamoDb, KEY, item_of, key_id, validation, wire};
use crate::awsapi::AwsError;

/// BatchGetItem: at most 100 keys a request.
const MAX_BATCH_KEYS: usize = 100;

/// DynamoDB stops a Scan or Query page at 1 MB of items.
const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// The most items one Scan page reads from the engine.
const MAX_PAGE_ITEMS: usize = 1000;

type Attributes = HashMap<String, AttributeValue>;

/// What a read returns of each item: the projection, or all of it. `ConsistentRead` changes
/// only the capacity reported: every read sees every acknowledged write (one writer, reads
/// after its commits).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ReadShape {
    projection_expression: Option<String>,
    #[serde(default)]
    expression_attribute_names: HashMap<String, String>,
    /// The legacy form of a projection.
    attributes_to_get: Option<Vec<String>>,
    /// Only what the read costs (`capacity`).
    consistent_read: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetItemInput {
    table_name: Option<String>,
    return_consumed_capacity: Option<String>,
    key: Option<Attributes>,
    #[serde(flatten)]
    shape: ReadShape,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct BatchGetItemInput {
    #[serde(default)]
    request_items: HashMap<String, KeysAndAttributes>,
    return_consumed_capacity: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeysAndAttributes {
    #[serde(default)]
    keys: Vec<Attributes>,
    #[serde(flatten)]
    shape: ReadShape,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct QueryInput {
    table_name: Option<String>,
    return_consumed_capacity: Option<String>,
    index_name: Option<String>,
    key_condition_expression: Option<String>,
    #[serde(default)]
    expression_attribute_values: HashMap<String, AttributeValue>,
    filter_expression: Option<String>,
    select: Option<String>,
    limit: Option<i64>,
    exclusive_start_key: Option<Attributes>,
    #[serde(flatten)]
    shape: ReadShape,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ScanInput {
    table_name: Option<String>,
    return_consumed_capacity: Option<String>,
    index_name: Option<String>,
    #[serde(default)]
    expression_attribute_values: HashMap<String, AttributeValue>,
    filter_expression: Option<String>,
    select: Option<String>,
    limit: Option<i64>,
    exclusive_start_key: Option<Attributes>,
    segment: Option<i64>,
    total_segments: Option<i64>,
    #[serde(flatten)]
    shape: ReadShape,
}

/// The attributes a read keeps, `None` for all of them.
fn projection(shape: &ReadShape, p: &mut Placeholders<'_>) -> Result<Option<Vec<Path>>, AwsError> {
    let names = match (&shape.projection_expression, &shape.attributes_to_get) {
        (Some(_), Some(_)) => {
            return Err(validation(
                "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {AttributesToGet} Expression parameters: {ProjectionExpression}",
            ));
        }
        (Some(e), None) => Some(grammar::projection(e, p)?),
        (None, Some(names)) => Some(names.iter().map(|n| Path::attribute(n)).collect()),
        (None, None) => None,
    };
    Ok(names)
}

/// The projection of a read that uses no other expression.
fn projection_only(shape: &ReadShape) -> Result<Option<Vec<Path>>, AwsError> {
    let no_values = HashMap::new();
    let mut p = Placeholders::new(&shape.expression_attribute_names, &no_values);
    let names = projection(shape, &mut p)?;
    p.check_all_used()?;
    Ok(names)
}

fn project(item: Item, paths: Option<&[Path]>) -> Item {
    match paths {
        None => item,
        Some(paths) => paths::project(&item, paths),
    }
}

/// `Select`: whether the items themselves are returned (`COUNT` returns only the count).
fn wants_items(select: Option<&str>, projected: bool) -> Result<bool, AwsError> {
    match (select, projected) {
        (None, _) | (Some("ALL_ATTRIBUTES"), false) | (Some("SPECIFIC_ATTRIBUTES"), true) => {
            Ok(true)
        }
        (Some("COUNT"), false) => Ok(false),
        (Some("ALL_PROJECTED_ATTRIBUTES"), _) => Err(validation(
            "ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName",
        )),
        (Some("SPECIFIC_ATTRIBUTES"), false) => Err(validation(
            "Select SPECIFIC_ATTRIBUTES needs a ProjectionExpression or AttributesToGet",
        )),
        (Some(s @ ("ALL_ATTRIBUTES" | "COUNT")), true) => Err(validation(format!(
            "Cannot specify the AttributesToGet or ProjectionExpression when choosing to get {s}"
        ))),
        (Some(other), _) => Err(validation(format!(
            "1 validation error detected: Value '{other}' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]"
        ))),
    }
}

fn check_limit(limit: Option<i64>) -> Result<Option<usize>, AwsError> {
    match limit {
        None => Ok(None),
        Some(l) if l >= 1 => Ok(Some(usize::try_from(l).unwrap_or(usize::MAX))),
        Some(l) => Err(validation(format!(
            "1 validation error detected: Value '{l}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
        ))),
    }
}

/// The table has no secondary indexes.
fn check_no_index(index_name: Option<&str>) -> Result<(), AwsError> {
    match index_name {
        Some(index) => Err(validation(format!(
            "The table does not have the specified index: {index}"
        ))),
        None => Ok(()),
    }
}

fn filter(expression: Option<&str>, p: &mut Placeholders<'_>) -> Result<Option<Filter>, AwsError> {
    expression.map(|e| Filter::parse(e, p)).transpose()
}

fn keep(filter: Option<&Filter>, item: &Item) -> bool {
    filter.is_none_or(|f| f.matches(item))
}

/// An item's size as capacity counts it (its wire size, a little over DynamoDB's own).
fn size_of(item: &Item) -> usize {
    wire(item).to_string().len()
}

/// `out` with its `ConsumedCapacity`, when one was asked for.
fn with_capacity(mut out: Value, consumed: Option<Value>) -> Value {
    if let (Value::Object(map), Some(consumed)) = (&mut out, consumed) {
        map.insert("ConsumedCapacity".into(), consumed);
    }
    out
}

fn page(items: Vec<Item>, wants_items: bool, scanned: usize, last: Option<&str>) -> Value {
    let mut out = Map::new();
    out.insert("Count".into(), json!(items.len()));
    out.insert("ScannedCount".into(), json!(scanned));
    if wants_items {
        out.insert(
            "Items".into(),
            Value::Array(items.iter().map(wire).collect()),
        );
    }
    if let Some(id) = last {
        out.insert("LastEvaluatedKey".into(), json!({KEY: {"S": id}}));
    }
    Value::Object(out)
}

/// A parallel scan's `Segment` of `TotalSegments`, checked as DynamoDB checks them
/// (API_Scan.html#DDB-Scan-request-Segment): both or neither, `TotalSegments` 1 to 1000000,
/// `Segment` below it.
fn segment(segment: Option<i64>, total: Option<i64>) -> Result<Option<(u64, u64)>, AwsError> {
    let (segment, total) = match (segment, total) {
        (None, None) => return Ok(None),
        (Some(s), Some(t)) => (s, t),
        (Some(_), None) => {
            return Err(validation(
                "The TotalSegments parameter is required but was not present in the request when Segment parameter is present",
            ));
        }
        (None, Some(_)) => {
            return Err(validation(
                "The Segment parameter is required but was not present in the request when parameter TotalSegments is present",
            ));
        }
    };
    if !(1..=1_000_000).contains(&total) {
        return Err(validation(format!(
            "1 validation error detected: Value '{total}' at 'totalSegments' failed to satisfy constraint: Member must have value between 1 and 1000000"
        )));
    }
    if !(0..total).contains(&segment) {
        return Err(validation(format!(
            "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: {segment} is out of bounds given TotalSegments: {total}"
        )));
    }
    Ok(Some((segment.unsigned_abs(), total.unsigned_abs())))
}

/// The segment of `total` an order falls in: a stable hash of its key (FNV-1a), so the
/// segments of one parallel scan are disjoint and together hold every order, as DynamoDB
/// promises; which order lands where is, as on DynamoDB, unspecified.
fn segment_of(id: &str, total: u64) -> u64 {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % total
}

impl DynamoDb<'_> {
    /// The stored order `id` as its item; `None` when no such order (an id our ids cannot
    /// take cannot be stored).
    async fn item(&self, id: &str) -> Result<Option<Item>, AwsError> {
        let Ok(id) = OrderId::parse(id) else {
            return Ok(None);
        };
        let order = self
            .state
            .engine
            .table()
            .get(&id)
            .await
            .map_err(AwsError::internal)?;
        Ok(order.as_ref().map(item_of))
    }

    /// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_GetItem.html>
    pub(super) async fn get_item(&self, input: GetItemInput) -> Result<Value, AwsError> {
        self.table(input.table_name.as_deref())?;
        let key = input.key.ok_or_else(|| {
            validation(
                "1 validation error detected: Value null at 'key' failed to satisfy constraint: Member must not be null",
            )
        })?;
        let id = key_id(&key)?;
        let names = projection_only(&input.shape)?;
        let report = Report::parse(input.return_consumed_capacity.as_deref())?;
        let consistent = input.shape.consistent_read.unwrap_or(false);
        let (out, bytes) = match self.item(&id).await? {
            Some(item) => {
                let bytes = size_of(&item);
                (
                    json!({"Item": wire(&project(item, names.as_deref()))}),
                    bytes,
                )
            }
            None => (json!({}), 0),
        };
        let units = capacity::read_units(bytes, consistent);
        Ok(with_capacity(out, report.of(units, true)))
    }

    /// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html>
    pub(super) async fn batch_get_item(&self, input: BatchGetItemInput) -> Result<Value, AwsError> {
        if input.request_items.is_empty() {
            return Err(validation(
                "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        let total: usize = input.request_items.values().map(|r| r.keys.len()).sum();
        if total > MAX_BATCH_KEYS {
            return Err(validation(
                "Too many items requested for the BatchGetItem call",
            ));
        }
        let report = Report::parse(input.return_consumed_capacity.as_deref())?;
        let mut units = 0.0;
        let mut responses = Map::new();
        for (table, request) in &input.request_items {
            self.table(Some(table))?;
            if request.keys.is_empty() {
                return Err(validation(format!(
                    "1 validation error detected: Value '[]' at 'requestItems.{table}.member.keys' failed to satisfy constraint: Member must have length greater than or equal to 1"
                )));
            }
            let names = projection_only(&request.shape)?;
            let mut seen = HashSet::new();
            let mut ids = Vec::with_capacity(request.keys.len());
            for key in &request.keys {
                let id = key_id(key)?;
                if !seen.insert(id.clone()) {
                    return Err(validation("Provided list of item keys contains duplicates"));
                }
                ids.push(id);
            }
            let consistent = request.shape.consistent_read.unwrap_or(false);
            let mut items = Vec::new();
            for id in ids {
                // BatchGetItem charges each item as a read of its own.
                let found = self.item(&id).await?;
                units += capacity::read_units(found.as_ref().map_or(0, size_of), consistent);
                if let Some(item) = found {
                    items.push(wire(&project(item, names.as_deref())));
                }
            }
            responses.insert(table.clone(), Value::Array(items));
        }
        // 100 orders stay far below BatchGetItem's 16 MB, so every key is processed.
        let out = json!({"Responses": responses, "UnprocessedKeys": {}});
        // BatchGetItem reports a list, one entry a table.
        Ok(with_capacity(
            out,
            report.of(units, true).map(|c| Value::Array(vec![c])),
        ))
    }

    /// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Query.html>
    pub(super) async fn query(&self, input: QueryInput) -> Result<Value, AwsError> {
        self.table(input.table_name.as_deref())?;
        check_no_index(input.index_name.as_deref())?;
        check_limit(input.limit)?;
        let Some(condition) = input.key_condition_expression.as_deref() else {
            return Err(validation(
                "Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.",
            ));
        };
        let mut p = Placeholders::new(
            &input.shape.expression_attribute_names,
            &input.expression_attribute_values,
        );
        let id = expressions::key_condition(condition, &mut p)?;
        let filter = filter(input.filter_expression.as_deref(), &mut p)?;
        if let Some(f) = &filter
            && f.names().contains(&KEY)
        {
            return Err(validation(format!(
                "Filter Expression can only contain non-primary key attributes: Primary key attribute: {KEY}"
            )));
        }
        let names = projection(&input.shape, &mut p)?;
        p.check_all_used()?;
        let wants_items = wants_items(input.select.as_deref(), names.is_some())?;
        // A partition key names one item at most; a start key at or past it leaves nothing.
        let started_past = match &input.exclusive_start_key {
            Some(start) => key_id(start)? >= id,
            None => false,
        };
        let found = if started_past {
            None
        } else {
            self.item(&id).await?
        };
        let scanned = usize::from(found.is_some());
        let units = capacity::read_units(
            found.as_ref().map_or(0, size_of),
            input.shape.consistent_read.unwrap_or(false),
        );
        let items: Vec<Item> = found
            .filter(|item| keep(filter.as_ref(), item))
            .map(|item| project(item, names.as_deref()))
            .into_iter()
            .collect();
        let report = Report::parse(input.return_consumed_capacity.as_deref())?;
        Ok(with_capacity(
            page(items, wants_items, scanned, None),
            report.of(units, true),
        ))
    }

    /// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Scan.html>
    /// A parallel scan's segment reads the whole key range and keeps its own orders (see
    /// `segment_of`), so a page may hold fewer than `Limit` items, or none, with a
    /// `LastEvaluatedKey`, as DynamoDB allows. Items come in key order; a page ends at `Limit` items or 1 MB read, with
    /// `LastEvaluatedKey` when more remain. As in DynamoDB, the filter applies after the
    /// read: `ScannedCount` counts the items read, `Count` those that matched.
    pub(super) async fn scan(&self, input: ScanInput) -> Result<Value, AwsError> {
        self.table(input.table_name.as_deref())?;
        check_no_index(input.index_name.as_deref())?;
        let segment = segment(input.segment, input.total_segments)?;
        let limit = check_limit(input.limit)?;
        let mut p = Placeholders::new(
            &input.shape.expression_attribute_names,
            &input.expression_attribute_values,
        );
        let filter = filter(input.filter_expression.as_deref(), &mut p)?;
        let names = projection(&input.shape, &mut p)?;
        p.check_all_used()?;
        let wants_items = wants_items(input.select.as_deref(), names.is_some())?;
        let after = match &input.exclusive_start_key {
            // Every stored id is a valid OrderId; any other start key is compared as text.
            Some(start) => Some(key_id(start)?),
            None => None,
        };
        let want = limit.unwrap_or(MAX_PAGE_ITEMS).min(MAX_PAGE_ITEMS);
        let found = self
            .state
            .engine
            .table()
            .scan(after.as_deref(), want)
            .await
            .map_err(AwsError::internal)?;
        let mut items = Vec::with_capacity(found.orders.len());
        let mut bytes = 0;
        let mut scanned = 0;
        let mut last = None;
        let mut more = found.more;
        for (i, order) in found.orders.iter().enumerate() {
            last = Some(order.id().as_str());
            if let Some((s, t)) = segment
                && segment_of(order.id().as_str(), t) != s
            {
                continue;
            }
            let item = item_of(order);
            bytes += size_of(&item);
            scanned += 1;
            if keep(filter.as_ref(), &item) {
                items.push(project(item, names.as_deref()));
            }
            if bytes >= MAX_PAGE_BYTES && i + 1 < found.orders.len() {
                more = true;
                break;
            }
        }
        let last = if more { last } else { None };
        let report = Report::parse(input.return_consumed_capacity.as_deref())?;
        let units = capacity::read_units(bytes, input.shape.consistent_read.unwrap_or(false));
        Ok(with_capacity(
            page(items, wants_items, scanned, last),
            report.of(units, true),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_segments_of_a_parallel_scan_split_the_orders_between_them() {
        let ids: Vec<String> = (0..400).map(|i| format!("order-{i}")).collect();
        let mut counts = [0usize; 4];
        for id in &ids {
            let s = segment_of(id, 4);
            assert_eq!(s, segment_of(id, 4), "stable");
            counts[usize::try_from(s).unwrap()] += 1;
        }
        assert!(counts.iter().all(|&c| c > 50), "{counts:?}");
        assert!(ids.iter().all(|id| segment_of(id, 1) == 0));
    }

    /// API_Scan.html#DDB-Scan-request-Segment and -TotalSegments.
    #[test]
    fn segments_are_checked_as_dynamodb_checks_them() {
        assert_eq!(segment(None, None).unwrap(), None);
        assert_eq!(segment(Some(3), Some(4)).unwrap(), Some((3, 4)));
        for (s, t, why) in [
            (
                Some(4),
                Some(4),
                "Segment: 4 is out of bounds given TotalSegments: 4",
            ),
            (Some(-1), Some(4), "out of bounds"),
            (Some(0), Some(0), "between 1 and 1000000"),
            (Some(0), Some(1_000_001), "between 1 and 1000000"),
            (Some(0), None, "TotalSegments parameter is required"),
            (None, Some(2), "Segment parameter is required"),
        ] {
            let e = segment(s, t).unwrap_err();
            assert!(e.message.contains(why), "{s:?}/{t:?}: {}", e.message);
        }
    }
}
