//! Any environmentConfigs schema and value: compile, default and validate in bounded work, never
//! a panic. The input is a schema and a value separated by a NUL byte.
#![no_main]

use bindguard::schema::EnvConfigSchema;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let (Some(schema), Some(value)) = (parts.next(), parts.next()) else {
        return;
    };
    let (Ok(schema), Ok(value)) = (
        serde_json::from_slice::<serde_json::Value>(schema),
        serde_json::from_slice::<serde_json::Value>(value),
    ) else {
        return;
    };
    if let Ok(compiled) = EnvConfigSchema::compile(&schema) {
        let _ = compiled.check(&value);
        let _ = compiled.with_defaults(&value);
    }
});
