//! The tunnel-list program: everything is in the library's `tunnels`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    let exe = std::env::current_exe().ok();
    let code = autossh::tunnels::main(&args, &|name| std::env::var_os(name), exe.as_deref());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
