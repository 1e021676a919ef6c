//! How DynamoDB compares and measures attribute values in conditions: numbers by their
//! exact value, strings and binaries by their bytes, sets regardless of order.
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.OperatorsAndFunctions.html#Expressions.OperatorsAndFunctions.Syntax>

use std::cmp::Ordering;

use serde_dynamo::AttributeValue;

use super::numbers::Number;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

pub fn type_name(v: &AttributeValue) -> &'static str {
    match v {
        AttributeValue::N(_) => "N",
        AttributeValue::S(_) => "S",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::B(_) => "B",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::M(_) => "M",
        AttributeValue::L(_) => "L",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
    }
}

/// `size(path)`: a string's or binary's length, a collection's element count.
pub fn size(v: &AttributeValue) -> Option<usize> {
    Some(match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::B(b) => b.len(),
        AttributeValue::L(l) => l.len(),
        AttributeValue::M(m) => m.len(),
        AttributeValue::Ss(s) => s.len(),
        AttributeValue::Ns(s) => s.len(),
        AttributeValue::Bs(s) => s.len(),
        _ => return None,
    })
}

/// A number attribute's value; every number a request carries was checked on the way in
/// (`numbers::check`), so `None` only for one that could never have been stored.
fn number(text: &str) -> Option<Number> {
    Number::parse(text).ok()
}

/// DynamoDB's order: numbers by value, strings and binaries by their bytes; values of
/// other or different types do not compare.
fn order(a: &AttributeValue, b: &AttributeValue) -> Option<Ordering> {
    match (a, b) {
        (AttributeValue::N(x), AttributeValue::N(y)) => Some(number(x)?.cmp(&number(y)?)),
        (AttributeValue::S(x), AttributeValue::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (AttributeValue::B(x), AttributeValue::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

pub fn equal(a: &AttributeValue, b: &AttributeValue) -> bool {
    match (a, b) {
        (AttributeValue::N(_), AttributeValue::N(_)) => order(a, b) == Some(Ordering::Equal),
        (AttributeValue::Ss(x), AttributeValue::Ss(y)) => same_set(x, y),
        (AttributeValue::Bs(x), AttributeValue::Bs(y)) => same_set(x, y),
        (AttributeValue::Ns(x), AttributeValue::Ns(y)) => {
            x.len() == y.len()
                && x.iter().all(|n| {
                    y.iter().any(|m| {
                        equal(&AttributeValue::N(n.clone()), &AttributeValue::N(m.clone()))
                    })
                })
        }
        (AttributeValue::L(x), AttributeValue::L(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (AttributeValue::M(x), AttributeValue::M(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn same_set<T: PartialEq>(x: &[T], y: &[T]) -> bool {
    x.len() == y.len() && x.iter().all(|v| y.contains(v))
}

pub fn compare(a: Option<&AttributeValue>, op: Comparator, b: Option<&AttributeValue>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        // A missing attribute equals nothing, so it differs from everything.
        return op == Comparator::Ne;
    };
    match op {
        Comparator::Eq => equal(a, b),
        Comparator::Ne => !equal(a, b),
        Comparator::Lt => order(a, b) == Some(Ordering::Less),
        Comparator::Le => matches!(order(a, b), Some(Ordering::Less | Ordering::Equal)),
        Comparator::Gt => order(a, b) == Some(Ordering::Greater),
        Comparator::Ge => matches!(order(a, b), Some(Ordering::Greater | Ordering::Equal)),
    }
}
