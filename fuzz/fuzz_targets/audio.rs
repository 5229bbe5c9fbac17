//! The CLI's audio input on arbitrary bytes. The first byte picks the path:
//!
//! * even: WAV decoding (`omg_cli::audio::decode_wav`: RIFF parsing, sample formats, downmix,
//!   resampling to 16 kHz) of the rest;
//! * odd: raw s16le stdin framing (`omg_cli::audio::read_s16le`) of the rest, delivered by a
//!   reader whose read sizes the first byte chooses; the samples must be exactly the
//!   little-endian pairs, and a trailing odd byte an error.
#![no_main]
#![forbid(unsafe_code)]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use omg_cli::audio::{decode_wav, read_s16le};

/// Hands out the data in reads of 1, 2, ... `step` bytes, cycling.
struct Dribble<'a> {
    data: &'a [u8],
    step: usize,
    turn: usize,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.turn += 1;
        let n = (1 + self.turn % self.step)
            .min(self.data.len())
            .min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        if let Ok(clip) = decode_wav(rest) {
            // The exact path keeps every sample; conversion only ever makes 16 kHz audio.
            if !clip.converted() {
                assert!(clip.samples.len() * 2 <= rest.len());
            }
        }
        return;
    }
    let step = usize::from(selector >> 1) * 37 + 1;
    let mut got = Vec::new();
    let result = read_s16le(
        Dribble {
            data: rest,
            step,
            turn: 0,
        },
        |block| {
            got.extend_from_slice(block);
            Ok(())
        },
    );
    let want: Vec<i16> = rest
        .chunks_exact(2)
        .map(|p| i16::from_le_bytes([p[0], p[1]]))
        .collect();
    assert_eq!(got, want);
    assert_eq!(result.is_err(), rest.len() % 2 == 1);
});
