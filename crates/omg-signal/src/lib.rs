//! Fixed-point audio signal processing, bit-exact with TensorFlow Lite Micro's `signal` library.
#![no_std]
#![forbid(unsafe_code)]
