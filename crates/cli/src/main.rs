use clap::Parser;

fn main() -> std::process::ExitCode {
    coachloop_cli::run(coachloop_cli::Cli::parse())
}
