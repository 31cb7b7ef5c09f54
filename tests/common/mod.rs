//! Helpers shared by the integration tests.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use ddimlab::model::EpsModel;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A CPU f64 tensor of shape [rows, cols] from row-major values.
pub fn matrix(values: Vec<f64>, rows: usize, cols: usize) -> Tensor {
    Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap()
}

/// All values of a tensor as f64, row-major.
pub fn values(x: &Tensor) -> Vec<f64> {
    x.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Wraps a model and counts its calls and the distinct timesteps it saw.
pub struct Counting<'a> {
    pub inner: &'a dyn EpsModel,
    pub calls: AtomicUsize,
    pub seen: std::sync::Mutex<Vec<usize>>,
}

impl<'a> Counting<'a> {
    pub fn new(inner: &'a dyn EpsModel) -> Self {
        Self {
            inner,
            calls: AtomicUsize::new(0),
            seen: Default::default(),
        }
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl EpsModel for Counting<'_> {
    fn eps(&self, x: &Tensor, t: &[usize]) -> ddimlab::Result<Tensor> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(t[0]);
        assert!(t.iter().all(|s| *s == t[0]), "one timestep per call");
        self.inner.eps(x, t)
    }
}
