//! Microphone capture through ALSA (cpal), built with the `mic` feature.
//!
//! The capture callback only copies samples into a channel; the pipeline runs on the caller's
//! thread. The device must offer 16 kHz (ALSA's `plughw`/`default` devices convert any rate).

use std::sync::mpsc;

use anyhow::{Context, Result, bail};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use crate::audio::RATE;

/// Captures 16 kHz mono 16-bit audio from the default input device, calling `sink` for every
/// block until `sink` returns `Ok(false)` or an error.
pub fn capture(mut sink: impl FnMut(&[i16]) -> Result<bool>) -> Result<()> {
    let host = cpal::default_host();
    let device = host
        .default_input_device()
        .context("no audio capture device (is there a sound card?)")?;
    let config = device
        .supported_input_configs()
        .context("cannot query the capture device")?
        .find(|c| {
            c.sample_format() == cpal::SampleFormat::I16
                && c.min_sample_rate() <= RATE
                && RATE <= c.max_sample_rate()
        })
        .context("the capture device offers no 16 kHz 16-bit configuration")?
        .with_sample_rate(RATE);
    let channels = usize::from(config.channels());
    let (tx, rx) = mpsc::sync_channel::<Vec<i16>>(64);
    let stream = device
        .build_input_stream(
            config.config(),
            move |data: &[i16], _| {
                // Downmix by averaging; drop the block if the consumer is behind (never block here).
                let mono = data
                    .chunks_exact(channels)
                    .map(|c| {
                        (c.iter().map(|&s| i32::from(s)).sum::<i32>() / channels as i32) as i16
                    })
                    .collect();
                let _ = tx.try_send(mono);
            },
            |e| eprintln!("omg: capture error: {e}"),
            None,
        )
        .context("cannot open the capture stream")?;
    stream.play().context("cannot start capturing")?;
    loop {
        let Ok(block) = rx.recv() else {
            bail!("the capture stream stopped")
        };
        if !sink(&block)? {
            return Ok(());
        }
    }
}
