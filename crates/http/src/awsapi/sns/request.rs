//! The Query protocol's request: a form-encoded body of flat parameters, where maps are
//! `Name.entry.N.key`/`.value` and lists `Name.member.N`, numbered from 1 (botocore's
//! query serializer; <https://docs.aws.amazon.com/sns/latest/api/CommonParameters.html>).

use std::collections::BTreeMap;

use super::errors;
use crate::awsapi::AwsError;

/// The request's parameters by name. A repeated name keeps its first value.
#[derive(Debug, Default, Clone)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn parse(body: &[u8]) -> Params {
        let mut map = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Params(map)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required parameter, or SNS's `InvalidParameter` naming it.
    pub fn required(&self, name: &str) -> Result<&str, AwsError> {
        self.get(name).ok_or_else(|| {
            errors::invalid_parameter(format!(
                "Invalid parameter: {name} Reason: no value for required parameter"
            ))
        })
    }

    /// A boolean parameter: `true` or `false`, case-insensitive.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, AwsError> {
        self.get(name).map(|v| parse_bool(name, v)).transpose()
    }

    /// The parameters under `prefix.`, with the prefix taken off.
    fn scoped(&self, prefix: &str) -> Params {
        let dotted = format!("{prefix}.");
        Params(
            self.0
                .range(dotted.clone()..)
                .take_while(|(k, _)| k.starts_with(&dotted))
                .map(|(k, v)| (k[dotted.len()..].to_owned(), v.clone()))
                .collect(),
        )
    }

    /// A map `name.entry.N.<key>` / `name.entry.N.<value...>`: each entry's key and the
    /// parameters of its value (`value` itself, or a structure's members).
    pub fn entries(&self, name: &str, key: &str) -> Vec<(String, Params)> {
        let mut out = Vec::new();
        for n in 1.. {
            let entry = self.scoped(&format!("{name}.entry.{n}"));
            let Some(k) = entry.get(key) else { break };
            out.push((k.to_owned(), entry));
        }
        out
    }

    /// A string map with `key`/`value` members, as SNS's `Attributes`.
    pub fn string_map(&self, name: &str) -> BTreeMap<String, String> {
        self.entries(name, "key")
            .into_iter()
            .map(|(k, entry)| (k, entry.get("value").unwrap_or_default().to_owned()))
            .collect()
    }

    /// A list of structures `name.member.N.*`.
    pub fn members(&self, name: &str) -> Vec<Params> {
        let mut out = Vec::new();
        for n in 1.. {
            let member = self.scoped(&format!("{name}.member.{n}"));
            if member.0.is_empty() {
                break;
            }
            out.push(member);
        }
        out
    }
}

pub fn parse_bool(name: &str, value: &str) -> Result<bool, AwsError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(errors::invalid_parameter(format!(
            "Invalid parameter: {name} Reason: must be true or false"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_lists_are_read_as_botocore_serializes_them() {
        let p = Params::parse(
            b"Action=Subscribe&Attributes.entry.1.key=RawMessageDelivery&Attributes.entry.1.value=true\
              &Attributes.entry.2.key=FilterPolicy&Attributes.entry.2.value=%7B%22a%22%3A%5B%22b%22%5D%7D\
              &E.member.1.Id=x&E.member.1.MessageAttributes.entry.1.Name=n\
              &E.member.1.MessageAttributes.entry.1.Value.DataType=String\
              &E.member.1.MessageAttributes.entry.1.Value.StringValue=v+w&E.member.2.Id=y",
        );
        assert_eq!(p.get("Action"), Some("Subscribe"));
        let attributes = p.string_map("Attributes");
        assert_eq!(attributes["RawMessageDelivery"], "true");
        assert_eq!(attributes["FilterPolicy"], r#"{"a":["b"]}"#);
        let members = p.members("E");
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].get("Id"), Some("x"));
        assert_eq!(members[1].get("Id"), Some("y"));
        let entries = members[0].entries("MessageAttributes", "Name");
        assert_eq!(entries[0].0, "n");
        assert_eq!(entries[0].1.get("Value.StringValue"), Some("v w"));
        assert!(p.required("TopicArn").is_err());
    }
}
