//! The event announced for every newly stored order, and its message attributes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::correlation::REQUEST_ID_ATTRIBUTE;
use crate::mail::OrderMail;
use crate::order::StoredOrder;
use crate::ports::{MessageAttribute, Publication};

/// The event's name: the `eventType` attribute subscribers filter on. The publication's
/// `Subject` is the order mail's subject instead, because SNS mails it as the subject line.
pub const TOPIC_SUBJECT: &str = "OrderCreated";

/// `Message` of every notification: `{"type": "OrderCreated", "order": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCreated {
    #[serde(rename = "type")]
    pub kind: OrderCreatedType,
    pub order: StoredOrder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderCreatedType {
    OrderCreated,
}

impl OrderCreated {
    pub fn new(order: StoredOrder) -> Self {
        OrderCreated {
            kind: OrderCreatedType::OrderCreated,
            order,
        }
    }

    /// Attributes subscribers can filter on without parsing the message.
    pub fn attributes(&self) -> BTreeMap<String, MessageAttribute> {
        let mut attributes = BTreeMap::from([
            (
                "eventType".to_owned(),
                MessageAttribute::String(TOPIC_SUBJECT.to_owned()),
            ),
            (
                "currency".to_owned(),
                MessageAttribute::String(self.order.order.currency.clone()),
            ),
            (
                "customerId".to_owned(),
                MessageAttribute::String(self.order.order.customer_id.clone()),
            ),
            (
                "total".to_owned(),
                MessageAttribute::Number(self.order.total.to_string()),
            ),
        ]);
        if let Some(id) = &self.order.request_id {
            attributes.insert(
                REQUEST_ID_ATTRIBUTE.to_owned(),
                MessageAttribute::String(id.to_string()),
            );
        }
        attributes
    }

    /// The event a published message carries, when it is an `OrderCreated` event.
    pub fn from_message(message: &str) -> Option<OrderCreated> {
        serde_json::from_str(message).ok()
    }

    /// The mail announcing this order: what `serve` mails and SNS's `email` protocol delivers.
    pub fn mail(&self) -> OrderMail {
        OrderMail::new(&self.order)
    }

    pub fn to_publication(&self, dedup_id: String) -> Publication {
        Publication {
            dedup_id,
            subject: crate::mail::subject(&self.order),
            message: serde_json::to_string(self).expect("an event always serializes"),
            attributes: self.attributes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::sample_order;

    #[test]
    fn the_published_subject_is_the_mail_subject_and_the_message_gives_back_the_same_mail() {
        let event = OrderCreated::new(sample_order());
        let publication = event.to_publication("dedup".into());
        let mail = event.mail();
        assert_eq!(publication.subject, mail.subject);
        assert_eq!(
            OrderCreated::from_message(&publication.message).map(|e| e.mail()),
            Some(mail)
        );
        assert_eq!(OrderCreated::from_message("plain text"), None);
        assert_eq!(
            publication.attributes["eventType"],
            MessageAttribute::String(TOPIC_SUBJECT.into()),
            "filters keep matching the event type"
        );
    }
}
