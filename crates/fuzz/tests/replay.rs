//! Replays the committed corpus (fuzz/corpus/<target>/) and every crash the fuzzer found
//! (fuzz/regressions/<target>/) through the fuzz targets, so CI runs them on every change
//! without AFL. A file that panics fails the test and names itself.
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Runs every file under `dir/<target>` through its target; returns how many ran.
fn replay(dir: &Path, target: &str, run: warren_fuzz::Target) -> usize {
    let Ok(entries) = std::fs::read_dir(dir.join(target)) else { return 0 };
    let mut files: Vec<PathBuf> = entries.map(|e| e.expect("readable corpus directory").path()).collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).expect("readable corpus file");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{} fails target {target}", f.display());
        }
    }
    files.len()
}

#[test]
fn corpus_replays_without_a_failure() {
    for &(target, run) in warren_fuzz::TARGETS {
        let n = replay(&fuzz_dir().join("corpus"), target, run);
        // The corpus holds at least the seeds; an empty directory means it went missing.
        assert!(n >= 3, "fuzz/corpus/{target} has only {n} inputs");
    }
}

#[test]
fn crash_regressions_replay_without_a_failure() {
    for &(target, run) in warren_fuzz::TARGETS {
        replay(&fuzz_dir().join("regressions"), target, run);
    }
}

#[test]
fn seeds_pass_their_targets() {
    let seeds = warren_fuzz::seeds::all();
    for &(target, run) in warren_fuzz::TARGETS {
        let mine: Vec<_> = seeds.iter().filter(|s| s.target == target).collect();
        assert!(mine.len() >= 3, "{target}: {} seeds", mine.len());
        for s in mine {
            run(&s.bytes);
        }
    }
}
