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

    /// `<name>text</name>`, the text escaped.
    pub fn text(&mut self, name: &str, text: &str) -> &mut Self {
        self.open(name);
        self.event(Event::Text(BytesText::new(text)));
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
    fn an_error_carries_type_code_message_and_request_id() {
        let e = AwsError::auth("SignatureDoesNotMatch", "bad \"sig\"");
        assert_eq!(
            error(&e, "r"),
            "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>bad &quot;sig&quot;</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        );
    }
}
