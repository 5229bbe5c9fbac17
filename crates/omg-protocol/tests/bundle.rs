//! The pipeline bundle: round trip, zero-copy borrowing, and rejection of malformed bundles.

use omg_protocol::bundle::Bundle;
use omg_protocol::licence::OutputPolicy;
use omg_protocol::{Format, ProtocolError};

fn sample<'a>(classifier: &'a [u8], preprocessor: Option<&'a [u8]>) -> Bundle<'a> {
    omg_testkit::micro_speech_bundle(classifier, preprocessor, OutputPolicy::LabelAndScore)
}

#[test]
fn round_trip_borrows_the_models() {
    let classifier: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let pre = [7u8; 300];
    for preprocessor in [None, Some(&pre[..])] {
        let original = sample(&classifier, preprocessor);
        let bytes = original.to_bytes().unwrap();
        let parsed = Bundle::parse(&bytes).unwrap();
        assert_eq!(parsed, original);
        // The classifier is a slice of the input, not a copy.
        let range = bytes.as_ptr_range();
        assert!(range.contains(&parsed.classifier.as_ptr()));
        assert_eq!(parsed.to_bytes().unwrap(), bytes);
    }
}

#[test]
fn no_keywords_and_every_policy_round_trip() {
    let model = [1u8; 10];
    for policy in [
        OutputPolicy::LabelOnly,
        OutputPolicy::LabelAndScore,
        OutputPolicy::AllScores,
    ] {
        let mut b = sample(&model, None);
        b.is_keyword = vec![false; 4];
        b.output_policy = policy;
        let bytes = b.to_bytes().unwrap();
        assert_eq!(Bundle::parse(&bytes).unwrap(), b);
    }
}

#[test]
fn every_truncation_rejected_and_no_flip_panics() {
    let model: Vec<u8> = (0..40u8).collect();
    let bytes = sample(&model, Some(&[9u8; 8])).to_bytes().unwrap();
    for len in 0..bytes.len() {
        assert!(Bundle::parse(&bytes[..len]).is_err(), "truncated to {len}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Bundle::parse(&longer),
        Err(ProtocolError::Malformed { .. })
    ));
    // A bundle is authenticated by the package around it, so a flipped model byte parses;
    // every flip must still give a clean answer, and a parsed bundle must be valid.
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            if let Ok(bundle) = Bundle::parse(&b) {
                assert_eq!(bundle.labels.len(), bundle.is_keyword.len());
                assert!(bundle.classify_every_hops >= 1);
            }
        }
    }
}

fn parse_err(bytes: &[u8]) -> ProtocolError {
    Bundle::parse(bytes).unwrap_err()
}

#[test]
fn malformed_bundles_are_explained() {
    let model = [1u8; 4];
    let good = sample(&model, None).to_bytes().unwrap();
    // Not a map.
    assert!(matches!(
        parse_err(&[0x80]),
        ProtocolError::Malformed { .. }
    ));
    // Empty map: the version is missing.
    assert_eq!(
        parse_err(&[0xa0]),
        ProtocolError::MissingField {
            format: Format::Bundle,
            field: "format version"
        }
    );
    // Unknown key 13.
    assert!(matches!(
        parse_err(&[0xa1, 0x0d, 0x00]),
        ProtocolError::UnknownField { key: 13, .. }
    ));
    // Duplicate and out-of-order keys.
    assert!(matches!(
        parse_err(&[0xa2, 0x01, 0x01, 0x01, 0x01]),
        ProtocolError::DuplicateField { .. }
    ));
    assert!(matches!(
        parse_err(&[0xa2, 0x02, 0x61, 0x61, 0x01, 0x01]),
        ProtocolError::Malformed { .. }
    ));
    // Version 2.
    assert!(matches!(
        parse_err(&[0xa1, 0x01, 0x02]),
        ProtocolError::UnsupportedVersion { version: 2, .. }
    ));
    // Non-canonical: the version as a two-byte integer.
    assert!(matches!(
        parse_err(&[0xa1, 0x01, 0x18, 0x01]),
        ProtocolError::Malformed { .. }
    ));
    // Indefinite-length map.
    assert!(matches!(
        parse_err(&[0xbf, 0x01, 0x01, 0xff]),
        ProtocolError::Malformed { .. }
    ));
    // A keyword index past the labels.
    let mut b = sample(&model, None);
    b.is_keyword = vec![false; 4];
    let bytes = b.to_bytes().unwrap();
    let at = bytes.windows(2).position(|w| w == [0x09, 0x80]).unwrap();
    let mut bad = bytes[..at].to_vec();
    bad.extend_from_slice(&[0x09, 0x81, 0x04]);
    bad.extend_from_slice(&bytes[at + 2..]);
    assert_eq!(
        parse_err(&bad),
        ProtocolError::InvalidField {
            format: Format::Bundle,
            field: "keywords",
            reason: "index out of range"
        }
    );
    assert!(Bundle::parse(&good).is_ok());
}

#[test]
fn invalid_bundles_are_not_encoded() {
    let model = [1u8; 4];
    let mut b = sample(&model, None);
    b.classify_every_hops = 0;
    assert!(b.to_bytes().is_err());
    let mut b = sample(&model, None);
    b.is_keyword.pop();
    assert!(b.to_bytes().is_err());
    let mut b = sample(&model, None);
    b.labels.push("");
    b.is_keyword.push(false);
    assert!(b.to_bytes().is_err());
    let b = sample(&[], None);
    assert!(b.to_bytes().is_err());
}
