//! The CRC32 of each DynamoDB answer's body, which DynamoDB sends in `x-amz-crc32` and the
//! SDKs check when it is there (botocore retries an answer whose body does not match it:
//! `retryhandler.CRC32Checker`; the Go SDK's DynamoDB customizations document the header:
//! <https://pkg.go.dev/github.com/aws/aws-sdk-go-v2/service/dynamodb/internal/customizations>).

/// The header DynamoDB names the checksum in; its value is the CRC32 in decimal.
pub const HEADER: &str = "x-amz-crc32";

/// CRC-32 (IEEE 802.3, the reflected polynomial 0xEDB88320), as zlib's `crc32` and
/// Python's `binascii.crc32` compute it.
pub fn of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc = TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const TABLE: [u32; 256] = table();

const fn table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32's check value (the CRC of "123456789") and zlib's answers for two more.
    #[test]
    fn the_checksum_is_zlibs_crc32() {
        assert_eq!(of(b"123456789"), 0xCBF4_3926);
        assert_eq!(of(b""), 0);
        assert_eq!(of(b"{}"), 2_745_614_147);
        assert_eq!(
            of(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }
}
