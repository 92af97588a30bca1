use std::path::PathBuf;

/// A problem with one audio file. Always names the file, so a data set with
/// hundreds of files points straight at the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct AudioError {
    pub path: PathBuf,
    pub problem: String,
}

impl AudioError {
    pub fn new(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Self { path: path.into(), problem: problem.into() }
    }
}
