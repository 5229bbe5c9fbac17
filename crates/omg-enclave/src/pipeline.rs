//! Builds the keyword-spotting pipeline a bundle describes, with the optimized kernels (as
//! the enclave runs it) or with a chosen kernel set (`omg bench PIPELINE --kernels`).

use omg_engine::{Interpreter, KernelSet};
use omg_kws::{
    FeatureExtractor, FrontendConfig, MicroFrontend, ModelFrontend, Pipeline, PipelineConfig,
    RecognizerConfig,
};
use omg_protocol::bundle::Bundle;

use crate::EnclaveError;

/// The front end of `bundle`: its preprocessor model, or the native micro_speech front end
/// with the bundle's rate, window and stride.
pub fn frontend<'m>(bundle: &Bundle<'m>) -> Result<FeatureExtractor<'m>, EnclaveError> {
    frontend_with_kernels(bundle, KernelSet::Optimized)
}

/// Like [`frontend`], a preprocessor model running on `kernels` (the native front end has no
/// kernels to choose).
pub fn frontend_with_kernels<'m>(
    bundle: &Bundle<'m>,
    kernels: KernelSet,
) -> Result<FeatureExtractor<'m>, EnclaveError> {
    Ok(match bundle.preprocessor {
        Some(model) => FeatureExtractor::Model(ModelFrontend::from_interpreter(
            Interpreter::with_kernels(model, kernels)?,
            hop_samples(bundle)?,
            bundle.sample_rate,
        )?),
        None => FeatureExtractor::Native(MicroFrontend::new(&FrontendConfig {
            sample_rate: bundle.sample_rate,
            window_size_ms: bundle.window_ms,
            window_stride_ms: bundle.stride_ms,
            ..FrontendConfig::micro_speech()
        })?),
    })
}

/// Samples per hop of `bundle`.
pub fn hop_samples(bundle: &Bundle<'_>) -> Result<usize, EnclaveError> {
    let samples = u64::from(bundle.stride_ms) * u64::from(bundle.sample_rate) / 1000;
    match usize::try_from(samples) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(EnclaveError::Mismatch(
            "stride and sample rate give no whole sample",
        )),
    }
}

/// The pipeline settings of `bundle`.
pub fn config(bundle: &Bundle<'_>) -> PipelineConfig {
    let r = &bundle.recognizer;
    PipelineConfig {
        classify_every_hops: bundle.classify_every_hops as usize,
        recognizer: RecognizerConfig {
            average_window_ms: r.average_window_ms,
            detection_threshold: r.detection_threshold,
            suppression_ms: r.suppression_ms,
            minimum_count: r.minimum_count as usize,
            minimum_level: r.minimum_level,
            ..RecognizerConfig::default()
        },
    }
}

/// The complete pipeline (front end, classifier, recognizer) of `bundle`; the models are
/// validated and prepared here.
pub fn build<'m>(bundle: &Bundle<'m>) -> Result<Pipeline<'m>, EnclaveError> {
    build_with_kernels(bundle, KernelSet::Optimized)
}

/// Like [`build`], the preprocessor and classifier models running on `kernels`.
pub fn build_with_kernels<'m>(
    bundle: &Bundle<'m>,
    kernels: KernelSet,
) -> Result<Pipeline<'m>, EnclaveError> {
    Ok(Pipeline::with_classifier(
        frontend_with_kernels(bundle, kernels)?,
        Interpreter::with_kernels(bundle.classifier, kernels)?,
        &bundle.is_keyword,
        &config(bundle),
    )?)
}
