//! Whether a run met one of issue 17's targets: one verdict type for every target the bench judges.

use serde::Serialize;

/// Serialized as `met`, `notMet` or `notMeasured` (the run could not judge the target: too
/// short, another rate, a server whose settings it cannot know).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    Met,
    NotMet,
    NotMeasured,
}

impl Verdict {
    /// How the Markdown report words it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::NotMet => "not met",
            Verdict::NotMeasured => "not measured",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_reads_in_bench_json_as_it_always_has() {
        let json = |v| serde_json::to_value(v).unwrap();
        assert_eq!(json(Verdict::Met), "met");
        assert_eq!(json(Verdict::NotMet), "notMet");
        assert_eq!(json(Verdict::NotMeasured), "notMeasured");
    }
}
