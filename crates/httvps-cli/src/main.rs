//! `httvps`: the command-line face of the client engine.
//!
//! Errors are reported once, at the top, with their whole chain (and, under
//! `--json`, as a JSON line with a stable code); the exit code is 1 for
//! failures and 2 for usage errors (clap's own).

mod args;
mod connect;
mod demo;
mod failure;
mod link;
mod login;
mod output;
mod publish;
mod saved;
mod share;
mod status;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// The allocator of every binary we ship (why: the `allocator` crate).
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

fn main() -> ExitCode {
    allocator::keep_small_pages();
    // Before any TLS configuration is built: the client's provider draws a
    // handshake's random numbers from the operating system, so the first
    // handshake no longer waits 30–50 ms for aws-lc to seed its generator
    // from CPU jitter (httvps_client::crypto). Nothing on the way to the
    // first byte asks aws-lc for random numbers any more, so no seeding
    // thread is started either.
    let _ = httvps_client::crypto::install_default_provider();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let json = match &cli.command {
        Command::Connect(args) => args.json,
        Command::Demo(args) => args.json,
        Command::Publish(args) => args.json,
        Command::Share(args) => args.json,
        Command::Status(args) => args.json,
        Command::Streams(args) => args.json,
        Command::Login(_) | Command::Link(_) | Command::Logout(_) | Command::Profiles => false,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Connect(args) => connect::run(&cli.global, args).await,
            Command::Demo(args) => demo::run(&cli.global, args).await,
            Command::Publish(args) => publish::run(&cli.global, args).await,
            Command::Share(args) => share::run(&cli.global, args).await,
            Command::Login(args) => login::login(&cli.global, args),
            Command::Link(args) => link::print(&cli.global, args),
            Command::Logout(args) => login::logout(&cli.global, args),
            Command::Profiles => login::list(&cli.global),
            Command::Status(args) => status::status(&cli.global, args).await,
            Command::Streams(args) => status::streams(&cli.global, args).await,
        }
    });
    // Background work (a DNS lookup on the blocking pool, a stuck peer) must
    // not keep a stopped client alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(e) => {
            if json {
                println!("{}", failure::json_line(&e));
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr so that `--json` output on stdout stays clean. The
/// filter is `RUST_LOG` (or `-v`'s level) under [`net::log_filter`]'s cap:
/// the WebSocket library never logs above DEBUG, since at TRACE it prints
/// every frame, the hello with the session token included.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    net::log_filter::init_stderr("RUST_LOG", default);
}
