//! Files of a results folder: per-point checkpoints (`points/`), the metrics table
//! (`metrics.parquet`, `metrics.csv`) and `samples.h5`. I/O only: this module knows
//! nothing of sampling; `experiment` hands it finished rows and arrays.
//!
//! Every write is atomic (temporary file in the same folder, fsync, rename), so an
//! interrupted run leaves either the old file or the new one, never half of one.

pub mod export;
pub mod h5;
pub mod lock;
pub mod manifest;
pub mod point;
pub mod points;
pub mod table;

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

pub use h5::{read_meta, read_point, write_samples, H5Meta, H5Point};
pub use point::{ArrayShapes, MetricRow, PointArrays, Reconstruction};
pub use points::{load_arrays, load_row, point_status, save_point, PointStatus};
pub use table::{read_bootstrap, read_projections, read_results, read_rows, write_tables, ReplicateMap, FLOOR_ID};

/// Writes `bytes` to `path` atomically: a temporary file in the same folder is written,
/// synced to disk and renamed over `path`. Missing parent folders are created.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path.with_extension(format!(
        "{}.partial",
        path.extension().and_then(|e| e.to_str()).unwrap_or("tmp")
    ));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Syncs an already written file to disk, then renames it to `path`.
pub(crate) fn sync_and_rename(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(tmp, e))?;
    std::fs::rename(tmp, path).map_err(|e| Error::io(path, e))
}
