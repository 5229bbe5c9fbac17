//! Audio input: WAV files of any common format converted to 16 kHz mono 16-bit, and raw s16le
//! streams.
//!
//! A 16 kHz mono 16-bit WAV is passed through untouched (bit-exact features need the exact
//! samples). Anything else is decoded to float, downmixed by averaging the channels, resampled
//! with rubato's FFT resampler (band-limited, fixed ratio) and rounded back to 16 bits.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rubato::audioadapter::Adapter;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// The sample rate every pipeline runs at.
pub const RATE: u32 = 16_000;
/// Longest clip accepted, in seconds (at the source rate).
const MAX_SECONDS: u64 = 3600;
/// Most channels accepted.
const MAX_CHANNELS: u16 = 32;

/// A clip ready for the front end, and where it came from.
pub struct Clip {
    /// 16 kHz mono samples.
    pub samples: Vec<i16>,
    /// Sample rate of the file.
    pub source_rate: u32,
    /// Channels of the file.
    pub source_channels: u16,
}

impl Clip {
    /// True when the file had to be downmixed or resampled.
    pub fn converted(&self) -> bool {
        self.source_rate != RATE || self.source_channels != 1
    }
}

/// Reads a WAV file and converts it to 16 kHz mono 16-bit.
pub fn read_wav(path: &Path) -> Result<Clip> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    decode_wav(std::io::BufReader::new(file)).with_context(|| format!("{}", path.display()))
}

/// Decodes WAV bytes from any reader.
pub fn decode_wav<R: Read>(reader: R) -> Result<Clip> {
    let mut r = hound::WavReader::new(reader)
        .map_err(|e| anyhow::anyhow!("not a readable WAV file: {e}"))?;
    let spec = r.spec();
    let channels = spec.channels;
    if channels == 0 || channels > MAX_CHANNELS {
        bail!("{channels} channels is not supported (1 to {MAX_CHANNELS})");
    }
    if !(4_000..=384_000).contains(&spec.sample_rate) {
        bail!(
            "a sample rate of {} Hz is not supported (4 kHz to 384 kHz)",
            spec.sample_rate
        );
    }
    if u64::from(r.duration()) > MAX_SECONDS * u64::from(spec.sample_rate) {
        bail!("longer than {MAX_SECONDS} s");
    }
    let frames_declared = r.duration() as usize;
    let exact = spec.sample_rate == RATE
        && channels == 1
        && spec.sample_format == hound::SampleFormat::Int
        && spec.bits_per_sample == 16;
    if exact {
        let samples = r
            .samples::<i16>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("corrupt or truncated sample data: {e}"))?;
        return Ok(Clip {
            samples,
            source_rate: RATE,
            source_channels: 1,
        });
    }
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => r.samples::<f32>().collect::<Result<_, _>>(),
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
        }
        (format, bits) => bail!("{bits}-bit {format:?} samples are not supported"),
    }
    .map_err(|e| anyhow::anyhow!("corrupt or truncated sample data: {e}"))?;
    // NaN or infinity would poison the resampler's FFT (rubato panics on it), and so could
    // huge finite values: refuse the former, clip the latter to full scale (±1.0), where the
    // 16-bit output clips anyway.
    if interleaved.iter().any(|x| !x.is_finite()) {
        bail!("the file holds NaN or infinite float samples");
    }
    let frames = interleaved.len() / usize::from(channels);
    if frames > frames_declared {
        bail!("sample data is longer than the header declares");
    }
    let mono: Vec<f32> = interleaved
        .chunks_exact(usize::from(channels))
        .map(|c| c.iter().map(|x| x.clamp(-1.0, 1.0)).sum::<f32>() / f32::from(channels))
        .collect();
    let resampled = if spec.sample_rate == RATE {
        mono
    } else {
        resample(&mono, spec.sample_rate)?
    };
    let samples = resampled
        .iter()
        .map(|&x| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    Ok(Clip {
        samples,
        source_rate: spec.sample_rate,
        source_channels: channels,
    })
}

/// Resamples mono audio from `rate` to [`RATE`].
fn resample(mono: &[f32], rate: u32) -> Result<Vec<f32>> {
    if mono.is_empty() {
        return Ok(Vec::new());
    }
    let mut resampler = Fft::<f32>::new(rate as usize, RATE as usize, 1024, 1, FixedSync::Both)
        .map_err(|e| anyhow::anyhow!("cannot resample from {rate} Hz: {e}"))?;
    let input = InterleavedSlice::new(mono, 1, mono.len())
        .map_err(|e| anyhow::anyhow!("resampler input: {e}"))?;
    let out = resampler
        .process_all(&input, mono.len(), None)
        .map_err(|e| anyhow::anyhow!("resampling failed: {e}"))?;
    Ok((0..out.frames())
        .map(|f| out.read_sample(0, f).unwrap_or(0.0))
        .collect())
}

/// Reads raw signed 16-bit little-endian mono samples from `reader` in blocks, calling `sink`
/// for each block until end of input. A trailing odd byte is reported as an error.
pub fn read_s16le<R: Read>(
    mut reader: R,
    mut sink: impl FnMut(&[i16]) -> Result<()>,
) -> Result<()> {
    let mut bytes = vec![0u8; 4096];
    let mut carry: Option<u8> = None;
    let mut samples = Vec::with_capacity(bytes.len() / 2 + 1);
    loop {
        let n = match reader.read(&mut bytes) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("cannot read audio input"),
        };
        samples.clear();
        let mut data = &bytes[..n];
        if let Some(lo) = carry.take() {
            samples.push(i16::from_le_bytes([lo, data[0]]));
            data = &data[1..];
        }
        let pairs = data.chunks_exact(2);
        carry = pairs.remainder().first().copied();
        samples.extend(pairs.map(|p| i16::from_le_bytes([p[0], p[1]])));
        sink(&samples)?;
    }
    if carry.is_some() {
        bail!("the input ended in the middle of a 16-bit sample");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(
        spec: hound::WavSpec,
        write: impl FnOnce(&mut hound::WavWriter<&mut std::io::Cursor<Vec<u8>>>),
    ) -> Vec<u8> {
        let mut cur = std::io::Cursor::new(Vec::new());
        {
            let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
            write(&mut w);
            w.finalize().unwrap();
        }
        cur.into_inner()
    }

    fn spec(channels: u16, rate: u32, bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    #[test]
    fn sixteen_khz_mono_is_passed_through_exactly() {
        let data = wav(spec(1, 16000, 16, hound::SampleFormat::Int), |w| {
            for s in [-32768i16, -1, 0, 1, 32767] {
                w.write_sample(s).unwrap();
            }
        });
        let clip = decode_wav(&data[..]).unwrap();
        assert_eq!(clip.samples, [-32768, -1, 0, 1, 32767]);
        assert!(!clip.converted());
    }

    #[test]
    fn stereo_48k_is_downmixed_and_resampled() {
        // One second of a 440 Hz tone, left only: mono is half amplitude, 16000 samples long.
        let data = wav(spec(2, 48000, 16, hound::SampleFormat::Int), |w| {
            for i in 0..48000 {
                let v =
                    (f32::sin(i as f32 * 440.0 * std::f32::consts::TAU / 48000.0) * 16000.0) as i16;
                w.write_sample(v).unwrap();
                w.write_sample(0i16).unwrap();
            }
        });
        let clip = decode_wav(&data[..]).unwrap();
        assert!(clip.converted());
        assert!(
            (15990..=16010).contains(&clip.samples.len()),
            "{}",
            clip.samples.len()
        );
        let peak = clip.samples[2000..14000]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap();
        assert!((7600..=8400).contains(&peak), "peak {peak}");
    }

    #[test]
    fn float_and_24_bit_inputs_are_accepted() {
        let f = wav(spec(1, 16000, 32, hound::SampleFormat::Float), |w| {
            w.write_sample(0.5f32).unwrap();
            w.write_sample(-1.0f32).unwrap();
        });
        assert_eq!(decode_wav(&f[..]).unwrap().samples, [16384, -32768]);
        let i24 = wav(spec(1, 16000, 24, hound::SampleFormat::Int), |w| {
            w.write_sample(1 << 22).unwrap()
        });
        assert_eq!(decode_wav(&i24[..]).unwrap().samples, [16384]);
    }

    #[test]
    fn non_finite_and_huge_float_samples_do_not_reach_the_resampler() {
        // Found by the `audio` fuzz target: a NaN in a 44.1 kHz float file made rubato panic.
        let with = |x: f32| {
            wav(spec(1, 44100, 32, hound::SampleFormat::Float), |w| {
                for i in 0..4000 {
                    w.write_sample(if i == 1234 { x } else { 0.25 }).unwrap();
                }
            })
        };
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let e = decode_wav(&with(bad)[..]).err().expect("refused");
            assert!(format!("{e:#}").contains("NaN or infinite"), "{e:#}");
        }
        let clip = decode_wav(&with(f32::MAX)[..]).unwrap();
        assert!(clip.samples.len() > 1400);
    }

    #[test]
    fn corrupt_and_truncated_files_are_errors_not_panics() {
        let good = wav(spec(2, 44100, 16, hound::SampleFormat::Int), |w| {
            for i in 0..2000 {
                w.write_sample((i * 7) as i16).unwrap();
            }
        });
        for n in 0..good.len() {
            let _ = decode_wav(&good[..n]);
        }
        for i in 0..good.len().min(64) {
            let mut b = good.clone();
            b[i] ^= 0xFF;
            let _ = decode_wav(&b[..]);
        }
        let e = decode_wav(&good[..good.len() - 3])
            .err()
            .expect("truncated data is refused");
        assert!(format!("{e:#}").contains("truncated"), "{e:#}");
        assert!(decode_wav(&b"RIFF...."[..]).is_err());
    }

    #[test]
    fn raw_stream_blocks_reassemble_split_samples() {
        struct Dribble(Vec<u8>, usize);
        impl Read for Dribble {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = 3.min(self.0.len() - self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let want: Vec<i16> = (0..100).map(|i| i * 300 - 15000).collect();
        let bytes = want.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut got = Vec::new();
        read_s16le(Dribble(bytes, 0), |s| {
            got.extend_from_slice(s);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, want);
        assert!(read_s16le(&[1u8, 2, 3][..], |_| Ok(())).is_err());
    }
}
