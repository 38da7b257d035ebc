//! Time to judge one AdmissionReview, end to end through `judge` (decode, policy, encode),
//! against the static view of `examples/cluster`. Run: `cargo bench --bench judge`.
//! With `BINDGUARD_BENCH_STATE=DIR`, the view is DIR instead (`scripts/bench.sh` puts a generated
//! state and `examples/cluster` there). Prints the median of 31 batches for each case, or only
//! of the cases whose file name contains `BINDGUARD_BENCH_ONLY`.

use bindguard::cluster::files;
use bindguard::judge::judge;
use bindguard::policy::{Context, Phase, Settings};
use bindguard::schema::{JUDGE_THREAD_STACK, SchemaCache};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

const BATCHES: usize = 31;
const PER_BATCH: u32 = 2000;

fn median_micros(mut run: impl FnMut()) -> f64 {
    for _ in 0..PER_BATCH {
        run();
    }
    let mut batches: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..PER_BATCH {
                run();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(PER_BATCH)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[BATCHES / 2]
}

/// Runs on a thread with the stack `serve` gives its judging threads, as the server does.
fn main() {
    std::thread::Builder::new()
        .stack_size(JUDGE_THREAD_STACK)
        .spawn(run)
        .expect("a judging thread")
        .join()
        .expect("the benchmark");
}

fn run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = std::env::var_os("BINDGUARD_BENCH_STATE")
        .map_or_else(|| root.join("examples/cluster"), Into::into);
    let stores = files::load_dir(&state).expect("the state folder");
    let settings = Settings::default();
    let schemas = SchemaCache::new();
    let ctx = Context {
        view: &stores,
        settings: &settings,
        schemas: &schemas,
        in_place: None,
    };
    println!("| case | phase | median µs per review |");
    println!("|---|---|---|");
    let mut files: Vec<_> = std::fs::read_dir(root.join("examples/reviews"))
        .expect("examples/reviews")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let only = std::env::var("BINDGUARD_BENCH_ONLY").unwrap_or_default();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.contains(&only) {
            continue;
        }
        let phase = if name.contains(".patch.") {
            Phase::Mutate
        } else {
            Phase::Validate
        };
        let body = std::fs::read(&path).expect("read");
        let micros = median_micros(|| {
            black_box(judge(phase, black_box(&body), &ctx).ok());
        });
        println!("| {name} | {phase:?} | {micros:.1} |");
    }
}
