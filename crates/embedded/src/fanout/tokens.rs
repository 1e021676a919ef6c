//! The secrets in a subscriber's links: the confirmation token (`SubscribeURL`), which
//! expires, and the unsubscribe token (`UnsubscribeURL`), which only that subscription's
//! link carries.

/// SNS: "Confirmation tokens are valid for three days"
/// (https://docs.aws.amazon.com/sns/latest/api/API_Subscribe.html).
pub const CONFIRMATION_TOKEN_LIFETIME_MS: i64 = 3 * 24 * 60 * 60 * 1000;

/// A fresh random token: two v4 UUIDs, 244 random bits from the OS, as 64 hex digits.
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether a confirmation token issued at `issued_at_ms` is still good at `now_ms`.
pub fn confirmation_token_valid(issued_at_ms: i64, now_ms: i64) -> bool {
    now_ms.saturating_sub(issued_at_ms) < CONFIRMATION_TOKEN_LIFETIME_MS
}

/// The unsubscribe token of the subscription whose (secret, random) confirmation token is
/// `confirmation_token`: a one-way digest, so every notification's link can carry it while
/// the confirmation token stays with the first message, and nothing needs storing.
pub fn unsubscribe_token(confirmation_token: &str) -> String {
    let mut input = b"orderflow unsubscribe token v1\0".to_vec();
    input.extend_from_slice(confirmation_token.as_bytes());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares a presented unsubscribe token with the subscription's in constant time.
pub fn unsubscribe_token_matches(confirmation_token: &str, presented: &str) -> bool {
    let expected = unsubscribe_token(confirmation_token);
    aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), presented.as_bytes())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmation_token_is_good_for_three_days_and_no_longer() {
        let issued = 1_700_000_000_000;
        assert!(confirmation_token_valid(issued, issued));
        assert!(confirmation_token_valid(
            issued,
            issued + CONFIRMATION_TOKEN_LIFETIME_MS - 1
        ));
        assert!(!confirmation_token_valid(
            issued,
            issued + CONFIRMATION_TOKEN_LIFETIME_MS
        ));
    }

    #[test]
    fn the_unsubscribe_token_is_fixed_per_subscription_and_reveals_nothing_of_the_other() {
        let confirmation = new_token();
        let token = unsubscribe_token(&confirmation);
        assert_eq!(token, unsubscribe_token(&confirmation));
        assert_eq!(token.len(), 64);
        assert_ne!(token, confirmation);
        assert!(!token.contains(&confirmation[..16]));
        assert_ne!(token, unsubscribe_token(&new_token()));
        assert!(unsubscribe_token_matches(&confirmation, &token));
        assert!(!unsubscribe_token_matches(&confirmation, &token[..63]));
        assert!(!unsubscribe_token_matches(&confirmation, ""));
    }
}
