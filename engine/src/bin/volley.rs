//! The `volley` command.

fn main() -> std::process::ExitCode {
    volley::cli::main_with_args(std::env::args())
}
