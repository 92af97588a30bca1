//! Atomic output: the one way Isola writes a file or a folder of files, so a crash, a kill
//! or a full disk at any moment leaves either what was there before or the complete new
//! output, never a torn file and never half a set.
//!
//! - A file ([`write_with`], [`write_bytes`], [`write_through_path`]) is written to a temp
//!   file in the destination's folder, flushed, fsynced, then renamed over the destination
//!   (rename is atomic within one file system), and the folder is fsynced.
//! - A set of files that belong together, such as a track's stems ([`StagedDir`]), is
//!   written into a temp folder beside the destination folder and moved into place in one
//!   rename; an existing folder is swapped for it in one atomic exchange where the platform
//!   has one (Linux `renameat2(RENAME_EXCHANGE)`, macOS `renamex_np(RENAME_SWAP)`).
//!
//! On an error the temporaries are removed. Only a kill leaves one behind; temporaries are
//! hidden (`.<name>.<random>.isola-tmp[.ext]`) and [`remove_stale`] clears them; the
//! commands that own a folder call it before they write there. A writer holds an advisory
//! lock (`flock`) on its temporary for as long as it lives, and [`remove_stale`] keeps every
//! temporary it cannot lock, so processes that share a folder (two training runs filling one
//! decoded-audio cache) never remove each other's writes in progress; a killed writer's lock
//! goes with it (Unix; Windows locks would refuse the writer's own second handle).
//!
//! Thread: any thread but the audio thread (this is file IO).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::{Builder, NamedTempFile, TempDir};

/// Marks Isola's temporaries; [`remove_stale`] removes only names that carry it.
const TEMP_MARK: &str = ".isola-tmp";

/// A failed atomic write: the destination, the step that failed and the OS error. The
/// destination is untouched and no temporary is left.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {stage}: {cause}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    pub stage: &'static str,
    /// The OS error, in the message (not chained as a `source`, so it is printed once).
    pub cause: io::Error,
}

impl From<WriteError> for io::Error {
    fn from(e: WriteError) -> Self {
        io::Error::new(e.cause.kind(), e.to_string())
    }
}

fn fail<'a>(path: &'a Path, stage: &'static str) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |cause| WriteError { path: path.to_path_buf(), stage, cause }
}

/// The folder `path` lives in (`.` for a bare file name) and its file name.
fn split(path: &Path) -> Result<(&Path, String), WriteError> {
    let name = path.file_name().ok_or_else(|| WriteError {
        path: path.to_path_buf(),
        stage: "not a file name",
        cause: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((dir, name.to_string_lossy().into_owned()))
}

/// A tempfile builder whose files and folders get the permissions a plain `open`/`mkdir`
/// gives them: `mode` less the process umask (0644 and 0755 with the usual umask 022), not
/// the temp files' private 0600/0700, which would stay on the renamed result and lock other
/// users out of shared stems and weights. Windows has no modes.
fn builder<'a>(mode: u32) -> Builder<'a, 'a> {
    let mut b = Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    b
}

/// How many fresh temporaries a writer makes before it gives up, when another process's
/// [`remove_stale`] keeps taking each one between its creation and its lock.
const CLAIM_TRIES: usize = 8;

/// A hidden temp file beside `path`, locked for this writer (see [`claim`]); `ext` is
/// appended after the mark for writers that choose the format by extension.
fn temp_beside(path: &Path, ext: &str) -> Result<NamedTempFile, WriteError> {
    let (dir, name) = split(path)?;
    for _ in 0..CLAIM_TRIES {
        let tmp = builder(0o666)
            .prefix(&format!(".{name}."))
            .suffix(&format!("{TEMP_MARK}{ext}"))
            .tempfile_in(dir)
            .map_err(fail(path, "cannot create the temp file"))?;
        if claim(tmp.as_file(), tmp.path()) {
            return Ok(tmp);
        }
    }
    Err(fail(path, "cannot keep a temp file: another process removes each one")(io::Error::from(
        io::ErrorKind::WouldBlock,
    )))
}

/// Takes the writer's lock on a temporary just created at `path` through `handle`, and checks
/// that no [`remove_stale`] in another process removed it first (it holds the lock while it
/// removes, so once this lock is taken the name is either still this file or gone). `false`:
/// make another temporary. A file system without locks leaves the temporary unprotected, as
/// it was before locks.
#[cfg(unix)]
fn claim(handle: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match handle.try_lock() {
        Ok(()) => {
            let (Ok(open), Ok(named)) = (handle.metadata(), std::fs::symlink_metadata(path)) else { return false };
            open.dev() == named.dev() && open.ino() == named.ino()
        }
        Err(std::fs::TryLockError::WouldBlock) => false,
        Err(std::fs::TryLockError::Error(_)) => true,
    }
}

/// Windows locks are mandatory byte-range locks, which would refuse the writer's own second
/// handle (`write_with` writes through a reopened one): temporaries stay unlocked there.
#[cfg(not(unix))]
fn claim(_handle: &File, _path: &Path) -> bool {
    true
}

/// A handle on the temporary `path` (a file or a folder) to lock; `None` where temporaries
/// are not locked (see [`claim`]).
fn lock_handle(path: &Path) -> Option<File> {
    #[cfg(unix)]
    return File::open(path).ok();
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Syncs the folder entry of a rename, so the new name survives a power cut (POSIX; a no-op
/// elsewhere).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn persist(tmp: NamedTempFile, path: &Path) -> Result<(), WriteError> {
    tmp.as_file().sync_all().map_err(fail(path, "fsync failed"))?;
    // On failure `persist` hands the temp file back, and dropping it removes it.
    tmp.persist(path).map_err(|e| fail(path, "cannot rename the temp file into place")(e.error))?;
    sync_dir(split(path)?.0).map_err(fail(path, "cannot sync the folder"))
}

/// Writes `path` atomically: `write` fills a buffered temp file beside it (seekable, as WAV
/// writers need), which is then flushed, fsynced and renamed over `path`. The folder must
/// exist.
///
/// Errors: [`WriteError`] naming `path` and the step (an error `write` returns is reported
/// as "write failed"); `path` is then unchanged and the temp file is gone.
pub fn write_with<T>(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>) -> Result<T, WriteError> {
    let tmp = temp_beside(path, "")?;
    let mut w = BufWriter::new(tmp.reopen().map_err(fail(path, "cannot open the temp file"))?);
    let value = write(&mut w).map_err(fail(path, "write failed"))?;
    w.flush().map_err(fail(path, "write failed"))?;
    drop(w);
    persist(tmp, path)?;
    Ok(value)
}

/// [`write_with`] for bytes already in memory.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_with(path, |w| w.write_all(bytes))
}

/// For libraries that write to a path of their own (plotters picks the image format from
/// the extension): `write` creates the file at the temp path it is given, which ends in
/// `path`'s extension; that file is then fsynced and renamed over `path`.
///
/// Errors: as [`write_with`]; `write`'s own error text becomes the [`WriteError`]'s source.
pub fn write_through_path(path: &Path, write: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), WriteError> {
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    let tmp = temp_beside(path, &ext)?;
    write(tmp.path()).map_err(|e| fail(path, "write failed")(io::Error::other(e)))?;
    persist(tmp, path)
}

/// A folder of files that appears complete or not at all: files are written into a hidden
/// temp folder beside `target` (with [`write_with`], or any writer), and [`commit`] moves it
/// into place. Dropping it uncommitted removes it.
///
/// [`commit`]: StagedDir::commit
#[derive(Debug)]
pub struct StagedDir {
    temp: TempDir,
    target: PathBuf,
    /// The writer's lock on the temp folder (see [`remove_stale`]); `None` where
    /// temporaries are not locked (Windows).
    _lock: Option<File>,
}

impl StagedDir {
    /// Creates the temp folder beside `target` (and `target`'s parent folders).
    ///
    /// Errors: [`WriteError`] naming `target` when a folder cannot be created.
    pub fn new(target: &Path) -> Result<Self, WriteError> {
        let (parent, name) = split(target)?;
        std::fs::create_dir_all(parent).map_err(fail(target, "cannot create the parent folder"))?;
        for _ in 0..CLAIM_TRIES {
            let temp = builder(0o777)
                .prefix(&format!(".{name}."))
                .suffix(TEMP_MARK)
                .tempdir_in(parent)
                .map_err(fail(target, "cannot create the temp folder"))?;
            let lock = lock_handle(temp.path());
            if lock.as_ref().is_none_or(|l| claim(l, temp.path())) {
                return Ok(StagedDir { temp, target: target.to_path_buf(), _lock: lock });
            }
        }
        Err(fail(target, "cannot keep a temp folder: another process removes each one")(io::Error::from(
            io::ErrorKind::WouldBlock,
        )))
    }

    /// The temp folder to write into.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Moves the staged folder to `target`. With `replace`, an existing `target` is
    /// exchanged for it atomically (Linux, macOS; elsewhere it is first moved aside, so a
    /// kill between the two renames leaves it under a hidden temp name) and then removed.
    ///
    /// Errors: [`WriteError`] naming `target`: it exists and `replace` is false
    /// ("already exists"), or a rename fails. `target` is then as it was and the staged
    /// folder is removed.
    pub fn commit(self, replace: bool) -> Result<(), WriteError> {
        let target = self.target.clone();
        let (parent, _) = split(&target)?;
        sync_dir(self.temp.path()).map_err(fail(&target, "cannot sync the staged folder"))?;
        let exists = std::fs::symlink_metadata(&target).is_ok();
        if !exists {
            let staged = self.temp.keep();
            if let Err(e) = std::fs::rename(&staged, &target) {
                let _ = std::fs::remove_dir_all(&staged);
                return Err(fail(&target, "cannot move the staged folder into place")(e));
            }
        } else if !replace {
            return Err(fail(&target, "already exists")(io::Error::from(io::ErrorKind::AlreadyExists)));
        } else {
            exchange(self.temp.path(), &target).map_err(fail(&target, "cannot swap the new folder in"))?;
            // The temp folder now holds the old contents; dropping it removes them.
            drop(self.temp);
        }
        sync_dir(parent).map_err(fail(&target, "cannot sync the folder"))
    }
}

/// Swaps two paths in one step.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(io::Error::from)
}

/// Swaps two paths with three renames through a hidden name beside `b`.
#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let aside =
        Builder::new().prefix(".isola-old.").suffix(TEMP_MARK).tempdir_in(split(b).map_err(io::Error::from)?.0)?;
    let aside = aside.keep().join("old");
    std::fs::rename(b, &aside)?;
    if let Err(e) = std::fs::rename(a, b) {
        let _ = std::fs::rename(&aside, b);
        return Err(e);
    }
    std::fs::rename(&aside, a)?;
    let _ = std::fs::remove_dir(aside.parent().expect("inside the aside folder"));
    Ok(())
}

/// Removes the temporaries a killed writer left in `dir`: every hidden entry carrying
/// Isola's temp mark, or, with `for_name`, only those of that destination name. A temporary
/// whose writer is alive, in this process or another, is kept: the writer holds a lock on it,
/// and this takes the lock before it removes one. Returns how many were removed; a missing
/// `dir` has none, and a temporary that vanishes meanwhile (its writer finished) is skipped.
///
/// Errors: the folder cannot be listed, or an entry cannot be removed (naming it).
pub fn remove_stale(dir: &Path, for_name: Option<&str>) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io::Error::new(e.kind(), format!("cannot list {}: {e}", dir.display()))),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_temporary(&name, for_name) && remove_if_stale(&entry.path(), entry.file_type()?.is_dir())? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes the temporary `path` unless a live writer holds its lock. Returns whether this
/// call removed it: `false` for a live writer's, and for one that is already gone, since
/// between the listing and here its writer may have renamed it into place or another
/// process's cleanup removed it.
fn remove_if_stale(path: &Path, is_dir: bool) -> io::Result<bool> {
    // Held until the entry is gone, so a writer that locks it later knows it was taken.
    let lock = lock_handle(path);
    if let Some(l) = &lock
        && let Err(std::fs::TryLockError::WouldBlock) = l.try_lock()
    {
        return Ok(false); // a live writer's
    }
    let gone = if is_dir { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    match gone {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io::Error::new(e.kind(), format!("cannot remove the stale temporary {}: {e}", path.display()))),
    }
}

/// Removes the temporaries a killed writer of `path` (a file or a staged folder) left beside
/// it; the other destinations' temporaries in that folder are kept. Returns how many were
/// removed.
///
/// Errors: as [`remove_stale`], or `path` has no file name.
pub fn remove_stale_for(path: &Path) -> io::Result<usize> {
    let (dir, name) = split(path)?;
    remove_stale(dir, Some(&name))
}

/// Whether `name` is one of the temporaries this module makes (of `for_name`'s destination
/// when given).
fn is_temporary(name: &str, for_name: Option<&str>) -> bool {
    let Some(rest) = name.strip_prefix('.') else { return false };
    let Some(mark) = rest.rfind(TEMP_MARK) else { return false };
    match for_name {
        // `.<name>.<random>.isola-tmp`: the destination is everything before the last dot
        // ahead of the mark.
        Some(target) => rest[..mark].rsplit_once('.').is_some_and(|(dest, _)| dest == target),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that fails like a full disk after `left` bytes.
    struct DiskFull<'w, W: Write> {
        inner: &'w mut W,
        left: usize,
    }

    impl<W: Write> Write for DiskFull<'_, W> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            self.inner.write(&buf[..n])
        }
        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_full_disk_mid_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.md");
        write_bytes(&path, b"old, complete").unwrap();
        let e = write_with(&path, |w| DiskFull { inner: w, left: 5 }.write_all(&[7u8; 1000])).unwrap_err();
        assert_eq!(e.cause.kind(), io::ErrorKind::StorageFull, "{e}");
        assert!(e.to_string().contains("report.md") && e.to_string().contains("write failed"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old, complete");
        assert_eq!(listing(dir.path()), ["report.md"]);
        // The next write succeeds.
        write_bytes(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(listing(dir.path()), ["report.md"]);
    }

    #[test]
    fn a_failed_rename_or_a_missing_folder_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // Renaming a file over a non-empty folder fails after the temp file was written.
        std::fs::create_dir_all(dir.path().join("occupied/inside")).unwrap();
        let e = write_bytes(&dir.path().join("occupied"), b"data").unwrap_err();
        assert!(e.stage.contains("rename"), "{e}");
        assert_eq!(listing(dir.path()), ["occupied"]);
        let e = write_bytes(&dir.path().join("no/such/folder/x"), b"data").unwrap_err();
        assert!(e.to_string().contains("no/such/folder/x") && e.stage.contains("create"), "{e}");
    }

    #[test]
    fn a_path_writer_gets_the_extension_and_its_error_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.png");
        write_through_path(&path, |tmp| {
            assert!(tmp.to_string_lossy().ends_with(".png") && tmp.parent() == Some(dir.path()));
            std::fs::write(tmp, b"png").map_err(|e| e.to_string())
        })
        .unwrap();
        let e = write_through_path(&path, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err("encoder failed".into())
        })
        .unwrap_err();
        assert!(e.to_string().contains("loss.png") && e.to_string().contains("encoder failed"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"png");
        assert_eq!(listing(dir.path()), ["loss.png"]);
    }

    fn stage(target: &Path, contents: &[(&str, &[u8])]) -> StagedDir {
        let staged = StagedDir::new(target).unwrap();
        for (name, bytes) in contents {
            write_bytes(&staged.path().join(name), bytes).unwrap();
        }
        staged
    }

    #[test]
    fn a_staged_folder_appears_whole_replaces_only_when_asked_and_vanishes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out/song");
        stage(&target, &[("vocals.wav", b"v1"), ("accompaniment.wav", b"a1")]).commit(false).unwrap();
        assert_eq!(listing(&target), ["accompaniment.wav", "vocals.wav"]);

        let e = stage(&target, &[("vocals.wav", b"v2")]).commit(false).unwrap_err();
        assert_eq!(e.cause.kind(), io::ErrorKind::AlreadyExists, "{e}");
        assert!(e.to_string().contains("out/song"), "{e}");
        assert_eq!(std::fs::read(target.join("vocals.wav")).unwrap(), b"v1");

        // A write fails half-way through the second stem: the old pair stays.
        let staged = stage(&target, &[("vocals.wav", b"v2")]);
        write_with(&staged.path().join("accompaniment.wav"), |w| DiskFull { inner: w, left: 1 }.write_all(b"a2"))
            .unwrap_err();
        drop(staged);
        assert_eq!(std::fs::read(target.join("vocals.wav")).unwrap(), b"v1");
        assert_eq!(listing(&dir.path().join("out")), ["song"], "no temporaries left");

        stage(&target, &[("vocals.wav", b"v3"), ("accompaniment.wav", b"a3")]).commit(true).unwrap();
        assert_eq!(std::fs::read(target.join("vocals.wav")).unwrap(), b"v3");
        assert_eq!(std::fs::read(target.join("accompaniment.wav")).unwrap(), b"a3");
        assert_eq!(listing(&dir.path().join("out")), ["song"], "the old folder is gone");
    }

    /// Files and folders get `0666`/`0777` less the umask, as `open`/`mkdir` give them.
    #[cfg(target_os = "linux")]
    #[test]
    fn written_files_and_folders_get_the_umask_permissions_not_private_ones() {
        use std::os::unix::fs::PermissionsExt;
        // Read without changing it (umask(2) sets as it reads, racing other test threads).
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let umask = status.lines().find_map(|l| l.strip_prefix("Umask:")).expect("Umask line").trim();
        let umask = u32::from_str_radix(umask, 8).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.wav");
        write_bytes(&file, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o666 & !umask, "umask {umask:o}");
        let target = dir.path().join("song");
        stage(&target, &[("vocals.wav", b"1")]).commit(false).unwrap();
        assert_eq!(mode(&target), 0o777 & !umask);
        assert_eq!(mode(&target.join("vocals.wav")), 0o666 & !umask);
    }

    #[test]
    fn stale_temporaries_are_recognised_by_destination() {
        assert!(is_temporary(".song.Ab12Cd.isola-tmp", Some("song")));
        assert!(is_temporary(".my.song.Ab12Cd.isola-tmp", Some("my.song")));
        assert!(is_temporary(".loss.png.Ab12Cd.isola-tmp.png", Some("loss.png")));
        assert!(!is_temporary(".song.Ab12Cd.isola-tmp", Some("so")));
        assert!(!is_temporary(".song-2.Ab12Cd.isola-tmp", Some("song")));
        assert!(!is_temporary("song.isola-tmp", None), "not hidden: a user's file");
        assert!(!is_temporary(".hidden", None));

        let dir = tempfile::tempdir().unwrap();
        // As a kill leaves it: the folder stays, the writer's lock goes with the process.
        let StagedDir { temp, _lock, .. } = stage(&dir.path().join("a"), &[("x", b"1")]);
        drop(_lock);
        let _ = temp.keep();
        let b = temp_beside(&dir.path().join("b.md"), "").unwrap();
        let _ = b.keep().unwrap();
        std::fs::write(dir.path().join("c.md"), b"user").unwrap();
        let d = temp_beside(&dir.path().join("d.md"), "").unwrap();
        let _ = d.keep().unwrap();
        assert_eq!(remove_stale(dir.path(), Some("a")).unwrap(), 1);
        assert_eq!(remove_stale_for(&dir.path().join("d.md")).unwrap(), 1, "only d.md's temporary");
        assert_eq!(remove_stale_for(&dir.path().join("d.md")).unwrap(), 0);
        assert_eq!(remove_stale(dir.path(), None).unwrap(), 1);
        assert_eq!(listing(dir.path()), ["c.md"]);
        assert_eq!(remove_stale(&dir.path().join("missing"), None).unwrap(), 0);
    }

    /// Two processes sharing a folder (two training runs filling one cache): one's cleanup
    /// before its own write must not remove the other's write in progress. flock locks
    /// conflict between separate opens in one process too, so this runs in one.
    #[cfg(unix)]
    #[test]
    fn a_live_writers_temporaries_survive_another_writers_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry.pool");
        write_with(&path, |w| {
            assert_eq!(remove_stale_for(&path)?, 0, "the write in progress is kept");
            assert_eq!(remove_stale(dir.path(), None)?, 0);
            w.write_all(b"whole")
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");

        let target = dir.path().join("song");
        let staged = stage(&target, &[("vocals.wav", b"v")]);
        assert_eq!(remove_stale(dir.path(), None).unwrap(), 0, "the staged folder is kept");
        staged.commit(false).unwrap();
        assert_eq!(std::fs::read(target.join("vocals.wav")).unwrap(), b"v");

        // Listed, then renamed into place by its writer (or removed by another cleanup) before
        // this cleanup reached it: nothing to do, and no error. Seen with two training runs
        // sharing a cache: "cannot remove the stale temporary ...: No such file or directory".
        let vanished = dir.path().join(".y.abc123.isola-tmp");
        assert!(!remove_if_stale(&vanished, false).unwrap());
        assert!(!remove_if_stale(&vanished, true).unwrap());

        // A temporary taken for stale between its creation and its writer's lock is replaced.
        let tmp = builder(0o666).prefix(".x.").suffix(TEMP_MARK).tempfile_in(dir.path()).unwrap();
        std::fs::remove_file(tmp.path()).unwrap();
        assert!(!claim(tmp.as_file(), tmp.path()), "its name is gone: make another");
        assert_eq!(listing(dir.path()), ["entry.pool", "song"]);
    }
}
