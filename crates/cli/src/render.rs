//! Puts what users and servers wrote (order fields, subscription endpoints, error texts) on
//! a terminal safely: every control character is shown escaped, so no escape sequence,
//! carriage return or forged line reaches the operator's terminal, and every bidirectional
//! formatting character is shown escaped, so no text is shown in an order it was not
//! written in (the "Trojan Source" trick, CVE-2021-42574).

use std::borrow::Cow;

use serde_json::Value;

fn escape_char(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
    }
}

/// The bidirectional formatting characters of Unicode (UAX #9, "Explicit Directional
/// Formatting Characters" and the implicit marks): each reorders how the text around it
/// is shown, so a field could show `59.97` where `79.95` is stored, or push text into the
/// next column.
fn is_bidi_format(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// What is never put on the terminal as it is.
fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_format(c)
}

/// `s` for one table cell or line: control characters (C0, DEL and C1, newline included)
/// and bidirectional formatting characters escaped as `\n`, `\u{1b}`, `\u{202e}` and so on.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            escape_char(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A JSON string field of `v`, rendered with [`text`]; `default` when absent.
pub fn field<'a>(v: &'a Value, key: &str, default: &'a str) -> Cow<'a, str> {
    text(v[key].as_str().unwrap_or(default))
}

/// JSON for the terminal: serde_json escapes C0 characters itself, but writes DEL, the
/// C1 range (where 0x9b is an 8-bit CSI) and the bidirectional formatting characters as
/// they are; they are escaped here as `\uXXXX`, which is the same JSON.
fn escape_json(json: String) -> String {
    if !json.chars().any(is_unsafe) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if is_unsafe(c) && c != '\n' {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// One JSON value on one line.
pub fn json_line(v: &Value) -> String {
    escape_json(v.to_string())
}

/// One JSON value, indented.
pub fn json_pretty(v: &Value) -> String {
    escape_json(serde_json::to_string_pretty(v).expect("a JSON value serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn control_characters_are_shown_escaped_and_printable_text_is_left_alone() {
        assert_eq!(text("Zoë 山田"), "Zoë 山田");
        assert!(matches!(text("plain"), Cow::Borrowed(_)));
        assert_eq!(text("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        assert_eq!(text("x\r\nTotal: 0.01"), "x\\r\\nTotal: 0.01");
        assert_eq!(text("\u{9b}2J\u{7f}"), "\\u{9b}2J\\u{7f}");
    }

    #[test]
    fn json_output_carries_no_raw_control_character_and_still_parses_to_the_same_value() {
        let v = json!({"customerId": "a\u{1b}[2J\u{9b}31m\u{7f}\n", "n": 1});
        for rendered in [json_line(&v), json_pretty(&v)] {
            assert!(
                !rendered.chars().any(|c| c.is_control() && c != '\n'),
                "{rendered:?}"
            );
            let back: Value = serde_json::from_str(&rendered).unwrap();
            assert_eq!(back, v);
        }
        assert!(!json_line(&v).contains('\n'));
    }

    #[test]
    fn bidirectional_overrides_are_shown_escaped_in_text_and_in_json() {
        // "Trojan Source" (CVE-2021-42574): U+202E shows what follows right to left.
        let sneaky = "total 97.95\u{202e}\u{2066}x\u{2069}\u{200f}\u{61c}";
        assert_eq!(
            text(sneaky),
            "total 97.95\\u{202e}\\u{2066}x\\u{2069}\\u{200f}\\u{61c}"
        );
        // Arabic and Hebrew letters are text, not formatting: they stay.
        assert_eq!(text("שלום مرحبا"), "שלום مرحبا");
        let v = json!({ "customerId": sneaky });
        for rendered in [json_line(&v), json_pretty(&v)] {
            assert!(!rendered.chars().any(is_bidi_format), "{rendered:?}");
            assert!(rendered.contains("\\u202e"), "{rendered:?}");
            assert_eq!(serde_json::from_str::<Value>(&rendered).unwrap(), v);
        }
    }
}
