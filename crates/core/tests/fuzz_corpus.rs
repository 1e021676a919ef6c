//! The fuzz target bodies on stable: every seed of `fuzz/corpus/` (and any crash input
//! saved in `fuzz/artifacts/`), then a bounded number of seeded mutations of each. A panic
//! here is a bug the fuzzer would report; `cargo +nightly fuzz run <target>` searches
//! further.

use std::path::{Path, PathBuf};

const MUTATIONS_PER_TARGET: usize = 20_000;

/// JSON fragments worth splicing in: type confusions, limits, odd numbers and strings.
const TOKENS: &[&str] = &[
    "null",
    "true",
    "[]",
    "{}",
    "\"\"",
    "0",
    "-1",
    "1e309",
    "0.001",
    "1.005",
    "-0",
    "99999999999999999999999",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"orderID\"",
    "\"items\"",
    "\"unitPrice\"",
    "\"quantity\"",
    "\"currency\"",
    "\"NewImage\"",
    "\"body\"",
    "{\"N\":\"1\"}",
    "{\"S\":\"x\"}",
    "\"Records\"",
    ",",
    ":",
    "\"",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                data.splice(at..at, token.iter().copied());
            }
            3 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from + 1);
                data.splice(at..at, other[from..from + len].iter().copied());
            }
            4 => data.truncate(at),
            _ => {
                let byte = rng.next() as u8;
                data.insert(at, byte);
            }
        }
    }
    data
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn run(target: &str, body: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let corpus = files_in(&root.join("corpus").join(target));
    assert!(!corpus.is_empty(), "no seeds in fuzz/corpus/{target}");
    let mut seeds: Vec<Vec<u8>> = corpus.iter().map(|p| std::fs::read(p).unwrap()).collect();
    for crash in files_in(&root.join("artifacts").join(target)) {
        body(&std::fs::read(&crash).unwrap());
    }
    for seed in &seeds {
        body(seed);
    }
    let mut rng = Rng(0x6f72_6465_7266_6c6f);
    for i in 0..MUTATIONS_PER_TARGET {
        let seed = &seeds[i % seeds.len()];
        let input = mutate(&mut rng, seed, &seeds);
        body(&input);
        // Inputs that still parse are good seeds for deeper mutations.
        if i % 97 == 0
            && serde_json::from_slice::<serde_json::Value>(&input).is_ok()
            && seeds.len() < 64
        {
            seeds.push(input);
        }
    }
}

#[test]
fn order_parsing_never_panics_and_round_trips_what_it_accepts() {
    run("order_parse", orderflow_core::fuzz::order_parse);
}

#[test]
fn event_decoding_never_panics() {
    run("event_decode", orderflow_core::fuzz::event_decode);
}
