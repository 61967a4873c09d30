//! The checked-in fuzz corpus (`fuzz/corpus/<target>/`), replayed under plain `cargo test`
//! through the same invariants the fuzz targets check (`lanyard::fuzzing`), so CI holds every
//! input the fuzzer found interesting without nightly or libFuzzer.

use std::path::{Path, PathBuf};

use lanyard::fuzzing::{Reached, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Every corpus input of every target keeps its invariants, and each target's corpus reaches
/// both acceptance and refusal (a corpus stuck before the first check would replay nothing).
#[test]
fn fuzz_corpus_replays_with_every_invariant_holding() {
    let mut failures = Vec::new();
    for t in TARGETS {
        let files = corpus(t.name);
        assert!(!files.is_empty(), "fuzz/corpus/{} is empty", t.name);
        let (mut accepted, mut refused) = (0, 0);
        for (name, data) in &files {
            match (t.run)(data) {
                Ok(Reached::Accepted) => accepted += 1,
                Ok(Reached::Refused) => refused += 1,
                Err(v) => failures.push(format!("{}/{name}: {v}", t.name)),
            }
        }
        assert!(
            accepted > 0 && refused > 0,
            "{}: {accepted} accepted, {refused} refused of {} inputs",
            t.name,
            files.len()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each target named in `lanyard::fuzzing` has its fuzz target file and `[[bin]]` entry, and
/// the checked-in corpus stays small.
#[test]
fn every_invariant_has_a_fuzz_target_and_a_small_corpus() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut total = 0;
    for t in TARGETS {
        let src = fuzz_dir()
            .join("fuzz_targets")
            .join(format!("{}.rs", t.name));
        let text = std::fs::read_to_string(&src).unwrap();
        assert!(
            text.contains(&format!("lanyard::fuzzing::{}(data)", t.name)),
            "{} does not check lanyard::fuzzing::{}",
            src.display(),
            t.name
        );
        assert!(
            manifest.contains(&format!("name = \"{}\"", t.name)),
            "fuzz/Cargo.toml has no [[bin]] {}",
            t.name
        );
        total += corpus(t.name).iter().map(|(_, d)| d.len()).sum::<usize>();
    }
    assert!(total < 512 * 1024, "corpus is {total} bytes");
}

/// Writes each target's hand-made seeds into `fuzz/corpus/<target>/seed-<n>` (run by hand
/// before fuzzing: `cargo test --test it write_fuzz_seeds -- --ignored`).
#[test]
#[ignore = "writes into the source tree; run by hand"]
fn write_fuzz_seeds() {
    for t in TARGETS {
        let dir = fuzz_dir().join("corpus").join(t.name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in (t.seeds)().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
        }
    }
}
