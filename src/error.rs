//! The crate's error type: every bad input is reported as a value, never a panic.

use std::fmt::Display;
use std::path::Path;

use thiserror::Error;

/// Everything that can go wrong in ddimlab's math and models.
#[derive(Debug, Error)]
pub enum Error {
    /// A number of sampling steps outside `1..=T`.
    #[error("steps = {steps} is out of range: S must be between 1 and T = {timesteps} (the training timesteps)")]
    StepsOutOfRange { steps: usize, timesteps: usize },

    /// An η outside the range where paper Eq. (12) is defined.
    #[error("eta = {0} is out of range: eta must be a finite number in [0, 1] (Eq. 16; above 1 the direction term sqrt(1 - ᾱ_prev - σ²) of Eq. 12 is undefined), or `sigma_hat`")]
    EtaOutOfRange(f64),

    /// An invalid beta schedule.
    #[error("invalid schedule: {0}")]
    Schedule(String),

    /// An invalid Gaussian-mixture specification.
    #[error("invalid Gaussian mixture: {0}")]
    Mixture(String),

    /// An experiment file that cannot be used, with file, line, column and field path.
    #[error("{message}")]
    Config { message: String },

    /// A configuration value that is not allowed, with the field it came from.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },

    /// A file that could not be read or written (`source`: the operating system's error,
    /// where there was one), or whose content is not what it should be.
    #[error("{path}: {message}")]
    Io {
        path: String,
        message: String,
        #[source]
        source: Option<std::io::Error>,
    },

    /// NaN or infinity where finite numbers are required.
    #[error("{what} contains {count} non-finite value(s) (NaN or infinity)")]
    NonFinite { what: String, count: usize },

    /// Tensors whose shapes do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),

    /// An error from the tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Shorthand for results with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The operating system's error `source` about `path` (kept as the error's source).
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            message: source.to_string(),
            source: Some(source),
        }
    }

    /// A file at `path` whose content cannot be used (a format error), said by `message`.
    pub fn file(path: &Path, message: impl Display) -> Self {
        Error::Io {
            path: path.display().to_string(),
            message: message.to_string(),
            source: None,
        }
    }

    /// A value of `field` that is not allowed, with what is allowed in `message`.
    pub fn invalid(field: impl Display, message: impl Display) -> Self {
        Error::Invalid {
            field: field.to_string(),
            message: message.to_string(),
        }
    }
}
