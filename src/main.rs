//! The autossh binary: everything is in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    let code = autossh::run(&args, &|name| std::env::var_os(name)).unwrap_or_else(|error| {
        log::error!("{error:#}");
        1
    });
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
