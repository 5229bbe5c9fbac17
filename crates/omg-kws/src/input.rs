//! Checks on raw audio input (signed 16-bit little-endian 16 kHz mono): a WAV file given where
//! raw samples are expected would otherwise be heard as raw samples, header included.

/// What to tell a user whose raw input turned out to be a WAV file.
pub const WAV_ON_RAW_INPUT: &str = "the raw input starts with a WAV header (RIFF/WAVE): pass \
     the file with --wav instead, or strip the header (s16le 16 kHz mono)";

/// Whether the first samples of a raw stream, taken back to their little-endian bytes, start
/// like a RIFF/WAVE file: "RIFF", a 4-byte size, "WAVE" (12 bytes, 6 samples; fewer never
/// match).
pub fn starts_like_wav(first: &[i16]) -> bool {
    let Some(head) = first.get(..6) else {
        return false;
    };
    let mut bytes = [0u8; 12];
    for (b, s) in bytes.chunks_exact_mut(2).zip(head) {
        b.copy_from_slice(&s.to_le_bytes());
    }
    &bytes[..4] == b"RIFF" && &bytes[8..] == b"WAVE"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(bytes: &[u8]) -> alloc::vec::Vec<i16> {
        bytes
            .chunks_exact(2)
            .map(|p| i16::from_le_bytes([p[0], p[1]]))
            .collect()
    }

    #[test]
    fn a_wav_header_is_recognised_and_raw_audio_is_not() {
        assert!(starts_like_wav(&samples(b"RIFF\x24\x7d\x00\x00WAVEfmt ")));
        assert!(!starts_like_wav(&samples(b"RIFF\x24\x7d\x00\x00AVI LIST")));
        assert!(!starts_like_wav(&samples(b"RIFF\x24\x7d\x00\x00WA")));
        assert!(!starts_like_wav(&[0; 4000]));
    }
}
