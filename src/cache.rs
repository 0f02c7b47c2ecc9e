//! An on-disk cache of model outputs, so re-analysing an explanation with other surrogate
//! settings does no model work.
//!
//! Entries are keyed by a SHA-256 over everything that determines the output (bundle hash,
//! input hash, instruction, seeds, model parameters) and hold the raw `f32` array, so a
//! cached value is bit-identical to the computed one. Unreadable entries count as misses.

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use sha2::{Digest, Sha256};

use crate::io::{OutputError, write_atomic};

const MAGIC: &[u8; 8] = b"GSMILEC1";

/// A folder of cached arrays.
#[derive(Debug, Clone)]
pub struct ArrayCache {
    dir: PathBuf,
}

/// Hex SHA-256 of `parts`, each length-prefixed so no two part lists collide.
pub fn key(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex(&h.finalize())
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a file's bytes.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut h)?;
    Ok(hex(&h.finalize()))
}

/// Files at least this large have their hashes remembered (see [`file_sha256_memo`]).
pub const MEMO_MIN_BYTES: u64 = 16 << 20;

/// The memo file inside a cache folder.
const MEMO_FILE: &str = "file-sha256.json";

/// Hex SHA-256 of a file, remembered in `memo_dir` for large files (keyed by absolute path,
/// size and modification time), so multi-gigabyte model graphs are not re-read on every run.
///
/// A changed size or modification time recomputes the hash; an unreadable or stale memo only
/// costs the recomputation. Concurrent runs may drop each other's entries, never corrupt them
/// (the memo is replaced atomically).
pub fn file_sha256_memo(path: &Path, memo_dir: Option<&Path>) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let Some(dir) = memo_dir.filter(|_| meta.len() >= MEMO_MIN_BYTES) else { return file_sha256(path) };
    let stamp = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos());
    let Some(stamp) = stamp else { return file_sha256(path) };
    let name = std::fs::canonicalize(path)?.to_string_lossy().into_owned();
    let memo_path = dir.join(MEMO_FILE);
    let mut memo: serde_json::Map<String, serde_json::Value> =
        std::fs::read(&memo_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let entry = serde_json::json!({"len": meta.len(), "mtime_ns": stamp.to_string()});
    if let Some(hit) = memo.get(&name)
        && hit.get("len") == entry.get("len")
        && hit.get("mtime_ns") == entry.get("mtime_ns")
        && let Some(sha) = hit.get("sha256").and_then(serde_json::Value::as_str)
    {
        return Ok(sha.to_string());
    }
    let sha = file_sha256(path)?;
    let mut entry = entry;
    entry["sha256"] = sha.clone().into();
    memo.insert(name, entry);
    if std::fs::create_dir_all(dir).is_ok() {
        let bytes = serde_json::to_vec_pretty(&memo).unwrap_or_default();
        // A memo that cannot be written only means hashing again next time.
        let _ = crate::io::write_bytes_atomic(&memo_path, &bytes);
    }
    Ok(sha)
}

/// [`key`] of `parts` followed by one more part, the little-endian bytes of `values`, hashed
/// as they stream by instead of being copied into one buffer first.
pub fn key_with_f32<'a>(parts: &[&[u8]], values: impl ExactSizeIterator<Item = &'a f32>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.update(((values.len() * 4) as u64).to_le_bytes());
    let mut buf = [0u8; 4096];
    let mut n = 0;
    for v in values {
        buf[n..n + 4].copy_from_slice(&v.to_le_bytes());
        n += 4;
        if n == buf.len() {
            h.update(buf);
            n = 0;
        }
    }
    h.update(&buf[..n]);
    hex(&h.finalize())
}

impl ArrayCache {
    /// A cache stored under `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ArrayCache { dir: dir.into() }
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2.min(key.len())]).join(format!("{key}.f32"))
    }

    /// The array stored under `key`, or `None` on a miss or an unreadable entry.
    pub fn get(&self, key: &str) -> Option<ArrayD<f32>> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        let rest = bytes.strip_prefix(MAGIC)?;
        let (ndim, rest) = rest.split_first_chunk::<4>()?;
        let ndim = u32::from_le_bytes(*ndim) as usize;
        let mut shape = Vec::with_capacity(ndim);
        let mut rest = rest;
        for _ in 0..ndim {
            let (d, r) = rest.split_first_chunk::<8>()?;
            shape.push(usize::try_from(u64::from_le_bytes(*d)).ok()?);
            rest = r;
        }
        let n: usize = shape.iter().product();
        if rest.len() != n * 4 {
            return None;
        }
        let data = rest.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        ArrayD::from_shape_vec(IxDyn(&shape), data).ok()
    }

    /// Stores `array` under `key`, atomically.
    pub fn put(&self, key: &str, array: &ArrayD<f32>) -> Result<(), OutputError> {
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| OutputError { path: parent.to_path_buf(), source })?;
        }
        let mut bytes = Vec::with_capacity(16 + array.len() * 4);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(array.ndim() as u32).to_le_bytes());
        for d in array.shape() {
            bytes.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        for v in array.iter() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        write_atomic(&path, |f| std::io::Write::write_all(f, &bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_with_f32_equals_key_of_the_bytes() {
        for n in [0usize, 1, 1023, 1024, 1025, 5000] {
            let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.37 - 11.0).collect();
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            assert_eq!(key_with_f32(&[b"a", b"bc"], values.iter()), key(&[b"a", b"bc", &bytes]), "n = {n}");
        }
        assert_ne!(key_with_f32(&[b"a"], [1.0f32].iter()), key_with_f32(&[b"a"], [2.0f32].iter()));
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArrayCache::new(dir.path());
        let a = ArrayD::from_shape_fn(IxDyn(&[2, 3, 4]), |i| (i[0] * 12 + i[1] * 4 + i[2]) as f32 / 7.0);
        let k = key(&[b"edit", b"x"]);
        assert!(cache.get(&k).is_none());
        cache.put(&k, &a).unwrap();
        assert_eq!(cache.get(&k).unwrap(), a);
    }

    #[test]
    fn large_file_hashes_are_remembered_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let memo = dir.path().join("memo");
        let file = dir.path().join("big.bin");
        std::fs::write(&file, vec![7u8; MEMO_MIN_BYTES as usize]).unwrap();
        let real = file_sha256(&file).unwrap();
        assert_eq!(file_sha256_memo(&file, Some(&memo)).unwrap(), real);
        // Plant a different hash in the memo: a hit returns it, proving the file was not re-read.
        let memo_file = memo.join(MEMO_FILE);
        let text = std::fs::read_to_string(&memo_file).unwrap().replace(&real, &"ab".repeat(32));
        std::fs::write(&memo_file, text).unwrap();
        assert_eq!(file_sha256_memo(&file, Some(&memo)).unwrap(), "ab".repeat(32));
        // Changing the file (size and time) recomputes.
        std::fs::write(&file, vec![8u8; MEMO_MIN_BYTES as usize + 1]).unwrap();
        let changed = file_sha256_memo(&file, Some(&memo)).unwrap();
        assert_eq!(changed, file_sha256(&file).unwrap());
        assert_ne!(changed, real);
        // Small files and no memo folder: plain hashing.
        let small = dir.path().join("small.bin");
        std::fs::write(&small, b"x").unwrap();
        assert_eq!(file_sha256_memo(&small, Some(&memo)).unwrap(), file_sha256(&small).unwrap());
        assert_eq!(file_sha256_memo(&file, None).unwrap(), changed);
    }

    #[test]
    fn corrupt_entry_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArrayCache::new(dir.path());
        let k = key(&[b"y"]);
        cache.put(&k, &ArrayD::zeros(IxDyn(&[3]))).unwrap();
        std::fs::write(cache.path(&k), b"GSMILEC1garbage").unwrap();
        assert!(cache.get(&k).is_none());
    }

    #[test]
    fn keys_separate_parts() {
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
    }
}
