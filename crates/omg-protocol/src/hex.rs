//! Lowercase hexadecimal, in constant time: the digits are computed arithmetically
//! (`base16ct`), never looked up in a table indexed by the bytes, so encoding a secret (a
//! content key in the vendor's database) leaks nothing through the cache.

use alloc::string::String;
use alloc::vec::Vec;

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(bytes)
}

/// Decodes hex digits of either case; `None` on an odd length or a character that is not a
/// hex digit.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    base16ct::mixed::decode_vec(s).ok()
}

/// Decodes exactly `N` bytes of hex; `None` on any other length.
pub fn decode_n<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    if s.len() != 2 * N {
        return None;
    }
    base16ct::mixed::decode(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn round_trip() {
        assert_eq!(super::encode(&[0, 0xab, 0xff]), "00abff");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(super::decode(&super::encode(&all)), Some(all));
        assert_eq!(super::decode("00ABff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(super::decode(""), Some(vec![]));
        assert_eq!(super::decode("0"), None);
        assert_eq!(super::decode("zz"), None);
        assert_eq!(super::decode("0g"), None);
        assert_eq!(super::decode(" 00"), None);
        assert_eq!(super::decode_n::<2>("0001"), Some([0, 1]));
        assert_eq!(super::decode_n::<2>("00"), None);
        assert_eq!(super::decode_n::<2>("000102"), None);
    }
}
