//! Where the dashboard reads its dashboard files: `--dashboards.dir`, else `dashboards.dir` of
//! the configuration file (relative to that file's folder), else only the built-ins.

use std::path::{Path, PathBuf};

use crate::config::{Config, Source};

/// The dashboards folder for this configuration; the flag wins over the file.
pub fn dir(flag: Option<&Path>, cfg: &Config, source: &Source) -> Option<PathBuf> {
    if let Some(f) = flag {
        return Some(f.to_path_buf());
    }
    let d = cfg.dashboards.dir.as_ref()?;
    if d.is_absolute() {
        return Some(d.clone());
    }
    match source {
        Source::File(p) => Some(
            p.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| p.join(d))
                .unwrap_or_else(|| d.clone()),
        ),
        Source::Embedded(_) => Some(d.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_file_relative_to_config() {
        #[track_caller]
        fn check(flag: Option<&str>, yaml: &str, source: &Source, want: Option<&str>) {
            let cfg = crate::config::parse(yaml, Path::new("x")).unwrap();
            let got = dir(flag.map(Path::new), &cfg, source);
            assert_eq!(got.as_deref(), want.map(Path::new));
        }
        let file = Source::File(PathBuf::from("/etc/pharos/pharos.yml"));
        let bare = Source::File(PathBuf::from("pharos.yml"));
        let emb = Source::Embedded(String::new());
        let rel = "dashboards: {dir: boards}\n";
        check(None, "", &file, None);
        check(None, rel, &file, Some("/etc/pharos/boards"));
        check(None, rel, &bare, Some("boards"));
        check(None, rel, &emb, Some("boards"));
        check(None, "dashboards:\n  dir: /srv/d\n", &file, Some("/srv/d"));
        check(Some("/flag"), rel, &file, Some("/flag"));
        assert!(crate::config::parse("dashboards: {folder: x}\n", Path::new("x")).is_err());
    }
}
