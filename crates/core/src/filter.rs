//! SNS subscription filter policies: parsing with SNS's limits, and matching against a
//! message's attributes or its JSON body. Pure functions, no I/O.
//!
//! A policy is a JSON object whose leaf values are arrays of conditions. Conditions in one
//! array are ORed; keys are ANDed; `"$or": [{...}, {...}]` at any level ORs whole objects.
//! With `MessageAttributes` scope the object is flat and is matched against the message
//! attributes; with `MessageBody` scope it may nest and is matched against the message parsed
//! as JSON (arrays in the body match when any element does).

use std::collections::BTreeMap;
use std::net::IpAddr;
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
    root: Level,
}

/// One object of a policy: keys that must all match, and the alternatives of its `$or`, of
/// which one must.
#[derive(Debug, Clone, PartialEq, Default)]
struct Level {
    keys: BTreeMap<String, Node>,
    /// Empty when the object has no `$or`.
    any_of: Vec<Level>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Conditions(Vec<Condition>),
    Nested(Level),
}

/// What SNS's limits are checked against: the most keys in any way through the policy's
/// `$or`s, and the combinations of values summed over those ways.
struct Shape {
    keys: usize,
    combinations: u64,
}

/// The operator key that ORs objects.
const OR: &str = "$or";

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
    Cidr(Cidr),
}

/// An IP network (`{"cidr": "10.0.0.0/24"}`, IPv4 or IPv6).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
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
        let root = parse_object(object, scope, field, 0, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let policy = FilterPolicy { scope, root };
        let Some(Shape {
            keys: leaves,
            combinations,
        }) = policy.shape()
        else {
            return Err(vec![error(
                field,
                format!(
                    "has more than {MAX_COMBINATIONS} combinations of values through its $or alternatives; at most {MAX_COMBINATIONS} are allowed"
                ),
            )]);
        };
        if leaves > MAX_KEYS {
            errors.push(error(
                field,
                format!(
                    "has {leaves} keys; a filter policy may have at most {MAX_KEYS} (in each alternative of an $or)"
                ),
            ));
        }
        if combinations > MAX_COMBINATIONS {
            errors.push(error(
                field,
                format!(
                    "has {combinations} combinations of values; at most {MAX_COMBINATIONS} are allowed (the product of the number of values of every key, summed over the alternatives of $or)"
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

    /// How many keys hold conditions (nested keys count once per leaf), in the alternative
    /// of the policy's `$or`s that has the most.
    pub fn leaf_count(&self) -> usize {
        self.shape().map_or(usize::MAX, |s| s.keys)
    }

    /// The product of the number of conditions of every key, summed over the alternatives
    /// of the policy's `$or`s (saturating: `u64::MAX` when there are too many to count).
    pub fn combinations(&self) -> u64 {
        self.shape().map_or(u64::MAX, |s| s.combinations)
    }

    /// Both counts from one walk through the `$or`s; `None` past [`MAX_PATHS`] ways.
    fn shape(&self) -> Option<Shape> {
        let paths = self.root.paths(MAX_PATHS)?;
        Some(Shape {
            keys: paths.iter().map(Vec::len).max().unwrap_or(0),
            combinations: paths
                .iter()
                .map(|p| p.iter().fold(1u64, |acc, n| acc.saturating_mul(*n as u64)))
                .fold(0u64, u64::saturating_add),
        })
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
        fn matches_level(level: &Level, attributes: &BTreeMap<String, MessageAttribute>) -> bool {
            let keys = level.keys.iter().all(|(key, node)| {
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
            });
            keys && (level.any_of.is_empty()
                || level
                    .any_of
                    .iter()
                    .any(|alt| matches_level(alt, attributes)))
        }
        matches_level(&self.root, attributes)
    }

    pub fn matches_body(&self, body: &Value) -> bool {
        fn matches_level(level: &Level, parents: &[&Value]) -> bool {
            let keys = level.keys.iter().all(|(key, node)| {
                let mut children = Vec::new();
                for parent in parents {
                    collect_objects_child(parent, key, &mut children);
                }
                match node {
                    Node::Nested(inner) => matches_level(inner, &children),
                    Node::Conditions(conditions) => {
                        let mut values = Vec::new();
                        for child in &children {
                            flatten_scalars(child, &mut values);
                        }
                        conditions.iter().any(|c| c.matches(&values))
                    }
                }
            });
            // An `$or`'s alternatives look at the same object as the keys beside it.
            keys && (level.any_of.is_empty()
                || level.any_of.iter().any(|alt| matches_level(alt, parents)))
        }
        matches_level(&self.root, &[body])
    }
}

/// More ways through a policy's `$or`s than this cannot be within the combination limit
/// (each way counts at least one), so expanding stops there.
const MAX_PATHS: usize = MAX_COMBINATIONS as usize + 1;

impl Level {
    /// Every way through this object's `$or`s (and its nested objects' ones), each as the
    /// number of conditions of every key it requires: how SNS counts keys and combinations.
    /// `None` when there are more than `limit` ways.
    fn paths(&self, limit: usize) -> Option<Vec<Vec<usize>>> {
        fn cross(a: Vec<Vec<usize>>, b: &[Vec<usize>], limit: usize) -> Option<Vec<Vec<usize>>> {
            if a.len().saturating_mul(b.len()) > limit {
                return None;
            }
            Some(
                a.iter()
                    .flat_map(|x| b.iter().map(move |y| [x.as_slice(), y].concat()))
                    .collect(),
            )
        }
        let mut paths = vec![Vec::new()];
        for node in self.keys.values() {
            match node {
                Node::Conditions(c) => paths.iter_mut().for_each(|p| p.push(c.len())),
                Node::Nested(inner) => paths = cross(paths, &inner.paths(limit)?, limit)?,
            }
        }
        if !self.any_of.is_empty() {
            let mut alternatives = Vec::new();
            for alt in &self.any_of {
                alternatives.extend(alt.paths(limit)?);
                if alternatives.len() > limit {
                    return None;
                }
            }
            paths = cross(paths, &alternatives, limit)?;
        }
        Some(paths)
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

/// The operators a condition object may hold; an object using one is a condition, not an
/// alternative of `$or`.
const OPERATORS: &[&str] = &[
    "prefix",
    "suffix",
    "equals-ignore-case",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
];

/// SNS reads `"$or"` as the operator only when it holds an array of objects none of which
/// uses an operator name as a key; otherwise it is an ordinary key.
fn is_or_operator(value: &Value) -> bool {
    matches!(value, Value::Array(items) if !items.is_empty() && items.iter().all(|item| {
        item.as_object()
            .is_some_and(|o| !o.keys().any(|k| OPERATORS.contains(&k.as_str())))
    }))
}

fn parse_object(
    object: &serde_json::Map<String, Value>,
    scope: FilterPolicyScope,
    field: &str,
    depth: usize,
    errors: &mut Vec<FieldError>,
) -> Level {
    let mut out = Level::default();
    if depth >= 32 {
        errors.push(error(field, "is nested too deeply"));
        return out;
    }
    for (key, value) in object {
        let path = format!("{field}.{key}");
        if key == OR && is_or_operator(value) {
            let alternatives = value.as_array().expect("checked");
            if alternatives.len() < 2 {
                errors.push(error(&path, "$or takes at least two objects"));
                continue;
            }
            for (i, alt) in alternatives.iter().enumerate() {
                let alt_path = format!("{path}[{i}]");
                let alt = alt.as_object().expect("checked");
                if alt.is_empty() {
                    errors.push(error(&alt_path, "must not be an empty object"));
                    continue;
                }
                out.any_of
                    .push(parse_object(alt, scope, &alt_path, depth + 1, errors));
            }
            continue;
        }
        if key.starts_with('$') && key != OR {
            errors.push(error(
                &path,
                format!(
                    "the operator {key} is not supported; $or is, and alternatives for one key go in its array"
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
                out.keys.insert(key.clone(), Node::Conditions(conditions));
            }
            Value::Object(inner) if scope == FilterPolicyScope::MessageBody => {
                if inner.is_empty() {
                    errors.push(error(&path, "must not be an empty object"));
                    continue;
                }
                out.keys.insert(
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
                "cidr" => parse_cidr(expect_string(operand, field, "cidr")?)
                    .map(Condition::Cidr)
                    .map_err(|message| error(field, message)),
                other => Err(error(
                    field,
                    format!(
                        "unknown operator {other:?}; supported: {}",
                        OPERATORS.join(", ")
                    ),
                )),
            }
        }
    }
}

/// `10.0.0.0/24`, `2001:db8::/32`, or a single address (all of its bits).
fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let (address, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let network: IpAddr = address
        .parse()
        .map_err(|_| format!("{text:?} is not an IP address or network such as 10.0.0.0/24"))?;
    let bits = if network.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => bits,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or_else(|| format!("{text:?} has a prefix length that is not 0-{bits}"))?,
    };
    Ok(Cidr { network, prefix })
}

impl Cidr {
    fn contains(&self, text: &str) -> bool {
        let Ok(address) = text.trim().parse::<IpAddr>() else {
            return false;
        };
        fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
            let keep = u32::from(prefix);
            let shift = u32::from(width) - keep;
            if keep == 0 {
                0
            } else {
                (bits >> shift) << shift
            }
        }
        match (self.network, address) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                masked(u128::from(u32::from(net)), 32, self.prefix)
                    == masked(u128::from(u32::from(a)), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                masked(u128::from(net), 128, self.prefix) == masked(u128::from(a), 128, self.prefix)
            }
            _ => false,
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
            (Condition::Cidr(net), Scalar::Str(v)) => net.contains(v),
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
    fn or_matches_when_any_alternative_does_and_the_keys_beside_it_too() {
        let p = policy(json!({
            "currency": ["EUR", "USD"],
            "$or": [
                {"customerId": [{"prefix": "vip-"}]},
                {"total": [{"numeric": [">", 100]}]}
            ]
        }));
        assert!(p.matches_attributes(&order_attrs("EUR", "1", "vip-anna")));
        assert!(p.matches_attributes(&order_attrs("USD", "150", "plain")));
        assert!(!p.matches_attributes(&order_attrs("EUR", "50", "plain")));
        assert!(
            !p.matches_attributes(&order_attrs("GBP", "150", "vip-anna")),
            "the key beside the $or still applies"
        );
        // An $or inside an alternative.
        let nested = policy(json!({"$or": [
            {"currency": ["JPY"]},
            {"$or": [{"customerId": ["a"]}, {"customerId": ["b"]}]}
        ]}));
        assert!(nested.matches_attributes(&order_attrs("JPY", "1", "z")));
        assert!(nested.matches_attributes(&order_attrs("EUR", "1", "b")));
        assert!(!nested.matches_attributes(&order_attrs("EUR", "1", "c")));
    }

    #[test]
    fn or_in_a_body_policy_looks_at_the_object_it_sits_in() {
        let p = body_policy(json!({"order": {
            "currency": ["EUR"],
            "$or": [
                {"shippingAddress": {"country": ["DE"]}},
                {"items": {"sku": ["PEN"]}}
            ]
        }}));
        let body = |currency: &str, country: &str, sku: &str| {
            json!({"order": {"currency": currency, "shippingAddress": {"country": country},
                   "items": [{"sku": "BOOK"}, {"sku": sku}]}})
        };
        assert!(p.matches_body(&body("EUR", "DE", "MUG")));
        assert!(p.matches_body(&body("EUR", "FR", "PEN")));
        assert!(!p.matches_body(&body("EUR", "FR", "MUG")));
        assert!(!p.matches_body(&body("USD", "DE", "PEN")));
    }

    #[test]
    fn or_counts_keys_per_alternative_and_sums_their_combinations() {
        let values = |n: usize| Value::Array((0..n).map(|i| json!(format!("v{i}"))).collect());
        // 100 + 50 = 150 combinations: allowed; one more is not.
        let at_limit = json!({"$or": [{"a": values(100)}, {"b": values(50)}]});
        assert_eq!(policy(at_limit).combinations(), 150);
        let over = json!({"$or": [{"a": values(100)}, {"b": values(51)}]});
        assert!(
            rejected(over, FilterPolicyScope::MessageAttributes)[0]
                .message
                .contains("151 combinations")
        );
        // Keys beside an $or multiply each alternative: 2 x (3 + 4) = 14.
        let beside = json!({"k": ["x", "y"], "$or": [{"a": values(3)}, {"b": values(4)}]});
        assert_eq!(policy(beside).combinations(), 14);
        // Five keys in each alternative is fine; six in one is not.
        let five = json!({"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"],
                          "$or": [{"e": ["1"]}, {"f": ["1"]}]});
        assert_eq!(policy(five).leaf_count(), 5);
        let six = json!({"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"],
                         "$or": [{"e": ["1"], "f": ["1"]}, {"g": ["1"]}]});
        assert!(
            rejected(six, FilterPolicyScope::MessageAttributes)[0]
                .message
                .contains("6 keys")
        );
        // $ors whose ways multiply past the limit (2^30 here) are refused without
        // expanding them all.
        let bomb: serde_json::Map<String, Value> = (0..30)
            .map(|i| {
                (
                    format!("k{i}"),
                    json!({"$or": [{"x": ["1"]}, {"y": ["1"]}]}),
                )
            })
            .collect();
        let started = std::time::Instant::now();
        let errors = rejected(Value::Object(bomb), FilterPolicyScope::MessageBody);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(
            errors[0].message.contains("more than 150 combinations"),
            "{errors:?}"
        );
    }

    #[test]
    fn or_that_is_not_the_operator_is_an_ordinary_key_as_in_sns() {
        // Not an array of objects: an attribute named "$or".
        let p = policy(json!({"$or": ["x"]}));
        let named = attrs(&[("$or", s("x"))]);
        assert!(p.matches_attributes(&named));
        assert!(!p.matches_attributes(&attrs(&[("$or", s("y"))])));
        // Objects that use operator names are conditions on that attribute.
        let p = policy(json!({"$or": [{"prefix": "a"}, {"suffix": "z"}]}));
        assert!(p.matches_attributes(&attrs(&[("$or", s("abc"))])));
        assert!(!p.matches_attributes(&attrs(&[("$or", s("mmm"))])));
        // Attribute scope stays flat inside an alternative.
        let errors = rejected(
            json!({"$or": [{"a": {"b": ["x"]}}, {"c": ["y"]}]}),
            FilterPolicyScope::MessageAttributes,
        );
        assert_eq!(errors[0].field, "filterPolicy.$or[0].a", "{errors:?}");
        // Other $ names are not operators SNS knows.
        let errors = rejected(
            json!({"$and": [{"a": ["x"]}]}),
            FilterPolicyScope::MessageAttributes,
        );
        assert_eq!(errors[0].field, "filterPolicy.$and");
    }

    #[test]
    fn cidr_matches_addresses_inside_the_network() {
        let p = policy(json!({"sourceIp": [{"cidr": "10.0.0.0/24"}]}));
        let ip = |v: &str| attrs(&[("sourceIp", s(v))]);
        assert!(p.matches_attributes(&ip("10.0.0.7")));
        assert!(p.matches_attributes(&ip("10.0.0.255")));
        assert!(!p.matches_attributes(&ip("10.0.1.7")));
        assert!(!p.matches_attributes(&ip("not an address")));
        assert!(
            !p.matches_attributes(&ip("::ffff:10.0.0.7")),
            "another family"
        );
        let v6 = policy(json!({"sourceIp": [{"cidr": "2001:db8::/32"}]}));
        assert!(v6.matches_attributes(&ip("2001:db8:1::42")));
        assert!(!v6.matches_attributes(&ip("2001:db9::1")));
        assert!(!v6.matches_attributes(&ip("10.0.0.7")));
        let all = policy(json!({"sourceIp": [{"cidr": "0.0.0.0/0"}]}));
        assert!(all.matches_attributes(&ip("192.168.1.1")));
        let one = policy(json!({"sourceIp": [{"cidr": "192.168.1.1"}]}));
        assert!(one.matches_attributes(&ip("192.168.1.1")));
        assert!(!one.matches_attributes(&ip("192.168.1.2")));
        for bad in [
            json!("10.0.0.0/33"),
            json!("10.0.0/8"),
            json!("::/129"),
            json!(5),
        ] {
            let errors = rejected(
                json!({"sourceIp": [{"cidr": bad}]}),
                FilterPolicyScope::MessageAttributes,
            );
            assert_eq!(
                errors[0].field, "filterPolicy.sourceIp[0].cidr",
                "{bad}: {errors:?}"
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
