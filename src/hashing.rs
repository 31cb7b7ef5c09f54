//! SHA-256 fingerprints, in hex: of a serialisable value (configurations, training
//! settings), of files (checkpoints) and of raw bytes (data sets). One hex encoder.

use std::path::Path;

use serde::Serialize;
pub use sha2::Digest;
use sha2::Sha256;

use crate::error::{Error, Result};

/// A SHA-256 hasher for [`finish`].
pub fn hasher() -> Sha256 {
    Sha256::new()
}

/// The hex digest of what `hasher` took in.
pub fn finish(hasher: Sha256) -> String {
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (hex) of the JSON form of `value`.
pub fn fingerprint<T: Serialize>(value: &T) -> String {
    let mut h = hasher();
    h.update(serde_json::to_vec(value).expect("serialisable"));
    finish(h)
}

/// SHA-256 (hex) of the bytes of `files`, one after the other, streamed.
pub fn file_digest(files: &[&Path]) -> Result<String> {
    let mut h = hasher();
    for file in files {
        let mut f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
        std::io::copy(&mut f, &mut h).map_err(|e| Error::io(file, e))?;
    }
    Ok(finish(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_sha256_values() {
        // sha256("") and sha256("\"abc\"") (the JSON form of the string abc).
        assert_eq!(
            finish(hasher()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = hasher();
        h.update(b"\"abc\"");
        assert_eq!(fingerprint(&"abc"), finish(h));
    }
}
