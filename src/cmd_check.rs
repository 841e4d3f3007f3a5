//! `pharos check rules|config` and `pharos test rules`: promtool's checks and rule unit tests,
//! with promtool's output (`Checking FILE`, `  SUCCESS: N rules found`, `  FAILED:` and one
//! `file: line:col: ...` line per problem) and exit status 1 on any failure.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use pharos_query::rules::manager::Manager;

/// `pharos check ...`.
#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Check rule files (promtool check rules).
    Rules {
        /// Rule files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check configuration files and the rule files they name (promtool check config).
    Config {
        /// Configuration files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `pharos test ...`.
#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Run rule unit tests in promtool's format (promtool test rules).
    Rules {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Checks one rule file, printing as promtool does; true if it is valid.
fn check_rule_file(path: &Path) -> bool {
    println!("Checking {}", path.display());
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("  FAILED:\n{}: {e}\n", path.display());
            return false;
        }
    };
    match pharos_query::rules::file::parse_rule_file(&text, path) {
        Ok(rf) => {
            let n: usize = rf.groups.iter().map(|g| g.rules.len()).sum();
            println!("  SUCCESS: {n} rules found\n");
            true
        }
        Err(errs) => {
            println!();
            eprintln!("  FAILED:");
            for e in errs {
                eprintln!("{e}");
            }
            false
        }
    }
}

/// Runs `pharos check ...`.
pub fn check(cmd: CheckCommand) -> anyhow::Result<()> {
    let mut failed = 0usize;
    match cmd {
        CheckCommand::Rules { files } => {
            for f in &files {
                if !check_rule_file(f) {
                    failed += 1;
                }
            }
        }
        CheckCommand::Config { files } => {
            for f in &files {
                println!("Checking {}", f.display());
                let cfg = std::fs::read_to_string(f)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))
                    .and_then(|t| crate::config::parse(&t, f));
                let cfg = match cfg {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("  FAILED: {e:#}\n");
                        failed += 1;
                        continue;
                    }
                };
                let base = f
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let mut rule_files = Vec::new();
                for p in &cfg.rule_files {
                    let full = if Path::new(p).is_absolute() || base == Path::new(".") {
                        PathBuf::from(p)
                    } else {
                        base.join(p)
                    };
                    match pharos_query::rules::manager::expand_glob(&full) {
                        Ok(v) => rule_files.extend(v),
                        Err(e) => {
                            eprintln!("  FAILED: {p}: {e}");
                            failed += 1;
                        }
                    }
                }
                println!("  SUCCESS: {} rule files found", rule_files.len());
                println!(
                    " SUCCESS: {} is valid prometheus config file syntax\n",
                    f.display()
                );
                for r in &rule_files {
                    if !check_rule_file(r) {
                        failed += 1;
                    }
                }
                // Loading the way the server does catches files the checks above cannot.
                if failed == 0
                    && let Err(errs) = Manager::load_files(&cfg.rule_files, base)
                {
                    for e in errs {
                        eprintln!("  FAILED: {e}");
                    }
                    failed += 1;
                }
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}

/// Runs `pharos test rules ...`.
pub fn test(cmd: TestCommand) -> anyhow::Result<()> {
    let TestCommand::Rules { files } = cmd;
    let mut failed = 0usize;
    for f in &files {
        println!("Unit Testing:  {}", f.display());
        let errs = pharos_query::rules::unittest::run_file(f);
        if errs.is_empty() {
            println!("  SUCCESS\n");
        } else {
            failed += 1;
            eprintln!("  FAILED:");
            for e in errs {
                eprintln!("{e}");
            }
            eprintln!();
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} rule test file(s) failed");
    }
    Ok(())
}
