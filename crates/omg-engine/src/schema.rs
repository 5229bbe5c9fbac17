//! Numbers of the TFLite schema (`tensorflow/lite/schema/schema.fbs`) that the operators share.
//!
//! The field ids of each options table live next to the operator that reads them (a `field`
//! module in each file under `ops`); the field ids of the model's own tables are in `model`.

/// The `BuiltinOperator` code that marks a custom operator, named by the operator code's
/// `custom_code` string.
pub(crate) const CUSTOM: i32 = 32;

/// Type ids of the schema's `BuiltinOptions` union: the position of each options table in the
/// union's declaration, counting from `NONE` (0). An operator's `builtin_options_type` must be
/// the one its kernel reads, or `NONE` when the model leaves the options out.
pub(crate) mod options {
    /// No options (`NONE`); also what an operator whose kernel reads none is registered with.
    pub(crate) const NONE: u8 = 0;
    /// `Conv2DOptions` (CONV_2D).
    pub(crate) const CONV_2D: u8 = 1;
    /// `DepthwiseConv2DOptions` (DEPTHWISE_CONV_2D).
    pub(crate) const DEPTHWISE_CONV_2D: u8 = 2;
    /// `Pool2DOptions` (AVERAGE_POOL_2D, MAX_POOL_2D).
    pub(crate) const POOL_2D: u8 = 5;
    /// `FullyConnectedOptions` (FULLY_CONNECTED).
    pub(crate) const FULLY_CONNECTED: u8 = 8;
    /// `SoftmaxOptions` (SOFTMAX).
    pub(crate) const SOFTMAX: u8 = 9;
    /// `ConcatenationOptions` (CONCATENATION).
    pub(crate) const CONCATENATION: u8 = 10;
    /// `AddOptions` (ADD).
    pub(crate) const ADD: u8 = 11;
    /// `MulOptions` (MUL).
    pub(crate) const MUL: u8 = 21;
    /// `SubOptions` (SUB).
    pub(crate) const SUB: u8 = 28;
    /// `DivOptions` (DIV).
    pub(crate) const DIV: u8 = 29;
    /// `StridedSliceOptions` (STRIDED_SLICE).
    pub(crate) const STRIDED_SLICE: u8 = 32;
    /// `MaximumMinimumOptions` (MAXIMUM, MINIMUM).
    pub(crate) const MAXIMUM_MINIMUM: u8 = 39;
}
