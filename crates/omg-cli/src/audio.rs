//! Audio input: WAV files of any common format converted to 16 kHz mono 16-bit, and raw s16le
//! streams.
//!
//! A WAV is decoded as a stream ([`WavStream`]): its header is checked first — channels, rate
//! and sample format, before anything is allocated — then its samples are read, converted and
//! handed on in blocks of at most [`BLOCK`] samples, so memory stays bounded (a few hundred
//! KiB) whatever the file's length: a streamed WAV has no duration limit (`omg run`, `omg
//! listen` play a file of any length, like `--stdin`). A clip decoded whole into memory
//! ([`WavStream::into_clip`]: `classify`, `features`) and a file given to the platform service
//! ([`WavStream::bounded`]: it bounds the time one app's file takes from a shared service) are
//! bounded to an hour and [`MAX_DATA_BYTES`] of sample data, checked from the header before
//! any sample is read. A 16 kHz mono 16-bit
//! WAV is passed through untouched (bit-exact features need the exact samples). Anything else
//! is decoded to float, downmixed by averaging the channels, resampled chunk by chunk with
//! rubato's FFT resampler (band-limited, fixed ratio; the same output as resampling the whole
//! clip at once) and rounded back to 16 bits.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler as _};

/// The sample rate every pipeline runs at.
pub const RATE: u32 = 16_000;
/// Most samples handed on at once (100 ms at [`RATE`]).
pub const BLOCK: usize = RATE as usize / 10;
/// Longest clip decoded whole into memory, in seconds (at the source rate).
const MAX_SECONDS: u64 = 3600;
/// Most channels accepted.
const MAX_CHANNELS: u16 = 32;
/// Most sample data decoded whole into memory, in bytes (channels x rate x bytes per sample x
/// duration, as the header declares it): an hour of 48 kHz stereo 24-bit fits; a header
/// announcing more is refused before any sample is read. Streams are not bounded.
pub const MAX_DATA_BYTES: u64 = 1 << 30;
/// Source frames read (and downmixed) at a time.
const READ_FRAMES: usize = 4096;

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

/// Reads a WAV file and converts it to 16 kHz mono 16-bit, whole (for clips the caller needs
/// in memory; streams go through [`open_wav`]).
pub fn read_wav(path: &Path) -> Result<Clip> {
    open_wav(path)?
        .into_clip()
        .with_context(|| format!("{}", path.display()))
}

/// Opens a WAV file for streaming, its header read and checked.
pub fn open_wav(path: &Path) -> Result<WavStream<std::io::BufReader<std::fs::File>>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    WavStream::open(std::io::BufReader::new(file)).with_context(|| format!("{}", path.display()))
}

/// Decodes WAV bytes from any reader, whole.
pub fn decode_wav<R: Read>(reader: R) -> Result<Clip> {
    WavStream::open(reader)?.into_clip()
}

/// A WAV whose header was read and checked, ready to be decoded block by block.
pub struct WavStream<R: Read> {
    reader: hound::WavReader<R>,
    spec: hound::WavSpec,
}

impl<R: Read> WavStream<R> {
    /// Reads and checks the header: 1 to 32 channels, 4 kHz to 384 kHz, a supported sample
    /// format. Nothing the header announces is allocated, and its length is not bounded (the
    /// samples stream).
    pub fn open(reader: R) -> Result<Self> {
        let reader = hound::WavReader::new(reader)
            .map_err(|e| anyhow::anyhow!("not a readable WAV file: {e}"))?;
        let spec = reader.spec();
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
        match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, 32) | (hound::SampleFormat::Int, 8 | 16 | 24 | 32) => {}
            (format, bits) => bail!("{bits}-bit {format:?} samples are not supported"),
        }
        Ok(WavStream { reader, spec })
    }

    /// Refuses, from the header, a clip over an hour or over [`MAX_DATA_BYTES`] of sample
    /// data: for a clip decoded whole, and for the platform service, which bounds the time one
    /// app's file takes from it.
    pub fn bounded(self) -> Result<Self> {
        let spec = self.spec;
        if u64::from(self.reader.duration()) > MAX_SECONDS * u64::from(spec.sample_rate) {
            bail!(
                "longer than {MAX_SECONDS} s, the most accepted here (`omg run` and `omg \
                 listen` stream files of any length)"
            );
        }
        let bytes = u64::from(self.reader.len()) * u64::from(spec.bits_per_sample.div_ceil(8));
        if bytes > MAX_DATA_BYTES {
            bail!(
                "{bytes} bytes of sample data ({} channels at {} Hz) is more than the \
                 {MAX_DATA_BYTES} bytes accepted here",
                spec.channels,
                spec.sample_rate
            );
        }
        Ok(self)
    }

    /// Sample rate of the file.
    pub fn source_rate(&self) -> u32 {
        self.spec.sample_rate
    }

    /// Channels of the file.
    pub fn source_channels(&self) -> u16 {
        self.spec.channels
    }

    /// Decodes the whole stream into memory, once the header shows it fits (at most an hour and
    /// [`MAX_DATA_BYTES`]).
    pub fn into_clip(self) -> Result<Clip> {
        let this = self.bounded()?;
        let (source_rate, source_channels) = (this.source_rate(), this.source_channels());
        let mut samples = Vec::new();
        this.stream(|block| {
            samples.extend_from_slice(block);
            Ok(())
        })?;
        Ok(Clip {
            samples,
            source_rate,
            source_channels,
        })
    }

    /// Decodes the whole stream, converted to 16 kHz mono 16-bit, calling `sink` with blocks of
    /// at most [`BLOCK`] samples.
    pub fn stream(mut self, mut sink: impl FnMut(&[i16]) -> Result<()>) -> Result<()> {
        let spec = self.spec;
        let corrupt = |e: hound::Error| anyhow::anyhow!("corrupt or truncated sample data: {e}");
        if spec.sample_rate == RATE
            && spec.channels == 1
            && spec.sample_format == hound::SampleFormat::Int
            && spec.bits_per_sample == 16
        {
            let mut block = Vec::with_capacity(BLOCK);
            for s in self.reader.samples::<i16>() {
                block.push(s.map_err(corrupt)?);
                if block.len() == BLOCK {
                    sink(&block)?;
                    block.clear();
                }
            }
            return if block.is_empty() {
                Ok(())
            } else {
                sink(&block)
            };
        }
        let mut out = Converter::new(spec.sample_rate)?;
        let channels = usize::from(spec.channels);
        let mut frame = Vec::with_capacity(channels);
        let mut mono = Vec::with_capacity(READ_FRAMES);
        let mut push = |x: f32, mono: &mut Vec<f32>, out: &mut Converter| -> Result<()> {
            // NaN or infinity would poison the resampler's FFT (rubato panics on it), and so
            // could huge finite values: refuse the former, clip the latter to full scale
            // (±1.0), where the 16-bit output clips anyway.
            if !x.is_finite() {
                bail!("the file holds NaN or infinite float samples");
            }
            frame.push(x.clamp(-1.0, 1.0));
            if frame.len() == channels {
                mono.push(frame.iter().sum::<f32>() / f32::from(spec.channels));
                frame.clear();
                if mono.len() == READ_FRAMES {
                    out.push(mono, &mut sink)?;
                    mono.clear();
                }
            }
            Ok(())
        };
        if spec.sample_format == hound::SampleFormat::Float {
            for s in self.reader.samples::<f32>() {
                push(s.map_err(corrupt)?, &mut mono, &mut out)?;
            }
        } else {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            for s in self.reader.samples::<i32>() {
                push(s.map_err(corrupt)? as f32 * scale, &mut mono, &mut out)?;
            }
        }
        out.push(&mono, &mut sink)?;
        out.finish(&mut sink)
    }
}

/// Mono float audio at the source rate in, 16 kHz 16-bit blocks out: resampled chunk by chunk
/// exactly as rubato's `process_all` does for a whole clip (the resampler's delay trimmed at
/// the start, zeros pumped at the end and the output cut at the clip's length), then rounded.
struct Converter {
    out: Output,
    /// `None` at 16 kHz: only rounding.
    resampler: Option<Fft<f32>>,
    /// Source frames waiting for a whole resampler chunk.
    pending: Vec<f32>,
    /// The resampler's output for one chunk.
    resampled: Vec<f32>,
    /// Source frames taken.
    frames_in: u64,
}

/// Where converted frames go: rounded to 16 bits, in blocks, the resampler's delay dropped and
/// nothing past `limit`.
struct Output {
    /// Frames still to drop (the resampler's delay).
    to_trim: usize,
    /// Frames handed on.
    sent: u64,
    /// Most frames to hand on (the clip's length once known).
    limit: u64,
}

impl Output {
    fn emit(&mut self, frames: &[f32], sink: &mut impl FnMut(&[i16]) -> Result<()>) -> Result<()> {
        let skip = self.to_trim.min(frames.len());
        self.to_trim -= skip;
        let room = usize::try_from(self.limit - self.sent).unwrap_or(usize::MAX);
        let frames = &frames[skip..][..room.min(frames.len() - skip)];
        let mut block = [0i16; BLOCK];
        for part in frames.chunks(BLOCK) {
            for (o, &x) in block.iter_mut().zip(part) {
                *o = (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
            }
            sink(&block[..part.len()])?;
        }
        self.sent += frames.len() as u64;
        Ok(())
    }
}

impl Converter {
    fn new(rate: u32) -> Result<Self> {
        let resampler = if rate == RATE {
            None
        } else {
            Some(
                Fft::<f32>::new(rate as usize, RATE as usize, 1024, 1, FixedSync::Both)
                    .map_err(|e| anyhow::anyhow!("cannot resample from {rate} Hz: {e}"))?,
            )
        };
        let (chunk, to_trim, out_max) = resampler.as_ref().map_or((0, 0, 0), |r| {
            (
                r.input_frames_next(),
                r.output_delay(),
                r.output_frames_max(),
            )
        });
        Ok(Converter {
            out: Output {
                to_trim,
                sent: 0,
                limit: u64::MAX,
            },
            resampler,
            pending: Vec::with_capacity(chunk),
            resampled: vec![0.0; out_max],
            frames_in: 0,
        })
    }

    /// Runs the resampler on the pending frames (`partial`: fewer than a chunk, zero-padded).
    fn run(
        &mut self,
        resampler_partial: Option<usize>,
        sink: &mut impl FnMut(&[i16]) -> Result<()>,
    ) -> Result<()> {
        let Some(resampler) = self.resampler.as_mut() else {
            return Ok(());
        };
        let input = InterleavedSlice::new(&self.pending[..], 1, self.pending.len())
            .map_err(|e| anyhow::anyhow!("resampler input: {e}"))?;
        let out_len = self.resampled.len();
        let mut output = InterleavedSlice::new_mut(&mut self.resampled[..], 1, out_len)
            .map_err(|e| anyhow::anyhow!("resampler output: {e}"))?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            partial_len: resampler_partial,
            active_channels_mask: None,
        };
        let (_, produced) = resampler
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| anyhow::anyhow!("resampling failed: {e}"))?;
        self.pending.clear();
        self.out.emit(&self.resampled[..produced], sink)
    }

    /// Takes source frames.
    fn push(
        &mut self,
        mut frames: &[f32],
        sink: &mut impl FnMut(&[i16]) -> Result<()>,
    ) -> Result<()> {
        self.frames_in += frames.len() as u64;
        let Some(chunk) = self.resampler.as_ref().map(|r| r.input_frames_next()) else {
            return self.out.emit(frames, sink);
        };
        while !frames.is_empty() {
            let take = (chunk - self.pending.len()).min(frames.len());
            self.pending.extend_from_slice(&frames[..take]);
            frames = &frames[take..];
            if self.pending.len() == chunk {
                self.run(None, sink)?;
            }
        }
        Ok(())
    }

    /// Flushes the last partial chunk and the resampler's tail, up to the clip's length.
    fn finish(&mut self, sink: &mut impl FnMut(&[i16]) -> Result<()>) -> Result<()> {
        let Some(ratio) = self.resampler.as_ref().map(|r| r.resample_ratio()) else {
            return Ok(());
        };
        if self.frames_in == 0 {
            return Ok(());
        }
        self.out.limit = (ratio * self.frames_in as f64).ceil() as u64;
        if !self.pending.is_empty() {
            self.run(Some(self.pending.len()), sink)?;
        }
        while self.out.sent < self.out.limit {
            self.run(Some(0), sink)?;
        }
        Ok(())
    }
}

/// A streaming resampler for raw PCM: signed 16-bit mono samples at any rate from 4 kHz to
/// 384 kHz in, 16 kHz mono out, computed as `omg` converts a WAV clip (the same band-limited
/// resampler, see [`WavStream::stream`]). Samples may be pushed in chunks of any size: the
/// output is the same, sample for sample, as resampling the whole buffer at once (the
/// resampler's delay trimmed at the start, its tail flushed by [`Resampler::finish`] and cut at
/// the input's length times the ratio). At 16 kHz the samples pass through unchanged.
pub struct Resampler {
    converter: Converter,
    rate: u32,
    finished: bool,
}

impl Resampler {
    /// A resampler from `rate` Hz (4 kHz to 384 kHz) to 16 kHz.
    pub fn new(rate: u32) -> Result<Self> {
        if !(4_000..=384_000).contains(&rate) {
            bail!("a sample rate of {rate} Hz is not supported (4 kHz to 384 kHz)");
        }
        Ok(Self {
            converter: Converter::new(rate)?,
            rate,
            finished: false,
        })
    }

    /// The source rate, in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Takes `samples` at the source rate; appends to `out` the 16 kHz samples they complete.
    pub fn push(&mut self, samples: &[i16], out: &mut Vec<i16>) -> Result<()> {
        if self.finished {
            bail!("the resampler is finished: reset it to start a new stream");
        }
        let mut sink = |b: &[i16]| {
            out.extend_from_slice(b);
            Ok(())
        };
        let mut frames = [0f32; READ_FRAMES];
        for part in samples.chunks(READ_FRAMES) {
            for (f, &s) in frames.iter_mut().zip(part) {
                *f = f32::from(s) / 32768.0;
            }
            self.converter.push(&frames[..part.len()], &mut sink)?;
        }
        Ok(())
    }

    /// Ends the stream: appends to `out` the last samples (the resampler's tail). The
    /// resampler then takes no more samples until [`Resampler::reset`].
    pub fn finish(&mut self, out: &mut Vec<i16>) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.converter.finish(&mut |b: &[i16]| {
            out.extend_from_slice(b);
            Ok(())
        })
    }

    /// Starts a new stream at the same rate.
    pub fn reset(&mut self) -> Result<()> {
        self.converter = Converter::new(self.rate)?;
        self.finished = false;
        Ok(())
    }
}

/// Reads raw signed 16-bit little-endian mono samples from `reader` in blocks, calling `sink`
/// for each block until end of input. A trailing odd byte is reported as an error, and so is
/// input that starts with a WAV header (a file for `--wav`).
pub fn read_s16le<R: Read>(
    mut reader: R,
    mut sink: impl FnMut(&[i16]) -> Result<()>,
) -> Result<()> {
    let mut first = true;
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
        if first && omg_kws::input::starts_like_wav(&samples) {
            bail!(omg_kws::input::WAV_ON_RAW_INPUT);
        }
        first = false;
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

    /// The converter's chunk-by-chunk output is the whole-clip resampling of before, sample for
    /// sample, at clip lengths around the resampler's chunk.
    #[test]
    fn streamed_resampling_equals_whole_clip_resampling() {
        use rubato::audioadapter::Adapter;
        for (rate, frames) in [(48_000, 3072), (44_100, 1), (44_100, 20_000), (8_000, 4097)] {
            let mono: Vec<f32> = (0..frames)
                .map(|i| ((i * 7919 % 2000) as f32 / 1000.0 - 1.0) * 0.8)
                .collect();
            let mut whole = Fft::<f32>::new(rate, RATE as usize, 1024, 1, FixedSync::Both).unwrap();
            let input = InterleavedSlice::new(&mono[..], 1, mono.len()).unwrap();
            let out = whole.process_all(&input, mono.len(), None).unwrap();
            let want: Vec<i16> = (0..out.frames())
                .map(|f| {
                    let x = out.read_sample(0, f).unwrap();
                    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
                })
                .collect();
            let mut got = Vec::new();
            let mut sink = |b: &[i16]| {
                assert!(b.len() <= BLOCK);
                got.extend_from_slice(b);
                Ok(())
            };
            let mut c = Converter::new(rate as u32).unwrap();
            for part in mono.chunks(1000) {
                c.push(part, &mut sink).unwrap();
            }
            c.finish(&mut sink).unwrap();
            assert_eq!(got, want, "{rate} Hz, {frames} frames");
        }
    }

    /// The public resampler: chunks of odd sizes give the samples of the whole buffer pushed
    /// at once, which are the samples `decode_wav` gives for the same audio in a WAV file; at
    /// 16 kHz it passes samples through; rates out of range and pushes after the end are
    /// refused.
    #[test]
    fn resampler_chunks_equal_the_whole_buffer_and_the_wav_decoder() {
        for (rate, frames) in [
            (44_100u32, 30_001usize),
            (48_000, 4_799),
            (8_000, 7),
            (22_050, 0),
        ] {
            let pcm: Vec<i16> = (0..frames)
                .map(|i| ((i * 7919 % 4001) as i32 * 13 - 26_000) as i16)
                .collect();
            let mut whole = Vec::new();
            let mut r = Resampler::new(rate).unwrap();
            r.push(&pcm, &mut whole).unwrap();
            r.finish(&mut whole).unwrap();
            let expected_len = (f64::from(RATE) / f64::from(rate) * frames as f64).ceil() as usize;
            assert_eq!(whole.len(), expected_len, "{rate} Hz");
            for sizes in [[1usize, 2, 3], [1023, 1, 4097], [7, 333, 5000]] {
                r.reset().unwrap();
                let mut got = Vec::new();
                let mut at = 0;
                for n in sizes.iter().cycle() {
                    if at >= pcm.len() {
                        break;
                    }
                    let end = (at + n).min(pcm.len());
                    r.push(&pcm[at..end], &mut got).unwrap();
                    at = end;
                }
                r.finish(&mut got).unwrap();
                assert_eq!(got, whole, "{rate} Hz in chunks of {sizes:?}");
            }
            let file = wav(spec(1, rate, 16, hound::SampleFormat::Int), |w| {
                pcm.iter().for_each(|&s| w.write_sample(s).unwrap())
            });
            let decoded = decode_wav(std::io::Cursor::new(file)).unwrap();
            assert_eq!(decoded.samples, whole, "{rate} Hz against the WAV decoder");
            assert!(r.push(&pcm, &mut got_nothing()).is_err());
        }
        let pcm: Vec<i16> = (-500..500).collect();
        let mut same = Vec::new();
        let mut r = Resampler::new(RATE).unwrap();
        r.push(&pcm, &mut same).unwrap();
        r.finish(&mut same).unwrap();
        assert_eq!(same, pcm);
        assert!(Resampler::new(3_999).is_err());
        assert!(Resampler::new(384_001).is_err());
    }

    fn got_nothing() -> Vec<i16> {
        Vec::new()
    }

    /// A header announcing more sample data than a whole clip may hold is refused before any
    /// is read, whatever its duration in frames.
    #[test]
    fn the_sample_data_is_bounded_in_bytes_from_the_header() {
        let data = wav(spec(32, 384_000, 32, hound::SampleFormat::Int), |w| {
            (0..32).for_each(|_| w.write_sample(0).unwrap())
        });
        let mut big = data.clone();
        // The data chunk's length: 2 GiB (11 s at this rate, well within the hour).
        let at = data.windows(4).position(|w| w == b"data").unwrap() + 4;
        big[at..at + 4].copy_from_slice(&(2u32 << 30).to_le_bytes());
        let e = decode_wav(&big[..]).err().expect("refused");
        assert!(format!("{e:#}").contains("bytes of sample data"), "{e:#}");
        assert!(decode_wav(&data[..]).is_ok());
    }

    /// A three-hour WAV (its header read from a file-like stream of zeros, nothing decoded
    /// beyond the first seconds) is accepted for streaming and its first seconds stream; the
    /// same header is refused for decoding whole.
    #[test]
    fn a_multi_hour_wav_streams_and_only_whole_clips_are_bounded() {
        let header = wav(spec(2, 48_000, 16, hound::SampleFormat::Int), |_| {});
        let frames: u64 = 3 * 3600 * 48_000;
        let data_len = u32::try_from(frames * 4).unwrap();
        let mut header = header;
        let at = header.windows(4).position(|w| w == b"data").unwrap() + 4;
        header[at..at + 4].copy_from_slice(&data_len.to_le_bytes());
        let riff_len = u32::try_from(header.len() - 8).unwrap() + data_len;
        header[4..8].copy_from_slice(&riff_len.to_le_bytes());
        let file =
            || std::io::Read::chain(&header[..], std::io::repeat(0).take(u64::from(data_len)));
        let stream = WavStream::open(file()).expect("a three-hour header is accepted");
        let mut streamed = 0usize;
        let stop = stream
            .stream(|block| {
                streamed += block.len();
                if streamed >= 3 * RATE as usize {
                    bail!("enough");
                }
                Ok(())
            })
            .unwrap_err();
        assert_eq!(stop.to_string(), "enough");
        assert!(streamed >= 3 * RATE as usize);
        let e = decode_wav(file()).err().expect("too long to decode whole");
        assert!(format!("{e:#}").contains("longer than 3600 s"), "{e:#}");
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
