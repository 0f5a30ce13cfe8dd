//! The `volley` command line: `volley microbenchmark` now; `start`, `stop`, `status` and
//! `job` arrive with the cluster.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Volley: tasks, actors, objects and Arrow dataflow.
#[derive(Debug, Parser)]
#[command(name = "volley", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Core micro-benchmarks (Ray's metric names where they apply).
    Microbenchmark {
        /// Only metrics whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Seconds per trial.
        #[arg(long, default_value_t = 1.0)]
        duration: f64,
        /// Trials per metric.
        #[arg(long, default_value_t = 3)]
        trials: usize,
    },
}

/// Runs the command line with these arguments.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> ExitCode {
    ExitCode::from(run(args))
}

/// Runs the command line with these arguments; returns the exit status (the Python
/// package's `volley` console script calls this).
pub fn run(args: impl IntoIterator<Item = String>) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match cli.command {
        Command::Microbenchmark {
            filter,
            duration,
            trials,
        } => {
            if !(duration > 0.0 && duration.is_finite()) || trials == 0 {
                return fail("--duration must be > 0 and --trials >= 1");
            }
            let settings = crate::microbench::Settings {
                filter,
                duration: Duration::from_secs_f64(duration),
                trials,
            };
            match crate::microbench::run(&settings, &mut |m| println!("{m}")) {
                Ok(_) => 0,
                Err(e) => fail(&e.to_string()),
            }
        }
    }
}

fn fail(msg: &str) -> u8 {
    eprintln!("volley: {msg}");
    1
}
