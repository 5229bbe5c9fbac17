//! Reference integer kernels for the TFLite builtin operators, bit-exact with TensorFlow Lite Micro.
#![no_std]
#![forbid(unsafe_code)]
