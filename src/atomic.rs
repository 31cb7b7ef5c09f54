//! Atomic file writes, the one way ddimlab writes a file: the content goes to a temporary
//! file beside the target (`<name>.<ext>.partial`), which is synced to disk and renamed
//! over the target. An interrupted write leaves the old file or the new one, never half of
//! one, and a failed write removes its temporary file. Missing parent folders are created.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        let mut file = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        file.write_all(bytes).map_err(|e| Error::io(tmp, e))
    })
}

/// Writes `path` atomically through `write`, which creates the temporary file it is
/// handed (for writers that open files themselves: HDF5, safetensors).
pub fn write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = partial(path);
    let written = write(&tmp).and_then(|()| {
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&tmp, e))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The temporary file of `path`: `<name>.<ext>.partial`.
fn partial(path: &Path) -> PathBuf {
    path.with_extension(format!(
        "{}.partial",
        path.extension().and_then(|e| e.to_str()).unwrap_or("tmp")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("ddimlab-atomic-{}", std::process::id()));
        let path = dir.join("sub/value.json");
        write_atomic(&path, b"old").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let err = write_with(&path, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(Error::file(tmp, "disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(!partial(&path).exists());
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
