//! Any body sent to /validate or /mutate: decoding plus every policy, against the example
//! cluster. Never a panic; every outcome is a response review or a decode error.
#![no_main]

use bindguard::cluster::{Stores, files};
use bindguard::judge::judge;
use bindguard::policy::{Context, Phase, Settings};
use bindguard::schema::SchemaCache;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn world() -> &'static (Stores, Settings, SchemaCache) {
    static WORLD: OnceLock<(Stores, Settings, SchemaCache)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/cluster");
        let stores = files::load_dir(std::path::Path::new(dir)).expect("examples/cluster loads");
        (stores, Settings::default(), SchemaCache::new())
    })
}

fuzz_target!(|body: &[u8]| {
    let (stores, settings, schemas) = world();
    let ctx = Context {
        view: stores,
        settings,
        schemas,
        in_place: None,
    };
    for phase in [Phase::Validate, Phase::Mutate] {
        let _ = judge(phase, body, &ctx);
    }
});
