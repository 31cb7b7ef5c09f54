//! A lock on a results folder, so that two ddimlab processes never work in one folder at
//! once: the second is refused at once with the holder's pid and command.
//!
//! The lock is an advisory OS lock (`flock`) on `<folder>/.ddimlab.lock`, held as long
//! as the process keeps the file open: it goes away with the process, however it ends
//! (a `kill -9` leaves no stale lock). The file itself stays, holding the last holder's
//! description, which is all a refused process reads.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file's name inside a results folder.
pub const LOCK_FILE: &str = ".ddimlab.lock";

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    path: PathBuf,
}

impl FolderLock {
    /// Locks `dir` (created when missing) for `what` (e.g. "ddimlab sweep experiments/x.yaml"),
    /// or says who holds it.
    pub fn acquire(dir: &Path, what: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::file(
                    dir,
                    format!(
                        "in use by another ddimlab process ({}); wait for it to finish, or use another --out",
                        holder.trim()
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let describe = format!("pid {}, `{what}`, since unix time {since}", std::process::id());
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(describe.as_bytes()))
            .and_then(|_| file.flush())
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
