//! `ddimlab merge`: the results folders of the shards of one sweep (`--shard K/N`) joined
//! into one results folder, as if the sweep had run in one process.
//!
//! **A merge never changes a shard and never leaves a half-written output.** In order:
//! 1. the output is refused if it is, or is inside, one of the shards, or a shard is
//!    listed twice ([`refuse_output_among_shards`]);
//! 2. every input is read and checked ([`Inputs::read`]): the manifests (one configuration
//!    hash), the configuration, the plan, the noise floor and the record of every saved
//!    point (a corrupt or stale point refuses the merge, naming it) — nothing is written
//!    before this succeeds;
//! 3. the merged folder is built in a staging folder beside the output;
//! 4. each staged file replaces its namesake in the output by a rename, the manifest last
//!    ([`Staging::replace`]). On any error before that, the staging folder is removed and
//!    the output is byte for byte as it was; files of the output that a merge does not
//!    write (the trained model in `train/`, shard folders inside it) are kept.

use std::path::{Path, PathBuf};

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::store::lock::{FolderLock, LOCK_FILE};
use crate::store::manifest::{Manifest, PointTiming, ShardTiming, NOISE_FLOOR_FILE};
use crate::store::points::{point_status, PointStatus};

use super::config::ExperimentConfig;
use super::plan::Plan;
use super::runner::{finalize, saved_ids};

/// What `merge` did.
#[derive(Debug, Clone)]
pub struct MergeOutcome {
    /// The merged manifest.
    pub manifest: Manifest,
    /// Planned points that no shard saved.
    pub missing: Vec<String>,
}

/// Joins the results folders of the shards of one sweep into `out`: refuses shards of
/// different configurations (config hash), copies every saved point, and writes the
/// tables, `samples.h5`, `config.yaml`, the noise floor and a manifest with the total
/// and per-shard times. Points that no shard saved are listed in the outcome (and left
/// out of the tables, as in a partial sweep).
pub fn merge(out: &Path, shards: &[PathBuf]) -> Result<MergeOutcome> {
    refuse_output_among_shards(out, shards)?;
    let inputs = Inputs::read(shards)?;
    let _lock = FolderLock::acquire(out, "ddimlab merge")?;
    let staging = Staging::beside(out)?;
    let outcome = inputs.write(staging.path(), shards)?;
    staging.replace(out)?;
    Ok(outcome)
}

/// Everything a merge reads, read and checked before anything is written.
struct Inputs {
    manifests: Vec<Manifest>,
    cfg: ExperimentConfig,
    shape: crate::shape::DataShape,
    plan: Plan,
    /// The noise floor's bytes (the first shard's; every shard computes the same).
    floor: Option<Vec<u8>>,
    /// Per saved point id, the shard folder it is copied from (the first that saved it).
    saved: Vec<(String, PathBuf)>,
}

impl Inputs {
    fn read(shards: &[PathBuf]) -> Result<Self> {
        let manifests = shard_manifests(shards)?;
        let first = &shards[0];
        let cfg = ExperimentConfig::load(&first.join("config.yaml"))?;
        let data = super::resources::load_data(&cfg)?;
        let plan = Plan::new(&cfg, data.heldout.len())?;
        let floor_path = first.join(NOISE_FLOOR_FILE);
        let floor = match std::fs::read(&floor_path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&floor_path, e)),
        };
        let hash = &manifests[0].config_hash;
        let mut saved: Vec<(String, PathBuf)> = Vec::new();
        for id in saved_ids(&plan) {
            // The first shard that saved it is copied; every shard's record is checked.
            let mut from = None;
            for dir in shards {
                match point_status(dir, &id, hash)? {
                    PointStatus::Done(_) => from = from.or(Some(dir)),
                    PointStatus::Missing => {}
                    PointStatus::Corrupt(why) => return Err(refused(dir, &id, &why)),
                    PointStatus::Stale { hash: theirs } => {
                        return Err(refused(
                            dir,
                            &id,
                            &format!("saved by configuration {theirs}, not {hash}"),
                        ))
                    }
                }
            }
            if let Some(dir) = from {
                saved.push((id, dir.clone()));
            }
        }
        Ok(Self {
            manifests,
            shape: data.shape(),
            cfg,
            plan,
            floor,
            saved,
        })
    }

    /// Writes the merged results folder into `dir` (empty).
    fn write(&self, dir: &Path, shards: &[PathBuf]) -> Result<MergeOutcome> {
        for (id, from) in &self.saved {
            for ext in ["safetensors", "json"] {
                let name = format!("{id}.{ext}");
                let source = from.join("points").join(&name);
                let bytes = std::fs::read(&source).map_err(|e| Error::io(&source, e))?;
                write_atomic(&dir.join("points").join(&name), &bytes)?;
            }
        }
        if let Some(floor) = &self.floor {
            write_atomic(&dir.join(NOISE_FLOOR_FILE), floor)?;
        }
        let (rows, missing) = self.plan.saved_rows(dir, &self.manifests[0].config_hash)?;
        finalize(dir, &self.cfg, &rows, self.shape)?;
        let mut manifest = self.manifest(shards);
        manifest.set_points(rows.iter().map(|r| PointTiming::of(r, false)).collect());
        manifest.save(dir)?;
        Ok(MergeOutcome { manifest, missing })
    }

    /// The merged manifest: the shards' total times, first start, last finish and each
    /// shard's own times.
    fn manifest(&self, shards: &[PathBuf]) -> Manifest {
        let manifests = &self.manifests;
        let total = |f: fn(&Manifest) -> f64| manifests.iter().map(f).sum::<f64>();
        Manifest {
            started_unix: manifests.iter().map(|m| m.started_unix).min().unwrap_or(0),
            finished_unix: manifests.iter().map(|m| m.finished_unix).max().unwrap_or(0),
            wall_seconds: total(|m| m.wall_seconds),
            reference_seconds: total(|m| m.reference_seconds),
            store_seconds: total(|m| m.store_seconds),
            shard: None,
            shards: shards
                .iter()
                .zip(manifests)
                .map(|(d, m)| ShardTiming {
                    dir: d.display().to_string(),
                    shard: m.shard.clone(),
                    wall_seconds: m.wall_seconds,
                    model_seconds: m.model_seconds,
                })
                .collect(),
            ..manifests[0].clone()
        }
    }
}

fn refused(dir: &Path, id: &str, why: &str) -> Error {
    Error::Config {
        message: format!(
            "shard {}: point {id} cannot be merged ({why}); rerun that shard (its sweep redoes the point) and merge again",
            dir.display()
        ),
    }
}

/// A folder beside the output where the merged folder is built; removed when dropped
/// unless it has replaced the output.
struct Staging {
    path: PathBuf,
    _lock: FolderLock,
    done: bool,
}

impl Staging {
    /// A new, empty staging folder in the output's parent (the same file system, so the
    /// final renames are atomic), locked like a results folder.
    fn beside(out: &Path) -> Result<Self> {
        let path = sibling(out, "merging")?;
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
        let lock = FolderLock::acquire(&path, "ddimlab merge (staging)")?;
        Ok(Self {
            path,
            _lock: lock,
            done: false,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Moves every staged file to its place in `out` by a rename (atomic per file), the
    /// manifest last. Files of `out` that a merge does not write (a trained model in
    /// `train/`, shard folders kept inside it) stay.
    fn replace(mut self, out: &Path) -> Result<()> {
        let mut files = Vec::new();
        staged_files(&self.path, &mut files)?;
        files.retain(|f| !f.ends_with(LOCK_FILE));
        files.sort_by_key(|f| f.ends_with(Manifest::FILE));
        for file in files {
            let relative = file
                .strip_prefix(&self.path)
                .expect("a staged file is under the staging folder");
            let target = out.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            std::fs::rename(&file, &target).map_err(|e| Error::io(&target, e))?;
        }
        self.done = true;
        std::fs::remove_dir_all(&self.path).map_err(|e| Error::io(&self.path, e))
    }
}

/// Every file under `dir`, recursively.
fn staged_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            staged_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// `<parent>/.<name>.<what>-<pid>` for the output folder `out`.
fn sibling(out: &Path, what: &str) -> Result<PathBuf> {
    let absolute = std::path::absolute(out).map_err(|e| Error::io(out, e))?;
    let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        return Err(Error::invalid(
            "--out",
            format!("{} is not a folder that can be replaced", out.display()),
        ));
    };
    Ok(parent.join(format!(".{}.{what}-{}", name.to_string_lossy(), std::process::id())))
}

/// Refuses an output folder that is one of the shards or inside one (merging copies every
/// shard's files into the output, so a shard as output would be read and overwritten at
/// once: `noise_floor.json` copied onto itself comes out empty), and a shard listed twice.
/// Paths are compared resolved (symbolic links, `..`), the output's missing tail appended
/// to its closest existing ancestor.
fn refuse_output_among_shards(out: &Path, shards: &[PathBuf]) -> Result<()> {
    let resolve = |p: &Path| -> PathBuf {
        let absolute = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut existing = absolute.as_path();
        let mut tail = Vec::new();
        while !existing.exists() {
            match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    tail.push(name.to_os_string());
                    existing = parent;
                }
                _ => break,
            }
        }
        let mut resolved = existing.canonicalize().unwrap_or_else(|_| existing.to_path_buf());
        resolved.extend(tail.iter().rev());
        resolved
    };
    let target = resolve(out);
    let resolved: Vec<PathBuf> = shards.iter().map(|s| resolve(s)).collect();
    for (i, (shard, r)) in shards.iter().zip(&resolved).enumerate() {
        if target.starts_with(r) {
            return Err(Error::invalid(
                "--out",
                format!(
                    "{} is {} shard {}: merging into a shard would overwrite the files it reads; name a new folder",
                    out.display(),
                    if &target == r { "the" } else { "inside the" },
                    shard.display()
                ),
            ));
        }
        if let Some(j) = resolved[..i].iter().position(|o| o == r) {
            return Err(Error::invalid(
                "SHARD_DIR",
                format!(
                    "{} is listed twice (also as {}): each shard once",
                    shard.display(),
                    shards[j].display()
                ),
            ));
        }
    }
    Ok(())
}

/// The manifests of the shard folders, refused unless there is at least one and all ran
/// the same configuration (config hash).
fn shard_manifests(shards: &[PathBuf]) -> Result<Vec<Manifest>> {
    let Some(first) = shards.first() else {
        return Err(Error::invalid("SHARD_DIR", "name at least one shard folder"));
    };
    let manifests = shards.iter().map(|d| Manifest::load(d)).collect::<Result<Vec<_>>>()?;
    let hash = &manifests[0].config_hash;
    if let Some((dir, m)) = shards.iter().zip(&manifests).find(|(_, m)| &m.config_hash != hash) {
        return Err(Error::Config {
            message: format!(
                "{} ran configuration {} but {} ran {hash}: only shards of one sweep can be merged",
                dir.display(),
                m.config_hash,
                first.display(),
            ),
        });
    }
    Ok(manifests)
}
