//! Picking the compute device: `auto`, `cpu`, `cuda` or `cuda:N`.

use candle_core::Device;

use crate::error::{Error, Result};

/// A parsed `device:` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// CUDA device 0 when compiled in and present, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

/// Parses `auto | cpu | cuda | cuda:N`.
pub fn parse(spec: &str) -> Result<DeviceSpec> {
    let invalid = || {
        Error::invalid(
            "device",
            format!("{spec:?} is not a device; allowed: auto, cpu, cuda, cuda:N"),
        )
    };
    match spec {
        "auto" => Ok(DeviceSpec::Auto),
        "cpu" => Ok(DeviceSpec::Cpu),
        "cuda" => Ok(DeviceSpec::Cuda(0)),
        s => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(DeviceSpec::Cuda)
            .ok_or_else(invalid),
    }
}

/// The device for `spec`, and a description of it for logs and manifests.
pub fn resolve(spec: &str) -> Result<(Device, String)> {
    match parse(spec)? {
        DeviceSpec::Cpu => Ok((Device::Cpu, "cpu".into())),
        DeviceSpec::Auto if !cfg!(feature = "cuda") => Ok((
            Device::Cpu,
            "cpu (auto: this build has no CUDA support; rebuild with --features cuda)".into(),
        )),
        DeviceSpec::Auto => match Device::new_cuda(0) {
            Ok(d) => Ok((d, "cuda:0 (auto)".into())),
            Err(e) => Ok((Device::Cpu, format!("cpu (auto: no usable CUDA device: {e})"))),
        },
        DeviceSpec::Cuda(n) if !cfg!(feature = "cuda") => Err(Error::invalid(
            "device",
            format!("cuda:{n} asked for, but this build has no CUDA support: rebuild with `--features cuda`"),
        )),
        DeviceSpec::Cuda(n) => Device::new_cuda(n)
            .map(|d| (d, format!("cuda:{n}")))
            .map_err(|e| Error::invalid("device", format!("cuda:{n} is not usable: {e}"))),
    }
}
