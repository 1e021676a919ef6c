//! The order e-mail, written once: what `serve` mails over SMTP and what SNS's `email` protocol delivers.
//!
//! Every string a client supplied is rendered through [`visible`], so a control character,
//! a bare line break or a terminal escape sequence in a customer id, SKU, address or note
//! shows as an escape (`\n`, `\u{1b}`) and can never start a line of its own such as a
//! forged `Total: 0.01 EUR`.

use std::fmt::Write as _;

use crate::order::StoredOrder;

/// SNS takes a `Subject` of "less than 100 characters", with no line breaks or control
/// characters (<https://docs.aws.amazon.com/sns/latest/api/API_Publish.html>, `Subject`);
/// its older wording also asked for ASCII beginning with a letter, number or punctuation
/// mark. We hold to the stricter reading, so one subject fits SMTP and SNS alike.
pub const SUBJECT_MAX_CHARS: usize = 99;

/// The subject and plain-text body of one order's mail. The body has no unsubscribe
/// footer: `serve` appends its own link, SNS appends its own to every `email` delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderMail {
    pub subject: String,
    pub body: String,
}

impl OrderMail {
    pub fn new(order: &StoredOrder) -> OrderMail {
        OrderMail {
            subject: subject(order),
            body: body(order),
        }
    }
}

/// `Order ord-1001 received: 59.97 EUR`: printable ASCII only, at most
/// [`SUBJECT_MAX_CHARS`]; a long id is shortened with `...` so the amount stays readable.
pub fn subject(order: &StoredOrder) -> String {
    const HEAD: &str = "Order ";
    let tail = ascii_line(&format!(
        " received: {:.2} {}",
        order.total.decimal(),
        order.order.currency
    ));
    let id = ascii_line(order.id().as_str());
    let budget = SUBJECT_MAX_CHARS.saturating_sub(HEAD.len() + tail.len());
    let subject = if id.len() <= budget {
        format!("{HEAD}{id}{tail}")
    } else if budget >= 4 {
        format!("{HEAD}{}...{tail}", &id[..budget - 3])
    } else {
        format!("{HEAD}{id}{tail}")
    };
    // Only an absurd amount or currency can still be too long: cut it, visibly.
    if subject.len() > SUBJECT_MAX_CHARS {
        format!("{}...", &subject[..SUBJECT_MAX_CHARS - 3])
    } else {
        subject
    }
}

/// The readable body: id, customer, times, items with line totals, the exact total,
/// shipping address and notes.
pub fn body(order: &StoredOrder) -> String {
    let currency = visible(&order.order.currency);
    let mut body = String::from("A new order was stored.\n\n");
    let _ = writeln!(body, "Order:     {}", visible(order.id().as_str()));
    let _ = writeln!(
        body,
        "Customer:  {}{}",
        visible(&order.order.customer_id),
        order
            .order
            .customer_email
            .as_deref()
            .map(|e| format!(" <{}>", visible(e)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        body,
        "Received:  {}",
        crate::time::format(&order.received_at)
    );
    let _ = writeln!(body, "Stored:    {}", crate::time::format(&order.stored_at));
    body.push_str("\nItems:\n");
    for item in &order.order.items {
        let line = item
            .unit_price
            .checked_mul(item.quantity)
            .map(|m| format!("{:.2}", m.decimal()))
            .unwrap_or_else(|_| "?".into());
        let _ = writeln!(
            body,
            "  {:>5} x {:<24} @ {:>10.2} = {:>12} {currency}",
            item.quantity,
            visible(&item.sku),
            item.unit_price.decimal(),
            line
        );
    }
    let _ = writeln!(body, "\nTotal:     {:.2} {currency}", order.total.decimal());
    if let Some(address) = &order.order.shipping_address {
        let _ = writeln!(
            body,
            "Ship to:   {}, {} {}, {}",
            visible(&address.line1),
            visible(&address.postal_code),
            visible(&address.city),
            visible(&address.country)
        );
    }
    if let Some(notes) = &order.order.notes {
        let _ = writeln!(body, "Notes:     {}", visible(notes));
    }
    body
}

/// `s` on one line with everything that could move the cursor or reorder text made
/// visible: `\n`, `\r`, `\t`, other control characters (C0, DEL, C1 such as NEL) and the
/// Unicode line/paragraph separators, zero-width and bidirectional formatting characters
/// (all of Unicode's `Bidi_Control` set, the Arabic letter mark U+061C included), the soft
/// hyphen and the interlinear annotation marks as `\u{..}`; a backslash doubles, so an escape
/// cannot be mistaken for typed text.
pub fn visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// Printable ASCII on one line: anything else becomes `?`.
fn ascii_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{OrderId, OrderRequest};
    use chrono::{TimeZone, Utc};

    fn stored(body: serde_json::Value) -> StoredOrder {
        let order = OrderRequest::parse(body.to_string().as_bytes())
            .expect("a valid order")
            .into_order(OrderId::generate);
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        StoredOrder::new(order, t, t).expect("a total")
    }

    fn ord_1001() -> StoredOrder {
        stored(serde_json::json!({
            "orderID": "ord-1001", "customerId": "cust-42", "customerEmail": "ada@example.com",
            "items": [{"sku": "BOOK-1", "quantity": 3, "unitPrice": 19.99}],
            "currency": "EUR",
            "shippingAddress": {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"},
            "notes": "ring twice"
        }))
    }

    /// Every way a mail client or terminal may start a new line.
    fn lines(body: &str) -> Vec<&str> {
        body.split([
            '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{2028}', '\u{2029}',
        ])
        .collect()
    }

    #[test]
    fn the_mail_names_the_order_its_customer_items_and_exact_total() {
        let mail = OrderMail::new(&ord_1001());
        assert_eq!(mail.subject, "Order ord-1001 received: 59.97 EUR");
        let expected = "A new order was stored.\n\n\
            Order:     ord-1001\n\
            Customer:  cust-42 <ada@example.com>\n\
            Received:  2026-01-01T00:00:00.000Z\n\
            Stored:    2026-01-01T00:00:00.000Z\n\n\
            Items:\n\
            \x20     3 x BOOK-1                   @      19.99 =        59.97 EUR\n\n\
            Total:     59.97 EUR\n\
            Ship to:   1 Main St, 10115 Berlin, DE\n\
            Notes:     ring twice\n";
        assert_eq!(mail.body, expected, "{}", mail.body);
    }

    #[test]
    fn the_readme_shows_the_mail_of_the_walkthrough_order_as_it_is() {
        let readme = include_str!("../../../README.md");
        let subject = "Subject: Order ord-1001 received: 59.97 EUR\n\n";
        let start = readme.find(subject).expect("the README shows the mail") + subject.len();
        let shown = &readme[start..];
        let shown = &shown[..shown.find("\n\n--\n").expect("then SNS's footer") + 1];
        let mut order = stored(serde_json::json!({
            "orderID": "ord-1001", "customerId": "cust-42",
            "items": [{"sku": "BOOK-1", "quantity": 3, "unitPrice": 19.99}], "currency": "EUR"
        }));
        order.received_at = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        order.stored_at = order.received_at + chrono::Duration::milliseconds(213);
        let mail = OrderMail::new(&order);
        assert_eq!(shown, mail.body);
    }

    #[test]
    fn hostile_strings_cannot_forge_a_line_of_the_mail() {
        let forgeries = [
            "x\nTotal:     0.01 EUR",
            "x\r\nTotal:     0.01 EUR",
            "x\rTotal:     0.01 EUR",
            "x\u{85}Total:     0.01 EUR",
            "x\u{2028}Total:     0.01 EUR",
            "x\u{2029}Total:     0.01 EUR",
            "x\u{b}Total:     0.01 EUR",
            "x\u{c}Total:     0.01 EUR",
            "x\u{1b}[2K\u{1b}[1GTotal:     0.01 EUR",
            "x\u{1b}]8;;http://evil.example\u{7}click\u{1b}]8;;\u{7}",
            "\u{202e}RUE 10.0 :latoT",
            "x\u{0}\u{7f}\u{9b}31m",
        ];
        for forged in forgeries {
            // Built past the parser: the mail must be safe whatever the edge lets through.
            let mut order = ord_1001();
            order.order.customer_id = forged.into();
            order.order.customer_email = Some(forged.into());
            order.order.items[0].sku = forged.into();
            order.order.notes = Some(forged.into());
            let address = order.order.shipping_address.as_mut().unwrap();
            address.line1 = forged.into();
            address.city = forged.into();
            address.country = forged.into();
            let mail = OrderMail::new(&order);
            let totals: Vec<&str> = lines(&mail.body)
                .into_iter()
                .filter(|l| l.trim_start().starts_with("Total:"))
                .collect();
            assert_eq!(
                totals,
                ["Total:     59.97 EUR"],
                "{forged:?}:\n{}",
                mail.body
            );
            assert!(
                mail.body.chars().all(|c| c == '\n' || !is_hidden(c)),
                "only the template's own line breaks are left: {:?}",
                mail.body
            );
            assert_eq!(lines(&mail.body).len(), 14, "{:?}", mail.body);
        }
    }

    #[test]
    fn escapes_are_visible_and_typed_backslashes_stay_distinct() {
        assert_eq!(visible("a\nb"), "a\\nb");
        assert_eq!(visible("a\\nb"), "a\\\\nb");
        assert_eq!(visible("\u{1b}[31m"), "\\u{1b}[31m");
        assert_eq!(visible("\u{202e}x"), "\\u{202e}x");
        // Unicode's Bidi_Control characters (UAX #9, table 4), every one of them.
        for c in [
            '\u{61c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
            '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ] {
            assert_eq!(visible(&c.to_string()), format!("\\u{{{:x}}}", c as u32));
        }
        assert_eq!(visible("a\u{ad}b\u{fff9}c"), "a\\u{ad}b\\u{fff9}c");
        assert_eq!(visible("Zoë O'Brien, 東京"), "Zoë O'Brien, 東京");
    }

    #[test]
    fn the_subject_fits_sns_for_the_longest_id_and_a_huge_total() {
        let mut order = ord_1001();
        order.order.order_id = OrderId::parse(&"A".repeat(OrderId::MAX_LEN)).unwrap();
        order.total = crate::Money::new("999999999999999900".parse().unwrap()).unwrap();
        let s = subject(&order);
        assert!(s.len() <= SUBJECT_MAX_CHARS, "{} chars: {s}", s.len());
        assert!(s.ends_with(" received: 999999999999999900.00 EUR"), "{s}");
        assert!(s.starts_with("Order AAAA") && s.contains("..."), "{s}");

        let mut odd = ord_1001();
        odd.order.currency = "€\n\u{1b}".repeat(60);
        let s = subject(&odd);
        assert!(s.len() <= SUBJECT_MAX_CHARS, "{} chars: {s}", s.len());
        assert!(s.chars().all(|c| c == ' ' || c.is_ascii_graphic()), "{s:?}");
        assert!(s.starts_with("Order "), "begins with a letter: {s}");

        let short = subject(&ord_1001());
        assert_eq!(short, "Order ord-1001 received: 59.97 EUR");
    }
}
