//! Every accepted configuration must process arbitrary samples without
//! panicking (this runs with overflow checks in debug builds).

use omg_signal::{
    Energy, FilterBank, FilterBankConfig, FilterBankLog, Pcan, Rfft, SpectralSubtraction,
    SpectralSubtractionConfig, Window, fft_auto_scale, filter_bank_square_root,
};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }
    fn i16(&mut self) -> i16 {
        match self.next() % 8 {
            0 => i16::MIN,
            1 => i16::MAX,
            _ => self.next() as i16,
        }
    }
    fn u32(&mut self) -> u32 {
        match self.next() % 6 {
            0 => u32::MAX,
            1 => 0,
            2 => (self.next() % 4) as u32,
            _ => self.next() as u32,
        }
    }
    fn i32(&mut self) -> i32 {
        match self.next() % 4 {
            0 => i32::MIN,
            1 => i32::MAX,
            _ => self.next() as i32,
        }
    }
}

#[test]
fn extreme_inputs_and_options() {
    let mut rng = Lcg(7);
    for len in [4, 6, 10, 12, 18, 30, 50, 64, 480, 486, 500, 512] {
        let mut fft = Rfft::new(len).unwrap();
        let mut out = vec![0i16; fft.output_len()];
        for _ in 0..20 {
            let input: Vec<i16> = (0..len).map(|_| rng.i16()).collect();
            fft.apply(&input, &mut out).unwrap();
            fft.apply(&vec![i16::MIN; len as usize], &mut out).unwrap();
            fft.apply(&vec![i16::MAX; len as usize], &mut out).unwrap();
            let mut scaled = vec![0i16; input.len()];
            fft_auto_scale(&input, &mut scaled).unwrap();
        }
    }
    for _ in 0..200 {
        let n = 1 + (rng.next() % 16) as usize;
        let weights: Vec<i16> = (0..n).map(|_| rng.i16()).collect();
        let window = Window::new(&weights, (rng.next() % 32) as i32).unwrap();
        let input: Vec<i16> = (0..2 * n).map(|_| rng.i16()).collect();
        window.apply(&input, &mut vec![0; 2 * n]).unwrap();

        let spectrum: Vec<i16> = (0..2 * n).map(|_| rng.i16()).collect();
        Energy::new(0, n as i32)
            .unwrap()
            .apply(&spectrum, &mut vec![0; n])
            .unwrap();

        let w: Vec<i16> = (0..n).map(|_| rng.i16()).collect();
        let channels = 1 + (rng.next() % 4) as usize;
        let starts: Vec<i16> = (0..=channels)
            .map(|_| (rng.next() % n as u64) as i16)
            .collect();
        let widths: Vec<i16> = starts
            .iter()
            .map(|&s| (rng.next() % (n as u64 - s as u64 + 1)) as i16)
            .collect();
        let bank = FilterBank::new(&FilterBankConfig {
            num_channels: channels as i32,
            weights: &w,
            unweights: &w,
            channel_frequency_starts: &starts,
            channel_weight_starts: &starts,
            channel_widths: &widths,
            input_len: n,
        })
        .unwrap();
        let energies: Vec<u32> = (0..n).map(|_| rng.u32()).collect();
        let mut acc = vec![0u64; channels];
        bank.apply(&energies, &mut acc).unwrap();
        acc.push(u64::MAX);
        let mut roots = vec![0u32; acc.len()];
        filter_bank_square_root(&acc, (rng.next() % 32) as i32, &mut roots).unwrap();

        let mut sub = SpectralSubtraction::new(&SpectralSubtractionConfig {
            num_channels: n as i32,
            smoothing: rng.i32(),
            one_minus_smoothing: rng.i32(),
            alternate_smoothing: rng.i32(),
            alternate_one_minus_smoothing: rng.i32(),
            smoothing_bits: (rng.next() % 32) as i32,
            spectral_subtraction_bits: (rng.next() % 64) as i32,
            min_signal_remaining: rng.i32(),
            clamping: rng.next().is_multiple_of(2),
        })
        .unwrap();
        let signal: Vec<u32> = (0..n).map(|_| rng.u32()).collect();
        let mut cleaned = vec![0u32; n];
        for _ in 0..3 {
            sub.process(&signal, &mut cleaned).unwrap();
        }

        let lut: Vec<i16> = (0..125).map(|_| rng.i16()).collect();
        let pcan = Pcan::new(&lut, (rng.next() % 64) as i32).unwrap();
        let noise: Vec<u32> = (0..n).map(|_| rng.u32()).collect();
        let mut gained = vec![0u32; n];
        pcan.apply(&signal, &noise, &mut gained).unwrap();

        let log = FilterBankLog::new(rng.i32(), (rng.next() % 32) as i32).unwrap();
        log.apply(&signal, &mut vec![0i16; n]).unwrap();
    }
}
