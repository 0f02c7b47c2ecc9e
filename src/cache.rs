//! An on-disk cache of model outputs, so re-analysing an explanation with other surrogate
//! settings does no model work.
//!
//! Entries are keyed by a SHA-256 over everything that determines the output (bundle hash,
//! input hash, instruction, seeds, model parameters) and hold the raw `f32` array, so a
//! cached value is bit-identical to the computed one.
//!
//! A cached value is never trusted blindly: each entry ends with a SHA-256 of everything
//! before it, checked on every read, and its values must be finite. An entry that fails
//! (a flipped bit, a truncated write, an older format) is a miss: the caller recomputes and
//! rewrites it, and the cache counts it for one warning. A cache that cannot be written (a
//! full or read-only disk) stops writing and says so once; the run goes on without it.
//!
//! [`stats`], [`verify`] and [`prune`] serve `gsmile cache`; they touch only files named as
//! entries are (`xx/<64 hex digits>.f32`), never anything else in the folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use ndarray::{ArrayD, IxDyn};
use sha2::{Digest, Sha256};

use crate::io::write_atomic;

/// The entry format: magic, rank, shape, little-endian `f32`s, then the SHA-256 of all that.
const MAGIC: &[u8; 8] = b"GSMILEC2";

/// Bytes of the checksum that ends every entry.
const CHECKSUM: usize = 32;

/// File name extension of entries.
const EXTENSION: &str = "f32";

/// A folder of cached arrays. Clones share the counts behind [`ArrayCache::warnings`].
#[derive(Debug, Clone)]
pub struct ArrayCache {
    dir: PathBuf,
    health: Arc<Health>,
}

/// What went wrong with a cache during a run, for one warning each at its end.
#[derive(Debug, Default)]
struct Health {
    /// Keys of the entries that failed their checksum or held non-finite values (a set: a
    /// run may look an entry up twice, when it plans its calls and when it edits).
    corrupt: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Writing failed once; later writes are skipped.
    read_only: AtomicBool,
    /// Why the first write failed.
    write_error: std::sync::Mutex<Option<String>>,
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

/// Hex SHA-256 of a file, remembered in `memo_dir` for large files, so multi-gigabyte model
/// graphs are not re-read on every run.
///
/// The memo is keyed by the file's absolute path, size, modification time and, on Unix, its
/// inode and status-change time: replacing a file (a copy, a move, even one that restores
/// the old size and modification time) changes the inode or the change time, which no user
/// command can set back, so a swapped model is always hashed again. An unreadable or stale
/// memo only costs the recomputation. Concurrent runs may drop each other's entries, never
/// corrupt them (the memo is replaced atomically).
pub fn file_sha256_memo(path: &Path, memo_dir: Option<&Path>) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let Some(dir) = memo_dir.filter(|_| meta.len() >= MEMO_MIN_BYTES) else { return file_sha256(path) };
    let Some(stamp) = identity(&meta) else { return file_sha256(path) };
    let name = std::fs::canonicalize(path)?.to_string_lossy().into_owned();
    let memo_path = dir.join(MEMO_FILE);
    let mut memo: serde_json::Map<String, serde_json::Value> =
        std::fs::read(&memo_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let entry = serde_json::json!({"len": meta.len(), "identity": stamp});
    if let Some(hit) = memo.get(&name)
        && hit.get("len") == entry.get("len")
        && hit.get("identity") == entry.get("identity")
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

/// What identifies one version of a file besides its size: its modification time and, on
/// Unix, its device, inode and status-change time (see [`file_sha256_memo`]).
fn identity(meta: &std::fs::Metadata) -> Option<String> {
    let mtime = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(format!("{mtime}:{}:{}:{}.{}", meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec()))
    }
    #[cfg(not(unix))]
    {
        Some(mtime.to_string())
    }
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
        ArrayCache { dir: dir.into(), health: Arc::default() }
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2.min(key.len())]).join(format!("{key}.{EXTENSION}"))
    }

    /// The array stored under `key`, or `None` on a miss. An entry that fails its checksum
    /// or holds NaN or an infinity is a miss too, counted for [`ArrayCache::warnings`]; the
    /// caller's [`ArrayCache::put`] of the recomputed value replaces it.
    pub fn get(&self, key: &str) -> Option<ArrayD<f32>> {
        let path = self.path(key);
        let bytes = std::fs::read(&path).ok()?;
        match decode(&bytes) {
            Some(array) => {
                // The modification time records the last use, for `gsmile cache prune`; a
                // read-only cache simply keeps the time of writing.
                if let Ok(f) = std::fs::File::options().append(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                Some(array)
            }
            None => {
                if let Ok(mut keys) = self.health.corrupt.lock() {
                    keys.insert(key.to_string());
                }
                None
            }
        }
    }

    /// Stores `array` under `key`, atomically. A cache that cannot be written (full or
    /// read-only disk, no permission) is not an error: the first failure is remembered for
    /// [`ArrayCache::warnings`] and later writes are skipped, so the run goes on uncached.
    pub fn put(&self, key: &str, array: &ArrayD<f32>) {
        if self.health.read_only.load(Ordering::Relaxed) {
            return;
        }
        let path = self.path(key);
        let written = match path.parent() {
            Some(parent) => std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display())),
            None => Ok(()),
        }
        .and_then(|()| {
            let bytes = encode(array);
            write_atomic(&path, |f| std::io::Write::write_all(f, &bytes)).map_err(|e| e.to_string())
        });
        if let Err(why) = written
            && !self.health.read_only.swap(true, Ordering::Relaxed)
            && let Ok(mut slot) = self.health.write_error.lock()
        {
            *slot = Some(why);
        }
    }

    /// What went wrong with the cache so far, one sentence each (corrupt entries that were
    /// recomputed, writes that stopped), for the command line to print as warnings.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let corrupt = self.health.corrupt.lock().map(|k| k.len()).unwrap_or(0);
        if corrupt > 0 {
            out.push(format!(
                "{corrupt} cache entr{} in {} failed {} checksum and {} recomputed and rewritten; `gsmile cache verify {}` checks the rest",
                if corrupt == 1 { "y" } else { "ies" },
                self.dir.display(),
                if corrupt == 1 { "its" } else { "their" },
                if corrupt == 1 { "was" } else { "were" },
                self.dir.display()
            ));
        }
        if let Some(why) = self.health.write_error.lock().ok().and_then(|w| w.clone()) {
            out.push(format!(
                "the cache in {} cannot be written ({why}); this run went on without caching its results. Fix: free space, or pass another --cache or --no-cache",
                self.dir.display()
            ));
        }
        out
    }
}

/// The bytes of an entry holding `array`.
fn encode(array: &ArrayD<f32>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(12 + 8 * array.ndim() + array.len() * 4 + CHECKSUM);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(array.ndim() as u32).to_le_bytes());
    for d in array.shape() {
        bytes.extend_from_slice(&(*d as u64).to_le_bytes());
    }
    for v in array.iter() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let sum = Sha256::digest(&bytes);
    bytes.extend_from_slice(&sum);
    bytes
}

/// The array an entry holds, or `None` unless its checksum matches, its shape fits its
/// length and every value is finite.
fn decode(bytes: &[u8]) -> Option<ArrayD<f32>> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(CHECKSUM)?)?;
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let rest = body.strip_prefix(MAGIC)?;
    let (ndim, mut rest) = rest.split_first_chunk::<4>()?;
    let ndim = u32::from_le_bytes(*ndim) as usize;
    let mut shape = Vec::with_capacity(ndim.min(8));
    for _ in 0..ndim {
        let (d, r) = rest.split_first_chunk::<8>()?;
        shape.push(usize::try_from(u64::from_le_bytes(*d)).ok()?);
        rest = r;
    }
    let n = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    if rest.len() != n.checked_mul(4)? {
        return None;
    }
    let data: Vec<f32> = rest.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if !data.iter().all(|v| v.is_finite()) {
        return None;
    }
    ArrayD::from_shape_vec(IxDyn(&shape), data).ok()
}

/// An entry file found in a cache folder.
struct Entry {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

/// Every entry under `dir`: files named `<64 hex>.f32` in a folder named by their first two
/// digits. Nothing else is listed, so the commands below never touch a file gsmile did not write.
fn entries(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let is_hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir)? {
        let shard = shard?;
        let shard_name = shard.file_name().to_string_lossy().into_owned();
        if !is_hex(&shard_name, 2) || !shard.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(shard.path())? {
            let file = file?;
            let name = file.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(&format!(".{EXTENSION}")) else { continue };
            if !is_hex(stem, 64) || !stem.starts_with(&shard_name) {
                continue;
            }
            let meta = file.metadata()?;
            if meta.is_file() {
                out.push(Entry { path: file.path(), len: meta.len(), modified: meta.modified()? });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// What a cache folder holds (`gsmile cache stats`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CacheStats {
    /// Entries.
    pub entries: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// The least recently used entry's age.
    pub oldest: Option<Duration>,
    /// The most recently used entry's age.
    pub newest: Option<Duration>,
}

/// Counts the entries of the cache in `dir`, their size and ages.
pub fn stats(dir: &Path) -> std::io::Result<CacheStats> {
    let list = entries(dir)?;
    let now = SystemTime::now();
    let ages: Vec<Duration> = list.iter().map(|e| now.duration_since(e.modified).unwrap_or_default()).collect();
    Ok(CacheStats {
        entries: list.len(),
        bytes: list.iter().map(|e| e.len).sum(),
        oldest: ages.iter().max().copied(),
        newest: ages.iter().min().copied(),
    })
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    /// Entries read.
    pub checked: usize,
    /// Entries that failed their checksum or held non-finite values (removed when asked).
    pub bad: Vec<PathBuf>,
}

/// Reads every entry of the cache in `dir` and checks it as [`ArrayCache::get`] does;
/// with `remove`, deletes the bad ones (they would be recomputed anyway).
pub fn verify(dir: &Path, remove: bool) -> std::io::Result<VerifyReport> {
    let mut bad = Vec::new();
    let list = entries(dir)?;
    for e in &list {
        let ok = std::fs::read(&e.path).ok().and_then(|b| decode(&b)).is_some();
        if !ok {
            if remove {
                std::fs::remove_file(&e.path)?;
            }
            bad.push(e.path.clone());
        }
    }
    Ok(VerifyReport { checked: list.len(), bad })
}

/// What [`prune`] removed.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneReport {
    /// Entries removed.
    pub removed: usize,
    /// Their size in bytes.
    pub bytes: u64,
    /// Entries kept.
    pub kept: usize,
}

/// Removes the entries of the cache in `dir` not used (read or written) for `older_than`.
pub fn prune(dir: &Path, older_than: Duration) -> std::io::Result<PruneReport> {
    let now = SystemTime::now();
    let mut report = PruneReport { removed: 0, bytes: 0, kept: 0 };
    for e in entries(dir)? {
        if now.duration_since(e.modified).unwrap_or_default() > older_than {
            std::fs::remove_file(&e.path)?;
            report.removed += 1;
            report.bytes += e.len;
        } else {
            report.kept += 1;
        }
    }
    Ok(report)
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
        cache.put(&k, &a);
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
    fn a_model_swapped_in_with_the_same_size_and_time_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let memo = dir.path().join("memo");
        let file = dir.path().join("model.onnx");
        std::fs::write(&file, vec![1u8; MEMO_MIN_BYTES as usize]).unwrap();
        let first = file_sha256_memo(&file, Some(&memo)).unwrap();
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        // Another model of the same size, moved into place with the old modification time.
        let other = dir.path().join("other.onnx");
        std::fs::write(&other, vec![2u8; MEMO_MIN_BYTES as usize]).unwrap();
        std::fs::File::options().append(true).open(&other).unwrap().set_modified(mtime).unwrap();
        std::fs::rename(&other, &file).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), mtime);
        let second = file_sha256_memo(&file, Some(&memo)).unwrap();
        assert_ne!(second, first, "the memo served the old model's hash");
        assert_eq!(second, file_sha256(&file).unwrap());
    }

    #[test]
    fn a_damaged_entry_is_a_counted_miss_and_rewriting_heals_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArrayCache::new(dir.path());
        let a = ArrayD::from_shape_fn(IxDyn(&[4, 5]), |i| (i[0] * 5 + i[1]) as f32);
        let k = key(&[b"y"]);
        cache.put(&k, &a);
        let good = std::fs::read(cache.path(&k)).unwrap();
        // A flipped bit in the payload: the values would still parse, to a wrong array.
        let mut flipped = good.clone();
        flipped[40] ^= 0x40;
        // A NaN payload with a valid checksum (written by a broken model before checks existed).
        let nan = encode(&ArrayD::from_elem(IxDyn(&[2]), f32::NAN));
        let damaged = [flipped, good[..good.len() - 1].to_vec(), b"GSMILEC1garbage".to_vec(), nan, Vec::new()];
        for (n, bytes) in damaged.iter().enumerate() {
            let k = key(&[b"damaged", &[n as u8]]);
            std::fs::create_dir_all(cache.path(&k).parent().unwrap()).unwrap();
            std::fs::write(cache.path(&k), bytes).unwrap();
            assert!(cache.get(&k).is_none(), "damage {n} served");
            assert!(cache.get(&k).is_none(), "damage {n} served");
            // Each damaged entry counts once, however often it is looked up.
            assert_eq!(cache.health.corrupt.lock().unwrap().len(), n + 1);
        }
        let warnings = cache.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("5 cache entries") && warnings[0].contains("recomputed"), "{warnings:?}");
        cache.put(&k, &a);
        assert_eq!(cache.get(&k).unwrap(), a);
    }

    #[test]
    fn a_cache_that_cannot_be_written_is_skipped_with_one_warning() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the cache folder should be: no entry can be created under it.
        let blocked = dir.path().join("cache");
        std::fs::write(&blocked, b"a user's file").unwrap();
        let cache = ArrayCache::new(&blocked);
        for n in 0..3u8 {
            cache.put(&key(&[&[n]]), &ArrayD::zeros(IxDyn(&[2])));
        }
        assert!(cache.get(&key(&[&[0]])).is_none());
        let warnings = cache.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("cannot be written") && warnings[0].contains("--no-cache"), "{warnings:?}");
        assert_eq!(std::fs::read(&blocked).unwrap(), b"a user's file");
    }

    #[test]
    fn verify_and_prune_touch_only_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArrayCache::new(dir.path());
        let keys: Vec<String> = (0..4u8).map(|n| key(&[&[n]])).collect();
        for k in &keys {
            cache.put(k, &ArrayD::zeros(IxDyn(&[8])));
        }
        // Things that are not entries: a user's notes, a look-alike with a bad name.
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        std::fs::write(dir.path().join(&keys[0][..2]).join("other.f32"), b"mine").unwrap();
        let st = stats(dir.path()).unwrap();
        assert_eq!(st.entries, 4);
        assert_eq!(st.bytes, 4 * (8 + 4 + 8 + 32 + 32) as u64);
        std::fs::write(cache.path(&keys[1]), b"broken").unwrap();
        let report = verify(dir.path(), false).unwrap();
        assert_eq!((report.checked, report.bad.clone()), (4, vec![cache.path(&keys[1])]));
        assert!(cache.path(&keys[1]).exists(), "verify without --remove changes nothing");
        verify(dir.path(), true).unwrap();
        assert!(!cache.path(&keys[1]).exists());
        // Age two entries by a day; pruning at an hour removes exactly them.
        let day_ago = SystemTime::now() - Duration::from_secs(86_400);
        for k in &keys[2..] {
            std::fs::File::options().append(true).open(cache.path(k)).unwrap().set_modified(day_ago).unwrap();
        }
        let pruned = prune(dir.path(), Duration::from_secs(3600)).unwrap();
        assert_eq!((pruned.removed, pruned.kept), (2, 1));
        assert!(cache.path(&keys[0]).exists() && !cache.path(&keys[2]).exists());
        assert_eq!(std::fs::read(dir.path().join("notes.txt")).unwrap(), b"mine");
        assert!(dir.path().join(&keys[0][..2]).join("other.f32").exists());
        // A hit refreshes the entry's time, so a used entry survives pruning.
        std::fs::File::options().append(true).open(cache.path(&keys[0])).unwrap().set_modified(day_ago).unwrap();
        assert!(cache.get(&keys[0]).is_some());
        assert_eq!(prune(dir.path(), Duration::from_secs(3600)).unwrap().removed, 0);
    }

    #[test]
    fn keys_separate_parts() {
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
    }
}
