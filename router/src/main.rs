//! The `orochi-router` binary: parse arguments, call the library.

use clap::Parser;

fn main() {
    std::process::exit(orochi_router::cli::main(orochi_router::cli::Cli::parse()));
}
