//! SNS's XML responses: `<{Action}Response>` with its `<{Action}Result>` and
//! `<ResponseMetadata>`, and `<ErrorResponse>`, in SNS's namespace, written and escaped by
//! quick-xml. <https://docs.aws.amazon.com/sns/latest/api/CommonErrors.html>

use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};

use crate::awsapi::AwsError;

/// The namespace of every SNS response (botocore's model: `xmlNamespace`).
pub const NAMESPACE: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

/// An XML document being written; writing to memory cannot fail.
pub struct Xml {
    writer: Writer<Vec<u8>>,
}

impl Xml {
    fn new() -> Self {
        Xml {
            writer: Writer::new(Vec::new()),
        }
    }

    fn event(&mut self, event: Event<'_>) {
        self.writer
            .write_event(event)
            .expect("writing XML to memory does not fail");
    }

    /// `<name>` (or `<name xmlns="...">` with a namespace).
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.event(Event::Start(BytesStart::new(name)));
        self
    }

    fn open_in_namespace(&mut self, name: &str) {
        self.event(Event::Start(
            BytesStart::new(name).with_attributes([("xmlns", NAMESPACE)]),
        ));
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.event(Event::End(BytesEnd::new(name)));
        self
    }

    /// `<name>text</name>`, the text escaped, and each character XML 1.0 cannot carry at
    /// all (not even as `&#1;`) replaced by U+FFFD, so a strict parser reads every answer.
    pub fn text(&mut self, name: &str, text: &str) -> &mut Self {
        self.open(name);
        let text = xml_chars(text);
        self.event(Event::Text(BytesText::new(&text)));
        self.close(name)
    }

    /// An SNS string map: `<name><entry><key>k</key><value>v</value></entry>...</name>`.
    pub fn map<'a>(
        &mut self,
        name: &str,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> &mut Self {
        self.open(name);
        for (key, value) in entries {
            self.open("entry")
                .text("key", key)
                .text("value", value)
                .close("entry");
        }
        self.close(name)
    }

    fn into_string(self) -> String {
        String::from_utf8(self.writer.into_inner()).expect("the XML writer writes UTF-8")
    }
}

/// `text` with the characters outside XML 1.0's `Char` production replaced by U+FFFD:
/// <https://www.w3.org/TR/xml/#charsets> (`#x9 | #xA | #xD | [#x20-#xD7FF] |
/// [#xE000-#xFFFD] | [#x10000-#x10FFFF]`). An error message can echo what a client sent
/// (`Action=Foo%01`), and a control character there made the whole response unreadable.
fn xml_chars(text: &str) -> std::borrow::Cow<'_, str> {
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    if text.chars().all(allowed) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
            .collect(),
    )
}

/// The answer to `action`: its result element (unless the action has no output, as
/// `Unsubscribe`), then the request id.
pub fn success(action: &str, request_id: &str, result: Option<&dyn Fn(&mut Xml)>) -> String {
    let mut xml = Xml::new();
    let response = format!("{action}Response");
    xml.open_in_namespace(&response);
    if let Some(write) = result {
        let name = format!("{action}Result");
        xml.open(&name);
        write(&mut xml);
        xml.close(&name);
    }
    xml.open("ResponseMetadata")
        .text("RequestId", request_id)
        .close("ResponseMetadata")
        .close(&response);
    xml.into_string()
}

/// `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`.
pub fn error(e: &AwsError, request_id: &str) -> String {
    let mut xml = Xml::new();
    xml.open_in_namespace("ErrorResponse");
    xml.open("Error")
        .text("Type", if e.sender_fault { "Sender" } else { "Receiver" })
        .text("Code", &e.query_code)
        .text("Message", &e.message)
        .close("Error")
        .text("RequestId", request_id)
        .close("ErrorResponse");
    xml.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_wrapped_in_the_action_s_response_with_the_request_id_and_escaped() {
        let body = success(
            "Publish",
            "req-1",
            Some(&|x: &mut Xml| {
                x.text("MessageId", "<a&b>");
            }),
        );
        assert_eq!(
            body,
            "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishResult><MessageId>&lt;a&amp;b&gt;</MessageId></PublishResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></PublishResponse>"
        );
        assert!(!success("Unsubscribe", "r", None).contains("UnsubscribeResult"));
    }

    #[test]
    fn characters_xml_cannot_carry_are_replaced_so_a_strict_parser_reads_the_answer() {
        let e = super::super::errors::invalid_parameter("action Foo\u{1}\u{FFFE} is\tnot valid");
        let body = error(&e, "r");
        assert!(
            body.contains("<Message>action Foo\u{FFFD}\u{FFFD} is\tnot valid</Message>"),
            "{body}"
        );
        assert_eq!(
            xml_chars(&body),
            body,
            "every character is one XML 1.0 allows"
        );
    }

    #[test]
    fn an_error_carries_type_code_message_and_request_id() {
        let e = AwsError::auth("SignatureDoesNotMatch", "bad \"sig\"");
        assert_eq!(
            error(&e, "r"),
            "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>bad &quot;sig&quot;</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        );
    }
}
