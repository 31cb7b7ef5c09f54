//! Seeded initialisation, and safetensors checkpoints that are written atomically and
//! refused, with the differing names and shapes, when they do not fit the network.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarMap};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};

/// A `VarBuilder` backend that creates missing variables in a `VarMap` from a seeded
/// stream, honouring candle-nn's initialisation hints (candle's own CPU RNG cannot be
/// seeded). Variables are created in construction order, so a seed fixes every weight.
pub struct SeededInit {
    varmap: VarMap,
    rng: Mutex<ChaCha8Rng>,
}

impl SeededInit {
    /// Creates variables into `varmap`, drawing from `rng`.
    pub fn new(varmap: VarMap, rng: ChaCha8Rng) -> Self {
        Self {
            varmap,
            rng: Mutex::new(rng),
        }
    }

    fn draw(&self, shape: &Shape, init: Init) -> Vec<f64> {
        let n = shape.elem_count();
        let mut rng = self.rng.lock().expect("init rng poisoned");
        let uniform = |rng: &mut ChaCha8Rng, lo: f64, up: f64| -> Vec<f64> {
            (0..n).map(|_| lo + (up - lo) * rng.random::<f64>()).collect()
        };
        let normal = |rng: &mut ChaCha8Rng, mean: f64, std: f64| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    let z: f64 = StandardNormal.sample(rng);
                    mean + std * z
                })
                .collect()
        };
        match init {
            Init::Const(c) => vec![c; n],
            Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
            Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    candle_nn::init::NormalOrUniform::Uniform => {
                        uniform(&mut rng, -(3f64.sqrt()) * std, 3f64.sqrt() * std)
                    }
                    candle_nn::init::NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
                }
            }
        }
    }
}

impl SimpleBackend for SeededInit {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut data = self.varmap.data().lock().expect("varmap poisoned");
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                candle_core::bail!("variable {name} has shape {:?}, asked for {:?}", var.shape(), s);
            }
            return Ok(var.as_tensor().clone());
        }
        let values = self.draw(&s, h);
        let var = Var::from_tensor(&Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?)?;
        let tensor = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        let data = self.varmap.data().lock().expect("varmap poisoned");
        match data.get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("no variable named {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().expect("varmap poisoned").contains_key(name)
    }
}

/// The variables of `varmap` by name, sorted.
pub fn named_tensors(varmap: &VarMap) -> BTreeMap<String, Tensor> {
    let data = varmap.data().lock().expect("varmap poisoned");
    data.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect()
}

/// The variables of `varmap` sorted by name, with their names: a fixed order for
/// optimiser state, so a run does not depend on the map's iteration order.
pub fn sorted_vars(varmap: &VarMap) -> (Vec<String>, Vec<Var>) {
    let data = varmap.data().lock().expect("varmap poisoned");
    let mut named: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named.into_iter().unzip()
}

/// Writes `tensors` to `path` as safetensors, atomically ([`crate::atomic`]), so an
/// interrupted write never leaves a file a later run would trust.
pub fn save_atomic(tensors: &BTreeMap<String, Tensor>, path: &Path) -> Result<()> {
    let host: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    crate::atomic::write_with(path, |tmp| {
        safetensors::tensor::serialize_to_file(host.iter().map(|(k, t)| (k.as_str(), t)), None, tmp)
            .map_err(|e| Error::file(tmp, e))
    })
}

/// Reads a safetensors file onto `device`.
pub fn read(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device)
        .map_err(|e| Error::file(path, format!("not a readable safetensors file: {e}")))
}

/// The tensor names and shapes of a safetensors file, from its header alone (the first
/// 8 + N bytes: N little-endian, then N bytes of JSON), without reading the tensors.
pub fn header_shapes(path: &Path) -> Result<BTreeMap<String, Vec<usize>>> {
    use std::io::Read;
    let bad = |message: String| Error::file(path, message);
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| bad("not a safetensors file: shorter than its 8-byte header length".into()))?;
    let n = u64::from_le_bytes(len);
    if n > file_len.saturating_sub(8) || n > 100 << 20 {
        return Err(bad(format!(
            "not a safetensors file: its header would be {n} bytes in a {file_len}-byte file"
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("not a safetensors file: its header is not JSON ({e})")))?;
    let map = json
        .as_object()
        .ok_or_else(|| bad("not a safetensors file: its header is not a JSON object".into()))?;
    let mut shapes = BTreeMap::new();
    for (name, v) in map.iter().filter(|(k, _)| *k != "__metadata__") {
        let shape = v
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| {
                a.iter()
                    .map(|d| d.as_u64().map(|d| d as usize))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| bad(format!("not a safetensors file: tensor {name} has no shape")))?;
        shapes.insert(name.clone(), shape);
    }
    Ok(shapes)
}

/// Checks, from the header alone, that `path` holds exactly the variables of `varmap`
/// with their shapes (the same rule as [`load_into`]).
pub fn check_header(varmap: &VarMap, path: &Path) -> Result<()> {
    let data = varmap.data().lock().expect("varmap poisoned");
    check_fit(&data, &header_shapes(path)?, &path.display().to_string())
}

/// Refuses, listing every missing, unexpected and differently shaped tensor, a file whose
/// tensor `shapes` (by name) are not exactly the variables of `data`.
fn check_fit(data: &HashMap<String, Var>, shapes: &BTreeMap<String, Vec<usize>>, source: &str) -> Result<()> {
    let mut problems = Vec::new();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let want = data[name].shape().dims();
        match shapes.get(name) {
            None => problems.push(format!("missing {name} {want:?}")),
            Some(got) if got.as_slice() != want => problems.push(format!("{name}: checkpoint {got:?}, model {want:?}")),
            Some(_) => {}
        }
    }
    problems.extend(
        shapes
            .iter()
            .filter(|(k, _)| !data.contains_key(*k))
            .map(|(k, dims)| format!("unexpected {k} {dims:?}")),
    );
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Io {
        path: source.to_string(),
        message: format!(
            "the checkpoint does not fit the experiment's architecture ({} difference(s)):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ),
        source: None,
    })
}

/// Copies the tensors of `file` into the variables of `varmap`. Refuses, listing every
/// missing, unexpected and differently shaped tensor, unless the two match exactly.
pub fn load_into(varmap: &VarMap, file: &HashMap<String, Tensor>, source: &str) -> Result<()> {
    let data = varmap.data().lock().expect("varmap poisoned");
    let shapes = file.iter().map(|(k, t)| (k.clone(), t.dims().to_vec())).collect();
    check_fit(&data, &shapes, source)?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        var.set(&file[name].to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(())
}
