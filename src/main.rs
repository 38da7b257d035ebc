use clap::Parser;

// jemalloc returns freed memory and fragments less than glibc's malloc under the view's mix of
// long-lived small records and short-lived decoded objects: live RSS at 100,000 bindings 107 MiB
// against 145-151 MiB (README, Performance).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// One arena: with one per thread, a large review freed on one blocking thread stayed resident
// (decaying) while the next was decoded on another, doubling the peak (504 against 273 MB for
// eight 3 MB reviews in a row); it also measured slightly faster under load.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 10] = b"narenas:1\0";

fn main() -> std::process::ExitCode {
    let cli = bindguard::cli::Cli::parse();
    match bindguard::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) if error.is::<bindguard::cli::StdoutClosed>() => std::process::ExitCode::SUCCESS,
        Err(error) => match error.downcast_ref::<bindguard::check::Failure>() {
            Some(bindguard::check::Failure::Refused) => std::process::ExitCode::from(1),
            Some(unable) => {
                eprintln!("bindguard check: {unable}");
                std::process::ExitCode::from(2)
            }
            None => {
                eprintln!("bindguard: {error:#}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
