use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = bindguard::cli::Cli::parse();
    match bindguard::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) if error.is::<bindguard::cli::StdoutClosed>() => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bindguard: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
