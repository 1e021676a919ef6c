//! DynamoDB's expression grammar over document paths (`name`, `#name`, `a.b`, `a[0]`): the
//! conditions of `FilterExpression` (comparisons, `BETWEEN`, `IN`, `AND`/`OR`/`NOT`,
//! `attribute_exists`, `attribute_not_exists`, `attribute_type`, `begins_with`, `contains`,
//! `size`), evaluated on each item read, and the paths of `ProjectionExpression`.
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.OperatorsAndFunctions.html>
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ProjectionExpressions.html>

use serde_dynamo::{AttributeValue, Item};

use super::expressions::{Placeholders, check_size};
use super::paths::{Path, Step, check_apart};
use super::validation;
use super::values::{Comparator, compare, equal, size, type_name};
use crate::awsapi::AwsError;

const FILTER: &str = "FilterExpression";
const PROJECTION: &str = "ProjectionExpression";

/// "The maximum number of operands for the IN comparator is 100"
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html#limits-expression-parameters>).
const MAX_IN_OPERANDS: usize = 100;

/// How deep parentheses and `NOT`s may nest. The parser and the evaluator
/// recurse once a level, so without a bound a 4 KB expression of `(((...)))` overflows a
/// worker's stack and aborts the whole server. DynamoDB documents no such depth; this bound
/// is ours, far past what a hand-written or generated filter nests (DynamoDB's own cap on
/// an UpdateExpression is 300 operators).
const MAX_DEPTH: usize = 64;

/// A parsed condition.
#[derive(Debug)]
pub struct Filter(Condition);

#[derive(Debug)]
enum Condition {
    /// `a OR b OR c` as one node, so a long chain nests no deeper than one of its terms.
    Or(Vec<Condition>),
    And(Vec<Condition>),
    Not(Box<Condition>),
    Compare(Operand, Comparator, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    Exists(Path),
    NotExists(Path),
    Type(Path, String),
    BeginsWith(Path, Operand),
    Contains(Path, Operand),
}

#[derive(Debug)]
enum Operand {
    Path(Path),
    Value(AttributeValue),
    Size(Path),
}

impl Filter {
    /// Parses `expression`, resolving its `#names` and `:values` through `p`.
    pub fn parse(expression: &str, p: &mut Placeholders<'_>) -> Result<Filter, AwsError> {
        let mut parser = Parser::new(expression, FILTER, p)?;
        let condition = parser.or()?;
        parser.end()?;
        Ok(Filter(condition))
    }

    /// Whether `item` satisfies the condition.
    pub fn matches(&self, item: &Item) -> bool {
        self.0.holds(item)
    }

    /// The top-level attribute names the condition reads (a Query's filter may not read the key).
    pub fn names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.0.names(&mut out);
        out
    }
}

/// The paths of a `ProjectionExpression`; none may overlap or conflict with another.
pub fn projection(expression: &str, p: &mut Placeholders<'_>) -> Result<Vec<Path>, AwsError> {
    let mut parser = Parser::new(expression, PROJECTION, p)?;
    let mut paths = vec![parser.path()?];
    while parser.peek() == Some(",") {
        parser.at += 1;
        paths.push(parser.path()?);
    }
    parser.end()?;
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[..i] {
            check_apart(a, b)?;
        }
    }
    Ok(paths)
}

fn syntax(what: &str, token: &str) -> AwsError {
    validation(format!("Invalid {what}: Syntax error; token: \"{token}\""))
}

fn operand_type(function: &str, value: &AttributeValue) -> AwsError {
    validation(format!(
        "Invalid {FILTER}: Incorrect operand type for operator or function; operator or function: {function}, operand type: {}",
        type_name(value)
    ))
}

/// Names, `#names`, `:values`, list indexes and punctuation.
fn tokens(expression: &str, what: &str) -> Result<Vec<String>, AwsError> {
    let mut out = Vec::new();
    let mut chars = expression.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' | ')' | ',' | '.' | '[' | ']' | '=' => out.push(c.to_string()),
            '<' | '>' => {
                let mut op = c.to_string();
                if let Some(&(_, next)) = chars.peek()
                    && (next == '=' || (c == '<' && next == '>'))
                {
                    op.push(next);
                    chars.next();
                }
                out.push(op);
            }
            c if c.is_alphanumeric() || matches!(c, '#' | ':' | '_' | '-') => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, n)) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' || n == '-' {
                        end = j + n.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(expression[i..end].to_owned());
            }
            other => return Err(syntax(what, &other.to_string())),
        }
    }
    Ok(out)
}

struct Parser<'p, 'a> {
    tokens: Vec<String>,
    at: usize,
    /// The parameter being parsed, for error messages.
    what: &'static str,
    p: &'p mut Placeholders<'a>,
    /// How many conditions enclose the one being parsed (see `MAX_DEPTH`).
    depth: usize,
}

impl<'p, 'a> Parser<'p, 'a> {
    fn new(
        expression: &str,
        what: &'static str,
        p: &'p mut Placeholders<'a>,
    ) -> Result<Self, AwsError> {
        check_size(expression, what)?;
        Ok(Parser {
            tokens: tokens(expression, what)?,
            at: 0,
            what,
            p,
            depth: 0,
        })
    }

    /// Enters one more level of nesting, refusing one past `MAX_DEPTH`.
    fn deeper(&mut self) -> Result<(), AwsError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(validation(format!(
                "Invalid {}: The expression nests conditions more than {MAX_DEPTH} deep (orderflow serve's limit: it evaluates each level on the stack)",
                self.what
            )));
        }
        Ok(())
    }

    fn syntax(&self, token: &str) -> AwsError {
        syntax(self.what, token)
    }

    /// Refuses what follows a complete expression.
    fn end(&self) -> Result<(), AwsError> {
        match self.peek() {
            Some(t) => Err(self.syntax(t)),
            None => Ok(()),
        }
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn keyword(&mut self, word: &str) -> bool {
        let found = self.peek().is_some_and(|t| t.eq_ignore_ascii_case(word));
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, token: &str) -> Result<(), AwsError> {
        match self.peek() {
            Some(t) if t == token => {
                self.at += 1;
                Ok(())
            }
            Some(t) => Err(self.syntax(t)),
            None => Err(self.syntax("<EOF>")),
        }
    }

    fn or(&mut self) -> Result<Condition, AwsError> {
        let mut terms = vec![self.and()?];
        while self.keyword("OR") {
            terms.push(self.and()?);
        }
        Ok(match terms.len() {
            1 => terms.pop().expect("one term"),
            _ => Condition::Or(terms),
        })
    }

    fn and(&mut self) -> Result<Condition, AwsError> {
        let mut terms = vec![self.not()?];
        while self.keyword("AND") {
            terms.push(self.not()?);
        }
        Ok(match terms.len() {
            1 => terms.pop().expect("one term"),
            _ => Condition::And(terms),
        })
    }

    fn not(&mut self) -> Result<Condition, AwsError> {
        if self.keyword("NOT") {
            self.deeper()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Condition::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Condition, AwsError> {
        if self.peek() == Some("(") {
            self.at += 1;
            self.deeper()?;
            let inner = self.or()?;
            self.depth -= 1;
            self.expect(")")?;
            return Ok(inner);
        }
        if let Some(function) = self.function_name() {
            return self.function(&function);
        }
        let left = self.operand()?;
        if self.keyword("BETWEEN") {
            let low = self.operand()?;
            if !self.keyword("AND") {
                return Err(self.syntax(self.peek().unwrap_or("<EOF>")));
            }
            return Ok(Condition::Between(left, low, self.operand()?));
        }
        if self.keyword("IN") {
            self.expect("(")?;
            let mut list = vec![self.operand()?];
            while self.peek() == Some(",") {
                self.at += 1;
                list.push(self.operand()?);
                if list.len() > MAX_IN_OPERANDS {
                    return Err(validation(format!(
                        "Invalid {}: The IN operator is provided with too many operands; number of operands: {}",
                        self.what,
                        list.len()
                    )));
                }
            }
            self.expect(")")?;
            return Ok(Condition::In(left, list));
        }
        let comparator = match self.peek() {
            Some("=") => Comparator::Eq,
            Some("<>") => Comparator::Ne,
            Some("<") => Comparator::Lt,
            Some("<=") => Comparator::Le,
            Some(">") => Comparator::Gt,
            Some(">=") => Comparator::Ge,
            Some(t) => return Err(self.syntax(t)),
            None => return Err(self.syntax("<EOF>")),
        };
        self.at += 1;
        Ok(Condition::Compare(left, comparator, self.operand()?))
    }

    /// A condition function's name, when the next tokens are `name (`.
    fn function_name(&mut self) -> Option<String> {
        let name = self.peek()?.to_owned();
        let is_function = matches!(
            name.as_str(),
            "attribute_exists"
                | "attribute_not_exists"
                | "attribute_type"
                | "begins_with"
                | "contains"
        ) && self.tokens.get(self.at + 1).map(String::as_str) == Some("(");
        if is_function {
            self.at += 2;
        }
        is_function.then_some(name)
    }

    fn function(&mut self, function: &str) -> Result<Condition, AwsError> {
        let path = self.path()?;
        let condition = match function {
            "attribute_exists" => Condition::Exists(path),
            "attribute_not_exists" => Condition::NotExists(path),
            _ => {
                self.expect(",")?;
                let operand = self.operand()?;
                match (function, &operand) {
                    ("attribute_type", Operand::Value(AttributeValue::S(t))) => {
                        Condition::Type(path, t.clone())
                    }
                    ("attribute_type", Operand::Value(v)) => {
                        return Err(operand_type(function, v));
                    }
                    ("begins_with", Operand::Value(v))
                        if !matches!(v, AttributeValue::S(_) | AttributeValue::B(_)) =>
                    {
                        return Err(operand_type(function, v));
                    }
                    ("begins_with", _) => Condition::BeginsWith(path, operand),
                    _ => Condition::Contains(path, operand),
                }
            }
        };
        self.expect(")")?;
        Ok(condition)
    }

    fn operand(&mut self) -> Result<Operand, AwsError> {
        match self.peek() {
            Some(t) if t.starts_with(':') => {
                let t = t.to_owned();
                self.at += 1;
                Ok(Operand::Value(self.p.value(&t)?.clone()))
            }
            Some("size") if self.tokens.get(self.at + 1).map(String::as_str) == Some("(") => {
                self.at += 2;
                let path = self.path()?;
                self.expect(")")?;
                Ok(Operand::Size(path))
            }
            _ => Ok(Operand::Path(self.path()?)),
        }
    }

    fn path(&mut self) -> Result<Path, AwsError> {
        let mut steps = vec![Step::Name(self.name()?)];
        loop {
            match self.peek() {
                Some(".") => {
                    self.at += 1;
                    steps.push(Step::Name(self.name()?));
                }
                Some("[") => {
                    self.at += 1;
                    let index = self
                        .peek()
                        .and_then(|t| t.parse::<usize>().ok())
                        .ok_or_else(|| self.syntax(self.peek().unwrap_or("<EOF>")))?;
                    self.at += 1;
                    self.expect("]")?;
                    steps.push(Step::Index(index));
                }
                _ => return Ok(Path(steps)),
            }
        }
    }

    fn name(&mut self) -> Result<String, AwsError> {
        match self.peek() {
            Some(t)
                if t.starts_with('#')
                    || t.chars()
                        .next()
                        .is_some_and(|c| c.is_alphabetic() || c == '_') =>
            {
                let t = t.to_owned();
                self.at += 1;
                self.p.name(&t, self.what)
            }
            Some(t) => Err(self.syntax(t)),
            None => Err(self.syntax("<EOF>")),
        }
    }
}

impl Operand {
    fn resolve(&self, item: &Item) -> Option<AttributeValue> {
        match self {
            Operand::Path(p) => p.resolve(item).cloned(),
            Operand::Value(v) => Some(v.clone()),
            Operand::Size(p) => size(p.resolve(item)?).map(|n| AttributeValue::N(n.to_string())),
        }
    }

    fn names<'a>(&'a self, out: &mut Vec<&'a str>) {
        if let Operand::Path(p) | Operand::Size(p) = self {
            out.extend(p.first());
        }
    }
}

impl Condition {
    fn holds(&self, item: &Item) -> bool {
        match self {
            Condition::Or(terms) => terms.iter().any(|c| c.holds(item)),
            Condition::And(terms) => terms.iter().all(|c| c.holds(item)),
            Condition::Not(a) => !a.holds(item),
            Condition::Compare(a, op, b) => {
                compare(a.resolve(item).as_ref(), *op, b.resolve(item).as_ref())
            }
            Condition::Between(v, low, high) => {
                let v = v.resolve(item);
                compare(v.as_ref(), Comparator::Ge, low.resolve(item).as_ref())
                    && compare(v.as_ref(), Comparator::Le, high.resolve(item).as_ref())
            }
            Condition::In(v, list) => {
                let v = v.resolve(item);
                list.iter()
                    .any(|o| compare(v.as_ref(), Comparator::Eq, o.resolve(item).as_ref()))
            }
            Condition::Exists(p) => p.resolve(item).is_some(),
            Condition::NotExists(p) => p.resolve(item).is_none(),
            Condition::Type(p, t) => p.resolve(item).is_some_and(|v| type_name(v) == t),
            Condition::BeginsWith(p, prefix) => match (p.resolve(item), prefix.resolve(item)) {
                (Some(AttributeValue::S(s)), Some(AttributeValue::S(x))) => s.starts_with(&x),
                (Some(AttributeValue::B(s)), Some(AttributeValue::B(x))) => s.starts_with(&x),
                _ => false,
            },
            Condition::Contains(p, operand) => {
                let (Some(v), Some(x)) = (p.resolve(item), operand.resolve(item)) else {
                    return false;
                };
                match (v, &x) {
                    (AttributeValue::S(s), AttributeValue::S(x)) => s.contains(x.as_str()),
                    (AttributeValue::Ss(s), AttributeValue::S(x)) => s.contains(x),
                    (AttributeValue::Bs(s), AttributeValue::B(x)) => s.contains(x),
                    (AttributeValue::Ns(s), AttributeValue::N(_)) => {
                        s.iter().any(|n| equal(&AttributeValue::N(n.clone()), &x))
                    }
                    (AttributeValue::L(l), x) => l.iter().any(|e| equal(e, x)),
                    _ => false,
                }
            }
        }
    }

    fn names<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Condition::Or(terms) | Condition::And(terms) => {
                for c in terms {
                    c.names(out);
                }
            }
            Condition::Not(a) => a.names(out),
            Condition::Compare(a, _, b) => {
                a.names(out);
                b.names(out);
            }
            Condition::Between(a, b, c) => {
                for o in [a, b, c] {
                    o.names(out);
                }
            }
            Condition::In(a, list) => {
                a.names(out);
                for o in list {
                    o.names(out);
                }
            }
            Condition::Exists(p) | Condition::NotExists(p) | Condition::Type(p, _) => {
                out.extend(p.first());
            }
            Condition::BeginsWith(p, o) | Condition::Contains(p, o) => {
                out.extend(p.first());
                o.names(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn item() -> Item {
        let order = orderflow_core::conformance::sample_order();
        super::super::item_of(&order)
    }

    fn eval(expression: &str, names: &[(&str, &str)], values: &[(&str, AttributeValue)]) -> bool {
        let names: HashMap<String, String> = names
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let values: HashMap<String, AttributeValue> = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let mut p = Placeholders::new(&names, &values);
        let filter = Filter::parse(expression, &mut p).unwrap();
        p.check_all_used().unwrap();
        filter.matches(&item())
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }

    #[test]
    fn numbers_compare_by_value_and_strings_by_bytes() {
        // The sample's total is 60.07, its currency EUR.
        assert!(eval("#t > :v", &[("#t", "total")], &[(":v", n("60.069"))]));
        assert!(eval("#t = :v", &[("#t", "total")], &[(":v", n("60.0700"))]));
        assert!(!eval("#t < :v", &[("#t", "total")], &[(":v", n("1E+1"))]));
        assert!(eval("currency = :c", &[], &[(":c", s("EUR"))]));
        assert!(eval("currency < :c", &[], &[(":c", s("USD"))]));
        // Values of different types never order.
        assert!(!eval("currency < :c", &[], &[(":c", n("1"))]));
        assert!(eval("currency <> :c", &[], &[(":c", n("1"))]));
    }

    #[test]
    fn logic_between_in_and_functions_follow_dynamodbs_rules() {
        let t = &[("#t", "total")];
        assert!(eval(
            "#t BETWEEN :a AND :b AND NOT (currency IN (:x, :y))",
            t,
            &[
                (":a", n("60")),
                (":b", n("61")),
                (":x", s("USD")),
                (":y", s("GBP"))
            ]
        ));
        assert!(eval("attribute_exists(shippingAddress.city)", &[], &[]));
        assert!(eval(
            "attribute_not_exists(giftWrap) OR currency = :c",
            &[],
            &[(":c", s("x"))]
        ));
        assert!(eval(
            "begins_with(customerId, :p)",
            &[],
            &[(":p", s("cust"))]
        ));
        assert!(eval(
            "contains(customerEmail, :p)",
            &[],
            &[(":p", s("@example"))]
        ));
        assert!(eval(
            "#i[1].sku = :s",
            &[("#i", "items")],
            &[(":s", s("B"))]
        ));
        assert!(eval(
            "size(#i) = :two",
            &[("#i", "items")],
            &[(":two", n("2"))]
        ));
        assert!(eval("attribute_type(#t, :n)", t, &[(":n", s("N"))]));
        // A missing attribute differs from everything and equals nothing.
        assert!(eval("giftWrap <> :c", &[], &[(":c", s("x"))]));
        assert!(!eval("giftWrap = :c", &[], &[(":c", s("x"))]));
    }

    #[test]
    fn a_broken_or_mistyped_filter_is_a_validation_error() {
        let names = HashMap::new();
        let values: HashMap<String, AttributeValue> =
            [(":v".to_string(), n("1"))].into_iter().collect();
        for (expression, why) in [
            ("currency = ", "Syntax error"),
            ("currency == :v", "Syntax error"),
            ("begins_with(currency, :v)", "operand type: N"),
            ("total > :v", "reserved keyword: total"),
            ("currency = :nope", "not defined"),
        ] {
            let e = Filter::parse(expression, &mut Placeholders::new(&names, &values)).unwrap_err();
            assert!(e.message.contains(why), "{expression}: {}", e.message);
        }
    }

    /// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html#limits-expression-parameters>:
    /// an expression string is at most 4 KB.
    #[test]
    fn an_expression_past_4_kb_is_refused_before_it_is_parsed() {
        let names = HashMap::new();
        let values: HashMap<String, AttributeValue> =
            [(":v".to_string(), s("EUR"))].into_iter().collect();
        let long = format!("currency = :v{}", " ".repeat(4096));
        let e = Filter::parse(&long, &mut Placeholders::new(&names, &values)).unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "Invalid FilterExpression: Expression size has exceeded the maximum allowed size; expression size: {}",
                long.len()
            )
        );
        let projection = (0..900)
            .map(|i| format!("a{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(projection.len() > 4096);
        let e =
            super::projection(&projection, &mut Placeholders::new(&names, &values)).unwrap_err();
        assert!(
            e.message
                .starts_with("Invalid ProjectionExpression: Expression size has exceeded"),
            "{}",
            e.message
        );
    }

    /// A hostile filter of 4 KB of parentheses or NOTs once overflowed a worker's stack and
    /// aborted the server; it is a ValidationException now, and a long flat chain of ORs
    /// (one level) still parses and evaluates.
    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let names = HashMap::new();
        let values: HashMap<String, AttributeValue> =
            [(":v".to_string(), s("EUR"))].into_iter().collect();
        for hostile in [
            format!("{}currency = :v{}", "(".repeat(2000), ")".repeat(2000)),
            format!("{}currency = :v", "NOT ".repeat(1000)),
        ] {
            assert!(hostile.len() <= 4096);
            let e = Filter::parse(&hostile, &mut Placeholders::new(&names, &values)).unwrap_err();
            assert!(e.message.contains("more than 64 deep"), "{}", e.message);
        }
        let nested = format!("{}currency = :v{}", "(".repeat(64), ")".repeat(64));
        assert!(eval(&nested, &[], &[(":v", s("EUR"))]));
        let not_twice = format!("{}currency = :v", "NOT ".repeat(64));
        assert!(eval(&not_twice, &[], &[(":v", s("EUR"))]));
        let chain = vec!["currency = :v"; 200].join(" OR ");
        assert!(chain.len() <= 4096);
        assert!(eval(&chain, &[], &[(":v", s("EUR"))]));
        let chain = vec!["currency = :v"; 200].join(" AND ");
        assert!(eval(&chain, &[], &[(":v", s("EUR"))]));
    }

    /// "The maximum number of operands for the IN comparator is 100" (Constraints.html above).
    #[test]
    fn in_takes_at_most_100_operands() {
        let list = |n: usize| vec![":v"; n].join(", ");
        assert!(eval(
            &format!("currency IN ({})", list(100)),
            &[],
            &[(":v", s("EUR"))]
        ));
        let names = HashMap::new();
        let values: HashMap<String, AttributeValue> =
            [(":v".to_string(), s("EUR"))].into_iter().collect();
        let e = Filter::parse(
            &format!("currency IN ({})", list(101)),
            &mut Placeholders::new(&names, &values),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "Invalid FilterExpression: The IN operator is provided with too many operands; number of operands: 101"
        );
    }

    fn project_with(expression: &str, names: &[(&str, &str)]) -> Result<Item, AwsError> {
        let names: HashMap<String, String> = names
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let values = HashMap::new();
        let mut p = Placeholders::new(&names, &values);
        let paths = projection(expression, &mut p)?;
        p.check_all_used()?;
        Ok(super::super::paths::project(&item(), &paths))
    }

    #[test]
    fn a_projection_keeps_the_paths_asked_for_nested_as_in_the_item() {
        let got = project_with(
            "orderID, #i[1].sku, #i[0].quantity, shippingAddress.city, giftWrap, #t",
            &[("#i", "items"), ("#t", "total")],
        )
        .unwrap();
        let json = serde_json::to_value(&got).unwrap();
        assert_eq!(json["total"], serde_json::json!({"N": "60.07"}));
        assert_eq!(
            json["items"],
            serde_json::json!({"L": [{"M": {"quantity": {"N": "3"}}}, {"M": {"sku": {"S": "B"}}}]})
        );
        assert_eq!(
            json["shippingAddress"],
            serde_json::json!({"M": {"city": {"S": "Berlin"}}})
        );
        assert_eq!(got.len(), 4, "a path the item lacks is left out: {json}");
    }

    #[test]
    fn overlapping_or_conflicting_projection_paths_are_refused_as_dynamodb_does() {
        let e = project_with("#t, orderID, #t", &[("#t", "total")]).unwrap_err();
        assert!(
            e.message.contains("Two document paths overlap"),
            "{}",
            e.message
        );
        let e = project_with("shippingAddress, shippingAddress.city", &[]).unwrap_err();
        assert!(
            e.message.contains("Two document paths overlap"),
            "{}",
            e.message
        );
        let e = project_with("#i[0], #i.sku", &[("#i", "items")]).unwrap_err();
        assert!(
            e.message.contains("Two document paths conflict"),
            "{}",
            e.message
        );
        let e = project_with("orderID,", &[]).unwrap_err();
        assert!(
            e.message
                .contains("Invalid ProjectionExpression: Syntax error"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_filter_names_the_top_level_attributes_it_reads() {
        let names = HashMap::new();
        let values: HashMap<String, AttributeValue> =
            [(":v".to_string(), s("x"))].into_iter().collect();
        let f = Filter::parse(
            "orderID = :v OR shippingAddress.city = :v",
            &mut Placeholders::new(&names, &values),
        )
        .unwrap();
        assert_eq!(f.names(), ["orderID", "shippingAddress"]);
    }
}
