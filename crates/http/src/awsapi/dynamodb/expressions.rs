//! The placeholders of DynamoDB expressions (`#name`, `:value`), and the two expressions
//! that touch the key: the key condition `orderID = :v` and the put condition
//! `attribute_not_exists(orderID)`.
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.html>

use std::collections::{BTreeSet, HashMap};

use serde_dynamo::AttributeValue;

use super::{KEY, numbers, validation};
use crate::awsapi::AwsError;

/// DynamoDB's reserved words, one a line, sorted; an expression must name such an attribute
/// through a `#placeholder`, or DynamoDB refuses it. Checked here too, so code that works
/// against this server works against DynamoDB.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ReservedWords.html>
const RESERVED_WORDS: &str = include_str!("reserved_words.txt");

/// "The maximum length of any expression string is 4 KB" (Constraints.html#limits-expression-parameters,
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html>).
/// Checked before parsing, so no request makes the parser read more than this.
pub const MAX_EXPRESSION_BYTES: usize = 4 * 1024;

/// Refuses an expression string past DynamoDB's 4 KB, as DynamoDB does.
pub fn check_size(expression: &str, what: &str) -> Result<(), AwsError> {
    if expression.len() > MAX_EXPRESSION_BYTES {
        return Err(validation(format!(
            "Invalid {what}: Expression size has exceeded the maximum allowed size; expression size: {}",
            expression.len()
        )));
    }
    Ok(())
}

fn is_reserved(name: &str) -> bool {
    RESERVED_WORDS
        .lines()
        .any(|word| word.eq_ignore_ascii_case(name))
}

/// `ExpressionAttributeNames` and `ExpressionAttributeValues` of one request, and which of
/// them its expressions used: DynamoDB refuses a request that defines one it never uses.
pub struct Placeholders<'a> {
    names: &'a HashMap<String, String>,
    values: &'a HashMap<String, AttributeValue>,
    used_names: BTreeSet<&'a str>,
    used_values: BTreeSet<&'a str>,
}

impl<'a> Placeholders<'a> {
    pub fn new(
        names: &'a HashMap<String, String>,
        values: &'a HashMap<String, AttributeValue>,
    ) -> Self {
        Placeholders {
            names,
            values,
            used_names: BTreeSet::new(),
            used_values: BTreeSet::new(),
        }
    }

    /// The attribute a name token of `expression` (e.g. `ProjectionExpression`) stands for:
    /// `#n` through `ExpressionAttributeNames`, any other name itself unless reserved.
    pub(super) fn name(&mut self, token: &str, expression: &str) -> Result<String, AwsError> {
        if !token.starts_with('#') {
            if is_reserved(token) {
                return Err(validation(format!(
                    "Invalid {expression}: Attribute name is a reserved keyword; reserved keyword: {token}"
                )));
            }
            return Ok(token.to_owned());
        }
        match self.names.get_key_value(token) {
            Some((key, name)) => {
                self.used_names.insert(key);
                Ok(name.clone())
            }
            None => Err(validation(format!(
                "Value provided in ExpressionAttributeNames unused in expressions or an expression attribute name used in an expression is not defined; attribute name: {token}"
            ))),
        }
    }

    /// The value `:token` stands for; a number in it must be one DynamoDB accepts.
    pub(super) fn value(&mut self, token: &str) -> Result<&'a AttributeValue, AwsError> {
        match self.values.get_key_value(token) {
            Some((key, value)) => {
                numbers::check(value)?;
                self.used_values.insert(key);
                Ok(value)
            }
            None => Err(validation(format!(
                "An expression attribute value used in expression is not defined; attribute value: {token}"
            ))),
        }
    }

    /// Refuses placeholders that no expression used, as DynamoDB does.
    pub fn check_all_used(&self) -> Result<(), AwsError> {
        let unused = |all: Vec<&'a str>, used: &BTreeSet<&'a str>| -> Vec<&'a str> {
            let mut v: Vec<&str> = all.into_iter().filter(|k| !used.contains(k)).collect();
            v.sort_unstable();
            v
        };
        let names = unused(
            self.names.keys().map(String::as_str).collect(),
            &self.used_names,
        );
        if !names.is_empty() {
            return Err(validation(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                names.join(", ")
            )));
        }
        let values = unused(
            self.values.keys().map(String::as_str).collect(),
            &self.used_values,
        );
        if !values.is_empty() {
            return Err(validation(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                values.join(", ")
            )));
        }
        Ok(())
    }
}

/// The order id a `KeyConditionExpression` asks for: `orderID = :v` (either side, with
/// placeholders and parentheses). The table has only a partition key, so equality on it is
/// the only key condition DynamoDB accepts.
pub fn key_condition(expression: &str, p: &mut Placeholders<'_>) -> Result<String, AwsError> {
    check_size(expression, "KeyConditionExpression")?;
    let tokens = tokens(expression);
    let inner: Vec<&str> = tokens
        .iter()
        .map(String::as_str)
        .filter(|t| *t != "(" && *t != ")")
        .collect();
    let [left, "=", right] = inner.as_slice() else {
        return Err(validation(format!(
            "Query key condition not supported: orderflow serve's table has the partition key {KEY} only, so the condition must be {KEY} = :value (got {expression:?})"
        )));
    };
    let (name, value) = match (left.starts_with(':'), right.starts_with(':')) {
        (false, true) => (*left, *right),
        (true, false) => (*right, *left),
        _ => {
            return Err(validation(format!(
                "Invalid KeyConditionExpression: compare the key attribute with one :value (got {expression:?})"
            )));
        }
    };
    if !is_name_token(name) {
        return Err(validation(format!(
            "Invalid KeyConditionExpression: {name:?} is not an attribute name"
        )));
    }
    let name = p.name(name, "KeyConditionExpression")?;
    if name != KEY {
        return Err(validation(format!(
            "Query condition missed key schema element: {KEY}"
        )));
    }
    match p.value(value)? {
        AttributeValue::S(id) => Ok(id.clone()),
        _ => Err(validation(
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        )),
    }
}

/// Accepts `attribute_not_exists(orderID)` (the condition `store-orders` puts with) and
/// nothing else: orders are kept as first written, so no other put may reach the table.
pub fn put_condition(expression: &str, p: &mut Placeholders<'_>) -> Result<(), AwsError> {
    check_size(expression, "ConditionExpression")?;
    let tokens = tokens(expression);
    let t: Vec<&str> = tokens.iter().map(String::as_str).collect();
    if let ["attribute_not_exists", "(", name, ")"] = t.as_slice()
        && is_name_token(name)
        && p.name(name, "ConditionExpression")? == KEY
    {
        return Ok(());
    }
    Err(put_refused(&format!(
        "the ConditionExpression {expression:?} is not attribute_not_exists({KEY})"
    )))
}

/// Why a put other than "insert a new order" is refused.
pub fn put_refused(what: &str) -> AwsError {
    validation(format!(
        "orderflow serve keeps every order as it was first written, so PutItem needs ConditionExpression attribute_not_exists({KEY}); {what}"
    ))
}

fn is_name_token(t: &str) -> bool {
    let body = t.strip_prefix('#').unwrap_or(t);
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Splits an expression into names, placeholders, operators and parentheses.
fn tokens(expression: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(std::mem::take(word));
        }
    };
    let mut chars = expression.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => flush(&mut word, &mut out),
            '(' | ')' | ',' => {
                flush(&mut word, &mut out);
                out.push(c.to_string());
            }
            '=' | '<' | '>' => {
                flush(&mut word, &mut out);
                let mut op = c.to_string();
                if let Some(&next) = chars.peek()
                    && (next == '=' || next == '>')
                {
                    op.push(next);
                    chars.next();
                }
                out.push(op);
            }
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn values(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn a_key_condition_names_the_key_directly_or_through_a_placeholder() {
        let n = names(&[("#k", "orderID")]);
        let v = values(&[(":v", AttributeValue::S("o-1".into()))]);
        for expression in ["orderID = :v", "#k=:v", "( :v = #k )"] {
            let none = HashMap::new();
            let names = if expression.contains('#') { &n } else { &none };
            let mut p = Placeholders::new(names, &v);
            assert_eq!(key_condition(expression, &mut p).unwrap(), "o-1");
            p.check_all_used().unwrap();
        }
    }

    #[test]
    fn a_key_condition_on_another_attribute_or_operator_is_refused() {
        let none = HashMap::new();
        let v = values(&[(":v", AttributeValue::S("o-1".into()))]);
        let e = key_condition("customerId = :v", &mut Placeholders::new(&none, &v)).unwrap_err();
        assert!(
            e.message.contains("missed key schema element"),
            "{}",
            e.message
        );
        let e = key_condition(
            "begins_with(orderID, :v)",
            &mut Placeholders::new(&none, &v),
        )
        .unwrap_err();
        assert!(e.message.contains("not supported"), "{}", e.message);
        let n = values(&[(":v", AttributeValue::N("1".into()))]);
        let e = key_condition("orderID = :v", &mut Placeholders::new(&none, &n)).unwrap_err();
        assert!(e.message.contains("type does not match"), "{}", e.message);
    }

    #[test]
    fn only_attribute_not_exists_of_the_key_is_a_put_condition() {
        let n = names(&[("#n0", "orderID")]);
        let none = HashMap::new();
        let nv = HashMap::new();
        put_condition("attribute_not_exists(#n0)", &mut Placeholders::new(&n, &nv)).unwrap();
        put_condition(
            " attribute_not_exists ( orderID ) ",
            &mut Placeholders::new(&none, &nv),
        )
        .unwrap();
        for other in [
            "attribute_exists(orderID)",
            "attribute_not_exists(customerId)",
            "attribute_not_exists(orderID) OR attribute_exists(orderID)",
        ] {
            let e = put_condition(other, &mut Placeholders::new(&none, &nv)).unwrap_err();
            assert!(e.message.contains("keeps every order"), "{}", e.message);
        }
    }

    #[test]
    fn an_unused_placeholder_is_refused_as_dynamodb_does() {
        let n = names(&[("#k", "orderID"), ("#b", "notes")]);
        let v = values(&[(":v", AttributeValue::S("o-1".into()))]);
        let mut p = Placeholders::new(&n, &v);
        key_condition("#k = :v", &mut p).unwrap();
        let e = p.check_all_used().unwrap_err();
        assert_eq!(
            e.message,
            "Value provided in ExpressionAttributeNames unused in expressions: keys: {#b}"
        );
    }

    #[test]
    fn a_reserved_word_must_be_named_through_a_placeholder_as_dynamodb_requires() {
        assert!(is_reserved("STATUS") && is_reserved("items") && is_reserved("total"));
        assert!(!is_reserved(KEY) && !is_reserved("currency"));
        let none = HashMap::new();
        let nv = HashMap::new();
        let e = Placeholders::new(&none, &nv)
            .name("total", "ProjectionExpression")
            .unwrap_err();
        assert_eq!(
            e.message,
            "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved keyword: total"
        );
        let n = names(&[("#t", "total")]);
        assert_eq!(
            Placeholders::new(&n, &nv)
                .name("#t", "ProjectionExpression")
                .unwrap(),
            "total"
        );
    }
}
