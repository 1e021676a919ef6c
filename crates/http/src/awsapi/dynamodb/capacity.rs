//! `ReturnConsumedCapacity`: the capacity units a request consumed, reported as DynamoDB
//! reports them for an on-demand table. A read unit covers 4 KB of items read (half a unit
//! when eventually consistent), a write unit 1 KB written; item sizes are approximated by
//! their wire size.
//! <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ConsumedCapacity.html>
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html>

use serde_json::{Map, Value, json};

use super::validation;
use crate::awsapi::{AwsError, TABLE_NAME};

/// What `ReturnConsumedCapacity` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    None,
    Total,
    /// `TOTAL` plus the table's own share (the table has no indexes to list).
    Indexes,
}

impl Report {
    pub fn parse(value: Option<&str>) -> Result<Report, AwsError> {
        match value {
            None | Some("NONE") => Ok(Report::None),
            Some("TOTAL") => Ok(Report::Total),
            Some("INDEXES") => Ok(Report::Indexes),
            Some(other) => Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'returnConsumedCapacity' failed to satisfy constraint: Member must satisfy enum value set: [INDEXES, TOTAL, NONE]"
            ))),
        }
    }

    /// The `ConsumedCapacity` of `units` read (`read`) or written, or `None` when not asked.
    pub fn of(self, units: f64, read: bool) -> Option<Value> {
        if self == Report::None {
            return None;
        }
        let kind = if read {
            "ReadCapacityUnits"
        } else {
            "WriteCapacityUnits"
        };
        let mut out = Map::new();
        out.insert("TableName".into(), json!(TABLE_NAME));
        out.insert("CapacityUnits".into(), json!(units));
        out.insert(kind.into(), json!(units));
        if self == Report::Indexes {
            out.insert("Table".into(), json!({"CapacityUnits": units, kind: units}));
        }
        Some(Value::Object(out))
    }
}

/// Read units for `bytes` read in one request (at least one 4 KB block, as DynamoDB charges
/// a read that finds nothing).
pub fn read_units(bytes: usize, consistent: bool) -> f64 {
    let blocks = bytes.div_ceil(4096).max(1);
    let units = f64::from(u32::try_from(blocks).unwrap_or(u32::MAX));
    if consistent { units } else { units / 2.0 }
}

/// Write units for an item of `bytes`.
pub fn write_units(bytes: usize) -> f64 {
    f64::from(u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_dynamodbs_4_kb_reads_and_1_kb_writes() {
        assert_eq!(read_units(0, false), 0.5);
        assert_eq!(read_units(4096, true), 1.0);
        assert_eq!(read_units(4097, false), 1.0);
        assert_eq!(write_units(1), 1.0);
        assert_eq!(write_units(2049), 3.0);
    }

    #[test]
    fn the_report_has_the_shape_sdks_read() {
        assert_eq!(Report::parse(None).unwrap().of(1.0, true), None);
        assert_eq!(
            Report::parse(Some("TOTAL")).unwrap().of(0.5, true),
            Some(json!({"TableName": "orders", "CapacityUnits": 0.5, "ReadCapacityUnits": 0.5}))
        );
        let indexes = Report::parse(Some("INDEXES"))
            .unwrap()
            .of(2.0, false)
            .unwrap();
        assert_eq!(
            indexes["Table"],
            json!({"CapacityUnits": 2.0, "WriteCapacityUnits": 2.0})
        );
        assert!(Report::parse(Some("ALL")).is_err());
    }
}
