//! The tunnel-list program: everything is in the library's `tunnels`.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Nothing it inherited beyond stdin, stdout and stderr reaches what it
    // starts.
    autossh::tunnels::procs::close_on_exec_from(3);
    let args: Vec<_> = std::env::args_os().collect();
    let vars: Vec<_> = std::env::vars_os().collect();
    let exe = std::env::current_exe().ok();
    let code = autossh::tunnels::main(&args, &vars, exe.as_deref());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
