//! Σ_k c_k · x_k over two or three same-shape tensors in one pass (the sampler's update
//! x_{t−1} = c_x x_t + c_ε ε + σ z), rounded as candle's ops round it: every term is
//! formed in f32 first, then the terms are added left to right.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape};
use rayon::prelude::*;

use super::contiguous_f32;

/// The coefficients, one per argument.
#[derive(Debug, Clone)]
pub(crate) struct LinComb(pub Vec<f32>);

/// Values per parallel task.
const CHUNK: usize = 16 * 1024;

impl LinComb {
    fn run(&self, xs: &[&[f32]], shape: &Shape) -> Result<(CpuStorage, Shape)> {
        if xs.iter().any(|x| x.len() != xs[0].len()) {
            candle_core::bail!("lincomb: arguments of different sizes")
        }
        let mut out = vec![0f32; xs[0].len()];
        let c = &self.0;
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, o)| {
            let len = o.len();
            let at = |k: usize| &xs[k][i * CHUNK..][..len];
            o.iter_mut()
                .zip(at(0))
                .zip(at(1))
                .for_each(|((o, a), b)| *o = a * c[0] + b * c[1]);
            if xs.len() == 3 {
                o.iter_mut().zip(at(2)).for_each(|(o, z)| *o += z * c[2]);
            }
        });
        Ok((CpuStorage::F32(out), shape.clone()))
    }
}

impl CustomOp2 for LinComb {
    fn name(&self) -> &'static str {
        "ddimlab-lincomb2"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(&[contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?], l1.shape())
    }
}

impl CustomOp3 for LinComb {
    fn name(&self) -> &'static str {
        "ddimlab-lincomb3"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs = [
            contiguous_f32(s1, l1)?,
            contiguous_f32(s2, l2)?,
            contiguous_f32(s3, l3)?,
        ];
        self.run(&xs, l1.shape())
    }
}
