//! Standard base64 with padding (RFC 4648 section 4): the form of byte strings in the vendor
//! service's JSON bodies.

use alloc::string::String;
use alloc::vec::Vec;

use ::base64::Engine as _;
use ::base64::engine::general_purpose::STANDARD;

/// Standard base64 of `bytes`, padded.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard, padded base64; `None` on any other character, a missing or misplaced
/// padding, or trailing bits that are not zero.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn round_trip() {
        assert_eq!(super::encode([0xfb, 0xff]), "+/8=");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(super::decode(&super::encode(&all)), Some(all));
        assert_eq!(super::decode(""), Some(vec![]));
        assert_eq!(super::decode("+/8="), Some(vec![0xfb, 0xff]));
        // Padding required, URL-safe alphabet and whitespace refused.
        assert_eq!(super::decode("+/8"), None);
        assert_eq!(super::decode("-_8="), None);
        assert_eq!(super::decode("AA A"), None);
        assert_eq!(super::decode("not base64!"), None);
    }
}
