//! The sliding window of the latest feature frames (the classifier's input).

use alloc::vec::Vec;

use crate::KwsError;
use crate::error::expect_len;

/// A ring buffer of the latest `frames` feature frames of `features` int8 values each.
///
/// [`Self::push`] overwrites the oldest frame once the window is full;
/// [`Self::write_to`] copies the frames oldest-first (frame-major) into a
/// classifier input, without allocating. For micro_speech: 49 x 40.
#[derive(Debug, Clone)]
pub struct FeatureWindow {
    data: Vec<i8>,
    features: usize,
    frames: usize,
    /// Index of the slot the next frame goes to (= the oldest frame when full).
    next: usize,
    len: usize,
}

impl FeatureWindow {
    /// A window of `frames` frames of `features` values; both must be positive.
    pub fn new(frames: usize, features: usize) -> Result<Self, KwsError> {
        if frames == 0 || features == 0 {
            return Err(KwsError::Config(
                "feature window needs at least one frame and one feature",
            ));
        }
        let size = frames
            .checked_mul(features)
            .filter(|&s| s <= 1 << 24)
            .ok_or(KwsError::Config("feature window too large"))?;
        Ok(Self {
            data: omg_engine::memory::filled(size, 0, "feature window")?,
            features,
            frames,
            next: 0,
            len: 0,
        })
    }

    /// Capacity in frames.
    #[must_use]
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Values per frame.
    #[must_use]
    pub fn features(&self) -> usize {
        self.features
    }

    /// Number of frames currently held (at most [`Self::frames`]).
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no frame has been pushed since construction or [`Self::clear`].
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True once [`Self::frames`] frames have been pushed.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.len == self.frames
    }

    /// Forgets every frame and zeroes the storage.
    pub fn clear(&mut self) {
        self.data.fill(0);
        self.next = 0;
        self.len = 0;
    }

    /// Appends a frame (`features()` values), dropping the oldest when full.
    pub fn push(&mut self, frame: &[i8]) -> Result<(), KwsError> {
        expect_len("feature frame", self.features, frame.len())?;
        let start = self.next * self.features;
        if let Some(slot) = self.data.get_mut(start..start + self.features) {
            slot.copy_from_slice(frame);
        }
        self.next = if self.next + 1 == self.frames {
            0
        } else {
            self.next + 1
        };
        self.len = (self.len + 1).min(self.frames);
        Ok(())
    }

    /// The `i`-th frame held, oldest first (`None` if `i >= len()`).
    #[must_use]
    pub fn frame(&self, i: usize) -> Option<&[i8]> {
        if i >= self.len {
            return None;
        }
        let oldest = if self.is_full() { self.next } else { 0 };
        let slot = (oldest + i) % self.frames;
        self.data
            .get(slot * self.features..(slot + 1) * self.features)
    }

    /// The held values oldest-first as two slices (the ring's older and newer parts).
    fn segments(&self) -> (&[i8], &[i8]) {
        if self.is_full() {
            let (newer, older) = self.data.split_at(self.next * self.features);
            (older, newer)
        } else {
            (&self.data[..self.len * self.features], &[])
        }
    }

    /// Copies the held frames oldest-first into `out`, which must hold
    /// `frames() * features()` values. Slots not yet filled (window not full)
    /// are written as zeros at the end.
    pub fn write_to(&self, out: &mut [i8]) -> Result<(), KwsError> {
        expect_len("feature window output", self.data.len(), out.len())?;
        let (a, b) = self.segments();
        let (out_a, rest) = out.split_at_mut(a.len());
        out_a.copy_from_slice(a);
        let (out_b, zeros) = rest.split_at_mut(b.len());
        out_b.copy_from_slice(b);
        zeros.fill(0);
        Ok(())
    }

    /// Like [`Self::write_to`] for a byte buffer (an interpreter's int8 input tensor).
    pub fn write_to_bytes(&self, out: &mut [u8]) -> Result<(), KwsError> {
        expect_len("feature window output", self.data.len(), out.len())?;
        let (a, b) = self.segments();
        let values = a
            .iter()
            .chain(b)
            .map(|&v| v as u8)
            .chain(core::iter::repeat(0));
        for (o, v) in out.iter_mut().zip(values) {
            *o = v;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i8) -> [i8; 3] {
        [v, v + 1, v + 2]
    }

    #[test]
    fn fills_then_slides_oldest_first() {
        let mut w = FeatureWindow::new(4, 3).unwrap();
        assert!(w.is_empty() && !w.is_full());
        let mut out = [99i8; 12];
        w.push(&frame(10)).unwrap();
        w.push(&frame(20)).unwrap();
        w.write_to(&mut out).unwrap();
        assert_eq!(out, [10, 11, 12, 20, 21, 22, 0, 0, 0, 0, 0, 0]);
        w.push(&frame(30)).unwrap();
        w.push(&frame(40)).unwrap();
        assert!(w.is_full());
        w.write_to(&mut out).unwrap();
        assert_eq!(out, [10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42]);
        for k in 5..=11 {
            w.push(&frame(k * 10)).unwrap();
            w.write_to(&mut out).unwrap();
            let want: std::vec::Vec<i8> = ((k - 3)..=k).flat_map(|j| frame(j * 10)).collect();
            assert_eq!(out.as_slice(), want.as_slice(), "after frame {k}");
            let mut bytes = [0u8; 12];
            w.write_to_bytes(&mut bytes).unwrap();
            assert!(bytes.iter().zip(&out).all(|(&b, &o)| b as i8 == o));
            assert_eq!(w.frame(0), Some(&frame((k - 3) * 10)[..]));
            assert_eq!(w.frame(3), Some(&frame(k * 10)[..]));
            assert_eq!(w.frame(4), None);
        }
        assert_eq!(w.len(), 4);
        w.clear();
        assert!(w.is_empty());
        w.write_to(&mut out).unwrap();
        assert_eq!(out, [0; 12]);
    }

    #[test]
    fn single_frame_window() {
        let mut w = FeatureWindow::new(1, 3).unwrap();
        let mut out = [0i8; 3];
        for k in 0..5 {
            w.push(&frame(k)).unwrap();
            w.write_to(&mut out).unwrap();
            assert_eq!(out, frame(k));
        }
    }

    #[test]
    fn errors() {
        assert!(FeatureWindow::new(0, 3).is_err());
        assert!(FeatureWindow::new(3, 0).is_err());
        assert!(FeatureWindow::new(usize::MAX, 2).is_err());
        let mut w = FeatureWindow::new(2, 3).unwrap();
        assert!(w.push(&[1, 2]).is_err());
        assert!(w.write_to(&mut [0; 5]).is_err());
        assert!(w.write_to_bytes(&mut [0; 7]).is_err());
    }
}
