//! Document paths (`name`, `a.b`, `a[0]`): resolving them in an item, and the projection
//! of an item on a set of them.
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ProjectionExpressions.html>

use std::collections::{BTreeMap, HashMap};

use serde_dynamo::{AttributeValue, Item};

use super::validation;
use crate::awsapi::AwsError;

const PROJECTION: &str = "ProjectionExpression";

/// A document path: an attribute, then map keys and list indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(pub(super) Vec<Step>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    Name(String),
    Index(usize),
}

impl Path {
    /// The path of a top-level attribute (`AttributesToGet`).
    pub fn attribute(name: &str) -> Path {
        Path(vec![Step::Name(name.to_owned())])
    }

    pub(super) fn resolve<'i>(&self, item: &'i Item) -> Option<&'i AttributeValue> {
        let mut steps = self.0.iter();
        let Some(Step::Name(first)) = steps.next() else {
            return None;
        };
        let mut value = item.get(first)?;
        for step in steps {
            value = match (step, value) {
                (Step::Name(n), AttributeValue::M(m)) => m.get(n)?,
                (Step::Index(i), AttributeValue::L(l)) => l.get(*i)?,
                _ => return None,
            };
        }
        Some(value)
    }

    pub(super) fn first(&self) -> Option<&str> {
        match self.0.first() {
            Some(Step::Name(n)) => Some(n),
            _ => None,
        }
    }
}

/// DynamoDB refuses two projected paths where one contains the other, or where one
/// indexes what the other keys.
pub(super) fn check_apart(a: &Path, b: &Path) -> Result<(), AwsError> {
    let shown = |p: &Path| {
        p.0.iter()
            .map(|s| match s {
                Step::Name(n) => n.clone(),
                Step::Index(i) => format!("[{i}]"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (x, y) in a.0.iter().zip(&b.0) {
        match (x, y) {
            (x, y) if x == y => continue,
            (Step::Name(_), Step::Name(_)) | (Step::Index(_), Step::Index(_)) => return Ok(()),
            _ => {
                return Err(validation(format!(
                    "Invalid {PROJECTION}: Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [{}], path two: [{}]",
                    shown(b),
                    shown(a)
                )));
            }
        }
    }
    Err(validation(format!(
        "Invalid {PROJECTION}: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [{}], path two: [{}]",
        shown(b),
        shown(a)
    )))
}

/// What a projection keeps of `item`: each path that resolves, nested as in the item (list
/// elements keep their order, without the ones not asked for).
pub fn project(item: &Item, paths: &[Path]) -> Item {
    #[derive(Default)]
    struct Node {
        value: Option<AttributeValue>,
        keys: BTreeMap<String, Node>,
        indexes: BTreeMap<usize, Node>,
    }
    fn insert(node: &mut Node, steps: &[Step], value: AttributeValue) {
        match steps.split_first() {
            None => node.value = Some(value),
            Some((Step::Name(n), rest)) => {
                insert(node.keys.entry(n.clone()).or_default(), rest, value)
            }
            Some((Step::Index(i), rest)) => {
                insert(node.indexes.entry(*i).or_default(), rest, value);
            }
        }
    }
    fn build(node: Node) -> AttributeValue {
        if let Some(v) = node.value {
            return v;
        }
        if !node.indexes.is_empty() {
            return AttributeValue::L(node.indexes.into_values().map(build).collect());
        }
        AttributeValue::M(node.keys.into_iter().map(|(k, n)| (k, build(n))).collect())
    }
    let mut root = Node::default();
    for path in paths {
        if let Some(value) = path.resolve(item) {
            insert(&mut root, &path.0, value.clone());
        }
    }
    Item::from(
        root.keys
            .into_iter()
            .map(|(k, n)| (k, build(n)))
            .collect::<HashMap<_, _>>(),
    )
}
