use clap::Parser;

// The server allocates and frees small strings by the million (a row decoded per value,
// a JSON line per row); mimalloc does that markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    coachloop_cli::run(coachloop_cli::Cli::parse())
}
