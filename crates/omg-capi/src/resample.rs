//! The streaming resampler handle's safe core: omg-cli's resampler (the one `omg` converts WAV
//! clips with) and the buffer its output is handed out from.
#![forbid(unsafe_code)]

use crate::error::Failure;

/// A resampler to 16 kHz and its latest output.
pub struct Resampler {
    inner: omg_cli::audio::Resampler,
    out: Vec<i16>,
}

impl Resampler {
    /// A resampler from `rate` Hz (4 kHz to 384 kHz) to 16 kHz.
    pub fn new(rate: u32) -> Result<Self, Failure> {
        let inner =
            omg_cli::audio::Resampler::new(rate).map_err(|e| Failure::invalid(format!("{e:#}")))?;
        Ok(Self {
            inner,
            out: Vec::new(),
        })
    }

    /// Takes `samples`; returns the 16 kHz samples they complete (valid until the next call).
    pub fn push(&mut self, samples: &[i16]) -> Result<&[i16], Failure> {
        self.out.clear();
        self.inner
            .push(samples, &mut self.out)
            .map_err(|e| Failure::invalid(format!("{e:#}")))?;
        Ok(&self.out)
    }

    /// Ends the stream; returns the last 16 kHz samples (valid until the next call).
    pub fn finish(&mut self) -> Result<&[i16], Failure> {
        self.out.clear();
        self.inner
            .finish(&mut self.out)
            .map_err(|e| Failure::invalid(format!("{e:#}")))?;
        Ok(&self.out)
    }

    /// Starts a new stream at the same rate.
    pub fn reset(&mut self) -> Result<(), Failure> {
        self.out.clear();
        self.inner
            .reset()
            .map_err(|e| Failure::invalid(format!("{e:#}")))
    }

    /// The source rate, in Hz.
    pub fn rate(&self) -> u32 {
        self.inner.rate()
    }
}
