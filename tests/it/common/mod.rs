//! Helpers shared by the integration tests.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use ddimlab::model::EpsModel;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// A CPU f64 tensor of shape [rows, cols] from row-major values.
pub fn matrix(values: Vec<f64>, rows: usize, cols: usize) -> Tensor {
    Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap()
}

/// The device of the device-aware tests (the diffusers, solver and U-Net fixtures, the
/// kernels): `DDIMLAB_TEST_DEVICE` as `ddimlab::device::resolve` reads it (`cpu` where
/// unset; `cuda` or `cuda:N` with `--features cuda`, as `make cuda-check` runs them on a
/// GPU). A device that cannot be had fails the test rather than falling back to the CPU.
/// Made once: each `Device::new_cuda` is a device of its own, and tensors on two of them
/// do not mix.
pub fn device() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let spec = std::env::var("DDIMLAB_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
            let (device, described) =
                ddimlab::device::resolve(&spec).unwrap_or_else(|e| panic!("DDIMLAB_TEST_DEVICE={spec}: {e}"));
            if spec != "cpu" {
                eprintln!("test device: {described}");
            }
            device
        })
        .clone()
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

/// max |got − want| / max |want| ≤ `tol`, after checking that the shapes agree.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes");
    let (g, w) = (values(got), values(want));
    let scale = w.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    let err = g.iter().zip(&w).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(err / scale <= tol, "{what}: max error {err:e} vs scale {scale:e}");
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

/// A fresh, empty temporary folder for test `tag` of `area` (this process's own).
pub fn workdir(area: &str, tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ddimlab-{area}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Deterministic DDIM decoding (η = 0, no clipping) of `x_t` over `tau`: the Eq. 14 ODE
/// through `Sampler::run` (η = 0 asks for no noise; the fixed seed keeps the call honest).
pub fn decode(
    model: &dyn EpsModel,
    schedule: &ddimlab::schedule::Schedule,
    tau: &ddimlab::schedule::Tau,
    x_t: &Tensor,
    record: bool,
) -> ddimlab::Result<ddimlab::sampler::PassOutput> {
    let ddim = ddimlab::sampler::Sampler::Ddim {
        eta: ddimlab::sampler::Eta::DDIM,
        clip_x0: false,
    };
    ddim.run(
        model,
        schedule,
        tau,
        x_t,
        &mut ddimlab::sampler::SeededNoise::new(0),
        record,
    )
}
