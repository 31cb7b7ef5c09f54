//! The shape of one data point, shared by data sets, models, metrics and stores.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The shape of one data point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataShape {
    /// A vector `[d]`.
    Vector(usize),
    /// An image `[c, h, w]`.
    Image {
        channels: usize,
        height: usize,
        width: usize,
    },
}

impl DataShape {
    /// The dimensions of one point: `[d]` or `[c, h, w]`.
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Self::Vector(d) => vec![d],
            Self::Image {
                channels,
                height,
                width,
            } => vec![channels, height, width],
        }
    }

    /// Numbers per point.
    pub fn numel(&self) -> usize {
        self.dims().iter().product()
    }

    /// The dimensions of a batch of `n` points: `[n, …]`.
    pub fn batch_dims(&self, n: usize) -> Vec<usize> {
        let mut dims = vec![n];
        dims.extend(self.dims());
        dims
    }
}

impl fmt::Display for DataShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}
