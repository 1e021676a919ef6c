//! The canonical content hash of an order, which tells a resend from a conflicting order.
//!
//! Modelled on Powertools' idempotency payload validation: the hash is taken over a
//! canonical form, so two bodies that differ only in key order, white space or the spelling
//! of a number (`19.9`, `19.90`, `1.99e1`) are the same order. The canonical form is the
//! parsed [`Order`] written back as JSON: fields in the contract's order, amounts as their
//! normalized decimal text.

use std::fmt;

use crate::order::Order;

/// SHA-256 of an order's canonical JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    pub fn of(order: &Order) -> Self {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, order.to_json().as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        ContentHash(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads back what [`ContentHash::as_bytes`] stored; `None` if it is not 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(ContentHash(bytes.try_into().ok()?))
    }

    /// Lowercase hex, as the DynamoDB item stores it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(body: &str) -> ContentHash {
        ContentHash::of(&Order::parse(body.as_bytes()).unwrap())
    }

    const ORDER: &str = r#"{"orderID":"o-1","customerId":"c","items":[{"sku":"A","quantity":2,"unitPrice":19.9}],"currency":"EUR"}"#;

    #[test]
    fn key_order_white_space_and_number_spelling_do_not_change_the_hash() {
        let reordered = r#"{ "currency": "EUR", "items": [{"unitPrice": 1.990e1, "quantity": 2, "sku": "A"}],
            "customerId": "c", "orderID": "o-1"}"#;
        assert_eq!(hash(ORDER), hash(reordered));
        assert_eq!(hash(ORDER), hash(&ORDER.replace("19.9", "19.90")));
    }

    #[test]
    fn any_change_of_content_changes_the_hash() {
        for changed in [
            ORDER.replace("19.9", "19.91"),
            ORDER.replace("\"c\"", "\"d\""),
            ORDER.replace("\"quantity\":2", "\"quantity\":3"),
            ORDER.replace("\"EUR\"", "\"USD\""),
            ORDER.replace("}],", "}],\"notes\":\"x\","),
        ] {
            assert_ne!(hash(ORDER), hash(&changed), "{changed}");
        }
    }

    #[test]
    fn the_hash_reads_back_from_its_bytes() {
        let h = hash(ORDER);
        assert_eq!(ContentHash::from_slice(h.as_bytes()), Some(h));
        assert_eq!(h.to_hex().len(), 64);
        assert_eq!(ContentHash::from_slice(&[1, 2]), None);
    }
}
