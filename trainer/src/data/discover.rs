//! Walking `--data` folders and classifying what is in them. Discovery only
//! looks at names; decoding and validation happen in `load`.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::audio::AudioError;
use crate::audio::decode::is_audio_file;

/// Folder names recognised as loose isolated vocals.
const VOCAL_DIRS: &[&str] = &["vocals", "vocal", "vox", "acapella", "acapellas", "a_cappella"];
/// Folder names recognised as loose vocal-free music.
const INSTRUMENTAL_DIRS: &[&str] = &["instrumental", "instrumentals", "accompaniment", "karaoke", "music"];
/// Stem names that are not part of the accompaniment sum.
const NOT_ACCOMPANIMENT: &[&str] = &["vocals", "mixture", "mix"];

/// Role of a loose source folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LooseRole {
    Vocals,
    Instrumental,
}

/// One `--data` argument: `DIR`, `vocals:DIR` or `instrumental:DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSpec {
    pub role: Option<LooseRole>,
    pub path: PathBuf,
}

impl FromStr for DataSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (role, path) = match s.split_once(':') {
            Some(("vocals", p)) => (Some(LooseRole::Vocals), p),
            Some(("instrumental", p)) => (Some(LooseRole::Instrumental), p),
            _ => (None, s),
        };
        if path.is_empty() {
            return Err(format!("empty path in data argument {s:?}"));
        }
        Ok(DataSpec { role, path: PathBuf::from(path) })
    }
}

/// Where a data item's audio comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Aligned stems; vocals and accompaniment are each the sum of their files.
    Stems { vocals: Vec<PathBuf>, accompaniment: Vec<PathBuf> },
    /// A MUSDB18 `.stem.mp4`.
    StemMp4(PathBuf),
    /// One file of isolated singing or of vocal-free music.
    Loose(LooseRole, PathBuf),
}

/// One discovered track or loose file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Display name: the path relative to the `--data` root.
    pub name: String,
    /// `train`, `test`, ... when the layout has split folders.
    pub split: Option<String>,
    pub source: Source,
}

impl Entry {
    /// Every file this entry reads.
    pub fn files(&self) -> Vec<&Path> {
        match &self.source {
            Source::Stems { vocals, accompaniment } => {
                vocals.iter().chain(accompaniment).map(PathBuf::as_path).collect()
            }
            Source::StemMp4(p) | Source::Loose(_, p) => vec![p.as_path()],
        }
    }

    pub fn kind(&self) -> &'static str {
        match &self.source {
            Source::Stems { .. } => "track",
            Source::StemMp4(_) => "stem.mp4",
            Source::Loose(LooseRole::Vocals, _) => "vocals",
            Source::Loose(LooseRole::Instrumental, _) => "instrumental",
        }
    }
}

/// Discovers everything under one `--data` argument. Returns the entries
/// found and the structural problems (folders that fit no layout); a spec
/// that yields nothing at all is a problem too.
pub fn discover(spec: &DataSpec) -> (Vec<Entry>, Vec<AudioError>) {
    let mut found = Found::default();
    let root = &spec.path;
    match fs::metadata(root) {
        Err(e) => found.problems.push(AudioError::new(root, format!("cannot read: {e}"))),
        Ok(m) if m.is_file() => {
            if is_stem_mp4(root) {
                found.entries.push(Entry { name: file_name(root), split: None, source: Source::StemMp4(root.clone()) });
            } else {
                let problem = "not a folder (pass a data set folder, or a MUSDB18 .stem.mp4 file)";
                found.problems.push(AudioError::new(root, problem));
            }
        }
        Ok(_) => match spec.role {
            Some(role) => walk_loose(root, root, role, &mut found),
            None => walk(root, root, None, &mut found),
        },
    }
    if found.entries.is_empty() && found.problems.is_empty() {
        found.problems.push(AudioError::new(root, "no audio found (empty folder or no recognised layout)"));
    }
    found.entries.sort_by(|a, b| a.name.cmp(&b.name));
    (found.entries, found.problems)
}

/// Discovers every `--data` argument, in order: the single entry point for `isola data
/// check`, `isola train` and `isola eval`. Returns all entries (each spec's sorted by
/// name, specs in the order given) and all structural problems, in the same order; see
/// [`discover`] for what one spec yields.
pub fn discover_all<'a>(specs: impl IntoIterator<Item = &'a DataSpec>) -> (Vec<Entry>, Vec<AudioError>) {
    let (mut entries, mut problems) = (Vec::new(), Vec::new());
    for spec in specs {
        let (found, p) = discover(spec);
        entries.extend(found);
        problems.extend(p);
    }
    (entries, problems)
}

#[derive(Default)]
struct Found {
    entries: Vec<Entry>,
    problems: Vec<AudioError>,
}

/// Sorted directory listing split into (sub-folders, audio files).
fn list(dir: &Path, found: &mut Found) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let read = match fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) => {
            found.problems.push(AudioError::new(dir, format!("cannot list folder: {e}")));
            return (Vec::new(), Vec::new());
        }
    };
    let mut paths: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let (dirs, files): (Vec<_>, Vec<_>) = paths.into_iter().partition(|p| p.is_dir());
    (dirs, files.into_iter().filter(|p| is_audio_file(p)).collect())
}

fn walk(root: &Path, dir: &Path, split: Option<String>, found: &mut Found) {
    let (dirs, files) = list(dir, found);
    if files.iter().any(|f| stem_name(f) == "vocals") {
        track_folder(root, dir, split, &files, found);
        return;
    }
    let name = file_name(dir).to_ascii_lowercase();
    if dir != root || !dirs.is_empty() || !files.is_empty() {
        if VOCAL_DIRS.contains(&name.as_str()) {
            return walk_loose(root, dir, LooseRole::Vocals, found);
        }
        if INSTRUMENTAL_DIRS.contains(&name.as_str()) {
            return walk_loose(root, dir, LooseRole::Instrumental, found);
        }
    }
    let mut loose = Vec::new();
    for f in files {
        if is_stem_mp4(&f) {
            found.entries.push(Entry { name: rel(root, &f), split: split.clone(), source: Source::StemMp4(f) });
        } else {
            loose.push(f);
        }
    }
    if !loose.is_empty() {
        let problem = format!(
            "{} audio file(s) that are neither track stems (no vocals.* beside them) nor in a vocals/instrumental \
             folder; pass vocals:DIR or instrumental:DIR to use them as loose sources",
            loose.len()
        );
        found.problems.push(AudioError::new(dir, problem));
    }
    for d in dirs {
        let sub = file_name(&d).to_ascii_lowercase();
        let split =
            split.clone().or_else(|| ["train", "test", "valid", "validation"].contains(&sub.as_str()).then_some(sub));
        walk(root, &d, split, found);
    }
}

fn track_folder(root: &Path, dir: &Path, split: Option<String>, files: &[PathBuf], found: &mut Found) {
    let by_name = |n: &str| files.iter().filter(|f| stem_name(f) == n).cloned().collect::<Vec<_>>();
    let vocals = by_name("vocals");
    if vocals.len() > 1 {
        found.problems.push(AudioError::new(dir, format!("{} files named vocals.*; keep one", vocals.len())));
        return;
    }
    let mut accompaniment = by_name("accompaniment");
    if accompaniment.len() > 1 {
        found
            .problems
            .push(AudioError::new(dir, format!("{} files named accompaniment.*; keep one", accompaniment.len())));
        return;
    }
    if accompaniment.is_empty() {
        accompaniment = files.iter().filter(|f| !NOT_ACCOMPANIMENT.contains(&stem_name(f).as_str())).cloned().collect();
    }
    if accompaniment.is_empty() {
        found
            .problems
            .push(AudioError::new(dir, "vocals but no accompaniment stems (accompaniment.* or drums/bass/other...)"));
        return;
    }
    found.entries.push(Entry { name: rel(root, dir), split, source: Source::Stems { vocals, accompaniment } });
}

fn walk_loose(root: &Path, dir: &Path, role: LooseRole, found: &mut Found) {
    let before = found.entries.len();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let (dirs, files) = list(&d, found);
        for f in files {
            found.entries.push(Entry { name: rel(root, &f), split: None, source: Source::Loose(role, f) });
        }
        stack.extend(dirs.into_iter().rev());
    }
    if found.entries.len() == before {
        found.problems.push(AudioError::new(dir, "no audio files in this loose-source folder"));
    }
}

/// File name without any extension, lower case (`vocals.stem.wav` -> `vocals`).
fn stem_name(path: &Path) -> String {
    file_name(path).split('.').next().unwrap_or_default().to_ascii_lowercase()
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

fn is_stem_mp4(path: &Path) -> bool {
    file_name(path).to_ascii_lowercase().ends_with(".stem.mp4")
}

fn rel(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(r) if !r.as_os_str().is_empty() => r.display().to_string(),
        _ => file_name(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"").unwrap();
    }

    fn spec(p: &Path) -> DataSpec {
        DataSpec { role: None, path: p.to_path_buf() }
    }

    #[test]
    fn parses_role_prefixes() {
        assert_eq!(
            "vocals:/a".parse::<DataSpec>().unwrap(),
            DataSpec { role: Some(LooseRole::Vocals), path: "/a".into() }
        );
        assert_eq!("instrumental:b".parse::<DataSpec>().unwrap().role, Some(LooseRole::Instrumental));
        assert_eq!("c:/x".parse::<DataSpec>().unwrap(), DataSpec { role: None, path: "c:/x".into() });
        assert!("vocals:".parse::<DataSpec>().is_err());
    }

    #[test]
    fn musdb_hq_layout() {
        let d = tempfile::tempdir().unwrap();
        for split in ["train", "test"] {
            for stem in ["mixture", "vocals", "drums", "bass", "other"] {
                touch(&d.path().join(format!("{split}/Song A/{stem}.wav")));
            }
        }
        let (entries, problems) = discover(&spec(d.path()));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "test/Song A");
        assert_eq!(entries[0].split.as_deref(), Some("test"));
        let Source::Stems { vocals, accompaniment } = &entries[0].source else { panic!() };
        assert_eq!(vocals.len(), 1);
        let names: Vec<_> = accompaniment.iter().map(|p| stem_name(p)).collect();
        assert_eq!(names, ["bass", "drums", "other"], "mixture is not accompaniment");
    }

    #[test]
    fn track_folders_loose_folders_and_stem_mp4() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("tracks/t1/vocals.ogg"));
        touch(&d.path().join("tracks/t1/accompaniment.ogg"));
        touch(&d.path().join("tracks/t1/drums.ogg")); // ignored: accompaniment.* wins
        touch(&d.path().join("vocals/singer/a.flac"));
        touch(&d.path().join("instrumental/x.mp3"));
        touch(&d.path().join("musdb/test/Song.stem.mp4"));
        fs::write(d.path().join("README.md"), b"not audio").unwrap();
        let (entries, problems) = discover(&spec(d.path()));
        assert!(problems.is_empty(), "{problems:?}");
        let kinds: Vec<_> = entries.iter().map(|e| (e.name.as_str(), e.kind())).collect();
        assert_eq!(
            kinds,
            [
                ("instrumental/x.mp3", "instrumental"),
                ("musdb/test/Song.stem.mp4", "stem.mp4"),
                ("tracks/t1", "track"),
                ("vocals/singer/a.flac", "vocals")
            ]
        );
        let Source::Stems { accompaniment, .. } = &entries[2].source else { panic!() };
        assert_eq!(accompaniment.len(), 1);
    }

    #[test]
    fn discover_all_keeps_the_order_of_the_specs() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("b/t1/vocals.wav"));
        touch(&d.path().join("b/t1/accompaniment.wav"));
        touch(&d.path().join("a/x.wav"));
        let specs = [spec(&d.path().join("b")), spec(&d.path().join("missing")), spec(&d.path().join("a"))];
        let (entries, problems) = discover_all(&specs);
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["t1"]);
        assert_eq!(problems.len(), 2);
        assert!(problems[0].to_string().contains("cannot read"), "{}", problems[0]);
        assert!(problems[1].to_string().contains("vocals:DIR"), "{}", problems[1]);
        let forced = DataSpec { role: Some(LooseRole::Vocals), path: d.path().join("a") };
        let (entries, problems) = discover_all([&specs[0], &forced]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(entries.iter().map(Entry::kind).collect::<Vec<_>>(), ["track", "vocals"]);
    }

    #[test]
    fn forced_role_and_problems() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("songs/a.wav"));
        let (_, problems) = discover(&spec(&d.path().join("songs")));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].to_string().contains("vocals:DIR"), "{}", problems[0]);
        let forced = DataSpec { role: Some(LooseRole::Vocals), path: d.path().join("songs") };
        let (entries, problems) = discover(&forced);
        assert!(problems.is_empty());
        assert_eq!(entries[0].source, Source::Loose(LooseRole::Vocals, d.path().join("songs/a.wav")));

        fs::create_dir(d.path().join("empty")).unwrap();
        let (entries, problems) = discover(&spec(&d.path().join("empty")));
        assert!(entries.is_empty());
        assert!(problems[0].to_string().contains("no audio found"), "{}", problems[0]);
        assert!(problems[0].to_string().contains("empty"), "names the folder: {}", problems[0]);

        touch(&d.path().join("lonely/vocals.wav"));
        let (_, problems) = discover(&spec(&d.path().join("lonely")));
        assert!(problems[0].to_string().contains("no accompaniment"), "{}", problems[0]);

        let (_, problems) = discover(&spec(&d.path().join("missing")));
        assert!(problems[0].to_string().contains("cannot read"));
    }
}
