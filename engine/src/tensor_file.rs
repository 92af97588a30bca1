//! Safetensors files of named f32 tensors plus a string metadata map: the one reader and
//! the one atomic writer behind both the weights file ([`crate::weights`]) and the
//! trainer's checkpoints.
//!
//! Reading is two-phase so that a caller can check the metadata (format tag, version,
//! configs) before any tensor is decoded: [`TensorFile::read`] / [`TensorFile::parse`]
//! validate the whole container and expose [`TensorFile::metadata`], then
//! [`TensorFile::tensors`] decodes every tensor as little-endian f32.
//!
//! Writing ([`write_atomic`]) goes through [`crate::atomic_file`]: a crash, kill or full disk
//! at any moment leaves either the previous file or the new one, never a torn one.
//!
//! Every error names the file (or "safetensors data" for bytes not read from a file) and
//! the problem.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// One named tensor: row-major f32 values with their shape (`data.len()` is the product
/// of `shape`; a scalar has shape `[]` and one value).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// What is wrong with the contents of a safetensors file (the container, not the meaning
/// of its tensors, which is the caller's business).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FormatError {
    /// The header or the data layout is invalid: truncated, corrupt, or not safetensors.
    #[error("not a valid safetensors file (truncated or corrupt?): {0}")]
    Container(String),
    /// A tensor is stored in another dtype than F32.
    #[error("tensor `{name}` has dtype {found}, expected F32")]
    WrongDtype { name: String, found: String },
    /// A tensor handed to the writer whose data length does not match its shape.
    #[error("tensor `{name}` has {len} values but shape {shape:?}")]
    BadTensor { name: String, shape: Vec<usize>, len: usize },
}

/// Why reading or writing a tensor file failed. The message always names the file.
#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    /// The file could not be read.
    #[error("cannot read {}: {cause}", path.display())]
    Read { path: PathBuf, cause: std::io::Error },
    /// The file could not be written; `stage` says which step failed (create the temp
    /// file, write, sync, rename into place).
    #[error("cannot write {}: {stage}: {cause}", path.display())]
    Write { path: PathBuf, stage: &'static str, cause: std::io::Error },
    /// The contents are not a valid file of f32 tensors (`path` is `None` for bytes that
    /// did not come from a file).
    #[error("{}: {problem}", Origin(path.as_deref()))]
    Format { path: Option<PathBuf>, problem: FormatError },
}

impl TensorFileError {
    /// The container problem, for errors about the contents (`None` for IO errors).
    pub fn format_problem(&self) -> Option<&FormatError> {
        match self {
            TensorFileError::Format { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// Lets code that returns `std::io::Result` use `?` on tensor-file errors; the message
/// (with the file name) is kept.
impl From<TensorFileError> for std::io::Error {
    fn from(e: TensorFileError) -> Self {
        let kind = match &e {
            TensorFileError::Read { cause, .. } | TensorFileError::Write { cause, .. } => cause.kind(),
            TensorFileError::Format { .. } => std::io::ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, e)
    }
}

struct Origin<'a>(Option<&'a Path>);

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "{}", p.display()),
            None => f.write_str("safetensors data"),
        }
    }
}

/// A validated safetensors container: its metadata is parsed, its tensors are decoded on
/// request by [`TensorFile::tensors`].
#[derive(Debug)]
pub struct TensorFile<'a> {
    path: Option<PathBuf>,
    bytes: std::borrow::Cow<'a, [u8]>,
    metadata: HashMap<String, String>,
}

impl TensorFile<'static> {
    /// Reads and validates the container at `path` (header, offsets, data length).
    ///
    /// Errors: [`TensorFileError::Read`] when the file cannot be read,
    /// [`TensorFileError::Format`] with [`FormatError::Container`] when it is not valid
    /// safetensors; both name `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, TensorFileError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|cause| TensorFileError::Read { path: path.to_path_buf(), cause })?;
        let metadata = container_metadata(&bytes)
            .map_err(|problem| TensorFileError::Format { path: Some(path.to_path_buf()), problem })?;
        Ok(TensorFile { path: Some(path.to_path_buf()), bytes: bytes.into(), metadata })
    }
}

impl<'a> TensorFile<'a> {
    /// Validates a container held in memory (e.g. embedded with `include_bytes!`), without
    /// copying it.
    ///
    /// Errors: [`TensorFileError::Format`] (`path: None`) with [`FormatError::Container`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, TensorFileError> {
        let metadata = container_metadata(bytes).map_err(|problem| TensorFileError::Format { path: None, problem })?;
        Ok(TensorFile { path: None, bytes: bytes.into(), metadata })
    }

    /// The file the container was read from (`None` for [`TensorFile::parse`]).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The header's `__metadata__` map (empty when the file has none).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Decodes every tensor as little-endian f32, by name.
    ///
    /// Errors: [`TensorFileError::Format`] with [`FormatError::WrongDtype`] naming the
    /// first tensor (in name order) that is not F32.
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>, TensorFileError> {
        let format = |problem| TensorFileError::Format { path: self.path.clone(), problem };
        let st = SafeTensors::deserialize(&self.bytes).map_err(|e| format(FormatError::Container(e.to_string())))?;
        let mut views = st.tensors();
        views.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tensors = HashMap::with_capacity(views.len());
        for (name, view) in views {
            if view.dtype() != Dtype::F32 {
                return Err(format(FormatError::WrongDtype { name, found: format!("{:?}", view.dtype()) }));
            }
            let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            tensors.insert(name, Tensor { shape: view.shape().to_vec(), data });
        }
        Ok(tensors)
    }
}

/// Checks the whole container (header and data layout) and returns its metadata map.
fn container_metadata(bytes: &[u8]) -> Result<HashMap<String, String>, FormatError> {
    // `read_metadata` checks the header, every tensor's extent and the total length.
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| FormatError::Container(e.to_string()))?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// Serialises `metadata` and `tensors` (f32, little endian) to safetensors bytes. The
/// output does not depend on the order of `tensors` (safetensors sorts them).
///
/// Errors: [`FormatError::BadTensor`] when a tensor's data length is not the product of
/// its shape.
pub fn to_bytes<'t, N: AsRef<str>>(
    metadata: &HashMap<String, String>,
    tensors: impl IntoIterator<Item = (N, &'t Tensor)>,
) -> Result<Vec<u8>, FormatError> {
    let raw: Vec<(String, &Tensor, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, t)| (name.as_ref().to_string(), t, t.data.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let mut views = Vec::with_capacity(raw.len());
    for (name, t, bytes) in &raw {
        let bad = || FormatError::BadTensor { name: name.clone(), shape: t.shape.clone(), len: t.data.len() };
        if t.data.len() != t.shape.iter().product::<usize>() {
            return Err(bad());
        }
        let view = safetensors::tensor::TensorView::new(Dtype::F32, t.shape.clone(), bytes).map_err(|_| bad())?;
        views.push((name.as_str(), view));
    }
    // No metadata at all when there is none: safetensors cannot read back an empty
    // `__metadata__` object it wrote.
    let metadata = Some(metadata.clone()).filter(|m| !m.is_empty());
    safetensors::serialize(views, metadata).map_err(|e| FormatError::Container(e.to_string()))
}

/// Writes `metadata` and `tensors` to `path` atomically (see [`write_bytes_atomic`]).
///
/// Errors: [`TensorFileError::Format`] for a tensor whose data does not fit its shape
/// (nothing is written), [`TensorFileError::Write`] for IO failures; both name `path`.
pub fn write_atomic<'t, N: AsRef<str>>(
    path: impl AsRef<Path>,
    metadata: &HashMap<String, String>,
    tensors: impl IntoIterator<Item = (N, &'t Tensor)>,
) -> Result<(), TensorFileError> {
    let path = path.as_ref();
    let bytes = to_bytes(metadata, tensors)
        .map_err(|problem| TensorFileError::Format { path: Some(path.to_path_buf()), problem })?;
    write_bytes_atomic(path, &bytes)
}

/// Replaces `path` with `bytes` atomically ([`crate::atomic_file::write_bytes`]): a
/// crash, kill or full disk leaves the previous file or the new one, never a torn one.
///
/// Errors: [`TensorFileError::Write`] naming `path` and the failed stage.
pub fn write_bytes_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), TensorFileError> {
    crate::atomic_file::write_bytes(path.as_ref(), bytes).map_err(|e| TensorFileError::Write {
        path: e.path,
        stage: e.stage,
        cause: e.cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (HashMap<String, String>, HashMap<String, Tensor>) {
        let meta = HashMap::from([("format".to_string(), "test".to_string())]);
        let tensors = HashMap::from([
            ("a".to_string(), Tensor { shape: vec![2, 2], data: vec![1.0, 2.0, 3.0, 4.0] }),
            ("b".to_string(), Tensor { shape: vec![], data: vec![-0.5] }),
        ]);
        (meta, tensors)
    }

    fn temp_dir(tag: &str) -> PathBuf {
        tempfile::Builder::new().prefix(&format!("isola-tensor-file-{tag}-")).tempdir().unwrap().keep()
    }

    #[test]
    fn round_trip_in_memory_and_on_disk_without_temp_files() {
        let (meta, tensors) = sample();
        let bytes = to_bytes(&meta, &tensors).unwrap();
        let file = TensorFile::parse(&bytes).unwrap();
        assert_eq!(file.metadata(), &meta);
        assert_eq!(file.tensors().unwrap(), tensors);

        let dir = temp_dir("round-trip");
        let path = dir.join("t.safetensors");
        write_atomic(&path, &meta, &tensors).unwrap();
        write_atomic(&path, &meta, &tensors).unwrap(); // replaces in place
        let file = TensorFile::read(&path).unwrap();
        assert_eq!(file.path(), Some(path.as_path()));
        assert_eq!((file.metadata(), file.tensors().unwrap()), (&meta, tensors));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "temp file renamed away");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_file_round_trips() {
        let none: [(&str, &Tensor); 0] = [];
        let bytes = to_bytes(&HashMap::new(), none).unwrap();
        let file = TensorFile::parse(&bytes).unwrap();
        assert!(file.metadata().is_empty() && file.tensors().unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = temp_dir("errors");
        let missing = dir.join("missing.safetensors");
        let e = TensorFile::read(&missing).unwrap_err();
        assert!(matches!(e, TensorFileError::Read { .. }), "{e:?}");
        assert!(e.to_string().contains("missing.safetensors"), "{e}");

        let garbage = dir.join("garbage.safetensors");
        std::fs::write(&garbage, b"garbage, not safetensors").unwrap();
        let e = TensorFile::read(&garbage).unwrap_err();
        assert!(matches!(e.format_problem(), Some(FormatError::Container(_))), "{e:?}");
        assert!(e.to_string().contains("garbage.safetensors") && e.to_string().contains("not a valid"), "{e}");

        // A non-f32 tensor: the metadata is readable, the tensors are refused by name.
        let raw = [0u8; 4];
        let view = safetensors::tensor::TensorView::new(Dtype::I32, vec![1], &raw).unwrap();
        let bytes = safetensors::serialize([("ints", view)], None).unwrap();
        let file = TensorFile::parse(&bytes).unwrap();
        assert!(file.metadata().is_empty());
        let e = file.tensors().unwrap_err();
        assert!(matches!(e.format_problem(), Some(FormatError::WrongDtype { name, .. }) if name == "ints"), "{e:?}");
        assert!(e.to_string().starts_with("safetensors data: tensor `ints`"), "{e}");

        // A tensor whose data does not fit its shape is refused before anything is written.
        let target = dir.join("bad.safetensors");
        let bad = Tensor { shape: vec![3], data: vec![1.0] };
        let e = write_atomic(&target, &HashMap::new(), [("x", &bad)]).unwrap_err();
        assert!(matches!(e.format_problem(), Some(FormatError::BadTensor { .. })), "{e:?}");
        assert!(e.to_string().contains("bad.safetensors") && e.to_string().contains("`x`"), "{e}");
        assert!(!target.exists());

        // A folder that does not exist: the write fails, naming the file, leaving nothing.
        let nowhere = dir.join("no/such/folder/w.safetensors");
        let e =
            write_atomic(&nowhere, &HashMap::new(), [("x", &Tensor { shape: vec![1], data: vec![0.0] })]).unwrap_err();
        assert!(matches!(e, TensorFileError::Write { .. }), "{e:?}");
        assert!(e.to_string().contains("w.safetensors"), "{e}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "only garbage.safetensors, no temp files");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
