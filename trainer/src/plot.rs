//! Font setup for plotters' PNG charts. plotters is built without system
//! font libraries (no fontconfig/freetype to install); it renders text with
//! ab_glyph from a TrueType file found at run time.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::style::{FontStyle, register_font};

const CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers "sans-serif" once: `$ISOLA_FONT`, a few well-known paths, or
/// the first `.ttf` under /usr/share/fonts.
pub fn ensure_font() -> anyhow::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let path = find_font()
            .ok_or_else(|| "no TrueType font found for chart text; set ISOLA_FONT=/path/to/font.ttf".to_string())?;
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{}: not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

fn find_font() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ISOLA_FONT") {
        return Some(PathBuf::from(p));
    }
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file()).or_else(|| first_ttf(Path::new("/usr/share/fonts"), 4))
}

fn first_ttf(dir: &Path, depth: usize) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    entries.iter().find(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ttf"))).cloned().or_else(|| {
        (depth > 0).then(|| entries.iter().filter(|p| p.is_dir()).find_map(|d| first_ttf(d, depth - 1))).flatten()
    })
}
