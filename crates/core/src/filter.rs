//! SNS subscription filter policies: parsing with SNS's limits, and matching against a
//! message's attributes or its JSON body. Pure functions, no I/O.
//!
//! A policy is a JSON object whose leaf values are arrays of conditions. Conditions in one
//! array are ORed; keys are ANDed. With `MessageAttributes` scope the object is flat and is
//! matched against the message attributes; with `MessageBody` scope it may nest and is matched
//! against the message parsed as JSON (arrays in the body match when any element does).

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::order::FieldError;
use crate::ports::MessageAttribute;

/// SNS: "A filter policy can have a maximum of five keys."
pub const MAX_KEYS: usize = 5;
/// SNS: the product of the number of values in each array must not exceed 150.
pub const MAX_COMBINATIONS: u64 = 150;
/// SNS: "The maximum size of a filter policy is 256 KB."
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// SNS: numeric matching works on values from -10^9 to 10^9 ...
const NUMERIC_LIMIT: i64 = 1_000_000_000;
/// ... with five digits of accuracy after the decimal point.
const NUMERIC_SCALE: u32 = 5;

/// Which part of a message a policy looks at (`FilterPolicyScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum FilterPolicyScope {
    #[default]
    MessageAttributes,
    MessageBody,
}

impl FilterPolicyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            FilterPolicyScope::MessageAttributes => "MessageAttributes",
            FilterPolicyScope::MessageBody => "MessageBody",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "MessageAttributes" => Some(FilterPolicyScope::MessageAttributes),
            "MessageBody" => Some(FilterPolicyScope::MessageBody),
            _ => None,
        }
    }
}

/// A parsed, valid filter policy.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPolicy {
    scope: FilterPolicyScope,
    keys: BTreeMap<String, Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Conditions(Vec<Condition>),
    Nested(BTreeMap<String, Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    String(String),
    Number(Decimal),
    Bool(bool),
    Null,
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(AnythingBut),
    Numeric(Range),
    Exists(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum AnythingBut {
    Strings(Vec<String>),
    Numbers(Vec<Decimal>),
    Prefix(String),
    Suffix(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bound {
    value: Decimal,
    inclusive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    lower: Option<Bound>,
    upper: Option<Bound>,
}

/// One value of a message, as a condition sees it.
#[derive(Debug, Clone, Copy)]
enum Scalar<'a> {
    Str(&'a str),
    Num(Decimal),
    Bool(bool),
    Null,
}

fn error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

impl FilterPolicy {
    /// Parses a policy given as JSON. Errors name the offending part as `field`
    /// (`filterPolicy.currency[1]`), prefixed by `field`.
    pub fn parse(
        value: &Value,
        scope: FilterPolicyScope,
        field: &str,
    ) -> Result<FilterPolicy, Vec<FieldError>> {
        let size = value.to_string().len();
        if size > MAX_POLICY_BYTES {
            return Err(vec![error(
                field,
                format!(
                    "is {size} bytes; a filter policy may have at most {MAX_POLICY_BYTES} bytes"
                ),
            )]);
        }
        let Value::Object(object) = value else {
            return Err(vec![error(field, "must be a JSON object")]);
        };
        let mut errors = Vec::new();
        let keys = parse_object(object, scope, field, 0, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let policy = FilterPolicy { scope, keys };
        let leaves = policy.leaf_count();
        if leaves > MAX_KEYS {
            errors.push(error(
                field,
                format!("has {leaves} keys; a filter policy may have at most {MAX_KEYS}"),
            ));
        }
        let combinations = policy.combinations();
        if combinations > MAX_COMBINATIONS {
            errors.push(error(
                field,
                format!(
                    "has {combinations} combinations of values; at most {MAX_COMBINATIONS} are allowed (the product of the number of values of every key)"
                ),
            ));
        }
        if errors.is_empty() {
            Ok(policy)
        } else {
            Err(errors)
        }
    }

    /// Parses a policy given as JSON text (the form SNS's API takes).
    pub fn parse_str(
        text: &str,
        scope: FilterPolicyScope,
        field: &str,
    ) -> Result<FilterPolicy, Vec<FieldError>> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| vec![error(field, format!("is not valid JSON: {e}"))])?;
        FilterPolicy::parse(&value, scope, field)
    }

    pub fn scope(&self) -> FilterPolicyScope {
        self.scope
    }

    /// How many keys hold conditions (nested keys count once per leaf).
    pub fn leaf_count(&self) -> usize {
        fn count(nodes: &BTreeMap<String, Node>) -> usize {
            nodes
                .values()
                .map(|n| match n {
                    Node::Conditions(_) => 1,
                    Node::Nested(inner) => count(inner),
                })
                .sum()
        }
        count(&self.keys)
    }

    /// The product of the number of conditions of every key.
    pub fn combinations(&self) -> u64 {
        fn product(nodes: &BTreeMap<String, Node>) -> u64 {
            nodes
                .values()
                .map(|n| match n {
                    Node::Conditions(c) => c.len() as u64,
                    Node::Nested(inner) => product(inner),
                })
                .fold(1u64, u64::saturating_mul)
        }
        product(&self.keys)
    }

    /// Whether a message with this body and these attributes passes the policy.
    pub fn matches(&self, message: &str, attributes: &BTreeMap<String, MessageAttribute>) -> bool {
        match self.scope {
            FilterPolicyScope::MessageAttributes => self.matches_attributes(attributes),
            FilterPolicyScope::MessageBody => match serde_json::from_str::<Value>(message) {
                Ok(body) => self.matches_body(&body),
                // SNS: a body that is not JSON matches no body policy.
                Err(_) => false,
            },
        }
    }

    pub fn matches_attributes(&self, attributes: &BTreeMap<String, MessageAttribute>) -> bool {
        self.keys.iter().all(|(key, node)| {
            let Node::Conditions(conditions) = node else {
                return false;
            };
            let values: Vec<Scalar<'_>> = attributes
                .get(key)
                .map(|a| match a {
                    MessageAttribute::String(s) => Scalar::Str(s),
                    MessageAttribute::Number(n) => match parse_decimal(n) {
                        Some(d) => Scalar::Num(d),
                        None => Scalar::Str(n),
                    },
                })
                .into_iter()
                .collect();
            conditions.iter().any(|c| c.matches(&values))
        })
    }

    pub fn matches_body(&self, body: &Value) -> bool {
        fn matches_object(nodes: &BTreeMap<String, Node>, parents: &[&Value]) -> bool {
            nodes.iter().all(|(key, node)| {
                let mut children = Vec::new();
                for parent in parents {
                    collect_objects_child(parent, key, &mut children);
                }
                match node {
                    Node::Nested(inner) => matches_object(inner, &children),
                    Node::Conditions(conditions) => {
                        let mut values = Vec::new();
                        for child in &children {
                            flatten_scalars(child, &mut values);
                        }
                        conditions.iter().any(|c| c.matches(&values))
                    }
                }
            })
        }
        matches_object(&self.keys, &[body])
    }
}

/// The value of `key` in `value`, looking through arrays of objects.
fn collect_objects_child<'a>(value: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if let Some(child) = map.get(key) {
                out.push(child);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_objects_child(item, key, out);
            }
        }
        _ => {}
    }
}

fn flatten_scalars<'a>(value: &'a Value, out: &mut Vec<Scalar<'a>>) {
    match value {
        Value::String(s) => out.push(Scalar::Str(s)),
        Value::Number(n) => {
            if let Some(d) = parse_decimal(&n.to_string()) {
                out.push(Scalar::Num(d));
            }
        }
        Value::Bool(b) => out.push(Scalar::Bool(*b)),
        Value::Null => out.push(Scalar::Null),
        Value::Array(items) => {
            for item in items {
                flatten_scalars(item, out);
            }
        }
        // An object where the policy expects a value matches no value condition.
        Value::Object(_) => {}
    }
}

fn parse_decimal(text: &str) -> Option<Decimal> {
    let text = text.trim();
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        Decimal::from_str(text).ok()
    }
}

fn parse_object(
    object: &serde_json::Map<String, Value>,
    scope: FilterPolicyScope,
    field: &str,
    depth: usize,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    for (key, value) in object {
        let path = format!("{field}.{key}");
        if key.starts_with('$') {
            errors.push(error(
                &path,
                format!(
                    "the operator {key} is not supported; list alternatives in one array instead"
                ),
            ));
            continue;
        }
        match value {
            Value::Array(items) => {
                if items.is_empty() {
                    errors.push(error(&path, "must not be an empty array"));
                    continue;
                }
                let conditions: Vec<Condition> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        parse_condition(item, &format!("{path}[{i}]"))
                            .map_err(|e| errors.push(e))
                            .ok()
                    })
                    .collect();
                out.insert(key.clone(), Node::Conditions(conditions));
            }
            Value::Object(inner) if scope == FilterPolicyScope::MessageBody => {
                if depth >= 32 {
                    errors.push(error(&path, "is nested too deeply"));
                    continue;
                }
                if inner.is_empty() {
                    errors.push(error(&path, "must not be an empty object"));
                    continue;
                }
                out.insert(
                    key.clone(),
                    Node::Nested(parse_object(inner, scope, &path, depth + 1, errors)),
                );
            }
            Value::Object(_) => errors.push(error(
                &path,
                "must be an array of conditions (nested keys need filterPolicyScope MessageBody)",
            )),
            _ => errors.push(error(&path, "must be an array of conditions")),
        }
    }
    out
}

fn policy_number(n: &serde_json::Number, field: &str) -> Result<Decimal, FieldError> {
    let d = parse_decimal(&n.to_string())
        .ok_or_else(|| error(field, format!("{n} is not a number SNS can match")))?;
    if d.abs() > Decimal::from(NUMERIC_LIMIT) {
        return Err(error(
            field,
            format!("{n} is out of range; numbers must be between -1e9 and 1e9"),
        ));
    }
    if d.normalize().scale() > NUMERIC_SCALE {
        return Err(error(
            field,
            format!("{n} has more than {NUMERIC_SCALE} digits after the decimal point"),
        ));
    }
    Ok(d)
}

fn expect_string<'a>(value: &'a Value, field: &str, operator: &str) -> Result<&'a str, FieldError> {
    value
        .as_str()
        .ok_or_else(|| error(field, format!("{operator} takes a string")))
}

fn parse_condition(value: &Value, field: &str) -> Result<Condition, FieldError> {
    match value {
        Value::String(s) => Ok(Condition::String(s.clone())),
        Value::Number(n) => Ok(Condition::Number(policy_number(n, field)?)),
        Value::Bool(b) => Ok(Condition::Bool(*b)),
        Value::Null => Ok(Condition::Null),
        Value::Array(_) => Err(error(field, "a condition must not be an array")),
        Value::Object(map) => {
            if map.len() != 1 {
                return Err(error(
                    field,
                    "a condition object must have exactly one operator",
                ));
            }
            let (operator, operand) = map.iter().next().expect("one entry");
            let field = &format!("{field}.{operator}");
            match operator.as_str() {
                "prefix" => Ok(Condition::Prefix(
                    expect_string(operand, field, "prefix")?.to_owned(),
                )),
                "suffix" => Ok(Condition::Suffix(
                    expect_string(operand, field, "suffix")?.to_owned(),
                )),
                "equals-ignore-case" => Ok(Condition::EqualsIgnoreCase(
                    expect_string(operand, field, "equals-ignore-case")?.to_owned(),
                )),
                "exists" => match operand {
                    Value::Bool(b) => Ok(Condition::Exists(*b)),
                    _ => Err(error(field, "exists takes true or false")),
                },
                "anything-but" => parse_anything_but(operand, field).map(Condition::AnythingBut),
                "numeric" => parse_range(operand, field).map(Condition::Numeric),
                other => Err(error(
                    field,
                    format!(
                        "unknown operator {other:?}; supported: prefix, suffix, equals-ignore-case, anything-but, numeric, exists"
                    ),
                )),
            }
        }
    }
}

fn parse_anything_but(operand: &Value, field: &str) -> Result<AnythingBut, FieldError> {
    match operand {
        Value::String(s) => Ok(AnythingBut::Strings(vec![s.clone()])),
        Value::Number(n) => Ok(AnythingBut::Numbers(vec![policy_number(n, field)?])),
        Value::Array(items) if items.is_empty() => {
            Err(error(field, "anything-but must not be an empty array"))
        }
        Value::Array(items) if items.iter().all(Value::is_string) => Ok(AnythingBut::Strings(
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        )),
        Value::Array(items) if items.iter().all(Value::is_number) => Ok(AnythingBut::Numbers(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    policy_number(v.as_number().expect("checked"), &format!("{field}[{i}]"))
                })
                .collect::<Result<_, _>>()?,
        )),
        Value::Array(_) => Err(error(
            field,
            "anything-but takes a list of strings or a list of numbers, not a mix",
        )),
        Value::Object(map) if map.len() == 1 => {
            let (operator, value) = map.iter().next().expect("one entry");
            let inner = &format!("{field}.{operator}");
            match operator.as_str() {
                "prefix" => Ok(AnythingBut::Prefix(
                    expect_string(value, inner, "prefix")?.to_owned(),
                )),
                "suffix" => Ok(AnythingBut::Suffix(
                    expect_string(value, inner, "suffix")?.to_owned(),
                )),
                other => Err(error(
                    inner,
                    format!("anything-but supports prefix and suffix, not {other:?}"),
                )),
            }
        }
        _ => Err(error(
            field,
            "anything-but takes a string, a number, a list of them, or {\"prefix\"|\"suffix\": ...}",
        )),
    }
}

fn parse_range(operand: &Value, field: &str) -> Result<Range, FieldError> {
    let Value::Array(items) = operand else {
        return Err(error(
            field,
            "numeric takes a list such as [\">=\", 0, \"<\", 100]",
        ));
    };
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return Err(error(
            field,
            "numeric takes one or two comparisons: [op, number] or [op, number, op, number]",
        ));
    }
    let mut range = Range {
        lower: None,
        upper: None,
    };
    let mut equals = false;
    for (i, pair) in items.chunks(2).enumerate() {
        let op = pair[0]
            .as_str()
            .ok_or_else(|| error(&format!("{field}[{}]", i * 2), "must be an operator"))?;
        let number = pair[1]
            .as_number()
            .ok_or_else(|| error(&format!("{field}[{}]", i * 2 + 1), "must be a number"))?;
        let value = policy_number(number, &format!("{field}[{}]", i * 2 + 1))?;
        let slot = match op {
            "=" => {
                equals = true;
                range.lower = Some(Bound {
                    value,
                    inclusive: true,
                });
                range.upper = range.lower;
                continue;
            }
            ">" | ">=" => &mut range.lower,
            "<" | "<=" => &mut range.upper,
            other => {
                return Err(error(
                    &format!("{field}[{}]", i * 2),
                    format!("unknown comparison {other:?}; use =, <, <=, > or >="),
                ));
            }
        };
        if slot.is_some() {
            return Err(error(
                field,
                "a range has at most one lower and one upper bound",
            ));
        }
        *slot = Some(Bound {
            value,
            inclusive: op.ends_with('='),
        });
    }
    if equals && items.len() > 2 {
        return Err(error(
            field,
            "\"=\" cannot be combined with another comparison",
        ));
    }
    if let (Some(lo), Some(hi)) = (range.lower, range.upper)
        && !equals
        && lo.value >= hi.value
    {
        return Err(error(
            field,
            "the lower bound must be less than the upper bound",
        ));
    }
    Ok(range)
}

impl Range {
    fn contains(&self, n: Decimal) -> bool {
        let above = self.lower.is_none_or(|b| {
            if b.inclusive {
                n >= b.value
            } else {
                n > b.value
            }
        });
        let below = self.upper.is_none_or(|b| {
            if b.inclusive {
                n <= b.value
            } else {
                n < b.value
            }
        });
        above && below
    }
}

impl Condition {
    /// `values` are the key's values in the message: none when the key is absent.
    fn matches(&self, values: &[Scalar<'_>]) -> bool {
        match self {
            Condition::Exists(expected) => values.is_empty() != *expected,
            other => values.iter().any(|v| other.matches_one(*v)),
        }
    }

    fn matches_one(&self, value: Scalar<'_>) -> bool {
        match (self, value) {
            (Condition::String(s), Scalar::Str(v)) => s == v,
            (Condition::Number(n), Scalar::Num(v)) => *n == v,
            (Condition::Bool(b), Scalar::Bool(v)) => *b == v,
            (Condition::Null, Scalar::Null) => true,
            (Condition::Prefix(p), Scalar::Str(v)) => v.starts_with(p.as_str()),
            (Condition::Suffix(p), Scalar::Str(v)) => v.ends_with(p.as_str()),
            (Condition::EqualsIgnoreCase(s), Scalar::Str(v)) => {
                s.to_lowercase() == v.to_lowercase()
            }
            (Condition::Numeric(range), Scalar::Num(v)) => range.contains(v),
            (Condition::AnythingBut(but), v) => match (but, v) {
                (AnythingBut::Strings(list), Scalar::Str(v)) => !list.iter().any(|s| s == v),
                (AnythingBut::Numbers(list), Scalar::Num(v)) => !list.contains(&v),
                (AnythingBut::Prefix(p), Scalar::Str(v)) => !v.starts_with(p.as_str()),
                (AnythingBut::Suffix(p), Scalar::Str(v)) => !v.ends_with(p.as_str()),
                // A value of another type is, by definition, none of the listed ones.
                (AnythingBut::Strings(_) | AnythingBut::Numbers(_), _) => true,
                (AnythingBut::Prefix(_) | AnythingBut::Suffix(_), _) => false,
            },
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(pairs: &[(&str, MessageAttribute)]) -> BTreeMap<String, MessageAttribute> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn s(v: &str) -> MessageAttribute {
        MessageAttribute::String(v.to_owned())
    }

    fn n(v: &str) -> MessageAttribute {
        MessageAttribute::Number(v.to_owned())
    }

    fn policy(value: Value) -> FilterPolicy {
        FilterPolicy::parse(&value, FilterPolicyScope::MessageAttributes, "filterPolicy")
            .unwrap_or_else(|e| panic!("{value}: {e:?}"))
    }

    fn body_policy(value: Value) -> FilterPolicy {
        FilterPolicy::parse(&value, FilterPolicyScope::MessageBody, "filterPolicy")
            .unwrap_or_else(|e| panic!("{value}: {e:?}"))
    }

    fn rejected(value: Value, scope: FilterPolicyScope) -> Vec<FieldError> {
        FilterPolicy::parse(&value, scope, "filterPolicy").expect_err("should be rejected")
    }

    fn order_attrs(
        currency: &str,
        total: &str,
        customer: &str,
    ) -> BTreeMap<String, MessageAttribute> {
        attrs(&[
            ("eventType", s("OrderCreated")),
            ("currency", s(currency)),
            ("customerId", s(customer)),
            ("total", n(total)),
        ])
    }

    #[test]
    fn exact_strings_match_string_attributes_case_sensitively() {
        let p = policy(json!({"currency": ["EUR", "GBP"]}));
        assert!(p.matches_attributes(&order_attrs("EUR", "1", "c")));
        assert!(p.matches_attributes(&order_attrs("GBP", "1", "c")));
        assert!(!p.matches_attributes(&order_attrs("eur", "1", "c")));
        assert!(!p.matches_attributes(&order_attrs("USD", "1", "c")));
    }

    #[test]
    fn exact_numbers_match_number_attributes_by_value_not_text() {
        let p = policy(json!({"total": [100, 60.07]}));
        assert!(p.matches_attributes(&order_attrs("EUR", "100.00", "c")));
        assert!(p.matches_attributes(&order_attrs("EUR", "1E2", "c")));
        assert!(p.matches_attributes(&order_attrs("EUR", "60.07", "c")));
        assert!(!p.matches_attributes(&order_attrs("EUR", "60.071", "c")));
        // Types are not mixed: the string "100" does not match the number 100.
        assert!(
            !policy(json!({"total": ["100"]})).matches_attributes(&order_attrs("EUR", "100", "c"))
        );
        assert!(
            !policy(json!({"currency": [100]}))
                .matches_attributes(&attrs(&[("currency", s("100"))]))
        );
    }

    #[test]
    fn prefix_and_suffix_match_the_start_and_end_of_strings() {
        let p = policy(json!({"customerId": [{"prefix": "vip-"}]}));
        assert!(p.matches_attributes(&order_attrs("EUR", "1", "vip-7")));
        assert!(!p.matches_attributes(&order_attrs("EUR", "1", "c-vip-7")));
        let p = policy(json!({"customerId": [{"suffix": "-eu"}]}));
        assert!(p.matches_attributes(&order_attrs("EUR", "1", "c7-eu")));
        assert!(!p.matches_attributes(&order_attrs("EUR", "1", "c7-eu-x")));
        // Never against numbers.
        assert!(
            !policy(json!({"total": [{"prefix": "1"}]}))
                .matches_attributes(&order_attrs("EUR", "10", "c"))
        );
    }

    #[test]
    fn anything_but_matches_present_values_not_listed() {
        let p = policy(json!({"currency": [{"anything-but": ["EUR", "GBP"]}]}));
        assert!(p.matches_attributes(&order_attrs("USD", "1", "c")));
        assert!(!p.matches_attributes(&order_attrs("EUR", "1", "c")));
        assert!(
            !p.matches_attributes(&attrs(&[])),
            "absent is not 'anything but'"
        );
        let single = policy(json!({"currency": [{"anything-but": "EUR"}]}));
        assert!(single.matches_attributes(&order_attrs("USD", "1", "c")));
        assert!(!single.matches_attributes(&order_attrs("EUR", "1", "c")));
        let numbers = policy(json!({"total": [{"anything-but": [0, 100]}]}));
        assert!(numbers.matches_attributes(&order_attrs("EUR", "5", "c")));
        assert!(!numbers.matches_attributes(&order_attrs("EUR", "100.0", "c")));
        let prefix = policy(json!({"customerId": [{"anything-but": {"prefix": "test-"}}]}));
        assert!(prefix.matches_attributes(&order_attrs("EUR", "1", "real-1")));
        assert!(!prefix.matches_attributes(&order_attrs("EUR", "1", "test-1")));
        let suffix = policy(json!({"customerId": [{"anything-but": {"suffix": "-test"}}]}));
        assert!(suffix.matches_attributes(&order_attrs("EUR", "1", "real-1")));
        assert!(!suffix.matches_attributes(&order_attrs("EUR", "1", "x-test")));
    }

    #[test]
    fn numeric_ranges_bound_below_above_or_both() {
        let between = policy(json!({"total": [{"numeric": [">=", 100, "<", 200]}]}));
        for (total, expected) in [
            ("99.99", false),
            ("100", true),
            ("150.5", true),
            ("199.99", true),
            ("200", false),
        ] {
            assert_eq!(
                between.matches_attributes(&order_attrs("EUR", total, "c")),
                expected,
                "{total}"
            );
        }
        let above = policy(json!({"total": [{"numeric": [">", 50]}]}));
        assert!(above.matches_attributes(&order_attrs("EUR", "60.07", "c")));
        assert!(!above.matches_attributes(&order_attrs("EUR", "50", "c")));
        let at_most = policy(json!({"total": [{"numeric": ["<=", 50]}]}));
        assert!(at_most.matches_attributes(&order_attrs("EUR", "50", "c")));
        assert!(!at_most.matches_attributes(&order_attrs("EUR", "50.01", "c")));
        let equals = policy(json!({"total": [{"numeric": ["=", 60.07]}]}));
        assert!(equals.matches_attributes(&order_attrs("EUR", "60.070", "c")));
        assert!(!equals.matches_attributes(&order_attrs("EUR", "60.08", "c")));
        // Numeric conditions never match strings.
        assert!(!above.matches_attributes(&attrs(&[("total", s("60"))])));
    }

    #[test]
    fn exists_matches_presence_or_absence() {
        let present = policy(json!({"customerId": [{"exists": true}]}));
        let absent = policy(json!({"coupon": [{"exists": false}]}));
        assert!(present.matches_attributes(&order_attrs("EUR", "1", "c")));
        assert!(!present.matches_attributes(&attrs(&[("currency", s("EUR"))])));
        assert!(absent.matches_attributes(&order_attrs("EUR", "1", "c")));
        assert!(!absent.matches_attributes(&attrs(&[("coupon", s("X"))])));
        let or_absent = policy(json!({"currency": [{"anything-but": "EUR"}, {"exists": false}]}));
        assert!(or_absent.matches_attributes(&attrs(&[])));
        assert!(or_absent.matches_attributes(&attrs(&[("currency", s("USD"))])));
        assert!(!or_absent.matches_attributes(&attrs(&[("currency", s("EUR"))])));
    }

    #[test]
    fn equals_ignore_case_ignores_case_only() {
        let p = policy(json!({"currency": [{"equals-ignore-case": "eur"}]}));
        assert!(p.matches_attributes(&order_attrs("EUR", "1", "c")));
        assert!(p.matches_attributes(&order_attrs("Eur", "1", "c")));
        assert!(!p.matches_attributes(&order_attrs("EURO", "1", "c")));
    }

    #[test]
    fn values_of_one_key_are_ored_and_keys_are_anded() {
        let p = policy(json!({
            "currency": ["EUR", {"prefix": "G"}],
            "total": [{"numeric": [">=", 100]}],
        }));
        assert!(p.matches_attributes(&order_attrs("EUR", "100", "c")));
        assert!(p.matches_attributes(&order_attrs("GBP", "150", "c")));
        assert!(
            !p.matches_attributes(&order_attrs("GBP", "99", "c")),
            "AND across keys"
        );
        assert!(!p.matches_attributes(&order_attrs("USD", "150", "c")));
        assert!(
            !p.matches_attributes(&attrs(&[("currency", s("EUR"))])),
            "a missing key fails"
        );
        assert!(
            policy(json!({})).matches_attributes(&attrs(&[])),
            "an empty policy matches everything"
        );
    }

    #[test]
    fn body_policies_nest_and_look_through_arrays() {
        let body = json!({
            "type": "OrderCreated",
            "order": {
                "orderID": "o-1",
                "currency": "EUR",
                "total": 60.07,
                "items": [{"sku": "BOOK-1", "quantity": 3}, {"sku": "PEN", "quantity": 1}],
                "notes": null,
                "gift": false
            }
        });
        let p =
            body_policy(json!({"order": {"currency": ["EUR"], "total": [{"numeric": [">", 50]}]}}));
        assert!(p.matches_body(&body));
        let sku = body_policy(json!({"order": {"items": {"sku": ["PEN"]}}}));
        assert!(sku.matches_body(&body), "any element of an array matches");
        let missing = body_policy(json!({"order": {"items": {"sku": ["MUG"]}}}));
        assert!(!missing.matches_body(&body));
        assert!(body_policy(json!({"order": {"notes": [null]}})).matches_body(&body));
        assert!(body_policy(json!({"order": {"gift": [false]}})).matches_body(&body));
        assert!(body_policy(json!({"order": {"coupon": [{"exists": false}]}})).matches_body(&body));
        assert!(
            !body_policy(json!({"order": {"orderID": [{"exists": false}]}})).matches_body(&body)
        );
        assert!(body_policy(json!({"type": [{"suffix": "Created"}]})).matches_body(&body));
        let message = body.to_string();
        assert!(p.matches(&message, &BTreeMap::new()));
        assert!(
            !p.matches("not json", &BTreeMap::new()),
            "a non-JSON body matches no body policy"
        );
    }

    #[test]
    fn attribute_scope_policies_do_not_nest() {
        let errors = rejected(
            json!({"order": {"currency": ["EUR"]}}),
            FilterPolicyScope::MessageAttributes,
        );
        assert_eq!(errors[0].field, "filterPolicy.order");
    }

    #[test]
    fn more_than_five_keys_is_rejected_naming_the_policy() {
        let errors = rejected(
            json!({"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": ["1"]}),
            FilterPolicyScope::MessageAttributes,
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "filterPolicy");
        assert!(errors[0].message.contains("6 keys"), "{errors:?}");
        // Nested keys count once per leaf.
        let nested = rejected(
            json!({"o": {"a": ["1"], "b": ["1"], "c": ["1"]}, "p": {"d": ["1"], "e": ["1"], "f": ["1"]}}),
            FilterPolicyScope::MessageBody,
        );
        assert!(nested[0].message.contains("6 keys"), "{nested:?}");
        policy(json!({"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"]}));
    }

    #[test]
    fn more_than_150_combinations_is_rejected() {
        let values = |n: usize| Value::Array((0..n).map(|i| json!(format!("v{i}"))).collect());
        let ok = policy(json!({"a": values(10), "b": values(15)}));
        assert_eq!(ok.combinations(), 150);
        let errors = rejected(
            json!({"a": values(10), "b": values(16)}),
            FilterPolicyScope::MessageAttributes,
        );
        assert_eq!(errors[0].field, "filterPolicy");
        assert!(errors[0].message.contains("160 combinations"), "{errors:?}");
    }

    #[test]
    fn malformed_conditions_are_rejected_with_their_path() {
        let cases = [
            (json!({"a": "EUR"}), "filterPolicy.a"),
            (json!({"a": []}), "filterPolicy.a"),
            (json!({"a": [{"regex": "x"}]}), "filterPolicy.a[0].regex"),
            (
                json!({"a": ["x", {"prefix": 1}]}),
                "filterPolicy.a[1].prefix",
            ),
            (
                json!({"a": [{"exists": "yes"}]}),
                "filterPolicy.a[0].exists",
            ),
            (
                json!({"a": [{"numeric": [">", "x"]}]}),
                "filterPolicy.a[0].numeric[1]",
            ),
            (
                json!({"a": [{"numeric": ["~", 1]}]}),
                "filterPolicy.a[0].numeric[0]",
            ),
            (
                json!({"a": [{"numeric": [">", 10, "<", 5]}]}),
                "filterPolicy.a[0].numeric",
            ),
            (
                json!({"a": [{"numeric": [">", 1, ">", 5]}]}),
                "filterPolicy.a[0].numeric",
            ),
            (
                json!({"a": [{"numeric": ["=", 1, "<", 5]}]}),
                "filterPolicy.a[0].numeric",
            ),
            (
                json!({"a": [{"numeric": [">", 2_000_000_000]}]}),
                "filterPolicy.a[0].numeric[1]",
            ),
            (json!({"a": [0.000001]}), "filterPolicy.a[0]"),
            (
                json!({"a": [{"anything-but": ["x", 1]}]}),
                "filterPolicy.a[0].anything-but",
            ),
            (
                json!({"a": [{"anything-but": {"numeric": [">", 1]}}]}),
                "filterPolicy.a[0].anything-but.numeric",
            ),
            (
                json!({"a": [{"prefix": "x", "suffix": "y"}]}),
                "filterPolicy.a[0]",
            ),
            (json!({"a": [["x"]]}), "filterPolicy.a[0]"),
            (json!({"$or": [{"a": ["x"]}]}), "filterPolicy.$or"),
            (json!(["x"]), "filterPolicy"),
        ];
        for (value, field) in cases {
            let errors = rejected(value.clone(), FilterPolicyScope::MessageAttributes);
            assert!(
                errors.iter().any(|e| e.field == field),
                "{value}: expected {field}, got {errors:?}"
            );
        }
    }

    #[test]
    fn a_policy_given_as_text_is_parsed_like_json() {
        let p = FilterPolicy::parse_str(
            r#"{"currency":["EUR"]}"#,
            FilterPolicyScope::MessageAttributes,
            "filterPolicy",
        )
        .unwrap();
        assert!(p.matches_attributes(&order_attrs("EUR", "1", "c")));
        let errors = FilterPolicy::parse_str(
            "{nope",
            FilterPolicyScope::MessageAttributes,
            "filterPolicy",
        )
        .unwrap_err();
        assert_eq!(errors[0].field, "filterPolicy");
    }
}
